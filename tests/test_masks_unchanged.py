"""The bundled models give bit-identical masks to those recorded before the library's
restructuring: on the bundled example and on the first 200 Shapes-Ref val expressions,
with each model's default settings.

``tests/golden/bundled_masks.npz`` holds the masks as packed bits, two arrays per
model: ``NAME:example`` (the example's three texts) and ``NAME:val`` (the 200 val
expressions).
It was written by running this file as a script
(``python tests/test_masks_unchanged.py``) on the code
before the move, and must only be rewritten for a change that means to alter masks,
saying why in the commit.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import wsris
from wsris.data.shapes import ShapesRef
from wsris.domain import DomainWarning

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "bundled_masks.npz"
MODELS = ("albef-chunk-shapes", "sag-shapes")
EXAMPLE_TEXTS = ("the large red circle", "blue triangle", "cyan circle")
N_VAL = 200


def current_masks(name: str) -> dict[str, np.ndarray]:
    """The masks ``name`` gives today: ``NAME:example`` ``[3, H, W]`` and ``NAME:val``
    ``[N_VAL, 128, 128]``, bool."""
    from PIL import Image

    seg = wsris.load(name, device="cpu")
    image = np.asarray(Image.open(ROOT / "examples" / "shapes_scene.png").convert("RGB"))
    example = [r.mask for r in seg.segment(image, list(EXAMPLE_TEXTS))]
    data = ShapesRef("val").referring()
    val = []
    with warnings.catch_warnings():  # a few val scenes are all-white and judged off-domain
        warnings.simplefilter("ignore", DomainWarning)
        for i in range(N_VAL):
            s = data[i]
            val.append(seg.segment(s.image, s.text).mask)
    return {f"{name}:example": np.stack(example).astype(bool),
            f"{name}:val": np.stack(val).astype(bool)}


def _unpack(packed: np.ndarray, width: int) -> np.ndarray:
    return np.unpackbits(packed, axis=-1, count=width).astype(bool)


def test_golden_file_holds_every_mask():
    golden = np.load(GOLDEN)
    assert sorted(golden.files) == sorted(f"{n}:{k}" for n in MODELS for k in ("example", "val"))
    for name in MODELS:
        val = _unpack(golden[f"{name}:val"], 128)
        assert val.shape == (N_VAL, 128, 128)
        # not a file of empty masks: most recorded masks select something, none all
        areas = val.reshape(N_VAL, -1).sum(1)
        assert (areas > 0).mean() > 0.9 and (areas < 128 * 128).all()
        assert golden[f"{name}:example"].shape[0] == len(EXAMPLE_TEXTS)


@pytest.mark.parametrize("name", MODELS)
def test_bundled_masks_are_bit_identical_to_the_recorded_ones(name):
    golden = np.load(GOLDEN)
    for key, got in current_masks(name).items():
        want = _unpack(golden[key], got.shape[-1])
        assert got.shape == want.shape, key
        differ = [(i, int((got[i] != want[i]).sum())) for i in range(len(got))
                  if not np.array_equal(got[i], want[i])]
        assert differ == [], f"{key}: {len(differ)} masks differ (index, pixels): {differ[:10]}"


if __name__ == "__main__":
    if GOLDEN.exists() and "--force" not in sys.argv:
        sys.exit(f"{GOLDEN} exists; pass --force to rewrite it")
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    masks = {k: v for n in MODELS for k, v in current_masks(n).items()}
    np.savez_compressed(GOLDEN, **{k: np.packbits(v, axis=-1) for k, v in masks.items()})
    print("wrote", GOLDEN)
