"""``wsris bench`` (deprecated, hidden; removed in 0.2): run ``make bench`` or
``python -m benchmarks.run`` in a source checkout instead.

The benchmarks are not part of the installed package, so this is not a user command:
they live in the repository's ``benchmarks/`` folder, next to ``wsris/``. This command
finds that folder (from the current directory or from where ``wsris`` is installed in
editable mode) and runs
``python -m benchmarks.run`` with the same options in a fresh process, so that the
runner can set ``OMP_WAIT_POLICY`` before PyTorch is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click


def find_checkout() -> Path | None:
    """The source checkout holding ``benchmarks/run.py``: the current directory or one
    of its parents, else the folder above an editable install of ``wsris``."""
    here = Path.cwd().resolve()
    package_root = Path(__file__).resolve().parents[2]
    for folder in (here, *here.parents, package_root):
        if (folder / "benchmarks" / "run.py").is_file() and (folder / "wsris").is_dir():
            return folder
    return None


@click.command("bench", hidden=True, deprecated=True)
@click.option("--quick", is_flag=True, help="Tiny models only, few repetitions (about a minute).")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when present), cpu, cuda, cuda:N.")
@click.option("--bf16", is_flag=True, help="bfloat16 autocast (CUDA only).")
@click.option("--sizes", default=None,
              help="Comma list of tiny,paper (default both; with --quick: tiny).")
@click.option("--sections", default=None,
              help="Comma list of chunk,sag,stages,proposals,eval,profile (default: all).")
@click.option("--reps", type=click.IntRange(min=1), default=None,
              help="Timed runs per figure (default 7 tiny / 3 paper-size; quick 3 / 1).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="PyTorch threads (default: PyTorch's choice).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write the figures here (default benchmarks/results/latest.json).")
def bench_command(quick: bool, device: str, bf16: bool, sizes: str | None,
                  sections: str | None, reps: int | None, threads: int | None,
                  json_path: Path | None) -> None:
    """Deprecated: run `make bench` (or python -m benchmarks.run) in a source checkout.

    Time chunk and SaG inference against the upstream way of computing the same maps,
    the mask proposals and the evaluation loop; print a table and write JSON.

    \b
    Examples:
      wsris bench --quick
      wsris bench --device cuda --bf16 --json results/gpu.json
      wsris bench --sizes paper --sections chunk,stages
    """
    checkout = find_checkout()
    if checkout is None:
        raise click.ClickException(
            "wsris bench needs a source checkout of wsris (its benchmarks/ folder is not "
            "installed with the package): run it from the repository"
        )
    args = [sys.executable, "-m", "benchmarks.run", "--device", device]
    if quick:
        args.append("--quick")
    if bf16:
        args.append("--bf16")
    for flag, value in (("--sizes", sizes), ("--sections", sections), ("--reps", reps),
                        ("--threads", threads), ("--json", json_path)):
        if value is not None:
            args += [flag, str(Path(value).resolve()) if flag == "--json" else str(value)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(checkout), env.get("PYTHONPATH")) if p)
    code = subprocess.call(args, cwd=checkout, env=env)
    if code != 0:
        sys.exit(code)
