"""The documentation states what the code does: figures it quotes are read from the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CHUNK = (ROOT / "docs" / "chunk.md").read_text(encoding="utf-8")
CLI = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def test_docs_proposal_resolution_is_the_constant():
    from wsris.methods.chunk.pipeline import PROPOSAL_MAX_SIDE

    stated = re.findall(r"proposals[^.]*?at most (\d+) px on the long side", CHUNK)
    assert stated, "docs/chunk.md no longer states the proposal resolution"
    assert {int(s) for s in stated} == {PROPOSAL_MAX_SIDE}


def test_docs_exit_codes_match_the_error_classes():
    import wsris.errors as errors

    start = CLI.index("| error | when | CLI exit code |")
    section = CLI[start:CLI.index("\n\n", start)]
    table = re.findall(r"^\| `(\w+)`[^|]*\|[^|]*\| (\d+) \|$", section, flags=re.M)
    assert len(table) >= 8
    for name, code in table:
        assert getattr(errors, name).exit_code == int(code), name


def test_readme_is_short_for_users_and_its_links_resolve():
    assert len(README.encode("utf-8")) <= 15_000
    for word in ("Trained here", "issue ", "like ours", "Targets ("):
        assert word not in README, word
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for link in re.findall(r"\]\(([^)#\s]+)", text):
            if not link.startswith(("http://", "https://")):
                assert (page.parent / link).exists(), f"{page.name}: {link}"
