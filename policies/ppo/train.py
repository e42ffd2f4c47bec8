"""Train a PPO planner from a YAML config (``spatial-ir train --config experiments/configs/X.yaml``).

Two algorithms (config ``algo``):

- ``hybrid``: stable-baselines3 PPO with :class:`~policies.ppo.policy.HybridSetPolicy` on
  :class:`~ir_env.wrappers.BoxAction` (categorical region/tool choice + Gaussian parameters);
- ``maskable``: sb3-contrib ``MaskablePPO`` (``MultiInputPolicy``) on
  :class:`~ir_env.wrappers.MultiDiscreteAction` (parameters in ``bins`` levels, padded regions masked).

A run writes to ``<output_dir>/<name>/``: ``config.yml`` (the resolved config, like rl-zoo),
``model.zip`` (final), ``best_model.zip`` (best mean reward on fixed test-split episodes),
``checkpoints/model_<steps>_steps.zip``, ``eval/evaluations.npz`` and TensorBoard logs (``tb_*/``).
A run folder that already holds a run is continued only with ``resume=`` (its own checkpoint) and replaced only
with ``overwrite=True`` (which first removes those outputs, so no stale checkpoint or log survives).
With ``n_envs > 1`` the envs run in ``SubprocVecEnv`` workers (forkserver; the env id is passed as
``"ir_env:<id>"`` so the children register it); scripts calling :func:`train_from_config` must guard their
entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from policies.ppo.config import load_config, read_model_config, resolve_config, write_config

#: ``info`` keys that Monitor copies into the episode records (``ep_info_buffer``, evaluation logs).
INFO_KEYWORDS = ("psnr_gain", "is_success", "tool_calls")
# how the env ends an episode at its step budget by default (config.yml records the model's own as budget_end):
# "terminated" since stop 31 (the -v1 ids); configs without the key were trained while it was "truncated" (the -v0
# ids: SB3 bootstrapped that last step)
BUDGET_END = "terminated"
#: env settings (env attributes and keyword arguments alike) the spaces do not show but a trained model depends on:
#: save_model checks them against the model's training env, --resume against the run's config.yml.
MODEL_ENV_SETTINGS = ("recipe", "region_proposer", "max_regions", "image_size", "embedding", "max_steps",
                      "budget_end", "reward_metric", "step_cost")


def set_single_thread() -> None:
    """One thread for OpenMP, torch and OpenCV in this process (small nets and images: threads contend)."""
    from ir_env.forksafe import set_threads

    set_threads(1)


def build_env(env_id: str, env_kwargs: Mapping[str, Any], algo: str = "hybrid", bins: int = 5,
              monitor: bool = True, single_thread: bool = True) -> gym.Env:
    """One training env: ``gym.make("ir_env:<env_id>", **env_kwargs)`` wrapped for ``algo``
    (``BoxAction`` or ``MultiDiscreteAction(bins)``), then ``Monitor`` with :data:`INFO_KEYWORDS`. An older
    id (``SpatialIR-v0``, what the models shipped before stop 32 record) is made as its latest id with that id's
    kwargs: the same env, without Gymnasium's out-of-date warning."""
    from stable_baselines3.common.monitor import Monitor

    from ir_env import ENV_SPECS, latest_env_id
    from ir_env.wrappers import BoxAction, MultiDiscreteAction

    if single_thread:
        set_single_thread()
    name = env_id.split(":")[-1]
    latest = latest_env_id(name)
    if latest != name:  # an older id (its kwargs spelled out) or an unversioned name (the latest one)
        env_kwargs = {**ENV_SPECS.get(name, {}), **dict(env_kwargs)}
    env = gym.make(f"ir_env:{latest}", **dict(env_kwargs))
    env = BoxAction(env) if algo == "hybrid" else MultiDiscreteAction(env, bins=bins)
    return Monitor(env, info_keywords=INFO_KEYWORDS) if monitor else env


def _env_fn(env_id: str, env_kwargs: dict[str, Any], algo: str, bins: int) -> Callable[[], gym.Env]:
    def make() -> gym.Env:
        return build_env(env_id, env_kwargs, algo, bins)

    return make


