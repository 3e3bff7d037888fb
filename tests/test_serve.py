"""The inference service: every status code, auth, limits, privacy, docs, web page.

The app runs for real (FastAPI TestClient with its lifespan). The 200 paths use the real stages
(rectify + ``Restorer`` + ``Classifier`` built from tiny real-architecture checkpoints, so that no
trained weights are needed); overload and timeout tests use a pipeline double that blocks on
purpose, because a real model cannot be made slow on demand.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("fastapi_offline")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from photorad import DISCLAIMER  # noqa: E402
from photorad.errors import ConfigError  # noqa: E402
from photorad.io import encode_jpeg, encode_png  # noqa: E402
from photorad.serve.app import ServeConfig, create_app  # noqa: E402
from photorad.serve.limits import ConcurrencyGate, Overloaded  # noqa: E402
from photorad.serve.security import (  # noqa: E402
    check_startup,
    is_loopback,
    key_matches,
    load_keys,
)

KEY = "test-key-0123456789abcdef"
KEY2 = "second-key-0123456789abcdef"


def tiny_real_pipeline(folder: Path, **kw):
    """The real pipeline with small, randomly initialised real architectures (seeded)."""
    import torch

    from photorad.classify import Classifier, PreprocessSpec
    from photorad.models import create_model
    from photorad.models.checkpoint import CheckpointMeta, save_checkpoint
    from photorad.pipeline import Pipeline
    from photorad.restore import Restorer

    torch.manual_seed(0)
    rk = {"depth": 3, "channels": 8}
    r_path = save_checkpoint(folder / "restorer.safetensors", create_model("dncnn_s", **rk),
                             CheckpointMeta("dncnn_s", rk, "restore", extra={"name": "tiny-dncnn"}))
    ck = {"widths": [8, 16, 16]}
    spec = PreprocessSpec(size=64, roi=False)
    c_path = save_checkpoint(
        folder / "classifier.safetensors", create_model("sepnet", **ck),
        CheckpointMeta("sepnet", ck, "classify",
                       extra={"name": "tiny-sepnet", "preprocess": spec.to_dict()}))
    restorer = Restorer.from_checkpoint(r_path, backend="eager")
    classifier = Classifier.from_checkpoint(c_path, device="cpu")
    return Pipeline(restorer, classifier, **kw)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return tiny_real_pipeline(tmp_path_factory.mktemp("serve-models"))


@pytest.fixture(scope="module")
def photo():
    from tests.test_pipeline import synthetic_photo

    return synthetic_photo()[0]


@pytest.fixture(scope="module")
def photo_jpeg(photo) -> bytes:
    return encode_jpeg(photo, quality=92)


def make_client(pipeline, **cfg) -> TestClient:
    cfg.setdefault("keys", [KEY.encode(), KEY2.encode()])
    app = create_app(ServeConfig(**cfg), pipeline_factory=lambda: pipeline,
                     audit_factory=lambda: None)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(pipeline):
    with make_client(pipeline) as c:
        yield c


def corners_json() -> str:
    from tests.test_pipeline import TRUE_CORNERS

    return json.dumps(TRUE_CORNERS.tolist())


def post(client, path, data: bytes, *, key=KEY, corners=None, name="photo.jpg", headers=None):
    h = {"X-API-Key": key} if key else {}
    h.update(headers or {})
    form = {"corners": corners} if corners is not None else None
    return client.post(path, files={"photo": (name, data, "image/jpeg")}, data=form, headers=h)


def assert_json_error(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"]["status"] == status and body["error"]["message"]
    assert body["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in r.text
    return body


# ----- health, readiness, models -----------------------------------------------------------


def test_healthz_readyz_and_models(client, pipeline) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True
    r = client.get("/v1/models", headers={"X-API-Key": KEY})
    assert r.status_code == 200
    assert r.json()["models"] == pipeline.models
    assert r.json()["disclaimer"] == DISCLAIMER
    assert r.headers["cache-control"] == "no-store"


def test_readyz_is_503_before_models_are_loaded(pipeline) -> None:
    app = create_app(ServeConfig(keys=[KEY.encode()]), pipeline_factory=lambda: pipeline)
    c = TestClient(app, raise_server_exceptions=False)  # no `with`: lifespan not run
    assert c.get("/readyz").status_code == 503
    r = c.get("/v1/models", headers={"X-API-Key": KEY})
    assert_json_error(r, 503)
    assert r.headers["retry-after"]


# ----- analyze / rectify with the real stages ------------------------------------------------


def test_analyze_200_real_stages_and_request_id(client, pipeline, photo, photo_jpeg) -> None:
    from photorad.io import load_photo

    r = post(client, "/v1/analyze", photo_jpeg, corners=corners_json(),
             headers={"X-Request-ID": "abc-123"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["request_id"] == "abc-123" == r.headers["x-request-id"]
    assert doc["disclaimer"] == DISCLAIMER
    assert doc["quad"]["method"] == "manual"
    assert doc["models"] == pipeline.models
    # Same numbers as calling the pipeline directly on the decoded upload.
    ref = pipeline.analyze(load_photo(photo_jpeg), json.loads(corners_json()))
    assert doc["score"] == pytest.approx(ref.score, abs=1e-6)
    png = base64.b64decode(doc["images"]["restored"]["png_base64"])
    restored = np.asarray(Image.open(io.BytesIO(png)))
    np.testing.assert_array_equal(restored, np.rint(ref.restored * 255).astype(np.uint8))
    assert doc["images"]["rectified"]["png_base64"]
    assert doc["timings_ms"]["total"] > 0


def test_analyze_generates_request_id_when_none_or_malformed(client, photo_jpeg) -> None:
    r1 = post(client, "/v1/analyze", photo_jpeg, corners=corners_json())
    r2 = post(client, "/v1/analyze", photo_jpeg, corners=corners_json(),
              headers={"X-Request-ID": "bad id with spaces;" + "x" * 80})
    for r in (r1, r2):
        assert r.status_code == 200
        assert r.json()["request_id"] == r.headers["x-request-id"]
        assert len(r.headers["x-request-id"]) == 32
    assert r1.headers["x-request-id"] != r2.headers["x-request-id"]


def test_rectify_detects_corners(client, photo_jpeg) -> None:
    from photorad import rectify

    if not hasattr(rectify, "detect"):
        pytest.skip("photorad.rectify.detect not available yet")
    from tests.test_pipeline import TRUE_CORNERS

    r = post(client, "/v1/rectify", photo_jpeg)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["photo"] == {"width": 720, "height": 540}
    assert np.abs(np.array(doc["quad"]["corners"]) - TRUE_CORNERS).max() < 6.0
    assert doc["disclaimer"] == DISCLAIMER and doc["request_id"] == r.headers["x-request-id"]


def test_rectify_no_screen_is_422(client) -> None:
    from photorad import rectify

    if not hasattr(rectify, "detect"):
        pytest.skip("photorad.rectify.detect not available yet")
    flat = np.full((300, 400, 3), 128, np.uint8)
    body = assert_json_error(post(client, "/v1/rectify", encode_png(flat)), 422)
    assert body["error"]["type"] == "NoScreenFoundError"


def test_analyze_without_corners_uses_detection(client, photo_jpeg) -> None:
    from photorad import rectify

    if not hasattr(rectify, "detect"):
        pytest.skip("photorad.rectify.detect not available yet")
    r = post(client, "/v1/analyze", photo_jpeg)
    assert r.status_code == 200, r.text
    assert r.json()["quad"]["method"] != "manual"


# ----- 401 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "wrong-key-0123456789abcdef", KEY[:-1], KEY + "x"])
def test_missing_or_wrong_key_is_401(client, photo_jpeg, key) -> None:
    r = post(client, "/v1/analyze", photo_jpeg, key=key, corners=corners_json())
    body = assert_json_error(r, 401)
    assert "X-API-Key" in body["error"]["message"]
    assert r.headers["www-authenticate"] == "ApiKey"
    assert_json_error(client.get("/v1/models", headers={"X-API-Key": key or ""}), 401)


def test_second_key_works(client) -> None:
    assert client.get("/v1/models", headers={"X-API-Key": KEY2}).status_code == 200


def test_no_auth_mode(pipeline) -> None:
    with make_client(pipeline, keys=[], auth=False) as c:
        assert c.get("/v1/models").status_code == 200


# ----- 413 ---------------------------------------------------------------------------------


def test_body_too_large_by_content_length_is_413(pipeline, photo_jpeg) -> None:
    with make_client(pipeline, max_body_bytes=10_000) as c:
        r = post(c, "/v1/analyze", photo_jpeg, corners=corners_json())
        body = assert_json_error(r, 413)
        assert "limit" in body["error"]["message"]


def test_body_too_large_while_streaming_is_413(pipeline, photo_jpeg) -> None:
    """Chunked upload without Content-Length: the limit triggers while reading."""
    boundary = "xyzBOUNDARY"
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; "
               f"filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + photo_jpeg \
        + f"\r\n--{boundary}--\r\n".encode()

    def gen():
        for i in range(0, len(payload), 4096):
            yield payload[i:i + 4096]

    with make_client(pipeline, max_body_bytes=20_000) as c:
        r = c.post("/v1/analyze", content=gen(),
                   headers={"X-API-Key": KEY,
                            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert_json_error(r, 413)
        # The same request under the limit works, so it was the size that was refused.
    with make_client(pipeline) as c:
        r = c.post("/v1/analyze", content=gen(),
                   headers={"X-API-Key": KEY,
                            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code in (200, 422), r.text  # detected, or no screen found: not a 413


def test_too_many_pixels_is_413(pipeline, photo_jpeg) -> None:
    with make_client(pipeline, max_pixels=100_000) as c:
        body = assert_json_error(post(c, "/v1/analyze", photo_jpeg, corners=corners_json()), 413)
        assert body["error"]["type"] == "ImageTooLargeError"


def _png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` × ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_413(client) -> None:
    bomb = _png_bomb(100_000, 100_000)
    assert len(bomb) < 2000
    body = assert_json_error(post(client, "/v1/analyze", bomb, corners=corners_json()), 413)
    assert "pixels" in body["error"]["message"]


# ----- 415 / 422 / 400 ---------------------------------------------------------------------


def test_unsupported_file_is_415(client) -> None:
    r = post(client, "/v1/analyze", b"%PDF-1.4 not a photo at all", corners=corners_json())
    assert_json_error(r, 415)
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
    assert_json_error(post(client, "/v1/rectify", gif), 415)


def test_non_multipart_body_is_415(client, photo_jpeg) -> None:
    r = client.post("/v1/analyze", content=photo_jpeg,
                    headers={"X-API-Key": KEY, "Content-Type": "image/jpeg"})
    body = assert_json_error(r, 415)
    assert "multipart" in body["error"]["message"]


def test_corrupt_file_is_422(client, photo_jpeg) -> None:
    body = assert_json_error(post(client, "/v1/analyze", photo_jpeg[:400],
                                  corners=corners_json()), 422)
    assert body["error"]["type"] == "CorruptImageError"


@pytest.mark.parametrize("corners", [
    "not json", "[1, 2, 3]", '{"corners": [[0, 0], [1, 0]]}', '[[0,0],[9000,0],[9000,9000],[0,9000]]',
    '[[150, 90], [540, 400], [560, 120], [130, 380]]', '[["a", 1], [2, 3], [4, 5], [6, 7]]',
])
def test_invalid_corners_are_422(client, photo_jpeg, corners) -> None:
    body = assert_json_error(post(client, "/v1/analyze", photo_jpeg, corners=corners), 422)
    assert body["error"]["type"] == "InvalidCornersError"


def test_corner_formats_accepted(client, photo_jpeg) -> None:
    from tests.test_pipeline import TRUE_CORNERS

    flat = json.dumps(TRUE_CORNERS.ravel().tolist())
    wrapped = json.dumps({"corners": TRUE_CORNERS.tolist()})
    for c in (flat, wrapped):
        r = post(client, "/v1/analyze", photo_jpeg, corners=c)
        assert r.status_code == 200, r.text


def test_missing_photo_field_is_422_and_malformed_multipart_400(client) -> None:
    r = client.post("/v1/analyze", data={"corners": "[]"}, files={"other": ("x", b"1")},
                    headers={"X-API-Key": KEY})
    assert_json_error(r, 422)
    r = client.post("/v1/analyze", content=b"garbage",
                    headers={"X-API-Key": KEY, "Content-Type": "multipart/form-data"})
    assert_json_error(r, 400)


def test_model_error_is_500_json(pipeline, photo_jpeg) -> None:
    from photorad.pipeline import Pipeline

    class NaNRestorer:
        """Passes the start-up warm-up, then returns NaN (a model gone bad while serving)."""

        name, sha256 = "nan", "0" * 64
        calls = 0

        def restore(self, img):
            self.calls += 1
            return img if self.calls == 1 else np.full_like(img, np.nan)

    bad = Pipeline(NaNRestorer(), pipeline.classifier)
    with make_client(bad) as c:
        body = assert_json_error(post(c, "/v1/analyze", photo_jpeg, corners=corners_json()), 500)
        assert body["error"]["type"] == "ModelError"


# ----- 503 overload and 504 timeout ----------------------------------------------------------


class BlockingPipeline:
    """Pipeline double whose analyze() waits for ``release`` (or ``delay_s``)."""

    models = {"restorer": {"name": "block", "sha256": ""},
              "classifier": {"name": "block", "sha256": ""}}

    def __init__(self, real, *, delay_s: float | None = None) -> None:
        self.real = real
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.delay_s = delay_s
        self.finished = 0

    def analyze(self, photo, corners=None):
        self.started.release()
        if self.delay_s is not None:
            time.sleep(self.delay_s)
        else:
            self.release.wait(10)
        self.finished += 1
        return self.real.analyze(photo, corners)

    def locate(self, photo, corners=None):
        return self.real.locate(photo, corners)


def test_overload_gives_503_with_retry_after_and_no_lost_responses(pipeline, photo_jpeg) -> None:
    blocking = BlockingPipeline(pipeline)
    with make_client(blocking, max_active=1, max_waiting=1, retry_after_s=7) as c:
        with ThreadPoolExecutor(2) as ex:
            first = ex.submit(post, c, "/v1/analyze", photo_jpeg, corners=corners_json(),
                              headers={"X-Request-ID": "first"})
            assert blocking.started.acquire(timeout=10)  # slot taken
            second = ex.submit(post, c, "/v1/analyze", photo_jpeg, corners=corners_json(),
                               headers={"X-Request-ID": "second"})
            for _ in range(200):  # wait until the second request is queued
                if c.get("/readyz").json()["load"]["waiting"] == 1:
                    break
                time.sleep(0.01)
            third = post(c, "/v1/analyze", photo_jpeg, corners=corners_json(),
                         headers={"X-Request-ID": "third"})
            body = assert_json_error(third, 503)
            assert third.headers["retry-after"] == "7"
            assert body["request_id"] == "third"
            blocking.release.set()
            r1, r2 = first.result(30), second.result(30)
        assert (r1.status_code, r2.status_code) == (200, 200)
        assert r1.json()["request_id"] == "first" and r2.json()["request_id"] == "second"
        assert c.get("/readyz").json()["load"]["active"] == 0


def test_timeout_is_504_and_slot_is_held_until_work_ends(pipeline, photo_jpeg) -> None:
    slow = BlockingPipeline(pipeline, delay_s=1.0)
    with make_client(slow, timeout_s=0.2, max_active=1, max_waiting=0) as c:
        body = assert_json_error(post(c, "/v1/analyze", photo_jpeg, corners=corners_json()), 504)
        assert "limit" in body["error"]["message"]
        # The worker thread is still running: the slot is still taken, so a new request is
        # refused rather than piling more work onto the CPU.
        assert c.get("/readyz").json()["load"]["active"] == 1
        assert_json_error(post(c, "/v1/analyze", photo_jpeg, corners=corners_json()), 503)
        for _ in range(300):
            if c.get("/readyz").json()["load"]["active"] == 0:
                break
            time.sleep(0.01)
        assert c.get("/readyz").json()["load"]["active"] == 0
        assert slow.finished == 1


def test_too_many_uploads_at_once_is_503(pipeline, photo_jpeg) -> None:
    with make_client(pipeline, max_uploads=0, retry_after_s=3) as c:
        r = post(c, "/v1/analyze", photo_jpeg, corners=corners_json())
        assert_json_error(r, 503)
        assert r.headers["retry-after"] == "3"
        assert c.get("/readyz").json()["load"]["uploading"] == 0


def test_gate_counts() -> None:
    import asyncio

    async def scenario() -> None:
        gate = ConcurrencyGate(max_active=2, max_waiting=1)
        await gate.acquire()
        await gate.acquire()
        waiter = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0)
        assert gate.waiting == 1
        with pytest.raises(Overloaded):
            await gate.acquire()
        gate.release()
        await waiter
        assert gate.active == 2 and gate.waiting == 0
        gate.release()
        gate.release()
        assert gate.active == 0

    asyncio.run(scenario())


# ----- security configuration ---------------------------------------------------------------


def test_key_matching_and_loading(tmp_path, caplog) -> None:
    keys = [KEY.encode(), KEY2.encode()]
    assert key_matches(KEY, keys) and key_matches(KEY2, keys)
    assert not key_matches(None, keys) and not key_matches("", keys)
    assert not key_matches(KEY, []) and not key_matches(KEY.upper(), keys)
    assert not key_matches("ключ-0123456789abcdef", keys)  # non-ASCII does not crash
    assert load_keys(environ={"PHOTORAD_API_KEY": f" {KEY} ,{KEY2}"}) == keys
    assert load_keys(environ={}) == []
    f = tmp_path / "keys"
    f.write_text(f"# clinic A\n{KEY}\n\n{KEY2}\n")
    f.chmod(0o600)
    assert load_keys(keys_file=f, environ={}) == keys
    f.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_keys(keys_file=f, environ={})
    assert "readable by other users" in caplog.text
    with pytest.raises(ConfigError, match="shorter"):
        load_keys(environ={"PHOTORAD_API_KEY": "short"})
    with pytest.raises(ConfigError, match="cannot read"):
        load_keys(keys_file=tmp_path / "missing", environ={})


def test_startup_refuses_without_key_or_insecure_off_loopback() -> None:
    with pytest.raises(ConfigError, match="no API key"):
        check_startup(host="127.0.0.1", keys=[], insecure_no_auth=False)
    with pytest.raises(ConfigError, match="loopback"):
        check_startup(host="0.0.0.0", keys=[], insecure_no_auth=True)
    check_startup(host="127.0.0.1", keys=[], insecure_no_auth=True)
    check_startup(host="::1", keys=[], insecure_no_auth=True)
    check_startup(host="0.0.0.0", keys=[KEY.encode()], insecure_no_auth=False)
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("host")
    with pytest.raises(ConfigError):
        create_app(ServeConfig(keys=[]))


def test_cli_serve_refuses_to_start_without_key(monkeypatch, capsys) -> None:
    from photorad.cli import main

    monkeypatch.delenv("PHOTORAD_API_KEY", raising=False)
    assert main(["serve", "--port", "1"]) == ConfigError.exit_code
    assert "no API key" in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--insecure-no-auth", "--port", "1"]) == 2
    assert "loopback" in capsys.readouterr().err
    monkeypatch.setenv("PHOTORAD_API_KEY", KEY)
    assert main(["serve", "--ssl-certfile", "/nonexistent.pem", "--port", "1"]) == 2
    assert "--ssl-keyfile" in capsys.readouterr().err


def test_cors_off_by_default_and_on_when_asked(pipeline) -> None:
    pre = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with make_client(pipeline) as c:
        r = c.get("/v1/models", headers={"X-API-Key": KEY, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        r = c.options("/v1/analyze", headers=pre)
        assert "access-control-allow-origin" not in r.headers
    with make_client(pipeline, cors_origins=["https://clinic.example"]) as c:
        r = c.get("/v1/models", headers={"X-API-Key": KEY, "Origin": "https://clinic.example"})
        assert r.headers["access-control-allow-origin"] == "https://clinic.example"


# ----- privacy ------------------------------------------------------------------------------


def _jpeg_with_exif(photo: np.ndarray) -> bytes:
    im = Image.fromarray(photo)
    exif = Image.Exif()
    exif[0x010F] = "SECRETMAKER"  # Make
    exif[0x9286] = "SECRETCOMMENT"  # UserComment
    gps = {1: "N", 2: (51.0, 30.0, 12.0), 3: "W", 4: (0.0, 7.0, 39.0)}
    exif[0x8825] = gps
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif, quality=90)
    return buf.getvalue()


def test_no_file_names_exif_or_pixels_in_logs_or_responses(client, photo, caplog, tmp_path,
                                                           monkeypatch) -> None:
    import tempfile

    data = _jpeg_with_exif(photo)
    assert b"SECRETMAKER" in data
    # A > 1 MB upload would be spooled to a temporary *file* by default; check nothing is.
    big = data + b"\x00" * 1_500_000  # trailing bytes after the JPEG end are ignored by decoders
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with caplog.at_level(logging.DEBUG, logger="photorad"):
        r = post(client, "/v1/analyze", big, corners=corners_json(),
                 name="DOE_JOHN_1956-01-01.jpg")
    assert r.status_code == 200, r.text
    assert list(tmp_path.iterdir()) == []
    doc = r.json()
    pngs = [base64.b64decode(doc["images"][k].pop("png_base64")) for k in ("rectified", "restored")]
    for text in (json.dumps(doc), caplog.text):
        for secret in ("DOE_JOHN", "SECRETMAKER", "SECRETCOMMENT", "GPS", "Exif", "exif"):
            assert secret not in text
    for png in pngs:  # the returned images carry no metadata chunks at all
        for chunk in (b"eXIf", b"tEXt", b"iTXt", b"zTXt", b"SECRET"):
            assert chunk not in png
    assert r.json()["request_id"] in caplog.text  # the request is logged, by id
    assert "in_bytes=" in caplog.text and "status=200" in caplog.text


def test_audit_entry_per_analysis(pipeline, photo_jpeg, tmp_path) -> None:
    audit_mod = pytest.importorskip("photorad.audit")
    log_path = tmp_path / "audit.jsonl"
    config = ServeConfig(keys=[KEY.encode()])
    app = create_app(config, pipeline_factory=lambda: pipeline,
                     audit_factory=lambda: audit_mod.AuditLog(log_path, key_id="test"))
    with TestClient(app) as c:
        r = post(c, "/v1/analyze", photo_jpeg, corners=corners_json())
        assert r.status_code == 200
    lines = log_path.read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    import hashlib

    assert entry["action"] == "analyze"
    assert entry["inputs_sha256"] == [hashlib.sha256(photo_jpeg).hexdigest()]
    assert entry["extra"]["request_id"] == r.json()["request_id"]
    assert audit_mod.verify(log_path)


# ----- docs and web page --------------------------------------------------------------------


def test_openapi_and_offline_docs(client) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/v1/analyze", "/v1/rectify", "/v1/models", "/healthz", "/readyz"):
        assert path in spec["paths"]
    body = spec["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn" not in html.lower() and "https://" not in html.split("<body")[0]
        assert "/static-offline-docs/" in html
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


def test_web_page_served_and_self_contained(client) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'capture="environment"' in html and 'accept="image/*"' in html
    assert DISCLAIMER in html
    assert "default-src 'self'" in r.headers["content-security-policy"]
    static = Path(__file__).resolve().parents[1] / "photorad" / "serve" / "static"
    for name in ("index.html", "app.js", "style.css"):
        text = (static / name).read_text()
        assert "http://" not in text and "https://" not in text, f"{name} loads from the network"
        assert client.get(f"/static/{name}").status_code == 200
    js = (static / "app.js").read_text()
    assert "sessionStorage" in js and "localStorage" not in js
    assert "pointerdown" in js and "/v1/rectify" in js and "/v1/analyze" in js
