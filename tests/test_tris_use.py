"""TRIS models in use: by name (converted on first use, offline and unreachable told
apart), the tokenizer, encode-once, the CLI's --json and folder mode, exports, eval."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from tris_layout import TINY, save_official, stage2_shapes

import wsris
from tests.test_refer import refer_root  # noqa: F401  (a fixture)
from wsris.cli import main
from wsris.errors import TextError, TextWarning, WeightsNotAvailableError
from wsris.methods.tris.convert import convert_tris
from wsris.methods.tris.model import TrisConfig
from wsris.methods.tris.tokenizer import VOCAB_SHA256, ClipTokenizer, vocab_path
from wsris.weights.manifest import Source, get_spec, load_manifest
from wsris.weights.sources import fetch

DATASETS = ("refcoco", "refcocop", "grefgoogle", "grefumd", "referit")


@pytest.fixture(scope="module")
def tris_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("tris_use")
    save_official(root / "stage2_tiny.pth", stage2_shapes(TINY), seed=2)
    return convert_tris(root / "stage2_tiny.pth", root / "model", image_size=64)


def photo() -> np.ndarray:
    rgb = np.random.default_rng(0).integers(0, 256, (45, 60, 3), dtype=np.uint8)
    rgb[:, :30] //= 8
    return rgb


# ------------------------------------------------------------------ tokenizer


def test_tokenizer_ids_are_clips():
    # ids from the official CLIP tokenizer (clip.tokenize) for the same texts
    batch = ClipTokenizer()(["man on the right", "A Café &amp; the dog's toy 12"])
    assert batch.input_ids.shape == (2, 20)
    assert batch.input_ids[0, :6].tolist() == [49406, 786, 525, 518, 1155, 49407]
    assert batch.input_ids[1, :11].tolist() == [49406, 320, 15304, 261, 518, 1929, 568, 5988,
                                                272, 273, 49407]
    assert batch.input_ids[0, 6:].eq(0).all() and batch.attention_mask[0].sum() == 6
    assert hashlib.sha256(vocab_path().read_bytes()).hexdigest() == VOCAB_SHA256


def test_long_text_is_cut_to_twenty_ids_without_its_end_token():
    text = " ".join(["dog"] * 25)
    with pytest.warns(TextWarning, match="end token is cut"):
        batch = ClipTokenizer()(text)
    ids = batch.input_ids[0].tolist()
    assert ids[0] == 49406 and 49407 not in ids and len(ids) == 20
    with pytest.raises(TextError, match="at most 75"):
        ClipTokenizer()(" ".join(["dog"] * 80))
    with pytest.raises(TextError):
        ClipTokenizer()("   ")


# ------------------------------------------------------------------ by name


def test_manifest_names_every_release_asset():
    specs = load_manifest()
    for short in DATASETS:
        for name, stage, release in ((f"tris-{short}", 2, "v1.0.1"),
                                     (f"tris-stage1-{short}", 1, "v1.0.4")):
            spec = specs[name]
            assert spec.method == "tris" and spec.config["architecture"]["stage"] == stage
            (source,) = spec.sources
            assert source.kind == "url" and source.converter == "tris" and source.sha256 is None
            assert source.url.startswith(
                f"https://github.com/fawnliu/storage/releases/download/{release}/stage{stage}_")
            assert TrisConfig.from_dict(spec.config["architecture"]) == TrisConfig(stage=stage)
            assert "No checksum is published" in spec.note


def test_offline_and_unreachable_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("WSRIS_CACHE", str(tmp_path))
    with pytest.raises(WeightsNotAvailableError) as off:
        wsris.load("tris-refcoco", local_files_only=True)
    msg = str(off.value)
    assert "offline: downloads are off" in msg and "wsris download tris-refcoco" in msg
    assert "wsris convert tris FILE DIR" in msg and "stage2_refcoco.pth" in msg
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = get_spec("tris-refcoco")
    spec = dataclasses.replace(spec, sources=(dataclasses.replace(
        spec.sources[0], url=f"http://127.0.0.1:{port}/stage2_refcoco.pth"),))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # HF_HUB_OFFLINE holds for URLs
    with pytest.raises(WeightsNotAvailableError, match="cannot reach http://127.0.0.1") as on:
        fetch(spec, local_files_only=False)
    assert "offline" not in str(on.value) and "wsris convert tris" in str(on.value)


def test_named_model_is_downloaded_and_converted_on_first_use(tmp_path, monkeypatch):
    """The manifest's URL route, end to end, with a file:// URL to a tiny official-layout
    checkpoint (the real files are hundreds of MB and need the network)."""
    from huggingface_hub import constants

    from wsris.api import Segmenter

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # HF_HUB_OFFLINE holds for URLs
    monkeypatch.setenv("WSRIS_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "stage2_refcoco.pth"
    save_official(src, stage2_shapes(TINY), seed=2)
    spec = get_spec("tris-refcoco")
    config = json.loads(json.dumps(spec.config))
    # stage 2 has no hidden_dim of its own: a converted one keeps the default, as in the manifest
    config["architecture"] = TrisConfig.tiny(stage=2, image_size=320, hidden_dim=1024).to_dict()
    spec = dataclasses.replace(spec, config=config, sources=(
        Source("url", url=src.as_uri(), sha256=None, converter="tris"),))
    with pytest.warns(UserWarning, match="no pinned sha256"):
        folder = fetch(spec, local_files_only=False)
    source = json.loads((folder / "config.json").read_text())["source"]
    assert source["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    seg = Segmenter.from_folder(folder, spec.name, device="cpu", spec=spec)
    assert seg.segment(photo(), "the dog").mask.shape == (45, 60)
    assert fetch(spec, local_files_only=True) == folder  # converted once, then cached


# ------------------------------------------------------------------ API and CLI


def test_encode_once_equals_segment(tris_folder):
    seg = wsris.load(tris_folder, device="cpu")
    rgb = photo()
    direct = seg.segment(rgb, ["the dog", "man on the right"])
    encoded = seg.encode(rgb)
    again = seg.segment(encoded, ["the dog", "man on the right"])
    for a, b in zip(direct, again, strict=True):
        assert np.array_equal(a.mask, b.mask) and np.array_equal(a.heatmap, b.heatmap)
    assert 0 < direct[0].mask.mean() < 1
    thr = seg.segment(rgb, "the dog", mask_rule="threshold", threshold=0.5)
    assert np.array_equal(thr.mask, thr.heatmap >= 0.5)


def test_exports(tris_folder):
    from pycocotools import mask as mask_utils

    seg = wsris.load(tris_folder, device="cpu")
    res = seg.segment(photo(), "the dog")
    rle = res.to_rle()
    decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), res.mask)
    detections = res.to_supervision()
    assert np.array_equal(detections.mask[0], res.mask)
    assert res.to_dict()["method"] == "tris"


def test_cli_json_and_folder_mode(tris_folder, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(photo()).save(photos / name)
    runner = CliRunner()
    one = runner.invoke(main, ["segment", str(photos / "a.png"), "the dog", "--model",
                               str(tris_folder), "--json", "--out", str(tmp_path / "a.png")])
    assert one.exit_code == 0, one.output
    report = json.loads(one.stdout)
    mask = np.asarray(Image.open(tmp_path / "a.png")) == 255
    assert report["results"][0]["area"] == int(mask.sum()) > 0
    many = runner.invoke(main, ["segment", str(photos), "the dog", "--model", str(tris_folder),
                                "--out-dir", str(tmp_path / "masks"), "--json",
                                "--no-progress"])
    assert many.exit_code == 0, many.output
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["a.png", "b.png"]
    assert len(json.loads(many.stdout)["images"]) == 2


def test_eval_on_refer_data(tris_folder, refer_root, tmp_path):  # noqa: F811
    from wsris.cli.eval import eval_command

    out = tmp_path / "report.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(eval_command, [
            "--model", str(tris_folder), "--data", f"refcoco+:unc:val@{refer_root}",
            "--json", str(out), "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    model = report["metrics"]["model"]
    for key in ("mIoU", "cIoU", "Pr@0.5", "PointM", "PointB"):
        assert 0.0 <= model[key] <= 1.0
    assert model["n"] == 3 and "pointing (%)" in res.output
    ious = [r["model"]["iou"] for r in report["samples"]]
    assert model["mIoU"] == pytest.approx(float(np.mean(ious)))
    assert model["PointM"] == pytest.approx(
        np.mean([r["model"]["point_mask"] for r in report["samples"]]))
    assert model["PointB"] >= model["PointM"]  # the box holds the mask


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(tris_folder):
    rgb = photo()
    cpu = wsris.load(tris_folder, device="cpu").segment(rgb, ["the dog", "man on the right"])
    gpu_seg = wsris.load(tris_folder, device="cuda")
    gpu = gpu_seg.segment(gpu_seg.encode(rgb), ["the dog", "man on the right"])
    for a, b in zip(cpu, gpu, strict=True):
        assert np.abs(a.stages["map"].numpy() - b.stages["map"].numpy()).max() < 1e-3
        assert (a.mask != b.mask).mean() < 0.01
