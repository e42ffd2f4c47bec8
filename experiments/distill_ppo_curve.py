"""Sample efficiency of PPO initialised from the distilled student versus PPO from scratch.

Both runs train ``PPO(HybridSetPolicy)`` on the same env (the PPO config's ``env_id`` / ``env_kwargs``,
train split) with the same PPO hyperparameters (``ppo`` block below, over the PPO config's) and seed;
the only difference is the initial network: random (``scratch``) or the student's weights
(``from_student``; its parameter log-std set to ``init_log_std``, since the student never trains it).
Every ``eval_every`` environment steps (at the first rollout start after each multiple, when every step
collected so far has been trained on), at step 0 and after the last update, the deterministic policy runs
fixed TEST-split episodes (``policies.ppo.bc.evaluate_gain``); a point's ``steps`` is the number of steps
the policy was trained on. Writes ``<out>.json`` (the curves) and ``<out>.png``.

Usage: ``python -m experiments.distill_ppo_curve --config experiments/configs/distill_ppo.yaml``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

DEFAULTS: dict[str, Any] = {
    "ppo_config": "experiments/configs/ppo_spatial.yaml",
    "policy_kwargs": {},  # merged over the PPO config's (must describe the student's network, e.g. region_features)
    "student": "policies/distill/models/distilled_spatial/model.zip",
    "runs": ["scratch", "from_student"],
    "seeds": [0],
    "timesteps": 16384,
    "eval_every": 2048,
    "init_log_std": -1.6,
    "ppo": {"learning_rate": 1.0e-4, "n_steps": 512, "batch_size": 128, "n_epochs": 5, "clip_range": 0.1,
            "ent_coef": 0.001},
    "test": {"episodes": 32, "seed": 12345, "split": "test"},
    "out": "experiments/results/distill/ppo_curve",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def curve(cfg: dict[str, Any], init: str, seed: int) -> list[dict[str, float]]:
    """Train one PPO run; returns ``[{steps, psnr_gain, tool_calls, stop_rate, seconds}]``."""
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    from policies.ppo.bc import evaluate_gain
    from policies.ppo.config import load_config
    from policies.ppo.train import build_env, make_hybrid_ppo

    pcfg = load_config(cfg["ppo_config"])
    env_id, env_kwargs = pcfg["env_id"], dict(pcfg["env_kwargs"])
    te = cfg["test"]
    test_env = build_env(env_id, {**env_kwargs, "split": te["split"]}, "hybrid", monitor=False)
    venv = DummyVecEnv([lambda: build_env(env_id, {**env_kwargs, "split": "train"}, "hybrid")])
    venv.seed(int(seed))
    model = make_hybrid_ppo(venv, {**pcfg["policy_kwargs"], **cfg["policy_kwargs"]}, seed=int(seed), device="cpu",
                            **{**pcfg["ppo"], **cfg["ppo"]})
    if init == "from_student":
        student = PPO.load(cfg["student"], device="cpu")
        model.policy.load_state_dict(student.policy.state_dict())
        with th.no_grad():
            model.policy.log_std.fill_(float(cfg["init_log_std"]))
    elif init != "scratch":
        raise ValueError(f"unknown run {init!r} (scratch | from_student)")
    points: list[dict[str, float]] = []
    t0 = time.perf_counter()

    def evaluate(steps: int) -> None:
        r = evaluate_gain(test_env, model, te["episodes"], te["seed"])
        points.append({"steps": steps, "psnr_gain": r["psnr_gain"], "tool_calls": r["tool_calls"],
                       "stop_rate": r["stop_rate"], "seconds": time.perf_counter() - t0})
        log(f"{init} seed {seed} @ {steps} steps: test gain {r['psnr_gain']:.3f} dB, {r['tool_calls']:.2f} calls, "
            f"stop rate {r['stop_rate']:.2f}")

    class Every(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next = int(cfg["eval_every"])

        def _on_rollout_start(self) -> None:
            # every step collected so far has been trained on here; during a rollout the policy lacks that
            # rollout's update, so a point taken there would be labelled one rollout too late
            if self.num_timesteps >= self.next:
                while self.next <= self.num_timesteps:
                    self.next += int(cfg["eval_every"])
                evaluate(int(self.num_timesteps))

        def _on_step(self) -> bool:
            return True

    evaluate(0)
    model.learn(total_timesteps=int(cfg["timesteps"]), callback=Every())
    evaluate(int(model.num_timesteps))  # after the last update
    test_env.close()
    venv.close()
    return points


def plot(result: dict[str, Any], path: Path) -> None:
    """PSNR gain against env steps, one line per run (mean over seeds, min-max band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, per_seed in result["curves"].items():
        steps = np.array([p["steps"] for p in next(iter(per_seed.values()))])
        g = np.array([[p["psnr_gain"] for p in pts] for pts in per_seed.values()])
        ax.plot(steps, g.mean(0), marker="o", label=f"{name} ({len(per_seed)} seed(s))")
        if len(g) > 1:
            ax.fill_between(steps, g.min(0), g.max(0), alpha=0.2)
    for label, value, style in (("teacher (greedy oracle)", result.get("teacher_gain"), "--"),):
        if value is not None:
            ax.axhline(value, color="grey", ls=style, label=label)
    ax.set_xlabel("PPO environment steps")
    ax.set_ylabel(f"mean test PSNR gain (dB, {result['test']['episodes']} episodes)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("PPO from the distilled student vs from scratch")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: The PPO runs a curve can hold.
RUNS = ("scratch", "from_student")


def check_curve_config(cfg: dict[str, Any], runs: list[str]) -> None:
    """``ValueError`` before any training for an unknown run name (:data:`RUNS`), an empty run list, seeds that are
    not whole numbers >= 0, timesteps / eval_every / test.episodes below 1, a missing student for
    ``from_student``, bad ``ppo`` hyper-parameters, or an ``out`` that cannot be written."""
    from ir_env.paths import check_writable
    from policies.ppo.config import check_ppo_block, resolve_config

    bad = [r for r in runs if r not in RUNS]
    if bad or not runs:
        raise ValueError(f"unknown run(s) {bad} (runs are {', '.join(RUNS)})" if bad else "no run to train")
    seeds = cfg["seeds"]
    if not isinstance(seeds, list) or not seeds or any(isinstance(x, bool) or not isinstance(x, int) or x < 0
                                                       for x in seeds):
        raise ValueError(f"seeds must be a non-empty list of whole numbers >= 0, got {seeds!r}")
    for name, value in (("timesteps", cfg["timesteps"]), ("eval_every", cfg["eval_every"]),
                        ("test.episodes", cfg["test"]["episodes"])):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    seed = cfg["test"]["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"test.seed must be a whole number >= 0, got {seed!r}")
    from ir_env.corpus import SPLITS

    if cfg["test"]["split"] not in SPLITS:
        raise ValueError(f"test.split must be one of {', '.join(SPLITS)}, got {cfg['test']['split']!r}")
    lsd = cfg["init_log_std"]  # read by the from_student run only, after the whole scratch run: checked for any run
    if isinstance(lsd, bool) or not isinstance(lsd, (int, float)) or not np.isfinite(lsd):
        raise ValueError(f"init_log_std must be a number (the log-std of the student-initialised policy, e.g. -1.6), "
                         f"got {lsd!r}")
    if not isinstance(cfg["runs"], list):
        raise ValueError(f"runs must be a list of run names ({', '.join(RUNS)}), got {cfg['runs']!r}")
    for key in ("ppo_config", "student", "out"):
        if not isinstance(cfg[key], str) or not cfg[key].strip():
            raise ValueError(f"{key} must name a file, got {cfg[key]!r}")
    check_ppo_block(resolve_config({"ppo": cfg["ppo"]})["ppo"])
    from policies.ppo.policy import check_policy_kwargs

    check_policy_kwargs(cfg["policy_kwargs"], "policy_kwargs")
    if "from_student" in runs and not Path(str(cfg["student"])).is_file():
        raise FileNotFoundError(f"student model not found: {cfg['student']} (needed by the from_student run)")
    check_writable(Path(str(cfg["out"])).with_suffix(".json"), "out")


def check_student_fits(cfg: dict[str, Any]) -> None:
    """``ValueError`` before any training when the ``student``'s weights do not fit the network the curve builds
    (``ppo_config``'s env and ``policy_kwargs`` merged with the curve's): e.g. a 12-feature student without
    ``policy_kwargs: {region_features: 12}``. Builds one model (a few seconds)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from policies.ppo.config import load_config
    from policies.ppo.train import build_env, make_hybrid_ppo, one_line

    pcfg = load_config(cfg["ppo_config"])
    venv = DummyVecEnv([lambda: build_env(pcfg["env_id"], {**pcfg["env_kwargs"], "split": "train"}, "hybrid",
                                          monitor=False)])
    try:
        model = make_hybrid_ppo(venv, {**pcfg["policy_kwargs"], **cfg["policy_kwargs"]}, device="cpu")
        student = PPO.load(cfg["student"], device="cpu")
        model.policy.load_state_dict(student.policy.state_dict())
    except (RuntimeError, ValueError, KeyError) as e:
        first = one_line(e).split("size mismatch for ")[-1][:240]
        raise ValueError(f"student {cfg['student']} does not fit the network of {cfg['ppo_config']} with "
                         f"policy_kwargs {cfg['policy_kwargs']} ({first}); set policy_kwargs as the student was "
                         "trained (its config.yml)") from None
    finally:
        venv.close()


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.distill_ppo_curve`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="config YAML, e.g. experiments/configs/distill_ppo.yaml (default: none, the "
                                     "built-in settings, DEFAULTS in this script)")
    ap.add_argument("--runs", help=f"comma-separated subset of the runs ({', '.join(RUNS)}) (default: the config's "
                                   "runs)")
    ap.add_argument("--teacher-gain", type=float,
                    help="draw the teacher's test gain (dB) as a line (default: the one of the previous JSON, if any)")
    args = ap.parse_args(argv)
    from experiments.record_trajectories import merge_config

    cfg = merge_config(DEFAULTS, args.config)
    if not isinstance(cfg["runs"], list):
        raise ValueError(f"runs must be a list of run names ({', '.join(RUNS)}), got {cfg['runs']!r}")
    runs = [r for r in (args.runs.split(",") if args.runs else cfg["runs"]) if r]
    check_curve_config(cfg, runs)
    if "from_student" in runs:
        check_student_fits(cfg)
    from policies.ppo.train import set_single_thread

    set_single_thread()
    out = Path(cfg["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").is_file() else {}
    curves: dict[str, Any] = dict(previous.get("curves", {}))
    for name in runs:
        curves[name] = {str(s): curve(cfg, name, int(s)) for s in cfg["seeds"]}
        result = {"config": cfg, "curves": curves, "test": cfg["test"],
                  "teacher_gain": args.teacher_gain if args.teacher_gain is not None else previous.get("teacher_gain")}
        out.with_suffix(".json").write_text(json.dumps(result, indent=1))
        plot(result, out.with_suffix(".png"))
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
