"""The phone web page in real headless Chromium (Debian ``chromium`` driven by Playwright).

Runs the real server (uvicorn in a thread, loopback, free port) with the real stages, uploads a
simulated phone photo, drags one corner, submits, and checks that the result appears and that the
dragged corner is what the server received. Then the lesion step: the outline over the restored
image, a box dragged by the clinician (mouse and touch) scored again with the same photo and
corners, and a refusal (no lesion found) that shows the reason and no score. Saves
``tests/artifacts/browser_serve.png`` and ``tests/artifacts/browser_lesion.png``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import threading
import time
from contextlib import contextmanager
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


class CentredLesion:
    """Localizer double: always the same centred elliptic lesion (confidence 0.87)."""

    name = "test-centred-lesion"
    sha256 = "0" * 64
    confidence = 0.87

    def locate(self, img):
        from photorad.lesion import Lesion, LesionResult, box_of

        h, w = img.shape
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((xx - (w - 1) / 2) / (w / 6)) ** 2 + ((yy - (h - 1) / 2) / (h / 5)) ** 2 <= 1.0
        lesion = Lesion(box=box_of(mask), confidence=self.confidence, mask=mask, source="auto")
        return LesionResult(lesion, None, self.confidence, mask.astype(np.float32))


class NoLesion:
    """Localizer double that never finds a lesion."""

    name = "test-no-lesion"
    sha256 = "1" * 64

    def locate(self, img):
        from photorad.lesion import LesionResult

        return LesionResult(None, "no lesion found in the image", 0.0,
                            np.zeros(img.shape, np.float32))


class Recording:
    """The pipeline, recording what each ``analyze`` call received (corners, lesion box)."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.calls: list[dict] = []

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def analyze(self, photo, corners=None, *, lesion_box=None):
        self.calls.append({"corners": None if corners is None else np.asarray(corners, float),
                           "lesion_box": lesion_box,
                           "photo_sha256": hashlib.sha256(np.ascontiguousarray(photo)).hexdigest()})
        return self.pipe.analyze(photo, corners, lesion_box=lesion_box)


def real_pipeline(tmp: Path):
    """The shipped CPU weights when this installation has them all (lesion localizer included).

    Without the shipped lesion weights the localizer is :class:`CentredLesion` (so the page test
    does not depend on that model); without the restorer / classifier weights, tiny real
    architectures.
    """
    from photorad.models.weights import shipped_weights
    from photorad.pipeline import Pipeline

    shipped = set(shipped_weights())
    if {"restorer", "classifier", "lesion"} <= shipped:
        return Pipeline.from_defaults()
    if {"restorer", "classifier"} <= shipped:
        from photorad.classify import default_classifier
        from photorad.restore import default_restorer

        return Pipeline(default_restorer(), default_classifier(), localizer=CentredLesion())
    from tests.test_serve import tiny_real_pipeline

    return tiny_real_pipeline(tmp, localizer=CentredLesion())


@contextmanager
def _serve(pipe):
    """The real app around ``pipe`` in uvicorn (thread, loopback, free port); yields its URL."""
    uvicorn = pytest.importorskip("uvicorn")
    from photorad.serve.app import ServeConfig, create_app

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
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="module")
def base_pipeline(tmp_path_factory):
    return real_pipeline(tmp_path_factory.mktemp("browser-models"))


@pytest.fixture(scope="module")
def recording(base_pipeline):
    return Recording(base_pipeline)


@pytest.fixture(scope="module")
def live_server(recording):
    with _serve(recording) as url:
        yield url


@pytest.fixture(scope="module")
def refusing(base_pipeline):
    """The same restorer and classifier, with a localizer that never finds a lesion."""
    from photorad.pipeline import Pipeline

    return Recording(Pipeline(base_pipeline.restorer, base_pipeline.classifier,
                              localizer=NoLesion()))


@pytest.fixture(scope="module")
def refusing_server(refusing):
    with _serve(refusing) as url:
        yield url


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

            with page.expect_response("**/v1/analyze", timeout=120_000) as resp_info:
                with page.expect_request("**/v1/analyze") as req_info:
                    page.click("#analyze")
            sent = np.array(json.loads(_multipart_field(req_info.value.post_data_buffer,
                                                        "corners")))
            moved = sent[0] - detected[0]
            np.testing.assert_allclose(moved, [40 / s, 30 / s], atol=2 / s + 1)
            np.testing.assert_allclose(sent[1:], detected[1:], atol=1e-6)

            page.wait_for_selector("#result:not([hidden])", timeout=60_000)
            out = resp_info.value.json()
            if out["score"] is None:  # the shipped lesion localizer may decline this photo
                assert page.is_visible("#refusal") and not page.is_visible("#score-box")
            else:
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


