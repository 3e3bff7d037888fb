"""A private Orthanc PACS for tests and loopback measurements.

:func:`run_orthanc` writes its own configuration (free loopback ports, storage in a temporary
folder, DICOMweb plugin, no HTTP authentication, remote access off), starts the Orthanc binary,
waits until ``/system`` answers, yields an :class:`OrthancServer` and stops the process by its
PID. A system Orthanc service (Debian starts one on 8042/4242) is never touched.

A Lua ``ReceivedInstanceFilter`` makes this Orthanc *refuse* every object whose PatientID is
``REJECT-ME`` (C-STORE failure status; STOW-RS response without the instance) and *silently
drop* (success status, nothing stored) objects with PatientID ``DROP-ME``, so tests can
exercise "archive refused it" and "only verification notices".

Test modules use the ``orthanc`` fixture: ``from tests._orthanc import orthanc  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REJECT_PATIENT_ID = "REJECT-ME"  # refused with an error status (C-STORE 0xA700, STOW no ref)
DROP_PATIENT_ID = "DROP-ME"  # acknowledged as stored but silently discarded
AET = "PHOTORADTEST"

_LUA = f"""
function ReceivedInstanceFilter(dicom, origin, info)
  if dicom.PatientID == '{DROP_PATIENT_ID}' then
    return false
  end
  if dicom.PatientID == '{REJECT_PATIENT_ID}' then
    error('refused by the photorad test filter')
  end
  return true
end
"""

_PLUGIN_DIRS = (
    "/usr/share/orthanc/plugins",
    "/usr/lib/orthanc",
    "/usr/lib/x86_64-linux-gnu/orthanc/plugins",
    "/usr/lib/aarch64-linux-gnu/orthanc/plugins",
    "/usr/local/share/orthanc/plugins",
)


@dataclass(frozen=True)
class OrthancServer:
    http_url: str  # http://127.0.0.1:PORT
    dicom_host: str
    dicom_port: int
    aet: str
    pid: int
    storage: Path

    @property
    def dicomweb_url(self) -> str:
        return f"{self.http_url}/dicom-web"

    @property
    def dimse(self) -> str:
        return f"{self.dicom_host}:{self.dicom_port}:{self.aet}"

    def get_json(self, path: str):
        with urllib.request.urlopen(self.http_url + path, timeout=10) as r:
            return json.loads(r.read())

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.http_url + path, timeout=30) as r:
            return r.read()

    def delete_all(self) -> None:
        for pid in self.get_json("/patients"):
            req = urllib.request.Request(f"{self.http_url}/patients/{pid}", method="DELETE")
            urllib.request.urlopen(req, timeout=10).close()

    def storage_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.storage.rglob("*") if p.is_file())


def orthanc_binary() -> str | None:
    return shutil.which("Orthanc") or next(
        (p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if os.path.exists(p)), None
    )


def dicomweb_plugin() -> str | None:
    for d in _PLUGIN_DIRS:
        for name in ("libOrthancDicomWeb.so",):
            p = Path(d) / name
            if p.exists():
                return str(p)
        hits = sorted(Path(d).glob("libOrthancDicomWeb.so*")) if Path(d).is_dir() else []
        if hits:
            return str(hits[0])
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def run_orthanc(workdir: str | os.PathLike | None = None, *, timeout: float = 60.0
                ) -> Iterator[OrthancServer]:
    """Start a private Orthanc on loopback; stop it (by PID) on exit."""
    exe = orthanc_binary()
    if exe is None:
        raise FileNotFoundError("Orthanc binary not found (Debian package 'orthanc')")
    plugin = dicomweb_plugin()
    if plugin is None:
        raise FileNotFoundError("Orthanc DICOMweb plugin not found (Debian 'orthanc-dicomweb')")
    own_tmp = workdir is None
    root = Path(tempfile.mkdtemp(prefix="photorad-orthanc-") if own_tmp else workdir)
    root.mkdir(parents=True, exist_ok=True)
    storage = root / "storage"
    storage.mkdir(exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    (root / "filter.lua").write_text(_LUA)
    config = {
        "Name": "photorad-test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "StorageCompression": False,
        "Plugins": [plugin],
        "LuaScripts": [str(root / "filter.lua")],
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": AET,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomModalities": {},
        "DicomAssociationCloseDelay": 0,
        "SaveJobs": False,
        "StableAge": 1,
        "HttpThreadsCount": 8,
        "DicomThreadsCount": 2,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
    }
    cfg = root / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=2))
    log = open(root / "orthanc.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([exe, str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                            cwd=root, start_new_session=True)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"Orthanc exited with status {proc.returncode}: "
                    + (root / "orthanc.log").read_text(errors="replace")[-2000:]
                )
            try:
                with urllib.request.urlopen(url + "/system", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not answer /system within {timeout:.0f} s")
            time.sleep(0.2)
        yield OrthancServer(url, "127.0.0.1", dicom_port, AET, proc.pid, storage)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()
        if own_tmp:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Iterator[OrthancServer]:
    if orthanc_binary() is None:
        pytest.skip("Orthanc is not installed (Debian package 'orthanc'; .ci/run installs it)")
    if dicomweb_plugin() is None:
        pytest.skip("Orthanc DICOMweb plugin not installed (Debian package 'orthanc-dicomweb')")
    with run_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server
