"""The report of an evaluation run: figures, per-sample records, the printed table."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.base import ReferringDataset
from .metrics import THRESHOLDS

BASELINE_LABELS = {"model": "model", "random_object": "random object",
                   "all_objects": "all objects", "centre_box": "centred box"}

def sample_ref(dataset: ReferringDataset, index: int) -> dict[str, Any]:
    """Dataset name, ref id and sentence id of sample ``index`` (without decoding it
    where the dataset can say; else what the sample itself holds)."""
    if hasattr(dataset, "sample_ref"):
        return dataset.sample_ref(index)
    return {"dataset": getattr(dataset, "name", type(dataset).__name__), "ref_id": None,
            "sent_id": None, "image_id": None, "index": index}


def _describe(ref: dict[str, Any], index: int) -> str:
    parts = [str(ref.get("dataset"))]
    if ref.get("ref_id") is not None:
        parts.append(f"ref {ref['ref_id']}")
    if ref.get("sent_id") is not None:
        parts.append(f"sentence {ref['sent_id']}")
    parts.append(f"sample {index}")
    return ", ".join(parts)


SHOWN_SKIPPED = 10


def _fmt(x: float) -> str:
    return f"{100 * x:6.2f}"


@dataclass
class EvalReport:
    """Figures of a run: ``metrics[system]`` (``model`` and the baselines), the same per
    expression kind in ``by_kind[kind][system]``, and one record per sample."""

    meta: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    by_kind: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta, "metrics": self.metrics, "by_kind": self.by_kind,
                "samples": self.samples, "skipped": self.skipped}

    def save_json(self, path: str | Path) -> None:
        """Write the report; a temporary file renamed at the end, so an interrupted write
        never leaves a partial JSON behind."""
        import tempfile

        from ..safe_files import temp_prefix

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".part",
                                    dir=path.parent)
        os.close(fd)
        tmp = Path(name)  # a wsris-only name: a killed run's one is removed by the next
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def table(self) -> str:
        """All metrics (in %) of the model and the baselines, then mIoU per kind."""
        cols = ["mIoU", "cIoU", *[f"Pr@{t}" for t in THRESHOLDS], "precision", "recall"]
        heads = ["mIoU", "cIoU", *[f"Pr@{t:g}" for t in THRESHOLDS], "prec", "recall"]
        lines = [f"{'(%)':<14}{'n':>6} " + " ".join(f"{h:>6}" for h in heads)]
        for name, m in self.metrics.items():
            label = BASELINE_LABELS.get(name, name)
            lines.append(f"{label:<14}{int(m['n']):>6} " + " ".join(_fmt(m[c]) for c in cols))
        model = self.metrics.get("model", {})
        if "PointM" in model:
            lines.append(f"pointing (%): map peak in the target mask (PointM) "
                         f"{100 * model['PointM']:.2f}, in its box (PointB) "
                         f"{100 * model['PointB']:.2f}")
        if self.by_kind:
            lines.append("")
            lines.append("mIoU (%) by expression kind:")
            systems = list(self.metrics)
            lines.append(f"{'kind':<14}{'n':>6} "
                         + " ".join(f"{BASELINE_LABELS.get(s, s)[:13]:>13}" for s in systems))
            for kind, per in self.by_kind.items():
                n = int(next(iter(per.values()))["n"])
                lines.append(f"{kind:<14}{n:>6} "
                             + " ".join(f"{100 * per[s]['mIoU']:>13.2f}" for s in systems))
        if self.skipped:
            lines.append("")
            lines.append(f"skipped {len(self.skipped)} sample(s), left out of every figure:")
            for rec in self.skipped[:SHOWN_SKIPPED]:
                lines.append(f"  {_describe(rec, rec['index'])}: {rec['error'][:120]}")
            if len(self.skipped) > SHOWN_SKIPPED:
                lines.append(f"  ... and {len(self.skipped) - SHOWN_SKIPPED} more (in the JSON)")
        return "\n".join(lines)
