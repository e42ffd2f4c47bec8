"""Dehazing tools (family ``haze``): dark-channel prior with guided-filter refinement, and inversion of
the scattering model with a constant transmission."""

from __future__ import annotations

import cv2
import numpy as np

from restorers.spec import ParamSpec, Tool
from restorers.tools._common import channel_min, checked, finish, guided_filter


def _dark_channel(image: np.ndarray, radius: int) -> np.ndarray:
    """Minimum over colour channels and over a (2r+1)^2 square window (grey erosion, OpenCV)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode(np.ascontiguousarray(channel_min(image)), kernel, borderType=cv2.BORDER_REFLECT)


def estimate_airlight(image: np.ndarray, dark: np.ndarray, fraction: float = 0.001) -> np.ndarray:
    """Airlight colour (3,) in [0, 1]: mean colour of the pixels with the brightest ``fraction`` of the
    dark channel (at least 4 pixels), as in He et al. (2009)."""
    n = max(4, int(dark.size * fraction))
    idx = np.argpartition(dark.ravel(), -n)[-n:]
    return np.clip(image.reshape(-1, 3)[idx].mean(axis=0), 0.05, 1.0).astype(np.float32)


@checked
def dcp_dehaze(image: np.ndarray, omega: float = 0.9, t0: float = 0.1, radius: float = 5.0) -> np.ndarray:
    """Dark-channel-prior dehazing (He, Sun and Tang, 2009) with guided-filter transmission refinement.

    ``omega`` (0.5-0.98) is the fraction of haze removed, ``t0`` (0.05-0.3) the lower bound on the
    transmission (limits noise amplification in dense haze), ``radius`` (px, rounded) the dark-channel
    patch radius; the guided filter uses radius 4 * ``radius`` and eps 1e-3 on the grey image.
    The airlight is estimated from the image (or crop) itself.
    """
    img = np.ascontiguousarray(image, dtype=np.float32)
    r = max(1, int(round(radius)))
    airlight = estimate_airlight(img, _dark_channel(img, r))
    t = 1.0 - float(omega) * _dark_channel(img / airlight, r)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    t = guided_filter(grey, t.astype(np.float32), 4 * r, 1e-3)
    t = np.clip(t, float(t0), 1.0)[..., None]
    return finish((img - airlight) / t + airlight)


@checked
def airlight_dehaze(image: np.ndarray, transmission: float = 0.6, airlight: float = 0.85) -> np.ndarray:
    """Invert the scattering model I = J t + A (1 - t) with a constant ``transmission`` t (0.15-1,
    1 = no haze) and a grey ``airlight`` A in [0, 1] units: J = (I - A (1 - t)) / t. Suited to a region
    at roughly one depth, where the transmission is nearly constant."""
    t = np.float32(transmission)
    a = np.float32(airlight)
    img = np.asarray(image, dtype=np.float32)
    return finish((img - a * (1.0 - t)) / t)


TOOLS: tuple[Tool, ...] = (
    Tool(
        name="dcp_dehaze",
        family="haze",
        params=(
            ParamSpec("omega", 0.5, 0.98, 0.9, "", False, "fraction of the haze removed"),
            ParamSpec("t0", 0.05, 0.3, 0.1, "", False, "lower bound of the transmission"),
            ParamSpec("radius", 2.0, 10.0, 5.0, "px", False, "dark-channel patch radius (rounded)", integer=True),
        ),
        fn=dcp_dehaze,
        cost=7.0,
        targets=("haze",),
        description="Dark-channel-prior dehazing with guided-filter refinement (OpenCV box filters).",
        margin=32,
    ),
    Tool(
        name="airlight_dehaze",
        family="haze",
        params=(
            ParamSpec("transmission", 0.15, 1.0, 0.6, "", True, "constant transmission t (1 = no haze)"),
            ParamSpec("airlight", 0.5, 1.0, 0.85, "0-1", False, "grey airlight A"),
        ),
        fn=airlight_dehaze,
        cost=1.0,
        targets=("haze",),
        description="Inversion of the haze model with constant transmission and grey airlight.",
        margin=0,
    ),
)
