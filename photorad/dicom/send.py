"""Send DICOM objects to an archive: STOW-RS (DICOMweb) or C-STORE (DIMSE), then verify.

For every file :func:`send_files`

1. parses it (:func:`photorad.io.read_dicom`) and checks it is a storable image (SOP Class/
   Instance, Study/Series UIDs, pixel data);
2. asks the archive whether it already holds that SOP Instance UID (QIDO-RS search or C-FIND at
   IMAGE level) — if so it is not sent again (*idempotent by SOP Instance UID*; a file repeated
   within one call is sent once);
3. stores it, retrying *transient* failures (connection refused/reset, timeouts, HTTP 408/429/5xx,
   association rejected/aborted) with bounded exponential backoff; a *refusal* (HTTP 4xx,
   STOW FailedSOPSequence, C-STORE failure status) is final and not retried;
4. verifies by a fresh QIDO-RS / C-FIND that the archive now holds the instance.

Nothing is silent: each file gets a :class:`SendResult` with status ``sent``,
``already_present``, ``failed`` or ``skipped`` and a reason.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from photorad.errors import DicomError, NetworkError

log = logging.getLogger(__name__)

DEFAULT_CALLING_AET = "PHOTORAD"
RETRYABLE_HTTP = {408, 429, 500, 502, 503, 504}


class TransientError(NetworkError):
    """A failure worth retrying (network down, server busy)."""


class RejectedError(NetworkError):
    """The archive answered and refused the object; retrying will not help."""


@dataclass
class SendResult:
    """What happened to one file."""

    file: str
    status: str  # "sent" | "already_present" | "failed" | "skipped"
    sop_instance_uid: str | None = None
    verified: bool = False
    attempts: int = 0
    reason: str = ""
    bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Backoff:
    """Bounded exponential backoff: ``attempts`` tries, waits ``base·2^k`` capped at ``cap`` s."""

    attempts: int = 4
    base_s: float = 0.5
    cap_s: float = 8.0

    def delays(self) -> list[float]:
        return [min(self.base_s * 2**k, self.cap_s) for k in range(max(self.attempts - 1, 0))]


def with_retries(
    fn: Callable[[], Any],
    backoff: Backoff,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Any, int]:
    """Call ``fn`` until it succeeds, retrying only :class:`TransientError`; return (value, tries)."""
    delays = backoff.delays()
    for attempt in range(1, backoff.attempts + 1):
        try:
            return fn(), attempt
        except TransientError as exc:
            if attempt >= backoff.attempts:
                raise TransientError(f"{exc} (gave up after {attempt} attempts)") from None
            wait = delays[attempt - 1]
            log.info("transient failure (%s); retry %d in %.1f s", exc, attempt, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _uids(ds) -> tuple[str, str, str, str]:
    missing = [k for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID",
                           "SeriesInstanceUID") if not ds.get(k)]
    if missing:
        raise DicomError(f"not a DICOM file or not a storable object (missing "
                         f"{', '.join(missing)})")
    return (str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID))


class Destination:
    """An archive that can tell whether it holds an instance and can store one."""

    name = "archive"

    def has_instance(self, study: str, series: str, sop: str) -> bool:
        raise NotImplementedError

    def store(self, ds, raw: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class StowDestination(Destination):
    """A DICOMweb server (STOW-RS to store, QIDO-RS to check)."""

    def __init__(self, url: str, *, timeout_s: float = 30.0,
                 headers: dict[str, str] | None = None) -> None:
        try:
            from dicomweb_client.api import DICOMwebClient
        except ImportError as exc:  # pragma: no cover
            raise NetworkError("STOW-RS needs the 'dicom' extra (dicomweb-client)") from exc
        # dicomweb-client logs study UIDs at INFO; keep identifiers out of routine logs.
        logging.getLogger("dicomweb_client").setLevel(logging.WARNING)
        self.url = url.rstrip("/")
        self.name = f"STOW-RS {self.url}"
        self._client = DICOMwebClient(url=self.url, timeout=timeout_s, headers=headers)
        # Retries are ours (same policy for both protocols).
        self._client.set_http_retry_params(retry=False)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        import requests

        try:
            return fn()
        except requests.exceptions.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 0
            text = (exc.response.text[:200] if exc.response is not None else "").strip()
            msg = f"{what}: HTTP {code} from {self.url}" + (f" ({text})" if text else "")
            if code in RETRYABLE_HTTP:
                raise TransientError(msg) from None
            raise RejectedError(msg) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise TransientError(
                f"{what}: cannot reach {self.url} ({type(exc).__name__})"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise NetworkError(f"{what}: {type(exc).__name__}: {exc}") from None

    def has_instance(self, study: str, series: str, sop: str) -> bool:
        found = self._call(
            "QIDO-RS search",
            lambda: self._client.search_for_instances(
                study_instance_uid=study, search_filters={"SOPInstanceUID": sop}
            ),
        )
        return any(
            (item.get("00080018", {}).get("Value") or [None])[0] == sop for item in found or []
        )

    def store(self, ds, raw: bytes) -> None:
        resp = self._call("STOW-RS", lambda: self._client.store_instances(datasets=[ds]))
        failed = resp.get("FailedSOPSequence") if resp is not None else None
        if failed:
            reasons = ", ".join(
                f"0x{int(item.get('FailureReason', 0)):04X}" for item in failed
            )
            raise RejectedError(f"STOW-RS: {self.url} refused the instance (FailureReason {reasons})")
        refs = resp.get("ReferencedSOPSequence") if resp is not None else None
        sop = str(ds.SOPInstanceUID)
        if refs is not None and not any(str(r.get("ReferencedSOPInstanceUID", "")) == sop
                                         for r in refs):
            raise RejectedError(f"STOW-RS: {self.url} did not accept the instance (not listed "
                                "in the response's ReferencedSOPSequence)")


class DimseDestination(Destination):
    """A DIMSE archive (C-STORE to store, C-FIND at IMAGE level to check)."""

    def __init__(self, host: str, port: int, called_aet: str, *,
                 calling_aet: str = DEFAULT_CALLING_AET, timeout_s: float = 30.0) -> None:
        try:
            import pynetdicom  # noqa: F401
        except ImportError as exc:  # pragma: no cover
            raise NetworkError("C-STORE needs the 'dicom' extra (pynetdicom)") from exc
        # pynetdicom logs every failed association as ERROR; our result says it once, clearly.
        if log.getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
        self.host, self.port, self.called_aet = host, int(port), called_aet
        self.calling_aet = calling_aet
        self.timeout_s = timeout_s
        self.name = f"C-STORE {called_aet}@{host}:{port}"

    @classmethod
    def parse(cls, spec: str, **kw: Any) -> DimseDestination:
        """``HOST:PORT:AET`` → destination."""
        parts = spec.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2]:
            raise NetworkError(f"--dimse must look like HOST:PORT:AET, got {spec!r}")
        if len(parts[2]) > 16:
            raise NetworkError(f"AE title {parts[2]!r} is longer than 16 characters")
        return cls(parts[0], int(parts[1]), parts[2], **kw)

    def _associate(self, contexts: list[tuple[str, list[str]]]):
        from pynetdicom import AE

        ae = AE(ae_title=self.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        for abstract, syntaxes in contexts:
            ae.add_requested_context(abstract, syntaxes)
        try:
            assoc = ae.associate(self.host, self.port, ae_title=self.called_aet)
        except OSError as exc:
            raise TransientError(f"cannot reach {self.name} ({exc})") from None
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            raise RejectedError(f"{self.name} rejected the association (check AE titles)")
        raise TransientError(f"cannot reach {self.name} (no association: connection refused, "
                             "aborted or timed out)")

    def has_instance(self, study: str, series: str, sop: str) -> bool:
        from pydicom.dataset import Dataset
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

        q = Dataset()
        q.QueryRetrieveLevel = "IMAGE"
        q.StudyInstanceUID, q.SeriesInstanceUID, q.SOPInstanceUID = study, series, sop
        assoc = self._associate([(StudyRootQueryRetrieveInformationModelFind,
                                  ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])])
        found = False
        try:
            for status, ident in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind):
                if status is None:
                    raise TransientError(f"C-FIND to {self.name}: no response (timeout/abort)")
                code = int(status.Status)
                if code in (0xFF00, 0xFF01) and ident is not None:
                    found = found or str(ident.get("SOPInstanceUID", "")) == sop
                elif code not in (0x0000, 0xFF00, 0xFF01):
                    raise RejectedError(f"C-FIND to {self.name} failed with status 0x{code:04X}")
        finally:
            assoc.release()
        return found

    def store(self, ds, raw: bytes) -> None:
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

        ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
        syntaxes = list(dict.fromkeys(
            [s for s in (ts, ExplicitVRLittleEndian, ImplicitVRLittleEndian) if s]))
        assoc = self._associate([(str(ds.SOPClassUID), syntaxes)])
        try:
            if not any(cx.abstract_syntax == ds.SOPClassUID for cx in assoc.accepted_contexts):
                raise RejectedError(
                    f"{self.name} does not accept SOP class {ds.SOPClassUID.name} "
                    f"with transfer syntax {getattr(ts, 'name', ts) or 'of this file'}"
                )
            status = assoc.send_c_store(ds)
        except (ValueError, AttributeError) as exc:
            raise RejectedError(f"C-STORE to {self.name}: cannot send ({exc})") from None
        finally:
            assoc.release()
        if status is None or "Status" not in status:
            raise TransientError(f"C-STORE to {self.name}: no response (timeout or abort)")
        code = int(status.Status)
        if code == 0x0000:
            return
        if code in (0xB000, 0xB007, 0xB006):  # warnings: stored, possibly coerced
            log.warning("C-STORE to %s: stored with warning status 0x%04X", self.name, code)
            return
        raise RejectedError(f"C-STORE to {self.name}: refused with status 0x{code:04X}")


def _load(path: Path, *, allow_no_pixels: bool):
    from photorad.io import read_dicom

    raw = path.read_bytes() if path.is_file() else b""
    if not raw:
        raise DicomError(f"{path.name}: file not found or empty")
    try:
        ds = read_dicom(raw)
        _uids(ds)
    except DicomError as exc:
        raise DicomError(f"{path.name}: {str(exc).replace('uploaded data: ', '')}") from None
    if not allow_no_pixels and "PixelData" not in ds:
        raise DicomError(f"{path.name}: DICOM file has no pixel data (use --allow-no-pixels "
                         "for SR/KO objects)")
    return ds, raw


def _send_one(ds, raw: bytes, res: SendResult, dest: Destination, *, backoff: Backoff,
              verify: bool, skip_existing: bool, sleep: Callable[[float], None]) -> None:
    _cls, sop, study, series = _uids(ds)

    def present() -> bool:
        return dest.has_instance(study, series, sop)

    if skip_existing:
        found, _ = with_retries(present, backoff, sleep=sleep)
        if found:
            res.status, res.verified, res.attempts = "already_present", True, 0
            res.reason = "archive already holds this SOP Instance UID; not sent again"
            return
    _, res.attempts = with_retries(lambda: dest.store(ds, raw), backoff, sleep=sleep)
    res.status = "sent"
    if verify:
        ok, _ = with_retries(present, backoff, sleep=sleep)
        res.verified = bool(ok)
        if not ok:
            res.status = "failed"
            res.reason = ("the archive acknowledged the object but does not list it "
                          "(verification failed: dropped or still being indexed)")


def send_files(
    paths: Iterable[str | os.PathLike],
    dest: Destination,
    *,
    backoff: Backoff | None = None,
    verify: bool = True,
    skip_existing: bool = True,
    allow_no_pixels: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> list[SendResult]:
    """Send files one by one; never raises for a single bad file or a down archive.

    A file whose archive round trip fails gets ``status="failed"`` with the reason. Once the
    archive stays unreachable after all retries, the remaining files are not attempted (no
    minutes of futile retries) and are reported as failed with that reason, so the caller always
    learns exactly what was and was not sent.
    """
    backoff = backoff or Backoff()
    results: list[SendResult] = []
    seen: set[str] = set()
    unreachable: str | None = None
    for p in map(Path, paths):
        res = SendResult(file=str(p), status="skipped")
        results.append(res)
        t0 = time.perf_counter()
        try:
            ds, raw = _load(p, allow_no_pixels=allow_no_pixels)
        except DicomError as exc:
            res.reason = str(exc)
            continue
        _cls, sop, study, series = _uids(ds)
        res.sop_instance_uid, res.bytes = sop, len(raw)
        if sop in seen:
            res.status, res.reason = "already_present", "same SOP Instance UID earlier in this batch"
            res.verified = True
            continue
        seen.add(sop)
        if unreachable is not None:
            res.status = "failed"
            res.reason = f"not attempted: archive unreachable ({unreachable})"
            continue
        try:
            _send_one(ds, raw, res, dest, backoff=backoff, verify=verify,
                      skip_existing=skip_existing, sleep=sleep)
        except NetworkError as exc:
            res.status, res.reason = "failed", str(exc)
            res.attempts = max(res.attempts, 1)
            if isinstance(exc, TransientError):
                unreachable = str(exc)
        finally:
            res.seconds = time.perf_counter() - t0
    dest.close()
    return results


def destination_from_args(*, stow: str | None = None, dimse: str | None = None,
                          calling_aet: str = DEFAULT_CALLING_AET,
                          timeout_s: float = 30.0) -> Destination:
    """Build the destination named by ``--stow URL`` or ``--dimse HOST:PORT:AET``."""
    if bool(stow) == bool(dimse):
        raise NetworkError("give exactly one of --stow URL or --dimse HOST:PORT:AET")
    if stow:
        if not stow.startswith(("http://", "https://")):
            raise NetworkError(f"--stow needs an http(s) URL, got {stow!r}")
        return StowDestination(stow, timeout_s=timeout_s)
    return DimseDestination.parse(dimse or "", calling_aet=calling_aet, timeout_s=timeout_s)
