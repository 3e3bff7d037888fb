"""Images that are *not* breast ultrasound, for training and testing the input router.

Every source is assigned wholly to one side, so that the router is measured on images (and
generators) it never trained on:

==================  =====================================  ======================================
source              ``split="train"``                      ``split="eval"`` (held out)
==================  =====================================  ======================================
``skimage``         :data:`SKIMAGE_TRAIN` sample images    :data:`SKIMAGE_EVAL` sample images
``dicom``           pydicom test files, CT/MR/CR/NM/OT/…   the groups in :data:`DICOM_EVAL`
                    (ultrasound files excluded)            (a leg CR, a CT, an MR, a SEG, …)
``text``            rendered text/documents, DejaVu        the same kind of pages in the
                    fonts and OpenCV Hershey fonts         Liberation fonts only
``viewer``          the simulator's viewer UI with a       the same generator, other seeds
                    blank / uniform image (seeds < 10⁶)    (seeds ≥ 10⁶)
``texture``         noise, gradients, checkerboards,       gratings, Voronoi cells, 1/f noise,
                    blobs, smooth random fields, line      salt-and-pepper, ring patterns
                    art, bent blends of these
``desktop``         synthetic screenshots: windows of      —
                    small dense text, dark / light theme
``screen_photos``   —                                      real phone photos of a monitor and
                                                           their screenshots (shared data)
==================  =====================================  ======================================

Images are ``float32`` grey (H, W) in [0, 1], at most ``max_side`` px on the long side. Pydicom's
ultrasound files are left out altogether (they are not breast ultrasound, but they are
ultrasound; the router is not asked to tell organs apart).
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "DICOM_EVAL",
    "SKIMAGE_EVAL",
    "SKIMAGE_TRAIN",
    "Negative",
    "desktop",
    "dicom_images",
    "negative_set",
    "fixed_sources",
    "procedural",
    "screen_photos",
    "shrink",
    "skimage_images",
    "text_page",
    "texture",
    "through_phone",
    "viewer_blank",
]

SKIMAGE_TRAIN = ("astronaut", "binary_blobs", "brick", "camera", "checkerboard", "chelsea",
                 "clock", "coffee", "colorwheel", "grass", "horse", "hubble_deep_field",
                 "immunohistochemistry", "page", "retina", "text")
#: ``cat`` is left out: it is ``chelsea`` again.
SKIMAGE_EVAL = ("cell", "coins", "gravel", "logo", "microaneurysms", "moon", "rocket",
                "shepp_logan_phantom")
#: A DICOM group (files with the same picture) is held out when it holds one of these files.
DICOM_EVAL = ("RG3_UNCR.dcm", "eCT_Supplemental.dcm", "liver.dcm",
              "GDCMJ2K_TextGBR.dcm", "image_dfl.dcm", "emri_small.dcm")
TRAIN_TEXTURES = ("noise", "gradient", "checkerboard", "blobs", "smooth", "lines", "mix")
EVAL_TEXTURES = ("grating", "voronoi", "pink", "saltpepper", "rings")
_WORDS = ("the patient report image study series window level zoom contrast signal dose scan "
          "frame left right anterior posterior lesion margin shape report cancel save print "
          "open file edit view help tools layout monitor photo coffee invoice total date name "
          "meeting agenda notes chapter figure table results methods page summary").split()


@dataclass(frozen=True)
class Negative:
    """One not-ultrasound image and where it came from."""

    source: str  #: ``skimage``, ``dicom``, ``text``, ``viewer``, ``texture``, ``screen_photos``
    name: str
    img: np.ndarray  #: ``float32`` (H, W) in [0, 1]


def shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    """``img`` scaled down (area interpolation) so that its long side is at most ``max_side``."""
    img = np.ascontiguousarray(img, dtype=np.float32)
    h, w = img.shape
    f = max_side / max(h, w)
    if f >= 1.0:
        return img
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))),
                      interpolation=cv2.INTER_AREA)


def _grey(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = a.astype(np.float32)
    if a.ndim == 3:
        if a.shape[2] == 4:
            alpha = a[..., 3:4]
            a = a[..., :3] * alpha + (1 - alpha)  # logo: transparent = white paper
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    if hi > 1.0 or lo < 0.0:
        a = (a - lo) / max(hi - lo, 1e-6)
    return np.clip(a, 0.0, 1.0).astype(np.float32)


def skimage_images(names: tuple[str, ...], *, max_side: int = 512) -> dict[str, np.ndarray]:
    """scikit-image's bundled sample images ``names`` as grey ``float32``."""
    import skimage.data as skd

    return {n: shrink(_grey(getattr(skd, n)()), max_side) for n in names}


