"""The demo page in a real headless browser (Debian's Chromium with its chromedriver):
load it, submit a phrase, see the overlay, save a screenshot.

Set ``WSRIS_DEMO_SCREENSHOT=docs/demo_screenshot.png`` to write the README's screenshot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Debian's packages (`apt-get install chromium chromium-driver`); Selenium must be given
# the driver, since its own driver manager would try to download one.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

MISSING = "no Chromium browser or chromedriver on this machine " \
    "(apt-get install chromium chromium-driver)"
# CI (.ci/run) sets WSRIS_REQUIRE_BROWSER: there a missing browser is a failure
REQUIRED = bool(os.environ.get("WSRIS_REQUIRE_BROWSER"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not REQUIRED and (CHROMIUM is None or DRIVER is None), reason=MISSING),
]


@pytest.mark.skipif(not REQUIRED, reason="only where WSRIS_REQUIRE_BROWSER is set (CI)")
def test_browser_is_present_where_required():
    assert CHROMIUM and DRIVER, MISSING


@pytest.fixture(scope="module")
def browser():
    if REQUIRED:
        from selenium import webdriver
    else:
        webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-dev-shm-usage", "--window-size=1100,860"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def demo_url():
    from wsris.demo import DemoApp, start_server

    server, _ = start_server(DemoApp(["sag-shapes"], device="cpu"), port=0)
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_page_segments_a_typed_phrase(browser, demo_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(demo_url)
    wait = WebDriverWait(browser, 120)
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "ready"))
    phrases = browser.find_element(By.ID, "phrases")
    phrases.clear()
    phrases.send_keys("the large red circle\nthe small cyan circle")
    browser.find_element(By.ID, "run").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "phrase(s)"))
    cards = browser.find_elements(By.CSS_SELECTOR, "#results .result")
    assert [c.find_element(By.TAG_NAME, "h2").text for c in cards] == [
        "the large red circle", "the small cyan circle"]
    for card in cards:
        for kind in ("overlay", "heatmap"):
            img = card.find_element(By.CSS_SELECTOR, f"img.{kind}")
            assert img.get_attribute("src").startswith("data:image/png;base64,")
            assert browser.execute_script("return arguments[0].naturalWidth", img) == 256
        link = card.find_element(By.CSS_SELECTOR, "a.download")
        assert link.get_attribute("download").endswith(".png")
    assert "error" not in browser.find_element(By.ID, "status").get_attribute("class")
    browser.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "demo.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    target = os.environ.get("WSRIS_DEMO_SCREENSHOT")
    if target:  # a palette PNG: a third of the size, no visible loss on flat colours
        from PIL import Image

        small = Image.open(shot).convert("RGB").quantize(colors=128, dither=Image.Dither.NONE)
        small.save(Path(target), optimize=True)
