from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from wsris.errors import ImageError, InvalidInputError
from wsris.images import load_image


def _rgb(h: int = 6, w: int = 8) -> np.ndarray:
    return (np.arange(h * w * 3, dtype=np.int64) % 251).astype(np.uint8).reshape(h, w, 3)


def test_uint8_rgb_array_passes_through_unchanged():
    a = _rgb()
    out = load_image(a)
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out, a)


def test_float_array_in_unit_range_is_scaled_and_rounded():
    a = np.array([[[0.0, 0.5, 1.0]]], dtype=np.float32)
    np.testing.assert_array_equal(load_image(a), [[[0, 128, 255]]])


def test_float_array_outside_unit_range_is_refused():
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        load_image(np.full((2, 2, 3), 2.0, np.float32))
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((2, 2, 3), np.nan, np.float32))


def test_gray_rgba_and_single_channel_become_rgb():
    gray = np.array([[0, 100], [200, 255]], np.uint8)
    out = load_image(gray)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[..., 0], gray)
    np.testing.assert_array_equal(out[..., 2], gray)
    opaque = np.dstack([_rgb(), np.full((6, 8), 255, np.uint8)])
    np.testing.assert_array_equal(load_image(opaque), _rgb())
    np.testing.assert_array_equal(load_image(gray[:, :, None])[..., 1], gray)


def test_uint16_array_scales_to_8_bit():
    a = np.array([[0, 257, 65535]], np.uint16)
    np.testing.assert_array_equal(load_image(a)[..., 0], [[0, 1, 255]])


def test_uint16_scale_follows_the_dtype_not_the_values():
    # Values all <= 255 in a uint16 image are still 16-bit data: 255/65535 is near black
    # (255 / 257 rounds to 1), not full white.
    dark = np.full((2, 3), 255, np.uint16)
    np.testing.assert_array_equal(load_image(dark), np.ones((2, 3, 3), np.uint8))
    # One bright pixel must not change how the others are read.
    a = np.full((2, 3), 32896, np.uint16)
    b = a.copy()
    b[0, 0] = 300
    np.testing.assert_array_equal(load_image(a)[1:], load_image(b)[1:])
    assert load_image(a)[1, 1, 0] == 128


def test_wide_integer_arrays_must_hold_8_bit_values():
    np.testing.assert_array_equal(load_image(np.array([[7, 255]], np.int64))[..., 1], [[7, 255]])
    with pytest.raises(ImageError, match="uint16"):
        load_image(np.array([[0, 300]], np.int64))
    with pytest.raises(ImageError, match="0..255"):
        load_image(np.array([[-1, 3]], np.int32))


def test_transparency_is_composited_on_white(tmp_path):
    from wsris.images import BACKGROUND

    assert BACKGROUND == (255, 255, 255)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200  # red 200 everywhere
    rgba[0, 0, 3] = 0  # transparent -> white
    rgba[0, 1, 3] = 255  # opaque -> as stored
    rgba[1, :, 3] = 128  # half: 200*128/255 + 255*127/255
    expected = np.array([[[255, 255, 255], [200, 0, 0]],
                         [[227, 127, 127], [227, 127, 127]]], np.uint8)
    np.testing.assert_array_equal(load_image(rgba), expected)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), expected)
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    la.save(tmp_path / "la.png")
    np.testing.assert_array_equal(load_image(tmp_path / "la.png")[0, 0], [255, 255, 255])


def test_torch_tensor_chw_float_and_uint8():
    a = _rgb()
    t = torch.from_numpy(a).permute(2, 0, 1)
    np.testing.assert_array_equal(load_image(t), a)
    np.testing.assert_array_equal(load_image(t.float() / 255.0), a)
    with pytest.raises(ImageError, match="CxHxW"):
        load_image(torch.zeros(4, 4))


def test_bad_shapes_and_types():
    with pytest.raises(ImageError, match="empty"):
        load_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError, match="cannot read an image from int"):
        load_image(42)
    assert issubclass(ImageError, InvalidInputError)