def _dicom_files() -> list[Path]:
    import pydicom.data

    roots = [Path(pydicom.data.__file__).parent / "test_files"]
    try:
        import data_store  # the pydicom-data package

        roots.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    files: dict[str, Path] = {}
    for r in roots:
        for f in sorted(glob.glob(os.path.join(r, "**", "*.dcm"), recursive=True)):
            files.setdefault(os.path.basename(f), Path(f))
    return [files[k] for k in sorted(files)]


def dicom_images(split: str, *, max_side: int = 512, min_side: int = 48
                 ) -> dict[str, np.ndarray]:
    """Pydicom's test images (not ultrasound) of ``split`` (``"train"`` or ``"eval"``).

    Files that show the same picture (one image in several transfer syntaxes) form a group; a
    group is held out (``"eval"``) when one of its files is in :data:`DICOM_EVAL`. One image per
    group, named after its first file.
    """
    import pydicom

    from photorad.io import load_original

    pics: list[tuple[str, np.ndarray, np.ndarray]] = []  # name, image, thumbnail
    groups: list[list[str]] = []
    for f in _dicom_files():
        try:
            ds = pydicom.dcmread(str(f), stop_before_pixels=True, force=True)
            if str(getattr(ds, "Modality", "")).upper() == "US" or "ultrasound" in str(
                    getattr(ds, "SOPClassUID", "")).lower():
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                img = load_original(f)
        except Exception:  # noqa: BLE001 - unreadable test files are simply not used
            continue
        if min(img.shape) < min_side or float(img.std()) < 1e-3:
            continue
        thumb = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA).ravel()
        thumb = (thumb - thumb.mean()) / (thumb.std() + 1e-6)
        for g, (_, _, t) in enumerate(pics):
            if t.shape == thumb.shape and float(np.mean(t * thumb)) > 0.97:
                groups[g].append(f.name)
                break
        else:
            pics.append((f.name, shrink(img, max_side), thumb))
            groups.append([f.name])
    out = {}
    for (name, img, _), members in zip(pics, groups, strict=True):
        held = any(m in DICOM_EVAL for m in members)
        if held == (split == "eval"):
            out[name] = img
    return out


def screen_photos(*, max_side: int = 512) -> dict[str, np.ndarray]:
    """Real phone photos of a monitor and their screenshots (``shared/data/screen-photos``)."""
    from photorad.data.paths import find_shared_data
    from photorad.io import load_photo

    root = find_shared_data("screen-photos")
    if root is None:
        return {}
    out = {}
    for f in sorted(root.glob("*.jpg")) + sorted(root.glob("*.png")):
        out[f.stem] = shrink(_grey(load_photo(f)), max_side)
    return out


def fixed_sources(split: str, *, max_side: int = 512) -> Iterator[Negative]:
    """The image-file sources of ``split``: scikit-image, DICOM (and, for eval, screen photos)."""
    names = SKIMAGE_TRAIN if split == "train" else SKIMAGE_EVAL
    for n, img in skimage_images(names, max_side=max_side).items():
        yield Negative("skimage", n, img)
    for n, img in dicom_images(split, max_side=max_side).items():
        yield Negative("dicom", n, img)
    if split == "eval":
        for n, img in screen_photos(max_side=max_side).items():
            yield Negative("screen_photos", n, img)


# --------------------------------------------------------------------------------------------
# procedural sources


def _fonts(split: str) -> list[str]:
    pattern = "Liberation*.ttf" if split == "eval" else "DejaVu*.ttf"
    found = sorted(glob.glob(f"/usr/share/fonts/**/{pattern}", recursive=True))
    return found


