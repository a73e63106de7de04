"""The README states what the code does: figures it quotes are read from the code."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_proposal_resolution_is_the_constant():
    from wsris.methods.chunk.pipeline import PROPOSAL_MAX_SIDE

    stated = re.findall(r"proposals[^.]*?at most (\d+) px on the long side", README)
    assert stated, "the README no longer states the proposal resolution"
    assert {int(s) for s in stated} == {PROPOSAL_MAX_SIDE}


def test_readme_exit_codes_match_the_error_classes():
    import wsris.errors as errors

    start = README.index("| error | when | CLI exit code |")
    section = README[start:README.index("\n\n", start)]
    table = re.findall(r"^\| `(\w+)`[^|]*\|[^|]*\| (\d+) \|$", section, flags=re.M)
    assert len(table) >= 8
    for name, code in table:
        assert getattr(errors, name).exit_code == int(code), name
