"""Measured what-ifs: changes outside the benchmarks that would make wsris faster, tried
here without touching the library (a patch on one model instance, or another process
environment), with their effect and a check that the maps stay the same.

* ``text_grouping``: encode a SaG batch of expressions in groups of equal token length
  instead of one batch padded to the longest (the padding is computed and thrown away);
* ``omp_wait_policy``: one process of the tiny SaG model with PyTorch's default OpenMP
  waiting (threads spin) against ``OMP_WAIT_POLICY=PASSIVE``, on this machine's load.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import torch

from .common import interleaved, rounded
from .methods import COMPARED_MAPS, map_differences
from .models import REPO, BenchModel


@contextlib.contextmanager
def grouped_text_encoding(model: Any) -> Iterator[None]:
    """Make ``model.encode_text`` (this instance only) run each group of equal-length
    expressions without padding and put the rows back in order."""
    original = model.encode_text

    def encode_text(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lengths = attention_mask.sum(dim=1)
        rows: list[torch.Tensor | None] = [None] * input_ids.shape[0]
        for length in lengths.unique().tolist():
            idx = torch.nonzero(lengths == length).flatten()
            out = original(input_ids[idx, :length], attention_mask[idx, :length])
            for k, i in enumerate(idx.tolist()):
                rows[i] = out[k]
        return torch.stack([r for r in rows if r is not None])

    model.encode_text = encode_text
    try:
        yield
    finally:
        del model.encode_text  # back to the class's method


def text_grouping(bm: BenchModel, count: int = 16, reps: int = 5, warmup: int = 1) -> dict:
    """SaG with ``count`` expressions: one padded text batch vs equal-length groups."""
    seg = bm.segmenter
    texts = bm.texts[:count]
    batch = seg.tokenizer(texts)
    real = int(batch.attention_mask.sum())
    padded = batch.attention_mask.numel()
    base = seg.segment(bm.image, texts)
    with grouped_text_encoding(seg.model):
        grouped = seg.segment(bm.image, texts)

    def run_grouped() -> Any:
        with grouped_text_encoding(seg.model):
            return seg.segment(bm.image, texts)

    comp = interleaved({"padded": lambda: seg.segment(bm.image, texts), "grouped": run_grouped},
                       reps, warmup, seg.device)
    return {
        "expressions": count,
        "tokens_real": real,
        "tokens_computed_padded": padded,
        "groups": int(batch.attention_mask.sum(dim=1).unique().numel()),
        "seconds_padded": rounded(comp.median("padded")),
        "seconds_grouped": rounded(comp.median("grouped")),
        "speedup": rounded(comp.speedup("padded", "grouped"), 3),
        "speedup_paired": rounded(comp.paired_speedup("padded", "grouped"), 3),
        "maps": map_differences(base, grouped, COMPARED_MAPS["sag"]),
    }


_PROBE = """
import json, statistics, sys, time
import torch
from benchmarks.models import build
bm = build("sag", "tiny", "cpu")
for _ in range(3):
    bm.segmenter.segment(bm.image, bm.texts[:1])
times = []
for _ in range(int(sys.argv[1])):
    t0 = time.perf_counter()
    bm.segmenter.segment(bm.image, bm.texts[:1])
    times.append(time.perf_counter() - t0)
print(json.dumps({"seconds": statistics.median(times), "threads": torch.get_num_threads()}))
"""


def _probe(policy: str | None, threads: int | None, runs: int) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(runs)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"omp_wait_policy": policy or "(unset)", "threads": out["threads"],
            "seconds_per_call": rounded(out["seconds"])}


def omp_wait_policy(runs: int = 15) -> dict[str, Any]:
    """Tiny SaG, one expression per call, in fresh processes: default OpenMP waiting vs
    passive waiting, with torch's default threads and with one thread."""
    cases = [(None, None), ("PASSIVE", None), (None, 1), ("PASSIVE", 1)]
    out = [_probe(policy, threads, runs) for policy, threads in cases]
    default = out[0]["seconds_per_call"]
    for case in out:
        case["relative_to_default"] = rounded(case["seconds_per_call"] / default, 3)
    return {"model": "sag/tiny, 1 expression per call", "runs": runs, "cases": out,
            "load_average": [round(x, 2) for x in os.getloadavg()]}