def text_page(rng: np.random.Generator, *, split: str, size: int = 384) -> np.ndarray:
    """A rendered page of random words (document, label, slide or dark UI text)."""
    from PIL import Image, ImageDraw, ImageFont

    w = int(size * rng.uniform(0.7, 1.3))
    h = size
    dark = rng.random() < 0.3
    bg, fg = (int(rng.uniform(0, 60)), int(rng.uniform(170, 255))) if dark else \
        (int(rng.uniform(190, 255)), int(rng.uniform(0, 90)))
    fonts = _fonts(split)
    if split == "train" and (not fonts or rng.random() < 0.3):  # OpenCV's Hershey fonts
        canvas = np.full((h, w), bg, dtype=np.uint8)
        y = int(rng.uniform(10, 40))
        while y < h:
            s = rng.uniform(0.3, 1.2)
            line = " ".join(rng.choice(_WORDS, size=int(rng.integers(1, 8))))
            cv2.putText(canvas, line, (int(rng.uniform(2, 30)), y), int(rng.integers(0, 8)), s,
                        fg, max(1, int(s * 2)), cv2.LINE_AA)
            y += int(30 * s + rng.uniform(4, 20))
        return canvas.astype(np.float32) / 255.0
    im = Image.new("L", (w, h), bg)
    draw = ImageDraw.Draw(im)
    y = float(rng.uniform(4, 30))
    while y < h:
        pt = int(rng.uniform(9, 40))
        font = ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], pt)
        line = " ".join(rng.choice(_WORDS, size=int(rng.integers(1, 10))))
        if rng.random() < 0.1:  # a table rule or a box
            draw.line([(int(rng.uniform(0, w / 3)), y), (int(rng.uniform(w / 2, w)), y)],
                      fill=fg, width=int(rng.integers(1, 3)))
        draw.text((float(rng.uniform(2, 40)), y), line, fill=fg, font=font)
        y += pt * rng.uniform(1.2, 2.0)
    return np.asarray(im, dtype=np.float32) / 255.0


def viewer_blank(rng: np.random.Generator, *, size: int = 512) -> np.ndarray:
    """The simulator's viewer window (toolbar, panel, overlay text) showing a uniform image."""
    from photorad.simulate.presets import sample_params
    from photorad.simulate.viewer import render_screen

    p = sample_params("typical", rng).replace(ui=True,
                                              viewport_grey=float(rng.uniform(0.0, 0.15)))
    blank = np.full((int(rng.integers(300, 600)), int(rng.integers(300, 700))),
                    float(rng.uniform(0.0, 0.6)), dtype=np.float32)
    grey = _grey(render_screen(blank, p).rgb8)
    h, w = grey.shape
    if rng.random() < 0.5:  # the detector may hand over a part of the screen
        cw, ch = int(w * rng.uniform(0.4, 1.0)), int(h * rng.uniform(0.4, 1.0))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        grey = grey[y0:y0 + ch, x0:x0 + cw]
    return shrink(grey, size)


def desktop(rng: np.random.Generator, *, size: int = 512) -> np.ndarray:
    """A synthetic screenshot: dark- or light-theme windows of small dense text (code, mail,
    tables, menus), toolbars and picture blocks (training only)."""
    dark = rng.random() < 0.6
    h, w = size, int(size * rng.uniform(1.2, 1.8))
    bg = int(rng.uniform(10, 60)) if dark else int(rng.uniform(200, 250))
    canvas = np.full((h, w), bg, dtype=np.uint8)
    bar = int(rng.uniform(0, 30))
    canvas[:bar] = int(rng.uniform(30, 90)) if dark else int(rng.uniform(160, 220))
    for _ in range(int(rng.integers(1, 4))):  # windows
        x0, y0 = int(rng.uniform(0, w * 0.3)), int(rng.uniform(bar, h * 0.3))
        x1, y1 = int(rng.uniform(x0 + w * 0.5, w)), int(rng.uniform(y0 + h * 0.5, h))
        wbg = int(np.clip(bg + rng.normal(0, 15), 0, 255))
        canvas[y0:y1, x0:x1] = wbg
        if rng.random() < 0.5:  # a side panel or gutter
            gx = x0 + int(rng.uniform(0.05, 0.3) * (x1 - x0))
            canvas[y0:y1, x0:gx] = int(np.clip(wbg + rng.normal(0, 20), 0, 255))
        y = y0 + int(rng.uniform(8, 20))
        s = rng.uniform(0.25, 0.55)
        step = int(rng.uniform(14, 24) * s / 0.4)
        font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN,
                               cv2.FONT_HERSHEY_DUPLEX]))
        while y < y1 - 4:
            if rng.random() < 0.08:  # a picture block
                ph = int(min(y1 - y, rng.uniform(30, 120)))
                pw = int(min(x1 - x0 - 10, rng.uniform(40, 200)))
                if ph > 8 and pw > 8:
                    kind = TRAIN_TEXTURES[int(rng.integers(len(TRAIN_TEXTURES)))]
                    pic = cv2.resize(texture(rng, kind, size=max(ph, pw)), (pw, ph))
                    canvas[y:y + ph, x0 + 5:x0 + 5 + pw] = np.round(pic * 255).astype(np.uint8)
                y += ph + step
                continue
            indent = x0 + 4 + int(rng.integers(0, 6)) * int(rng.uniform(6, 14))
            x = indent
            for _ in range(int(rng.integers(1, 9))):
                word = str(rng.choice(_WORDS))
                if rng.random() < 0.3:
                    word = "".join(rng.choice(list("(){}[];=+-*/<>.:,_0123456789"),
                                              size=int(rng.integers(1, 5))))
                fg = int(rng.uniform(120, 255)) if dark else int(rng.uniform(0, 120))
                cv2.putText(canvas, word, (x, y), font, s, fg, 1, cv2.LINE_AA)
                x += int((len(word) + 1) * 18 * s)
                if x > x1:
                    break
            y += step
    if rng.random() < 0.3:  # a table grid
        for yy in range(bar, h, int(rng.uniform(12, 30))):
            canvas[yy, :] = int(np.clip(bg + (40 if dark else -40), 0, 255))
    return canvas.astype(np.float32) / 255.0


