"""Every exit code the table of docs/cli.md promises is produced by a real command here."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.test_api import scene
from wsris.cli import main

README = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")


def exit_code_table() -> str:
    start = README.index("| error | when | CLI exit code |")
    return README[start:README.index("\n\n", start)]


def readme_codes() -> set[int]:
    table = {int(c) for c in re.findall(r"^\|[^\n]*\| (\d+) \|$", exit_code_table(),
                                        flags=re.M)}
    assert len(table) >= 9
    line = re.search(r"Exit code 2 is a command-line usage error, 1 any other wsris error, "
                     r"(\d+) an interrupted", README)
    assert line, "the sentence of docs/cli.md on exit codes 2, 1 and 130 changed"
    return table | {0, 1, 2, int(line.group(1))}


def _copy_model(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in ("config.json", "model.safetensors"):
        (dst / f).write_bytes((src / f).read_bytes())
    return dst


def _case(code: int, tiny: Path, tmp: Path, monkeypatch) -> list[str]:
    """The arguments of a command that must exit with ``code`` (set-up done here)."""
    image = tmp / "scene.png"
    Image.fromarray(scene()).save(image)
    seg = ["segment", str(image), "red", "-o", str(tmp / "out" / "m.png")]
    if code == 0:
        return [*seg, "--model", str(tiny)]
    if code == 1:  # a plain WsrisError: the model returning the wrong number of results
        from wsris.api import Segmenter

        monkeypatch.setattr(Segmenter, "segment", lambda self, image, texts, **kw: [])
        return ["eval", "--model", str(tiny), "--data", "shapes:val", "--limit", "1",
                "--no-baseline", "--no-progress"]
    if code == 2:
        return [*seg, "--model", str(tiny), "--threshold", "3"]
    if code == 3:
        return ["segment", str(tmp / "missing.png"), "red", "--model", str(tiny),
                "-o", str(tmp / "out" / "m.png")]
    if code == 4:
        bad = _copy_model(tiny, tmp / "badconfig")
        (bad / "config.json").write_text("{not json")
        return [*seg, "--model", str(bad)]
    if code == 5:
        (tmp / "notamodel").mkdir()
        return [*seg, "--model", str(tmp / "notamodel")]
    if code == 6:  # a downloadable model, not converted, offline (tests run offline)
        monkeypatch.setenv("WSRIS_CACHE", str(tmp / "cache"))
        return [*seg, "--model", "albef-refcoco+"]
    if code == 7:
        from safetensors.torch import load_file, save_file

        bad = _copy_model(tiny, tmp / "badweights")
        state = load_file(bad / "model.safetensors")
        state.pop(sorted(state)[0])
        save_file(state, bad / "model.safetensors")
        return [*seg, "--model", str(bad)]
    if code == 8:
        return [*seg, "--model", str(tiny), "--device", "cpu", "--dtype", "float16"]
    if code == 9:
        return ["eval", "--data", f"refcoco:unc:val@{tmp / 'no-such-root'}"]
    if code == 10:  # no spaCy pipeline: the chunk recipe's validation needs noun chunks
        import wsris.blocks.noun_chunks as nc

        nc.load_nlp.cache_clear()
        monkeypatch.setattr(nc, "MODEL_NAMES", ("wsris_no_such_pipeline",))
        monkeypatch.delenv("WSRIS_SPACY_MODEL", raising=False)
        return ["__nlp__"]
    if code == 11:
        return ["segment", str(image), "red", "--model", str(tiny), "-o", str(tmp)]
    if code == 130:
        from wsris.api import Segmenter

        def interrupted(self, *args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(Segmenter, "segment", interrupted)
        return [*seg, "--model", str(tiny)]
    raise AssertionError(f"no case for exit code {code}")


def test_every_readme_code_has_a_case(tiny_folder, tmp_path, monkeypatch):
    for code in readme_codes():
        (tmp_path / str(code)).mkdir()
        _case(code, tiny_folder, tmp_path / str(code), monkeypatch)  # raises if none


@pytest.mark.parametrize("code", sorted(readme_codes()))
def test_exit_code(code, tiny_folder, tmp_path, monkeypatch):
    args = _case(code, tiny_folder, tmp_path, monkeypatch)
    if args == ["__nlp__"]:
        # No CLI command reaches spaCy in under a minute; the same group, on a command
        # whose only work is loading the pipeline, shows the code the CLI gives.
        from wsris.blocks.noun_chunks import load_nlp

        @main.command("nlp-probe")
        def probe() -> None:
            load_nlp()

        try:
            res = CliRunner().invoke(main, ["nlp-probe"])
        finally:
            main.commands.pop("nlp-probe")
            load_nlp.cache_clear()
    else:
        res = CliRunner().invoke(main, args)
    assert res.exit_code == code, res.output
    if code not in (0, 2):
        first = res.output.strip().splitlines()[0]
        assert first.startswith("wsris: error: ") or first == "wsris: interrupted", res.output
        assert "Traceback" not in res.output
    if code == 0:
        assert np.asarray(Image.open(tmp_path / "out" / "m.png")).shape == (45, 60)
    if code in (5,):
        assert "not a model folder" in res.output
    if code == 130:
        assert not (tmp_path / "out").exists()
