"""Run the wsris performance benchmarks: print a table and write JSON.

    .venv/bin/python -m benchmarks.run [--quick] [--device auto|cpu|cuda] [--bf16]
        [--sizes tiny,paper] [--sections chunk,sag,stages,proposals,eval,profile]
        [--threads N] [--json benchmarks/results/latest.json]

Sections:

* ``chunk``: Grad-CAM for 1, 4, 16 expressions on one image, wsris vs the upstream way
  (one expression at a time, full-model backward with hooks), interleaved; peak memory;
  the two ways' maps compared first;
* ``sag``: the same for Shatter and Gather (upstream: image encoded and slots discovered
  again for every expression);
* ``stages``: the chunk pipeline with all stages (Grad-CAM, affinity, proposals);
* ``proposals``: proposals s/image at 384x384 and 640x480, count, ABO on Shapes-Ref val;
* ``eval``: ``wsris eval`` loop throughput, one process vs two torchrun processes;
* ``profile``: per-stage breakdown and top operators (torch.profiler).

Every figure is the median of several runs after warm-up. ``--quick`` runs the tiny
models only, with few repetitions (for tests and a first look).

On a machine whose cores are busy with other work, PyTorch's OpenMP threads spin-wait
for each other and small models slow down by up to two orders of magnitude; this runner
sets ``OMP_WAIT_POLICY=PASSIVE`` (unless already set) before PyTorch is imported, and
records it.
"""

from __future__ import annotations

import os
import sys

_TORCH_WAS_IMPORTED = "torch" in sys.modules
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from .common import load_average, machine_info, rounded  # noqa: E402

SECTIONS = ("chunk", "sag", "stages", "proposals", "eval", "profile", "experiments")
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
COUNTS = (1, 4, 16)
# (name, method, expressions per image, minimum speed-up over the upstream way)
SPEEDUP_TARGETS = (
    ("chunk Grad-CAM, 16 expressions/image: >= 8x upstream", "chunk", 16, 8.0),
    ("chunk Grad-CAM, 1 expression/image: >= 2x upstream", "chunk", 1, 2.0),
    ("SaG, 16 expressions/image: >= 6x upstream", "sag", 16, 6.0),
)
PAPER_SECONDS_TARGET = 2.0


@dataclass
class Plan:
    """How much to run: repetitions, sizes, data amounts."""

    quick: bool
    sizes: tuple[str, ...]
    sections: tuple[str, ...]
    reps: dict[str, int] = field(default_factory=dict)  # per model size
    stage_reps: dict[str, int] = field(default_factory=dict)
    warmup: int = 1
    upstream_budget: dict[str, int | None] = field(default_factory=dict)
    check_count: dict[str, int] = field(default_factory=dict)  # expressions compared
    proposal_images: int = 4
    proposal_runs: int = 3
    abo_scenes: int = 50
    eval_limits: dict[str, int] = field(default_factory=dict)  # per model size
    e2e_limit: int | None = None

    @classmethod
    def make(cls, quick: bool, sizes: tuple[str, ...], sections: tuple[str, ...],
             reps: int | None) -> Plan:
        common: dict[str, Any] = {"upstream_budget": {"tiny": None, "paper": 8},
                                  "check_count": {"tiny": 16, "paper": 4}}
        if quick:
            return cls(quick, sizes, sections, reps={"tiny": reps or 3, "paper": reps or 1},
                       stage_reps={"tiny": reps or 2, "paper": 1}, proposal_images=2,
                       proposal_runs=1, abo_scenes=6, eval_limits={"tiny": 8, "paper": 2},
                       **common)
        return cls(quick, sizes, sections, reps={"tiny": reps or 7, "paper": reps or 3},
                   stage_reps={"tiny": reps or 5, "paper": min(reps or 2, 3)},
                   proposal_images=4, proposal_runs=3, abo_scenes=60,
                   eval_limits={"tiny": 60, "paper": 8}, e2e_limit=60, **common)


