"""Transmission cost: original DICOM over C-STORE vs phone photo vs rectified ROI.

For a set of BUS-BRA cases (the full dataset when found, else the embedded 20-image sample)
this measures, per image:

(a) ``dicom_cstore``   — the original as an uncompressed DICOM (US Image Storage, 8-bit
                         MONOCHROME2, explicit VR little endian, built from the BUS-BRA PNG),
                         sent with ``photorad.dicom.send`` (one association per file) to a
                         private Orthanc on loopback;
(b) ``photo_jpeg``     — the phone photo JPEG exactly as :func:`photorad.simulate.simulate_photo`
                         writes it (default 4032×3024, preset ``typical``), uploaded by HTTP POST
                         to a loopback sink;
(c) ``roi_png`` / ``roi_jpeg90`` — the rectified ROI (:func:`photorad.rectify.warp` with the
                         simulator's true corners, at the photo's resolution) as 8-bit PNG and as
                         JPEG quality 90, uploaded the same way;
(d) ``roi_orig_size_png`` / ``roi_orig_size_jpeg90`` — the same ROI warped to the original's size;
(e) ``real_photo_jpeg`` — when ``screen-photos`` is found, its real phone JPEGs as provided.

Bytes are the exact payloads; loopback time is the measured wall time per image. Transfer times
for 0.5, 2 and 10 Mbit/s uplinks and 200…1000 images are *computed* as
``N · mean bytes · 8 / rate`` (payload only: no TCP/TLS/HTTP/DIMSE overhead, no latency), the
way the seed paper's Table 1 counts them.

Usage::

    python eval/transmission_table.py --out results/transmission [-c config.yaml]

Writes ``transmission.md``, ``transmission.csv`` (method × images × uplink), ``summary.csv``,
``per_case.csv`` and ``run_info.json``. Needs the Debian ``orthanc`` package for (a); without it
(a) is reported from file sizes only and says so.
"""

from __future__ import annotations

import argparse
import csv
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]

DEFAULTS: dict[str, Any] = {
    "cases": 20,
    "seed": 0,
    "preset": "typical",
    "photo_size": [4032, 3024],
    "images": [200, 400, 600, 800, 1000],
    "uplinks_mbps": [0.5, 2.0, 10.0],
    "roi_jpeg_quality": 90,
}

METHOD_LABELS = {
    "dicom_cstore": "(a) original DICOM, C-STORE",
    "dicom_us_frame": "(a') full US frame DICOM (pydicom US1_UNCR, 640×480 RGB), C-STORE",
    "photo_jpeg": "(b) phone photo JPEG upload",
    "roi_png": "(c) rectified ROI, PNG",
    "roi_jpeg90": "(c) rectified ROI, JPEG q=90",
    "roi_orig_size_png": "(d) ROI at original size, PNG",
    "roi_orig_size_jpeg90": "(d) ROI at original size, JPEG q=90",
    "real_photo_jpeg": "(e) real phone photos (screen-photos), as provided",
}


class _Sink(BaseHTTPRequestHandler):
    """Loopback upload endpoint: reads the whole body, answers 204."""

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        n = int(self.headers.get("Content-Length", 0))
        remaining = n
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # keep stdout clean
        pass


def us_dicom(img: np.ndarray, case_id: str, group: str):
    """An uncompressed US Image Storage object holding ``img`` (8-bit, MONOCHROME2)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = UltrasoundImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID = f"BUSBRA^{group}", group
    ds.StudyDate, ds.StudyTime, ds.Modality = "20230101", "120000", "US"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = img.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.BurnedInAnnotation = "NO"
    ds.ImageComments = case_id
    ds.PixelData = np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8).tobytes()
    return ds


def _us_frame_file() -> Path | None:
    """pydicom's uncompressed real ultrasound frame (from the pydicom-data package), if present."""
    try:
        from pydicom.data import get_testdata_file

        p = get_testdata_file("US1_UNCR.dcm")
    except Exception:  # pydicom-data missing or its lookup failed: the row is left out
        return None
    return Path(p) if p else None


