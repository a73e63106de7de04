"""Chunk-consistency training (Lee et al. 2023, Eq. 2):
L = L_ALBEF + lambda1 L_intra + lambda2 L_inter (+ L_box / L_semi, Sec. 3.4).

L_ALBEF is ALBEF's image-text contrastive loss (texts of one image are all positives)
plus image-text matching with hard negatives mined from the batch by contrastive
similarity (one negative image per text and one negative text per image-text pair).
The chunk losses act on Grad-CAMs computed with ``create_graph=True``.

Loss settings (``loss:`` in the recipe), defaults in brackets:
``itc`` [1], ``itm`` [1], ``intra`` (lambda1) [0], ``inter`` (lambda2) [0], ``tau`` [0.3],
``inter_reduction`` [mean] (``pixel_reduction`` of :func:`inter_chunk_loss_batch`:
mean | sum | region),
``exclude_negation`` [true] (Sec. 4.3), ``hard_negatives_from_step`` [0] (before it,
ITM negatives are drawn uniformly from the batch: a from-scratch model whose contrastive
similarity means nothing yet learns from them at once, where similarity-weighted ones
kept its ITM loss at the prior in our trials), ``chunk_losses_from_step`` [0] (start the chunk
losses once matching is learned), ``box`` [0] and ``semi`` [0] with ``semi_fraction``
[0.0] (the share of samples whose true mask counts as labelled), ``gradcam_layer``
[the model's default], ``text_negatives`` [false] (also pair every caption, one content
word swapped, with its own image as an ITM negative; see :mod:`.text_negatives`),
``filter_false_negatives`` [false] (Shapes-Ref only: never draw as an ITM negative a text
whose head phrase fits an object of the image; see :mod:`wsris.training.false_negatives`).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ...backbones.bert import IndexedImages
from ...blocks.noun_chunks import chunk_batch
from ...evaluation.during_training import localisation_metrics
from ...strict import from_mapping
from ...training.false_negatives import (
    batch_scenes,
    describable,
    drop_describable,
    may_describe,
)
from ...training.objectives import Objective
from .gradcam import compute_gradcam, default_word_mask, sentence_map
from .losses import (
    PIXEL_REDUCTIONS,
    box_loss,
    inter_chunk_loss_batch,
    intra_chunk_loss_batch,
    semi_loss,
)
from .text_negatives import SHAPES_REF_SWAPS, build_swap_table, perturb_caption


@dataclass
class ChunkLoss:
    """The ``loss:`` section of a chunk recipe (see the module docstring), checked by
    type at recipe load and by range in :meth:`check`."""

    itc: float = 1.0
    itm: float = 1.0
    intra: float = 0.0
    inter: float = 0.0
    tau: float = 0.3
    inter_reduction: str = "mean"
    exclude_negation: bool = True
    chunk_losses_from_step: int = 0
    hard_negatives_from_step: int = 0
    box: float = 0.0
    semi: float = 0.0
    semi_fraction: float = 0.0
    gradcam_layer: int | None = None
    text_negatives: bool = False
    filter_false_negatives: bool = False

    def check(self) -> None:
        for name in ("itc", "itm", "intra", "inter", "box", "semi"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is a weight: must be >= 0, got "
                                 f"{getattr(self, name)}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")
        if self.inter_reduction not in PIXEL_REDUCTIONS:
            raise ValueError(f"inter_reduction must be one of {list(PIXEL_REDUCTIONS)}, "
                             f"got {self.inter_reduction!r}")
        for name in ("chunk_losses_from_step", "hard_negatives_from_step"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.semi_fraction <= 1:
            raise ValueError(f"semi_fraction must be in [0, 1], got {self.semi_fraction}")
        if self.gradcam_layer is not None and self.gradcam_layer < 0:
            raise ValueError(f"gradcam_layer must be >= 0, got {self.gradcam_layer}")


#: The default loss settings, by name.
DEFAULTS: dict[str, Any] = dataclasses.asdict(ChunkLoss())


def _sample_rows(weights: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row, drawn in proportion to ``weights`` (rows of zeros give -1)."""
    valid = weights.sum(dim=1) > 0
    safe = torch.where(valid[:, None], weights, torch.ones_like(weights))
    picks = torch.multinomial(safe, 1, generator=generator).squeeze(1)
    return torch.where(valid, picks, torch.full_like(picks, -1))


