"""Convert an official Shatter and Gather training output (``model_best.pth.tar``).

The official code (github: kdwonn/SaG) saves ``{"model": state_dict, "iou": ..., "loss":
..., "epoch": ..., "args": argparse.Namespace}`` (:mod:`.checkpoint` reads it with no code
run). No trained SaG weights were ever published, so this converter is for people who
train with the official code and want to use the result here. It is tested on files
written the way the official ``save_ckpt`` writes them, with synthetic weights under the
official names and shapes (``tests/test_convert_sag.py``); ``docs/fidelity.md`` says how
the converted model was checked against the official forward pass.

Where the official names come from
----------------------------------
``reference/sag-official.md`` names the four top-level prefixes (``encoders.img_enc.*``,
``encoders.txt_enc.*``, ``cma.*``, ``decoder.*``), the weight-shared aggregation blocks
stored under every iteration index and the 480-px position grid. The names BELOW those
prefixes are the attribute paths of the official modules as built by the official
training scripts (``train_eval_*.sh``: ``--agg_pre_norm`` without post-norm,
``--agg_last_fc --agg_last_ln``, ``--agg_self_per_cross_attn 1``, ``--agg_cross_attn_type
slot``, ``--agg_pos_enc sine``, ``--cma_heads 4 --cma_head_dim 256``, the default
``--recon_decoder mlp`` with ``--decoder_pos_enc learned`` and no decoder self-attention,
``--txt_pooling cls``). They are collected in :data:`KEY_MAP` and :data:`DROPPED`, the one
place to change if a checkpoint uses another layout.

What no shape stores (the slot count ``K`` and grouping, the slot type, the input size,
the head counts, the text normalisation, the threshold) is read from the checkpoint's
``args`` (:mod:`.official_args`, which also refuses flags that build another forward
pass); without ``args`` the official scripts' values are assumed and the converted
``config.json`` lists them under ``source.assumed``. Beyond that:

* the official ViT is built for 480 px and resizes its 30x30 position grid to the input's
  grid on every forward (bilinear, ``align_corners=False``); the converter does that resize
  once, for ``image_size``;
* the official ViT's LayerNorms use PyTorch's default eps 1e-5 (timm's use 1e-6): the
  converted config sets ``vision_layer_norm_eps=1e-5``; its slot attention adds 1e-7 before the
  renormalisation over the pixels: ``slot_attention_eps=1e-7``;
* text is cut only at BERT's position limit (the official code never truncates);
* ``random`` slots: the official code's noise scale is ``exp(log_sigma)`` for random slots
  but ``exp(log_sigma / 2)`` for entity slots; ours is ``exp(log_sigma / 2)`` for both, so a
  random-slot checkpoint's ``log_sigma`` is doubled;
* the initial slots are one seeded draw (``slot_init: sample``, seed 0): ``K`` distinct,
  reproducible slots. The official evaluation draws fresh noise at every call
  (``slot_init: fresh`` here); the Gaussian means would give only ``Kg`` distinct slots.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from ...backbones.vit import resize_pos_embed
from ...errors import WeightsMismatchError
from ...weights.checksums import sha256_file
from ...weights.state_dicts import check_state_dict, conversion_paths
from .checkpoint import read_official_checkpoint
from .config import OFFICIAL_SLOT_ATTENTION_EPS
from .model import SagConfig, SagModel
from .official_args import OfficialSettings, settings_from_args

IMG = r"encoders\.img_enc\."
VIT = IMG + r"img_backbone\."
SPM = IMG + r"set_pred_module\."
AGG = SPM + r"agg\."
BLK = AGG + r"agg_blocks\.(?P<it>\d+)\."  # one copy per iteration (weights shared)
TXT = r"encoders\.txt_enc\."
WB = r"(?P<p>weight|bias)"

# Official name (regex, full match) -> our name (``str.format`` with the named groups).
# ``it`` is the iteration index of a weight-shared aggregation block: every index must
# hold an identical copy, and one copy is kept.
KEY_MAP: list[tuple[str, str]] = [
    # --- ViT (Segmenter-style names, identical to timm's below the backbone prefix)
    (VIT + r"(?P<n>cls_token|pos_embed)", "image_encoder.{n}"),
    (VIT + r"patch_embed\.proj\." + WB, "image_encoder.patch_embed.proj.{p}"),
    (
        VIT
        + r"blocks\.(?P<b>\d+)\.(?P<m>norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\."
        + WB,
        "image_encoder.blocks.{b}.{m}.{p}",
    ),
    (VIT + r"norm\." + WB, "image_encoder.norm.{p}"),
    (IMG + r"spm_1x1\." + WB, "image_proj.{p}"),
    # --- initial slots
    (AGG + r"queries\.slots_mu", "slot_init.mu"),
    (AGG + r"queries\.slots_log_sigma", "slot_init.log_sigma"),
    (AGG + r"queries\.params", "slot_init.queries"),
    # --- aggregation block: [0] PreNorm(slot attention), [2] PreNorm(feed-forward)
    (BLK + r"0\.norm\." + WB, "aggregation.norm_slots.{p}"),
    (BLK + r"0\.norm_context\." + WB, "aggregation.norm_inputs.{p}"),
    (BLK + r"0\.fn\.to_(?P<x>q|k|v)\.weight", "aggregation.to_{x}.weight"),
    (BLK + r"0\.fn\.to_out\.0\." + WB, "aggregation.to_out.{p}"),
    (BLK + r"2\.norm\." + WB, "aggregation.norm_mlp.{p}"),
    (BLK + r"2\.fn\.net\.0\." + WB, "aggregation.mlp.fc1.{p}"),
    (BLK + r"2\.fn\.net\.3\." + WB, "aggregation.mlp.fc2.{p}"),
    # --- interaction: [4][j] = (PreNorm(self-attention), -, PreNorm(feed-forward), -)
    (BLK + r"4\.(?P<j>\d+)\.0\.norm\." + WB, "interaction.layers.{j}.norm_attn.{p}"),
    (
        BLK + r"4\.(?P<j>\d+)\.0\.fn\.to_(?P<x>q|k|v)\.weight",
        "interaction.layers.{j}.attn.to_{x}.weight",
    ),
    (BLK + r"4\.(?P<j>\d+)\.0\.fn\.to_out\.0\." + WB, "interaction.layers.{j}.attn.to_out.{p}"),
    (BLK + r"4\.(?P<j>\d+)\.2\.norm\." + WB, "interaction.layers.{j}.norm_mlp.{p}"),
    (BLK + r"4\.(?P<j>\d+)\.2\.fn\.net\.0\." + WB, "interaction.layers.{j}.mlp.fc1.{p}"),
    (BLK + r"4\.(?P<j>\d+)\.2\.fn\.net\.3\." + WB, "interaction.layers.{j}.mlp.fc2.{p}"),
    # --- slot output: Linear (agg.last_layer[1]) then LayerNorm (set_pred_module)
    (AGG + r"last_layer\.1\." + WB, "slot_head.proj.{p}"),
    (SPM + r"residual_norm\." + WB, "slot_head.norm.{p}"),
    # --- text: Hugging Face BertModel names
    (TXT + r"bert\.(?P<n>(?:embeddings|encoder)\..+)", "text_encoder.{n}"),
    (TXT + r"linear\." + WB, "text_proj.{p}"),
    # --- modality fusion: TransformerLayer(attn=PreNorm(cross-attention), ff=PreNorm(FF))
    (r"cma\.attn\.norm\." + WB, "fusion.norm_query.{p}"),
    (r"cma\.attn\.norm_context\." + WB, "fusion.norm_context.{p}"),
    (r"cma\.attn\.fn\.to_(?P<x>q|k|v)\.weight", "fusion.attn.to_{x}.weight"),
    (r"cma\.attn\.fn\.to_out\.0\." + WB, "fusion.attn.to_out.{p}"),
    (r"cma\.ff\.norm\." + WB, "fusion.norm_mlp.{p}"),
    (r"cma\.ff\.fn\.net\.0\." + WB, "fusion.mlp.fc1.{p}"),
    (r"cma\.ff\.fn\.net\.3\." + WB, "fusion.mlp.fc2.{p}"),
    # --- reconstruction decoder (MlpDecoder)
    (r"decoder\.pos_emb\.(?P<n>row_embed|col_embed)\.weight", "decoder.pos.{n}.weight"),
    (r"decoder\.mlp\.(?P<i>\d+)\." + WB, "decoder.mlp.{i}.{p}"),
]

# Official parameters that the official forward pass never uses (or that we do not).
DROPPED: list[tuple[str, str]] = [
    (VIT + r"head\." + WB, "ViT classifier head: only patch tokens are used"),
    (IMG + r"residual_fc\." + WB, "global residual branch, unused without --agg_residual"),
    (SPM + r"fc\." + WB, "built by --agg_last_fc but never called in forward"),
    (TXT + r"bert\.pooler\.dense\." + WB, "BERT pooler: the [CLS] hidden state is used"),
    (TXT + r"bert\.embeddings\.position_ids", "buffer saved by older transformers versions"),
]

_KEY_MAP = [(re.compile(p), t) for p, t in KEY_MAP]
_DROPPED = [(re.compile(p), why) for p, why in DROPPED]
VIT_HEAD_DIM = 64
BERT_HEAD_DIM = 64


def _state_dict(ckpt: Any, src: Path) -> dict[str, torch.Tensor]:
    if not isinstance(ckpt, dict) or "model" not in ckpt or not isinstance(ckpt["model"], dict):
        raise WeightsMismatchError(
            f"{src}: expected an official SaG checkpoint, a dict with a 'model' state dict"
        )
    state = {}
    for k, v in ckpt["model"].items():
        if not torch.is_tensor(v):
            raise WeightsMismatchError(f"{src}: 'model' entry {k!r} is not a tensor")
        state[k[len("module.") :] if k.startswith("module.") else k] = v
    return state


def map_official_keys(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str], int]:
    """Rename official keys to ours. Returns (our state dict, dropped official keys,
    number of aggregation iterations). Raises :class:`WeightsMismatchError` for official
    keys that match no rule, and for weight-shared copies that differ."""
    ours: dict[str, torch.Tensor] = {}
    shared: dict[str, dict[int, tuple[str, torch.Tensor]]] = defaultdict(dict)
    dropped: list[str] = []
    unknown: list[str] = []
    for key, value in state.items():
        if any(rx.fullmatch(key) for rx, _ in _DROPPED):
            dropped.append(key)
            continue
        for rx, template in _KEY_MAP:
            m = rx.fullmatch(key)
            if m:
                groups = m.groupdict()
                target = template.format(**groups)
                if groups.get("it") is not None:
                    shared[target][int(groups["it"])] = (key, value)
                else:
                    ours[target] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise WeightsMismatchError(
            "official checkpoint has keys that the SaG mapping does not know "
            f"(unexpected): {sorted(unknown)}"
        )
    iterations = {len(copies) for copies in shared.values()}
    indices = {tuple(sorted(copies)) for copies in shared.values()}
    if len(iterations) > 1 or len(indices) > 1:
        raise WeightsMismatchError(
            "weight-shared aggregation blocks are not stored under the same iteration "
            f"indices for every parameter: {sorted(indices)}"
        )
    differing = []
    for target, copies in sorted(shared.items()):
        (_, first), *rest = [copies[i] for i in sorted(copies)]
        for name, value in rest:
            if value.shape != first.shape or not torch.equal(value, first):
                differing.append(name)
        ours[target] = first
    if differing:
        raise WeightsMismatchError(
            "the aggregation blocks should share weights across iterations, but these "
            f"copies differ from iteration 0: {differing}"
        )
    return ours, sorted(dropped), (iterations.pop() if iterations else 0)


def _max_index(state: dict[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    found = [int(m.group(1)) for k in state if (m := rx.match(k))]
    if not found:
        raise WeightsMismatchError(f"no keys match {pattern!r}")
    return max(found) + 1


def infer_config(
    ours: dict[str, torch.Tensor],
    iterations: int,
    settings: OfficialSettings | None = None,
) -> SagConfig:
    """A :class:`SagConfig` from the shapes of a mapped state dict plus ``settings``, the
    sizes that no shape stores (head counts, K, image size, ...). Values ``settings``
    leaves open are derived here and ``settings.origin`` says how."""
    settings = settings or OfficialSettings()
    origin = settings.origin

    def shape(key: str) -> tuple[int, ...]:
        if key not in ours:
            raise WeightsMismatchError(f"official checkpoint lacks the parameter for {key}")
        return tuple(ours[key].shape)

    vision_width = shape("image_encoder.cls_token")[-1]
    patch = shape("image_encoder.patch_embed.proj.weight")[-1]
    text_vocab, text_width = shape("text_encoder.embeddings.word_embeddings.weight")
    dim = shape("image_proj.weight")[0]
    num_slots, slots_per_group = settings.num_slots, settings.slots_per_group
    stored = "query" if "slot_init.queries" in ours else "entity or random"
    slot_type = settings.slot_type or ("query" if stored == "query" else "entity")
    if settings.slot_type is None:
        origin["slot_type"] = (
            "the file (it holds slot queries)" if stored == "query"
            else "assumed (entity; random slots are stored alike)"
        )
    if (slot_type == "query") != (stored == "query"):
        raise WeightsMismatchError(f"{slot_type} slots, but the file holds {stored} slots")
    k = shape("slot_init.queries")[0] if slot_type == "query" else num_slots
    if slot_type == "query" and k != num_slots and not origin["num_slots"].startswith("assumed"):
        raise WeightsMismatchError(f"the file holds {k} slot queries, K is {num_slots}")
    if slot_type == "entity":
        kg = shape("slot_init.mu")[1]
        if slots_per_group is None:
            slots_per_group, origin["slots_per_group"] = num_slots // kg, "K / Kg"
        ks = slots_per_group
    else:
        if slots_per_group is None:
            raise WeightsMismatchError(
                f"a {slot_type}-slot checkpoint needs slots_per_group (--cascade_factor)"
            )
        ks, kg = slots_per_group, k // slots_per_group
        if slot_type == "random" and shape("slot_init.mu")[1] != 1:
            raise WeightsMismatchError("random slots need a single Gaussian in slots_mu")
    if kg * ks != k:
        raise WeightsMismatchError(
            f"K={k} slots cannot be split into groups of {ks} over {kg} Gaussian(s)/groups"
        )
    vision_heads = settings.vision_heads
    if vision_heads is None:
        vision_heads = max(vision_width // VIT_HEAD_DIM, 1)
        origin["vision_heads"] = "assumed (64-dim heads)"
    ff = shape("aggregation.mlp.fc1.weight")[0]
    for other in ("fusion.mlp.fc1.weight", "interaction.layers.0.mlp.fc1.weight"):
        if shape(other)[0] != ff:
            raise WeightsMismatchError(
                f"{other} has feed-forward width {shape(other)[0]}, the aggregation {ff}: "
                "one mlp_ratio for all blocks is required"
            )
    dec = sorted(
        int(m.group(1)) for key in ours if (m := re.fullmatch(r"decoder\.mlp\.(\d+)\.weight", key))
    )
    if not dec:
        raise WeightsMismatchError("official checkpoint has no decoder.mlp weights")
    dec_out = shape(f"decoder.mlp.{dec[-1]}.weight")[0]
    if dec_out != vision_width + 1:
        raise WeightsMismatchError(
            f"decoder outputs {dec_out} channels; expected ViT width + 1 = {vision_width + 1}"
        )
    learned = "decoder.pos.row_embed.weight" in ours
    cfg = SagConfig(
        image_size=settings.image_size,
        patch_size=patch,
        vision_width=vision_width,
        vision_layers=_max_index(ours, r"image_encoder\.blocks\.(\d+)\."),
        vision_heads=vision_heads,
        vision_mlp_ratio=shape("image_encoder.blocks.0.mlp.fc1.weight")[0] / vision_width,
        vision_layer_norm_eps=1e-5,  # the official ViT's nn.LayerNorm default
        text_vocab_size=text_vocab,
        text_width=text_width,
        text_layers=_max_index(ours, r"text_encoder\.encoder\.layer\.(\d+)\."),
        text_heads=max(text_width // BERT_HEAD_DIM, 1),
        text_intermediate=shape("text_encoder.encoder.layer.0.intermediate.dense.weight")[0],
        text_max_positions=shape("text_encoder.embeddings.position_embeddings.weight")[0],
        text_type_vocab_size=shape("text_encoder.embeddings.token_type_embeddings.weight")[0],
        text_norm=settings.text_norm,
        dim=dim,
        agg_hidden=shape("aggregation.to_q.weight")[0],
        agg_heads=settings.agg_heads,
        mlp_ratio=ff // dim,
        interaction_hidden=shape("interaction.layers.0.attn.to_q.weight")[0],
        interaction_heads=settings.interaction_heads,
        interaction_layers=_max_index(ours, r"interaction\.layers\.(\d+)\."),
        num_groups=kg,
        slots_per_group=ks,
        iterations=iterations,
        slot_type=slot_type,
        slot_head="slot_head.proj.weight" in ours,
        slot_attention_eps=OFFICIAL_SLOT_ATTENTION_EPS,
        dropout=settings.dropout,
        fusion_hidden=shape("fusion.attn.to_q.weight")[0],
        fusion_heads=settings.fusion_heads,
        decoder_layers=len(dec),
        decoder_hidden=shape("decoder.mlp.0.weight")[0],
        decoder_pos="learned" if learned else "sine",
        decoder_max_grid=shape("decoder.pos.row_embed.weight")[0] if learned else 50,
        recon_target="vit",
    )
    if ff % dim:
        raise WeightsMismatchError(f"feed-forward width {ff} is not a multiple of D={dim}")
    differing = [
        f"{name} {getattr(cfg, name)} (args say {want})"
        for name, want in settings.expected.items()
        if getattr(cfg, name) != want
    ]
    if differing:
        raise WeightsMismatchError(
            "the weights disagree with the checkpoint's args: " + ", ".join(differing)
        )
    try:
        cfg.validate()
    except ValueError as exc:
        raise WeightsMismatchError(f"inferred architecture is not valid: {exc}") from None
    return cfg


def saved_config(
    config: SagConfig,
    source: dict[str, Any] | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """The ``config.json`` of a converted SaG model folder."""
    out: dict[str, Any] = {
        "method": "sag",
        "architecture": config.to_dict(),
        "preprocessing": {
            "size": [config.image_size, config.image_size],
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "interpolation": "bilinear",
        },
        # the official code never truncates: BERT's position limit is the only cut
        "text": {"style": "bert", "max_length": config.text_max_positions},
        # one seeded draw: K distinct slots, the same masks on every run and device
        "inference": {"threshold": threshold, "combine": "product", "slot_init": "sample",
                      "num_samples": 1, "seed": 0},
        "card": {
            "recipe": "Trained with the official Shatter and Gather code (github: "
            "kdwonn/SaG) and converted with `wsris convert sag`.",
            "limits": "The initial slots are one draw of the slot noise from a CPU "
            "generator seeded with 0 (`slot_init: sample`, `seed: 0`): K distinct slots, "
            "the same masks on every run and device. The official evaluation draws "
            "fresh noise at every call, so its masks vary from call to call; "
            "`slot_init=\"fresh\"` does the same here. Other seeds: `seed=N`; "
            "averaging draws: `num_samples=N`.",
        },
    }
    if source:
        out["source"] = source
    return out


def convert_sag(
    src: Path,
    out_dir: Path,
    *,
    num_slots: int | None = None,
    image_size: int | None = None,
    slots_per_group: int | None = None,
    random_slots: bool = False,
    overwrite: bool = False,
) -> Path:
    """Convert an official ``model_best.pth.tar`` into ``out_dir`` (``config.json``,
    ``model.safetensors`` and a model card ``README.md``) and return ``out_dir``.

    The slot count, grouping and type, the input size, the head counts, the text
    normalisation and the threshold are read from the checkpoint's ``args``. For a file
    without ``args``, ``num_slots`` (K, ``--img_num_embeds``), ``image_size``
    (``--crop_size``), ``slots_per_group`` (``--cascade_factor``, needed for ``query`` and
    ``random`` slots) and ``random_slots`` (``--agg_query_type random``) give what it does
    not record; what nobody gives is assumed from the official scripts (36 slots, 384 px,
    4 heads, ...) and listed in ``config.json`` under ``source.assumed``. A given value
    that contradicts ``args`` is an error. An existing ``model.safetensors`` in
    ``out_dir`` is replaced only with ``overwrite=True``.
    """
    from safetensors.torch import save_file

    src, out_dir = conversion_paths(src, out_dir, overwrite)
    ckpt = read_official_checkpoint(src)
    state = _state_dict(ckpt, src)
    given = {
        "num_slots": num_slots,
        "image_size": image_size,
        "slots_per_group": slots_per_group,
        "slot_type": "random" if random_slots else None,
    }
    settings = settings_from_args(ckpt.get("args"), given)
    ours, dropped, iterations = map_official_keys(state)
    if iterations == 0:
        raise WeightsMismatchError(f"{src}: no aggregation blocks (agg_blocks.N.*) found")
    config = infer_config(ours, iterations, settings)
    if config.slot_type == "random":
        ours["slot_init.log_sigma"] = ours["slot_init.log_sigma"] * 2
    # the official ViT resizes its position grid bilinearly on every forward; once here
    ours["image_encoder.pos_embed"] = resize_pos_embed(
        ours["image_encoder.pos_embed"], config.grid_size, mode="bilinear"
    )
    with torch.device("meta"):
        model = SagModel(config)
    check_state_dict("converted SaG weights", model.state_dict(), ours)
    model.load_state_dict(ours, strict=True, assign=True)  # final check by PyTorch itself

    iou = ckpt.get("iou")
    source = {
        "converted_from": "official Shatter and Gather checkpoint",
        "file": src.name,
        "sha256": sha256_file(src),
        "val_iou": float(iou) if isinstance(iou, (int, float)) or hasattr(iou, "item") else None,
        "epoch": ckpt.get("epoch") if isinstance(ckpt.get("epoch"), int) else None,
        "has_args": ckpt.get("args") is not None,
        "settings": {name: settings.origin[name] for name in sorted(settings.origin)},
        "assumed": settings.assumed,
        "dropped_keys": dropped,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in ours.items()}
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    saved = saved_config(config, source, float(settings.threshold))
    (out_dir / "config.json").write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    from ...model_card import render_model_card

    (out_dir / "README.md").write_text(render_model_card(saved), encoding="utf-8")
    return out_dir
