"""The degradation-aware proposer: regions of homogeneous local degradation statistics.

Features (both methods): :func:`ir_env.regions.features.region_features` of the degraded image --
local statistics (noise level, chroma noise, fine/mid detail energy and their ratio, JPEG blockiness,
dark channel, brightness, contrast, saturation, rain streaks) plus Lab colour --
projected by the Fisher-discriminant metric of :mod:`ir_env.regions.metric` (fitted on train-split
synthetic scenes), so distances weigh what tells degradations apart over what varies with content.

``method="ward"`` (default):
  1. SLIC superpixels of the degraded image (``n_segments``, ``compactness``): boundaries that follow
     image edges, and a degradation change makes an edge.
  2. Superpixels below ``min_area_frac`` of the image join their closest neighbour. Adjacent regions
     then merge greedily by Ward cost (``|mu_a - mu_b|^2 n_a n_b / (n_a + n_b)``, per image pixel).
     A trial run down to one region gives the image's largest merge cost ``c_top``; the real run merges
     while the cheapest cost is at most ``max(merge_cost, merge_rel * c_top)`` -- and always until at
     most ``max_regions`` remain. K is therefore chosen by a dissimilarity threshold, partly relative
     to the image (two strongly different degradations make a large ``c_top``, so the content
     variation inside each of them is merged away), not fixed in advance.
  3. Any two regions (touching or not) closer than ``max(join_cost, join_rel * c_top)`` merge, so one
     degradation appearing in separate places becomes one (disconnected) region.

``method="kmeans"`` (the simpler variant, kept for comparison):
  k-means (scikit-learn, ``random_state=seed``, ``n_init`` restarts) with ``k = min(kmeans_k,
  max_regions)`` on ``block x block`` cell means plus ``spatial_weight`` x (y, x) cell coordinates in
  [0, 1]; a 3x3 majority filter on the cell labels; 4-connected components; then steps 2-3 above.
  (Choosing k by silhouette was measured slower and worse than a fixed k followed by merging.)

``degradation-clusters-learned`` (:class:`LearnedClustersProposer`): the same ``ward`` algorithm on the
learned encoder's dense predictions instead of the hand-made statistics: per 8x8 cell, the family
probabilities and probability-weighted severities of :mod:`ir_env.encoder` (12 values in [0, 1], times
``scale``), bilinearly upsampled to pixels, plus Lab colour / 100 times ``colour_weight`` (edges of content
still guide the superpixels' boundaries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from ir_env.regions.base import RegionProposer, apply_merges, merge_regions, merges_before_stop, whole_option
from ir_env.regions.features import cell_means, region_features

METHODS: tuple[str, ...] = ("ward", "kmeans")


def _mode_filter(labels: np.ndarray, n: int) -> np.ndarray:
    """3x3 majority filter of a small label map (ties keep the lowest label); hand-written because
    scipy/skimage have no categorical mode filter for int labels."""
    votes = np.stack([ndimage.uniform_filter((labels == i).astype(np.float32), size=3, mode="nearest")
                      for i in range(n)])
    return np.argmax(votes, axis=0).astype(np.int32)


def _components(labels: np.ndarray) -> np.ndarray:
    """Split every label of ``labels`` into its 4-connected components (new ids, int32)."""
    out = np.zeros(labels.shape, dtype=np.int32)
    nxt = 0
    for i in np.unique(labels):
        comp, n = ndimage.label(labels == i)
        out[comp > 0] = comp[comp > 0] - 1 + nxt
        nxt += n
    return out


class DegradationClustersProposer(RegionProposer):
    """Regions of homogeneous degradation (the algorithm is in the module docstring).

    Args:
        max_regions: at most this many regions.
        seed: k-means ``random_state`` (``method="kmeans"``; ``ward`` uses no randomness).
        method: ``"ward"`` (superpixels + agglomeration) or ``"kmeans"``.
        window: odd local-statistics window in pixels (>= 3).
        merge_cost: Ward cost per pixel below which adjacent regions merge (>= 0; larger: fewer regions).
        merge_rel: the same threshold relative to the image's largest merge cost (>= 0).
        join_cost, join_rel: thresholds for merging any two regions (>= 0; both 0 disables).
        n_segments, compactness: SLIC over-segmentation (``ward``).
        kmeans_k, block, spatial_weight, n_init: k-means settings (``kmeans``): clusters, cell side in
            px, weight of the [0, 1] cell coordinates, restarts.
        metric: path of a metric JSON (default: the shipped one), or ``"identity"`` for none.
        min_area_frac: fragments below this fraction of the image are merged into a neighbour.
    """

    name = "degradation-clusters"

    def __init__(self, max_regions: int = 8, seed: int = 0, method: str = "ward", window: int = 9,
                 merge_cost: float = 1.0, merge_rel: float = 0.05, join_cost: float = 0.5,
                 join_rel: float = 0.025, n_segments: int = 100,
                 compactness: float = 20.0, kmeans_k: int = 4, block: int = 4, spatial_weight: float = 1.0,
                 n_init: int = 3, metric: str | Path | None = None, min_area_frac: float = 0.03,
                 **kwargs: Any) -> None:
        super().__init__(max_regions, seed, min_area_frac=min_area_frac, **kwargs)
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        window, n_segments, kmeans_k, block, n_init = (
            whole_option("degradation-clusters", k, v) for k, v in (
                ("window", window), ("n_segments", n_segments), ("kmeans_k", kmeans_k), ("block", block),
                ("n_init", n_init)))
        if window < 3 or window % 2 == 0:
            raise ValueError(f"window must be an odd integer >= 3, got {window}")
        if min(merge_cost, merge_rel, join_cost, join_rel) < 0:
            raise ValueError("merge_cost, merge_rel, join_cost and join_rel must be >= 0, got "
                             f"{merge_cost}, {merge_rel}, {join_cost}, {join_rel}")
        checks = {"n_segments >= 2": n_segments >= 2, "compactness > 0": compactness > 0,
                  "kmeans_k >= 1": kmeans_k >= 1, "block >= 1": block >= 1,
                  "spatial_weight >= 0": spatial_weight >= 0, "n_init >= 1": n_init >= 1}
        failed = [k for k, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"degradation-clusters: need {', '.join(failed)}")
        self.method, self.window = method, int(window)
        self.merge_cost, self.merge_rel = float(merge_cost), float(merge_rel)
        self.join_cost, self.join_rel = float(join_cost), float(join_rel)
        self.n_segments, self.compactness = int(n_segments), float(compactness)
        self.kmeans_k, self.block, self.spatial_weight, self.n_init = int(kmeans_k), int(block), float(
            spatial_weight), int(n_init)
        from ir_env.regions.metric import load_metric  # here, so `python -m ir_env.regions.metric` runs clean

        self.transform = None if metric == "identity" else load_metric(metric)

    def features(self, image: np.ndarray) -> np.ndarray:
        """Per-pixel features in the metric space, float32 ``(H, W, C)`` (image already validated)."""
        z = region_features(image, self.window)
        return z if self.transform is None else (z @ self.transform).astype(np.float32)

    def _initial_ward(self, image: np.ndarray) -> np.ndarray:
        from skimage.segmentation import slic

        return slic(image, n_segments=self.n_segments, compactness=self.compactness, sigma=1.0, start_label=0,
                    channel_axis=-1, enforce_connectivity=True)

    def _initial_kmeans(self, z: np.ndarray) -> np.ndarray:
        from sklearn.cluster import KMeans

        h, w, c = z.shape
        cells = cell_means(z, self.block)
        gh, gw = cells.shape[:2]
        cells = cells.reshape(gh * gw, c)
        yy, xx = np.meshgrid((np.arange(gh) + 0.5) / gh, (np.arange(gw) + 0.5) / gw, indexing="ij")
        x = np.concatenate([cells, self.spatial_weight * np.stack([yy.ravel(), xx.ravel()], 1)], 1)
        k = min(self.kmeans_k, self.max_regions, gh * gw)
        if k < 2:
            return np.zeros((h, w), dtype=np.int32)
        km = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.seed).fit(x.astype(np.float64))
        cell_lab = _mode_filter(km.labels_.reshape(gh, gw).astype(np.int32), k)
        pix = cv2.resize(cell_lab.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
        return _components(pix.astype(np.int32))

    def _segment(self, image: np.ndarray, scene: Any) -> tuple[np.ndarray, np.ndarray]:
        z = self.features(image)
        init = self._initial_ward(image) if self.method == "ward" else self._initial_kmeans(z)
        min_size = int(np.ceil(self.min_area_frac * init.size))
        lab = merge_regions(init, z, init.size, min_size)  # fold small fragments only
        costs: list[float] = []
        merges: list[tuple[int, int]] = []
        merge_regions(lab, z, 1, 0, history=costs, merges=merges)  # trial run: the image's merge-cost scale
        top = max(costs, default=0.0)
        # a run to max_regions with this max_cost makes the trial's first `kept` merges (same deterministic
        # order) and stops: replay them instead of merging again
        kept = merges_before_stop(costs, int(lab.max()) + 1, self.max_regions,
                                  max(self.merge_cost, self.merge_rel * top))
        lab = apply_merges(lab, merges[:kept])
        join = max(self.join_cost, self.join_rel * top)
        if join > 0:
            lab = merge_regions(lab, z, self.max_regions, 0, max_cost=join, adjacent_only=False)
        self.last_cost_scale_ = top
        return lab, z


class LearnedClustersProposer(DegradationClustersProposer):
    """:class:`DegradationClustersProposer` (``ward``) on the learned encoder's dense family / severity
    predictions (module docstring).

    Args (besides the parent's): ``weights``: encoder weights directory (default: shipped);
    ``scale``: multiplier of the 12 predicted values; ``colour_weight``: multiplier of Lab colour / 100.
    """

    name = "degradation-clusters-learned"

    def __init__(self, max_regions: int = 8, seed: int = 0, weights: str | Path | None = None, scale: float = 4.0,
                 colour_weight: float = 1.0, **kwargs: Any) -> None:
        kwargs.setdefault("metric", "identity")
        super().__init__(max_regions, seed, method="ward", **kwargs)
        if scale <= 0 or colour_weight < 0:
            raise ValueError(f"scale must be > 0 and colour_weight >= 0, got {scale}, {colour_weight}")
        from ir_env.encoder.learned import LearnedEmbedder

        self.encoder = LearnedEmbedder(weights)
        self.scale, self.colour_weight = float(scale), float(colour_weight)

    def features(self, image: np.ndarray) -> np.ndarray:
        """Per-pixel (H, W, 15) float32: 12 encoder predictions x scale, then Lab / 100 x colour_weight."""
        import torch

        from ir_env.regions.base import lab_features

        h, w = image.shape[:2]
        dense = self.encoder.dense_features(image)
        with torch.inference_mode():
            lf, ls = self.encoder.enc.net.heads(torch.from_numpy(dense))
        prob = torch.sigmoid(lf).numpy()
        pred = np.concatenate([prob, prob * torch.sigmoid(ls).numpy()], axis=-1) * self.scale
        up = cv2.resize(pred.astype(np.float32), (dense.shape[1] * 8, dense.shape[0] * 8),
                        interpolation=cv2.INTER_LINEAR)[:h, :w]
        return np.concatenate([up, self.colour_weight * lab_features(image)], axis=-1).astype(np.float32)
