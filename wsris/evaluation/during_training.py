"""Localisation metrics of a model while it trains: what the methods' training
objectives report at each validation step, beside their own metrics.

Here, above both the training loop and the API, so that training itself needs neither:
a method's objective calls :func:`localisation_metrics` from its ``validate``.
"""

from __future__ import annotations

from typing import Any

from ..api import Segmenter
from .loop import evaluate


def localisation_metrics(objective: Any, limit: int, **options: Any) -> dict[str, float]:
    """mIoU and Pr@0.5 of ``objective``'s current model on its validation data (first
    ``limit`` samples), beside the trivial baselines' mIoU, and mIoU per expression kind;
    empty without validation data. ``options`` are inference options of the method."""
    data = objective.val_dataset()
    if data is None:
        return {}
    config = objective.model_config
    model_name = config.get("name", f"{objective.train_config.method}-trained")
    segmenter = Segmenter(objective.model, config, name=model_name, device=objective.device)
    was_training = objective.model.training
    objective.model.eval()
    report = evaluate(data, segmenter, method_options=options, limit=limit, progress=False)
    objective.model.train(was_training)
    model = report.metrics["model"]
    out = {"mIoU": model["mIoU"], "Pr@0.5": model["Pr@0.5"]}
    for baseline, m in report.metrics.items():
        if baseline != "model":
            out[f"mIoU_{baseline}"] = m["mIoU"]
    for kind, per in report.by_kind.items():
        out[f"mIoU_{kind}"] = per["model"]["mIoU"]
    return out
