"""Screen content: the original image shown in a PACS-like viewer window.

The result is the frame buffer the display receives: ``float32`` (screen_h, screen_w, 3) drive
values in [0, 1], quantised to 8 bits as a graphics card does, plus the rectangle of screen
pixels that holds the original image. The overlay text is generic (window/level, zoom, frame
number); it never contains anything that identifies a patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from photorad.errors import ConfigError, ImageTooSmallError
from photorad.simulate.presets import SimParams

_INTERP = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}


@dataclass(frozen=True)
class Screen:
    """A rendered frame buffer and where the image sits in it.

    ``rgb8`` is the 8-bit frame buffer (screen_h, screen_w, 3) the graphics card sends to the
    panel; :attr:`rgb` is the same as ``float32`` drive values in [0, 1]. ``image_rect`` is
    ``(x0, y0, w, h)`` in whole screen pixels: the image occupies pixels ``x0 … x0 + w - 1``; its
    outer edges are at ``x0 - 0.5`` and ``x0 + w - 0.5`` (pixel centres at integers, as
    everywhere in photorad).
    """

    rgb8: np.ndarray
    image_rect: tuple[int, int, int, int]

    @property
    def rgb(self) -> np.ndarray:
        """``float32`` drive values in [0, 1] (a new array on every call)."""
        return self.rgb8.astype(np.float32) * np.float32(1.0 / 255.0)

    def image_corners(self) -> np.ndarray:
        """Outer corners of the displayed image, screen pixels, TL, TR, BR, BL (float64)."""
        x0, y0, w, h = self.image_rect
        left, top, right, bottom = x0 - 0.5, y0 - 0.5, x0 + w - 0.5, y0 + h - 0.5
        return np.array([[left, top], [right, top], [right, bottom], [left, bottom]],
                        dtype=np.float64)


def apply_window(img: np.ndarray, *, width: float, level: float) -> np.ndarray:
    """Linear window/level of a [0, 1] image (``width`` and ``level`` in the same units)."""
    if width <= 0:
        raise ConfigError(f"window_width must be positive, got {width}")
    lo = level - width / 2.0
    return np.clip((img - lo) / width, 0.0, 1.0).astype(np.float32)


def _text(canvas: np.ndarray, text: str, org: tuple[int, int], scale: float, grey: float) -> None:
    g = round(255 * grey)  # OpenCV draws text on 8-bit canvases only
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (g, g, g),
                max(1, round(scale * 1.6)), cv2.LINE_AA)


def _u8(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    return tuple(round(255 * c) for c in rgb)  # type: ignore[return-value]


def render_screen(original: np.ndarray, p: SimParams) -> Screen:
    """Draw the viewer (toolbar, side panel, dark viewport, overlay text) with the image.

    Parameters
    ----------
    original:
        ``float32`` H×W grey image in [0, 1].
    p:
        Simulator parameters (viewer fields).
    """
    img = np.asarray(original, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 8:
        raise ImageTooSmallError(f"original must be a grey image of at least 8×8, got {img.shape}")
    sw, sh = int(p.screen_w), int(p.screen_h)
    ui_scale = sh / 1080.0
    tb = round(p.toolbar_px * ui_scale) if p.ui else 0
    sp = round(p.side_panel_px * ui_scale) if p.ui else 0
    # The frame buffer is 8-bit, as the graphics card's.
    screen = np.full((sh, sw, 3), round(255 * p.viewport_grey), dtype=np.uint8)
    vx0, vy0, vw, vh = sp, tb, sw - sp, sh - tb
    if p.ui:
        screen[:tb] = _u8((0.18, 0.19, 0.21))
        for i in range(12):  # toolbar buttons
            x = round((12 + i * 44) * ui_scale)
            s = round(28 * ui_scale)
            cv2.rectangle(screen, (x, round(6 * ui_scale)), (x + s, round(6 * ui_scale) + s),
                          _u8((0.35, 0.37, 0.4)), -1)
        screen[tb:, :sp] = _u8((0.11, 0.11, 0.12))
        screen[tb:, sp - max(1, round(2 * ui_scale)):sp] = 77
        # series thumbnail in the side panel
        tw = sp - round(30 * ui_scale)
        th = max(1, round(tw * img.shape[0] / img.shape[1]))
        thumb = np.rint(255 * cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA))
        ty = tb + round(40 * ui_scale)
        if ty + th < sh:
            screen[ty:ty + th, round(15 * ui_scale):round(15 * ui_scale) + tw] = thumb[..., None]
        for i, line in enumerate(("Series 1", "US  1 image", "Study list", "Tools", "Layout 1x1")):
            _text(screen, line, (round(15 * ui_scale), ty + th + round((40 + 34 * i) * ui_scale)),
                  0.6 * ui_scale, 0.75)
        _text(screen, "photorad viewer", (sw - round(260 * ui_scale), round(28 * ui_scale)),
              0.7 * ui_scale, 0.85)

    # Fit the image into the viewport: zoom × viewport height, never wider than the viewport.
    scale = p.image_zoom * vh / img.shape[0]
    scale = min(scale, 0.98 * vw / img.shape[1])
    dw, dh = max(2, round(img.shape[1] * scale)), max(2, round(img.shape[0] * scale))
    try:
        interp = _INTERP[p.viewer_interp]
    except KeyError:
        raise ConfigError(
            f"viewer_interp must be one of {', '.join(_INTERP)}, got {p.viewer_interp!r}"
        ) from None
    if interp == cv2.INTER_AREA and (dw > img.shape[1] or dh > img.shape[0]):
        interp = cv2.INTER_LINEAR  # area averaging only differs from linear when shrinking
    shown = cv2.resize(apply_window(img, width=p.window_width, level=p.window_level), (dw, dh),
                       interpolation=interp)
    cx = vx0 + vw / 2.0 + p.image_offset[0] * vw
    cy = vy0 + vh / 2.0 + p.image_offset[1] * vh
    x0 = int(np.clip(round(cx - dw / 2.0), vx0, vx0 + vw - dw))
    y0 = int(np.clip(round(cy - dh / 2.0), vy0, vy0 + vh - dh))
    screen[y0:y0 + dh, x0:x0 + dw] = np.rint(np.clip(shown, 0.0, 1.0) * 255.0)[..., None]

    if p.ui:  # overlay text in the viewport corners, only where it does not cover the image
        s = 0.65 * ui_scale
        lines = [
            ((vx0 + round(10 * ui_scale), vy0 + round(28 * ui_scale)), "Im: 1/1"),
            ((vx0 + round(10 * ui_scale), sh - round(14 * ui_scale)),
             f"W: {round(p.window_width * 255)} L: {round(p.window_level * 255)}"),
            ((sw - round(200 * ui_scale), sh - round(14 * ui_scale)), f"Zoom: {scale:.2f}"),
            ((sw - round(200 * ui_scale), vy0 + round(28 * ui_scale)), "US  B-mode"),
        ]
        for (x, y), line in lines:
            bx0, by0 = x - 2, y - round(24 * ui_scale)
            bx1, by1 = x + round(190 * ui_scale), y + 4
            if bx1 < x0 or bx0 > x0 + dw or by1 < y0 or by0 > y0 + dh:
                _text(screen, line, (x, y), s, 0.8)
    # Kept 8-bit: the display maps each code through a 256-entry table (display.emission).
    return Screen(rgb8=screen, image_rect=(x0, y0, dw, dh))
