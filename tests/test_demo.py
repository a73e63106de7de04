"""``wsris demo`` over HTTP: the page, the API, encode-once, and masks equal to the Python
API's for the same image and phrase."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "shapes_scene.png"
MODEL = "sag-shapes"


@pytest.fixture(scope="module")
def demo():
    from wsris.demo import DemoApp, start_server

    app = DemoApp([MODEL], device="cpu")
    server, _ = start_server(app, port=0)
    yield app, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def segmenter():
    import wsris

    return wsris.load(MODEL, device="cpu")


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read(), r.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers["Content-Type"]


def post(url: str, payload: object | bytes) -> tuple[int, dict]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url + "/api/segment", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def decode_png(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def upload(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_page_loads_nothing_from_elsewhere(demo):
    _, url = demo
    status, body, kind = get(url + "/")
    assert status == 200 and kind.startswith("text/html")
    html = body.decode()
    assert "<script>" in html and 'id="phrases"' in html
    # no CDN script, style sheet, web font or tracker: every URL is this server's
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, flags=re.I)
    assert "@import" not in html and "<link" not in html and "fonts." not in html


def test_info_and_example_images(demo):
    _, url = demo
    status, body, _ = get(url + "/api/info")
    info = json.loads(body)
    assert status == 200 and info["models"] == [MODEL]
    assert info["examples"] and all(e["phrases"] for e in info["examples"])
    status, png, kind = get(url + f"/api/example/{info['examples'][0]['id']}.png")
    assert status == 200 and kind == "image/png"
    assert Image.open(io.BytesIO(png)).size == (256, 256)
    assert get(url + "/api/example/nope.png")[0] == 404
    assert get(url + "/nothing")[0] == 404


def test_upload_gives_the_python_apis_mask_and_encodes_once(demo, segmenter):
    app, url = demo
    before = app.encodings
    status, answer = post(url, {"model": MODEL, "image": upload(EXAMPLE),
                                "phrases": ["the large red circle", "red circle"]})
    assert status == 200, answer
    assert answer["encoded_now"] is True and app.encodings == before + 1
    for result in answer["results"]:
        expected = segmenter.segment(EXAMPLE, result["text"])
        mask = decode_png(result["mask"]) == 255
        np.testing.assert_array_equal(mask, expected.mask)
        assert result["area"] == expected.area and tuple(result["bbox"]) == expected.bbox
        overlay = decode_png(result["overlay"])
        np.testing.assert_array_equal(overlay, np.asarray(expected.overlay()))
        assert decode_png(result["heatmap"]).shape == (*expected.mask.shape, 3)
    # more phrases on the same image: no further encoding, same answers as the API
    status, again = post(url, {"model": MODEL, "image": upload(EXAMPLE),
                               "phrases": ["the small cyan circle"]})
    assert status == 200 and again["encoded_now"] is False
    assert app.encodings == before + 1
    expected = segmenter.segment(EXAMPLE, "the small cyan circle")
    np.testing.assert_array_equal(decode_png(again["results"][0]["mask"]) == 255,
                                  expected.mask)


def test_example_request_matches_the_api_on_the_same_pixels(demo, segmenter):
    from wsris.demo.examples import example_image

    _, url = demo
    status, answer = post(url, {"example": "shapes-test-1", "phrases": "the small circle"})
    assert status == 200, answer
    expected = segmenter.segment(example_image("shapes-test-1"), "the small circle")
    np.testing.assert_array_equal(decode_png(answer["results"][0]["mask"]) == 255,
                                  expected.mask)


@pytest.mark.parametrize("payload, needle", [
    ({"example": "shapes-test-3", "phrases": []}, "at least one phrase"),
    ({"example": "shapes-test-3", "phrases": ["a"], "model": "sag-refcoco"}, "unknown model"),
    ({"example": "nope", "phrases": ["a"]}, "unknown example"),
    ({"phrases": ["a"]}, "pick an example or upload"),
    ({"image": "data:image/png;base64,@@@", "phrases": ["a"]}, "not valid base64"),
    ({"image": base64.b64encode(b"not an image").decode(), "phrases": ["a"]}, "cannot read"),
    (b"{not json", "not JSON"),
    ([1, 2], "JSON object"),
])
def test_bad_requests_get_a_400_with_the_reason(demo, payload, needle):
    _, url = demo
    status, answer = post(url, payload)
    assert status == 400 and needle in answer["error"], answer


@pytest.mark.slow
def test_the_command_serves_on_localhost(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "wsris.cli", "demo", "--port", "0",
                             "--model", MODEL, "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        status, body, _ = get(found.group(0))
        assert status == 200 and b"wsris demo" in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_command_refuses_an_unknown_model_and_a_busy_port(demo):
    from click.testing import CliRunner

    from wsris.cli import main

    res = CliRunner().invoke(main, ["demo", "--model", "no-such-model", "--port", "0"])
    assert res.exit_code == 5 and "no-such-model" in res.output
    busy = demo[1].rsplit(":", 1)[1]
    res = CliRunner().invoke(main, ["demo", "--model", MODEL, "--port", busy])
    assert res.exit_code == 1 and "--port 0" in res.output
