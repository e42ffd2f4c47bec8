"""Training configuration of the PPO planners: defaults, YAML loading/validation, and the resolved
``config.yml`` written next to every trained model (the planner reads it back to rebuild the same env)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

#: ``hybrid`` = PPO + HybridSetPolicy on BoxAction; ``maskable`` = MaskablePPO on MultiDiscreteAction.
ALGOS = ("hybrid", "maskable")

#: Every key a config may hold, with its default (nested dicts are merged key by key).
DEFAULTS: dict[str, Any] = {
    "name": "ppo",  # run name: outputs go to <output_dir>/<name>/
    "algo": "hybrid",
    "env_id": "SpatialIR-v1",
    "env_kwargs": {},
    "bins": 5,  # parameter bins of the maskable variant
    "policy_kwargs": {},  # hybrid: hidden, attention, share_encoder, log_std_init; maskable: net_arch
    "ppo": {"learning_rate": 3e-4, "n_steps": 512, "batch_size": 128, "n_epochs": 10, "gamma": 1.0,
            "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5},
    "total_timesteps": 100_000,
    "seed": 0,
    "n_envs": 1,
    "device": "cpu",
    "torch_threads": 1,
    "eval": {"freq": 10_000, "episodes": 24, "split": "test", "seed": 12345},
    "checkpoint_freq": 25_000,
    "output_dir": "runs",
    "resume": None,
    "progress_bar": True,
    "verbose": 0,
}

CONFIG_NAME = "config.yml"

#: Keys holding free-form mappings (passed on as keyword arguments; merged shallowly, not checked here).
FREE_FORM = ("env_kwargs", "policy_kwargs")


def _merge(base: dict[str, Any], over: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key not in base:
            raise ValueError(f"unknown config key '{where}{key}'; known: {', '.join(base)}")
        if key in FREE_FORM and not where:
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(f"config key {key!r} must be a mapping, got {value!r}")
            out[key] = {**out[key], **copy.deepcopy(dict(value or {}))}
        elif isinstance(base[key], dict) and isinstance(value, Mapping):
            out[key] = _merge(base[key], value, f"{where}{key}.")
        elif isinstance(base[key], dict) and value is not None and not isinstance(value, Mapping):
            raise ValueError(f"config key '{where}{key}' must be a mapping, got {value!r}")
        else:
            out[key] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value
    return out


def resolve_config(raw: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Defaults + ``raw`` + ``overrides`` (``None`` values ignored), validated; ``ValueError`` names bad
    keys and values."""
    cfg = _merge(DEFAULTS, dict(raw or {}))
    cfg = _merge(cfg, {k: v for k, v in overrides.items() if v is not None})
    if cfg["algo"] not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {cfg['algo']!r}")
    for key in ("total_timesteps", "n_envs", "torch_threads", "bins"):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"config {key!r} must be an integer >= 1, got {cfg[key]!r}")
    if isinstance(cfg["seed"], bool) or not isinstance(cfg["seed"], int) or not 0 <= cfg["seed"] < 2**32:
        raise ValueError(f"config 'seed' must be an integer in [0, 2**32), got {cfg['seed']!r}")
    whole = [("checkpoint_freq", cfg["checkpoint_freq"], 0), ("verbose", cfg["verbose"], 0)]
    whole += [(f"eval.{k}", cfg["eval"][k], 0) for k in ("freq", "episodes", "seed")]
    for key, value, low in whole:  # checked before a run folder is touched (1.5 was truncated, 'abc' failed late)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"config {key!r} must be an integer >= {low}, got {value!r}")
    check_ppo_block(cfg["ppo"])
    from ir_env.corpus import SPLITS

    if cfg["eval"]["split"] not in SPLITS:
        raise ValueError(f"config 'eval.split' must be one of {', '.join(SPLITS)}, got {cfg['eval']['split']!r}")
    if not isinstance(cfg["output_dir"], (str, Path)) or not str(cfg["output_dir"]).strip():
        raise ValueError(f"config 'output_dir' must name a folder (default runs), got {cfg['output_dir']!r}")
    if not isinstance(cfg["name"], str) or not cfg["name"].strip() or Path(cfg["name"]).name != cfg["name"]:
        raise ValueError(f"config 'name' must be a folder name (no '/'), got {cfg['name']!r}")
    from ir_env import ENV_SPECS, latest_env_id

    env_id = str(cfg["env_id"]).split(":")[-1]
    if env_id not in ENV_SPECS:
        raise ValueError(f"unknown env_id {cfg['env_id']!r}; known: {', '.join(ENV_SPECS)}")
    cfg["env_id"] = env_id
    # the full env kwargs (constructor defaults + registered preset + config), so a planner rebuilds the exact
    # env even if a default changes later
    cfg["env_kwargs"] = {**env_defaults(), **ENV_SPECS[env_id], **dict(cfg["env_kwargs"] or {})}
    # an older id (SpatialIR-v0) is its latest id with its own kwargs (budget_end: truncated), now in env_kwargs
    cfg["env_id"] = latest_env_id(env_id)
    if cfg["env_kwargs"].get("reward_metric") == "none":
        raise ValueError("env_kwargs reward_metric 'none' measures nothing, so there is no reward to learn from; "
                         "train with psnr, ssim or a no-reference metric")
    if "final_observation" in cfg["env_kwargs"]:
        raise ValueError("env_kwargs final_observation is a planner-side option (the learned planners set it); "
                         "training needs the last observation (episodes a TimeLimit truncates bootstrap from it): "
                         "remove it")
    return cfg


