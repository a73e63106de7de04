"""wsris.load and Segmenter end to end, on tiny models and a hand-made Hub cache."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import wsris
from tests.hub_cache import populate_hub_cache
from wsris.api import Segmenter
from wsris.errors import (
    DeviceError,
    InvalidInputError,
    TextError,
    UnknownModelError,
    UnpublishedModelError,
    WeightsMismatchError,
    WeightsNotAvailableError,
)
from wsris.methods.sag.model import SagConfig

COMMIT = "abcdef0123456789abcdef0123456789abcdef01"


def tiny_sag_config() -> dict:
    return {
        "method": "sag",
        "architecture": SagConfig.tiny(image_size=32, iterations=2).to_dict(),
        "preprocessing": {"size": [32, 32], "mean": [0.5] * 3, "std": [0.5] * 3,
                          "interpolation": "bilinear"},
        "text": {"style": "bert", "max_length": 16},
        "inference": {"threshold": 0.5, "combine": "product", "slot_init": "sample",
                      "seed": 0},
    }


def scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.full((45, 60, 3), 40, np.uint8)
    img[5:20, 5:25] = (220, 30, 30)
    img[25:40, 30:55] = (30, 30, 220)
    return np.clip(img + rng.integers(0, 10, img.shape), 0, 255).astype(np.uint8)


def test_folder_round_trip_gives_identical_outputs(tiny_folder, tmp_path):
    seg = wsris.load(tiny_folder, device="cpu")
    assert isinstance(seg, Segmenter) and seg.method == "sag" and seg.name == "tiny"
    again = wsris.load(seg.save_pretrained(tmp_path / "copy"))
    a = seg.segment(scene(), "the red square")
    b = again.segment(scene(), "the red square")
    np.testing.assert_array_equal(a.heatmap, b.heatmap)
    card = (tmp_path / "copy" / "README.md").read_text()
    assert card.startswith("---\n") and "\n# tiny\n" in card  # Hub YAML header, then title


def test_results_are_at_original_size_and_consistent(tiny_folder):
    seg = wsris.load(str(tiny_folder))
    one = seg.segment(scene(), "the red square")
    many = seg.segment(scene(), ["the red square", "the blue one"])
    assert isinstance(many, list) and len(many) == 2
    assert one.mask.shape == one.heatmap.shape == (45, 60) and one.mask.dtype == bool
    assert one.heatmap.dtype == np.float32
    assert 0.0 <= one.heatmap.min() and one.heatmap.max() <= 1.0
    assert one.heatmap.max() > 0.999  # min-max normalised (eps 1e-9 in the denominator)
    np.testing.assert_array_equal(one.mask, one.heatmap >= one.threshold)
    # texts batched together give the same low-resolution map as one text alone
    torch.testing.assert_close(many[0].stages["map"], one.stages["map"], rtol=1e-4, atol=1e-7)
    assert many[1].text == "the blue one" and one.model == "tiny"
    assert set(one.stages) >= {"a_slot", "a_fuse"}
    lower = seg.segment(scene(), "the red square", threshold=0.1)
    assert lower.area >= one.area and lower.threshold == 0.1


def test_every_image_type_gives_the_same_mask(tiny_folder, tmp_path):
    seg = wsris.load(tiny_folder)
    img = scene()
    Image.fromarray(img).save(tmp_path / "s.png")
    ref = seg.segment(img, "red")
    assert 0 < ref.area < ref.mask.size  # a mask with both values, so equality means something
    for variant in (
        tmp_path / "s.png",
        str(tmp_path / "s.png"),
        Image.fromarray(img),
        img.astype(np.float32) / 255.0,
        torch.from_numpy(img).permute(2, 0, 1),
        np.dstack([img, np.full(img.shape[:2], 255, np.uint8)]),
        img.astype(np.uint16) * 257,
    ):
        got = seg.segment(variant, "red")
        np.testing.assert_array_equal(got.mask, ref.mask)
        np.testing.assert_array_equal(got.heatmap, ref.heatmap)


def test_bad_text_threshold_and_options(tiny_folder):
    seg = wsris.load(tiny_folder)
    with pytest.raises(TextError):
        seg.segment(scene(), "")
    with pytest.raises(TextError):
        seg.segment(scene(), [])
    for bad in (None, 5, {"red"}):
        with pytest.raises(TextError, match="expected text"):
            seg.segment(scene(), bad)
    with pytest.raises(InvalidInputError, match="threshold"):
        seg.segment(scene(), "red", threshold=1.5)
    with pytest.raises(InvalidInputError, match="unknown option.*stagez"):
        seg.segment(scene(), "red", stagez=("gradcam",))
    assert seg.segment(scene(), "red", combine="max").mask.shape == (45, 60)


@pytest.mark.parametrize("model", ["tiny", "albef-chunk-shapes"])
def test_both_methods_warn_about_text_the_same_way(tiny_folder, model):
    from wsris.domain import DomainWarning
    from wsris.errors import TextWarning

    seg = wsris.load(tiny_folder if model == "tiny" else model, device="cpu")
    long_text = " ".join(["red"] * 50)  # over max_words (chunk) and max_length (both)
    with pytest.warns(TextWarning) as caught:
        # the scene's blue is no Shapes-Ref colour: the domain check is not under test
        warnings.filterwarnings("ignore", category=DomainWarning)
        seg.segment(scene(), long_text)
    assert all(issubclass(w.category, TextWarning) for w in caught)
    assert any("truncated" in str(w.message) or "cut to" in str(w.message) for w in caught)
    assert all("\n" not in str(w.message) for w in caught)


def test_a_folder_name_without_a_slash_loads(tiny_folder, tmp_path, monkeypatch):
    _copy(tiny_folder, tmp_path / "m768")
    monkeypatch.chdir(tmp_path)
    assert wsris.load("m768").method == "sag"  # was UnknownModelError: taken as a manifest name
    _copy(tiny_folder, tmp_path / "sag-refcoco")  # also a manifest name: ambiguous
    with pytest.raises(UnknownModelError, match="both a model in the manifest and a folder"):
        wsris.load("sag-refcoco")
    assert wsris.load("./sag-refcoco").method == "sag"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownModelError, match="not a model folder"):
        wsris.load("empty")


def test_half_weights_file_loads_as_float32(tiny_folder, tmp_path):
    seg = wsris.load(tiny_folder)
    half = seg.save_pretrained(tmp_path / "half", weights_dtype="float16")
    assert (half / "model.safetensors").stat().st_size < (
        tiny_folder / "model.safetensors").stat().st_size * 0.6
    loaded = wsris.load(half)
    for (k, a), (_, b) in zip(seg.model.state_dict().items(),
                              loaded.model.state_dict().items(), strict=True):
        assert b.dtype == a.dtype
        torch.testing.assert_close(b, a.half().to(a.dtype), rtol=0, atol=0, msg=k)


def _copy(src, dst):
    dst.mkdir(parents=True)
    for f in ("config.json", "model.safetensors"):
        (dst / f).write_bytes((src / f).read_bytes())
    return dst


def test_missing_unexpected_and_corrupt_weights_are_refused(tiny_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(tiny_folder / "model.safetensors")
    bad = _copy(tiny_folder, tmp_path / "missing")
    dropped = sorted(state)[0]
    save_file({k: v for k, v in state.items() if k != dropped}, bad / "model.safetensors")
    with pytest.raises(WeightsMismatchError, match=f"missing keys: \\['{dropped}'\\]"):
        wsris.load(bad)
    extra = _copy(tiny_folder, tmp_path / "extra")
    save_file({**state, "bogus.weight": torch.zeros(1)}, extra / "model.safetensors")
    with pytest.raises(WeightsMismatchError, match="unexpected keys: \\['bogus.weight'\\]"):
        wsris.load(extra)
    cut = _copy(tiny_folder, tmp_path / "cut")
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsMismatchError, match="safetensors"):
        wsris.load(cut)
    other = _copy(tiny_folder, tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    config["architecture"]["dim"] = 32
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsMismatchError):
        wsris.load(other)


def test_hf_hub_reference_loads_through_the_cache(tiny_folder, tmp_path):
    files = {f: (tiny_folder / f).read_bytes() for f in ("config.json", "model.safetensors")}
    populate_hub_cache(tmp_path, "someone/tiny-sag", COMMIT, files)
    seg = wsris.load(f"hf-hub:someone/tiny-sag@{COMMIT}", cache_dir=tmp_path,
                     local_files_only=True)
    assert seg.name == f"hf-hub:someone/tiny-sag@{COMMIT}"
    ref = wsris.load(tiny_folder).segment(scene(), "red").heatmap
    np.testing.assert_array_equal(seg.segment(scene(), "red").heatmap, ref)
    with pytest.raises(WeightsNotAvailableError):
        wsris.load("hf-hub:someone/absent", cache_dir=tmp_path, local_files_only=True)


def test_names_resolve_through_the_manifest():
    seg = wsris.load("albef-chunk-shapes", device="cpu")
    assert seg.method == "chunk" and seg.spec is not None
    assert seg.threshold == seg.spec.threshold
    with pytest.raises(UnknownModelError, match="Did you mean 'albef-chunk-shapes'"):
        wsris.load("albef-chunk-shape")
    with pytest.raises(UnpublishedModelError, match="configs/sag_refcoco.yaml"):
        wsris.load("sag-refcoco")
    with pytest.raises(UnknownModelError, match="not a folder"):
        wsris.load("./no/such/folder")


def test_url_model_offline_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("WSRIS_CACHE", str(tmp_path))
    with pytest.raises(WeightsNotAvailableError, match="wsris convert albef"):
        wsris.load("albef-refcoco+", local_files_only=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only errors")
def test_device_and_dtype_errors(tiny_folder):
    with pytest.raises(DeviceError, match="CUDA"):
        wsris.load(tiny_folder, device="cuda")
    with pytest.raises(DeviceError, match="only on CUDA"):
        wsris.load(tiny_folder, dtype="bfloat16")


def test_to_supervision(tiny_folder):
    sv = pytest.importorskip("supervision")
    det = wsris.load(tiny_folder).segment(scene(), "red").to_supervision()
    assert isinstance(det, sv.Detections) and det.mask.shape == (1, 45, 60)
