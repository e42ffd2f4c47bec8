"""The degradation-aware proposer: k-means on local degradation statistics, spatially regularised.

Algorithm (``degradation-clusters``):

1. :func:`ir_env.regions.features.degradation_features` on the degraded image (noise level, fine/mid
   detail energy, JPEG blockiness, dark channel, brightness, contrast, saturation, rain streakiness).
2. Average them over ``block x block`` pixel cells; standardise each statistic robustly (median and
   IQR/1.349 over the cells, the spread floored by a per-statistic constant so a statistic that barely
   varies in this image is not blown up to unit variance); append the cell coordinates (y, x in [0, 1])
   times ``spatial_weight``.
3. k-means (scikit-learn, ``random_state=seed``, ``n_init`` restarts) for every k in 2..max_regions.
   K is the k with the best silhouette score; k = 1 (one region) when the best silhouette is below
   ``min_silhouette`` (the image looks uniformly degraded).
4. Regularise: a 3x3 majority (mode) filter on the cell labels, upsample to pixels, split every
   cluster into 4-connected components, then (in :class:`RegionProposer.propose`) fold components below
   ``min_area_frac`` of the image into their most similar neighbour and merge the cheapest adjacent
   pairs (Ward cost on the standardised statistics) until at most ``max_regions`` remain.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from ir_env.regions.base import RegionProposer
from ir_env.regions.features import FEATURE_NAMES, degradation_features

#: Smallest spread (in the statistic's own units) used when standardising, per statistic: a statistic
#: that varies less than this across the image is treated as constant rather than amplified.
SCALE_FLOOR: dict[str, float] = {
    "noise": 0.1,
    "fine_energy": 0.1,
    "mid_energy": 0.1,
    "sharpness": 0.1,
    "blockiness": 0.05,
    "dark_channel": 0.05,
    "brightness": 0.05,
    "contrast": 0.1,
    "saturation": 0.05,
    "streaks": 0.05,
}


def _mode_filter(labels: np.ndarray, n: int) -> np.ndarray:
    """3x3 majority filter of a small label map (ties keep the lowest label); hand-written because
    scipy/skimage have no categorical mode filter for int labels."""
    votes = np.stack([ndimage.uniform_filter((labels == i).astype(np.float32), size=3, mode="nearest")
                      for i in range(n)])
    return np.argmax(votes, axis=0).astype(np.int32)


class DegradationClustersProposer(RegionProposer):
    """Regions of homogeneous degradation (see the module docstring for the algorithm).

    Args:
        max_regions: at most this many regions.
        seed: k-means ``random_state``.
        window: odd local-statistics window in pixels (>= 3).
        block: cell side in pixels over which statistics are averaged before clustering (>= 1).
        spatial_weight: weight of the (y, x) coordinates (in [0, 1] units) against the standardised
            statistics; larger gives more compact regions (>= 0).
        min_silhouette: best silhouette below this -> a single region, in [-1, 1].
        n_init: k-means restarts per k (>= 1).
        min_area_frac: fragments smaller than this fraction of the image are merged into a neighbour.
    """

    name = "degradation-clusters"

    def __init__(self, max_regions: int = 8, seed: int = 0, window: int = 9, block: int = 4,
                 spatial_weight: float = 1.0, min_silhouette: float = 0.2, n_init: int = 3,
                 min_area_frac: float = 0.02, **kwargs: Any) -> None:
        super().__init__(max_regions, seed, min_area_frac=min_area_frac, **kwargs)
        if window < 3 or window % 2 == 0:
            raise ValueError(f"window must be an odd integer >= 3, got {window}")
        if block < 1 or spatial_weight < 0 or n_init < 1 or not -1 <= min_silhouette <= 1:
            raise ValueError(f"need block >= 1, spatial_weight >= 0, n_init >= 1, min_silhouette in [-1, 1]; got "
                             f"{block}, {spatial_weight}, {n_init}, {min_silhouette}")
        self.window, self.block, self.spatial_weight = int(window), int(block), float(spatial_weight)
        self.min_silhouette, self.n_init = float(min_silhouette), int(n_init)

    def _standardise(self, feats: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Robust z-scores of ``feats`` (..., C) with centre/spread estimated on ``ref`` (N, C)."""
        med = np.median(ref, axis=0)
        q75, q25 = np.percentile(ref, [75, 25], axis=0)
        floor = np.array([SCALE_FLOOR[n] for n in FEATURE_NAMES], dtype=np.float32)
        spread = np.maximum((q75 - q25) / 1.349, floor)
        return ((feats - med) / spread).astype(np.float32)

    def _segment(self, image: np.ndarray, scene: Any) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        h, w = image.shape[:2]
        f = degradation_features(image, self.window)
        b = max(1, min(self.block, h // 4, w // 4))
        gh, gw = max(1, h // b), max(1, w // b)
        cells = cv2.resize(f, (gw, gh), interpolation=cv2.INTER_AREA).reshape(gh, gw, -1)
        ref = cells.reshape(gh * gw, -1)
        z_cells = self._standardise(cells, ref)
        z_pix = self._standardise(f, ref)
        yy, xx = np.meshgrid((np.arange(gh) + 0.5) / gh, (np.arange(gw) + 0.5) / gw, indexing="ij")
        x = np.concatenate([z_cells.reshape(gh * gw, -1),
                            self.spatial_weight * np.stack([yy.ravel(), xx.ravel()], 1)], axis=1).astype(np.float64)
        kmax = min(self.max_regions, x.shape[0] - 1)
        best_k, best_s, best_lab = 1, -np.inf, np.zeros(x.shape[0], dtype=np.int32)
        for k in range(2, kmax + 1):
            km = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.seed).fit(x)
            lab = km.labels_.astype(np.int32)
            if np.unique(lab).size < 2:
                continue
            s = float(silhouette_score(x, lab))
            if s > best_s:
                best_k, best_s, best_lab = k, s, lab
        if best_s < self.min_silhouette:
            best_k, best_lab = 1, np.zeros(x.shape[0], dtype=np.int32)
        cell_lab = best_lab.reshape(gh, gw)
        if best_k > 1:
            cell_lab = _mode_filter(cell_lab, best_k)
        pix = cv2.resize(cell_lab.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int32)
        # split clusters into 4-connected components so each region is spatially coherent
        out = np.zeros((h, w), dtype=np.int32)
        nxt = 0
        for i in np.unique(pix):
            comp, n = ndimage.label(pix == i)
            out[comp > 0] = comp[comp > 0] - 1 + nxt
            nxt += n
        self.last_k_ = best_k
        self.last_silhouette_ = best_s
        return out, z_pix
