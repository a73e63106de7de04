"""What ships travels: no folder of the machine a model was trained on, and no reference
to the project's issue tracker, in the package (bundled model cards included), the
manifest, the recipes or the user docs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from wsris.model_card import without_local_paths

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".json", ".yaml", ".yml", ".txt", ".toml", ".cfg"}
# the WordPiece vocabulary and its licence are third-party data, not our prose
SKIP = {ROOT / "wsris" / "assets"}

# folders of a training or GPU machine ("/data/refer" in the docs is a user's example)
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|home|Users|root|tmp|mnt|scratch|content)/")
# "#14", "issue 8", "issues 3 and 4", "PR 12" (not "##" WordPieces, not "'#333'" colours)
TRACKER = re.compile(r"(?<![\w&#\"'])#\d+\b|\b(?:issues?|PR)\s+#?\d+", re.IGNORECASE)


def shipped_text_files() -> list[Path]:
    roots = [ROOT / "wsris", ROOT / "docs", ROOT / "configs"]
    files = [ROOT / "README.md", ROOT / "weights_manifest.json"]
    for root in roots:
        files += [p for p in root.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
                  and not any(s in p.parents for s in SKIP)]
    return sorted(set(files))


def hits(pattern: re.Pattern[str]) -> list[str]:
    out = []
    for path in shipped_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                out.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    return out


def test_the_scan_covers_the_bundled_model_cards():
    files = shipped_text_files()
    for model in ("albef-chunk-shapes", "sag-shapes"):
        assert ROOT / "wsris" / "weights" / "bundled" / model / "README.md" in files
        assert ROOT / "wsris" / "weights" / "bundled" / model / "config.json" in files
    assert ROOT / "docs" / "training.md" in files


@pytest.mark.parametrize("line", [
    '"output_dir": "/work/runs/chunk_s2xl"', "cache=/tmp/caches/train", "/home/me/runs/x",
])
def test_the_path_pattern_sees_a_machine_path(line):
    assert MACHINE_PATH.search(line)


@pytest.mark.parametrize("line", ["### Where #14 stands", "(issue 8, point 3)", "see PR 12"])
def test_the_tracker_pattern_sees_a_reference(line):
    assert TRACKER.search(line)


@pytest.mark.parametrize("line", [
    "refcoco+:unc:val@/data/refer", "~/.cache/wsris/shapes", "##14", "color '#333'",
    "# 1. first", "lab/results/runs/t3p/",
])
def test_the_patterns_leave_ordinary_text_alone(line):
    assert not MACHINE_PATH.search(line) and not TRACKER.search(line)


def test_no_machine_path_ships():
    assert hits(MACHINE_PATH) == []


def test_no_tracker_reference_ships():
    assert hits(TRACKER) == []


def test_local_paths_are_cut_to_their_last_two_parts():
    card = {
        "recipe": '"checkpoint": "/srv/runs/chunk/model-step7000",\n"output_dir": "/srv/runs/x"',
        "data": [{"spec": "shapes:train?length=50&cache=/srv/caches/train-50", "until": 9}],
        "keep": ["~/.cache/wsris/a/b", "https://host/a/b/c", "hf-hub:org/repo", "/data/refer",
                 "docs/a/b/c.md", 7],
    }
    assert without_local_paths(card) == {
        "recipe": '"checkpoint": ".../chunk/model-step7000",\n"output_dir": ".../runs/x"',
        "data": [{"spec": "shapes:train?length=50&cache=.../caches/train-50", "until": 9}],
        "keep": card["keep"],
    }


def test_save_pretrained_writes_no_local_path(tiny_folder, tmp_path):
    import wsris

    seg = wsris.load(tiny_folder)
    seg.config["card"] = {"recipe": '{"output_dir": "/work/runs/tiny", "lr": 0.001}',
                          "data": "shapes:train?cache=/work/runs/caches/train-64"}
    out = seg.save_pretrained(tmp_path / "out")
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "/work/" not in json.dumps(config) and "/work/" not in card
    assert config["card"]["recipe"] == '{"output_dir": ".../runs/tiny", "lr": 0.001}'
    assert ".../caches/train-64" in card
