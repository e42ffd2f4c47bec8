"""The ``Planner`` interface shared by scripted and learned planners, and its result type."""

from __future__ import annotations

import abc
import math
import numbers
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ir_env.quality import metric_info
from ir_env.regions import make_proposer
from policies.judge import Judge
from restorers import apply, check_image, check_mask

#: Modes every planner supports.
MODES = ("spatial", "global")


@dataclass
class TraceStep:
    """One applied tool call that the planner kept.

    ``region`` indexes :attr:`RestorationResult.masks`; ``region_area`` is its fraction of the image;
    ``params`` are physical values; ``quality_before``/``quality_after`` are the judge's scores (in the
    metric's own units and direction; NaN for planners that do not judge); ``seconds`` is wall time of the
    decision and execution of this step (a planner that decides every step in one pass, as ``perceive`` does,
    shares that pass's time evenly among its steps). ``feather``: the Gaussian sigma (px) the step was blended in with
    (None: :data:`restorers.region.FEATHER_SIGMA`, every planner but a tiled one).
    """

    region: int
    region_area: float
    tool: str
    params: dict[str, float]
    quality_before: float
    quality_after: float
    seconds: float
    feather: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form: plain numbers; a quality no judge scored (NaN) becomes None, as JSON has no NaN."""
        return json_safe({"region": self.region, "region_area": self.region_area, "tool": self.tool,
                          "params": {k: float(v) for k, v in self.params.items()},
                          "quality_before": float(self.quality_before), "quality_after": float(self.quality_after),
                          "seconds": float(self.seconds),
                          **({} if self.feather is None else {"feather": float(self.feather)})})


@dataclass
class RestorationResult:
    """What ``Planner.restore`` returns.

    ``image``: float32 HxWx3 in [0, 1]. ``trace``: the kept steps, in order (replaying them on the input
    with :meth:`replay` reproduces ``image`` exactly). ``masks``: (K, H, W) bool regions the trace refers
    to. ``tool_calls``: every tool application including ones a search undid. ``iqa_calls``: judge
    evaluations used to decide. ``seconds``: wall time of ``restore``. ``info``: planner-specific extras
    (e.g. ``budget_bound`` for dfs).
    """

    image: np.ndarray
    trace: list[TraceStep]
    masks: np.ndarray
    tool_calls: int
    iqa_calls: int
    seconds: float
    planner: str = ""
    judge: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """A one-line summary (the printed pixels of a notebook cell helped nobody): planner, size, steps, cost."""
        steps = ", ".join(f"r{s.region}:{s.tool}" for s in self.trace[:6]) + (", ..." if len(self.trace) > 6 else "")
        h, w = self.image.shape[:2]
        return (f"RestorationResult(planner={self.planner!r}, judge={self.judge!r}, image={h}x{w}, "
                f"regions={len(self.masks)}, steps=[{steps}], tool_calls={self.tool_calls}, "
                f"iqa_calls={self.iqa_calls}, seconds={self.seconds:.3f})")

    def replay(self, degraded: np.ndarray) -> np.ndarray:
        """Apply the trace's steps to ``degraded``; equals :attr:`image` for the same input."""
        img = np.array(check_image(degraded), dtype=np.float32)  # a new array, as restore's image
        for st in self.trace:
            img = apply(img, st.tool, st.params, mask=self.masks[st.region], feather=st.feather)
        return img

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly summary (no pixel data); NaN / infinite numbers (the quality of a step no judge
        scored) become None, as JSON has no NaN."""
        return json_safe({"planner": self.planner, "judge": self.judge, "tool_calls": self.tool_calls,
                          "iqa_calls": self.iqa_calls, "seconds": self.seconds, "num_regions": int(len(self.masks)),
                          "region_areas": [float(m.mean()) for m in self.masks],
                          "trace": [s.as_dict() for s in self.trace], "info": self.info})


def json_safe(value: Any) -> Any:
    """``value`` with every NaN / infinite float (Python or numpy) replaced by None, recursively through dicts,
    lists and tuples (tuples become lists); anything else unchanged."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def whole_option(value: Any, name: str, low: int = 1) -> int:
    """``value`` as an int when it is a whole number >= ``low`` (2.5 is not truncated, True is not 1); else
    ``ValueError`` naming the option ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or float(value) != int(value) or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


#: Words a command-line spec (``greedy:refine=false``) may give for a yes/no option, case-insensitive.
FLAG_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def flag_option(value: Any, name: str) -> bool:
    """``value`` as a bool: True/False, 1/0, or one of :data:`FLAG_WORDS` (``"false"`` is False, not a non-empty
    string's True); else ``ValueError`` naming the option ``name``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in FLAG_WORDS:
        return FLAG_WORDS[value.strip().lower()]
    raise ValueError(f"{name} must be true or false, got {value!r}")


def number_option(value: Any, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a float when it is a finite number in [low, high]; else ``ValueError`` naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or not low <= float(value) <= high:
        span = "" if (low, high) == (-math.inf, math.inf) else (
            f" >= {low:g}" if high == math.inf else f" in [{low:g}, {high:g}]")
        raise ValueError(f"{name} must be a finite number{span}, got {value!r}")
    return float(value)


def name_list(value: Any, name: str) -> list[str]:
    """A list of names from a list/tuple of strings, one string, or one string of names joined by ``/`` or ``,``
    (the command-line form ``tools=tv_denoise/gamma_correct``); ``ValueError`` naming the option otherwise."""
    if isinstance(value, str):
        items = [v.strip() for v in value.replace(",", "/").split("/")]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise ValueError(f"{name} must be a list of names (or one name, or names joined by '/'), got {value!r}")
    if not items or not all(items):
        raise ValueError(f"{name} must name at least one item, got {value!r}")
    return items


def check_max_steps(max_steps: Any) -> int:
    """``max_steps`` as an int; ``ValueError`` unless it is a whole number >= 1 (2.5 is not truncated)."""
    return whole_option(max_steps, "max_steps", 1)


def fresh_image(image: np.ndarray, degraded: Any) -> np.ndarray:
    """``image`` itself, or a copy when it shares memory with the caller's ``degraded`` or is read-only: a result's
    image is always a new, writable array (also when no step was kept)."""
    if np.shares_memory(image, np.asarray(degraded)) or not image.flags.writeable:
        return image.copy()
    return image


def _inner_vector(env: Any) -> Any:
    """The vector env under Gymnasium vector wrappers (``RecordEpisodeStatistics`` on a ``SyncVectorEnv`` does not
    pass ``envs`` through); any other object as it is."""
    import gymnasium

    while isinstance(env, gymnasium.vector.VectorWrapper):
        env = env.env
    return env


#: Every live planner, so a forked child can give each a fresh restore lock (below).
_PLANNERS: weakref.WeakSet = weakref.WeakSet()


def _fresh_locks_after_fork() -> None:
    """In a forked child: a planner whose ``restore`` ran in another thread of the parent at the fork would keep a
    lock no thread of the child can release; its calls in the child would hang."""
    for planner in list(_PLANNERS):
        planner._restore_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_locks_after_fork)


class Planner(abc.ABC):
    """Restores an image by choosing (region, tool, parameters) steps.

    Args:
        mode: ``"spatial"`` (regions from ``region_proposer``) or ``"global"`` (one region = the image).
        region_proposer: proposer name used in spatial mode (see ``ir_env.regions``).
        max_regions: at most this many regions in spatial mode.
        judge: IQA metric that scores candidate images (``None`` for planners that never judge). A
            full-reference judge (``psnr``, ``ssim``) needs ``reference`` in :meth:`restore` and is an
            oracle (an upper bound), labelled ``oracle:<metric>``.
        max_steps: at most this many kept steps per image (a planner :func:`policies.make_planner` tiles plans each
            tile as an image of its own, so the cap holds per tile).
        seed: seed for any randomness.
    """

    name: str = ""
    uses_judge: bool = True
    #: Smallest image side (px) the planner restores (``restorers.check_image``'s 8; the env-driven learned planners:
    #: ``ir_env.env.MIN_EPISODE_SIDE``, 11).
    min_side: int = 8
    #: A tqdm-like bar (``update(n)``, ``set_postfix_str(s)``) the planner ticks once per tool call it tries
    #: (searches) and a tiled planner labels with the tile it is on, or None (the default: silent). Set it on a whole
    #: wrapper chain with :func:`show_progress`; the CLI's ``restore`` does.
    progress: Any = None

    def __init__(self, mode: str = "spatial", region_proposer: str = "degradation-clusters", max_regions: int = 4,
                 judge: str | None = "npsnr", max_steps: int = 12, seed: int = 0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        check_max_steps(max_steps)
        whole_option(max_regions, "max_regions", 1)
        whole_option(seed, "seed", 0)
        self.mode = mode
        self.region_proposer = region_proposer if mode == "spatial" else "whole"
        self.max_regions = int(max_regions) if mode == "spatial" else 1
        self.proposer = make_proposer(self.region_proposer, max_regions=self.max_regions, seed=seed)
        if isinstance(judge, str) and judge not in ("", "none"):
            metric_info(judge)  # an unknown name is an error even for a planner that never judges
        self.judge = Judge(judge) if (judge and judge != "none" and self.uses_judge) else None
        self.max_steps = int(max_steps)
        self.seed = int(seed)
        self._env: Any = None
        self._plans: dict[int, list[TraceStep]] = {}
        self._restore_lock = threading.RLock()
        _PLANNERS.add(self)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_restore_lock", None)  # locks do not pickle; a copy gets its own
        state.pop("progress", None)  # nor do progress bars: a copy is silent
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._restore_lock = threading.RLock()
        _PLANNERS.add(self)

    # ---------------------------------------------------------------- restore
    def restore(self, degraded: np.ndarray, reference: np.ndarray | None = None,
                masks: np.ndarray | None = None) -> RestorationResult:
        """Restore ``degraded`` (float32 HxWx3 in [0, 1]). ``reference`` (the clean image) is only read by
        a full-reference judge. ``masks`` (K,H,W bool) overrides the proposer's regions. The result's ``image``
        is a new array (never ``degraded`` itself). Calls on one planner object from several threads run one
        after another (a lock: the learned planners step one internal env); for parallel restores, build one
        planner per thread or process."""
        with self._restore_lock:  # one restore at a time per planner object (the learned ones step one env)
            return self._restore(degraded, reference, masks)

    def _restore(self, degraded: np.ndarray, reference: np.ndarray | None, masks: np.ndarray | None
                 ) -> RestorationResult:
        t0 = time.perf_counter()
        img, ref = check_inputs(degraded, reference)
        check_min_side(self, img)
        if self.judge is not None and self.judge.needs_reference and ref is None:
            raise ValueError(f"judge {self.judge.metric!r} is full-reference: pass reference= (the clean image)")
        if masks is None:
            masks = self.proposer.propose(img)
        else:
            masks = check_region_masks(masks, img.shape[:2])
        if self.judge is not None:
            self.judge.reset_count()
        res = self._plan(img, ref, masks)
        res.image = fresh_image(res.image, degraded)  # always a new, writable array, also when no step was kept
        res.seconds = time.perf_counter() - t0
        res.planner = self.name
        res.judge = self.judge.label if self.judge is not None else ""
        if self.judge is not None:
            res.iqa_calls = self.judge.calls
        return res

    @abc.abstractmethod
    def _plan(self, image: np.ndarray, reference: np.ndarray | None, masks: np.ndarray) -> RestorationResult:
        """Plan and execute on a validated image with fixed regions."""

    # ---------------------------------------------------------------- SB3-style predict
    def attach(self, env: Any) -> Planner:
        """Bind to a SpatialIR env (or a wrapper, or a vector env holding them in this process: Gymnasium's
        ``SyncVectorEnv``, SB3's ``DummyVecEnv``) so :meth:`predict` can read the current image and regions. Returns
        ``self``. ``ValueError`` for a vector env whose envs live in other processes (``AsyncVectorEnv``,
        ``SubprocVecEnv``: their images cannot be read from here) or an object that is not a SpatialIR env."""
        if hasattr(env, "num_envs") and not hasattr(_inner_vector(env), "envs"):
            raise ValueError(f"cannot attach a planner to {type(env).__name__}: its envs run in other processes, so "
                             "the planner cannot read their images; use gymnasium.vector.SyncVectorEnv or SB3's "
                             "DummyVecEnv")
        inner = _inner_vector(env)
        for e in (list(inner.envs) if hasattr(inner, "envs") else [env]):
            if not hasattr(getattr(e, "unwrapped", None), "max_steps") or not hasattr(e.unwrapped, "state"):
                raise ValueError(f"attach() needs a SpatialIR env (gymnasium.make('SpatialIR-v1', ...) or a wrapper "
                                 f"of one), got {type(getattr(e, 'unwrapped', e)).__name__}")
        self._env = env
        self._plans = {}
        return self

    def _env_list(self) -> list[Any]:
        if self._env is None:
            raise RuntimeError("scripted planners need attach(env) before predict(): they read the env's image")
        inner = _inner_vector(self._env)
        return list(inner.envs) if hasattr(inner, "envs") else [self._env]

    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray | dict[str, Any], Any]:
        """Stable-Baselines3-compatible ``predict``: the next action for each attached env.

        On an episode's first step the planner runs :meth:`restore` on the env's degraded image with the
        env's regions (and its clean image when the judge is an oracle) and then replays that plan one
        step per call, ending with STOP. Actions are encoded for the attached env's action space (native
        Dict, :class:`~ir_env.wrappers.BoxAction` or :class:`~ir_env.wrappers.MultiDiscreteAction`), one per
        env of an attached VecEnv, or batched (one row) when a single attached env is driven through a VecEnv,
        as ``evaluate_policy`` does with a plain env. Batched Dict actions are a dict of stacked arrays for a
        Gymnasium vector env and a list of per-env dicts for an SB3 VecEnv (what each steps its envs with).
        """
        from policies.actions import encode_action

        envs = self._env_list()
        actions = []
        for i, env in enumerate(envs):
            base = env.unwrapped
            s = base.state
            if s is None:
                raise RuntimeError("the attached env has not been reset")
            if s.steps == 0 or i not in self._plans or (episode_start is not None and bool(np.ravel(episode_start)[i])):
                idx = np.flatnonzero(s.valid)
                res = self.restore(s.image, reference=s.scene.clean if (self.judge and self.judge.needs_reference)
                                   else None, masks=s.masks[idx])
                self._plans[i] = [TraceStep(int(idx[st.region]), st.region_area, st.tool, st.params,
                                            st.quality_before, st.quality_after, st.seconds) for st in res.trace]
            plan = self._plans[i]
            step = plan.pop(0) if plan and s.steps < base.max_steps else None
            actions.append(encode_action(env, step))
        batched = isinstance(observation, Mapping) and np.ndim(observation.get("valid")) == 2  # from a VecEnv
        if len(envs) == 1 and not hasattr(_inner_vector(self._env), "envs") and not batched:
            return actions[0], state
        if isinstance(actions[0], dict):
            import gymnasium

            if isinstance(self._env, gymnasium.vector.VectorEnv):  # it splits a dict of batched arrays itself
                return {k: np.stack([a[k] for a in actions]) for k in actions[0]}, state
            return actions, state  # SB3's DummyVecEnv (evaluate_policy's too) steps env i with actions[i]
        return np.stack(actions), state

    def __repr__(self) -> str:
        j = self.judge.label if self.judge else None
        return f"{type(self).__name__}(mode={self.mode!r}, regions={self.region_proposer!r}, judge={j!r})"


class PlannerWrapper(Planner):
    """Base of planners that wrap another (:class:`policies.gate.PerceptionGate`,
    :class:`policies.tiled.TiledPlanner`): they take the inner planner's name, judge, regions, step budget and
    seed, override ``_restore`` (which :meth:`Planner.restore` runs under the wrapper's own lock, so one wrapper's
    calls from several threads run one after another too), and hand any other attribute (``model``, ``env``,
    ``table`` ...) to it.

    Args:
        inner: the wrapped planner.
        mode: the wrapper's ``mode`` (default: the inner planner's).
    """

    def __init__(self, inner: Planner, mode: str | None = None) -> None:
        if not isinstance(inner, Planner):
            raise TypeError(f"inner must be a Planner, got {type(inner).__name__}")
        # the base's cheap "whole" proposer is never used: the inner planner proposes the regions
        super().__init__(mode="global", judge=None, max_steps=inner.max_steps, seed=inner.seed)
        self.inner = inner
        self.name, self.uses_judge, self.judge = inner.name, inner.uses_judge, inner.judge
        self.mode = inner.mode if mode is None else mode
        self.region_proposer, self.max_regions, self.proposer = inner.region_proposer, inner.max_regions, inner.proposer
        self.min_side = inner.min_side

    def __getattr__(self, name: str) -> Any:
        """Anything else (``model``, ``env``, ``table`` ...) is the wrapped planner's."""
        if name == "inner":  # not set yet (during __init__): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _plan(self, image: np.ndarray, reference: np.ndarray | None, masks: np.ndarray) -> RestorationResult:
        raise NotImplementedError(f"{type(self).__name__} overrides _restore()")  # pragma: no cover


def check_region_masks(masks: Any, shape: tuple[int, int]) -> np.ndarray:
    """Given regions as a (K, H, W) bool array with K >= 1 (each checked by ``restorers.check_mask``); ``ValueError``
    naming the problem (one (H, W) mask: pass ``mask[None]``); a ``UserWarning`` when every mask is empty."""
    arr = np.asarray(masks)
    if arr.ndim == 2 and arr.shape == tuple(shape):
        raise ValueError(f"masks must be (K, H, W) region masks, got one {arr.shape} mask: pass mask[None]")
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise ValueError(f"masks must be (K, H, W) with K >= 1 regions of the image's {tuple(shape)}, "
                         f"got shape {arr.shape}")
    out = np.stack([check_mask(m, shape) for m in arr])
    if not out.any():  # legal (nothing to do), but most likely a thresholding slip in the caller's segmentation
        warnings.warn(f"every one of the {len(out)} given region masks is empty: the image is returned unchanged",
                      UserWarning, stacklevel=_caller_outside_policies())
    return out


def show_progress(planner: Planner, bar: Any) -> None:
    """Set :attr:`Planner.progress` to ``bar`` (None: silent again) on ``planner`` and every planner it wraps."""
    p: Any = planner
    while isinstance(p, Planner):
        p.progress = bar
        p = p.__dict__.get("inner")


def _caller_outside_policies() -> int:
    """``warnings.warn``'s ``stacklevel`` (counted from the function that calls this one) of the first caller outside
    the ``policies`` package: the user's ``restore`` call, however many wrappers (gate, tiles) it went through."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(here + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def check_min_side(planner: Planner, image: np.ndarray) -> None:
    """``ValueError`` naming the planner when ``image`` (HxWx3) has a side below its :attr:`Planner.min_side`."""
    if min(image.shape[:2]) < planner.min_side:
        raise ValueError(f"planner {planner.name!r} needs images of at least {planner.min_side} px a side, got "
                         f"{image.shape[1]}x{image.shape[0]} px (width x height)")


def check_inputs(degraded: np.ndarray, reference: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The checked degraded image and reference (float32 HxWx3 in [0, 1]; ``ValueError`` naming the problem,
    also when the reference's shape differs)."""
    img = check_image(degraded, name="degraded")
    ref = None if reference is None else check_image(reference, name="reference")
    if ref is not None and ref.shape != img.shape:
        raise ValueError(f"reference shape {ref.shape} differs from the degraded image's {img.shape}")
    return img, ref


def region_areas(masks: np.ndarray) -> list[float]:
    """Area fraction of each mask."""
    return [float(m.mean()) for m in masks]


def params_dict(values: Mapping[str, float]) -> dict[str, float]:
    """Plain-float copy of a physical parameter dict."""
    return {k: float(v) for k, v in values.items()}


def ran_params(tool: str, values: Mapping[str, float]) -> dict[str, float]:
    """The physical parameters tool ``tool`` runs with for ``values`` (plain floats; missing names at their default,
    whole-number parameters rounded as the tool rounds them): what a trace records. ``ValueError`` for an unknown
    name or a value out of range."""
    from restorers import get_tool

    return params_dict(get_tool(tool).validate(values))
