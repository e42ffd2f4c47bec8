"""``PPOPlanner`` (``make_planner("ppo")``) and ``MaskablePPOPlanner`` (``make_planner("maskable_ppo")``):
restore an image with a trained PPO policy, one deterministic (region, tool, params) step at a time.

The policy must see exactly what it saw in training, so the planner rebuilds the training env from the
``config.yml`` saved next to the model (region proposer and its kwargs, ``max_regions``, embedding, tools,
``max_steps``) and feeds it the image through ``reset(options={"scene": ...})``. It never calls an IQA
metric to decide (``iqa_calls == 0``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ir_env.env import MIN_EPISODE_SIDE
from ir_env.recipes import Scene
from policies.base import Planner, RestorationResult, TraceStep, check_max_steps, params_dict, whole_option

#: Where shipped models live: ``models/<algo>_<mode>/model.zip`` with its ``config.yml``.
MODELS_DIR = Path(__file__).resolve().parent / "models"


def _load_model(cls: Any, model_path: Path, device: str) -> Any:
    """``cls.load(model_path)``, or one ``ValueError`` naming the file when it is not a readable
    stable-baselines3 model (a damaged or truncated zip, missing members, foreign weights)."""
    import pickle
    import zipfile

    from ir_env.torchdefaults import float32_default

    try:
        with float32_default():  # float32 parameters whatever the caller's default dtype
            return cls.load(str(model_path), device=device)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, AssertionError, KeyError, RuntimeError,
            ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{model_path} is damaged or not a stable-baselines3 {cls.__name__} model "
                         f"({type(exc).__name__}: {first})") from None


def _load_obs_normalizer(cfg: dict[str, Any], model_path: Path) -> Any:
    """The ``VecNormalize`` saved beside the model (``config.yml`` ``obs_normalization``) with its statistics frozen,
    or None; ``ValueError`` naming the file when it is missing or unreadable (the policy would read raw
    observations it was never trained on)."""
    name = cfg.get("obs_normalization")
    if not name:
        return None
    import pickle

    path = model_path.parent / str(name)
    if not path.is_file():
        raise ValueError(f"{model_path} was trained on normalised observations, but its statistics file {path} is "
                         "missing (save_model writes it beside the model)")
    try:
        with open(path, "rb") as f:
            vn = pickle.load(f)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing here
        raise ValueError(f"{path} is not a readable VecNormalize statistics file ({type(exc).__name__}: {exc})"
                         ) from None
    from stable_baselines3.common.vec_env import VecNormalize

    if not isinstance(vn, VecNormalize):
        raise ValueError(f"{path} holds a {type(vn).__name__}, not VecNormalize statistics")
    vn.training = False  # frozen: deployment must not move the statistics
    return vn


def _check_observations(model: Any, env: Any, model_path: Path) -> None:
    """``ValueError`` when the policy in ``model_path`` reads observations of other shapes than the env its
    ``config.yml`` describes (a model.zip copied beside another run's config.yml); else the first
    ``restore`` would fail deep inside stable-baselines3."""
    want, got = env.observation_space, model.observation_space
    keys = getattr(want, "spaces", {"": want})
    have = getattr(got, "spaces", {"": got})
    shapes = {k: tuple(v.shape) for k, v in keys.items()}
    model_shapes = {k: tuple(v.shape) for k, v in have.items()}
    if shapes != model_shapes:
        raise ValueError(f"{model_path}'s policy reads observations {model_shapes}, but the env its config.yml "
                         f"describes gives {shapes}: the model and {model_path.parent / 'config.yml'} do not "
                         "belong together")


class _FixedMasks:
    """A stand-in region proposer that returns given masks (so the env observes the planner's regions)."""

    def __init__(self, masks: np.ndarray) -> None:
        self.masks = masks

    def propose(self, image: np.ndarray, scene: Any = None) -> np.ndarray:
        return self.masks


def default_model_path(algo: str, mode: str) -> Path:
    """``policies/ppo/models/<ppo|maskable_ppo>_<spatial|global>/model.zip``."""
    prefix = "ppo" if algo == "hybrid" else "maskable_ppo"
    return MODELS_DIR / f"{prefix}_{mode}" / "model.zip"


def deploy_tile(cfg: dict[str, Any], model_path: Path) -> int | None:
    """``deploy.tile`` of a model's ``config.yml``: the tile side (px, >= 32) :func:`policies.make_planner` runs
    the planner at when no ``tile=`` is given (the crop size it was trained on), or None; ``ValueError`` naming
    the file for another value."""
    from policies.tiled import MIN_TILE

    tile = (cfg.get("deploy") or {}).get("tile")
    if tile is None:
        return None
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < MIN_TILE:
        raise ValueError(f"{model_path.parent / 'config.yml'}: deploy.tile must be a whole number of px >= "
                         f"{MIN_TILE}, got {tile!r}")
    return int(tile)


def deploy_gate(cfg: dict[str, Any], model_path: Path) -> dict[str, float] | None:
    """``deploy.gate.thresholds`` of a model's ``config.yml``: per-family probability thresholds in [0, 1] fitted
    for this policy (``experiments/fit_gate.py``), which the ``"policy"`` perception gate
    (:mod:`policies.gate`) uses instead of the rule table's; None when the model names none. ``ValueError``
    naming the file for a malformed entry."""
    from policies.gate import check_thresholds

    gate = (cfg.get("deploy") or {}).get("gate")
    if gate is None:
        return None
    where = f"{model_path.parent / 'config.yml'}: deploy.gate"
    if not isinstance(gate, dict) or "thresholds" not in gate:
        raise ValueError(f"{where} must be a mapping with 'thresholds' (family -> probability), got {gate!r}")
    try:
        return check_thresholds(gate["thresholds"])
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


class PPOPlanner(Planner):
    """A trained stable-baselines3 PPO policy as a planner.

    Args:
        path: the model ``.zip`` written by ``spatial-ir train`` (``config.yml`` must sit next to it), or the run
            folder holding it (its ``model.zip``).
            Default: the shipped ``policies/ppo/models/ppo_<mode>/model.zip``; a missing file raises
            ``FileNotFoundError`` saying how to train one.
        mode: ``"spatial"`` or ``"global"``: only picks the default model; the model's own training config
            decides the regions (a global model runs on one whole-image region whatever ``mode`` says).
        max_steps: optional cap on the steps (the policy's budget is the training ``max_steps``).
        seed: seed of the env reset (the policy itself is deterministic).
        judge, region_proposer, max_regions: accepted for a uniform planner interface; the judge is not
            used, and the proposer / region count must match the training config if given.
        device: torch device for the policy (default ``"cpu"``).

    Attribute ``deploy_tile``: the model's ``deploy.tile`` (:func:`deploy_tile`), which
    :func:`policies.make_planner` tiles the planner by unless told otherwise, or None. Attribute
    ``deploy_gate``: the model's own gate thresholds (:func:`deploy_gate`), read by the ``"policy"`` gate, or None.
    """

    name = "ppo"
    uses_judge = False
    algo = "hybrid"
    min_side = MIN_EPISODE_SIDE  # the episode it steps scores SSIM (an 11 px window)

    def __init__(self, path: str | Path | tuple | None = None, mode: str | None = None,
                 max_steps: int | None = None, seed: int = 0, judge: str | None = None,
                 region_proposer: str | None = None, max_regions: int | None = None,
                 device: str = "cpu") -> None:
        from policies.ppo.config import read_model_config
        from policies.ppo.train import algo_class

        if mode is not None and mode not in ("spatial", "global"):
            raise ValueError(f"mode must be 'spatial' or 'global', got {mode!r}")
        if isinstance(judge, str) and judge not in ("", "none"):
            from ir_env.quality import metric_info

            metric_info(judge)  # an unknown name is an error although a learned planner never judges
        model_path = Path(path) if path is not None else default_model_path(self.algo, mode or "spatial")
        if model_path.is_dir() and (model_path / "model.zip").is_file():  # a run folder: its final model
            model_path = model_path / "model.zip"
        if not model_path.is_file():
            config = ("maskable_ppo_spatial" if self.algo == "maskable"
                      else "ppo_global" if mode == "global" else "ppo_spatial")
            note = f"algo: {self.algo}"
            if self.algo == "maskable" and mode == "global":
                note += "; set env_id: GlobalIR-v1 in a copy of it"
            raise FileNotFoundError(
                f"no trained {self.name} model at {model_path}; train one with `spatial-ir train --config "
                f"experiments/configs/{config}.yaml` ({note}) and pass "
                f"path=runs/<name>/best_model.zip (config.yml sits beside it in the run folder)")
        cfg = read_model_config(model_path)
        if cfg.get("algo", "hybrid") != self.algo:
            raise ValueError(f"{model_path} was trained with algo {cfg.get('algo')!r}; the {self.name!r} "
                             f"planner needs algo {self.algo!r}")
        env_kwargs = dict(cfg["env_kwargs"])
        from ir_env.encoder.learned import observation_fingerprint

        trained_on, now = cfg.get("encoder_sha256"), observation_fingerprint(env_kwargs)
        if trained_on and now and trained_on != now:
            raise ValueError(f"{model_path} was trained on observations of the learned encoder with weights "
                             f"sha256 {trained_on[:12]}..., the installed weights are {now[:12]}...: train it "
                             "again on this encoder (README, 'The learned degradation encoder')")
        self.env = self._make_env(cfg)
        base = self.env.unwrapped
        if region_proposer is not None and region_proposer != base.region_proposer and base.max_regions > 1:
            raise ValueError(f"the model was trained with region_proposer {base.region_proposer!r}, "
                             f"not {region_proposer!r}")
        if max_regions is not None:
            max_regions = whole_option(max_regions, "max_regions", 1)  # 8.5 or '8' refused, not truncated
        if max_regions is not None and max_regions != base.max_regions and base.max_regions > 1:
            raise ValueError(f"the model was trained with max_regions={base.max_regions}, not {max_regions}")
        names = cfg.get("tool_names")
        if names is not None and list(names) != base.tool_names:
            raise ValueError(f"{model_path} was trained with tools {names}; this env offers {base.tool_names}")
        if max_steps is not None:
            check_max_steps(max_steps)
        trained_steps = int(base.max_steps)
        self.step_cap = trained_steps if max_steps is None else min(int(max_steps), trained_steps)
        model_mode = "global" if base.region_proposer == "whole" and base.max_regions == 1 else "spatial"
        # build the base with the cheap "whole" proposer, then take the training env's own proposer (same
        # name, kwargs and seed as in training) instead of a second, possibly differently configured one
        super().__init__(mode="global", judge=None, max_steps=max(1, self.step_cap), seed=seed)
        self.mode, self.region_proposer, self.max_regions = model_mode, base.region_proposer, base.max_regions
        self.proposer = base.proposer
        self.model = _load_model(algo_class(self.algo), model_path, device)
        _check_observations(self.model, self.env, model_path)
        self.obs_normalizer = _load_obs_normalizer(cfg, model_path)
        self.model_path = model_path
        self.config = cfg
        self.env_kwargs = env_kwargs
        self.deploy_tile = deploy_tile(cfg, model_path)
        self.deploy_gate = deploy_gate(cfg, model_path)

    # ---------------------------------------------------------------- env for observations
    def _make_env(self, cfg: dict[str, Any]) -> Any:
        from ir_env.env import SpatialIREnv
        from ir_env.wrappers import BoxAction, MultiDiscreteAction

        skip = ("corpus", "split", "render_mode", "final_observation")
        kw = {k: v for k, v in cfg["env_kwargs"].items() if k not in skip}
        # the observation does not depend on the reward: measure nothing, and skip the embedding of the last
        # step's image (the planner never reads that observation)
        kw["reward_metric"] = "none"
        names = cfg.get("tool_names")
        if names is not None and kw.get("tools") is None:
            # the tools the model was trained with, in its order: a tool registered later (a plugin) is not
            # one of its actions; a recorded tool this install lacks is named
            from restorers import list_tools

            missing = [n for n in names if n not in {t.name for t in list_tools()}]
            if missing:
                raise ValueError(f"the model was trained with tools {list(names)}; this install lacks "
                                 f"{', '.join(missing)}")
            kw["tools"] = list(names)
        env = SpatialIREnv(corpus=[np.zeros((32, 32, 3), np.float32)], final_observation=False, **kw)
        if self.algo == "hybrid":
            return BoxAction(env)
        return MultiDiscreteAction(env, bins=int(cfg.get("bins", 5)))

    def observe(self, image: np.ndarray, masks: np.ndarray,
                reference: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Reset the internal env on ``image`` with regions ``masks`` (K, H, W); returns the observation."""
        base = self.env.unwrapped
        h, w = image.shape[:2]
        scene = Scene(degraded=image, clean=reference if reference is not None else image, masks=masks,
                      labels=[[] for _ in masks], params=[[] for _ in masks], recipe="external",
                      seed=self.seed, depth=np.zeros((h, w), np.float32))
        proposer = base.proposer
        base.proposer = _FixedMasks(np.asarray(masks, dtype=bool))
        try:
            obs, _ = self.env.reset(seed=self.seed, options={"scene": scene})
        finally:
            base.proposer = proposer
        return obs

    def normalise(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``obs`` as the policy was trained to read it: through the saved ``VecNormalize`` statistics (frozen) when
        the model was trained on a normalising env (``config.yml`` ``obs_normalization``), else unchanged."""
        return obs if self.obs_normalizer is None else self.obs_normalizer.normalize_obs(obs)

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        obs = self.normalise(obs)
        if self.algo == "hybrid":
            action, _ = self.model.predict(obs, deterministic=True)
        else:
            action, _ = self.model.predict(obs, deterministic=True, action_masks=self.env.action_masks())
        return np.asarray(action)

    # ---------------------------------------------------------------- planning
    def _plan(self, image: np.ndarray, reference: np.ndarray | None, masks: np.ndarray) -> RestorationResult:
        base = self.env.unwrapped
        if len(masks) > base.max_regions:
            raise ValueError(f"{len(masks)} regions given; the model handles at most {base.max_regions}")
        obs = self.observe(image, masks, reference)
        stops = 0
        t_prev = time.perf_counter()
        seconds: list[float] = []
        for _ in range(self.step_cap):
            action = self._act(obs)
            n_before = len(base.state.trace)
            obs, _, terminated, truncated, info = self.env.step(action)
            if len(base.state.trace) > n_before:
                now = time.perf_counter()
                seconds.append(now - t_prev)
                t_prev = now
            if info.get("tool") == "STOP":
                stops += 1
            if terminated or truncated:
                break
        state = base.state
        base.state = None  # the planner keeps no copy of the caller's image (memory, privacy) between restores
        trace = [TraceStep(st.region, st.region_area, st.tool, params_dict(st.params), math.nan, math.nan,
                           sec) for st, sec in zip(state.trace, seconds, strict=True)]
        return RestorationResult(state.image.copy(), trace, np.asarray(masks, dtype=bool),
                                 tool_calls=int(state.tool_calls), iqa_calls=0, seconds=0.0,
                                 info={"model": str(self.model_path), "stopped": bool(stops),
                                       "steps": int(state.steps)})


class MaskablePPOPlanner(PPOPlanner):
    """The sb3-contrib ``MaskablePPO`` comparison policy (``algo: maskable``) as a planner; see
    :class:`PPOPlanner`."""

    name = "maskable_ppo"
    algo = "maskable"
