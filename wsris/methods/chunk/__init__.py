"""Chunk consistency (Lee et al. 2023) on ALBEF: Grad-CAM of each noun chunk, refined.

Inference (:mod:`.pipeline`): Grad-CAM on a fusion layer's cross-attention, averaged over
the expression's words, refined with ViT patch affinity, then matched to a mask proposal.
Training (:mod:`.objective`, :mod:`.losses`): ALBEF's ITM loss plus the paper's intra-,
inter-chunk and region consistency terms over spaCy noun chunks (:mod:`.noun_chunks`).
:mod:`.convert` reads the official ALBEF checkpoints.
"""

from __future__ import annotations

from ...registry import Converter, MethodSpec, register_method

ALBEF_MEAN = [0.48145466, 0.4578275, 0.40821073]
ALBEF_STD = [0.26862954, 0.26130258, 0.27577711]

SPEC = register_method(MethodSpec(
    name="chunk",
    title="ALBEF Grad-CAM with intra- and inter-chunk consistency (Lee et al. 2023)",
    paper="Lee et al. 2023, Weakly Supervised Referring Image Segmentation with "
    "Intra-Chunk and Inter-Chunk Consistency (ICCV 2023)",
    config_class="wsris.methods.chunk.model:AlbefConfig",
    model_class="wsris.methods.chunk.model:AlbefModel",
    presets=("base", "tiny"),
    pipeline="wsris.methods.chunk.pipeline",
    options=frozenset({
        "stages", "gradcam_layer", "affinity_layer", "proposal_tau", "max_proposals",
        "average", "proposal_select", "proposal_min_area", "map_sigma",
    }),
    defaults={
        "preprocessing": {"mean": ALBEF_MEAN, "std": ALBEF_STD, "interpolation": "bicubic"},
        "text": {"style": "albef", "max_length": 40, "max_words": 30},
        "inference": {"threshold": 0.3, "stages": ["gradcam", "affinity", "proposals"],
                      "proposal_tau": 0.3},
    },
    variants={
        "gradcam": {"stages": ("gradcam",)},
        "affinity": {"stages": ("gradcam", "affinity")},
        "proposals": {"stages": ("gradcam", "affinity", "proposals")},
    },
    variant_help="chunk: gradcam | affinity | proposals (Grad-CAM only, + affinity, "
    "+ proposals)",
    threshold_meaning="with the proposals stage (on by default) the mask is the mask "
    "proposal that best matches the heat map (the rule proposal_select names), "
    "and the threshold is used only when no proposal is chosen; without proposals the "
    "mask is the heat map at or above the threshold",
    mask_stage="proposals",
    objective="wsris.methods.chunk.objective:ChunkObjective",
    converters={"albef": Converter("wsris.methods.chunk.convert:convert_albef",
                                   "wsris.methods.chunk.convert_cli:albef_command")},
))
