"""Run any planner tile by tile: large photos seen at the pixel scale the planner was built for.

Every learned part of this project (the PPO and distilled policies, the encoder, the rule table) was trained
on 64-128 px crops taken from photos at their native resolution, so a noise grain, a JPEG block or a rain
streak looks the same size to them as in an ordinary photo -- but a whole 500 px photo holds more scene per
region than they ever saw, and the learned planners lose PSNR on it (``experiments/scale_transfer.py``).
:class:`TiledPlanner` cuts the image into a grid of tiles of about ``tile`` px, lets the wrapped planner
plan each tile on its own (it sees the current image, so later tiles see earlier tiles' work at their
borders) and applies each kept step to the whole image with the step's region placed in the full frame.
So the result obeys the :class:`~policies.base.RestorationResult` contract: ``replay`` on the input
reproduces ``image`` exactly, and the tools read real pixels across tile borders, each step blended in with a
feathered mask (:func:`restorers.apply`'s ``feather``; here by default ``tile / 8`` px, :data:`FEATHER_PER_TILE`, so
a step kept in one tile and not in its neighbour fades out over tens of px instead of ending at the tile border).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from policies.base import (
    Planner,
    PlannerWrapper,
    RestorationResult,
    TraceStep,
    check_inputs,
    check_min_side,
    fresh_image,
)
from restorers import apply

#: Smallest tile side accepted, px (the env and the encoder need 32 px).
MIN_TILE = 32
#: Default blend of a tiled planner's kept steps: Gaussian sigma = tile / FEATHER_PER_TILE px (16 px at 128).
FEATHER_PER_TILE = 8


def tile_boxes(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Grid of ``(y0, y1, x0, x1)`` boxes covering a ``height`` x ``width`` image with tiles of about
    ``tile`` px: ``max(1, round(side / tile))`` tiles per side (fewer if a tile would drop below 32 px), the
    side split as evenly as possible (so tiles are between about 2/3 and 3/2 of ``tile``, never a thin
    sliver); row-major order."""
    if int(tile) < MIN_TILE:
        raise ValueError(f"tile must be >= {MIN_TILE} px, got {tile}")
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height} x {width}")

    def cuts(side: int) -> list[int]:
        n = max(1, min(int(round(side / int(tile))), side // MIN_TILE))  # never a tile below 32 px
        return [round(i * side / n) for i in range(n + 1)]

    ys, xs = cuts(int(height)), cuts(int(width))
    return [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(len(ys) - 1) for j in range(len(xs) - 1)]


class TiledPlanner(PlannerWrapper):
    """``inner`` run on each tile of a :func:`tile_boxes` grid (module docstring).

    Args:
        inner: any planner (``make_planner(name, tile=N, ...)`` builds one around planner ``name``).
        tile: tile side in px (>= 32); an image whose sides are both below 1.5 x ``tile`` is one tile, i.e.
            the inner planner alone. Good values: the size the inner planner was trained or fitted at
            (128 for the shipped ``ppo`` and ``perceive``, 64 for ``distilled``).
        feather: Gaussian sigma (px, >= 0) each kept step is blended into the whole image with; default
            ``tile / FEATHER_PER_TILE`` (:data:`FEATHER_PER_TILE`). Recorded in every trace step, so ``replay``
            stays exact. (A single tile is the inner planner's own result, blended as it blends.)

    ``restore(..., masks=...)`` with given regions (e.g. an env's, through :meth:`predict`) skips the
    tiling and hands them to the inner planner. Counting: ``tool_calls`` = the inner planner's calls on
    every tile plus one full-frame application per kept step; ``iqa_calls`` = the inner judge's calls;
    ``quality_before/after`` of a step are the inner judge's scores on its tile. ``masks`` holds only the
    regions the trace uses or a perception gate dropped a step on (a full-frame copy of each); ``info["tiles"]``
    the boxes and ``info["per_tile"]`` each tile's inner ``info``. When the inner planner is gated
    (:class:`policies.gate.PerceptionGate`), ``info["gate"]`` merges the tiles' gate reports as the gate itself
    writes one: ``kept`` steps and the ``vetoed`` ones, each with its full-frame ``region`` (an index of ``masks``)
    and its ``tile`` (an index of ``info["tiles"]``).
    """

    def __init__(self, inner: Planner, tile: int, feather: float | None = None) -> None:
        if isinstance(inner, TiledPlanner):
            raise ValueError("the planner is already tiled")
        if int(tile) < MIN_TILE:
            raise ValueError(f"tile must be >= {MIN_TILE} px, got {tile}")
        sigma = int(tile) / FEATHER_PER_TILE if feather is None else check_feather(feather)
        super().__init__(inner, mode="spatial")  # every tile is a region of the whole image
        self.tile = int(tile)
        self.feather = float(sigma)

    def _restore(self, degraded: np.ndarray, reference: np.ndarray | None = None,
                masks: np.ndarray | None = None) -> RestorationResult:
        """Restore ``degraded`` (float32 HxWx3 in [0, 1]) tile by tile; ``reference`` (the clean image, same
        shape) is cropped for a full-reference judge; ``masks`` given: no tiling (class docstring)."""
        t0 = time.perf_counter()
        img, ref = check_inputs(degraded, reference)
        check_min_side(self, img)  # on the whole image: a tile's size would confuse the message
        if masks is not None:  # the inner planner checks them
            res = self.inner.restore(img, ref, masks)
            res.info = {**res.info, "tiles": [(0, img.shape[0], 0, img.shape[1])]}
            res.seconds = time.perf_counter() - t0
            return res
        h, w = img.shape[:2]
        boxes = tile_boxes(h, w, self.tile)
        if len(boxes) == 1:  # one tile is the image: the planner itself, no replay
            res = self.inner.restore(img, ref)
            res.info = {**res.info, "tiles": boxes, "tile": self.tile}
            res.seconds = time.perf_counter() - t0
            return res
        out, trace, kept, per_tile = img, [], [], []
        gated: dict[str, Any] = {}  # the tiles' perception-gate reports, merged (see the class docstring)
        tool_calls = iqa_calls = 0
        for t, (y0, y1, x0, x1) in enumerate(boxes):
            if self.progress is not None:
                self.progress.set_postfix_str(f"tile {t + 1}/{len(boxes)}")
            crop = np.ascontiguousarray(out[y0:y1, x0:x1])
            r = None if ref is None else np.ascontiguousarray(ref[y0:y1, x0:x1])
            res = self.inner.restore(crop, r)
            tool_calls += int(res.tool_calls)
            iqa_calls += int(res.iqa_calls)
            per_tile.append(res.info)
            index: dict[int, int] = {}  # the tile's region -> its full-frame mask in ``kept``
            box = (y0, y1, x0, x1)
            for st in res.trace:
                m = kept[_frame_region(st.region, res.masks, box, (h, w), index, kept)]
                out = apply(out, st.tool, st.params, mask=m, feather=self.feather)
                tool_calls += 1
                if self.progress is not None:
                    self.progress.update(1)
                trace.append(TraceStep(index[st.region], float(m.mean()), st.tool, dict(st.params),
                                       st.quality_before, st.quality_after, st.seconds, self.feather))
            gate = res.info.get("gate")
            if gate is not None:
                if not gated:
                    gated = {"gate": gate["gate"], "thresholds_from": gate["thresholds_from"], "kept": 0, "vetoed": []}
                for v in gate["vetoed"]:
                    region = _frame_region(int(v["region"]), res.masks, box, (h, w), index, kept)
                    gated["vetoed"].append({**v, "region": region, "tile": t})
        mask_arr = np.stack(kept) if kept else np.zeros((0, h, w), bool)
        info: dict[str, Any] = {"tiles": boxes, "tile": self.tile, "feather": self.feather, "per_tile": per_tile}
        if gated:
            info["gate"] = {**gated, "kept": len(trace)}
        judge = self.judge.label if self.judge is not None else ""
        return RestorationResult(fresh_image(out, degraded), trace, mask_arr, tool_calls=tool_calls,
                                 iqa_calls=iqa_calls,
                                 seconds=time.perf_counter() - t0, planner=self.name, judge=judge,
                                 info=info)

    def __repr__(self) -> str:
        return f"TiledPlanner({self.inner!r}, tile={self.tile}, feather={self.feather:g})"


def _frame_region(region: int, tile_masks: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int],
                  index: dict[int, int], kept: list[np.ndarray]) -> int:
    """Index in ``kept`` of the tile's region ``region`` as a full-frame (``shape``) mask, appended on first use
    (``index``: the tile's regions already placed; ``box``: the tile's ``(y0, y1, x0, x1)``)."""
    if region not in index:
        y0, y1, x0, x1 = box
        full = np.zeros(shape, bool)
        full[y0:y1, x0:x1] = tile_masks[region]
        index[region] = len(kept)
        kept.append(full)
    return index[region]


def tiled(planner: Planner, tile: int | None, feather: float | None = None) -> Planner:
    """``planner`` wrapped in a :class:`TiledPlanner` of ``tile`` px blending with ``feather`` px (None: its
    default); ``tile`` None or 0: ``planner`` itself, and then a ``feather`` is an error (nothing to blend)."""
    if tile is None or int(tile) == 0:
        if feather is not None:
            raise ValueError("tile_feather applies to tiled planning only: give tile=N too (or use a planner that "
                             "tiles by default)")
        return planner
    return TiledPlanner(planner, int(tile), feather)


def check_feather(feather: Any) -> float:
    """``feather`` (a tiled planner's blend sigma, px) as a float if it is a finite number >= 0, else
    ``ValueError`` naming ``tile_feather``."""
    if isinstance(feather, bool) or not isinstance(feather, (int, float, np.integer, np.floating)) \
            or not np.isfinite(feather) or feather < 0:
        raise ValueError(f"tile_feather must be a number of px >= 0, got {feather!r}")
    return float(feather)


def feather_option(kwargs: dict[str, Any]) -> float | None:
    """Pop and check the ``tile_feather`` keyword of :func:`policies.make_planner` (px >= 0; None: default)."""
    f = kwargs.pop("tile_feather", None)
    return None if f is None else check_feather(f)


def tile_option(kwargs: dict[str, Any]) -> int | None:
    """Pop and check the ``tile`` keyword of :func:`policies.make_planner` (``None``/0: no tiling)."""
    tile = kwargs.pop("tile", None)
    if tile is None:
        return None
    if (isinstance(tile, bool) or not isinstance(tile, (int, np.integer, float)) or not np.isfinite(tile)
            or int(tile) != tile):
        raise ValueError(f"tile must be a whole number of px (0 = off), got {tile!r}")
    if int(tile) != 0 and int(tile) < MIN_TILE:
        raise ValueError(f"tile must be 0 (off) or >= {MIN_TILE} px, got {tile}")
    return int(tile)
