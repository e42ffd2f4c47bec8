"""Colour superpixel baselines: scikit-image SLIC and Felzenszwalb on the degraded image, merged down.

Both over-segment the image, then fragments below ``min_area_frac`` of the image and then the
cheapest adjacent pairs (Ward cost on mean CIE Lab colour) are merged until ``max_regions`` remain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ir_env.regions.base import RegionProposer, whole_option


class SlicProposer(RegionProposer):
    """SLIC superpixels (``skimage.segmentation.slic``) merged to ``max_regions`` by colour.

    Args:
        n_segments: approximate number of initial superpixels (>= 2).
        compactness: SLIC colour/space trade-off (Lab units; larger = squarer superpixels), > 0.
        sigma: Gaussian pre-smoothing in pixels (>= 0).
    """

    name = "slic"

    def __init__(self, max_regions: int = 8, seed: int = 0, n_segments: int = 64, compactness: float = 10.0,
                 sigma: float = 1.0, **kwargs: Any) -> None:
        super().__init__(max_regions, seed, **kwargs)
        n_segments = whole_option("slic", "n_segments", n_segments)
        if n_segments < 2 or compactness <= 0 or sigma < 0:
            raise ValueError(f"slic: need n_segments >= 2, compactness > 0, sigma >= 0; got "
                             f"{n_segments}, {compactness}, {sigma}")
        self.n_segments, self.compactness, self.sigma = int(n_segments), float(compactness), float(sigma)

    def _labels(self, image: np.ndarray, scene: Any) -> np.ndarray:
        from skimage.segmentation import slic

        return slic(image, n_segments=self.n_segments, compactness=self.compactness, sigma=self.sigma,
                    start_label=0, channel_axis=-1, enforce_connectivity=True)


class FelzenszwalbProposer(RegionProposer):
    """Felzenszwalb graph segmentation (``skimage.segmentation.felzenszwalb``) merged by colour.

    Args:
        scale: larger = larger segments (in skimage's units, > 0).
        sigma: Gaussian pre-smoothing in pixels (>= 0).
        min_size_frac: skimage's ``min_size`` as a fraction of the image area, in [0, 0.5).
    """

    name = "felzenszwalb"

    def __init__(self, max_regions: int = 8, seed: int = 0, scale: float = 100.0, sigma: float = 0.8,
                 min_size_frac: float = 0.005, **kwargs: Any) -> None:
        super().__init__(max_regions, seed, **kwargs)
        if scale <= 0 or sigma < 0 or not 0 <= min_size_frac < 0.5:
            raise ValueError(f"felzenszwalb: need scale > 0, sigma >= 0, min_size_frac in [0, 0.5); got "
                             f"{scale}, {sigma}, {min_size_frac}")
        self.scale, self.sigma, self.min_size_frac = float(scale), float(sigma), float(min_size_frac)

    def _labels(self, image: np.ndarray, scene: Any) -> np.ndarray:
        from skimage.segmentation import felzenszwalb

        min_size = max(1, int(self.min_size_frac * image.shape[0] * image.shape[1]))
        return felzenszwalb(image, scale=self.scale, sigma=self.sigma, min_size=min_size, channel_axis=-1)
