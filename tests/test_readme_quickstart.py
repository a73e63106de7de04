"""The README's quickstart does what it says: its command prints the line it shows, its
Python block runs, and the vocabulary it states is the generator's."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
_START = README.index("## Quickstart")
SECTION = README[_START:README.index("\n## ", _START + 5)]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", SECTION, flags=re.S)


@pytest.fixture()
def workdir(tmp_path):
    """A folder with the repository's examples, so outputs land in a temporary out/."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


@pytest.mark.slow
def test_quickstart_command_prints_the_line_shown(workdir):
    command, shown = [line for line in blocks("bash")[0].splitlines() if line.strip()]
    assert command.startswith(".venv/bin/wsris segment ") and shown.startswith("# ")
    args = command.split(maxsplit=1)[1]
    out = subprocess.run([sys.executable, "-m", "wsris.cli", *shlex.split(args)],
                         cwd=workdir, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == shown[2:]
    assert (workdir / "out" / "mask.png").is_file() and (workdir / "out" / "overlay.png").is_file()
    # and out/ is what the repository ignores
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "/out/" in ignored


def test_quickstart_python_runs_and_says_what_it_does(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    code = blocks("python")[0]
    namespace: dict = {}
    exec(compile(code, "README quickstart", "exec"), namespace)  # noqa: S102 (the docs' code)
    result = namespace["result"]
    assert (workdir / "out" / "mask.png").is_file() and (workdir / "out" / "overlay.png").is_file()
    assert "\n" not in repr(result) and "area=" in repr(result)
    assert result.method == "sag"
    assert (result.mask == (result.heatmap >= result.threshold)).all()  # what the text says
    import wsris.weights.manifest

    assert namespace["seg"].name == wsris.weights.manifest.default_model()[0]  # "the default"
    # the command line's printed figures are this result's
    shown = [line for line in blocks("bash")[0].splitlines() if line.startswith("# ")][0]
    assert f"({result.area} px, bbox {result.bbox})" in shown


def test_stated_vocabulary_is_the_generators():
    from wsris.data.shapes_grammar import LOCATIONS, RELATIONS, SHAPES, SIZES, ShapesConfig

    text = " ".join(SECTION.split())
    start = text.index("What the bundled models know")
    stated = text[start:text.index("wsris models --wide", start)]
    config = ShapesConfig()
    for words in (config.colours, config.shapes, SIZES, RELATIONS, LOCATIONS):
        listed = ", ".join(words[:-1]) + " and " + words[-1]
        assert listed in stated, listed
    assert set(config.shapes) <= set(SHAPES)
