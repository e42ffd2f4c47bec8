"""Rain-streak removal (family ``rain``): directional morphological streak detection, and bright-outlier
replacement by the local median."""

from __future__ import annotations

import cv2
import numpy as np

from restorers.spec import ParamSpec, Tool
from restorers.tools._common import channel_min, checked, finish, from_uint8, line_element, odd, to_uint8


def streak_layer(image: np.ndarray, angle: float, length: float, width: float = 7.0) -> np.ndarray:
    """Estimated additive rain layer (HxW float32, >= 0) for streaks at ``angle`` degrees from vertical
    (counter-clockwise, as seen on screen) at least about ``length`` px long.

    White top-hat across the streak direction (grey opening with a ``width``-px line perpendicular to
    the streaks removes structures thinner than it), then an opening of that residue with a line along
    the streaks keeps only long, thin, bright, correctly oriented structures (OpenCV morphology).
    """
    grey = np.ascontiguousarray(channel_min(image))  # rain is whitish: it brightens every channel
    along = 90.0 + float(angle)
    across = line_element(width, along + 90.0)
    opened = cv2.morphologyEx(grey, cv2.MORPH_OPEN, across, borderType=cv2.BORDER_REFLECT)
    tophat = grey - opened
    streaks = cv2.morphologyEx(
        tophat, cv2.MORPH_OPEN, line_element(length, along), borderType=cv2.BORDER_REFLECT
    )
    return np.maximum(streaks, 0.0)


@checked
def rain_streak_removal(
    image: np.ndarray, angle: float = 0.0, length: float = 12.0, threshold: float = 0.04
) -> np.ndarray:
    """Remove bright oriented rain streaks: the detected streak layer (see :func:`streak_layer`; ``angle``
    in degrees from vertical, counter-clockwise; ``length`` px) above ``threshold`` ([0, 1] intensity
    units) marks streak pixels (mask grown by 1 px), where the layer is subtracted from every channel;
    any excess left there over the 5x5 median of the de-streaked image is then removed (by at most
    ``threshold``). About 0.4x the streak length works best."""
    img = np.ascontiguousarray(image, dtype=np.float32)
    layer = streak_layer(img, angle, length)
    mask = (layer > float(threshold)).astype(np.uint8)
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0
    if not mask.any():
        return finish(img)
    sub = img - np.where(mask, layer, 0.0)[..., None]
    med = from_uint8(cv2.medianBlur(to_uint8(sub), 5))
    out = np.where(mask[..., None], np.minimum(sub, np.maximum(med, sub - float(threshold))), img)
    return finish(out)


@checked
def rain_median_removal(image: np.ndarray, radius: float = 2.0, threshold: float = 0.08) -> np.ndarray:
    """Replace bright outliers by the local median: pixels whose darkest channel exceeds its
    (2 * round(``radius``) + 1)-px median by more than ``threshold`` ([0, 1] units) take the median colour.
    Orientation-free, so it also catches short drops; blurs thin bright detail when the threshold is low."""
    img = np.ascontiguousarray(image, dtype=np.float32)
    k = odd(2 * round(radius) + 1, 3)
    med = from_uint8(cv2.medianBlur(to_uint8(img), k))
    excess = channel_min(img) - channel_min(med)
    mask = cv2.dilate((excess > float(threshold)).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    out = np.where(mask[..., None], np.minimum(img, med), img)
    return finish(out)


TOOLS: tuple[Tool, ...] = (
    Tool(
        name="rain_streak_removal",
        family="rain",
        params=(
            ParamSpec(
                "angle", -45.0, 45.0, 0.0, "deg", False, "streak angle from vertical, counter-clockwise"
            ),
            ParamSpec(
                "length", 5.0, 40.0, 12.0, "px", True, "minimum streak length detected (~0.4x the streaks, rounded)",
                integer=True,
            ),
            ParamSpec("threshold", 0.01, 0.3, 0.04, "0-1", True, "minimum streak brightness"),
        ),
        fn=rain_streak_removal,
        cost=4.5,
        targets=("rain",),
        description="Directional morphological rain-streak detection and subtraction (OpenCV).",
        margin=24,
    ),
    Tool(
        name="rain_median_removal",
        family="rain",
        params=(
            ParamSpec("radius", 1.0, 5.0, 2.0, "px", False, "median window radius (rounded)", integer=True),
            ParamSpec("threshold", 0.01, 0.3, 0.08, "0-1", True, "excess brightness that marks an outlier"),
        ),
        fn=rain_median_removal,
        cost=3.0,
        targets=("rain", "noise"),
        description="Bright-outlier replacement by the local median (OpenCV).",
        margin=6,
    ),
)