# ----- the lesion step ---------------------------------------------------------------------------

@contextmanager
def _phone_page(server: str):
    """A phone-sized page on ``server`` (touch enabled, no network beyond it); yields
    ``(context, page, outside, errors)`` and checks both lists on exit."""
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 412, "height": 860},
                                      device_scale_factor=2, has_touch=True)

            def guard(route):
                if route.request.url.startswith(server):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            ctx.route("**/*", guard)
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(server + "/")
            page.fill("#apikey", KEY)
            yield ctx, page, outside, errors
        finally:
            browser.close()
    assert outside == [], f"the page tried to reach the network: {outside}"
    assert errors == [], errors


def _upload_and_analyze(page, photo_path: Path) -> dict:
    """Choose the photo, wait for the corners, press Analyze; return the analysis JSON."""
    page.set_input_files("#file", str(photo_path))
    page.wait_for_selector("#detect-status:has-text('Corners found')", timeout=60_000)
    with page.expect_response("**/v1/analyze", timeout=120_000) as info:
        page.click("#analyze")
    assert info.value.status == 200, info.value.text()
    out = info.value.json()
    page.wait_for_selector("#result:not([hidden])")
    page.wait_for_function("document.getElementById('restored').complete && "
                           "document.getElementById('restored').naturalWidth > 0")
    return out


