"""A bounded fuzzing pass over `wsris segment`: random images, texts, options and output
paths. Whatever goes in, the exit code is one of the documented ones, nothing ends in a
traceback, and no file but the run's own outputs is created, changed or removed."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.test_api import scene
from wsris.cli import main
from wsris.cli.outputs import numbered

#: The exit codes docs/cli.md documents (0 success, 2 usage, 3-11 wsris errors).
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}

# Mostly inputs that reach the model (a run that fails early proves less), some that
# must not.
IMAGES = ["scene.png"] * 6 + ["other.png", "folder/inside.png", "garbage.png", "empty.png",
                              "notes.txt", "missing.png", "folder", "scene.png?x"]
SUFFIXES = [".png"] * 6 + [".PNG", ".jpg", ".h5", "", ".png.part", ".bmp", ".webp"]
OUTPUTS = st.one_of(
    st.tuples(st.sampled_from(["o", "a/b/o", "scene", "other", ".hidden", "o o", "ü"]),
              st.sampled_from(SUFFIXES)).map(lambda t: t[0] + t[1]),
    st.sampled_from(["scene.png", "other.png", "folder", "notes.txt", "/proc/x.png",
                     "folder/inside.png", "../escape.png"]))
GOOD_TEXTS = st.sampled_from(["the red square", "blue", "left of the circle", "the big one",
                              "[CLS] [SEP] square", "Ünïcode çircle", "a " * 100])
BAD_TEXTS = st.one_of(st.text(max_size=30),
                      st.sampled_from([" ", "", "\x00", "\ud800", "a" * 5000, "\n\t"]))
TEXTS = st.one_of(st.lists(GOOD_TEXTS, min_size=1, max_size=3),
                  st.lists(st.one_of(GOOD_TEXTS, BAD_TEXTS), min_size=1, max_size=3))
SIDE_OUTPUTS = st.one_of(
    st.tuples(st.sampled_from(["ov", "c/hm", "scene"]), st.sampled_from(SUFFIXES)).map(
        lambda t: t[0] + t[1]), OUTPUTS)


def sandbox(root: Path) -> None:
    Image.fromarray(scene()).save(root / "scene.png")
    Image.fromarray(scene()[::-1].copy()).save(root / "other.png")
    (root / "garbage.png").write_bytes(b"\x89PNG not really")
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("keep me\n")
    (root / "folder").mkdir()
    Image.fromarray(scene()[:, ::-1].copy()).save(root / "folder" / "inside.png")


def snapshot(root: Path) -> dict[str, str]:
    base = root.parent
    return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(base.rglob("*")) if p.is_file()}


@st.composite
def invocation(draw):
    image = draw(st.sampled_from(IMAGES))
    texts = draw(TEXTS)
    out = draw(OUTPUTS)
    options: list[str] = []
    extras: dict[str, str] = {}
    if draw(st.booleans()):
        options.append("--overwrite")
    if draw(st.booleans()):
        options += ["--threshold", draw(st.sampled_from(["0.5", "0.2", "0.9", "1.5", "nan"]))]
    if draw(st.booleans()):
        options += ["--format", draw(st.sampled_from(["png", "jpeg", "bmp", "tiff", "gif"]))]
    if draw(st.booleans()):
        extras["--overlay"] = draw(SIDE_OUTPUTS)
    if draw(st.booleans()):
        extras["--heatmap"] = draw(SIDE_OUTPUTS)
    if draw(st.booleans()):
        options += ["--on-error", draw(st.sampled_from(["skip", "fail"]))]
    if draw(st.booleans()):
        options.append("--json")
    return image, texts, out, options, extras


def _declared(path: str, count: int, root: Path) -> set[str]:
    """The files a run may write for ``path`` (relative to the sandbox's parent)."""
    target = Path(path) if Path(path).is_absolute() else root / path
    names = {target, *(numbered(target, i, count) for i in range(count))}
    return {str(p.resolve().relative_to(root.parent.resolve())) for p in names
            if p.resolve().is_relative_to(root.parent.resolve())}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=invocation())
def test_segment_fuzz(tiny_folder, case, monkeypatch):
    image, texts, out, options, extras = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "box"
        root.mkdir()
        sandbox(root)
        monkeypatch.chdir(root)
        before = snapshot(root)
        args = ["segment", image, *texts, "--model", str(tiny_folder), "-o", out, *options]
        for flag, value in extras.items():
            args += [flag, value]
        res = CliRunner().invoke(main, args)
        assert res.exit_code in DOCUMENTED, (args, res.output)
        assert res.exception is None or isinstance(res.exception, SystemExit), (
            args, repr(res.exception))
        assert "Traceback" not in res.output
        if res.exit_code != 0:
            assert res.output.strip(), args  # a failure always says why
        after = snapshot(root)
        allowed = set()
        if res.exit_code == 0:
            for path in (out, *extras.values()):
                allowed |= _declared(path, len(texts), root)
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        assert changed <= allowed, (args, sorted(changed - allowed), res.output)
        assert not any(".part" in name and ".wsris-" in name for name in after), args
