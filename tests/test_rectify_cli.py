from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from photorad.cli import main
from photorad.io import load_original, save_jpeg, save_png
from tests.test_align import _structured_original
from tests.test_rectify_synth import render_photo, skewed_corners, textured_original


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    d = tmp_path_factory.mktemp("rect")
    corners = skewed_corners(seed=3)
    photo = render_photo(textured_original(seed=3), corners, seed=3)
    path = d / "photo.jpg"
    save_jpeg(path, photo, quality=95)
    return path, corners


def test_rectify_detects_and_writes_json(synth: tuple[Path, np.ndarray], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    photo, truth = synth
    out, js = tmp_path / "roi.png", tmp_path / "roi.json"
    assert main(["rectify", str(photo), "-o", str(out), "--json", str(js), "--size", "320x240"]) == 0
    roi = load_original(out)
    assert roi.shape == (240, 320)
    doc = json.loads(js.read_text())
    assert set(doc) >= {"corners", "score", "method", "quality"}
    assert np.abs(np.array(doc["corners"]) - truth).max() < 1.5
    assert doc["quality"]["status"] in ("pass", "warn", "fail")
    assert "quality" in capsys.readouterr().out


def test_rectify_manual_corners(synth: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    photo, truth = synth
    text = ",".join(f"{v:.2f}" for v in truth.ravel())
    js = tmp_path / "m.json"
    rc = main(["rectify", str(photo), "-o", str(tmp_path / "m.png"), "--corners", text,
               "--json", str(js)])
    assert rc == 0
    assert json.loads(js.read_text())["method"] == "manual"


@pytest.mark.parametrize(
    ("corners", "why"),
    [
        ("0,0,100,100,0,100,100,0", "self-intersecting"),
        ("-500,0,100,0,100,100,0,100", "outside"),
    ],
)
def test_rectify_bad_corners(synth: tuple[Path, np.ndarray], tmp_path: Path, corners: str,
                             why: str, capsys: pytest.CaptureFixture[str]) -> None:
    photo, _ = synth
    rc = main(["rectify", str(photo), "-o", str(tmp_path / "x.png"), f"--corners={corners}"])
    assert rc == 2
    assert why in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_rectify_malformed_corners(synth: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["rectify", str(synth[0]), "-o", str(tmp_path / "x.png"), "--corners", "1,2,3"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("photo", "code"),
    [
        (np.zeros((480, 640, 3), np.uint8), 3),  # black
        (np.full((480, 640, 3), 255, np.uint8), 3),  # saturated
        (np.full((40, 40, 3), 90, np.uint8), 2),  # tiny
    ],
)
def test_rectify_bad_photos(photo: np.ndarray, code: int, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.png"
    save_png(path, photo)
    rc = main(["rectify", str(path), "-o", str(tmp_path / "o.png")])
    assert rc == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("photorad rectify: error:") and "\n" not in err


def test_rectify_not_an_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo")
    assert main(["rectify", str(path), "-o", str(tmp_path / "o.png")]) != 0
    assert "error" in capsys.readouterr().err


def test_align_cli(tmp_path: Path) -> None:
    import cv2

    orig = _structured_original(seed=4)
    h = np.array([[0.9, 0.05, 40.0], [-0.03, 0.95, 30.0], [1e-5, 2e-5, 1.0]])
    grey = cv2.warpPerspective(orig, np.linalg.inv(h), (560, 420), flags=cv2.INTER_CUBIC)
    photo = np.repeat(np.clip(grey * 255, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    save_png(tmp_path / "photo.png", photo)
    save_png(tmp_path / "orig.png", orig)
    out, js, mask = tmp_path / "al.png", tmp_path / "al.json", tmp_path / "mask.png"
    rc = main(["align", str(tmp_path / "photo.png"), str(tmp_path / "orig.png"), "-o", str(out),
               "--json", str(js), "--mask", str(mask)])
    assert rc == 0
    doc = json.loads(js.read_text())
    assert doc["direction"] == "photo -> original"
    hm = np.array(doc["homography"])
    np.testing.assert_allclose(hm / hm[2, 2], h, atol=2e-3 * np.abs(h).max() + 1e-6)
    assert load_original(out).shape == orig.shape
