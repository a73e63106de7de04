"""Evaluation survives bad samples: --on-error fail names the sample, skip lists it."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.test_evaluation import ListDataset, TopLeftSegmenter
from tests.test_refer import refer_root  # noqa: F401  (fixture)
from wsris.data.refer import ReferDataset
from wsris.errors import DatasetError, TextError
from wsris.evaluation import evaluate


class StrictSegmenter(TopLeftSegmenter):
    """Refuses empty texts, as the real tokenizer does, and has a tokenizer check."""

    class tokenizer:  # noqa: N801 - mimics Segmenter.tokenizer
        @staticmethod
        def check(texts):
            for t in texts:
                if not t.strip():
                    raise TextError(f"text {t!r} is empty")
            return texts


def _with_bad_sentence(root: Path) -> None:
    path = root / "refcoco+" / "refs(unc).p"
    refs = pickle.loads(path.read_bytes())
    refs[0]["sentences"].append({"sent_id": 777, "sent": "", "raw": ""})
    path.write_bytes(pickle.dumps(refs, protocol=2))


def test_fail_names_dataset_ref_and_sentence(refer_root):  # noqa: F811
    _with_bad_sentence(refer_root)
    ds = ReferDataset(refer_root, "refcoco+", "unc", "val")
    with pytest.raises(TextError, match=r"refcoco\+:unc:val, ref 0, sentence 777, sample 2"):
        evaluate(ds, StrictSegmenter(), progress=False)


def test_skip_leaves_bad_samples_out_and_lists_them(refer_root, tmp_path):  # noqa: F811
    _with_bad_sentence(refer_root)
    ds = ReferDataset(refer_root, "refcoco+", "unc", "val")
    report = evaluate(ds, StrictSegmenter(), progress=False, on_error="skip")
    good = evaluate(ReferDataset(refer_root, "refcoco+", "unc", "val"), StrictSegmenter(),
                    progress=False, limit=2)  # the two good sentences of image 1
    assert report.meta["skipped"] == 1 and report.metrics["model"]["n"] == 3
    assert [s["index"] for s in report.samples] == [0, 1, 3]
    assert report.skipped[0]["sent_id"] == 777 and report.skipped[0]["ref_id"] == 0
    assert report.skipped[0]["error"].startswith("TextError")
    # not scored as zero: the skipped sample changes no figure of the others
    assert [s["model"] for s in report.samples[:2]] == [s["model"] for s in good.samples]
    assert "skipped 1 sample(s)" in report.table() and "sentence 777" in report.table()
    report.save_json(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["skipped"][0]["sent_id"] == 777 and data["meta"]["skipped"] == 1


def test_missing_image_is_found_before_the_model_loads(refer_root, monkeypatch):  # noqa: F811
    from wsris.cli import main

    (refer_root / "images" / "mscoco" / "images" / "train2014"
     / "COCO_train2014_000000000002.png").unlink()
    import wsris.api

    monkeypatch.setattr(wsris.api, "load", lambda *a, **k: pytest.fail("model loaded"))
    res = CliRunner().invoke(main, ["eval", "--model", "albef-chunk-shapes", "--data",
                                    f"refcoco+:unc:val@{refer_root}", "--no-progress"])
    assert res.exit_code == 9 and "1 image file(s) missing" in res.output
    assert "000000000002.png" in res.output
    # skip: the two samples of the other image are scored, the third listed as skipped
    res = CliRunner().invoke(main, ["eval", "--data", f"refcoco+:unc:val@{refer_root}",
                                    "--no-progress", "--on-error", "skip"])
    assert res.exit_code == 0, res.output
    assert "2 samples" in res.output and "1 skipped" in res.output


def test_limit_zero_is_refused():
    from wsris.cli import main

    res = CliRunner().invoke(main, ["eval", "--data", "shapes:val", "--limit", "0"])
    assert res.exit_code == 2 and "0" in res.output
    with pytest.raises(Exception, match="at least 1"):
        evaluate(ListDataset(), TopLeftSegmenter(), limit=0, progress=False)


def test_ctrl_c_exits_130_and_writes_no_json(tmp_path, monkeypatch):
    import wsris.evaluation.loop
    from wsris.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(wsris.evaluation.loop, "evaluate", interrupted)
    out = tmp_path / "e.json"
    res = CliRunner().invoke(main, ["eval", "--data", "shapes:val", "--limit", "2",
                                    "--json", str(out), "--no-progress"])
    assert res.exit_code == 130 and "interrupted" in res.output
    assert list(tmp_path.iterdir()) == []


def test_a_dataset_error_while_reading_is_named(refer_root):  # noqa: F811
    ds = ReferDataset(refer_root, "refcoco+", "unc", "val")
    ds.annotations[20]["segmentation"] = {"size": [5, 5], "counts": [3, 1]}  # sums to 4
    ds._mask_cache.clear()
    with pytest.raises(DatasetError, match="ref 1, sentence 102"):
        evaluate(ds, None, progress=False)
    report = evaluate(ds, None, progress=False, on_error="skip")
    assert report.meta["skipped"] == 1 and report.metrics["all_objects"]["n"] == 2
    assert np.isfinite(report.metrics["all_objects"]["mIoU"])
