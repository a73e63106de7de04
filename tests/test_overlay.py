"""Overlays are visible on any object: the default fill is chosen against the pixels under
the mask, and the outline is two-tone."""

from __future__ import annotations

import numpy as np
import pytest

from wsris.colours import PALETTE, contrasting_colour, parse_colour
from wsris.data.shapes_grammar import COLOURS
from wsris.errors import InvalidInputError
from wsris.result import SegmentationResult

# The largest RGB distance there is (black to white).
MAX_DISTANCE = float(np.linalg.norm([255, 255, 255]))


def scene(object_rgb: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A 96 x 96 grey-ish image with one disc of ``object_rgb`` and the disc's mask."""
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(90, 10, (96, 96, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:96, :96]
    mask = (yy - 48) ** 2 + (xx - 48) ** 2 <= 30 ** 2
    noisy = np.clip(np.asarray(object_rgb) + rng.normal(0, 6, (int(mask.sum()), 3)), 0, 255)
    image[mask] = noisy.astype(np.uint8)
    return image, mask


def result(mask: np.ndarray, image: np.ndarray) -> SegmentationResult:
    return SegmentationResult(text="t", mask=mask, heatmap=mask.astype(np.float32),
                              threshold=0.5, model="m", method="sag", image=image)


def interior(mask: np.ndarray, margin: int = 4) -> np.ndarray:
    """The mask without the band the outline is drawn on."""
    import cv2

    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.erode(mask.astype(np.uint8), kernel).astype(bool)


@pytest.mark.parametrize("rgb", [
    COLOURS["red"], (255, 48, 48), (255, 0, 255), COLOURS["purple"], COLOURS["white"],
    (255, 255, 255), (0, 0, 0), COLOURS["cyan"],
], ids=str)
def test_default_fill_changes_the_object_a_lot(rgb):
    image, mask = scene(rgb)
    out = np.asarray(result(mask, image).overlay()).astype(float)
    inside = interior(mask)
    change = np.linalg.norm(out[inside] - image[inside].astype(float), axis=1)
    # every pixel moves by a fifth of the largest change there is (black to white) or
    # more, and on average by a quarter (110 RGB units); the old fixed red fill moved a
    # red disc by 16 on average
    assert change.min() >= 0.2 * MAX_DISTANCE, (rgb, change.min())
    assert change.mean() >= 0.25 * MAX_DISTANCE, (rgb, change.mean())
    outside = ~mask
    outside[mask.nonzero()[0].min() - 3:mask.nonzero()[0].max() + 4,
            mask.nonzero()[1].min() - 3:mask.nonzero()[1].max() + 4] = False
    np.testing.assert_array_equal(out[outside], image[outside])  # nothing else changes


def test_the_old_fixed_red_was_invisible_on_red():
    """The case that motivated the choice: a fixed red fill barely moves a red object."""
    image, mask = scene(COLOURS["red"])
    out = np.asarray(result(mask, image).overlay(color=(255, 48, 48))).astype(float)
    inside = interior(mask)
    change = np.linalg.norm(out[inside] - image[inside].astype(float), axis=1).mean()
    assert change < 0.1 * MAX_DISTANCE


@pytest.mark.parametrize("rgb", [(255, 0, 0), (255, 255, 255), (0, 0, 0), (255, 0, 255)])
def test_outline_has_a_dark_and_a_light_tone(rgb):
    image, mask = scene(rgb)
    out = np.asarray(result(mask, image).overlay()).astype(int)
    band = mask & ~interior(mask, margin=2)
    colours = {tuple(c) for c in out[band]}
    assert (0, 0, 0) in colours and (255, 255, 255) in colours


def test_contrasting_colour_is_the_farthest_palette_entry():
    pixels = np.array([[250, 10, 10]] * 5)
    best = contrasting_colour(pixels)
    distances = {name: np.linalg.norm(np.subtract(c, (250, 10, 10)))
                 for name, c in PALETTE.items()}
    assert best == PALETTE[max(distances, key=distances.get)]
    assert best == PALETTE["cyan"]  # cyan is red's complement
    # on a grey surround cyan would turn the red object grey: another colour wins
    around = np.array([[128, 128, 128]] * 5)
    chosen = contrasting_colour(pixels, around)
    assert chosen != PALETTE["cyan"]
    tinted = 0.5 * np.array([250, 10, 10]) + 0.5 * np.array(chosen)
    assert np.linalg.norm(tinted - 128) > 100
    # surroundings half grey, half another red object: still not the colour that turns
    # the object grey (the mean of the surroundings would be a reddish grey)
    mixed = np.array([[128, 128, 128]] * 50 + [[250, 10, 10]] * 50)
    assert contrasting_colour(pixels, mixed, alpha=0.6) != PALETTE["cyan"]
    assert contrasting_colour(np.zeros((0, 3))) == PALETTE["magenta"]


def test_fixed_colour_is_kept():
    image, mask = scene((100, 100, 100))
    out = np.asarray(result(mask, image).overlay(color=(0, 200, 0), outline=False))
    inside = interior(mask)
    expected = np.round(0.4 * image[inside] + 0.6 * np.array([0, 200, 0]))
    np.testing.assert_array_equal(out[inside], expected)


@pytest.mark.parametrize("text, rgb", [
    ("auto", None), ("magenta", (255, 0, 255)), ("#00ff80", (0, 255, 128)),
    ("10, 20,30", (10, 20, 30)), ("WHITE", (255, 255, 255)),
])
def test_parse_colour(text, rgb):
    assert parse_colour(text) == rgb


@pytest.mark.parametrize("text", ["mauve", "#12345", "1,2", "1,2,300", "#gg0000", ""])
def test_parse_colour_refuses_bad_colours(text):
    with pytest.raises(InvalidInputError, match="unknown colour"):
        parse_colour(text)
