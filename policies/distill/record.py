"""Recording teacher decisions on the SpatialIR env (the rows of :mod:`policies.distill.dataset`).

The teacher is a search planner with an oracle judge by default:

- ``greedy``: every state is labelled by the greedy planner's own first step from that state
  (:func:`policies.ppo.bc.oracle_label`: every tool on every valid region with its candidate parameters,
  the best refined); a :class:`RecordingGreedy` keeps every candidate it tries, which gives the dense
  labels (best gain and best parameters of every (region, tool) pair) at no extra tool call. Re-planning
  from each state is exactly what greedy does, so the recorded episode is the greedy restoration.
- ``dfs``: the planner restores the scene once (with the env's regions) and its plan is replayed one step
  per state; with ``dense=True`` a :class:`RecordingGreedy` labeller adds the dense labels (one greedy
  sweep per state, extra tool calls).

:func:`record_episode` returns the rows of one episode; :func:`make_teacher` builds a teacher for an env.
DAgger (:func:`record_episode` with ``act=``): the student acts, the teacher labels the states it visits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ir_env.quality import get_metric
from policies.greedy import GreedyPlanner
from policies.search import Candidate
from restorers import get_tool

#: Teacher planners :func:`make_teacher` accepts.
TEACHERS = ("greedy", "dfs")


class RecordingGreedy(GreedyPlanner):
    """The greedy planner, keeping every candidate it tries in :attr:`tried` (cleared by the caller)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tried: list[Candidate] = []

    def _plan(self, image: np.ndarray, reference: np.ndarray | None, masks: np.ndarray) -> Any:
        self.tried = []  # a whole restoration: keep only this one's candidates
        return super()._plan(image, reference, masks)

    def _try(self, image: np.ndarray, masks: np.ndarray, region: int, tool: Any, theta: np.ndarray,
             reference: np.ndarray | None, score_before: float) -> Candidate:
        c = super()._try(image, masks, region, tool, theta, reference, score_before)
        self.tried.append(Candidate(c.region, c.tool, c.theta, c.image[:0], c.score, c.gain))  # no pixels kept
        return c


def make_teacher(env: Any, name: str = "greedy", judge: str = "psnr", offsets: Sequence[float] = (-0.5, 0.5),
                 seed: int = 0, **kwargs: Any) -> Any:
    """A teacher for ``env`` (a ``BoxAction``-wrapped SpatialIR env): same tools, ``max_steps`` = the env's
    budget, ``judge`` (``psnr``: an oracle that sees the clean image). ``name``: ``greedy`` (a
    :class:`RecordingGreedy`) or ``dfs`` (extra ``kwargs`` go to it). The planner is attached to ``env``."""
    from policies.registry import make_planner

    if name not in TEACHERS:
        raise ValueError(f"teacher must be one of {TEACHERS}, got {name!r}")
    base = env.unwrapped
    common = {"judge": judge, "max_steps": int(base.max_steps), "tools": list(base.tool_names), "seed": seed,
              "offsets": tuple(offsets), **kwargs}
    planner = RecordingGreedy(**common) if name == "greedy" else make_planner(name, **common)
    return planner.attach(env)


def label_state(env: Any, labeller: RecordingGreedy) -> dict[str, Any]:
    """The greedy decision for the env's CURRENT state and the dense labels.

    Returns ``action`` (the Box action ``[joint, θ]``), ``gains`` (K*T + 1,) and ``best_params``
    (K, T, P) as described in :mod:`policies.distill.dataset`.
    """
    from policies.ppo.bc import oracle_label

    base = env.unwrapped
    k_slots, t_count, p = base.max_regions, base.num_tools, base.num_params
    labeller.tried = []
    action, gains = oracle_label(env, labeller)
    index = {name: i for i, name in enumerate(base.tool_names)}
    best = np.full((k_slots, t_count, p), np.nan, np.float32)
    best_gain = np.full((k_slots, t_count), -np.inf)
    for c in labeller.tried:
        ti = index[c.tool.name]
        if c.gain > best_gain[c.region, ti]:
            best_gain[c.region, ti] = c.gain
            best[c.region, ti, :] = np.nan
            best[c.region, ti, : len(c.theta)] = c.theta
    labeller.tried = []
    return {"action": np.asarray(action, np.float32), "gains": np.asarray(gains, np.float32), "best_params": best}


