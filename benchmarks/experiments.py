"""Measured what-ifs: changes outside the benchmarks that would make wsris faster, tried
here without touching the library (a patch on one model instance, or another process
environment), with their effect and a check that the maps stay the same.

* ``text_grouping``: encode a SaG batch of expressions in groups of equal token length
  instead of one batch padded to the longest (the padding is computed and thrown away);
* ``cls_only``: run the last layer of SaG's text encoder for the [CLS] position only
  (the sentence feature is that position's output), and the speed-up over the upstream
  way that this would give;
* ``omp_wait_policy``: one process of the tiny SaG model with PyTorch's default OpenMP
  waiting (threads spin) against ``OMP_WAIT_POLICY=PASSIVE``, on this machine's load.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .common import interleaved, rounded
from .methods import COMPARED_MAPS, map_differences
from .models import REPO, BenchModel


@contextlib.contextmanager
def _patched_encode_text(model: Any, encode_text: Callable[..., torch.Tensor]) -> Iterator[None]:
    """Replace ``encode_text`` on this model instance only; restore the class's on exit."""
    model.encode_text = encode_text
    try:
        yield
    finally:
        del model.encode_text


@contextlib.contextmanager
def grouped_text_encoding(model: Any) -> Iterator[None]:
    """SaG ``encode_text`` running each group of equal-length expressions without
    padding, rows put back in order."""
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

    with _patched_encode_text(model, encode_text):
        yield


@contextlib.contextmanager
def cls_only_last_layer(model: Any) -> Iterator[None]:
    """SaG ``encode_text`` whose last BERT layer computes only the [CLS] row (the only
    one the sentence feature reads): keys and values still come from every token, but
    the query, attention output and feed-forward run for one position instead of L."""
    import torch.nn.functional as F

    bert = model.text_encoder
    depth = bert.config.num_layers

    def encode_text(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = bert.run_layers(bert.embeddings(input_ids), attention_mask, 0, depth - 1).hidden
        last = bert.encoder.layer[depth - 1]
        keys = attention_mask.bool()[:, None, None, :]
        cls, _ = last.attention(hidden[:, :1], hidden, keys)
        feature = model.text_proj(last.feed_forward(cls)[:, 0])
        if model.config.text_norm == "l2":
            feature = F.normalize(feature.float(), dim=-1).to(feature.dtype)
        return feature

    with _patched_encode_text(model, encode_text):
        yield


def _patched_vs_as_is(bm: BenchModel, patch: Callable[[Any], Any], count: int, reps: int,
                      warmup: int) -> dict[str, Any]:
    """``segment`` with ``count`` expressions, with and without ``patch``, interleaved;
    and the maps of both compared."""
    seg = bm.segmenter
    texts = bm.texts[:count]
    base = seg.segment(bm.image, texts)
    with patch(seg.model):
        changed = seg.segment(bm.image, texts)

    def run_patched() -> Any:
        with patch(seg.model):
            return seg.segment(bm.image, texts)

    comp = interleaved({"as_is": lambda: seg.segment(bm.image, texts), "patched": run_patched},
                       reps, warmup, seg.device)
    return {
        "expressions": count,
        "seconds_as_is": rounded(comp.median("as_is")),
        "seconds_patched": rounded(comp.median("patched")),
        "speedup": rounded(comp.speedup("as_is", "patched"), 3),
        "speedup_paired": rounded(comp.paired_speedup("as_is", "patched"), 3),
        "maps": map_differences(base, changed, COMPARED_MAPS["sag"]),
    }


def text_grouping(bm: BenchModel, count: int = 16, reps: int = 5, warmup: int = 1) -> dict:
    """SaG with ``count`` expressions: one padded text batch vs equal-length groups."""
    mask = bm.segmenter.tokenizer(bm.texts[:count]).attention_mask
    out = _patched_vs_as_is(bm, grouped_text_encoding, count, reps, warmup)
    out.update({"tokens_real": int(mask.sum()), "tokens_computed_padded": mask.numel(),
                "groups": int(mask.sum(dim=1).unique().numel())})
    return out


def cls_only(bm: BenchModel, count: int = 16, reps: int = 5, warmup: int = 1,
             upstream_budget: int | None = None) -> dict:
    """SaG with ``count`` expressions: last text layer for [CLS] only vs every token; and
    wsris vs the upstream way with the change applied to both (the model is shared)."""
    from .methods import compare_with_upstream

    out = _patched_vs_as_is(bm, cls_only_last_layer, count, reps, warmup)
    with cls_only_last_layer(bm.segmenter.model):
        both = compare_with_upstream(bm, (count,), reps, warmup, upstream_budget, 1,
                                     memory=False)
    entry = both["counts"][str(count)]
    out["against_upstream"] = {"speedup": entry["speedup"],
                               "speedup_paired": entry["speedup_paired"],
                               "ours_seconds_per_expression":
                                   entry["ours"]["seconds_per_expression"],
                               "upstream_seconds_per_expression":
                                   entry["upstream"]["seconds_per_expression"]}
    return out


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
