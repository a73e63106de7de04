"""TRIS (Liu et al. 2023): referring segmentation from text supervision, CLIP RN50.

Stage 1 (:class:`.model.TrisModel` with ``stage=1``) scores every pixel of CLIP's last
feature map against the sentence feature; stage 2 is a segmentation network trained on
pseudo masks made from stage 1's maps. Inference (:mod:`.pipeline`) runs either stage
with the official pre- and post-processing (:mod:`.preprocessing`) and CLIP's BPE
tokenizer (:mod:`.tokenizer`). :mod:`.convert` reads the released checkpoints. There is
no training objective here: the released weights are the way to get a model.
"""

from __future__ import annotations

from ...registry import Converter, MethodSpec, register_method

SPEC = register_method(MethodSpec(
    name="tris",
    title="TRIS: CLIP-RN50 text-to-pixel response maps and a segmenter trained on them "
    "(Liu et al. 2023)",
    paper="Liu et al. 2023, Referring Image Segmentation Using Text Supervision (ICCV 2023)",
    config_class="wsris.methods.tris.model:TrisConfig",
    model_class="wsris.methods.tris.model:TrisModel",
    presets=("stage1", "stage2", "tiny"),
    pipeline="wsris.methods.tris.pipeline",
    options=frozenset({"mask_rule"}),
    defaults={
        "preprocessing": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                          "interpolation": "bilinear"},
        "text": {"style": "clip", "max_length": 20},
        "inference": {"threshold": 0.5, "mask_rule": "official"},
    },
    variants={"official": {"mask_rule": "official"}, "threshold": {"mask_rule": "threshold"}},
    variant_help="tris: official | threshold (TRIS's mask rule: positive map values; or "
    "the min-max normalised map at --threshold)",
    tokenizer="wsris.methods.tris.tokenizer:ClipTokenizer.from_config",
    converters={"tris": Converter("wsris.methods.tris.convert:convert_tris",
                                  "wsris.methods.tris.convert_cli:tris_command")},
))
