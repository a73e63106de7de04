"""The model card (README.md) written next to ``config.json`` and ``model.safetensors``."""

from __future__ import annotations

import json
from typing import Any

from .registry import ModelSpec

_PAPERS = {
    "chunk": "Lee et al. 2023, Weakly Supervised Referring Image Segmentation with "
    "Intra-Chunk and Inter-Chunk Consistency (ICCV 2023)",
    "sag": "Kim et al. 2023, Shatter and Gather: Learning Referring Image Segmentation "
    "with Text Supervision (ICCV 2023)",
}


def describe_data(data: Any) -> str:
    """A data spec, or a curriculum (a list of ``{spec, until}`` stages), as Markdown."""
    if isinstance(data, list):
        stages = []
        for stage in data:
            if isinstance(stage, dict):
                until = stage.get("until")
                tail = f" until step {until}" if until is not None else " to the end"
                stages.append(f"- `{stage.get('spec', '?')}`{tail}")
            else:
                stages.append(f"- `{stage}`")
        return "Curriculum:\n\n" + "\n".join(stages)
    return str(data) if data else ""


def render_model_card(
    config: dict[str, Any], spec: ModelSpec | None = None, load_name: str | None = None
) -> str:
    """A Markdown card from the config (and the manifest entry, when there is one).

    ``load_name`` is what the usage example passes to ``wsris.load`` (default: the
    manifest name when there is an entry, else a placeholder folder)."""
    name = config.get("name") or (spec.name if spec else "wsris model")
    method = config["method"]
    card = config.get("card", {})
    lines = [
        f"# {name}",
        "",
        f"A `wsris` model for weakly supervised referring image segmentation, method "
        f"`{method}` ({_PAPERS[method]}).",
        "",
        "## Use",
        "",
        "```python",
        "import wsris",
        f'seg = wsris.load("{load_name or (name if spec else "path/to/this/folder")}")',
        'result = seg.segment("image.jpg", "the small red circle")',
        "```",
        "",
        "## Training data",
        "",
        describe_data(card.get("data")) or (spec.training_data if spec else "") or "Not recorded.",
        "",
        "## Recipe",
        "",
        card.get("recipe", "Not recorded."),
        "",
        "## Measured metrics",
        "",
    ]
    metrics = card.get("metrics") or (spec.metrics if spec else {})
    if metrics:
        lines += ["```json", json.dumps(metrics, indent=2), "```"]
    else:
        lines.append("None measured.")
    lines += [
        "",
        "## Intended use and limits",
        "",
        card.get(
            "limits",
            "Research use. Weakly supervised models localise coarsely; check masks before "
            "relying on them.",
        ),
    ]
    if spec is not None and spec.random_init:
        lines += ["", "**These weights are randomly initialised: the masks are meaningless.**"]
    lines += [
        "",
        "## Files",
        "",
        "- `config.json`: method, architecture, preprocessing, text and inference settings",
        "- `model.safetensors`: the weights",
        "",
    ]
    return "\n".join(lines)
