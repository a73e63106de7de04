"""The notebooks teach: they need only the installed package, are committed with their
figures, and keep their checks in a last cell (``make test`` also executes every one)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# committed figures stay small: the largest PNG, and all of a notebook's together
MAX_PNG_BYTES = 300_000
MAX_NOTEBOOK_BYTES = 800_000


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_five():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_needs_only_the_installed_package(path):
    code = "\n".join(source(c) for c in cells(path) if c["cell_type"] == "code")
    code = re.sub(r"#.*", "", code)  # comments may name the clone's files
    assert not re.search(r"^\s*(from|import)\s+tests\b", code, flags=re.M)
    assert "sys.path" not in code  # nothing put on the path by hand
    assert "examples/" not in code and '"examples"' not in code  # no file of the clone


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_with_outputs_and_small_figures(path):
    code_cells = [c for c in cells(path) if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code_cells), "not executed (make notebooks)"
    assert not any(o.get("output_type") == "error" for c in code_cells for o in c["outputs"])
    pngs = [base64.b64decode(o["data"]["image/png"]) for c in code_cells
            for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert pngs, "no figure"
    for png in pngs:
        assert len(png) <= MAX_PNG_BYTES and Image.open(io.BytesIO(png)).format == "PNG"
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checks_live_in_the_last_cell(path):
    all_cells = cells(path)
    last = all_cells[-1]
    assert last["cell_type"] == "code" and "assert " in source(last)
    assert "all checks passed" in "".join(
        "".join(o.get("text", "")) for o in last["outputs"])  # it ran to the end
    heading = source(all_cells[-2])
    assert all_cells[-2]["cell_type"] == "markdown" and heading.startswith("## Checks")
    for cell in all_cells[:-1]:
        if cell["cell_type"] == "code":
            assert not re.search(r"^\s*assert\b", source(cell), flags=re.M), source(cell)[:200]


def test_notebook_05_agrees_with_the_readme_on_albef_refcoco():
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "downloaded and converted on first use of `albef-refcoco+`" in readme
    text = " ".join(" ".join(source(c) for c in cells(NOTEBOOKS[4])
                             if c["cell_type"] == "markdown").split())
    assert "downloads it from ALBEF's release and converts it on first use" in text
    assert "cannot download" not in text
