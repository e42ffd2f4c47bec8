"""Low-light enhancement (family ``dark``): HSV-value tone curve, CLAHE, multi-scale Retinex, and
LIME-style illumination-map enhancement."""

from __future__ import annotations

import cv2
import numpy as np

from restorers.spec import ParamSpec, Tool
from restorers.tools._common import channel_max, checked, finish, guided_filter

_EPS = np.float32(1e-4)


def _scale_value(image: np.ndarray, v: np.ndarray, v_new: np.ndarray) -> np.ndarray:
    """Change the HSV value (max over channels) from ``v`` to ``v_new`` keeping hue and saturation:
    RGB * V' / V."""
    ratio = np.where(v > _EPS, v_new / np.maximum(v, _EPS), 0.0).astype(np.float32)
    return image * ratio[..., None]


@checked
def gamma_correct(image: np.ndarray, gamma: float = 1.6, gain: float = 1.4) -> np.ndarray:
    """Tone curve on the HSV value: V' = min(1, ``gain`` * V) ** (1 / ``gamma``), hue and saturation kept.

    ``gamma`` > 1 lifts shadows, ``gain`` (linear exposure factor) lifts everything; together they invert
    the curve V_dark = scale * V ** g with gain = 1 / scale and gamma = g.
    """
    img = np.asarray(image, dtype=np.float32)
    v = channel_max(img)
    v_new = np.power(np.clip(v * np.float32(gain), 0.0, 1.0), np.float32(1.0 / gamma))
    return finish(_scale_value(img, v, v_new))