def _no_labels(env: Any) -> dict[str, np.ndarray]:
    base = env.unwrapped
    k, t, p = base.max_regions, base.num_tools, base.num_params
    return {"gains": np.full(k * t + 1, np.nan, np.float32), "best_params": np.full((k, t, p), np.nan, np.float32)}


def decode_choice(env: Any, action: np.ndarray) -> dict[str, Any]:
    """Joint index, region (-1 STOP), tool index (T STOP), normalised and physical parameters of a Box action."""
    base = env.unwrapped
    t_count, p = base.num_tools, base.num_params
    joint = int(np.clip(np.rint(action[0]), 0, base.max_regions * t_count))
    norm = np.zeros(p, np.float32)
    phys = np.full(p, np.nan, np.float32)
    if joint == base.max_regions * t_count:
        return {"joint": joint, "region": -1, "tool": t_count, "params_norm": norm, "params_phys": phys}
    region, tool_idx = divmod(joint, t_count)
    tool = get_tool(base.tool_names[tool_idx])
    n = len(tool.params)
    norm[:n] = np.clip(action[1:1 + n], -1.0, 1.0)
    if n:
        phys[:n] = list(tool.to_physical(norm[:n]).values())
    return {"joint": joint, "region": region, "tool": tool_idx, "params_norm": norm, "params_phys": phys}


def record_episode(env: Any, teacher: Any, seed: int, scene: int, labeller: RecordingGreedy | None = None,
                   act: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None) -> tuple[list[dict], dict]:
    """One episode (``env.reset(seed=seed)``), one row per decision (fields of the dataset module).

    ``teacher``: from :func:`make_teacher`. A :class:`RecordingGreedy` teacher labels every state itself;
    another planner's plan is replayed and ``labeller`` (optional) adds the dense labels. ``act``: when
    given (DAgger), the env is stepped with ``act(obs)`` instead of the teacher's action; the rows still
    hold the teacher's decision for each visited state. Returns the rows and the final step's ``info``.
    """
    base = env.unwrapped
    obs, _ = env.reset(seed=int(seed))
    greedy_teacher = isinstance(teacher, RecordingGreedy)
    if not greedy_teacher:
        if act is not None:
            raise ValueError("DAgger needs a greedy teacher (it must label states it did not plan)")
        teacher.attach(env)
    judge, psnr = teacher.judge, get_metric("psnr")
    rows: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    done = False
    while not done:
        s = base.state
        ref = s.scene.clean if judge.needs_reference else None
        if greedy_teacher:
            lab = label_state(env, teacher)
            action = lab["action"]
        else:
            action = np.asarray(teacher.predict(obs)[0], np.float32)
            lab = label_state(env, labeller) if labeller is not None else _no_labels(env)
        row = {k: np.asarray(obs[k], np.float32).copy() for k in ("regions", "valid", "history", "steps_left")}
        row.update(decode_choice(env, action), scene=scene, seed=seed, step=s.steps, gains=lab["gains"],
                   best_params=lab["best_params"], quality_before=judge.score(s.image, ref),
                   psnr_before=psnr.score(s.image, reference=s.scene.clean))
        obs, _, terminated, truncated, info = env.step(action if act is None else act(obs))
        s = base.state
        row["quality_after"] = judge.score(s.image, ref)
        row["psnr_after"] = psnr.score(s.image, reference=s.scene.clean)
        rows.append(row)
        done = bool(terminated or truncated)
    final = float(info.get("psnr_out", rows[-1]["psnr_after"]))
    for r in rows:
        r["return_to_go"] = final - r["psnr_before"]
    return rows, info
