"""Shared machinery of the search planners (greedy, dfs): trying a candidate step and judging it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from policies.base import Planner, name_list, number_option
from restorers import Tool, apply, fast_tools, get_tool


@dataclass
class Candidate:
    """A tried step: region, tool, normalised params ``theta``, the resulting image and its judged gain."""

    region: int
    tool: Tool
    theta: np.ndarray
    image: np.ndarray
    score: float
    gain: float


def as_offsets(offsets: float | Sequence[float]) -> tuple[float, ...]:
    """The ``offsets`` option of the search planners as a tuple of floats; one number is a one-element tuple
    (``dfs:offsets=0.3`` on the command line)."""
    items = offsets if isinstance(offsets, (list, tuple)) else (offsets,)
    return tuple(number_option(o, "offsets", -2.0, 2.0) for o in items)


def candidate_thetas(tool: Tool, offsets: Sequence[float]) -> list[np.ndarray]:
    """Normalised parameter vectors to try: the tool's defaults, then its first parameter moved by each
    of ``offsets`` (in normalised units, clipped to [-1, 1]); duplicates removed."""
    base = tool.to_normalised(tool.defaults())
    out = [base]
    for off in offsets:
        th = base.copy()
        th[0] = float(np.clip(th[0] + off, -1.0, 1.0))
        if not any(np.allclose(th, o) for o in out):
            out.append(th)
    return out


class SearchPlanner(Planner):
    """A planner that executes candidate tool calls and keeps those its judge likes.

    Args (besides :class:`Planner`'s):
        tools: tool names to consider (default: ``restorers.fast_tools()``, all but the very slow ones).
        threshold: minimum judged gain for a step to be kept (metric units, after sign correction); None
            takes the judge's default (0, or 1.0 dB for the learned ``npsnr`` judge:
            ``policies.judge.DEFAULT_THRESHOLDS``).
    """

    def __init__(self, *, tools: Sequence[str] | None = None, threshold: float | None = None, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        if self.judge is None:  # it keeps a step only when the judge says it gains
            raise ValueError(f"{self.name} needs a judge (judge=npsnr, psnr for the oracle, ...); 'none' is for "
                             "planners that never judge")
        self.tools = [get_tool(t) for t in name_list(tools, "tools")] if tools is not None else fast_tools()
        if not self.tools:
            raise ValueError("no tools to search over")
        if threshold is None:
            threshold = self.judge.default_threshold
        self.threshold = number_option(threshold, "threshold")
        self.tool_calls = 0

    def _try(self, image: np.ndarray, masks: np.ndarray, region: int, tool: Tool, theta: np.ndarray,
             reference: np.ndarray | None, score_before: float) -> Candidate:
        """Run one candidate and judge it (one tool call, one judge call)."""
        assert self.judge is not None
        self.tool_calls += 1
        if self.progress is not None:
            self.progress.update(1)
        out = apply(image, tool, theta, mask=masks[region])
        try:
            s = self.judge.score(out, reference)
        except ValueError:  # the metric is undefined on this output (BRISQUE on a constant image): never keep it
            return Candidate(region, tool, theta, out, math.nan, -math.inf)
        return Candidate(region, tool, theta, out, s, self.judge.gain(score_before, s))

    def _refine(self, image: np.ndarray, masks: np.ndarray, best: Candidate, reference: np.ndarray | None,
                score_before: float, steps: Sequence[float] = (0.25, 0.125)) -> Candidate:
        """Short 1-D search on the best candidate's first parameter: try +-step for shrinking steps."""
        for d in steps:
            for sign in (-1.0, 1.0):
                th = best.theta.copy()
                th[0] = float(np.clip(th[0] + sign * d, -1.0, 1.0))
                if np.allclose(th, best.theta):
                    continue
                c = self._try(image, masks, best.region, best.tool, th, reference, score_before)
                if c.gain > best.gain:
                    best = c
        return best
