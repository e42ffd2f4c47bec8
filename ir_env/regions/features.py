"""Local degradation statistics of a (degraded) image, per pixel, for the degradation-aware proposer.

Every statistic is computed on the image itself (no clean reference) with OpenCV/SciPy filters over a
square window of ``window`` pixels. The heavy-tailed ones are taken in log10; see :data:`FEATURE_NAMES`.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

#: Names of the channels returned by :func:`degradation_features`, in order.
FEATURE_NAMES: tuple[str, ...] = (
    "noise",        # log10 local median |Immerkaer high-pass| of luma (noise sigma proxy, grain)
    "fine_energy",  # log10 local mean |luma - Gauss(0.8 px)|: finest-scale detail (blur lowers it)
    "mid_energy",   # log10 local mean |Gauss(0.8) - Gauss(2.5)|: mid-scale detail
    "sharpness",    # fine_energy - mid_energy: high/mid frequency balance (blur lowers, noise raises)
    "blockiness",   # log10 ratio of luma steps on the 8-px JPEG grid to steps inside blocks
    "dark_channel", # local mean of the 7-px min-filtered RGB minimum (haze raises it)
    "brightness",   # local mean luma (dark lowers it)
    "contrast",     # log10 local std of luma (haze and dark lower it)
    "saturation",   # local mean of (max - min) over RGB (haze lowers it)
    "streaks",      # log10 ratio of thin-bright-vertical to thin-bright-horizontal top-hat energy (rain)
)

_EPS = 1e-3


def _box(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size x size`` window, reflected borders (float32)."""
    return cv2.blur(x.astype(np.float32), (size, size), borderType=cv2.BORDER_REFLECT)


def _luma(image: np.ndarray) -> np.ndarray:
    return (image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def degradation_features(image: np.ndarray, window: int = 9) -> np.ndarray:
    """Per-pixel degradation statistics ``(H, W, len(FEATURE_NAMES))`` float32 of an RGB image in [0, 1].

    Args:
        image: float32 HxWx3 in [0, 1] (validated by the caller).
        window: side in pixels of the local window (odd, >= 3).
    """
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 3, got {window}")
    y = _luma(image)
    h, w = y.shape
    # noise: Immerkaer's mask cancels linear structure; median of |response| is robust to edges
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    hp = np.abs(cv2.filter2D(y, -1, k, borderType=cv2.BORDER_REFLECT)) * (np.sqrt(np.pi / 2) / 6)
    noise = ndimage.median_filter(hp, size=window, mode="reflect")
    g1 = cv2.GaussianBlur(y, (0, 0), 0.8, borderType=cv2.BORDER_REFLECT)
    g2 = cv2.GaussianBlur(y, (0, 0), 2.5, borderType=cv2.BORDER_REFLECT)
    fine = _box(np.abs(y - g1), window)
    mid = _box(np.abs(g1 - g2), window)
    # blockiness: mean |step| across 8-px block borders over mean |step| inside blocks (both directions)
    dx = np.abs(np.diff(y, axis=1, append=y[:, -1:]))
    dy = np.abs(np.diff(y, axis=0, append=y[-1:, :]))
    bx = np.zeros((h, w), np.float32)
    bx[:, 7:-1:8] = 1.0
    by = np.zeros((h, w), np.float32)
    by[7:-1:8, :] = 1.0
    wide = max(window, 17)  # at least two block borders in the window
    on = _box(dx * bx + dy * by, wide) / np.maximum(_box(bx + by, wide), 1e-6)
    ix, iy = 1.0 - bx, 1.0 - by
    ix[:, -1] = 0.0
    iy[-1, :] = 0.0
    off = _box(dx * ix + dy * iy, wide) / np.maximum(_box(ix + iy, wide), 1e-6)
    blockiness = np.log10((on + _EPS) / (off + _EPS))
    # haze: dark channel prior (He et al.) on a 7-px patch
    dark = cv2.erode(image.min(axis=2).astype(np.float32), np.ones((7, 7), np.uint8),
                     borderType=cv2.BORDER_REFLECT)
    mean_y = _box(y, window)
    std_y = np.sqrt(np.maximum(_box(y * y, window) - mean_y**2, 0.0))
    sat = image.max(axis=2) - image.min(axis=2)
    # rain: bright thin near-vertical lines survive a vertical opening but not a horizontal one
    th_h = y - cv2.morphologyEx(y, cv2.MORPH_OPEN, np.ones((1, 5), np.uint8))
    th_v = y - cv2.morphologyEx(y, cv2.MORPH_OPEN, np.ones((5, 1), np.uint8))
    streaks = np.log10((_box(th_h, window) + _EPS) / (_box(th_v, window) + _EPS))
    feats = [
        np.log10(noise + _EPS),
        np.log10(fine + _EPS),
        np.log10(mid + _EPS),
        np.log10(fine + _EPS) - np.log10(mid + _EPS),
        blockiness,
        _box(dark, window),
        mean_y,
        np.log10(std_y + _EPS),
        _box(sat, window),
        streaks,
    ]
    return np.stack(feats, axis=2).astype(np.float32)
