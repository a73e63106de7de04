"""The offline setting holds for every weights source; bad Hub references and checksum
messages say what really happened."""

from __future__ import annotations

import urllib.request

import pytest

from tests.test_cli import run
from wsris.errors import ChecksumMismatchError, UnknownModelError
from wsris.weights.manifest import FileSpec
from wsris.weights.sources import _verify, parse_hf_reference


def test_download_with_hf_hub_offline_never_touches_the_network(tmp_path, monkeypatch):
    """``wsris download`` of a URL-sourced model under HF_HUB_OFFLINE=1 (the test
    session sets it) says it is offline and opens no connection."""
    import torch.hub

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used although HF_HUB_OFFLINE is set")

    monkeypatch.setenv("WSRIS_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    res = run("download", "albef-refcoco+")
    assert res.exit_code == 6, res.output
    assert "HF_HUB_OFFLINE is set" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("ref", ["hf-hub:../x", "hf-hub:org/..", "hf-hub:./repo",
                                 "hf-hub:org/re po", "hf-hub:org/repo@../../etc",
                                 "hf-hub:/abs", "hf-hub:org/repo/extra"])
def test_malformed_hub_references_are_unknown_models(ref):
    with pytest.raises(UnknownModelError, match="expected 'hf-hub:org/repo"):
        parse_hf_reference(ref)


def test_malformed_hub_reference_is_one_line_in_the_cli(tiny_folder, image, tmp_path):
    res = run("segment", image, "red", "--model", "hf-hub:../x", "-o", tmp_path / "m.png")
    assert res.exit_code == 5 and res.output.startswith("wsris: error: ")
    assert "Traceback" not in res.output


def test_a_bundled_file_with_a_wrong_checksum_is_said_to_be_kept(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"flipped")
    with pytest.raises(ChecksumMismatchError) as err:
        _verify(path, FileSpec(path.name, "0" * 64), "m (bundled)", remove=[])
    assert "removed" not in str(err.value) and "left where it is" in str(err.value)
    assert path.exists()
    with pytest.raises(ChecksumMismatchError, match="removed from the cache"):
        _verify(path, FileSpec(path.name, "0" * 64), "m", remove=[path])
    assert not path.exists()