def _csv(value: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise SystemExit(f"--{what}: choose from {','.join(allowed)} (got {value!r})")
    return items


def resolve_device(requested: str, bf16: bool) -> tuple[torch.device, str | None, list[str]]:
    """The device and dtype to run on, and notes on what was asked but is not available."""
    notes: list[str] = []
    cuda = torch.cuda.is_available()
    if requested in ("auto", "cuda") or requested.startswith("cuda:"):
        if cuda:
            device = torch.device("cuda" if requested == "auto" else requested)
        else:
            notes.append("CUDA is not available on this machine: the benchmarks ran on the CPU"
                         " (the CUDA paths run when a GPU is present)")
            device = torch.device("cpu")
    else:
        device = torch.device(requested)
    dtype = None
    if bf16:
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            dtype = "bfloat16"
        else:
            notes.append("--bf16: wsris runs bfloat16 as CUDA autocast only; ran float32")
    return device, dtype, notes


# ------------------------------------------------------------------------ sections


def run_sections(plan: Plan, device: torch.device, dtype: str | None,
                 threads: int | None, log: Any = print) -> dict[str, Any]:
    from .methods import chunk_stages, compare_with_upstream
    from .models import build

    results: dict[str, Any] = {}
    cache: dict[tuple[str, str], Any] = {}

    def model(method: str, size: str) -> Any:
        key = (method, size)
        if key not in cache:
            cache.clear()  # one model in memory at a time (paper-size ones are large)
            t0 = time.perf_counter()
            cache[key] = build(method, size, device, dtype)
            log(f"  built {method}/{size} ({cache[key].label}) in "
                f"{time.perf_counter() - t0:.1f} s")
        return cache[key]

    sections = set(plan.sections)
    for method in ("chunk", "sag"):
        extra = "stages" if method == "chunk" else "experiments"
        if not {method, extra, "profile"} & sections:
            continue
        for size in plan.sizes:
            bm = model(method, size)
            if method in sections:
                log(f"[{method}] {size}: wsris vs upstream for {COUNTS} expressions ...")
                results.setdefault(method, {})[size] = compare_with_upstream(
                    bm, COUNTS, plan.reps[size], plan.warmup, plan.upstream_budget[size],
                    plan.check_count[size])
            if method == "chunk" and "stages" in sections:
                log(f"[stages] {size}: chunk pipeline stage by stage ...")
                results.setdefault("stages", {})[size] = chunk_stages(
                    bm, COUNTS, plan.stage_reps[size], plan.warmup)
            if "profile" in sections:
                results.setdefault("profile", {}).setdefault(method, {})[size] = _profile(
                    bm, plan, log)
            if method == "sag" and "experiments" in sections:
                from .experiments import cls_only, text_grouping

                exp = results.setdefault("experiments", {})
                log(f"[experiments] sag/{size}: padded vs length-grouped text batch ...")
                exp.setdefault("text_grouping", {})[size] = text_grouping(
                    bm, 16, plan.reps[size], plan.warmup)
                log(f"[experiments] sag/{size}: last text layer for [CLS] only ...")
                exp.setdefault("cls_only_last_layer", {})[size] = cls_only(
                    bm, 16, plan.reps[size], plan.warmup, plan.upstream_budget[size])
    cache.clear()

    if "experiments" in plan.sections:
        from .experiments import omp_wait_policy

        log("[experiments] OpenMP wait policy, fresh processes ...")
        results.setdefault("experiments", {})["omp_wait_policy"] = omp_wait_policy(
            5 if plan.quick else 15)
    if "proposals" in plan.sections:
        from .proposal_timing import bench_proposals

        log("[proposals] s/image at 384x384 and 640x480, ABO on Shapes-Ref val ...")
        results["proposals"] = bench_proposals(plan.proposal_images, plan.proposal_runs,
                                               plan.abo_scenes)
    if "eval" in plan.sections:
        from .eval_throughput import bench_eval

        runs = [(m, s, plan.eval_limits[s]) for s in plan.sizes for m in ("chunk", "sag")]
        log(f"[eval] evaluation loop, 1 process vs torchrun 2 processes: {runs} ...")
        results["eval"] = bench_eval(runs, str(device), threads,
                                     plan.e2e_limit if device.type == "cpu" else None, dtype)
    return results


def _profile(bm: Any, plan: Plan, log: Any) -> dict[str, Any]:
    from .profiling import breakdown, top_operators

    log(f"[profile] {bm.method}/{bm.size}: stage breakdown and top operators ...")
    reps = 1 if plan.quick or bm.size == "paper" else 3
    out: dict[str, Any] = {
        "breakdown": {str(c): breakdown(bm, c, reps) for c in (1, 16)},
    }
    options = {"stages": ("gradcam",)} if bm.method == "chunk" else {}
    out["top_operators_16"] = top_operators(
        lambda: bm.segmenter.segment(bm.image, bm.texts[:16], **options))
    return out


# ------------------------------------------------------------------------ targets


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue, per model size measured: value, threshold, met."""
    out: list[dict[str, Any]] = []
    for name, method, count, minimum in SPEEDUP_TARGETS:
        for size, res in results.get(method, {}).items():
            entry = res["counts"].get(str(count))
            if entry is None:
                continue
            out.append({"target": name, "size": size, "value": entry["speedup"],
                        "paired": entry["speedup_paired"], "threshold": minimum,
                        "met": entry["speedup"] >= minimum})
    paper = results.get("stages", {}).get("paper")
    if paper:
        for count in ("1", "16"):
            value = paper["counts"][count]["all"]["seconds_per_expression"]
            out.append({"target": f"paper-size chunk, all stages, {count} expression(s)/image:"
                                  f" < {PAPER_SECONDS_TARGET} s/expression",
                        "size": "paper", "value": value, "threshold": PAPER_SECONDS_TARGET,
                        "met": value < PAPER_SECONDS_TARGET})
    return out


# ------------------------------------------------------------------------ printing


def _mb(entry: dict[str, Any]) -> str:
    mb = entry.get("peak_memory_mb")
    return "-" if mb is None else f"{mb:.0f}"


def format_tables(report: dict[str, Any]) -> str:
    """The human-readable summary of a report."""
    meta = report["meta"]
    lines = [
        f"wsris benchmarks, {meta['date']}: {meta['cpu']} ({meta['cpu_cores']} cores), "
        f"torch {meta['torch']}, {meta['torch_threads']} threads, device {meta['device']}"
        f"{', ' + meta['dtype'] if meta.get('dtype') else ''}, load average "
        f"{meta['load_average_start']} -> {meta['load_average_end']}",
    ]
    lines += [f"note: {n}" for n in meta.get("notes", [])]
    for method, title in (("chunk", "chunk Grad-CAM"), ("sag", "SaG")):
        for size, res in report["results"].get(method, {}).items():
            lines.append("")
            lines.append(f"{title}, {size} ({res['model']['label']}, "
                         f"{res['model']['parameters'] / 1e6:.1f} M parameters): "
                         "wsris vs upstream way")
            lines.append(f"{'expr/image':>10} {'ours s/expr':>12} {'ours expr/s':>12} "
                         f"{'upstr s/expr':>13} {'speed-up':>9} {'paired':>7} "
                         f"{'peak MB ours/upstr':>19}")
            for count, e in res["counts"].items():
                o, u = e["ours"], e["upstream"]
                lines.append(
                    f"{count:>10} {o['seconds_per_expression']:>12.4g} "
                    f"{o['expressions_per_second']:>12.4g} {u['seconds_per_expression']:>13.4g} "
                    f"{e['speedup']:>8.3g}x {e['speedup_paired']:>6.3g}x "
                    f"{_mb(o) + ' / ' + _mb(u):>19}")
            maps = ", ".join(f"{k} {v['max_abs_diff']:.2g} (rel {v['max_rel_diff']:.2g})"
                             for k, v in res["maps"].items())
            lines.append(f"  same maps? max |ours - upstream| over {res['maps_compared_on']} "
                         f"expressions: {maps}")
    for size, res in report["results"].get("stages", {}).items():
        lines.append("")
        lines.append(f"chunk pipeline stages, {size} (image {res['model']['image']}): "
                     "s/expression")
        lines.append(f"{'expr/image':>10} {'gradcam':>10} {'+affinity':>10} {'all stages':>11} "
                     f"{'proposals alone (s/image)':>26}")
        for count, e in res["counts"].items():
            lines.append(
                f"{count:>10} {e['gradcam']['seconds_per_expression']:>10.4g} "
                f"{e['gradcam+affinity']['seconds_per_expression']:>10.4g} "
                f"{e['all']['seconds_per_expression']:>11.4g} "
                f"{e['proposals_only']['seconds']:>26.4g}")
    prop = report["results"].get("proposals")
    if prop:
        lines.append("")
        lines.append(f"proposals (max {prop['max_proposals']}):")
        for size, t in prop["timing"].items():
            lines.append(f"  {size}: {t['seconds_per_image']:.3g} s/image, "
                         f"{t['proposals_mean']:.0f} proposals")
        for size, q in prop["abo"].items():
            lines.append(f"  ABO on {prop['abo_data']} at {size}: {q['abo']:.3f} "
                         f"({q['objects']} objects, {q['scenes']} scenes, "
                         f"{q['proposals_mean']:.0f} proposals)")
    ev = report["results"].get("eval")
    if ev:
        lines.append("")
        lines.append(f"evaluation loop on {ev['data']} (samples/s):")
        for name, r in ev["runs"].items():
            one, two = r["one_process"], r["two_processes"]
            lines.append(
                f"  {name}: 1 process {one['samples_per_second']:.3g} "
                f"({one['threads_per_process']} threads), 2 torchrun processes "
                f"{two['samples_per_second']:.3g} ({two['threads_per_process']} thread each): "
                f"x{r['speedup']:.2f}; with start-up {one['wall_samples_per_second']:.3g} vs "
                f"{two['wall_samples_per_second']:.3g}  [{r['samples']} samples]")
        e2e = ev.get("end_to_end_cli")
        if e2e:
            lines.append(
                f"  python -m wsris.cli eval (= wsris eval), bundled model, "
                f"{e2e['one_process']['samples']} samples, start-up included: 1 process "
                f"{e2e['one_process']['samples_per_second']:.3g}, torchrun 2 processes "
                f"{e2e['two_processes']['samples_per_second']:.3g}")
    prof = report["results"].get("profile")
    if prof:
        for method, per_size in prof.items():
            for size, p in per_size.items():
                for count, b in p["breakdown"].items():
                    parts = ", ".join(f"{k} {v:.3g}s" for k, v in b["seconds"].items())
                    lines.append(f"profile {method}/{size}, {count} expr: {parts}")
    exp = report["results"].get("experiments", {})
    for size, g in exp.get("text_grouping", {}).items():
        lines.append(
            f"experiment sag/{size}, 16 expressions: padded text batch {g['seconds_as_is']:.3g}s"
            f" vs equal-length groups {g['seconds_patched']:.3g}s (x{g['speedup']:.2f}; "
            f"{g['tokens_computed_padded']} token slots for {g['tokens_real']} tokens; "
            f"map diff {g['maps']['map']['max_abs_diff']:.2g})")
    for size, g in exp.get("cls_only_last_layer", {}).items():
        up = g["against_upstream"]
        lines.append(
            f"experiment sag/{size}, 16 expressions: last text layer for [CLS] only "
            f"{g['seconds_patched']:.3g}s vs {g['seconds_as_is']:.3g}s (x{g['speedup']:.2f}; "
            f"map diff {g['maps']['map']['max_abs_diff']:.2g}); with it, wsris vs upstream "
            f"x{up['speedup']:.3g} (paired x{up['speedup_paired']:.3g})")
    omp = exp.get("omp_wait_policy")
    if omp:
        cases = ", ".join(f"{c['omp_wait_policy']}/{c['threads']} thr {c['seconds_per_call']:.3g}s"
                          for c in omp["cases"])
        lines.append(f"experiment OpenMP wait policy ({omp['model']}, load "
                     f"{omp['load_average']}): {cases}")
    if report.get("targets"):
        lines.append("")
        lines.append("targets:")
        for t in report["targets"]:
            lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']} ({t['size']}): "
                         f"{t['value']:.3g}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                 description="wsris performance benchmarks")
    ap.add_argument("--quick", action="store_true",
                    help="tiny models only, few repetitions (about a minute)")
    ap.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda[:N]")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA only)")
    ap.add_argument("--sizes", default=None,
                    help="comma list of tiny,paper (default: both; --quick: tiny)")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma list of {','.join(SECTIONS)}")
    ap.add_argument("--reps", type=int, default=None,
                    help="timed runs per figure (default: 7 tiny / 3 paper; quick: 3 / 1)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's choice, the number of cores)")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the JSON")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sizes = _csv(args.sizes or ("tiny" if args.quick else "tiny,paper"), ("tiny", "paper"),
                 "sizes")
    sections = _csv(args.sections, SECTIONS, "sections")
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype, notes = resolve_device(args.device, args.bf16)
    for note in notes:
        print(f"note: {note}")
    plan = Plan.make(args.quick, sizes, sections, args.reps)
    meta = machine_info(device)
    meta.update({
        "dtype": dtype or "float32",
        "requested_device": args.device,
        "notes": notes,
        "quick": args.quick,
        "sizes": list(sizes),
        "sections": list(sections),
        "reps": {s: plan.reps[s] for s in sizes},
        "warmup": plan.warmup,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "omp_wait_policy_applied": not _TORCH_WAS_IMPORTED,
        "load_average_start": load_average(),
        "command": " ".join(["python -m benchmarks.run",
                             *(argv if argv is not None else sys.argv[1:])]),
    })
    t0 = time.perf_counter()
    results = run_sections(plan, device, dtype, args.threads)
    meta["load_average_end"] = load_average()
    meta["seconds"] = rounded(time.perf_counter() - t0)
    report = {"schema": 1, "meta": meta, "results": results,
              "targets": check_targets(results)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print()
    print(format_tables(report))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
