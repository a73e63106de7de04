"""Foreign checkpoints -> wsris model folders (``config.json`` + ``model.safetensors``)."""

from __future__ import annotations

from pathlib import Path

from .albef import convert_albef

__all__ = ["convert_albef", "convert_checkpoint"]


def convert_checkpoint(converter: str, src: Path, out_dir: Path) -> Path:
    """Run the converter a manifest ``url`` source names (``albef`` or ``sag``)."""
    if converter == "albef":
        return convert_albef(src, out_dir)
    if converter == "sag":
        from .sag import convert_sag

        return convert_sag(src, out_dir)
    raise ValueError(f"unknown converter {converter!r}")
