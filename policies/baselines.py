"""Planners that do not search: ``random`` and ``fixed``."""

from __future__ import annotations

import time

import numpy as np

from policies.base import Planner, RestorationResult, TraceStep, name_list, params_dict, region_areas
from restorers import apply, fast_tools, get_tool, list_tools

#: The hand-written pipeline of ``fixed``, in physical restoration order (each entry: a degradation kind;
#: the first registered tool that targets it is used with its default parameters).
FIXED_PIPELINE: tuple[str, ...] = ("haze", "rain", "dark", "defocus", "noise", "jpeg")


def first_tool_for(kind: str) -> str:
    """Name of the first registered tool whose ``targets`` include ``kind``."""
    for t in list_tools():
        if kind in t.targets:
            return t.name
    raise ValueError(f"no registered tool targets {kind!r}")


class RandomPlanner(Planner):
    """Random region, random tool, uniform random normalised parameters, for ``max_steps`` steps.

    A lower bound; it never judges (``iqa_calls`` = 0). Same seed, same steps.
    """

    name = "random"
    uses_judge = False

    def _plan(self, image: np.ndarray, reference: np.ndarray | None, masks: np.ndarray) -> RestorationResult:
        rng = np.random.default_rng(self.seed)
        tools = fast_tools()
        areas = region_areas(masks)
        img, trace = image, []
        regions = [k for k in range(len(masks)) if areas[k] > 0]  # a step on an empty region would change nothing
        for _ in range(self.max_steps if regions else 0):
            t0 = time.perf_counter()
            k = regions[int(rng.integers(len(regions)))]
            tool = tools[int(rng.integers(len(tools)))]
            phys = tool.to_physical(rng.uniform(-1.0, 1.0, len(tool.params)))
            img = apply(img, tool, phys, mask=masks[k])
            trace.append(TraceStep(k, areas[k], tool.name, params_dict(phys), float("nan"), float("nan"),
                                   time.perf_counter() - t0))
        return RestorationResult(img, trace, masks, tool_calls=len(trace), iqa_calls=0, seconds=0.0)


class FixedPlanner(Planner):
    """One hand-written pipeline with default parameters (dehaze -> derain -> low light -> deblur ->
    denoise -> JPEG, each step the first registered tool for its kind: ``dcp_dehaze``,
    ``rain_streak_removal``, ``gamma_correct``, ``wiener_gaussian``, ``nlm_denoise``, and ``nlm_denoise``
    again for JPEG, as it is registered for noise and JPEG before ``jpeg_deblock``), what a user does
    without a planner. In ``global`` mode it runs on the whole
    image; in ``spatial`` mode the same pipeline runs region by region (so the result differs only by
    the regions' feathered borders). Never judges. By default every step of the pipeline runs on every region;
    ``max_steps``, when given, caps the steps (the pipeline's order, region by region)."""

    name = "fixed"
    uses_judge = False

    def __init__(self, pipeline: tuple[str, ...] = FIXED_PIPELINE, max_steps: int | None = None,
                 **kwargs) -> None:  # noqa: ANN003
        super().__init__(**({} if max_steps is None else {"max_steps": max_steps}), **kwargs)
        self.pipeline = tuple(first_tool_for(k) for k in name_list(pipeline, "pipeline"))
        #: None: the whole pipeline on every region (the default); a given max_steps caps the kept steps
        self.step_cap = None if max_steps is None else self.max_steps

    def _plan(self, image: np.ndarray, reference: np.ndarray | None, masks: np.ndarray) -> RestorationResult:
        img, trace = image, []
        areas = region_areas(masks)
        for name in self.pipeline:
            tool = get_tool(name)
            for k in (k for k in range(len(masks)) if areas[k] > 0):  # an empty region: nothing to restore
                if self.step_cap is not None and len(trace) >= self.step_cap:
                    break
                t0 = time.perf_counter()
                img = apply(img, tool, tool.defaults(), mask=masks[k])
                trace.append(TraceStep(k, areas[k], name, tool.defaults(), float("nan"), float("nan"),
                                       time.perf_counter() - t0))
        return RestorationResult(img, trace, masks, tool_calls=len(trace), iqa_calls=0, seconds=0.0)
