"""Image URLs: one total deadline, redirects only to http(s) on the same host and within
a limit, private destinations refused by default; checked on loopback servers."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from tests.loopback import Handler, serve
from wsris.errors import ImageError
from wsris.images import fetch_url, load_image
from wsris.url_fetch import MAX_REDIRECTS, default_deadline, is_public_address

PIXELS = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(PIXELS).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture()
def server():
    """A loopback server; ``server.hits`` counts the requests it received."""
    body = _png()
    hits: list[str] = []

    class Routes(Handler):
        def do_GET(self):
            hits.append(self.path)
            port = self.server.server_address[1]
            if self.path == "/ok.png":
                self.send_body(body)
            elif self.path == "/drip":  # a byte at a time, never finishing
                self.drip()
            elif self.path == "/drip-headers":  # even the headers never end
                self.drip(b"X: y\r\n", headers_only=True)
            elif self.path == "/to-ftp":
                self.redirect("ftp://127.0.0.1/x.png")
            elif self.path == "/to-file":
                self.redirect("file:///etc/passwd")
            elif self.path == "/to-other-host":
                self.redirect(f"http://localhost:{port}/ok.png")
            elif self.path == "/to-same-host":
                self.redirect("/ok.png")
            elif self.path.startswith("/loop"):
                n = int(self.path[len("/loop"):] or 0)
                self.redirect(f"/loop{n + 1}")
            else:
                self.send_error(404)

    with serve(Routes) as httpd:
        httpd.hits = hits
        yield httpd


def test_a_slow_drip_ends_at_the_deadline(server):
    start = time.monotonic()
    with pytest.raises(ImageError, match="not complete within 0.5 s"):
        fetch_url(f"{server.base}/drip", timeout=0.5, allow_private=True)
    print(f"drip cut off after {time.monotonic() - start:.2f} s")  # reported, not asserted


def test_headers_that_never_end_also_end_at_the_deadline(server):
    with pytest.raises(ImageError, match="not complete within 0.5 s"):
        fetch_url(f"{server.base}/drip-headers", timeout=0.5, allow_private=True)


def test_the_deadline_comes_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("WSRIS_URL_TIMEOUT", "0.4")
    assert default_deadline() == 0.4
    with pytest.raises(ImageError, match="not complete within 0.4 s"):
        load_image(f"{server.base}/drip", allow_private=True)
    for bad in ("0", "-1", "nan", "soon"):
        monkeypatch.setenv("WSRIS_URL_TIMEOUT", bad)
        with pytest.raises(ImageError, match="WSRIS_URL_TIMEOUT"):
            default_deadline()


@pytest.mark.parametrize(("path", "needle"), [
    ("/to-ftp", "only http(s) redirects"),
    ("/to-file", "only http(s) redirects"),
    ("/to-other-host", "another host (localhost)"),
    ("/loop", f"more than {MAX_REDIRECTS} redirects"),
])
def test_redirects_that_are_refused(server, path, needle):
    with pytest.raises(ImageError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        fetch_url(f"{server.base}{path}", allow_private=True)
    if path == "/to-other-host":
        assert server.hits == [path]  # the other host was never asked
    if path == "/loop":
        assert len(server.hits) == MAX_REDIRECTS + 1


def test_a_redirect_on_the_same_host_is_followed(server):
    np.testing.assert_array_equal(
        load_image(f"{server.base}/to-same-host", allow_private=True), PIXELS)


def test_private_destinations_are_refused_by_default(server, monkeypatch):
    monkeypatch.delenv("WSRIS_ALLOW_PRIVATE_URLS", raising=False)
    with pytest.raises(ImageError, match="127.0.0.1, a private, loopback"):
        load_image(f"{server.base}/ok.png")
    with pytest.raises(ImageError, match="private, loopback"):
        load_image(f"http://localhost:{server.server_address[1]}/ok.png")
    assert server.hits == []  # refused before connecting
    monkeypatch.setenv("WSRIS_ALLOW_PRIVATE_URLS", "1")
    np.testing.assert_array_equal(load_image(f"{server.base}/ok.png"), PIXELS)


def test_the_cli_refuses_private_urls_unless_allowed(server, tiny_folder, tmp_path,
                                                     monkeypatch):
    from tests.test_cli import run

    monkeypatch.delenv("WSRIS_ALLOW_PRIVATE_URLS", raising=False)
    url = f"{server.base}/ok.png"
    res = run("segment", url, "red", "--model", tiny_folder, "-o", tmp_path / "m.png")
    assert res.exit_code == 3 and "private, loopback" in res.output
    assert not (tmp_path / "m.png").exists()
    res = run("segment", url, "red", "--model", tiny_folder, "-o", tmp_path / "m.png",
              "--allow-private-urls", "--url-timeout", "5")
    assert res.exit_code == 0, res.output
    res = run("segment", f"{server.base}/drip", "red", "--model", tiny_folder,
              "-o", tmp_path / "n.png", "--allow-private-urls", "--url-timeout", "0.3")
    assert res.exit_code == 3 and "not complete within 0.3 s" in res.output


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.1", False), ("172.16.0.1", False),
    ("169.254.169.254", False), ("0.0.0.0", False), ("::1", False), ("fe80::1", False),
    ("fc00::1", False), ("::ffff:127.0.0.1", False), ("224.0.0.1", False),
])
def test_which_addresses_count_as_public(address, public):
    assert is_public_address(address) is public
