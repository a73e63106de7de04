"""Summarise a training run's logs as Markdown: loss terms and validation metrics over time.

    python scripts/training_summary.py runs/chunk_shapes [--every 1000]

Reads OUTPUT/train_log.jsonl (averaging every logged term over each window of steps) and
OUTPUT/val_log.jsonl (every validation), and prints two tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(rows: list[dict], keys: list[str]) -> str:
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--every", type=int, default=1000, help="steps per row")
    args = parser.parse_args()
    train = read(args.run / "train_log.jsonl")
    windows: dict[int, list[dict]] = {}
    for r in train:
        windows.setdefault((r["step"] - 1) // args.every, []).append(r)
    rows = []
    for w, items in sorted(windows.items()):
        keys = [k for k in items[0] if k not in ("step", "time")]
        row = {"steps": f"{w * args.every + 1}-{items[-1]['step']}",
               "hours": round(items[-1]["time"] / 3600, 2)}
        row.update({k: sum(i.get(k, 0.0) for i in items) / len(items) for k in keys})
        rows.append(row)
    if rows:
        print(f"## Training ({args.run})\n")
        print(table(rows, list(rows[-1])))
    val = read(args.run / "val_log.jsonl")
    if val:
        for v in val:
            v["hours"] = round(v.pop("time") / 3600, 2)
        keys = ["step", "hours", *[k for k in val[-1] if k not in ("step", "hours")]]
        print(f"\n## Validation ({args.run})\n")
        print(table(val, keys))


if __name__ == "__main__":
    main()
