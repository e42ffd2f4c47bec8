"""Encode a planner's step as an action of whatever action space the attached env exposes."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from restorers import get_tool


def encode_action(env: Any, step: Any | None) -> dict[str, Any] | np.ndarray:
    """``step`` (a ``TraceStep`` with region, tool, physical params; ``None`` = STOP) -> an action for
    ``env.action_space``: the native ``Dict``, the ``BoxAction`` vector ``[joint, θ]`` or the
    ``MultiDiscreteAction`` vector (parameters snapped to the nearest bin)."""
    base = env.unwrapped
    t, p = base.num_tools, base.num_params
    theta = np.zeros(p, np.float32)
    if step is None:
        region, tool_idx = 0, t
    else:
        if step.tool not in base.tool_names:
            raise ValueError(f"tool {step.tool!r} is not offered by this env")
        region, tool_idx = int(step.region), base.tool_names.index(step.tool)
        norm = get_tool(step.tool).to_normalised(step.params)
        theta[: norm.size] = norm
    joint = base.max_regions * t if tool_idx == t else region * t + tool_idx
    space = env.action_space
    if isinstance(space, spaces.Dict):
        return {"region": region, "tool": tool_idx, "params": theta}
    if isinstance(space, spaces.Box):
        return np.concatenate([[float(joint)], theta]).astype(np.float32)
    if isinstance(space, spaces.MultiDiscrete):
        bins = int(space.nvec[1]) if len(space.nvec) > 1 else 2
        levels = np.linspace(-1.0, 1.0, bins)
        idx = np.abs(theta[:, None] - levels[None, :]).argmin(axis=1)
        return np.concatenate([[joint], idx]).astype(np.int64)
    raise ValueError(f"cannot encode actions for action space {space}")
