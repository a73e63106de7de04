"""The domain check: photographs are outside what the Shapes-Ref models know, Shapes-Ref
and drawings pictures inside, and segment says so once."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import wsris
from wsris.cli import main
from wsris.data.shapes import ShapesRef
from wsris.domain import SHAPES_DOMAIN, DomainWarning, image_statistics, judge

skdata = pytest.importorskip("skimage.data")

# Every photograph scikit-image ships without a download (the others are drawings,
# masks or phantoms: binary_blobs, checkerboard, colorwheel, horse, logo, shepp_logan).
PHOTOS = ["astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee",
          "coins", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
          "microaneurysms", "moon", "page", "retina", "rocket", "text"]


def _rgb(array: np.ndarray) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return np.ascontiguousarray(a[..., :3]).astype(np.uint8)


@pytest.mark.parametrize("name", PHOTOS)
def test_every_scikit_image_photograph_is_outside_the_shapes_domain(name):
    j = judge(_rgb(getattr(skdata, name)()), SHAPES_DOMAIN)
    assert not j.in_domain and j.score <= 0.5


@pytest.mark.parametrize("split", ["val", "drawings"])
def test_shapes_pictures_are_inside(split):
    ds = ShapesRef(split)
    flagged = [i for i in range(40) if not judge(ds[i].image, SHAPES_DOMAIN).in_domain]
    assert flagged == []


def test_statistics_on_hand_made_pictures():
    red = np.zeros((64, 64, 3), np.uint8)
    red[...] = 255
    red[16:48, 16:48] = (220, 35, 35)
    s = image_statistics(red, SHAPES_DOMAIN["palette"])
    # the 3x3 median rounds off the square's four corner pixels
    assert s["palette_fit"] == 1.0 and s["coloured"] == pytest.approx((32 * 32 - 4) / 64**2)
    assert s["flat_grey"] == 1.0  # white and the red square's grey level
    brown = red.copy()
    brown[16:48, 16:48] = (140, 80, 30)  # a colour none of the domain's is near
    assert image_statistics(brown, SHAPES_DOMAIN["palette"])["palette_fit"] == 0.0
    assert judge(red, SHAPES_DOMAIN).in_domain and not judge(brown, SHAPES_DOMAIN).in_domain


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(path)
    return path


@pytest.fixture()
def domain_folder(tiny_folder, tmp_path):
    """The tiny test model with the Shapes-Ref domain in its config."""
    seg = wsris.load(tiny_folder, device="cpu")
    seg.config = {**copy.deepcopy(seg.config), "domain": SHAPES_DOMAIN}
    return seg.save_pretrained(tmp_path / "with-domain")


def test_segment_warns_once_with_a_filterable_category_and_flags_the_result(
        domain_folder, astronaut):
    seg = wsris.load(domain_folder, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = seg.segment(astronaut, ["the red square", "the woman"])
    domain = [w for w in caught if issubclass(w.category, DomainWarning)]
    assert len(domain) == 1
    assert "drawings of flat-coloured shapes" in str(domain[0].message)
    assert "unreliable" in str(domain[0].message)
    assert all(r.in_domain is False and r.domain_score <= 0.5 for r in results)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=DomainWarning)
        seg.segment(astronaut, "the red square")  # filtered: no error raised
    encoded = seg.encode(ShapesRef("val")[0].image)
    r = seg.segment(encoded, "the red circle")
    assert r.in_domain is True and r.domain_score > 0.5


def test_a_config_without_a_domain_judges_nothing(tiny_folder, astronaut):
    seg = wsris.load(tiny_folder, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DomainWarning)
        r = seg.segment(astronaut, "the red square")
    assert r.in_domain is None and r.domain_score is None


def test_cli_prints_one_line_on_a_photograph(domain_folder, astronaut, tmp_path):
    res = CliRunner().invoke(main, ["segment", str(astronaut), "the red square", "--model",
                                    str(domain_folder), "-o", str(tmp_path / "m.png")])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if "does not look like" in ln]
    assert len(lines) == 1 and lines[0].startswith("wsris: warning: ")


def test_bundled_shapes_models_carry_their_domain():
    from wsris.weights.manifest import get_spec

    for name in ("sag-shapes", "albef-chunk-shapes"):
        assert get_spec(name).config["domain"]["name"] == "shapes-ref"


def test_a_drawing_made_with_pil_named_colours_is_inside():
    from PIL import ImageDraw

    img = Image.new("RGB", (640, 480), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse((60, 180, 180, 300), fill="red")
    draw.rectangle((270, 180, 390, 300), fill="blue")
    draw.polygon([(520, 170), (460, 300), (580, 300)], fill="green")
    assert judge(np.asarray(img), SHAPES_DOMAIN).in_domain
