"""Print the README's model table from weights_manifest.json.

    python scripts/model_table.py
"""

from __future__ import annotations

from wsris.weights.manifest import load_manifest
from wsris.weights.sources import cached_status


def main() -> None:
    print("| name | method | training data | measured mIoU | status |")
    print("|---|---|---|---|---|")
    for name, spec in sorted(load_manifest().items()):
        miou = spec.metrics.get("mIoU")
        measured = f"{100 * miou:.1f} ({spec.metrics.get('data', '')})" if miou else "-"
        status = cached_status(spec)
        if status == "cached":  # depends on this machine's cache: report the source kind
            status = "downloadable"
        if spec.random_init:
            status += ", random weights"
        print(f"| `{name}` | {spec.method} | {spec.training_data or '-'} | {measured} | {status} |")


if __name__ == "__main__":
    main()
