"""Tests of the screen-photo simulator (photorad.simulate) and `photorad simulate`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from photorad.cli import main
from photorad.data.bus_bra import load_records
from photorad.errors import ConfigError, PhotoradError
from photorad.io import encode_jpeg, load_original, load_photo
from photorad.simulate import (
    PRESETS,
    SimParams,
    SimResult,
    camera,
    core,
    display,
    sample_params,
    scene,
    simulate_photo,
)
from photorad.simulate.dataset import bus_bra_csv, discover_sources, stable_hash

SMALL = (640, 480)


@pytest.fixture(scope="module")
def original(sample_root: Path) -> np.ndarray:
    return load_original(sorted((sample_root / "Images").glob("*.png"))[0])


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    return cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.c_[pts, np.ones(len(pts))] @ h.T
    return q[:, :2] / q[:, 2:3]


def _edge_rect(w: int, h: int) -> np.ndarray:
    return np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_gives_a_valid_photo(original: np.ndarray, name: str) -> None:
    res = simulate_photo(original, preset=name, seed=1, size=SMALL)
    assert isinstance(res, SimResult)
    assert res.photo.dtype == np.uint8 and res.photo.shape == (SMALL[1], SMALL[0], 3)
    assert res.corners.dtype == np.float64 and res.corners.shape == (4, 2)
    tl, tr, br, bl = res.corners
    # TL, TR, BR, BL order: clockwise on screen (y down) and the top edge on top
    assert tl[0] < tr[0] and bl[0] < br[0] and tl[1] < bl[1] and tr[1] < br[1]
    assert (res.corners >= -0.5).all()
    assert (res.corners[:, 0] <= SMALL[0] - 0.5).all() and (res.corners[:, 1] <= SMALL[1] - 0.5).all()
    json.dumps(res.params)  # JSON-able
    assert res.params["preset"] == name
    # the photo is exactly the decoded JPEG
    assert np.array_equal(load_photo(res.jpeg), res.photo)
    # the image area is not blank: content differs from the surrounding photo
    assert res.photo.std() > 5


def test_same_seed_same_bytes_other_seed_other_bytes(original: np.ndarray) -> None:
    a = simulate_photo(original, preset="typical", seed=7, size=SMALL)
    b = simulate_photo(original, preset="typical", seed=7, size=SMALL)
    c = simulate_photo(original, preset="typical", seed=8, size=SMALL)
    assert a.jpeg == b.jpeg and np.array_equal(a.corners, b.corners) and a.params == b.params
    assert a.jpeg != c.jpeg


def test_noise_is_seeded_separately_from_scene(original: np.ndarray) -> None:
    """Fixed parameters with two seeds: same geometry, different sensor noise."""
    p = sample_params("ideal", np.random.default_rng(0))
    a = simulate_photo(original, params=p, seed=1, size=SMALL)
    b = simulate_photo(original, params=p, seed=2, size=SMALL)
    assert np.array_equal(a.corners, b.corners)
    assert not np.array_equal(a.photo, b.photo)


def test_corner_dots_land_on_the_recorded_corners() -> None:
    """A bright dot on each corner pixel of the original lands where the corners say it should.

    The dots sit on the corner *pixels*, half an original pixel inside the outer-edge corners;
    their expected photo position follows from the recorded corners by the homography of the
    image rectangle. Strong lens distortion makes the test sensitive: without distortion the
    corners would be several pixels off.
    """
    # 600×450 original at exactly 2×2 screen pixels per original pixel (nearest neighbour):
    # small dots, so that the lens distortion between a dot and its corner is negligible.
    ow, oh = 600, 450
    img = np.zeros((oh, ow), np.float32)
    for y, x in ((0, 0), (0, ow - 1), (oh - 1, ow - 1), (oh - 1, 0)):
        img[y, x] = 1.0
    params = dict(
        ui=False, viewport_grey=0.0, image_zoom=900 / 1080, viewer_interp="nearest",
        image_offset=(0.0, 0.0), black_level=0.0, backlight_bleed=0.0, ambient=0.0,
        background=0.0, matte_glare=0.0, specular_glare=0.0, yaw_deg=14.0, pitch_deg=-9.0,
        roll_deg=7.0, fill=0.7, k1=0.08, k2=0.02, ae_strength=0.0, exposure_ev=1.0,
        full_well_e=1e12, read_noise_e=0.0, tone_black=0.0, sharpen=0.0, jpeg_quality=100,
        defocus_px=0.0, motion_px=0.0,
    )
    size = (2016, 1512)
    res = simulate_photo(img, preset="ideal", params=params, seed=0, size=size)
    assert res.params["derived"]["screen_image_rect"][2:] == [1200, 900]
    grey = res.photo.astype(np.float64).mean(axis=2)
    h = _homography(_edge_rect(ow, oh), res.corners)
    centres = np.array([[0, 0], [ow - 1, 0], [ow - 1, oh - 1], [0, oh - 1]], dtype=np.float64)
    expected = _apply(h, centres)
    r = 6
    for (ex, ey), corner in zip(expected, res.corners, strict=True):
        x0, y0 = round(ex) - r, round(ey) - r
        win = grey[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1]
        assert win.max() > 60, "dot not visible"
        wts = np.where(win > 0.2 * win.max(), win, 0.0)
        yy, xx = np.mgrid[0:win.shape[0], 0:win.shape[1]]
        cx = x0 + (wts * xx).sum() / wts.sum()
        cy = y0 + (wts * yy).sum() / wts.sum()
        assert np.hypot(cx - ex, cy - ey) < 1.0, (cx, cy, ex, ey)
        assert np.hypot(cx - corner[0], cy - corner[1]) < 3.0
    # the same scene without lens distortion has corners several pixels away
    flat = simulate_photo(img, preset="ideal", params={**params, "k1": 0.0, "k2": 0.0},
                          seed=0, size=size)
    assert np.abs(flat.corners - res.corners).max() > 3.0


def test_params_mapping_overrides_and_unknown_names_fail(original: np.ndarray) -> None:
    res = simulate_photo(original, preset="hard", params={"jpeg_quality": 77, "yaw_deg": 5.0},
                         seed=3, size=SMALL)
    assert res.params["jpeg_quality"] == 77 and res.params["yaw_deg"] == 5.0
    with pytest.raises(ConfigError, match="unknown simulator parameter"):
        simulate_photo(original, params={"not_a_param": 1}, size=SMALL)
    with pytest.raises(ConfigError, match="unknown simulator preset"):
        simulate_photo(original, preset="nice", size=SMALL)
    # a recorded params dict reproduces the photo
    again = simulate_photo(original, params=SimParams.from_dict(res.params), seed=3, size=SMALL)
    assert again.jpeg == res.jpeg


def test_bad_arrays_raise_photorad_errors() -> None:
    with pytest.raises(PhotoradError):
        simulate_photo(np.zeros((4, 4), np.float32), size=SMALL)
    with pytest.raises(PhotoradError):
        simulate_photo(np.full((50, 50), np.nan, np.float32), size=SMALL)
    with pytest.raises(PhotoradError):
        simulate_photo(np.zeros((50, 50), np.float32), size=(10, 10))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_sampled_params_stay_in_preset_ranges(name: str) -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = sample_params(name, rng).to_dict()
        for key, spec in PRESETS[name].ranges.items():
            val = p[key]
            if isinstance(spec, list):
                assert (tuple(val) if isinstance(val, list) else val) in spec
            elif isinstance(spec, tuple) and len(spec) == 2:
                vals = val if isinstance(val, list) else [val]
                assert all(spec[0] <= x <= spec[1] for x in vals), (key, val, spec)


def test_brighter_original_gives_brighter_image_area() -> None:
    params = {"ae_strength": 0.0, "specular_glare": 0.0, "matte_glare": 0.0}
    means = []
    for level in (0.2, 0.5, 0.8):
        res = simulate_photo(np.full((300, 400), level, np.float32), preset="ideal",
                             params=params, seed=0, size=SMALL)
        c = res.corners.mean(axis=0).astype(int)
        means.append(res.photo[c[1] - 20:c[1] + 20, c[0] - 20:c[0] + 20].mean())
    assert means[0] < means[1] < means[2]


def test_subpixel_moire_structure_is_present() -> None:
    """A flat grey original photographed noise-free is not flat: the RGB stripes show."""
    params = {"full_well_e": 1e12, "read_noise_e": 0.0, "jpeg_quality": 100, "sharpen": 0.0,
              "defocus_px": 0.0, "vignetting": 0.0, "backlight_falloff": 0.0,
              "specular_glare": 0.0, "matte_glare": 0.0}
    res = simulate_photo(np.full((300, 400), 0.5, np.float32), preset="ideal", params=params,
                         seed=0, size=(2016, 1512))
    c = res.corners.mean(axis=0).astype(int)
    crop = res.photo[c[1] - 64:c[1] + 64, c[0] - 64:c[0] + 64].astype(np.float64)
    red = crop[..., 0] - crop[..., 0].mean()
    spec = np.abs(np.fft.rfft(red.mean(axis=0)))
    assert spec[3:].max() > 5 * np.median(spec[3:])  # a clear periodic component along x


def test_dataset_cli_writes_pairs_and_skips_bad_sources(
    tmp_path: Path, sample_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    imgs = sorted((sample_root / "Images").glob("*.png"))[:2]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    src_csv = tmp_path / "src.csv"
    with src_csv.open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["path", "label", "group"])
        wr.writerow([str(imgs[0]), "malignant", "p1"])
        wr.writerow([str(bad), "benign", "p2"])
        wr.writerow([str(tmp_path / "missing.png"), "benign", "p3"])
    out = tmp_path / "out"
    sheet = tmp_path / "sheet.png"
    rc = main(["simulate", str(src_csv), str(imgs[1]), "--out", str(out), "--size", "320x240",
               "--preset", "ideal", "--seed", "5", "--no-progress", "--contact-sheet", str(sheet)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "2 photo(s) simulated from 2 of 4 source image(s); 2 skipped" in text
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert [r["id"] for r in rows] == sorted([imgs[0].stem, imgs[1].stem])
    row = next(r for r in rows if r["id"] == imgs[0].stem)
    assert row["label"] == "malignant" and row["group"] == "p1"
    meta = json.loads((out / f"{imgs[0].stem}.json").read_text())
    assert set(meta) >= {"corners", "params", "source", "label", "group", "seed"}
    assert np.asarray(meta["corners"]).shape == (4, 2)
    photo = load_photo(out / meta["photo"])
    assert photo.shape == (240, 320, 3)
    # the original is stored losslessly, compared with an external decoder
    ref = cv2.imread(str(imgs[0]), cv2.IMREAD_UNCHANGED)
    stored = cv2.imread(str(out / f"{imgs[0].stem}_original.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(ref if ref.ndim == 2 else cv2.cvtColor(ref, cv2.COLOR_BGR2GRAY), stored)
    fails = list(csv.DictReader((out / "failures.csv").open()))
    assert len(fails) == 2
    assert (out / "run_info.json").is_file()
    assert sheet.is_file() and sheet.stat().st_size < 1_500_000
    # the photo matches an in-process simulation with the documented seed
    seed = [5, stable_hash(imgs[0].stem), 0]
    again = simulate_photo(load_original(imgs[0]), preset="ideal", seed=seed, size=(320, 240))
    assert again.jpeg == (out / meta["photo"]).read_bytes()


@pytest.mark.slow  # starts two worker processes (spawn): slow on a loaded machine
def test_workers_do_not_change_the_bytes(tmp_path: Path, sample_root: Path) -> None:
    imgs = [str(p) for p in sorted((sample_root / "Images").glob("*.png"))[:2]]
    outs = []
    for n in (1, 2):
        out = tmp_path / f"w{n}"
        assert main(["-q", "simulate", *imgs, "--out", str(out), "--size", "256x192",
                     "--per-image", "2", "--workers", str(n), "--no-progress"]) == 0
        outs.append(out)
    files = sorted(p.name for p in outs[0].glob("*_photo.jpg"))
    assert len(files) == 4
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()


def test_bus_bra_csv_keeps_pathology_and_patient(tmp_path: Path, sample_root: Path) -> None:
    path = bus_bra_csv(tmp_path / "bus.csv", sample_root)
    items = discover_sources([path])
    recs = {r.id: r for r in load_records(sample_root)}
    assert len(items) == len(recs) == 20
    for it in items:
        r = recs[it.id]
        assert it.label == ("malignant" if r.label == 1 else "benign")
        assert it.group == r.group
        assert it.path.is_file()


def test_discover_sources_makes_unique_ids(tmp_path: Path, sample_root: Path) -> None:
    img = sorted((sample_root / "Images").glob("*.png"))[0]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / img.name).write_bytes(img.read_bytes())
    items = discover_sources([img, tmp_path / "a"])
    assert [it.id for it in items] == [img.stem, f"{img.stem}-2"]


@pytest.mark.parametrize("size", [(333, 257), (1601, 1201)])
def test_odd_output_sizes(original: np.ndarray, size: tuple[int, int]) -> None:
    res = simulate_photo(original, preset="typical", seed=2, size=size)
    assert res.photo.shape == (size[1], size[0], 3)
    assert (res.corners[:, 0] < size[0]).all() and (res.corners[:, 1] < size[1]).all()


# --- the fast renderer: strips, tables and fused steps must not change what is simulated


def test_strip_height_does_not_change_the_bytes(
    original: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lattices are rendered, made noisy and digitised in row strips: an implementation detail."""
    ref = simulate_photo(original, preset="hard", seed=3, size=(333, 257)).jpeg
    for rows in (core._STEP, 4096):  # smallest strip; one strip per lattice
        monkeypatch.setattr(core, "_ROWS", rows)
        assert simulate_photo(original, preset="hard", seed=3, size=(333, 257)).jpeg == ref