def test_png_palette_16bit_and_exif(tmp_path):
    # palette image
    p = Image.fromarray(_rgb()).convert("P", palette=Image.ADAPTIVE, colors=8)
    p.save(tmp_path / "p.png")
    out = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out, np.asarray(p.convert("RGB")))
    # 16-bit grayscale PNG: 65535 must become 255, 257 -> 1
    g16 = np.array([[0, 257], [32896, 65535]], dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(load_image(str(tmp_path / "g16.png"))[..., 0],
                                  [[0, 1], [128, 255]])
    # a 16-bit file whose values are all small is still 16-bit: near black
    Image.fromarray(np.full((2, 2), 200, np.uint16)).save(tmp_path / "dark16.png")
    assert load_image(tmp_path / "dark16.png").max() == 1
    # EXIF orientation 6 (rotate 90 CW to display): a 2x3 image displays as 3x2
    img = Image.fromarray(_rgb(2, 3))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=100)
    assert load_image(tmp_path / "rot.jpg").shape == (3, 2, 3)


def test_unreadable_files(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(tmp_path / "text.png")
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cannot decode"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_pixel_limit_refuses_before_decoding(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="10,000 pixels"):
        load_image(tmp_path / "big.png", max_pixels=9_999)
    assert load_image(tmp_path / "big.png", max_pixels=10_000).shape == (100, 100, 3)
    with pytest.raises(ImageError, match="over the limit"):
        load_image(np.zeros((100, 100, 3), np.uint8), max_pixels=50)


# --------------------------------------------------------------------------------------
# http(s) URLs, against a server on the loopback address started here


@pytest.fixture()
def http_server(monkeypatch):
    import io
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    monkeypatch.setenv("WSRIS_ALLOW_PRIVATE_URLS", "1")  # the server is on loopback
    png = io.BytesIO()
    Image.fromarray(_rgb()).save(png, format="PNG")
    body = png.getvalue()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

        def do_GET(self):
            if self.path == "/ok.png":
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/declared-big":
                self.send_response(200)
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
            elif self.path == "/undeclared-big":  # no Content-Length: counted while reading
                self.send_response(200)
                self.end_headers()
                for _ in range(100):
                    self.wfile.write(b"\0" * 1000)
            elif self.path == "/not-an-image":
                self.send_response(200)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"hello")
            elif self.path == "/slow":
                time.sleep(3)
                self.send_response(200)
                self.end_headers()
            else:
                self.send_error(404, "Not Found")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_image_url_is_fetched_and_decoded(http_server):
    np.testing.assert_array_equal(load_image(f"{http_server}/ok.png"), _rgb())
    # the same decoding limits as files
    with pytest.raises(ImageError, match="over the limit"):
        load_image(f"{http_server}/ok.png", max_pixels=10)


def test_image_url_size_limit_before_and_while_downloading(http_server):
    from wsris.images import fetch_url

    with pytest.raises(ImageError, match="1,000,000,000 bytes, over the download limit"):
        fetch_url(f"{http_server}/declared-big", max_bytes=50_000)
    with pytest.raises(ImageError, match="more than the download limit of 50,000"):
        fetch_url(f"{http_server}/undeclared-big", max_bytes=50_000)


def test_image_url_errors_are_image_errors(http_server):
    from wsris.images import fetch_url

    with pytest.raises(ImageError, match="HTTP 404"):
        load_image(f"{http_server}/missing.png")
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(f"{http_server}/not-an-image")
    with pytest.raises(ImageError, match="not complete within 0.2 s"):
        fetch_url(f"{http_server}/slow", timeout=0.2)


def test_unreachable_url_says_so(monkeypatch):
    monkeypatch.setenv("WSRIS_ALLOW_PRIVATE_URLS", "1")
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ImageError, match="cannot reach"):
        load_image(f"http://127.0.0.1:{port}/x.png")


def test_cli_segments_an_image_url(tiny_folder, http_server, tmp_path):
    from click.testing import CliRunner

    from wsris.cli import main

    url = f"{http_server}/ok.png"
    res = CliRunner().invoke(main, ["segment", url, "red", "--model", str(tiny_folder),
                                    "-o", str(tmp_path / "m.png"), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["image"] == url and report["results"][0]["size"] == [6, 8]
    res = CliRunner().invoke(main, ["segment", f"{http_server}/gone.png", "red",
                                    "--model", str(tiny_folder), "-o", str(tmp_path / "n.png")])
    assert res.exit_code == 3 and "HTTP 404" in res.output and "https:/" not in res.output
