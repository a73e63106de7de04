"""The Shapes-Ref cache holds exactly the generator's scenes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from wsris.data.shapes import ShapesRef
from wsris.data.shapes_cache import CachedShapes, write_shapes_cache
from wsris.errors import DatasetError, InvalidInputError
from wsris.training.data import referring_dataset


def _same_scene(a, b) -> None:
    assert np.array_equal(a.image, b.image)
    assert [e.__dict__ for e in a.expressions] == [e.__dict__ for e in b.expressions]
    assert len(a.objects) == len(b.objects)
    for x, y in zip(a.objects, b.objects, strict=True):
        assert np.array_equal(x.mask, y.mask)
        for field in ("shape", "colour", "size", "center", "radius", "bbox", "rgb"):
            assert tuple(np.atleast_1d(getattr(x, field))) == tuple(
                np.atleast_1d(getattr(y, field))), field


@pytest.mark.parametrize("variant,workers", [("default", 1), ("attributes", 2)])
def test_cache_equals_generator(tmp_path, variant, workers):
    folder = write_shapes_cache(tmp_path / "c", "train", 12, variant=variant, seed=3,
                                workers=workers)
    cached = CachedShapes(folder)
    generated = ShapesRef("train", variant=variant, seed=3, length=12)
    assert len(cached) == 12
    assert cached.config == generated.config
    for i in range(12):
        _same_scene(cached[i], generated[i])
    # the flat referring view (what training reads) agrees sample by sample
    a, b = cached.referring(), generated.referring()
    assert len(a) == len(b) == 24
    for i in (0, 5, 23):
        x, y = a[i], b[i]
        fields = ("sample_id", "text", "kind", "image_id")
        assert [getattr(x, f) for f in fields] == [getattr(y, f) for f in fields]
        assert np.array_equal(x.mask, y.mask)


def test_cache_data_spec_and_cli(tmp_path):
    from wsris.cli import main

    out = tmp_path / "cli"
    result = CliRunner().invoke(main, ["data", "cache", "shapes:val", str(out), "--n", "3",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    data = referring_dataset(f"cache:{out}")
    assert data[0].text == ShapesRef("val").referring()[0].text
    # an existing cache is not replaced without --overwrite
    again = CliRunner().invoke(main, ["data", "cache", "shapes:val", str(out), "--n", "3"])
    assert again.exit_code != 0 and "overwrite" in again.output
    bad = CliRunner().invoke(main, ["data", "cache", "refcoco:val", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "shapes:SPLIT" in bad.output


def test_incomplete_or_foreign_folders_are_refused(tmp_path):
    folder = write_shapes_cache(tmp_path / "c", "val", 2)
    (folder / "cache.json").unlink()  # as after an interrupted write
    with pytest.raises(DatasetError, match="not a complete"):
        CachedShapes(folder)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="not a Shapes-Ref cache"):
        write_shapes_cache(other, "val", 2, overwrite=True)
    assert (other / "holiday.jpg").exists()
    folder = write_shapes_cache(tmp_path / "d", "val", 2)
    meta = json.loads((folder / "cache.json").read_text())
    meta["n"] = 5  # arrays too short for the stated size
    (folder / "cache.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError):
        CachedShapes(folder)


def test_cached_spec_writes_once_then_reads_and_checks(tmp_path):
    folder = tmp_path / "attr"
    spec = f"shapes:train?variant=attributes&seed=2&length=4&cache={folder}"
    first = referring_dataset(spec)
    assert (folder / "cache.json").is_file()
    again = referring_dataset(spec)  # read back, not rewritten
    generated = ShapesRef("train", variant="attributes", seed=2, length=4).referring()
    for i in range(8):
        assert first[i].text == again[i].text == generated[i].text
    with pytest.raises(InvalidInputError, match="asks for"):
        referring_dataset(f"shapes:train?variant=attributes&seed=3&length=4&cache={folder}")
    with pytest.raises(InvalidInputError, match="length"):
        referring_dataset(f"shapes:train?cache={tmp_path / 'y'}")
