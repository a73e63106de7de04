"""Weights named by a manifest URL: one total deadline, a redirect policy, nothing left
behind on failure (loopback servers; manifest URLs are trusted, so loopback is allowed)."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.loopback import Handler, serve
from tests.test_hub import url_spec
from wsris.errors import ChecksumMismatchError, ConfigError, WeightsNotAvailableError
from wsris.url_fetch import (
    DEFAULT_DOWNLOAD_DEADLINE_S,
    MAX_REDIRECTS,
    DownloadError,
    default_download_deadline,
    download_to_file,
)
from wsris.weights.sources import fetch

BODY = bytes(range(256)) * 1000  # 256 kB, several read chunks


@pytest.fixture()
def server():
    """``/weights.pth`` serves BODY; ``/hopN`` redirects N+1 times, alternating between
    the hosts 127.0.0.1 and localhost (another host each time), before BODY."""

    class Routes(Handler):
        def do_GET(self):
            port = self.server.server_address[1]
            host = (self.headers.get("Host") or "").split(":")[0]
            other = "localhost" if host == "127.0.0.1" else "127.0.0.1"
            if self.path == "/weights.pth":
                self.send_body(BODY)
            elif self.path == "/drip.pth":  # a byte at a time, never finishing
                self.drip()
            elif self.path == "/to-ftp.pth":
                self.redirect("ftp://127.0.0.1/weights.pth")
            elif self.path.startswith("/hop"):
                n = int(self.path[len("/hop"):])
                nxt = "/weights.pth" if n == 0 else f"/hop{n - 1}"
                self.redirect(f"http://{other}:{port}{nxt}")
            else:
                self.send_error(404)

    with serve(Routes) as httpd:
        yield httpd


@pytest.fixture()
def online(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # HF_HUB_OFFLINE holds for URLs
    monkeypatch.setenv("WSRIS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _leftovers(cache) -> list:
    return [p for p in cache.rglob("*")] if cache.exists() else []


def test_cross_host_redirects_up_to_the_limit_are_followed(server, tmp_path):
    dest = tmp_path / "w.pth"
    download_to_file(f"{server.base}/hop{MAX_REDIRECTS - 1}", dest, progress=False)
    assert dest.read_bytes() == BODY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pth"]  # no temporary file


def test_a_redirect_chain_over_the_limit_is_refused(server, online):
    spec = url_spec(f"{server.base}/hop{MAX_REDIRECTS}", "c" * 64)
    with pytest.raises(WeightsNotAvailableError,
                       match=f"more than {MAX_REDIRECTS} redirects"):
        fetch(spec, local_files_only=False)
    assert not [p for p in _leftovers(online) if p.is_file()]


def test_a_redirect_to_ftp_is_refused(server, online):
    spec = url_spec(f"{server.base}/to-ftp.pth", "c" * 64)
    with pytest.raises(WeightsNotAvailableError, match="only http\\(s\\) redirects"):
        fetch(spec, local_files_only=False)
    assert not [p for p in _leftovers(online) if p.is_file()]


def test_a_slow_drip_ends_at_the_deadline(server, online, monkeypatch):
    monkeypatch.setenv("WSRIS_DOWNLOAD_TIMEOUT", "0.5")
    spec = url_spec(f"{server.base}/drip.pth", "c" * 64)
    with pytest.raises(WeightsNotAvailableError, match="not complete within 0.5 s") as err:
        fetch(spec, local_files_only=False)
    assert "WSRIS_DOWNLOAD_TIMEOUT" in str(err.value)
    assert not [p for p in _leftovers(online) if p.is_file()]


def test_a_failed_download_removes_its_temporary_file(server, tmp_path):
    dest = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match="not complete within 0.3 s"):
        download_to_file(f"{server.base}/drip.pth", dest, deadline=0.3, progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_to_file(f"{server.base}/missing.pth", dest, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_checksum_is_still_checked_over_http(server, online):
    spec = url_spec(f"{server.base}/hop1", "c" * 64)
    with pytest.raises(ChecksumMismatchError, match=hashlib.sha256(BODY).hexdigest()):
        fetch(spec, local_files_only=False)
    assert not [p for p in _leftovers(online) if p.is_file()]


def test_the_deadline_setting(monkeypatch):
    monkeypatch.delenv("WSRIS_DOWNLOAD_TIMEOUT", raising=False)
    assert default_download_deadline() == DEFAULT_DOWNLOAD_DEADLINE_S == 3600
    monkeypatch.setenv("WSRIS_DOWNLOAD_TIMEOUT", "90")
    assert default_download_deadline() == 90
    for bad in ("soon", "0", "-5", "inf", "nan"):
        monkeypatch.setenv("WSRIS_DOWNLOAD_TIMEOUT", bad)
        with pytest.raises(ConfigError, match="WSRIS_DOWNLOAD_TIMEOUT"):
            default_download_deadline()


@pytest.mark.parametrize("target,needle", [
    ("http://objects.example/w.pth", "from https to http"),
    ("ftp://objects.example/w.pth", "only http(s) redirects"),
])
def test_the_weights_redirect_policy_refuses_a_downgrade(target, needle):
    """No TLS server here: the policy is asked directly about an https redirect."""
    import email.message
    import urllib.request

    from wsris.url_fetch import _CrossHostRedirectHandler, _Refused

    headers = email.message.Message()
    headers["Location"] = target
    request = urllib.request.Request("https://releases.example/w.pth")
    with pytest.raises(_Refused, match=re.escape(needle)):
        _CrossHostRedirectHandler().http_error_302(request, None, 302, "Found", headers)