#: The ``ppo`` block's numbers: (key, whole number?, lowest, highest, lowest allowed itself?).
_PPO_RANGES = (("learning_rate", False, 0.0, None, False), ("n_steps", True, 2, None, True),
               ("batch_size", True, 2, None, True), ("n_epochs", True, 1, None, True),
               ("gamma", False, 0.0, 1.0, True), ("gae_lambda", False, 0.0, 1.0, True),
               ("clip_range", False, 0.0, None, False), ("ent_coef", False, 0.0, None, True),
               ("vf_coef", False, 0.0, None, True), ("max_grad_norm", False, 0.0, None, False))


def check_ppo_block(ppo: Mapping[str, Any]) -> None:
    """``ValueError`` naming ``ppo.<key>`` for a PPO hyper-parameter that is not a number in its range (gamma and
    gae_lambda in [0, 1]; learning_rate, clip_range and max_grad_norm > 0; n_steps and batch_size whole numbers
    >= 2 (SB3 normalises advantages over a batch); n_epochs >= 1; ent_coef and vf_coef >= 0), before training."""
    for key, whole, low, high, closed in _PPO_RANGES:
        value = ppo[key]
        kind = int if whole else (int, float)
        ok = not isinstance(value, bool) and isinstance(value, kind) and bool(np.isfinite(value))
        ok = ok and (value >= low if closed else value > low) and (high is None or value <= high)
        if not ok:
            what = "a whole number" if whole else "a number"
            rng = f"in [{low:g}, {high:g}]" if high is not None else (f">= {low:g}" if closed else f"> {low:g}")
            raise ValueError(f"config 'ppo.{key}' must be {what} {rng}, got {value!r}")


def env_defaults() -> dict[str, Any]:
    """The SpatialIR env constructor's keyword defaults (``render_mode`` and ``final_observation`` left out:
    how a caller runs the env, not what the env is)."""
    import inspect

    from ir_env.env import SpatialIREnv

    params = inspect.signature(SpatialIREnv.__init__).parameters.values()
    return {p.name: p.default for p in params
            if p.default is not inspect.Parameter.empty and p.name not in ("render_mode", "final_observation")}


def load_config(path: str | Path, **overrides: Any) -> dict[str, Any]:
    """Read a training YAML and resolve it (see :func:`resolve_config`)."""
    from ir_env.paths import find_config

    p = find_config(path)  # also experiments/configs/... of an installed package, from any directory
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: invalid YAML ({' '.join(str(e).split())})") from None
    if raw is None:
        raise ValueError(f"{p}: the config is empty (name at least the run: name: my_run; keys: "
                         f"{', '.join(DEFAULTS)})")
    if not isinstance(raw, Mapping):
        raise ValueError(f"{p}: the config must be a YAML mapping")
    return resolve_config(raw, **overrides)


def plain(value: Any) -> Any:
    """A YAML-safe copy: mappings/sequences recursively, numpy scalars as Python numbers, arrays (e.g. an
    in-memory corpus) as a short ``"<array HxWxC float32>"`` note, other objects as ``str``."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return f"<array {'x'.join(map(str, value.shape))} {value.dtype}>"
    if isinstance(value, np.generic):
        return value.item()
    if value is None or type(value) in (bool, int, float, str):
        return value
    return str(value)


def write_config(cfg: Mapping[str, Any], folder: str | Path) -> Path:
    """Write ``config.yml`` (plain YAML via :func:`plain`, keys in insertion order) into ``folder``."""
    out = Path(folder) / CONFIG_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(plain(cfg), sort_keys=False))
    return out


def read_model_config(model_path: str | Path) -> dict[str, Any]:
    """The ``config.yml`` saved next to a model ``.zip`` (for a checkpoint in ``<run>/checkpoints/``: the run folder's;
    ``FileNotFoundError`` if absent)."""
    p = Path(model_path).parent / CONFIG_NAME
    if not p.is_file() and Path(model_path).parent.name == "checkpoints":  # a checkpoint: the run folder's config
        p = Path(model_path).parent.parent / CONFIG_NAME
    if not p.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} next to {model_path}: the planner needs the training "
                                "config (region proposer, max_regions, tools) that `spatial-ir train` writes")
    try:
        cfg = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{p} is not valid YAML ({' '.join(str(e).split())[:200]}): it should be the training config "
                         "`spatial-ir train` writes") from None
    if not isinstance(cfg, Mapping) or "env_id" not in cfg or "env_kwargs" not in cfg:
        raise ValueError(f"{p} is not a training config written by `spatial-ir train`")
    return dict(cfg)
