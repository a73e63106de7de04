"""Shared benchmark plumbing: timing, peak memory, machine description.

Every timed figure is the median of ``reps`` runs after ``warmup`` untimed runs. When two
ways of computing the same thing are compared, their runs are interleaved (A B, B A, A B,
...) so that the load of a shared machine hits both alike; the speed-up is reported both
as the ratio of the medians and as the median of the per-round ratios.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock times are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` (synchronised on CUDA) and its return value."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


@dataclass
class Comparison:
    """Interleaved timings of several ways of doing the same work."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return float(statistics.median(self.times[name]))

    def speedup(self, slow: str, fast: str) -> float:
        """``median(slow) / median(fast)``."""
        return self.median(slow) / self.median(fast)

    def paired_speedup(self, slow: str, fast: str) -> float:
        """Median over rounds of ``slow_r / fast_r`` (robust to load drifting over time),
        over the rounds both took part in."""
        ratios = [s / f for s, f in zip(self.times[slow], self.times[fast], strict=False)]
        return float(statistics.median(ratios))


def interleaved(
    fns: dict[str, Callable[[], Any]],
    reps: int,
    warmup: int,
    device: torch.device,
    reps_for: dict[str, int] | None = None,
    warmup_for: dict[str, int] | None = None,
) -> Comparison:
    """Run every function ``warmup`` times untimed, then ``reps`` timed rounds.

    The order of the functions is reversed every other round. ``reps_for`` and
    ``warmup_for`` may give some functions fewer rounds (slow reference implementations,
    already warm): they then take part only in the first rounds; paired ratios use the
    rounds both took part in.
    """
    names = list(fns)
    warm = {name: warmup for name in names}
    warm.update(warmup_for or {})
    for r in range(max(warm.values(), default=0)):
        for name in names:
            if r < warm[name]:
                timed(fns[name], device)
    out = Comparison({name: [] for name in names})
    limits = {name: reps for name in names}
    limits.update(reps_for or {})
    for r in range(max(limits.values())):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            if r < limits[name]:
                seconds, _ = timed(fns[name], device)
                out.times[name].append(seconds)
    return out


# ------------------------------------------------------------------ peak memory


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _mallinfo2() -> Callable[[], int] | None:
    """Bytes currently allocated through glibc malloc (heap in use + mmapped chunks).

    PyTorch's CPU allocator sits on malloc, so this counts tensor memory exactly, unlike
    the resident set size, which keeps freed heap pages. None where glibc is absent.
    """
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(name)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    fn.argtypes = []

    def in_use() -> int:
        info = fn()
        return int(info.uordblks + info.hblkhd)

    return in_use


def _rss() -> int:
    """Resident set size in bytes (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


_IN_USE = _mallinfo2()
MEMORY_METHOD_CPU = (
    "peak of glibc mallinfo2 (uordblks + hblkhd) above the level before the call, "
    "sampled every 0.5 ms by a thread"
    if _IN_USE is not None
    else "peak resident set size above the level before the call, sampled every 0.5 ms"
)
MEMORY_METHOD_CUDA = "torch.cuda.max_memory_allocated above memory_allocated before the call"


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """Yields a dict whose ``"mb"`` is set, on exit, to the peak extra memory in MiB."""
    result: dict[str, float] = {"mb": float("nan")}
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        try:
            yield result
        finally:
            torch.cuda.synchronize(device)
            result["mb"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        return
    probe = _IN_USE or _rss
    base = probe()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], probe())
            stop.wait(0.0005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], probe())
        result["mb"] = (peak[0] - base) / 2**20


def measure_peak_mb(fn: Callable[[], Any], device: torch.device) -> float:
    """Peak extra memory of one call of ``fn`` (MiB)."""
    with peak_memory(device) as mem:
        fn()
    return round(mem["mb"], 1)


# ------------------------------------------------------------------ the machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    if not hasattr(os, "getloadavg"):
        return None
    return [round(x, 2) for x in os.getloadavg()]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info(device: torch.device) -> dict[str, Any]:
    """What the figures depend on: CPU, cores, memory, library versions, threads, GPU."""
    mem_gb = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gb = round(pages / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "timm": _version("timm"),
        "numpy": _version("numpy"),
        "higra": _version("higra"),
        "wsris": _version("wsris"),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "device": str(device),
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "memory_method": MEMORY_METHOD_CUDA if device.type == "cuda" else MEMORY_METHOD_CPU,
    }
    return info


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def rounded(x: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits (JSON readability)."""
    if x == 0 or x != x:  # zero or NaN
        return x
    return float(f"{x:.{digits}g}")


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write a benchmark's JSON (folders made as needed) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
