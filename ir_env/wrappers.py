"""Action encodings that stable-baselines3 can hold (episode statistics: gymnasium's ``RecordEpisodeStatistics``).

- :class:`BoxAction`: ``Box([0, -1, ...], [K*T, 1, ...])``: ``[joint_index, θ1..θP]``; the joint index
  (rounded) is ``k * T + t`` for tool ``t`` on region ``k`` and ``K*T`` is STOP. A hybrid policy samples
  the index from a categorical and θ from a Gaussian (see ``policies.ppo``).
- :class:`MultiDiscreteAction`: ``MultiDiscrete([K*T + 1, B, ..., B])``: the joint (region, tool) index
  and each parameter discretised into ``B`` bins spread evenly over [-1, 1]. ``action_masks()`` returns
  the concatenated per-dimension masks that sb3-contrib's MaskablePPO expects.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


def _base(env: gym.Env) -> Any:
    """The unwrapped SpatialIR env (it owns the action layout)."""
    return env.unwrapped


def joint_to_action(env: gym.Env, joint: int, theta: np.ndarray) -> dict[str, Any]:
    """Joint (region, tool) index + normalised params -> native Dict action of the unwrapped env."""
    base = _base(env)
    t, p = base.num_tools, base.num_params
    theta = np.asarray(theta, dtype=np.float32).reshape(-1)[:p]
    if joint == base.max_regions * t:
        return {"region": 0, "tool": t, "params": np.zeros(p, np.float32)}
    return {"region": int(joint // t), "tool": int(joint % t), "params": np.clip(theta, -1, 1).astype(np.float32)}


def action_to_joint(env: gym.Env, action: dict[str, Any]) -> int:
    """Native Dict action -> joint index (STOP -> K*T)."""
    base = _base(env)
    if int(action["tool"]) == base.num_tools:
        return base.max_regions * base.num_tools
    return int(action["region"]) * base.num_tools + int(action["tool"])


class BoxAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Encode the hybrid action as one ``Box``: ``[joint_index, θ1..θP]`` (see module docstring)."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)  # so gymnasium can re-create the wrapper (check_env)
        super().__init__(env)
        base = _base(env)
        self.num_joint = base.max_regions * base.num_tools + 1
        p = base.num_params
        low = np.concatenate([[0.0], -np.ones(p)]).astype(np.float32)
        high = np.concatenate([[self.num_joint - 1.0], np.ones(p)]).astype(np.float32)
        self.action_space = spaces.Box(low, high, dtype=np.float32)

    def action(self, action: np.ndarray) -> dict[str, Any]:
        """Box vector -> native action; raises ``ValueError`` for a wrong shape (a leading batch axis of size 1
        is accepted), NaN or out-of-box values."""
        a = _flat_action(action, self.action_space.shape, "Box", "[joint index, θ1..θP]")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"Box action contains NaN or inf: {a.tolist()}")
        lo, hi = self.action_space.low, self.action_space.high
        if np.any(a < lo - 1e-6) or np.any(a > hi + 1e-6):
            raise ValueError(f"Box action outside its bounds [{lo.tolist()}, {hi.tolist()}]: {a.tolist()}")
        joint = int(np.clip(np.rint(a[0]), 0, self.num_joint - 1))
        return joint_to_action(self.env, joint, a[1:])

    def action_masks(self) -> np.ndarray:
        """Joint-index mask (length K*T + 1), as the unwrapped env gives it."""
        return _base(self.env).action_masks()


def _flat_action(action: Any, shape: tuple[int, ...], kind: str, layout: str) -> np.ndarray:
    """``action`` as a flat float64 vector of ``shape`` (a leading batch axis of size 1 dropped); ``ValueError``
    naming the wrapper's action layout for a Dict action, a non-numeric one or another shape."""
    if isinstance(action, dict):
        raise ValueError(f"a {kind}Action env takes a {kind} vector {layout}, not a Dict action; step the "
                         "unwrapped env (env.unwrapped) with Dict actions")
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{kind} action must be a numeric vector {layout} of shape {shape}, got {action!r}") from None
    if a.ndim == len(shape) + 1 and a.shape[0] == 1:
        a = a[0]
    if a.shape != shape:
        raise ValueError(f"{kind} action must have shape {shape} ({layout}), got {a.shape}")
    return a


class MultiDiscreteAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Encode the action as ``MultiDiscrete([K*T + 1] + [bins] * P)``; params at ``linspace(-1, 1, bins)``."""

    def __init__(self, env: gym.Env, bins: int = 5) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, bins=bins)
        super().__init__(env)
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or int(bins) < 2:
            raise ValueError(f"bins must be a whole number >= 2, got {bins!r}")
        base = _base(env)
        self.bins = int(bins)
        self.num_joint = base.max_regions * base.num_tools + 1
        self.levels = np.linspace(-1.0, 1.0, self.bins).astype(np.float32)
        self.action_space = spaces.MultiDiscrete([self.num_joint] + [self.bins] * base.num_params)

    def action(self, action: np.ndarray) -> dict[str, Any]:
        """MultiDiscrete vector -> native action; raises ``ValueError`` for a wrong shape (a leading batch axis of
        size 1 is accepted), non-integers or values outside the space."""
        a = _flat_action(action, self.action_space.shape, "MultiDiscrete", "[joint index, bin1..binP]")
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"MultiDiscrete action must hold whole numbers, got {a.tolist()}")
        ai = a.astype(np.int64)
        if np.any(ai < 0) or np.any(ai >= self.action_space.nvec):
            raise ValueError(f"MultiDiscrete action {a.tolist()} outside nvec {self.action_space.nvec.tolist()}")
        return joint_to_action(self.env, int(ai[0]), self.levels[ai[1:]])

    def action_masks(self) -> np.ndarray:
        """Concatenated per-dimension masks for MaskablePPO: joint mask, then every bin allowed."""
        joint = _base(self.env).action_masks()
        rest = np.ones(self.bins * (len(self.action_space.nvec) - 1), dtype=bool)
        return np.concatenate([joint, rest])
