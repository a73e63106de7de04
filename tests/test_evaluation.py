"""The evaluation loop, its CLI and sharding, with fake segmenters whose figures are known."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from wsris.data.base import RefSample
from wsris.data.shapes import ShapesRef
from wsris.errors import InvalidInputError
from wsris.evaluation import evaluate

REPO = Path(__file__).resolve().parents[1]


@dataclass
class _Result:
    mask: np.ndarray


class ListDataset:
    """A hand-made dataset: two samples on image A, one on image B (all 4x4)."""

    name = "hand"

    def __init__(self) -> None:
        tl = np.zeros((4, 4), dtype=bool)
        tl[:2, :2] = True
        br = np.zeros((4, 4), dtype=bool)
        br[2:, 2:] = True
        row = np.zeros((4, 4), dtype=bool)
        row[0] = True
        a = np.zeros((4, 4, 3), np.uint8)
        b = np.full((4, 4, 3), 9, np.uint8)
        self.samples = [
            RefSample("s0", "A", a, "top left", tl, [tl, br], "attribute"),
            RefSample("s1", "A", a, "bottom right", br, [tl, br], "relation"),
            RefSample("s2", "B", b, "top row", row, [row], "attribute"),
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> RefSample:
        return self.samples[i]

    def image_key(self, i: int) -> str:
        return self.samples[i].image_id


class TopLeftSegmenter:
    """Always predicts the top-left 2x2 block; records its calls."""

    name, method = "top-left", "chunk"

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[str], dict]] = []

    def segment(self, image, texts, **options):
        self.calls.append((int(image[0, 0, 0]), list(texts), options))
        m = np.zeros(image.shape[:2], dtype=bool)
        m[:2, :2] = True
        return [_Result(m) for _ in texts]


class OracleSegmenter:
    """Returns the ground truth (looked up by image bytes and text), or nothing."""

    name, method = "oracle", "sag"

    def __init__(self, dataset, empty: bool = False) -> None:
        self.table = {(dataset[i].image.tobytes(), dataset[i].text): dataset[i].mask
                      for i in range(len(dataset))}
        self.empty = empty

    def segment(self, image, texts, **options):
        out = []
        for t in texts:
            m = self.table[(image.tobytes(), t)]
            out.append(_Result(np.zeros_like(m) if self.empty else m))
        return out


class NoisySegmenter:
    """Random masks from torch's global RNG: equal across runs only if seeding is right."""

    name, method = "noisy", "sag"

    def segment(self, image, texts, **options):
        h, w = image.shape[:2]
        return [_Result((torch.rand(h, w) > 0.6).numpy()) for _ in texts]


def test_hand_computed_metrics_and_grouping():
    seg = TopLeftSegmenter()
    r = evaluate(ListDataset(), seg, method_options={"stages": ("gradcam",)}, progress=False)
    m = r.metrics["model"]
    # IoUs: s0 = 1; s1 = 0 (I 0, U 8); s2 = I 2 / U 6 = 1/3.
    assert m["mIoU"] == pytest.approx(4 / 9)
    assert m["cIoU"] == pytest.approx(6 / 18)
    assert (m["Pr@0.3"], m["Pr@0.5"], m["Pr@0.7"]) == pytest.approx((2 / 3, 1 / 3, 1 / 3))
    assert m["precision"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert m["recall"] == pytest.approx((1 + 0 + 0.5) / 3)
    # One call per image, with all of its texts and the variant's options.
    assert seg.calls == [(0, ["top left", "bottom right"], {"stages": ("gradcam",)}),
                         (9, ["top row"], {"stages": ("gradcam",)})]
    # Baselines: all objects = IoU .5, .5, 1; the centred box [1:3, 1:3] overlaps each
    # 2x2 corner in one pixel (1/7) and misses the top row.
    assert r.metrics["all_objects"]["mIoU"] == pytest.approx(2 / 3)
    assert r.metrics["centre_box"]["mIoU"] == pytest.approx(2 / 21)
    # Per kind: attribute = s0, s2; relation = s1.
    assert r.by_kind["attribute"]["model"]["mIoU"] == pytest.approx((1 + 1 / 3) / 2)
    assert r.by_kind["relation"]["model"]["n"] == 1
    assert [s["model"]["iou"] for s in r.samples] == pytest.approx([1, 0, 1 / 3])
    assert r.meta["model"] == "top-left" and r.meta["method_options"] == {
        "stages": ["gradcam"]}
    assert "mIoU" in r.table() and "random object" in r.table()


def test_oracle_empty_limit_and_json(tmp_path: Path):
    ds = ShapesRef("val", length=4).referring()
    r = evaluate(ds, OracleSegmenter(ds), progress=False)
    assert r.metrics["model"]["mIoU"] == 1.0 and r.metrics["model"]["Pr@0.9"] == 1.0
    assert r.metrics["model"]["cIoU"] == 1.0 and r.metrics["model"]["recall"] == 1.0
    r = evaluate(ds, OracleSegmenter(ds, empty=True), limit=5, baselines=False,
                 progress=False)
    assert list(r.metrics) == ["model"] and r.metrics["model"]["n"] == 5
    assert r.metrics["model"]["mIoU"] == 0.0 and r.metrics["model"]["precision"] == 0.0
    r.save_json(tmp_path / "out.json")
    data = json.loads((tmp_path / "out.json").read_text())
    assert [s["index"] for s in data["samples"]] == [0, 1, 2, 3, 4]
    assert all(s["model"]["iou"] == 0.0 for s in data["samples"])
    assert data["samples"][0]["text"] == ds[0].text


def test_bad_calls():
    class WrongSize(TopLeftSegmenter):
        def segment(self, image, texts, **options):
            return [_Result(np.zeros((2, 2), bool)) for _ in texts]

    with pytest.raises(InvalidInputError, match="original image size"):
        evaluate(ListDataset(), WrongSize(), progress=False)
    with pytest.raises(InvalidInputError, match="nothing to evaluate"):
        evaluate(ListDataset(), None, baselines=False, progress=False)


def test_seeded_randomness_is_reproducible():
    ds = ShapesRef("val", length=3).referring()
    a = evaluate(ds, NoisySegmenter(), seed=1, progress=False)
    b = evaluate(ds, NoisySegmenter(), seed=1, progress=False)
    c = evaluate(ds, NoisySegmenter(), seed=2, progress=False)
    assert a.samples == b.samples and a.metrics == b.metrics
    assert a.metrics["model"] != c.metrics["model"]


def _shard_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        ds = ShapesRef("val", length=5).referring()
        r = evaluate(ds, NoisySegmenter(), seed=3, progress=False)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(r.to_dict()))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # several processes
