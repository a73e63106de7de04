"""``--variant`` names -> method options: a module of plain data, so that the command
line can list the choices without importing the evaluation code (NumPy, OpenCV, the
datasets)."""

from __future__ import annotations

from typing import Any

#: ``--variant`` -> method options, per method (the papers' ablations).
METHOD_VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "chunk": {
        "gradcam": {"stages": ("gradcam",)},
        "affinity": {"stages": ("gradcam", "affinity")},
        "proposals": {"stages": ("gradcam", "affinity", "proposals")},
    },
    "sag": {
        "product": {"combine": "product"},
        "max": {"combine": "max"},
        "avg": {"combine": "avg"},
        "min": {"combine": "min"},
        # deterministic slot initialisations (issue: measure both, document the choice)
        "mean-init": {"slot_init": "mean"},
        "sample-init": {"slot_init": "sample", "seed": 0, "num_samples": 1},
        "sample3-init": {"slot_init": "sample", "seed": 0, "num_samples": 3},
    },
}