def _smooth(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    g = rng.normal(size=(max(2, int(h / scale)), max(2, int(w / scale)))).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def _norm(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    return (a - a.min()) / max(float(a.max() - a.min()), 1e-6)


def texture(rng: np.random.Generator, kind: str, *, size: int = 256) -> np.ndarray:
    """A synthetic texture of ``kind`` (see :data:`TRAIN_TEXTURES`, :data:`EVAL_TEXTURES`)."""
    h, w = size, int(size * rng.uniform(0.7, 1.4))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "noise":
        a = rng.normal(0.5, rng.uniform(0.05, 0.3), size=(h, w))
    elif kind == "gradient":
        ang = rng.uniform(0, 2 * np.pi)
        a = np.cos(ang) * xx / w + np.sin(ang) * yy / h
        if rng.random() < 0.5:
            a = np.hypot(xx - rng.uniform(0, w), yy - rng.uniform(0, h))
    elif kind == "checkerboard":
        s = rng.uniform(4, 60)
        a = ((xx // s + yy // s) % 2).astype(np.float32)
    elif kind == "blobs":
        a = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(2, 30))):
            cv2.circle(a, (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
                       int(rng.uniform(3, size / 4)), float(rng.uniform(0.2, 1.0)), -1)
        a = cv2.GaussianBlur(a, (0, 0), float(rng.uniform(0.5, 6)))
    elif kind == "smooth":
        a = _smooth(rng, h, w, rng.uniform(4, 64))
    elif kind == "lines":  # random line art: straight and curved strokes of random widths
        a = np.full((h, w), float(rng.uniform(0, 1)), np.float32)
        for _ in range(int(rng.integers(3, 60))):
            pts = (rng.uniform(0, 1, size=(int(rng.integers(2, 6)), 2)) * [w, h]).astype(np.int32)
            cv2.polylines(a, [pts], False, float(rng.uniform(0, 1)), int(rng.integers(1, 8)),
                          cv2.LINE_AA)
    elif kind == "mix":  # two training textures blended, the coordinates bent by a smooth field
        k1, k2 = rng.choice(TRAIN_TEXTURES[:6], size=2)
        t1, t2 = texture(rng, str(k1), size=size), texture(rng, str(k2), size=size)
        t2 = cv2.resize(t2, (t1.shape[1], t1.shape[0]))
        a = t1 * t2 if rng.random() < 0.5 else (t1 + t2) / 2
        hh, ww = a.shape
        gy, gx = np.mgrid[0:hh, 0:ww].astype(np.float32)
        amp = float(rng.uniform(0, 15))
        mx = gx + amp * _smooth(rng, hh, ww, rng.uniform(16, 64))
        my = gy + amp * _smooth(rng, hh, ww, rng.uniform(16, 64))
        a = cv2.remap(a.astype(np.float32), mx, my, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT)
    elif kind == "grating":
        f, ang = rng.uniform(0.02, 0.3), rng.uniform(0, np.pi)
        a = np.sin(2 * np.pi * f * (np.cos(ang) * xx + np.sin(ang) * yy))
        if rng.random() < 0.5:
            a = np.sign(a)
    elif kind == "voronoi":
        pts = rng.uniform(0, 1, size=(int(rng.integers(5, 80)), 2)) * [w, h]
        d = np.min(np.hypot(xx[..., None] - pts[:, 0], yy[..., None] - pts[:, 1]), axis=-1)
        a = d if rng.random() < 0.5 else np.argmin(
            np.hypot(xx[..., None] - pts[:, 0], yy[..., None] - pts[:, 1]), axis=-1) % 7
    elif kind == "pink":
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None]
        amp = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / size) ** rng.uniform(0.8, 2.0)
        spec = amp * np.exp(2j * np.pi * rng.random(amp.shape))
        a = np.fft.irfft2(spec, s=(h, w))
    elif kind == "saltpepper":
        a = np.full((h, w), rng.uniform(0.2, 0.8), np.float32)
        m = rng.random((h, w))
        q = rng.uniform(0.01, 0.2)
        a[m < q / 2] = 0.0
        a[m > 1 - q / 2] = 1.0
    elif kind == "rings":
        r = np.hypot(xx - rng.uniform(0, w), yy - rng.uniform(0, h))
        a = np.sin(r * rng.uniform(0.05, 0.5))
    else:
        raise ValueError(f"unknown texture {kind!r}")
    a = _norm(np.asarray(a, dtype=np.float32))
    lo, hi = sorted(rng.uniform(0, 1, 2))
    return (lo + (hi - lo + 0.2) * a).clip(0, 1).astype(np.float32)


def procedural(split: str, n: int, *, seed: int) -> Iterator[Negative]:
    """``n`` images of each procedural source of ``split`` (text, viewer, texture; and, for
    training only, desktop)."""
    base = 0 if split == "train" else 1_000_000
    kinds = TRAIN_TEXTURES if split == "train" else EVAL_TEXTURES
    for i in range(n):
        rng = np.random.default_rng([seed, base + i, 1])
        yield Negative("text", f"text-{split}-{i}", text_page(rng, split=split))
        rng = np.random.default_rng([seed, base + i, 2])
        yield Negative("viewer", f"viewer-{split}-{i}", viewer_blank(rng))
        rng = np.random.default_rng([seed, base + i, 3])
        kind = kinds[int(rng.integers(len(kinds)))]
        yield Negative("texture", f"{kind}-{split}-{i}", texture(rng, kind))
        if split == "train":
            rng = np.random.default_rng([seed, base + i, 4])
            yield Negative("desktop", f"desktop-{split}-{i}", desktop(rng))


# --------------------------------------------------------------------------------------------
# what the pipeline would hand the router


def through_phone(img: np.ndarray, *, seed: int, restorer, preset: str = "typical",
                  photo_size: tuple[int, int] = (1024, 768), max_side: int = 384
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``img`` shown on a monitor and photographed (simulator): ``(rectified, restored, photo)``,
    ``float32`` (H, W) of at most ``max_side`` px — rectified with the true corners, that
    restored, and the whole photo in grey (what a wrong screen detection could hand over)."""
    from photorad.rectify import warp
    from photorad.simulate import simulate_photo

    small = shrink(img, max_side)
    h, w = small.shape
    sim = simulate_photo(small, preset=preset, seed=seed, size=photo_size)
    rect = np.clip(warp(sim.photo, sim.corners, size=(w, h)), 0.0, 1.0).astype(np.float32)
    restored = np.clip(restorer.restore(rect), 0.0, 1.0).astype(np.float32)
    return rect, restored, shrink(_grey(sim.photo), max_side)


def negative_set(split: str, *, n_procedural: int, photo_every: int, seed: int,
                 restorer=None, preset: str = "typical",
                 photo_size: tuple[int, int] = (1024, 768), max_side: int = 384
                 ) -> list[tuple[Negative, str]]:
    """Every negative of ``split`` as ``(Negative, domain)``, domain ``"image"``, ``"rectified"``,
    ``"restored"`` or ``"photo"`` (see :func:`through_phone`).

    Each file-source image and every ``photo_every``-th procedural image is also put through
    :func:`through_phone` (the ``restorer`` given, else the shipped one); ``photo_every=0``
    makes no photos.
    """
    if restorer is None and photo_every:
        from photorad.restore import default_restorer

        restorer = default_restorer()
    out: list[tuple[Negative, str]] = []
    items = list(fixed_sources(split, max_side=max_side))
    n_fixed = len(items)
    items += list(procedural(split, n_procedural, seed=seed))
    base = 0 if split == "train" else 1_000_000
    n_kinds = 4 if split == "train" else 3  # procedural images per index
    for i, neg in enumerate(items):
        img = shrink(neg.img, max_side)
        out.append((Negative(neg.source, neg.name, img), "image"))
        if photo_every and (i < n_fixed or (i - n_fixed) % (n_kinds * photo_every) < n_kinds):
            rect, rest, photo = through_phone(img, seed=seed * 7_919 + base + i,
                                              restorer=restorer, preset=preset,
                                              photo_size=photo_size, max_side=max_side)
            out.append((Negative(neg.source, neg.name, rect), "rectified"))
            out.append((Negative(neg.source, neg.name, rest), "restored"))
            out.append((Negative(neg.source, neg.name, photo), "photo"))
    return out
