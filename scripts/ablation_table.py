"""Print an ablation table (Markdown) from `wsris eval --json` files of the same samples.

    python scripts/ablation_table.py "baseline (ITM only)=itm.json" "+ inter-chunk=inter.json"

One row per LABEL=JSON: mIoU and Pr@{0.3,0.5,0.7} (in %) and mIoU per expression kind,
then the trivial baselines of the first file. All files must cover the same samples (the
script checks the sample ids), so the baselines are shared.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = ("mIoU", "Pr@0.3", "Pr@0.5", "Pr@0.7")
BASELINES = {"random_object": "random object", "all_objects": "all objects",
             "centre_box": "centred box"}


def row(label: str, metrics: dict, by_kind: dict, system: str, kinds: list[str]) -> str:
    cells = [f"{100 * metrics[system][c]:.2f}" for c in COLUMNS]
    cells += [f"{100 * by_kind[k][system]['mIoU']:.2f}" for k in kinds]
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="+", metavar="LABEL=JSON")
    args = parser.parse_args()
    reports = []
    for item in args.rows:
        label, sep, path = item.partition("=")
        if not sep:
            parser.error(f"expected LABEL=JSON, got {item!r}")
        try:
            reports.append((label, json.loads(Path(path).read_text())))
        except (OSError, ValueError) as exc:
            parser.error(f"{label!r}: cannot read {path}: {exc}")
    first = reports[0][1]
    ids = [s["id"] for s in first["samples"]]
    for label, report in reports[1:]:
        if [s["id"] for s in report["samples"]] != ids:
            parser.error(f"{label!r} was evaluated on other samples than {reports[0][0]!r}")
    kinds = sorted(first["by_kind"])
    meta = first["meta"]
    print(f"{meta['data']}, {meta['samples']} samples (mIoU and Pr in %)\n")
    print("| | " + " | ".join(COLUMNS) + " | " + " | ".join(f"mIoU {k}" for k in kinds) + " |")
    print("|---" * (1 + len(COLUMNS) + len(kinds)) + "|")
    for label, report in reports:
        print(row(label, report["metrics"], report["by_kind"], "model", kinds))
    for system, label in BASELINES.items():
        print(row(f"*{label}*", first["metrics"], first["by_kind"], system, kinds))


if __name__ == "__main__":
    main()
