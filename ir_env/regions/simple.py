"""Proposers that ignore image content: ``whole``, ``grid``, and the ground-truth ``oracle``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ir_env.regions.base import RegionProposer


class WholeProposer(RegionProposer):
    """One region: the whole image (the GlobalIR setting)."""

    name = "whole"

    def _labels(self, image: np.ndarray, scene: Any) -> np.ndarray:
        return np.zeros(image.shape[:2], dtype=np.int32)

    def _merge_features(self, image: np.ndarray, scene: Any) -> None:
        return None  # a single region never merges


def grid_shape(max_regions: int, height: int, width: int, max_tile_aspect: float = 2.5) -> tuple[int, int]:
    """(rows, cols) with ``rows * cols <= max_regions`` for an ``height x width`` image.

    Picks the largest tile count whose tiles have aspect ratio (long side / short side) at most
    ``max_tile_aspect``; among equal counts, the squarest tiles; if no shape qualifies, the largest count.
    E.g. 8 on a square image -> 2 x 4, 5 -> 2 x 2, 4 -> 2 x 2, 2 -> 1 x 2.
    """
    best: tuple[float, ...] | None = None
    pick = (1, 1)
    for r in range(1, max_regions + 1):
        for c in range(1, max_regions // r + 1):
            if r > height or c > width:
                continue
            th, tw = height / r, width / c
            aspect = max(th, tw) / min(th, tw)
            key = (float(aspect <= max_tile_aspect), r * c, -aspect, -r)
            if best is None or key > best:
                best, pick = key, (r, c)
    return pick


class GridProposer(RegionProposer):
    """``rows x cols`` rectangular tiles, row-major before the area ordering: by default the largest
    near-square tiling with ``rows * cols <= max_regions`` (:func:`grid_shape`); ``rows`` and ``cols``
    may be given explicitly (their product must not exceed ``max_regions``). Nothing is merged."""

    name = "grid"

    def __init__(self, max_regions: int = 8, seed: int = 0, rows: int | None = None, cols: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(max_regions, seed, min_area_frac=0.0, **kwargs)
        if (rows is None) != (cols is None):
            raise ValueError("grid: give both rows and cols, or neither")
        if rows is not None and cols is not None:
            if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in (rows, cols)):
                raise ValueError(f"grid: rows and cols must be whole numbers, got {rows!r}, {cols!r}")
            if rows < 1 or cols < 1 or rows * cols > self.max_regions:
                raise ValueError(f"grid: rows*cols must be in [1, max_regions={self.max_regions}], "
                                 f"got {rows}x{cols}")
        self.rows, self.cols = rows, cols

    def _labels(self, image: np.ndarray, scene: Any) -> np.ndarray:
        h, w = image.shape[:2]
        r, c = (self.rows, self.cols) if self.rows is not None else grid_shape(self.max_regions, h, w)
        r, c = min(r, h), min(c, w)
        ry = np.minimum(np.arange(h) * r // h, r - 1)
        cx = np.minimum(np.arange(w) * c // w, c - 1)
        return (ry[:, None] * c + cx[None, :]).astype(np.int32)

    def _merge_features(self, image: np.ndarray, scene: Any) -> None:
        return None  # the tile count already fits max_regions: nothing merges


class OracleProposer(RegionProposer):
    """The scene's ground-truth masks (``scene.masks``, a ``(K, H, W)`` partition), in the proposers' order: largest
    first, like every proposer's output, so ``masks[k]`` is NOT ``scene.masks[k]`` in general (match them by
    overlap to pair a region with ``scene.labels``). With more than ``max_regions`` masks, pairs of adjacent regions
    are merged as in :func:`ir_env.regions.base.merge_regions` (the cheapest Ward merge of their mean Lab colour in the
    degraded image, which need not be the smallest region); no size-based merging otherwise."""

    name = "oracle"
    needs_scene = True

    def __init__(self, max_regions: int = 8, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(max_regions, seed, min_area_frac=0.0, **kwargs)

    def _labels(self, image: np.ndarray, scene: Any) -> np.ndarray:
        if scene is None or getattr(scene, "masks", None) is None:
            raise ValueError("the oracle proposer needs the scene: call propose(image, scene=scene) with a "
                             "Scene from ir_env.synthesize (it reads scene.masks)")
        masks = np.asarray(scene.masks)
        if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
            raise ValueError(f"scene.masks must have shape (K, {image.shape[0]}, {image.shape[1]}), "
                             f"got {masks.shape}")
        masks = masks.astype(bool)
        count = masks.sum(axis=0)
        if np.any(count != 1):
            bad = int(np.sum(count != 1))
            raise ValueError(f"scene.masks is not a partition: {bad} pixels are not covered exactly once")
        return np.argmax(masks, axis=0).astype(np.int32)
