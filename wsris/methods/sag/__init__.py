"""Shatter and Gather (Kim et al. 2023): slot attention over ViT tokens, gathered by text.

Inference (:mod:`.pipeline`): the image is shattered into slots (:mod:`wsris.methods.sag.slots`)
and each slot's map is weighted by how well it matches the expression. Training
(:mod:`.objective`, :mod:`.losses`): the C^3 contrastive loss plus slot reconstruction.
:mod:`.convert` reads the official SaG checkpoints.
"""

from __future__ import annotations

from ...registry import Converter, MethodSpec, register_method

SPEC = register_method(MethodSpec(
    name="sag",
    title="Shatter and Gather: slot attention gathered by text (Kim et al. 2023)",
    paper="Kim et al. 2023, Shatter and Gather: Learning Referring Image Segmentation "
    "with Text Supervision (ICCV 2023)",
    config_class="wsris.methods.sag.model:SagConfig",
    model_class="wsris.methods.sag.model:SagModel",
    presets=("paper", "tiny"),
    pipeline="wsris.methods.sag.pipeline",
    options=frozenset({"combine", "slot_init", "num_samples", "seed", "slot_split"}),
    defaults={
        "preprocessing": {"mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"},
        "text": {"style": "bert", "max_length": 40},
        "inference": {"threshold": 0.5, "combine": "product", "slot_init": "sample",
                      "num_samples": 1, "seed": 0},
    },
    variants={
        "product": {"combine": "product"},
        "max": {"combine": "max"},
        "avg": {"combine": "avg"},
        "min": {"combine": "min"},
        # deterministic slot initialisations, measured against the paper's sampling
        "mean-init": {"slot_init": "mean"},
        "sample-init": {"slot_init": "sample", "seed": 0, "num_samples": 1},
        "sample3-init": {"slot_init": "sample", "seed": 0, "num_samples": 3},
        # the official evaluation's behaviour: fresh noise at every call (not reproducible)
        "fresh-init": {"slot_init": "fresh"},
        # departure: a slot's connected pieces as entities (or not, whatever the model's)
        "pieces": {"slot_split": "pieces"},
        "whole-slots": {"slot_split": "none"},
    },
    variant_help="sag: product | max | avg | min (A^fuse.A^slot, MAX, AVG, MIN), "
    "mean-init | sample-init | sample3-init | fresh-init (slots from the Gaussian means, "
    "one seeded draw, three seeded draws averaged, fresh noise per call), pieces | "
    "whole-slots (a slot's connected pieces as entities, or the slots themselves)",
    objective="wsris.methods.sag.objective:SagObjective",
    converters={"sag": Converter("wsris.methods.sag.convert:convert_sag",
                                 "wsris.methods.sag.convert_cli:sag_command")},
))