@checked
def clahe(image: np.ndarray, clip_limit: float = 2.5, tiles: float = 8.0) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (``cv2.createCLAHE``) of L in CIE Lab.

    ``clip_limit`` (1-8) bounds the histogram slope, ``tiles`` (rounded, 2-16) the tiles per side
    (fewer for crops with less than 16 px per tile). CLAHE runs on 8-bit L (its clip limit is defined
    for 256 bins); the sub-level residual of L is added back, so the output has no 8-bit banding.
    """
    img = np.ascontiguousarray(image, dtype=np.float32)
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2Lab)
    h, w = img.shape[:2]
    n = int(max(1, min(round(tiles), min(h, w) // 16)))
    scaled = lab[..., 0] * np.float32(255.0 / 100.0)
    l8 = np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
    eq = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(n, n)).apply(l8)
    residual = scaled - l8.astype(np.float32)
    lab[..., 0] = np.clip(eq.astype(np.float32) + residual, 0.0, 255.0) * np.float32(100.0 / 255.0)
    return finish(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB))


def _blur_large(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of HxW ``x`` with a large ``sigma`` (px): computed on a downscaled copy when sigma
    exceeds 4 px (a full-size kernel of 6 sigma would cost 10-100x more for the same low-pass)."""
    h, w = x.shape
    f = max(1.0, sigma / 4.0)
    if f <= 1.0 or min(h, w) / f < 4:
        return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    small = cv2.resize(
        x, (max(4, int(round(w / f))), max(4, int(round(h / f)))), interpolation=cv2.INTER_AREA
    )
    sx = sigma * small.shape[1] / w
    small = cv2.GaussianBlur(small, (0, 0), sx, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


#: Smallest 1st-99th percentile spread of the log-reflectance that :func:`msr_retinex` stretches to [0, 1].
MIN_RETINEX_SPREAD = 0.1


@checked
def msr_retinex(image: np.ndarray, sigma: float = 60.0, strength: float = 0.8) -> np.ndarray:
    """Multi-scale Retinex on intensity (Jobson et al., 1997), colour kept by scaling RGB.

    Scales are ``sigma`` / 16, / 4 and / 1 px; the log-reflectance is stretched between its 1st and
    99th percentile to [0, 1] and mixed with the input intensity by ``strength`` in [0, 1].
    """
    img = np.asarray(image, dtype=np.float32)
    v = channel_max(img)
    logv = np.log(v + 0.01)
    r = np.zeros_like(v)
    for s in (sigma / 16.0, sigma / 4.0, sigma):
        r += logv - np.log(_blur_large(v, float(s)) + 0.01)
    lo, hi = np.percentile(r, (1.0, 99.0))
    if hi - lo < MIN_RETINEX_SPREAD:  # a flat crop: no detail to stretch; centred, so it maps to mid-grey, and
        mid = 0.5 * (lo + hi)         # its noise is not blown up to the full range (it went black or to noise)
        lo, hi = mid - 0.5 * MIN_RETINEX_SPREAD, mid + 0.5 * MIN_RETINEX_SPREAD
    r = np.clip((r - lo) / float(hi - lo), 0.0, 1.0)
    v_new = (1.0 - np.float32(strength)) * v + np.float32(strength) * r
    return finish(_scale_value(img, v, v_new.astype(np.float32)))


@checked
def lime_enhance(image: np.ndarray, gamma: float = 0.6, radius: float = 6.0) -> np.ndarray:
    """LIME-style enhancement (Guo et al., 2017): illumination T = max over channels, smoothed by a
    self-guided filter of ``radius`` px (eps 0.01); output I / T ** ``gamma`` (``gamma`` 0.1-0.9: larger
    brightens dark areas more). The structure-aware optimisation of LIME is replaced by the guided filter.
    """
    img = np.asarray(image, dtype=np.float32)
    t = channel_max(img)
    t = guided_filter(t, t, max(1, int(round(radius))), 0.01)
    t = np.clip(t, 0.02, 1.0)
    return finish(img / np.power(t, np.float32(gamma))[..., None])


TOOLS: tuple[Tool, ...] = (
    Tool(
        name="gamma_correct",
        family="dark",
        params=(
            ParamSpec("gamma", 1.0, 3.0, 1.6, "", True, "V' = (gain V) ** (1 / gamma): > 1 lifts shadows"),
            ParamSpec("gain", 1.0, 4.0, 1.4, "x", True, "linear exposure gain on the HSV value"),
        ),
        fn=gamma_correct,
        cost=2.0,
        targets=("dark",),
        description="Gamma and exposure curve on the HSV value (hue and saturation kept).",
        margin=0,
    ),
    Tool(
        name="clahe",
        family="dark",
        params=(
            ParamSpec("clip_limit", 1.0, 8.0, 2.5, "", True, "CLAHE contrast limit"),
            ParamSpec("tiles", 2.0, 16.0, 8.0, "tiles/side", False, "tile grid size (rounded)", integer=True),
        ),
        fn=clahe,
        cost=3.5,
        targets=("dark", "haze"),
        description="CLAHE on L of CIE Lab (OpenCV).",
        margin=16,
    ),
    Tool(
        name="msr_retinex",
        family="dark",
        params=(
            ParamSpec(
                "sigma", 15.0, 250.0, 60.0, "px", True, "largest Retinex scale (others sigma/4, sigma/16)"
            ),
            ParamSpec("strength", 0.1, 1.0, 0.8, "", False, "mix of the Retinex output with the input"),
        ),
        fn=msr_retinex,
        cost=5.0,
        targets=("dark",),  # not haze: at its best parameters it loses 0.1-0.6 dB on light and moderate haze
        description="Multi-scale Retinex on intensity with percentile stretch (OpenCV blurs); on haze it helps "
                    "only when dense.",
        margin=32,
    ),
    Tool(
        name="lime_enhance",
        family="dark",
        params=(
            ParamSpec("gamma", 0.1, 0.9, 0.6, "", False, "illumination exponent (higher = brighter)"),
            ParamSpec("radius", 1.0, 20.0, 6.0, "px", True, "guided-filter radius of the illumination map (rounded)",
                      integer=True),
        ),
        fn=lime_enhance,
        cost=3.5,
        targets=("dark",),
        description="LIME-style illumination-map enhancement, guided-filter refinement.",
        margin=24,
    ),
)