def negative_weights(
    sim: torch.Tensor, image_index: torch.Tensor, hard: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampling weights of the ITM negatives: ``[B_txt, B_img]`` (a negative image for each
    text) and ``[B_txt, B_txt]`` (a negative text for each text's image). ``hard``: in
    proportion to the softmax of the contrastive similarity ``sim`` (ALBEF); else uniform.
    An image's own texts (and a text's own image) always weigh 0."""
    same = image_index[:, None] == image_index[None, :]
    own = F.one_hot(image_index, sim.shape[1]).bool()
    if hard:
        w_img = F.softmax(sim.float(), dim=1)
        w_txt = F.softmax(sim.T.float(), dim=1)[image_index]
    else:
        w_img = torch.ones(sim.shape, device=sim.device)
        w_txt = torch.ones(len(image_index), len(image_index), device=sim.device)
    return w_img.masked_fill(own, 0), w_txt.masked_fill(same, 0)


class ChunkObjective(Objective):
    method = "chunk"
    loss_config = ChunkLoss
    reads_stem_features = True

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.weights = dataclasses.asdict(
            from_mapping(ChunkLoss, config.loss, "recipe: loss", ChunkLoss.check))
        self.swap_table = build_swap_table(SHAPES_REF_SWAPS)

    def _itc(self, img_f, txt_f, image_index) -> tuple[torch.Tensor, torch.Tensor]:
        temp = self.model.temp.clamp(0.001, 0.5)
        sim = txt_f @ img_f.T / temp  # [B_txt, B_img]
        t2i = F.cross_entropy(sim, image_index)
        positives = F.one_hot(image_index, img_f.shape[0]).T.float()  # [B_img, B_txt]
        target = positives / positives.sum(dim=1, keepdim=True).clamp(min=1)
        has_text = positives.sum(dim=1) > 0
        i2t = -(F.log_softmax(sim.T, dim=1) * target).sum(dim=1)[has_text].mean()
        return (t2i + i2t) / 2, sim

    def forward(self, batch) -> dict[str, torch.Tensor]:
        w = self.weights
        m = self.model
        ids, mask = batch.text.input_ids, batch.text.attention_mask
        image_index = batch.image_index
        img = m.encode_image(batch.pixel_values, stem_features=batch.stem_features).tokens
        # img: [B_img, 1+N, D]
        txt = m.encode_text(ids, mask)  # [B_txt, L, D]
        img_f, txt_f = m.contrastive_features(img, txt)
        itc, sim = self._itc(img_f, txt_f, image_index)

        chunk_on = self.step >= int(w["chunk_losses_from_step"])
        need_cam = chunk_on and (w["intra"] or w["inter"] or w["box"] or w["semi"])
        img_pos = IndexedImages(img, image_index)  # keys/values projected once per image
        if need_cam:
            cam = compute_gradcam(
                m, img_pos, ids, mask, layer=w["gradcam_layer"], create_graph=True,
                text_hidden=txt,
            )
            pos_logits = cam.itm_logits
        else:
            pos_logits = m.itm_logits(m.fuse(txt, mask, img_pos).hidden)

        # ITM negatives from the batch: uniform first, then weighted by the detached
        # contrastive similarity (hard); an image's own texts are never its negatives.
        # the objects of each image, when false negatives are filtered (read once a step)
        scenes = (batch_scenes(self.train_stages(), self.step, batch)
                  if w["filter_false_negatives"] else None)
        with torch.no_grad():
            hard = self.step >= int(w["hard_negatives_from_step"])
            w_img, w_txt = negative_weights(sim, image_index, hard)
            if scenes is not None:
                possible = describable(batch.text.texts, scenes).to(w_img.device)
                w_img, w_txt = drop_describable(w_img, w_txt, possible, image_index)
            neg_img = _sample_rows(w_img)
            neg_txt = _sample_rows(w_txt)
        # Both kinds of negative pair go through the fusion layers in one call, so each
        # image's keys and values are projected once for all of them.
        rows_i = (neg_img >= 0).nonzero().squeeze(1)
        rows_t = (neg_txt >= 0).nonzero().squeeze(1)
        texts = torch.cat([rows_i, neg_txt[rows_t]])
        images = torch.cat([neg_img[rows_i], image_index[rows_t]])
        logits, labels = [pos_logits], [torch.ones_like(image_index)]
        if len(texts):
            out = m.fuse(txt[texts], mask[texts], IndexedImages(img, images))
            logits.append(m.itm_logits(out.hidden))
            labels.append(torch.zeros_like(texts))
        if w["text_negatives"]:
            neg_logits = self._perturbed_logits(batch.text.texts, scenes, img, image_index)
            if neg_logits is not None:
                logits.append(neg_logits)
                labels.append(torch.zeros(len(neg_logits), dtype=torch.long, device=self.device))
        logits_all, labels_all = torch.cat(logits), torch.cat(labels)
        itm = F.cross_entropy(logits_all.float(), labels_all)
        itm_acc = (logits_all.argmax(dim=1) == labels_all).float().mean()

        total = float(w["itc"]) * itc + float(w["itm"]) * itm
        terms = {"itc": itc.detach(), "itm": itm.detach(), "itm_acc": itm_acc}
        if need_cam:
            chunks = chunk_batch(batch.text, self.tokenizer)
            include = chunks.include if w["exclude_negation"] else None
            if w["intra"]:
                intra = intra_chunk_loss_batch(cam.maps, chunks.position_chunks, include)
                total = total + float(w["intra"]) * intra
                terms["intra"] = intra.detach()
            if w["inter"]:
                inter = inter_chunk_loss_batch(
                    cam.maps, chunks.position_chunks, chunks.adjacency, include, tau=w["tau"],
                    pixel_reduction=w["inter_reduction"],
                )
                total = total + float(w["inter"]) * inter
                terms["inter"] = inter.detach()
            if w["box"] or w["semi"]:
                final = sentence_map(cam.maps, default_word_mask(mask))
                if w["box"]:
                    boxes = torch.stack([_box_of(mk) for mk in batch.masks])
                    lb = box_loss(final, boxes)
                    total = total + float(w["box"]) * lb
                    terms["box"] = lb.detach()
                if w["semi"]:
                    labelled = _labelled(batch.sample_ids, float(w["semi_fraction"]))
                    ls = semi_loss(final, batch.masks.float(), labelled=labelled)
                    total = total + float(w["semi"]) * ls
                    terms["semi"] = ls.detach()
        return {"loss": total, **terms}

    def _perturbed_logits(
        self,
        texts: list[str],
        scenes: list | None,
        img: torch.Tensor,
        image_index: torch.Tensor,
    ) -> torch.Tensor | None:
        """ITM logits of each caption with one word swapped, against its own image (None
        when no caption has a swappable word). Seeded by the step, so a resumed run draws
        the same swaps. Given the ``scenes`` (each image's objects: false negatives are
        filtered), a swapped caption whose head phrase still fits an object of the image
        (e.g. "the red circle" -> "the blue circle" in a scene with a blue circle) is not
        used."""
        rng = random.Random(int(self.train_config.seed) * 1_000_003 + self.step)
        swapped = [perturb_caption(t, self.swap_table, rng) for t in texts]
        if scenes is not None:
            index = image_index.tolist()
            swapped = [None if t is None or may_describe(t, scenes[index[i]]) else t
                       for i, t in enumerate(swapped)]
        rows = [i for i, t in enumerate(swapped) if t is not None]
        if not rows:
            return None
        tb = self.tokenizer([swapped[i] for i in rows]).to(self.device)
        m = self.model
        txt = m.encode_text(tb.input_ids, tb.attention_mask)
        index = image_index[torch.tensor(rows, device=image_index.device)]
        out = m.fuse(txt, tb.attention_mask, IndexedImages(img, index))
        return m.itm_logits(out.hidden)

    @torch.no_grad()
    def validate(self, limit: int) -> dict[str, float]:
        from .validation import matching_metrics

        metrics = matching_metrics(self, limit)
        metrics.update(localisation_metrics(self, limit))
        return metrics


def _box_of(mask: torch.Tensor) -> torch.Tensor:
    """The filled bounding box of a bool mask, as a float mask (the box supervision)."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    out = torch.zeros_like(mask, dtype=torch.float32)
    if len(ys):
        out[int(ys.min()) : int(ys.max()) + 1, int(xs.min()) : int(xs.max()) + 1] = 1.0
    return out


def _labelled(sample_ids: list[str], fraction: float) -> torch.Tensor:
    """The same share of the training set is labelled at every step (semi supervision):
    a sample is labelled when a stable hash of its id falls below ``fraction``."""
    import zlib

    return torch.tensor([zlib.crc32(i.encode()) / 2**32 < fraction for i in sample_ids])