def _drag_on_restored(page, frac0, frac1, *, ctx=None) -> list[float]:
    """Drag from ``frac0`` to ``frac1`` (fractions of the displayed restored image) with the
    mouse, or with a finger (CDP touch events) when ``ctx`` is given. Returns the dragged box
    ``[x, y, w, h]`` in displayed-image fractions."""
    page.locator("#restored").scroll_into_view_if_needed()
    b = page.locator("#restored").bounding_box()
    x0, y0 = b["x"] + frac0[0] * b["width"], b["y"] + frac0[1] * b["height"]
    x1, y1 = b["x"] + frac1[0] * b["width"], b["y"] + frac1[1] * b["height"]
    steps = 8
    path = [(x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps) for k in range(steps + 1)]
    if ctx is None:
        page.mouse.move(*path[0])
        page.mouse.down()
        for x, y in path[1:]:
            page.mouse.move(x, y)
        page.mouse.up()
    else:
        cdp = ctx.new_cdp_session(page)
        cdp.send("Input.dispatchTouchEvent",
                 {"type": "touchStart", "touchPoints": [{"x": path[0][0], "y": path[0][1]}]})
        for x, y in path[1:]:
            cdp.send("Input.dispatchTouchEvent",
                     {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    return [frac0[0], frac0[1], frac1[0] - frac0[0], frac1[1] - frac0[1]]


def _expected_box(frac_box, width: int, height: int) -> np.ndarray:
    fx, fy, fw, fh = frac_box
    x0, y0 = round(fx * width), round(fy * height)
    return np.array([x0, y0, round((fx + fw) * width) - x0, round((fy + fh) * height) - y0])


def _rescore(page, first: dict, frac_box) -> tuple[list[float], dict]:
    """Press "Score this region"; check the request (the first analysis's corners, the dragged
    box in restored px); return the box sent and the response JSON. (Chromium leaves the file's
    bytes out of the request it reports: the callers check the photo on the server side.)"""
    assert page.is_enabled("#rescore")
    with page.expect_response("**/v1/analyze", timeout=120_000) as resp_info:
        with page.expect_request("**/v1/analyze") as req_info:
            page.click("#rescore")
    body = req_info.value.post_data_buffer
    sent_corners = json.loads(_multipart_field(body, "corners"))
    np.testing.assert_allclose(sent_corners, first["quad"]["corners"], atol=1e-9)
    sent_box = json.loads(_multipart_field(body, "lesion_box"))
    assert all(isinstance(v, int) for v in sent_box), sent_box  # rounded pixels
    rest = first["images"]["restored"]
    np.testing.assert_allclose(sent_box, _expected_box(frac_box, rest["width"], rest["height"]),
                               atol=1)
    assert resp_info.value.status == 200, resp_info.value.text()
    return sent_box, resp_info.value.json()


def _assert_user_score(page, out: dict, sent_box) -> None:
    from photorad import DISCLAIMER

    assert out["lesion"]["source"] == "user" and out["refusal"] is None
    assert out["lesion"]["box"] == sent_box
    page.wait_for_selector("#lesion-overlay[data-lesion-source='user']")
    assert page.inner_text("#lesion-label").strip() == "lesion (marked by you)"
    assert page.is_visible("#score-box") and not page.is_visible("#refusal")
    score = float(page.inner_text("#score"))
    assert 0.0 <= score <= 1.0
    assert score == pytest.approx(out["score"], abs=5e-4)
    assert DISCLAIMER in page.inner_text("#score-box")
    n = page.get_attribute("#lesion-outline", "points").split()
    assert len(n) >= 4  # the user box's contour
    assert not page.is_visible("#error")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_lesion_overlay_then_user_box(live_server, sim_photo, recording, artifacts_dir) -> None:
    photo_path, _ = sim_photo
    recording.calls.clear()
    with _phone_page(live_server) as (_ctx, page, _outside, _errors):
        first = _upload_and_analyze(page, photo_path)
        assert recording.calls[-1]["lesion_box"] is None
        rest = first["images"]["restored"]
        assert page.get_attribute("#lesion-overlay", "viewBox") == \
            f"0 0 {rest['width']} {rest['height']}"
        if isinstance(recording.pipe.localizer, CentredLesion):
            assert first["lesion"] is not None
        if first["lesion"] is not None:  # the shipped localizer may decline this photo
            les = first["lesion"]
            assert les["source"] == "auto"
            page.wait_for_selector("#lesion-overlay[data-lesion-source='auto']")
            assert page.inner_text("#lesion-label").strip() == \
                f"lesion (found automatically, confidence {les['confidence']:.2f})"
            pts = page.get_attribute("#lesion-outline", "points").split()
            assert len(pts) == len(les["outline"]) >= 3
            assert [float(page.get_attribute("#lesion-box", k))
                    for k in ("x", "y", "width", "height")] == les["box"]
            assert float(page.inner_text("#score")) == pytest.approx(first["score"], abs=5e-4)
        else:
            page.wait_for_selector("#refusal:not([hidden])")
        assert page.is_disabled("#rescore")  # nothing marked yet
        page.locator(".restored-figure").screenshot(
            path=str(artifacts_dir / "browser_lesion_auto.png"))

        frac = _drag_on_restored(page, (0.3, 0.35), (0.7, 0.65))
        assert page.is_enabled("#rescore")
        n_calls = len(recording.calls)
        sent_box, out = _rescore(page, first, frac)
        assert len(recording.calls) == n_calls + 1
        call = recording.calls[-1]
        assert call["lesion_box"] == [float(v) for v in sent_box]  # what the server received
        assert call["photo_sha256"] == recording.calls[-2]["photo_sha256"]  # the same photo
        np.testing.assert_allclose(call["corners"], first["quad"]["corners"], atol=1e-9)
        _assert_user_score(page, out, sent_box)
        page.screenshot(path=str(artifacts_dir / "browser_lesion.png"), full_page=True)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_no_lesion_shows_refusal_then_user_box_scores(refusing_server, sim_photo, refusing,
                                                      artifacts_dir) -> None:
    photo_path, _ = sim_photo
    refusing.calls.clear()
    with _phone_page(refusing_server) as (ctx, page, _outside, _errors):
        first = _upload_and_analyze(page, photo_path)
        assert first["score"] is None and first["lesion"] is None
        assert first["refusal"]["reason"] == "No score: no lesion found in the image."

        def assert_refusal() -> None:
            page.wait_for_selector("#refusal:not([hidden])")
            assert not page.is_visible("#score-box")
            assert not page.is_visible("#score")
            assert "Classifier score" not in page.inner_text("#result")
            refusal = page.inner_text("#refusal")
            assert "No score: no lesion found in the image." in refusal
            assert "drag a box around it on the image" in refusal  # the server's advice
            assert "--lesion-box" not in refusal  # the command-line aside is left out
            assert "Score this region" in refusal  # the invitation
            assert page.get_attribute("#lesion-overlay", "data-lesion-source") == "none"
            assert page.get_attribute("#lesion-outline", "points") == ""

        assert_refusal()
        page.screenshot(path=str(artifacts_dir / "browser_lesion_refusal.png"), full_page=True)

        # A finger drag (touch pointer events) marks the lesion; scoring it gives a score.
        frac = _drag_on_restored(page, (0.25, 0.3), (0.6, 0.7), ctx=ctx)
        page.wait_for_function("!document.getElementById('rescore').disabled")
        sent_box, out = _rescore(page, first, frac)
        assert refusing.calls[-1]["lesion_box"] == [float(v) for v in sent_box]
        assert refusing.calls[-1]["photo_sha256"] == refusing.calls[-2]["photo_sha256"]
        _assert_user_score(page, out, sent_box)

        # Analyzing again without a box refuses again: the earlier score must not linger.
        with page.expect_response("**/v1/analyze", timeout=120_000):
            page.click("#analyze")
        page.wait_for_selector("#score-box[hidden]", state="attached")
        assert_refusal()
        assert page.inner_text("#score").strip() == "–" or not page.is_visible("#score")
        assert refusing.calls[-1]["lesion_box"] is None