def _upload_times(url: str, payloads: list[bytes], content_type: str) -> list[float]:
    import requests

    out = []
    with requests.Session() as s:
        for data in payloads:
            t0 = time.perf_counter()
            r = s.post(url, data=data, headers={"Content-Type": content_type}, timeout=60)
            r.raise_for_status()
            out.append(time.perf_counter() - t0)
    return out


def load_config(argv: list[str] | None) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-c", "--config")
    known, _ = pre.parse_known_args(argv)
    defaults = dict(DEFAULTS)
    if known.config:
        defaults.update(yaml.safe_load(Path(known.config).read_text()) or {})
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-c", "--config", help="YAML whose keys set the defaults below")
    p.add_argument("--out", default=str(REPO / "results" / "transmission"))
    p.add_argument("--cases", type=int, default=defaults["cases"])
    p.add_argument("--seed", type=int, default=defaults["seed"])
    p.add_argument("--preset", default=defaults["preset"])
    p.add_argument("--photo-size", type=int, nargs=2, default=defaults["photo_size"],
                   metavar=("W", "H"))
    p.add_argument("--images", type=int, nargs="+", default=defaults["images"])
    p.add_argument("--uplinks-mbps", type=float, nargs="+", default=defaults["uplinks_mbps"])
    p.add_argument("--roi-jpeg-quality", type=int, default=defaults["roi_jpeg_quality"])
    p.add_argument("--sample", action="store_true", help="use the embedded sample even when "
                   "the full BUS-BRA dataset is found")
    return p.parse_args(argv)


def pick_cases(args: argparse.Namespace):
    from photorad.data.bus_bra import load_records
    from photorad.data.paths import find_shared_data, sample_dir

    root = None if args.sample else find_shared_data("bus-bra")
    source = "bus-bra (full)" if root else "bus-bra sample (embedded, 20 images)"
    records = load_records(root or sample_dir())
    # One image per patient, a seeded random choice of patients.
    by_group: dict[str, Any] = {}
    for r in sorted(records, key=lambda r: r.id):
        by_group.setdefault(r.group, r)
    groups = sorted(by_group)
    rng = np.random.default_rng(args.seed)
    chosen = rng.permutation(len(groups))[: args.cases]
    return [by_group[groups[i]] for i in sorted(chosen)], source, root or sample_dir()


