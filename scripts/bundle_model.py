"""Put a model inside the package and record it in weights_manifest.json.

    python scripts/bundle_model.py albef-chunk-shapes --from-folder runs/chunk_shapes/model
    python scripts/bundle_model.py sag-shapes --random configs/sag_shapes.yaml

Writes ``wsris/weights/NAME/{config.json, model.safetensors, README.md}`` (float16
weights by default) and sets the manifest entry's ``config``, ``sources`` (bundled, with
sha256 and size of each file) and ``random_init``; other fields of an existing entry
(description, license, metrics, ...) are kept.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from wsris.api import Segmenter
from wsris.model_card import render_model_card
from wsris.registry import build_model, get_method
from wsris.weights.checksums import sha256_file

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "weights_manifest.json"
CONFIG_PARTS = ("architecture", "preprocessing", "text", "inference")


def random_segmenter(recipe: Path, name: str, seed: int) -> Segmenter:
    from wsris.training import TrainConfig
    from wsris.training.config import model_config

    config = model_config(TrainConfig.from_yaml(recipe))
    config["name"] = name
    torch.manual_seed(seed)
    model = build_model(config["method"], config["architecture"])
    return Segmenter(model, config, name=name, device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-folder", type=Path, help="a trained wsris model folder")
    source.add_argument("--random", type=Path, metavar="RECIPE",
                        help="randomly initialised weights for a recipe's architecture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--training-data", default="")
    parser.add_argument("--description", default="")
    parser.add_argument("--metrics", type=Path, default=None,
                        help="JSON file of measured figures for the manifest and model card")
    parser.add_argument("--limits", default="", help="the model card's limits paragraph")
    args = parser.parse_args()

    if args.random:
        seg = random_segmenter(args.random, args.name, args.seed)
    else:
        seg = Segmenter.from_folder(args.from_folder, args.name, device="cpu")
    metrics = json.loads(args.metrics.read_text(encoding="utf-8")) if args.metrics else {}
    seg.config["name"] = args.name
    card_fields = seg.config.setdefault("card", {})
    if metrics:
        card_fields["metrics"] = metrics
    if args.limits:
        card_fields["limits"] = args.limits
    card = render_model_card(seg.config, load_name=args.name)
    if args.random:
        card += "\n**These weights are randomly initialised: the masks are meaningless.**\n"
    target = ROOT / "wsris" / "weights" / args.name
    seg.save_pretrained(target, model_card=card, weights_dtype=args.dtype)

    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    entry = manifest["models"].get(args.name, {})
    method = seg.config["method"]
    entry.update(
        {
            "method": method,
            "config": {part: seg.config[part] for part in CONFIG_PARTS},
            "sources": [
                {
                    "kind": "bundled",
                    "path": f"weights/{args.name}",
                    "files": {
                        f: {"sha256": sha256_file(target / f), "size": (target / f).stat().st_size}
                        for f in ("config.json", "model.safetensors")
                    },
                }
            ],
            "random_init": bool(args.random),
        }
    )
    entry.setdefault("license", "Apache-2.0")
    entry.setdefault("paper", get_method(method).paper)
    if args.description:
        entry["description"] = args.description
    if metrics:
        entry["metrics"] = metrics
    if args.training_data:
        entry["training_data"] = args.training_data
    manifest["models"][args.name] = dict(sorted(entry.items()))
    manifest["models"] = dict(sorted(manifest["models"].items()))
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    size = (target / "model.safetensors").stat().st_size / 1e6
    print(f"bundled {args.name} ({method}) in {target}: {size:.1f} MB")


if __name__ == "__main__":
    main()
