"""`photorad serve` as a real process: TLS flags reach uvicorn, the key is enforced, clean errors."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

import pytest

pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

KEY = "cli-test-key-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_checkpoint_is_a_clean_error(monkeypatch, capsys, tmp_path) -> None:
    from photorad.cli import main

    monkeypatch.setenv("PHOTORAD_API_KEY", KEY)
    assert main(["serve", "--restorer", str(tmp_path / "none.safetensors"), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint not found" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")
def test_serve_process_with_tls_and_key(tmp_path) -> None:
    from tests.test_serve import tiny_real_pipeline

    pipe = tiny_real_pipeline(tmp_path)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = _free_port()
    env = dict(os.environ, PHOTORAD_API_KEY=KEY)
    cmd = [sys.executable, "-m", "photorad", "serve", "--port", str(port),
           "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
           "--restorer", str(tmp_path / "restorer.safetensors"),
           "--classifier", str(tmp_path / "classifier.safetensors"), "--log-level", "info"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=30) as c:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stdout.read()
                try:
                    if c.get(url + "/readyz").status_code == 200:
                        break
                except httpx.ConnectError as exc:
                    if "CERTIFICATE" in str(exc).upper():
                        raise
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "server did not become ready in 60 s"
                time.sleep(0.2)
            # a photo of breast ultrasound: the served pipeline's router refuses anything else
            from photorad.data.bus_bra import load_records
            from photorad.data.paths import sample_dir
            from photorad.io import encode_png, load_original
            from photorad.simulate import simulate_photo

            rec = load_records(sample_dir())[0]
            sim = simulate_photo(load_original(rec.path), preset="ideal", seed=0,
                                 size=(1024, 768))
            files = {"photo": ("x.png", encode_png(sim.photo), "image/png")}
            data = {"corners": json.dumps(sim.corners.tolist())}
            assert c.post(url + "/v1/analyze", files=files, data=data).status_code == 401
            r = c.post(url + "/v1/analyze", files=files, data=data,
                       headers={"X-API-Key": KEY, "X-Request-ID": "tls-1"})
            assert r.status_code == 200, r.text
            assert r.json()["request_id"] == "tls-1"
            served = r.json()["models"]
            # the given checkpoints, with the shipped localizer and router around them
            assert {k: served[k] for k in pipe.models} == pipe.models
            assert served["localizer"]["name"] == "lesion_cpu"
            assert served["router"]["name"] == "router_cpu"
            assert "server" not in r.headers  # no server banner
            with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "id=tls-1" in out and "status=200" in out  # the request log line
    assert "x.png" not in out  # no file names in the log
