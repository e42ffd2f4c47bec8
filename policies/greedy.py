"""``greedy`` (Q-Agent-like): each step, try every (region, tool, parameter value) candidate, refine the
best by a short 1-D search and keep it if the judge's gain exceeds a threshold."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ir_env.embeddings import list_embedders
from policies.base import RestorationResult, TraceStep, flag_option, number_option, params_dict, region_areas
from policies.search import Candidate, SearchPlanner, as_offsets, candidate_thetas


class GreedyPlanner(SearchPlanner):
    """Greedy one-step-lookahead search.

    Per step it evaluates ``regions x tools x len(offsets)+1`` candidates (cost linear in that number),
    refines the best with :meth:`SearchPlanner._refine` (<= 4 more calls) and applies it when its judged
    gain exceeds ``threshold``; it stops when nothing gains or after ``max_steps`` kept steps. With
    ``threshold`` >= 0 (the default) the returned image is never judged worse than the input (every kept step
    raised the score).

    Args (besides :class:`SearchPlanner`'s): ``offsets``: normalised offsets of the first parameter
    tried around each tool's default (default (-0.5, 0.5)); ``refine``: run the 1-D refinement;
    ``perceive``: when > 0, a region's candidates are only the tools of the degradation families whose
    perceived probability (:class:`policies.perception.Perception`) is at least this (Q-Agent's
    perceive-then-act; it keeps a no-reference judge from "fixing" what is not degraded); ``embedding``:
    the embedder that perception reads (``handcrafted`` with its linear probe, or ``learned``: the encoder's
    family head).
    """

    name = "greedy"

    def __init__(self, *, offsets: Sequence[float] = (-0.5, 0.5), refine: bool = True, perceive: float = 0.0,
                 embedding: str = "handcrafted", **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.perceive = number_option(perceive, "perceive", 0.0, 1.0)
        if embedding not in list_embedders():  # checked even when perceive=0 leaves it unused
            raise ValueError(f"unknown embedding {embedding!r}; available: {', '.join(list_embedders())}")
        self.perception = None
        if self.perceive > 0:
            from policies.perception import Perception

            self.perception = Perception(embedding)
        self.offsets = as_offsets(offsets)
        self.refine = flag_option(refine, "refine")

    def _plan(self, image: np.ndarray, reference: np.ndarray | None, masks: np.ndarray) -> RestorationResult:
        assert self.judge is not None
        self.tool_calls = 0
        areas = region_areas(masks)
        img = image
        score = self.judge.score(img, reference)
        trace: list[TraceStep] = []
        thetas = {t.name: candidate_thetas(t, self.offsets) for t in self.tools}
        allowed = [{t.name for t in self.tools} for _ in range(len(masks))]
        if self.perception is not None:  # Q-Agent-style: only tools of the families perceived in a region
            for k, ranked in enumerate(self.perception.rank(image, masks)):
                fams = {f for f, p in ranked if p >= self.perceive} or {ranked[0][0]}
                allowed[k] = {t.name for t in self.tools if t.family in fams}
        for _ in range(self.max_steps):
            t0 = time.perf_counter()
            best: Candidate | None = None
            for k in range(len(masks)):
                for tool in [t for t in self.tools if t.name in allowed[k]]:
                    for th in thetas[tool.name]:
                        c = self._try(img, masks, k, tool, th, reference, score)
                        if best is None or c.gain > best.gain:
                            best = c
            if best is None or best.gain <= self.threshold:
                break
            if self.refine:
                best = self._refine(img, masks, best, reference, score)
            phys = best.tool.to_physical(best.theta)
            trace.append(TraceStep(best.region, areas[best.region], best.tool.name, params_dict(phys), score,
                                   best.score, time.perf_counter() - t0))
            img, score = best.image, best.score
        return RestorationResult(img, trace, masks, tool_calls=self.tool_calls, iqa_calls=0, seconds=0.0)