def main(argv: list[str] | None = None) -> int:
    args = load_config(argv)
    sys.path.insert(0, str(REPO))  # the private Orthanc launcher lives with the tests
    from photorad.dicom.export import save_dicom
    from photorad.dicom.send import Backoff, DimseDestination, send_files
    from photorad.io import encode_jpeg, encode_png, load_original
    from photorad.provenance import hash_files, write_run_info
    from photorad.rectify import warp
    from photorad.simulate import simulate_photo

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cases, source, data_root = pick_cases(args)
    work = out / "_work"
    work.mkdir(exist_ok=True)
    payloads: dict[str, list[bytes]] = {k: [] for k in METHOD_LABELS
                                        if not k.startswith("dicom_")}
    payloads["real_photo_jpeg"] = []
    dicom_paths: list[Path] = []
    per_case: list[dict[str, Any]] = []
    for k, rec in enumerate(cases):
        img = load_original(rec.path)
        dcm = save_dicom(us_dicom(img, rec.id, rec.group), work / f"{rec.id}.dcm")
        dicom_paths.append(dcm)
        sim = simulate_photo(img, preset=args.preset, seed=[args.seed, k],
                             size=tuple(args.photo_size))
        roi = warp(sim.photo, sim.corners)
        roi_o = warp(sim.photo, sim.corners, size=(img.shape[1], img.shape[0]))
        row = {
            "case": rec.id,
            "original_px": f"{img.shape[1]}x{img.shape[0]}",
            "roi_px": f"{roi.shape[1]}x{roi.shape[0]}",
            "dicom_cstore": dcm.stat().st_size,
            "photo_jpeg": len(sim.jpeg),
            "roi_png": len(encode_png(roi)),
            "roi_jpeg90": len(encode_jpeg(roi, quality=args.roi_jpeg_quality)),
            "roi_orig_size_png": len(encode_png(roi_o)),
            "roi_orig_size_jpeg90": len(encode_jpeg(roi_o, quality=args.roi_jpeg_quality)),
            "jpeg_quality_photo": sim.params.get("jpeg_quality"),
        }
        payloads["photo_jpeg"].append(sim.jpeg)
        payloads["roi_png"].append(encode_png(roi))
        payloads["roi_jpeg90"].append(encode_jpeg(roi, quality=args.roi_jpeg_quality))
        payloads["roi_orig_size_png"].append(encode_png(roi_o))
        payloads["roi_orig_size_jpeg90"].append(
            encode_jpeg(roi_o, quality=args.roi_jpeg_quality))
        per_case.append(row)
        print(f"[{k + 1}/{len(cases)}] {rec.id}: photo {row['photo_jpeg'] / 1e6:.2f} MB, "
              f"DICOM {row['dicom_cstore'] / 1e3:.0f} kB, ROI PNG {row['roi_png'] / 1e3:.0f} kB",
              flush=True)

    from photorad.data.paths import find_shared_data

    photos_root = find_shared_data("screen-photos")
    real_photos = sorted(photos_root.glob("photo*.jpg")) if photos_root else []
    payloads["real_photo_jpeg"] = [p.read_bytes() for p in real_photos]
    from photorad.io import load_photo

    real_dims = sorted({f"{a.shape[1]}×{a.shape[0]}" for a in map(load_photo, real_photos)})

    us_frame = _us_frame_file()

    # --- loopback measurements
    timings: dict[str, list[float]] = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/upload"
    try:
        for key, data in payloads.items():
            if data:
                ctype = "image/png" if "png" in key else "image/jpeg"
                timings[key] = _upload_times(url, data, ctype)
    finally:
        server.shutdown()
        server.server_close()
    cstore_note = ""
    try:
        from tests._orthanc import run_orthanc

        with run_orthanc() as orthanc:
            dest = DimseDestination("127.0.0.1", orthanc.dicom_port, orthanc.aet)
            results = send_files(dicom_paths, dest, backoff=Backoff(attempts=2),
                                 verify=False, skip_existing=False)
            bad = [r for r in results if r.status != "sent"]
            if bad:
                raise RuntimeError(f"C-STORE failed: {bad[0].reason}")
            timings["dicom_cstore"] = [r.seconds for r in results]
            if us_frame is not None:
                res = send_files([us_frame], dest, backoff=Backoff(attempts=2), verify=False,
                                 skip_existing=False)
                if res[0].status == "sent":
                    timings["dicom_us_frame"] = [res[0].seconds]
            stored = orthanc.get_json("/statistics")
            cstore_note = (f"Orthanc {orthanc.get_json('/system')['Version']} on loopback stored "
                           f"{stored['CountInstances']} instances.")
    except (FileNotFoundError, RuntimeError) as exc:
        cstore_note = f"C-STORE not measured on loopback ({exc}); bytes are file sizes."
    for p in dicom_paths:
        p.unlink()
    work.rmdir()

    sizes = {k: [row[k] for row in per_case] for k in METHOD_LABELS
             if k not in ("real_photo_jpeg", "dicom_us_frame")}
    sizes["real_photo_jpeg"] = [len(b) for b in payloads["real_photo_jpeg"]]
    sizes["dicom_us_frame"] = [us_frame.stat().st_size] if us_frame is not None else []
    summary = []
    for key, label in METHOD_LABELS.items():
        b = np.asarray(sizes.get(key, []), dtype=np.float64)
        if b.size == 0:
            continue
        t = np.asarray(timings.get(key, []), dtype=np.float64)
        summary.append({
            "method": key, "label": label, "n": int(b.size),
            "mean_bytes": float(b.mean()), "median_bytes": float(np.median(b)),
            "min_bytes": int(b.min()), "max_bytes": int(b.max()),
            "loopback_ms_per_image": float(t.mean() * 1e3) if t.size else float("nan"),
        })
    long_rows = []
    for s in summary:
        for n in args.images:
            for mbps in args.uplinks_mbps:
                total = n * s["mean_bytes"]
                long_rows.append({
                    "method": s["method"], "n_images": n, "uplink_mbps": mbps,
                    "megabytes": total / 1e6, "minutes": total * 8 / (mbps * 1e6) / 60,
                })

    cmd = "python eval/transmission_table.py " + " ".join(argv if argv is not None else sys.argv[1:])
    _write_csv(out / "per_case.csv", per_case)
    _write_csv(out / "summary.csv", summary)
    _write_csv(out / "transmission.csv", long_rows)
    (out / "transmission.md").write_text(
        _markdown(summary, long_rows, args, source=source, cstore_note=cstore_note, cmd=cmd,
                  n_real=len(real_photos), n_cases=len(cases), real_dims=real_dims))
    hashes = {"cases": hash_files([c.path for c in cases], root=data_root)}
    if real_photos:
        hashes["screen-photos"] = hash_files(real_photos, root=photos_root)
    write_run_info(out, {**vars(args), "source": source, "command": cmd}, data_hashes=hashes)
    print((out / "transmission.md").read_text())
    return 0


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()})


