"""The real huggingface_hub code path, against a cache populated by hand (no network)."""

from __future__ import annotations

import pytest

from tests.hub_cache import populate_hub_cache, sha
from wsris.errors import ChecksumMismatchError, UnpublishedModelError, WeightsNotAvailableError
from wsris.weights.manifest import parse_manifest
from wsris.weights.sources import cached_status, fetch, fetch_hf_repo, parse_hf_reference

COMMIT = "1234567890abcdef1234567890abcdef12345678"
FILES = {"config.json": b'{"method": "sag"}', "model.safetensors": b"weights-bytes"}
CONFIG = {
    "architecture": {},
    "preprocessing": {"size": [8, 8], "mean": [0.5] * 3, "std": [0.5] * 3},
    "text": {},
    "inference": {"threshold": 0.5},
}


def hf_spec(files=FILES, name="m"):
    entry = {
        "method": "sag",
        "config": CONFIG,
        "license": "MIT",
        "paper": "p",
        "sources": [
            {
                "kind": "hf",
                "repo_id": "org/model",
                "revision": COMMIT,
                "files": {k: {"sha256": sha(v), "size": len(v)} for k, v in files.items()},
            }
        ],
    }
    return parse_manifest({"schema_version": 1, "models": {name: entry}})[name]


def test_pinned_revision_resolves_from_cache(tmp_path):
    snapshot = populate_hub_cache(tmp_path, "org/model", COMMIT, FILES)
    folder = fetch(hf_spec(), cache_dir=tmp_path, local_files_only=True)
    assert folder == snapshot
    assert (folder / "model.safetensors").read_bytes() == b"weights-bytes"
    assert cached_status(hf_spec(), cache_dir=tmp_path) == "cached"


def test_other_commit_in_cache_does_not_satisfy_the_pin(tmp_path):
    populate_hub_cache(tmp_path, "org/model", "f" * 40, FILES)
    with pytest.raises(WeightsNotAvailableError) as err:
        fetch(hf_spec(), cache_dir=tmp_path, local_files_only=True)
    message = str(err.value)
    assert "config.json" in message and COMMIT in message
    assert "wsris download m" in message
    assert cached_status(hf_spec(), cache_dir=tmp_path) == "downloadable"


def test_explicit_revision_follows_the_ref(tmp_path):
    populate_hub_cache(tmp_path, "org/model", "f" * 40, FILES, ref="main")
    folder = fetch(hf_spec(), revision="main", cache_dir=tmp_path, local_files_only=True)
    assert folder.name == "f" * 40


def test_offline_and_not_cached_names_file_and_command(tmp_path):
    with pytest.raises(WeightsNotAvailableError, match=r"config\.json.*wsris download m"):
        fetch(hf_spec(), cache_dir=tmp_path, local_files_only=True)


def test_checksum_mismatch_refuses_and_removes_the_file(tmp_path):
    bad = {**FILES, "model.safetensors": b"tampered"}
    snapshot = populate_hub_cache(tmp_path, "org/model", COMMIT, bad)
    link = snapshot / "model.safetensors"
    blob = link.resolve()
    with pytest.raises(ChecksumMismatchError, match="model.safetensors"):
        fetch(hf_spec(), cache_dir=tmp_path, local_files_only=True)
    assert not link.exists() and not link.is_symlink() and not blob.exists()
    # the next load does not find a trusted-looking file either
    with pytest.raises(WeightsNotAvailableError):
        fetch(hf_spec(), cache_dir=tmp_path, local_files_only=True)


def test_unpublished_model_says_so():
    entry = {"method": "sag", "config": CONFIG, "license": "MIT", "paper": "p",
             "sources": [], "note": "Train it: wsris train configs/sag_refcoco.yaml."}
    spec = parse_manifest({"schema_version": 1, "models": {"u": entry}})["u"]
    with pytest.raises(UnpublishedModelError, match="configs/sag_refcoco.yaml"):
        fetch(spec)
    assert cached_status(spec) == "unpublished"


def test_hf_hub_reference(tmp_path):
    assert parse_hf_reference("hf-hub:org/repo@abc") == ("org/repo", "abc")
    assert parse_hf_reference("hf-hub:org/repo") == ("org/repo", None)
    snapshot = populate_hub_cache(tmp_path, "org/repo", COMMIT, FILES)
    assert fetch_hf_repo(f"hf-hub:org/repo@{COMMIT}", cache_dir=tmp_path,
                         local_files_only=True) == snapshot
    assert fetch_hf_repo("hf-hub:org/repo", cache_dir=tmp_path, local_files_only=True) == snapshot
    with pytest.raises(WeightsNotAvailableError, match="offline"):
        fetch_hf_repo("hf-hub:org/other", cache_dir=tmp_path, local_files_only=True)


def url_spec(url: str, digest: str):
    entry = {"method": "chunk", "config": CONFIG, "license": "BSD-3-Clause", "paper": "p",
             "sources": [{"kind": "url", "url": url, "sha256": digest, "converter": "albef"}]}
    return parse_manifest({"schema_version": 1, "models": {"albef-x": entry}})["albef-x"]


def test_url_source_offline_explains_the_manual_route(tmp_path, monkeypatch):
    monkeypatch.setenv("WSRIS_CACHE", str(tmp_path))
    spec = url_spec("https://example.invalid/refcoco.pth", "b" * 64)
    with pytest.raises(WeightsNotAvailableError) as err:
        fetch(spec, local_files_only=True)
    assert "wsris convert albef" in str(err.value) and "refcoco.pth" in str(err.value)
    # an already converted folder is used without any download
    target = tmp_path / "converted" / f"albef-x-{'b' * 12}"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "model.safetensors").write_bytes(b"x")
    assert fetch(spec, local_files_only=True) == target
    assert cached_status(spec) == "cached"


def test_url_download_with_wrong_checksum_leaves_nothing(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # HF_HUB_OFFLINE holds for URLs
    monkeypatch.setenv("WSRIS_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "refcoco.pth"
    src.write_bytes(b"not the real checkpoint")
    spec = url_spec(src.as_uri(), "c" * 64)  # file:// goes through the real download code
    with pytest.raises(ChecksumMismatchError, match="refcoco.pth"):
        fetch(spec, local_files_only=False)
    converted = tmp_path / "cache" / "converted"
    assert not converted.exists() or not any(converted.iterdir())


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_and_unreachable_are_told_apart(tmp_path, monkeypatch):
    """Offline by choice says so; online with no reachable server says that instead."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("WSRIS_CACHE", str(tmp_path))
    spec = url_spec(f"http://127.0.0.1:{_closed_port()}/refcoco.pth", "b" * 64)
    with pytest.raises(WeightsNotAvailableError, match="offline: downloads are off") as off:
        fetch(spec, local_files_only=True)
    assert "could not be reached" not in str(off.value)
    with pytest.raises(WeightsNotAvailableError, match="cannot reach http://127.0.0.1") as on:
        fetch(spec, local_files_only=False)
    assert "offline" not in str(on.value) and "wsris convert albef" in str(on.value)


@pytest.mark.slow  # huggingface_hub retries with back-off for about 20 s
def test_hub_unreachable_is_not_called_offline(tmp_path, monkeypatch):
    """Online (HF_HUB_OFFLINE off) but the Hub cannot be reached (the test machines have
    no route to it; with one, the made-up repo fails as 'cannot fetch')."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(WeightsNotAvailableError) as err:
        fetch(hf_spec(), cache_dir=tmp_path, local_files_only=None)
    assert "offline" not in str(err.value)
    assert "could not be reached" in str(err.value) or "cannot fetch" in str(err.value)