def make_vec_env(cfg: Mapping[str, Any], n_envs: int | None = None, split: str | None = None,
                 seed: int | None = None):
    """The VecEnv of a resolved config: ``DummyVecEnv`` for one env, ``SubprocVecEnv`` (forkserver) for more.
    ``split`` overrides the corpus split (the eval env uses ``"test"``); envs are seeded ``seed + i``."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    n = int(n_envs if n_envs is not None else cfg["n_envs"])
    kwargs = dict(cfg["env_kwargs"])
    if split is not None:
        kwargs["split"] = split
    fns = [_env_fn(cfg["env_id"], kwargs, cfg["algo"], int(cfg["bins"])) for _ in range(n)]
    venv = DummyVecEnv(fns) if n == 1 else SubprocVecEnv(fns)
    venv.seed(int(cfg["seed"] if seed is None else seed))
    return venv


def make_hybrid_ppo(env: Any, policy_kwargs: Mapping[str, Any] | None = None, **ppo_kwargs: Any):
    """``PPO(HybridSetPolicy, env)`` on a ``BoxAction`` env (or VecEnv); tool layout read from the env."""
    from stable_baselines3 import PPO

    from policies.ppo.policy import HybridSetPolicy, hybrid_policy_kwargs

    return PPO(HybridSetPolicy, env, policy_kwargs=hybrid_policy_kwargs(env, **dict(policy_kwargs or {})),
               **ppo_kwargs)


def make_maskable_ppo(env: Any, policy_kwargs: Mapping[str, Any] | None = None, **ppo_kwargs: Any):
    """sb3-contrib ``MaskablePPO("MultiInputPolicy", env)`` on a ``MultiDiscreteAction`` env (or VecEnv): its
    ``action_masks()`` forbid padded regions (the joint (region, tool) index is one dimension, STOP last)."""
    from sb3_contrib import MaskablePPO

    return MaskablePPO("MultiInputPolicy", env, policy_kwargs=dict(policy_kwargs or {}) or None, **ppo_kwargs)


def save_model(model: Any, folder: str | Path, env_id: str, env_kwargs: Mapping[str, Any] | None = None,
               bins: int = 5, overwrite: bool = False) -> Path:
    """Save a model trained in your own script (:func:`make_hybrid_ppo` on ``BoxAction(gym.make(env_id,
    **env_kwargs))``, or :func:`make_maskable_ppo` on ``MultiDiscreteAction(..., bins=bins)``) as a run folder the
    ``ppo`` / ``maskable_ppo`` planners load: ``folder/model.zip`` plus the ``config.yml`` that ``spatial-ir train``
    writes (env id and keyword arguments, tool names, encoder fingerprint, the model's seed and policy settings).
    Returns the model path, for ``make_planner("ppo", path=...)``.

    ``env_id`` / ``env_kwargs`` must be what the training env was made with: ``ValueError`` when the env they
    build has other observation or action spaces than the model or, while the model still holds its training env,
    another recipe, region proposer, region count, image size, embedding, step budget or its ending
    (``budget_end``), reward metric, step cost or tool list than that env; also for a model that is neither PPO
    with :class:`HybridSetPolicy` nor MaskablePPO. A folder already holding a run is refused unless
    ``overwrite`` (its earlier outputs are then removed). A model trained on a ``VecNormalize`` env that normalises
    observations gets its statistics saved beside it (``vecnormalize.pkl``, named in ``config.yml`` as
    ``obs_normalization``); the planners apply them, frozen, to every observation."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    from policies.ppo.policy import HybridSetPolicy

    if isinstance(model, MaskablePPO):
        algo = "maskable"
    elif isinstance(model, PPO) and isinstance(model.policy, HybridSetPolicy):
        algo = "hybrid"
    else:
        policy = type(getattr(model, "policy", None)).__name__
        raise ValueError(f"save_model saves PPO with the hybrid policy (make_hybrid_ppo) or MaskablePPO "
                         f"(make_maskable_ppo), got {type(model).__name__} with policy {policy}: the ppo / "
                         "maskable_ppo planners could not load anything else")
    folder = Path(folder)
    cfg = resolve_config({"name": folder.name or "model", "env_id": env_id, "env_kwargs": dict(env_kwargs or {}),
                          "algo": algo, "bins": int(bins), "output_dir": str(folder.parent)})
    try:
        env = build_env(cfg["env_id"], {**cfg["env_kwargs"], "corpus": [np.zeros((32, 32, 3), np.float32)]}, algo,
                        int(cfg["bins"]), monitor=False, single_thread=False)
    except (TypeError, ValueError) as e:  # an unknown or bad env keyword: name it, not the whole kwargs dict
        raise config_error("env_kwargs", dict(env_kwargs or {}), e, source="save_model") from None
    try:
        from gymnasium import spaces

        theirs = model.action_space
        if algo == "maskable" and isinstance(theirs, spaces.MultiDiscrete) and len(theirs.nvec) > 1 and \
                env.action_space != theirs and int(theirs.nvec[1]) != int(cfg["bins"]) and \
                all(int(n) == int(theirs.nvec[1]) for n in theirs.nvec[1:]):
            raise ValueError(f"the model's parameters take {int(theirs.nvec[1])} bins each, not {cfg['bins']}: "
                             f"pass bins={int(theirs.nvec[1])}")
        for what in ("observation_space", "action_space"):
            if getattr(env, what) != getattr(model, what):
                raise ValueError(f"the model's {what} {getattr(model, what)} is not that of {env_id} with env_kwargs "
                                 f"{dict(env_kwargs or {})} ({getattr(env, what)}): pass what the training env was "
                                 "made with")
        trained_on = model.get_env()
        if trained_on is not None:  # the settings the spaces do not show
            base = env.unwrapped
            for attr in (*MODEL_ENV_SETTINGS, "tool_names"):
                theirs = trained_on.get_attr(attr, indices=[0])[0]
                if theirs != getattr(base, attr):
                    raise ValueError(f"the model was trained on an env with {attr}={theirs!r}, but {env_id} with "
                                     f"env_kwargs {dict(env_kwargs or {})} has {getattr(base, attr)!r}: pass what "
                                     "the training env was made with")
    finally:
        env.close()
    _check_run_folder(folder, None, overwrite, python=True)
    if overwrite:
        import shutil

        for old in run_outputs(folder):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    import stable_baselines3
    import torch

    recorded = {k: v for k, v in cfg.items() if k not in ("ppo", "total_timesteps", "eval", "checkpoint_freq",
                                                           "resume", "n_envs")}  # training-run keys it never used
    vn = model.get_vec_normalize_env()
    norm = vn is not None and bool(vn.norm_obs)  # the policy was trained on normalised observations
    write_config({**recorded, "policy_kwargs": dict(model.policy_kwargs or {}), "seed": model.seed,
                  **_tool_info(cfg), "trained_timesteps": int(model.num_timesteps),
                  **({"obs_normalization": OBS_NORMALIZATION} if norm else {}),
                  "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__},
                  "started": "saved by policies.ppo.train.save_model"}, folder)
    if norm:  # its statistics as they are now, which the planner applies (frozen) to every observation
        vn.save(str(folder / OBS_NORMALIZATION))
    model.save(folder / "model.zip")
    return folder / "model.zip"


def algo_class(algo: str):
    """The SB3 algorithm class of ``algo`` (``PPO`` or ``MaskablePPO``), e.g. for ``.load``."""
    if algo == "hybrid":
        from stable_baselines3 import PPO

        return PPO
    if algo == "maskable":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    raise ValueError(f"unknown algo {algo!r}; use hybrid or maskable")


def _tool_info(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What a saved model's ``config.yml`` records about the env it was trained on: its ``tool_names``,
    their ``param_counts``, ``encoder_sha256`` (the learned encoder weights it observed through, ``None``
    without a learned embedding or proposer; :class:`policies.ppo.planner.PPOPlanner` refuses other weights) and
    ``budget_end`` (the env's, :data:`BUDGET_END` by default)."""
    from ir_env.encoder.learned import observation_fingerprint

    env = build_env(cfg["env_id"], {**cfg["env_kwargs"], "corpus": [np.zeros((32, 32, 3), np.float32)]},
                    cfg["algo"], int(cfg["bins"]), monitor=False, single_thread=False)
    base = env.unwrapped
    names = list(base.tool_names)
    env.close()
    from policies.ppo.policy import param_counts_for

    return {"tool_names": names, "param_counts": param_counts_for(names),
            "encoder_sha256": observation_fingerprint(dict(cfg["env_kwargs"])),
            "budget_end": str(cfg["env_kwargs"].get("budget_end", BUDGET_END))}


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line, without a leading ``Error:`` (SB3's load errors start with one)."""
    import re

    return re.sub(r"^Error: ", "", " ".join(str(exc).split())) or type(exc).__name__


def config_error(section: str, kwargs: Mapping[str, Any], exc: BaseException, source: str = "config") -> ValueError:
    """A ``ValueError`` naming the ``source``'s ``section`` (``config env_kwargs``; ``save_model env_kwargs``) and
    key, when it can be found, behind ``exc``, an error a library raised while building the env, the policy or the
    algorithm from ``kwargs``."""
    from ir_env.option_errors import non_number_option, unexpected_keyword

    msg = one_line(exc)
    unknown = unexpected_keyword(exc)
    if unknown:
        return ValueError(f"{source} {section} has no key {unknown!r} ({msg.split('(')[0].strip()} does not take it)")
    named = non_number_option(exc, dict(kwargs))
    if named:
        return ValueError(f"{source} {section}.{named[0]}={named[1]!r} must be a number")
    return ValueError(f"{source} {section}: {msg}")


def resume_location(resume: str | Path) -> tuple[str, str] | None:
    """(output_dir, name) of the run folder a checkpoint belongs to (``<dir>/<name>/model.zip``, ``best_model.zip``
    or ``<dir>/<name>/checkpoints/model_<n>_steps.zip``, where ``config.yml`` sits), or None when the file is not
    inside a run folder."""
    run = Path(resume).parent
    if run.name == "checkpoints":
        run = run.parent
    if not (run / "config.yml").is_file():
        return None
    return str(run.parent), run.name


def _refuse_resume_changes(resume: str | Path, changes: list[str]) -> None:
    """``ValueError`` listing ``changes``, the settings a resumed checkpoint keeps that the config changes."""
    if changes:
        raise ValueError(f"resume checkpoint {resume} keeps its own settings, which the config changes ("
                         + "; ".join(changes) + "): set the config to the checkpoint's values, or start a new run")


def _eval_history_mismatches(path: Path, cfg: Mapping[str, Any]) -> list[str]:
    """A resumed run appends to its ``evaluations.npz``, one row of ``eval.episodes`` results per evaluation:
    a config asking for another number of episodes per evaluation could not be stored with the old rows."""
    ev = cfg["eval"]
    if not path.is_file() or int(ev["freq"]) <= 0 or int(ev["episodes"]) <= 0:
        return []
    with np.load(path) as old:
        results = np.asarray(old["results"])
    if results.ndim == 2 and results.shape[0] and results.shape[1] != int(ev["episodes"]):
        return [f"eval.episodes {ev['episodes']} (its {path} holds {results.shape[1]} episodes per evaluation)"]
    return []


def _checkpoint_step(path: Path) -> int:
    """The step count in a checkpoint's name (``model_<N>_steps.zip`` -> N)."""
    import re

    return int(re.sub(r"\D", "", path.stem) or 0)


def _set_aside_later_outputs(run_dir: Path, up_to: int) -> Path | None:
    """Resuming from a checkpoint older than the run's newest outputs: move the abandoned branch's later checkpoints,
    its ``best_model.zip`` and its ``model.zip`` into ``run_dir/abandoned_after_<up_to>/`` (``_2``, ... when that
    exists; kept, not mixed into the resumed run);
    returns that folder, or None when nothing was later. ``best_model.zip`` is set aside only when the eval history
    holds evaluations after ``up_to`` (its best may be one of them)."""
    import shutil

    later = [p for p in (run_dir / "checkpoints").glob("model_*_steps.zip") if _checkpoint_step(p) > up_to]
    hist = run_dir / "eval" / "evaluations.npz"
    evals_after = False
    if hist.is_file():
        with np.load(hist) as old:
            evals_after = bool((np.asarray(old["timesteps"]) > up_to).any())
    best = run_dir / "best_model.zip"
    moving = later + ([best] if evals_after and best.is_file() else [])
    if not moving:
        return None
    if (run_dir / "model.zip").is_file():  # the abandoned branch's last model: a crash must not leave it as "the run"
        moving.append(run_dir / "model.zip")
    aside, n = run_dir / f"abandoned_after_{up_to}", 1
    while aside.exists():  # a second resume from the same step keeps the first branch too
        n += 1
        aside = run_dir / f"abandoned_after_{up_to}_{n}"
    aside.mkdir()
    for p in moving:
        shutil.move(str(p), str(aside / p.name))
    return aside


def _restore_best_model(callback: Any, run_dir: Path) -> None:
    """After :func:`_set_aside_later_outputs` moved ``best_model.zip`` away: the kept history's best evaluation
    becomes ``best_model.zip`` again when its checkpoint exists (same step, same weights); otherwise the next
    evaluation saves one (best mean reward reset)."""
    import shutil

    if (run_dir / "best_model.zip").is_file() or not callback.evaluations_results:
        return
    i = int(np.argmax([np.mean(r) for r in callback.evaluations_results]))
    ckpt = run_dir / "checkpoints" / f"model_{callback.evaluations_timesteps[i]}_steps.zip"
    if ckpt.is_file():
        shutil.copyfile(ckpt, run_dir / "best_model.zip")
    else:
        callback.best_mean_reward = -np.inf


def _restore_eval_history(callback: Any, path: Path, up_to: int) -> None:
    """Give a resumed run's eval callback the evaluations already in ``path`` (``evaluations.npz``) made at or
    before step ``up_to``, and their best mean reward, so the file keeps its history and ``best_model.zip`` is
    replaced only by a better evaluation."""
    if not path.is_file():
        return
    with np.load(path) as old:
        keep = np.asarray(old["timesteps"]) <= up_to
        callback.evaluations_timesteps = [int(t) for t in np.asarray(old["timesteps"])[keep]]
        callback.evaluations_results = [list(r) for r in np.asarray(old["results"])[keep]]
        callback.evaluations_length = [list(r) for r in np.asarray(old["ep_lengths"])[keep]]
        if "successes" in old.files:
            callback.evaluations_successes = [list(r) for r in np.asarray(old["successes"])[keep]]
    if callback.evaluations_results:
        callback.best_mean_reward = float(max(np.mean(r) for r in callback.evaluations_results))


#: File beside a model saved by :func:`save_model` from a ``VecNormalize``-wrapped env: its observation statistics.
OBS_NORMALIZATION = "vecnormalize.pkl"
#: What a run writes into its folder (files and folders); ``overwrite=True`` removes them before a new run.
RUN_OUTPUTS = ("model.zip", "best_model.zip", "config.yml", "checkpoints", "eval", OBS_NORMALIZATION)


def run_outputs(run_dir: Path) -> list[Path]:
    """The outputs of an earlier run in ``run_dir`` (:data:`RUN_OUTPUTS` and ``tb_*`` log folders) that exist."""
    if not run_dir.is_dir():
        return []
    found = [run_dir / name for name in RUN_OUTPUTS if (run_dir / name).exists()]
    return found + sorted(p for pattern in ("tb_*", "abandoned_after_*") for p in run_dir.glob(pattern) if p.is_dir())


def _check_run_folder(run_dir: Path, resume: str | None, overwrite: bool, python: bool = False) -> None:
    """Refuse to mix a new run into a folder holding another: without ``resume`` (or resuming a checkpoint of
    another folder) the folder must hold no run outputs unless ``overwrite``. ``python``: the advice is for a
    :func:`save_model` call, not the command line."""
    if overwrite:
        return
    old = run_outputs(run_dir)
    if not old:
        return
    if resume:
        where = resume_location(resume)
        if where is not None and (Path(where[0]) / where[1]).resolve() == run_dir.resolve():
            return  # continuing this folder's own run
    from ir_env.paths import held_run

    if python:
        raise ValueError(f"{held_run(run_dir, old)}; save into another folder, or pass overwrite=True to replace it")
    latest = run_dir / "model.zip"
    if not latest.is_file():  # a run killed before it saved: its newest checkpoint
        ckpts = sorted(run_dir.glob("checkpoints/model_*_steps.zip"), key=_checkpoint_step)
        latest = ckpts[-1] if ckpts else latest
    raise ValueError(f"{held_run(run_dir, old)}; continue it with --resume "
                     f"{latest} (or a checkpoint), pick another --output-dir or config name, or pass "
                     "--overwrite (Python: overwrite=True) to replace it")


def _resume_mismatches(model: Any, cfg: Mapping[str, Any]) -> list[str]:
    """Config values a resumed model would silently ignore: SB3's ``load`` keeps the checkpoint's algorithm
    settings and policy keyword arguments. Compared where the model holds a plain value."""
    out = []
    for key, want in dict(cfg["ppo"]).items():
        have = getattr(model, key, None)
        if isinstance(have, (int, float)) and not isinstance(have, bool) and isinstance(want, (int, float)) \
                and not np.isclose(float(have), float(want), rtol=1e-9, atol=0.0):
            out.append(f"ppo.{key}: checkpoint {have!r}, config {want!r}")
    saved = dict(getattr(model, "policy_kwargs", None) or {})
    for key, want in dict(cfg["policy_kwargs"] or {}).items():
        if key in saved and saved[key] != want:
            out.append(f"policy_kwargs.{key}: checkpoint {saved[key]!r}, config {want!r}")
    return out


#: env settings a resumed run must keep (the model's record, its eval history and best model assume them).
RESUME_ENV_KEYS = (*MODEL_ENV_SETTINGS, "corpus", "proposer_kwargs", "tools")


def _resume_env_mismatches(resume: str | Path, cfg: Mapping[str, Any]) -> list[str]:
    """The env settings (:data:`RESUME_ENV_KEYS`, the env id and the algo) in which ``cfg`` differs from the
    ``config.yml`` of the run ``resume`` belongs to; none when that run has no readable config."""
    try:
        saved = read_model_config(resume)
        was = resolve_config({"env_id": saved["env_id"], "env_kwargs": dict(saved["env_kwargs"] or {})})
    except (FileNotFoundError, ValueError, TypeError, KeyError):
        return []
    out = [f"env_id: checkpoint {was['env_id']!r}, config {cfg['env_id']!r}"] if was["env_id"] != cfg["env_id"] else []
    if saved.get("algo") is not None and saved["algo"] != cfg["algo"]:
        out.append(f"algo: checkpoint {saved['algo']}, config {cfg['algo']}")
    for key in RESUME_ENV_KEYS:
        have, want = was["env_kwargs"].get(key), cfg["env_kwargs"].get(key)
        if have != want:
            out.append(f"env_kwargs.{key}: checkpoint {have!r}, config {want!r}")
    return out


#: Recipes kept for testing unseen degradation combinations (DESIGN.md: training may use ``agenticir-A`` only).
HELD_OUT_RECIPES = ("agenticir-B", "agenticir-C")


def train(cfg: Mapping[str, Any], overwrite: bool = False) -> Path:
    """Train with a resolved config (see :mod:`policies.ppo.config`); returns the run folder.

    Everything a config can get wrong (env, policy and algorithm keyword arguments, the eval env (its split, e.g. a
    corpus with no test photos), a resume checkpoint that does not fit or already holds ``total_timesteps``) is
    found before the run folder's ``config.yml`` is written, so a failed start leaves an existing run as it was
    (nothing removed by ``overwrite``, no ``config.yml`` written); errors are ``ValueError`` naming the config
    section and key.
    ``total_timesteps`` is rounded up by SB3 to whole rollouts (``ppo.n_steps * n_envs``); ``config.yml`` records
    the steps actually trained as ``trained_timesteps``. A folder already holding a run is refused unless ``resume``
    names one of its checkpoints or ``overwrite`` is true (then its earlier outputs are removed first); a resumed
    checkpoint keeps its own ``ppo`` and ``policy_kwargs`` settings, so a config that differs there is refused."""
    import zipfile

    import stable_baselines3
    import torch
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

    from policies.ppo import callbacks as cb

    cfg = dict(cfg)
    resume = cfg.get("resume")
    if resume and not Path(resume).is_file():  # before anything is written: the run's config.yml stays as it was
        raise FileNotFoundError(f"resume checkpoint not found: {resume}")
    if resume and not zipfile.is_zipfile(resume):
        raise ValueError(f"resume checkpoint {resume} is not a model .zip saved by stable-baselines3")
    set_single_thread()
    torch.set_num_threads(int(cfg["torch_threads"]))
    run_dir = Path(cfg["output_dir"]) / str(cfg["name"])
    if str(cfg["env_kwargs"].get("recipe")) in HELD_OUT_RECIPES:
        warnings.warn(f"training on recipe {cfg['env_kwargs']['recipe']!r}: it is one of the unseen-combination "
                      f"test recipes ({', '.join(HELD_OUT_RECIPES)}); a policy trained on it cannot be tested on it "
                      "(train on agenticir-A)", stacklevel=2)
    if cfg["algo"] == "hybrid":  # values named before any env is built (torch named none of them)
        from policies.ppo.policy import check_policy_kwargs

        check_policy_kwargs(dict(cfg["policy_kwargs"] or {}), "config policy_kwargs")
    if str(cfg["device"]) != "auto":  # SB3 fell back to the CPU without a word when CUDA was missing
        from ir_env.quality import normalise_device

        try:
            normalise_device(cfg["device"])
        except ValueError as e:
            raise ValueError(f"config device: {e}") from None
    existed = run_dir.exists()
    _check_run_folder(run_dir, resume, overwrite)
    n_envs = int(cfg["n_envs"])
    venv = eval_env = None
    try:
        try:
            info = _tool_info(cfg)
            venv = make_vec_env(cfg)
        except (TypeError, ValueError) as e:
            raise config_error("env_kwargs", cfg["env_kwargs"], e) from None
        ppo_kwargs = dict(cfg["ppo"])
        common = {"seed": int(cfg["seed"]), "device": cfg["device"], "verbose": int(cfg["verbose"]),
                  "tensorboard_log": str(run_dir)}
        if resume:
            # env changes before SB3's load, whose 'spaces do not match' names none
            _refuse_resume_changes(resume, _resume_env_mismatches(resume, cfg))
            try:
                model = algo_class(cfg["algo"]).load(resume, env=venv, device=cfg["device"],
                                                     tensorboard_log=str(run_dir))
            except (ValueError, KeyError, RuntimeError, AssertionError, zipfile.BadZipFile) as e:
                raise ValueError(f"resume checkpoint {resume}: {one_line(e)} (not a model saved by stable-baselines3 "
                                 "for this algo and env?)") from None
            if int(model.num_timesteps) >= int(cfg["total_timesteps"]):
                raise ValueError(f"resume checkpoint {resume} already holds {int(model.num_timesteps)} steps and "
                                 f"total_timesteps is {cfg['total_timesteps']}: nothing to train (pass a larger "
                                 "--total-timesteps)")
            _refuse_resume_changes(resume, _resume_mismatches(model, cfg)
                                   + _eval_history_mismatches(run_dir / "eval" / "evaluations.npz", cfg))
            # the envs (and torch / numpy) were seeded with ``seed`` as at the run's start: without a new seed the
            # resumed run would replay the scenes its first steps saw; seed + steps done is new and reproducible
            model.set_random_seed(int(cfg["seed"]) + int(model.num_timesteps))
        else:
            make = make_hybrid_ppo if cfg["algo"] == "hybrid" else make_maskable_ppo
            try:
                model = make(venv, cfg["policy_kwargs"], **ppo_kwargs, **common)
            except (TypeError, AssertionError, ValueError, RuntimeError) as e:
                section = "policy_kwargs" if "Policy" in str(e) or "net_arch" in str(e) else "ppo"
                raise config_error(section, cfg[section] if section == "policy_kwargs" else ppo_kwargs, e) from None
        ev = cfg["eval"]
        if int(ev["freq"]) > 0 and int(ev["episodes"]) > 0:  # built before any output is removed or written
            try:
                eval_env = make_vec_env(cfg, n_envs=1, split=str(ev["split"]), seed=int(ev["seed"]))
            except (TypeError, ValueError) as e:
                raise config_error("eval", ev, e) from None
    except BaseException:
        for env in (venv, eval_env):
            if env is not None:
                env.close()
        if not existed and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a failed start leaves no empty run folder behind
        raise
    try:  # from here the envs are closed however it ends (SubprocVecEnv workers are processes)
        if overwrite:
            import shutil

            for old in run_outputs(run_dir):
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved = {**cfg, **info, "versions": {"stable_baselines3": stable_baselines3.__version__,
                                                "torch": torch.__version__},
                    "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        write_config(resolved, run_dir)

        callbacks: list[Any] = [cb.RestorationStatsCallback()]
        if int(cfg["checkpoint_freq"]) > 0:
            callbacks.append(CheckpointCallback(max(1, int(cfg["checkpoint_freq"]) // n_envs),
                                                str(run_dir / "checkpoints"), name_prefix="model"))
        if eval_env is not None:
            cls = cb.SeededEvalCallback if cfg["algo"] == "hybrid" else cb.SeededMaskableEvalCallback
            eval_cb = cls(eval_env, n_eval_episodes=int(ev["episodes"]), eval_freq=max(1, int(ev["freq"]) // n_envs),
                          best_model_save_path=str(run_dir), log_path=str(run_dir / "eval"), deterministic=True,
                          verbose=int(cfg["verbose"]), eval_seed=int(ev["seed"]))
            if resume:
                _restore_eval_history(eval_cb, run_dir / "eval" / "evaluations.npz", int(model.num_timesteps))
            callbacks.append(eval_cb)
        if resume:  # resumed from an older checkpoint: the abandoned branch's later outputs are set aside
            aside = _set_aside_later_outputs(run_dir, int(model.num_timesteps))
            if aside is not None:
                print(f"resumed at step {int(model.num_timesteps)}: the earlier run's later checkpoints and its "
                      f"best model moved to {aside}")
            if eval_env is not None:
                _restore_best_model(eval_cb, run_dir)
        if resume:  # SB3 callbacks count their calls from 0: continue the run's count, so evaluations and
            for c in callbacks:  # checkpoints keep falling on multiples of their frequency (64, 128, ... steps)
                c.n_calls = int(model.num_timesteps) // n_envs
        remaining = int(cfg["total_timesteps"]) - (int(model.num_timesteps) if resume else 0)
        with warnings.catch_warnings():  # the eval env is a DummyVecEnv on purpose (fixed, seeded episodes)
            warnings.filterwarnings("ignore", message="Training and eval env are not of the same type")
            try:
                model.learn(total_timesteps=remaining, callback=CallbackList(callbacks), tb_log_name="tb",
                            reset_num_timesteps=not resume, progress_bar=bool(cfg["progress_bar"]))
            except KeyboardInterrupt:  # keep what was trained (as rl-zoo does): --resume <run>/model.zip continues
                model.save(run_dir / "model.zip")
                write_config({**resolved, "trained_timesteps": int(model.num_timesteps), "interrupted": True},
                             run_dir)
                raise
        model.save(run_dir / "model.zip")
        write_config({**resolved, "trained_timesteps": int(model.num_timesteps)}, run_dir)
    finally:
        try:
            venv.close()
            if eval_env is not None:
                eval_env.close()
        except (EOFError, BrokenPipeError, ConnectionError):  # Ctrl-C reached the workers first: they are gone
            pass
    return run_dir


def _resume_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """With ``resume=`` and no ``output_dir=``: continue in the checkpoint's own run folder (its output dir and
    name), not in the one the config names."""
    if overrides.get("resume") and overrides.get("output_dir") is None:
        where = resume_location(overrides["resume"])
        if where is not None:
            overrides = {**overrides, "output_dir": where[0], "name": where[1]}
    return overrides


def train_from_config(path: str | Path, overwrite: bool = False, **overrides: Any) -> Path:
    """Load the YAML at ``path`` (keys: see :data:`policies.ppo.config.DEFAULTS`), apply ``overrides``
    (e.g. ``total_timesteps=``, ``n_envs=``, ``resume=``, ``output_dir=``; ``None`` ignored), train, and
    return the run folder. ``resume=`` without ``output_dir=`` continues in the checkpoint's run folder;
    ``overwrite=True`` replaces a run already in the folder (see :func:`train`)."""
    return train(load_config(path, **_resume_overrides(overrides)), overwrite=overwrite)


def train_from_dict(raw: Mapping[str, Any], overwrite: bool = False, **overrides: Any) -> Path:
    """Like :func:`train_from_config` from an in-memory mapping (tests, notebooks)."""
    return train(resolve_config(raw, **_resume_overrides(overrides)), overwrite=overwrite)