def test_two_process_gloo_shards_equal_single_process(tmp_path: Path):
    single = evaluate(ShapesRef("val", length=5).referring(), NoisySegmenter(), seed=3,
                      progress=False)
    torch.multiprocessing.spawn(_shard_worker, args=(2, str(tmp_path / "init"), str(tmp_path)),
                                nprocs=2, join=True)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["meta"]["world_size"] == 2
        assert got["samples"] == json.loads(json.dumps(single.samples))
        assert got["metrics"] == single.metrics
        assert got["by_kind"] == single.by_kind


@pytest.mark.slow  # several processes
def test_torchrun_cli_matches_single_process(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = ["-m", "wsris.cli", "eval", "--data", "shapes:test", "--limit", "12",
            "--no-progress", "--seed", "4"]
    subprocess.run([sys.executable, *args, "--json", str(tmp_path / "one.json")],
                   check=True, env=env, capture_output=True, cwd=tmp_path, timeout=120)
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(port)]
    proc = subprocess.run([*torchrun, *args, "--json", str(tmp_path / "two.json")],
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["meta"]["world_size"] == 2 and one["meta"]["world_size"] == 1
    assert one["metrics"] == two["metrics"] and one["samples"] == two["samples"]


def test_eval_cli_baselines_and_exported_data(tmp_path: Path):
    from wsris.cli.data import data_group
    from wsris.cli.eval import eval_command

    runner = CliRunner()
    res = runner.invoke(eval_command, ["--data", "shapes:val", "--limit", "6", "--json",
                                       str(tmp_path / "gen.json"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "random object" in res.output and "Pr@0.9" in res.output
    res = runner.invoke(data_group, ["export-shapes", str(tmp_path / "ex"), "--split", "val",
                                     "--n", "3", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ex" / "shapes" / "refs(unc).p").is_file()
    res = runner.invoke(eval_command, ["--data", f"shapes:unc:val@{tmp_path / 'ex'}",
                                       "--json", str(tmp_path / "ex.json"), "--no-progress"])
    assert res.exit_code == 0, res.output
    gen = json.loads((tmp_path / "gen.json").read_text())
    ex = json.loads((tmp_path / "ex.json").read_text())
    # The export holds the same 6 samples: the baselines score exactly the same.
    assert gen["metrics"] == ex["metrics"]
    assert [s["text"] for s in gen["samples"]] == [s["text"] for s in ex["samples"]]
    from wsris.evaluation import load_dataset

    assert len(load_dataset("shapes:val")) == 2000
    assert load_dataset(f"shapes:unc:val@{tmp_path / 'ex'}")[0].text == gen["samples"][0]["text"]
    res = runner.invoke(eval_command, ["--data", "shapes:val", "--variant", "max"])
    assert isinstance(res.exception, InvalidInputError)
    res = runner.invoke(eval_command, ["--data", "nonsense"])
    assert isinstance(res.exception, InvalidInputError)