def _markdown(summary, long_rows, args, *, source: str, cstore_note: str, cmd: str,
              n_real: int, n_cases: int, real_dims: list[str]) -> str:
    lines = [
        "# Transmission cost: original DICOM vs phone photo vs rectified ROI",
        "",
        f"Made by `{cmd.strip()}`; cases: {n_cases} "
        f"images from {source}, one per patient (seed {args.seed}); simulated photos "
        f"{args.photo_size[0]}×{args.photo_size[1]}, preset `{args.preset}`. {cstore_note}",
        "",
        "## Bytes per image (measured) and loopback time per image (measured)",
        "",
        "| method | n | mean kB | median kB | min–max kB | loopback ms/image |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['label']} | {s['n']} | {s['mean_bytes'] / 1e3:.1f} | "
            f"{s['median_bytes'] / 1e3:.1f} | {s['min_bytes'] / 1e3:.1f}–{s['max_bytes'] / 1e3:.1f}"
            f" | {s['loopback_ms_per_image']:.1f} |")
    for mbps in args.uplinks_mbps:
        lines += [
            "",
            f"## Transfer time in minutes at {mbps:g} Mbit/s uplink (computed: N × mean bytes × 8 "
            "/ rate, payload only)",
            "",
            "| method | " + " | ".join(f"{n} images" for n in args.images) + " |",
            "|---|" + "---:|" * len(args.images),
        ]
        for s in summary:
            vals = [r["minutes"] for r in long_rows
                    if r["method"] == s["method"] and r["uplink_mbps"] == mbps]
            lines.append(f"| {s['label']} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    lines += [
        "",
        "Notes:",
        "- (a) is the BUS-BRA image (a cropped, 8-bit grey ultrasound region) wrapped as an "
        "uncompressed DICOM; a scanner's full RGB frame is larger, so (a) is a lower bound for "
        "real ultrasound DICOM; (a') shows one real scanner frame for scale. Bytes are the "
        "Part-10 file size.",
        "- (b) photos come from photorad's screen-photo simulator (JPEG quality drawn by the "
        "preset); real phone JPEGs depend on the phone, scene and settings.",
        f"- (e) {n_real} real photos as provided in `screen-photos` ({', '.join(real_dims)} px, "
        "metadata included): not full-resolution camera files, listed for scale only."
        if n_real else "- (e) real photos not found.",
        "- Loopback times measure local software overhead (one DIMSE association per file for "
        "(a); one HTTP POST per file for the others), not a network.",
        "- Research use only — not a diagnosis.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
