"""The camera: pose → homography, lens distortion, and the sensor + phone image pipeline.

Geometry. The screen is the plane z = 0 of a world frame in metres (x right, y down); screen
pixel (u, v) sits at ``((u - u_aim)·pitch, (v - v_aim)·pitch, 0)``. The camera looks at the aim
point from ``distance_m`` and is turned by yaw (about y), pitch (about x) and roll (about the
optical axis). Points on the plane project through ``K [r1 r2 t]``, a homography, onto
*undistorted* photo coordinates; the photo itself is *distorted* with the radial model
``undistorted = c + (distorted - c)·(1 + k1 r² + k2 r⁴)`` (r: distance from the centre divided
by the half-diagonal). That direction is explicit for the per-pixel map the renderer needs; the
few corner points go the other way by fixed-point iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from photorad.errors import ConfigError
from photorad.simulate.presets import SimParams

#: Diagonal of a 35 mm film frame, for 35 mm-equivalent focal lengths.
FULL_FRAME_DIAGONAL_MM = 43.27


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics, pose and distortion of one simulated shot."""

    width: int
    height: int
    f_px: float
    rotation: np.ndarray  # world → camera
    centre: np.ndarray  # camera position, world metres
    aim_uv: tuple[float, float]  # screen pixel the camera looks at
    pitch_m: float  # screen pixel pitch, metres
    k1: float
    k2: float

    @property
    def principal(self) -> tuple[float, float]:
        return (self.width - 1) / 2.0, (self.height - 1) / 2.0

    @property
    def r_norm(self) -> float:
        return 0.5 * float(np.hypot(self.width, self.height))

    def screen_to_world(self) -> np.ndarray:
        """3×3 map of homogeneous screen pixels (u, v, 1) to plane coordinates (X, Y, 1)."""
        s = self.pitch_m
        return np.array([[s, 0, -s * self.aim_uv[0]], [0, s, -s * self.aim_uv[1]], [0, 0, 1]])

    def homography(self) -> np.ndarray:
        """Screen pixels → undistorted photo pixels."""
        cx, cy = self.principal
        k = np.array([[self.f_px, 0, cx], [0, self.f_px, cy], [0, 0, 1.0]])
        t = -self.rotation @ self.centre
        rt = np.column_stack([self.rotation[:, 0], self.rotation[:, 1], t])
        return k @ rt @ self.screen_to_world()

    def undistort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distorted (photo) → undistorted photo coordinates."""
        cx, cy = self.principal
        dx, dy = (x - cx) / self.r_norm, (y - cy) / self.r_norm
        r2 = dx * dx + dy * dy
        g = 1.0 + self.k1 * r2 + self.k2 * r2 * r2
        return cx + dx * g * self.r_norm, cy + dy * g * self.r_norm

    def distort(self, pts: np.ndarray, *, iterations: int = 100) -> np.ndarray:
        """Undistorted → distorted (photo) coordinates of (N, 2) points."""
        cx, cy = self.principal
        u = (np.asarray(pts, dtype=np.float64) - (cx, cy)) / self.r_norm
        d = u.copy()
        for _ in range(iterations):
            r2 = (d * d).sum(axis=1, keepdims=True)
            d = u / (1.0 + self.k1 * r2 + self.k2 * r2 * r2)
        return d * self.r_norm + (cx, cy)

    def project(self, uv: np.ndarray) -> np.ndarray:
        """Screen pixel coordinates (N, 2) → photo pixel coordinates (N, 2), distortion included."""
        p = np.c_[np.asarray(uv, dtype=np.float64).reshape(-1, 2), np.ones(len(uv))]
        q = p @ self.homography().T
        if np.any(q[:, 2] <= 0):
            raise ConfigError("part of the screen is behind the camera; reduce the angles")
        return self.distort(q[:, :2] / q[:, 2:3])


def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """World → camera rotation for a camera turned by yaw, pitch and roll (degrees)."""
    a, b, c = np.deg2rad([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    cam_to_world = ry @ rx @ rz
    return cam_to_world.T


def focal_px(p: SimParams, size: tuple[int, int]) -> float:
    return p.focal_mm_equiv / FULL_FRAME_DIAGONAL_MM * float(np.hypot(*size))


def make_camera(
    p: SimParams, size: tuple[int, int], aim_uv: tuple[float, float], distance_m: float
) -> CameraModel:
    r = rotation(p.yaw_deg, p.pitch_deg, p.roll_deg)
    axis = r.T @ np.array([0.0, 0.0, 1.0])  # optical axis in world coordinates
    return CameraModel(
        width=int(size[0]),
        height=int(size[1]),
        f_px=focal_px(p, size),
        rotation=r,
        centre=-distance_m * axis,
        aim_uv=(float(aim_uv[0]), float(aim_uv[1])),
        pitch_m=p.pixel_pitch_mm / 1000.0,
        k1=p.k1,
        k2=p.k2,
    )


# ----------------------------------------------------------------------------- sensor + ISP


def tone_lut(p: SimParams, *, bits: int = 16) -> np.ndarray:
    """Phone tone curve as a LUT: linear raw code (``bits``) → 8-bit sRGB-like output."""
    x = np.linspace(0.0, 1.0, 2**bits, dtype=np.float64)
    y = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    s = y * y * (3.0 - 2.0 * y)  # smoothstep: the phone's contrast S-curve
    y = (1.0 - p.tone_contrast) * y + p.tone_contrast * s
    y = p.tone_black + (1.0 - p.tone_black) * y
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def seed_noise(seed: int) -> None:
    """Seed the noise stream of :func:`add_sensor_noise` (OpenCV's per-thread generator).

    OpenCV's ``randn`` is 3–4× faster than numpy's float32 normals, which matters at 12 MP
    (12 M draws per photo). The stream is the calling thread's, so one photo's strips must be
    drawn in a fixed order on one thread after this call, with no other OpenCV random calls
    in between (``simulate_photo`` does exactly that).
    """
    cv2.setRNGSeed(int(seed) & 0x7FFFFFFF)


def add_sensor_noise(signal: np.ndarray, p: SimParams) -> np.ndarray:
    """Poisson–Gaussian noise (Gaussian approximation of the shot noise), in place; clipped.

    ``signal`` is a ``float32`` array in units of full well; the standard normal draws come
    from the stream seeded by :func:`seed_noise`.
    """
    fw = p.full_well_e * 100.0 / max(p.iso, 1.0)
    std = np.maximum(signal, 0.0)
    std *= np.float32(1.0 / fw)
    std += np.float32((p.read_noise_e / fw) ** 2)
    np.sqrt(std, out=std)
    draws = np.empty_like(signal)
    cv2.randn(draws, 0.0, 1.0)
    std *= draws
    signal += std
    return np.clip(signal, 0.0, 1.0, out=signal)


def adc_codes(signal: np.ndarray) -> np.ndarray:
    """12-bit ADC of a signal in [0, 1], as 16-bit-range codes (``rint(s·4095)·16``), in place.

    The result stays ``float32`` (exact integers ≤ 65520) so that it can be written straight
    into a strided ``uint16`` view of the mosaic.
    """
    signal *= np.float32(4095.0)
    np.rint(signal, out=signal)
    signal *= np.float32(16.0)
    return signal


def _lut16(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    try:
        return cv2.LUT(image, lut)  # OpenCV ≥ 5 takes 16-bit input: ~4× faster than numpy
    except cv2.error:
        return np.take(lut, image, mode="clip")


def develop(codes: np.ndarray, p: SimParams, *, bgr: bool = False) -> np.ndarray:
    """RGGB mosaic of ADC codes → ``uint8`` RGB (or BGR): demosaic, tone curve, sharpening.

    ``codes`` is ``uint16`` (H, W), 12-bit codes scaled to the 16-bit range (:func:`adc_codes`).
    """
    # OpenCV's "BG" Bayer name is RGGB here.
    code = cv2.COLOR_BayerBG2BGR if bgr else cv2.COLOR_BayerBG2RGB
    out = _lut16(cv2.cvtColor(codes, code), tone_lut(p))
    if p.sharpen > 0:
        blur = cv2.GaussianBlur(out, (0, 0), 1.0)
        out = cv2.addWeighted(out, 1.0 + p.sharpen, blur, -p.sharpen, 0.0, dst=blur)
    return out
