from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from photorad.errors import NoScreenFoundError, PhotoradError
from photorad.rectify import align
from photorad.rectify.warp import apply_homography, homography
from tests.test_rectify_synth import textured_original

POINTS = Path(__file__).parent / "data" / "screen_points"
#: The first photo runs in the fast suite; the others are marked slow (each align takes seconds).
FAST = {"photo4.json"}


def _structured_original(seed: int = 0) -> np.ndarray:
    """A screenshot-like original: rectangles and texture (SIFT needs corners and blobs)."""
    rng = np.random.default_rng(seed)
    img = textured_original(480, 640, seed=seed, sigma=1.2) * 0.5 + 0.25
    for _ in range(40):
        x, y = rng.integers(0, 600), rng.integers(0, 440)
        w, h = rng.integers(10, 60), rng.integers(10, 40)
        img[y : y + h, x : x + w] = rng.uniform(0, 1)
    return img.astype(np.float32)


def test_align_recovers_known_partial_view() -> None:
    orig = _structured_original()
    # The "photo" sees the original's middle part under perspective, at 1.3× its scale.
    view = np.array([[150.0, 100.0], [520.0, 120.0], [500.0, 400.0], [170.0, 380.0]])
    photo_corners = np.array([[0, 0], [599, 0], [599, 449], [0, 449]], float)
    h_po = homography(photo_corners, view)  # photo → original (truth)
    grey = cv2.warpPerspective(orig, np.linalg.inv(h_po), (600, 450), flags=cv2.INTER_CUBIC)
    photo = np.repeat(np.clip(grey * 255, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    res = align(photo, orig)
    pts = np.array([[100.0, 100.0], [500.0, 80.0], [300.0, 400.0], [50.0, 300.0]])
    err = np.hypot(*(apply_homography(res.homography, pts) - apply_homography(h_po, pts)).T)
    assert err.max() < 0.5
    assert res.aligned.shape == orig.shape and res.aligned.dtype == np.float32
    assert 0.2 < res.coverage < 0.6
    assert res.reproj_error_px < 1.0
    d = json.loads(json.dumps(res.to_dict()))
    assert len(d["homography"]) == 3


def test_align_unrelated_images_fail_clearly() -> None:
    rng = np.random.default_rng(1)
    a = _structured_original(seed=2)
    noise = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    with pytest.raises(NoScreenFoundError):
        align(noise, a)
    with pytest.raises(PhotoradError):
        align(np.zeros((300, 400, 3), np.uint8), a)
    with pytest.raises(PhotoradError):
        align(np.zeros((10, 10, 3), np.uint8), a)


def _point_files() -> list:
    files = sorted(POINTS.glob("photo*.json"))
    return [
        pytest.param(f, id=f.stem, marks=() if f.name in FAST else pytest.mark.slow) for f in files
    ]


def test_point_files_are_well_formed() -> None:
    files = sorted(POINTS.glob("photo*.json"))
    assert files, "hand-picked point pairs are missing"
    for f in files:
        doc = json.loads(f.read_text())
        assert len(doc["pairs"]) >= 8, f.name
        for p in doc["pairs"]:
            assert len(p["photo"]) == 2 and len(p["screenshot"]) == 2


@pytest.mark.full_data
@pytest.mark.parametrize("points_file", _point_files())
def test_align_real_screen_photo(points_file: Path, screen_photos_root: Path) -> None:
    """Photo → screenshot homography vs hand-picked pairs: RMS ≤ 2 screenshot px.

    Direction: photo points are mapped by ``Alignment.homography`` into the screenshot and
    compared with the hand-picked screenshot points (errors in screenshot pixels). The photos
    show only part of the screen.
    """
    from photorad.io import load_original, load_photo
    from photorad.io.original import ColourConvertedWarning

    doc = json.loads(points_file.read_text())
    photo = load_photo(screen_photos_root / doc["photo"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ColourConvertedWarning)
        shot = load_original(screen_photos_root / doc["screenshot"])
    res = align(photo, shot)
    p = np.array([q["photo"] for q in doc["pairs"]])
    s = np.array([q["screenshot"] for q in doc["pairs"]])
    err = np.hypot(*(apply_homography(res.homography, p) - s).T)
    print(f"{points_file.stem}: errors {np.round(err, 2).tolist()} px")
    assert float(np.sqrt(np.mean(err**2))) <= 2.0
    assert float(np.max(err)) <= 4.0


@pytest.mark.full_data
@pytest.mark.parametrize(
    "name", ["photo2.json", "photo5.json", "photo7.json", "photo8.json", "photo10.json"]
)
def test_window_centroid_points_are_reproducible(name: str, screen_photos_root: Path) -> None:
    """The moiré photos' pairs are recomputed from their stored windows, and are self-consistent.

    Guards the hand-picked ground truth itself: a stored point that no longer matches its window
    (edited by hand, or the loader changed) or a mislocated feature (large least-squares residual)
    fails here rather than silently loosening the alignment test above.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "screen_points", Path(__file__).parent.parent / "eval" / "screen_points.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.check_file(POINTS / name, screen_photos_root)
    assert res["recomputed"] >= 8
    assert res["max_stored_vs_recomputed_px"] < 0.02
    # Lens distortion alone leaves ~1 px on a homography fit; mislocated features gave 3-20 px.
    assert res["lsq_residual_max_px"] < 2.0