def test_row_strips_upsample_exactly_like_the_whole_lattice() -> None:
    w2, h2 = 201, 150
    n, m = -(-h2 // core._STEP) + 2, -(-w2 // core._STEP) + 2
    coarse = np.random.default_rng(0).random((n, m)).astype(np.float32)
    full = core._upsample(coarse, w2, h2)
    step = 2 * core._STEP
    for r0 in range(0, h2, step):
        rows = min(step, h2 - r0)
        assert np.array_equal(core._upsample_rows(coarse, r0, rows, w2), full[r0:r0 + rows])


def test_sensor_noise_has_the_model_std_and_is_seeded() -> None:
    p = SimParams(iso=800.0, full_well_e=6000.0, read_noise_e=3.0)
    fw = 6000.0 * 100.0 / 800.0
    out = []
    for seed in (5, 5, 6):
        camera.seed_noise(seed)
        s = np.full((400, 500), 0.25, np.float32)
        out.append(camera.add_sensor_noise(s, p))
    assert np.array_equal(out[0], out[1]) and not np.array_equal(out[0], out[2])
    expected = np.sqrt(0.25 / fw + (3.0 / fw) ** 2)
    assert abs(out[0].std() / expected - 1.0) < 0.02
    assert abs(out[0].mean() - 0.25) < 0.05 * expected


def test_emission_table_and_regrouping_match_the_physical_definition() -> None:
    p = SimParams(display_gamma=2.4, cfa_crosstalk=0.08, white_tint=(0.95, 1.0, 1.05),
                  black_level=0.01, backlight_bleed=0.05, backlight_falloff=0.2,
                  screen_w=40, screen_h=30)
    drive = np.random.default_rng(2).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    vv, uu = np.mgrid[0:30, 0:40].astype(np.float32)
    gain, bleed = display.panel_field(uu, vv, p)
    lin = (drive / 255.0) ** 2.4
    black = (p.black_level + bleed)[..., None]
    e = (black + (1.0 - black) * lin) * gain[..., None] * np.asarray(p.white_tint)
    mix = np.full((3, 3), 0.04)
    np.fill_diagonal(mix, 0.92)
    ref = e @ mix.T
    np.testing.assert_allclose(display.emission(drive, p), ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(display.emission(drive.astype(np.float32) / 255.0, p), ref,
                               rtol=1e-5, atol=1e-7)


def test_stripe_polynomial_equals_the_fourier_series() -> None:
    rng = np.random.default_rng(3)
    coefs = [rng.uniform(-1.0, 1.0, (5, 7)).astype(np.float32) for _ in range(3)]
    coord = rng.uniform(0.0, 40.0, (5, 7)).astype(np.float32)
    got = display.stripe_mask(coord, 1.0 / 3.0, display.power_coefficients(coefs))
    phase = 2.0 * np.pi * (coord.astype(np.float64) - 1.0 / 3.0)
    ref = 1.0 + sum(a * np.cos(k * phase) for k, a in enumerate(coefs, start=1))
    np.testing.assert_allclose(got, ref, atol=2e-4)


def test_bgr_isp_gives_the_bytes_of_encode_jpeg() -> None:
    """simulate_photo encodes the ISP's BGR output directly: same bytes as io.encode_jpeg(RGB)."""
    codes = (np.random.default_rng(1).integers(0, 4096, (64, 96)) * 16).astype(np.uint16)
    p = SimParams(sharpen=0.4)
    rgb = camera.develop(codes, p)
    bgr = camera.develop(codes, p, bgr=True)
    assert np.array_equal(rgb, bgr[..., ::-1])
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 87])
    assert ok and buf.tobytes() == encode_jpeg(rgb, quality=87)


def test_background_spline_equals_scipy_map_coordinates() -> None:
    """The room background's cubic spline (numpy, no scipy import) is scipy's function."""
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(4)
    grid = rng.uniform(0.4, 1.6, (6, 8))
    rows = rng.uniform(-0.5, 5.5, (30, 40))
    cols = rng.uniform(-0.5, 7.5, (30, 40))
    cc, rr = np.meshgrid(np.linspace(-0.3, 7.3, 50), np.linspace(-0.3, 5.3, 35))
    for r, c in ((rows, cols), (rr, cc)):  # scattered points and the separable grid path
        ref = ndimage.map_coordinates(grid, [r, c], order=3, mode="nearest")
        np.testing.assert_allclose(scene.spline_field(grid, r, c), ref, rtol=0, atol=1e-9)
