"""Train the PPO planner by imitation of the greedy oracle, then fine-tune it with PPO.

PPO from scratch collapses to "always STOP" on SpatialIR-v1; this script instead:

1. records expert episodes (``greedy``, judge ``psnr``: an oracle, the env knows the clean image) on the
   exact env of the PPO config (``ppo_config``'s ``env_id`` / ``env_kwargs``, ``BoxAction``; with ``algo:
   maskable`` the ``MultiDiscreteAction`` of ``bins`` levels), train split, seeded resets;
2. behaviour-clones a fresh ``PPO(HybridSetPolicy)`` (or ``MaskablePPO`` for ``algo: maskable``) on them
   (:func:`policies.ppo.bc.train_bc`: NLL via ``evaluate_actions`` + a small value regression);
3. optional DAgger rounds: the student drives, the expert labels the states it visits, retrain on all;
4. optional PPO fine-tune from the imitation weights (low learning rate), evaluated every
   ``finetune.eval_every`` steps on fixed validation episodes (train split, own seeds);
5. keeps the candidate (BC, DAgger round, fine-tune checkpoint) with the best mean PSNR gain on the
   validation episodes, reports every candidate and the expert on fixed TEST-split episodes, and writes
   ``<output_dir>/<name>/{model.zip, config.yml, summary.json}`` (the layout ``spatial-ir train`` writes,
   so ``make_planner("ppo", path=...)`` loads it) and optionally ships it to ``ship_dir``.

Usage: ``python experiments/train_bc.py --config experiments/configs/bc_spatial.yaml``
(one process, one thread; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.configio import check_run_folder, read_config

DEFAULTS: dict[str, Any] = {
    "name": "bc_spatial",
    "ppo_config": "experiments/configs/ppo_spatial.yaml",
    "record": {"episodes": 400, "seed": 1000, "soft": True, "expert": "greedy"},
    "bc": {"epochs": 40, "batch_size": 128, "lr": 1.0e-3, "vf_coef": 0.25, "log_std_min": -1.6, "seed": 0,
           "soft_coef": 1.0, "temperature": 0.5, "weight_decay": 0.0, "eval_every_epochs": 10},
    "dagger": {"rounds": 1, "episodes": 150, "seed": 50000},
    "finetune": {"timesteps": 20000, "learning_rate": 3.0e-5, "ent_coef": 0.001, "n_steps": 512,
                 "batch_size": 128, "n_epochs": 5, "clip_range": 0.1, "eval_every": 4096},
    "validation": {"episodes": 64, "seed": 777000, "split": "train"},
    "test": {"episodes": 64, "seed": 12345, "split": "test"},
    "output_dir": "runs",
    "ship_dir": None,
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_bc_config(path: str | None, **overrides: Any) -> dict[str, Any]:
    """DEFAULTS merged with the YAML (one level of nesting) and ``overrides`` (``None`` ignored), checked by
    :func:`check_bc_config`."""
    raw: dict[str, Any] = {}
    if path:
        p = Path(path)
        raw = read_config(p, empty_ok=True)
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for src in (raw, {k: v for k, v in overrides.items() if v is not None}):
        for k, v in src.items():
            if k not in DEFAULTS:
                raise ValueError(f"unknown config key {k!r}; known: {', '.join(DEFAULTS)}")
            if isinstance(DEFAULTS[k], dict):
                if not isinstance(v, dict):
                    raise ValueError(f"config key {k!r} must be a mapping")
                unknown = set(v) - set(DEFAULTS[k])
                if unknown:
                    raise ValueError(f"unknown key(s) {sorted(unknown)} under {k!r}")
                cfg[k].update(v)
            else:
                cfg[k] = v
    check_bc_config(cfg)
    return cfg


#: Numbers that must be >= 1 (the others must be >= 0); learning rates must be > 0.
_AT_LEAST_ONE = {"bc.epochs", "bc.batch_size", "bc.eval_every_epochs", "record.episodes", "finetune.n_steps",
                 "finetune.batch_size", "finetune.n_epochs", "finetune.eval_every", "validation.episodes",
                 "test.episodes"}
_POSITIVE = {"bc.lr", "finetune.learning_rate", "finetune.clip_range", "bc.temperature"}
_ANY_SIGN = {"bc.log_std_min"}


def check_bc_config(cfg: dict[str, Any]) -> None:
    """``ValueError`` naming ``section.key`` for a value whose type differs from its default's (a whole number where
    the default is one, a number where it is a float, true/false where it is a flag) or that is out of range:
    episode, epoch, batch and step counts >= 1, other counts and seeds >= 0, learning rates, clip range and
    temperature > 0, coefficients >= 0. Checked before any expert is recorded or any folder is written."""
    from ir_env.corpus import SPLITS
    from ir_env.paths import check_writable

    for section, defaults in DEFAULTS.items():
        if not isinstance(defaults, dict):
            continue
        for key, default in defaults.items():
            name, value = f"{section}.{key}", cfg[section][key]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"config {name} must be true or false, got {value!r}")
            elif isinstance(default, int):
                low = 1 if name in _AT_LEAST_ONE else 0
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise ValueError(f"config {name} must be a whole number >= {low}, got {value!r}")
            elif isinstance(default, float):
                ok = not isinstance(value, bool) and isinstance(value, (int, float)) and bool(np.isfinite(value))
                if name in _POSITIVE:
                    ok, rng = ok and value > 0, "> 0"
                elif name in _ANY_SIGN:
                    rng = "finite"
                else:
                    ok, rng = ok and value >= 0, ">= 0"
                if not ok:
                    raise ValueError(f"config {name} must be a number {rng}, got {value!r}")
    from policies.ppo.bc import EXPERTS

    if cfg["record"]["expert"] not in EXPERTS:  # named before what record.soft needs: the name is the mistake
        raise ValueError(f"config record.expert must be one of {', '.join(EXPERTS)}, got {cfg['record']['expert']!r}")
    for section in ("validation", "test"):
        if cfg[section]["split"] not in SPLITS:
            raise ValueError(f"config {section}.split must be one of {', '.join(SPLITS)}, "
                             f"got {cfg[section]['split']!r}")
    if not isinstance(cfg["name"], str) or not cfg["name"].strip() or Path(cfg["name"]).name != cfg["name"]:
        raise ValueError(f"config name must be a folder name (no '/'), got {cfg['name']!r}")
    check_writable(cfg["output_dir"], "output_dir", folder=True)


#: Where ``--report`` writes by default: the committed table of the shipped BC runs.
RESULTS_STEM = "experiments/results/ppo_training"


def training_method(expert: str, dagger_rounds: int, finetune_steps: int) -> str:
    """How a model was trained, for its ``config.yml``: ``behaviour cloning of <expert>`` and what followed."""
    extra = (["+ DAgger"] if dagger_rounds > 0 else []) + (["+ PPO fine-tune"] if finetune_steps > 0 else [])
    return f"behaviour cloning of {expert}" + (f" ({', '.join(extra)})" if extra else "")


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.train_bc`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="BC YAML, e.g. experiments/configs/bc_spatial.yaml (default: the built-in "
                    "settings, train_bc.DEFAULTS, which record fewer episodes than that file)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (few episodes, no fine-tune)")
    ap.add_argument("--dataset", help="reuse a recorded expert dataset (.npz) instead of recording")
    ap.add_argument("--continue-from", metavar="SUMMARY",
                    help="skip recording/BC/DAgger: fine-tune the best imitation candidate of that run's "
                         "summary.json (its candidates, expert and record figures are carried over)")
    ap.add_argument("--name", help="run name (default: the config's)")
    ap.add_argument("--finetune-timesteps", type=int, default=None)
    ap.add_argument("--finetune-lr", type=float, default=None, help="PPO learning rate of the fine-tune")
    ap.add_argument("--eval-every", type=int, default=None, help="fine-tune steps between evaluations")
    ap.add_argument("--ship", action="store_true", help="copy model.zip + config.yml to ship_dir")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace the run already in <output_dir>/<name> (its outputs are removed first)")
    ap.add_argument("--report", nargs="+", metavar="SUMMARY",
                    help="only write the results table from these runs' summary.json files")
    ap.add_argument("--results", default=RESULTS_STEM,
                    help=f"with --report: output stem (.json and .md are written; default {RESULTS_STEM}, the "
                         "committed table)")
    args = ap.parse_args(argv)
    if args.report:
        quick = [p for p in args.report if Path(p).parent.name.endswith("_quick")]
        if quick and args.results == RESULTS_STEM:  # a smoke run must not replace the committed table
            print(f"error: {quick[0]} is a --quick smoke run: write its report elsewhere (--results STEM), not over "
                  f"the committed {RESULTS_STEM}", file=sys.stderr)
            return 2
        write_report([Path(p) for p in args.report], Path(args.results))
        return 0
    if args.quick and args.ship:  # a smoke model must never replace the shipped policy
        print("error: --quick makes a smoke model: it is never shipped (drop --ship or --quick)", file=sys.stderr)
        return 2
    cfg = load_bc_config(args.config)
    if args.quick:
        cfg["record"]["episodes"], cfg["bc"]["epochs"] = 8, 10
        cfg["dagger"]["episodes"], cfg["finetune"]["timesteps"] = 4, 0
        cfg["validation"]["episodes"] = cfg["test"]["episodes"] = 4
        cfg["name"] += "_quick"
    if args.finetune_timesteps is not None:
        cfg["finetune"]["timesteps"] = int(args.finetune_timesteps)
    if args.finetune_lr is not None:
        cfg["finetune"]["learning_rate"] = float(args.finetune_lr)
    if args.eval_every is not None:
        cfg["finetune"]["eval_every"] = int(args.eval_every)
    if args.name:
        cfg["name"] = args.name
    check_bc_config(cfg)  # the command-line values too
    try:
        run(cfg, dataset=args.dataset, ship=args.ship, argv=sys.argv if argv is None else argv,
            previous=args.continue_from, overwrite=args.overwrite)
    except ValueError as e:
        if not str(e).startswith("run folder "):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


#: What a run of this script writes into its folder (glob patterns); ``overwrite`` removes them first.
RUN_OUTPUTS = ("model.zip", "config.yml", "summary.json", "*_model.zip", "expert_data.npz", "dagger_data.npz",
               "tb_*")


def run(cfg: dict[str, Any], dataset: str | None = None, ship: bool = False,
        argv: list[str] | None = None, previous: str | None = None, overwrite: bool = False) -> Path:
    """Do the whole pipeline for a resolved BC config; returns the run folder. A folder already holding a run
    (:data:`RUN_OUTPUTS`) is refused with ``ValueError`` unless ``overwrite`` (its outputs are removed first)."""
    import stable_baselines3
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    from policies.ppo import bc
    from policies.ppo.config import load_config, write_config
    from policies.ppo.train import _tool_info, build_env, make_hybrid_ppo, make_maskable_ppo, set_single_thread

    set_single_thread()
    th.set_num_threads(1)
    t_start = time.perf_counter()
    pcfg = load_config(cfg["ppo_config"])
    env_id, env_kwargs = pcfg["env_id"], dict(pcfg["env_kwargs"])
    algo, bins = str(pcfg.get("algo", "hybrid")), int(pcfg.get("bins", 5))  # maskable: MultiDiscrete actions
    run_dir = Path(cfg["output_dir"]) / str(cfg["name"])
    if previous and Path(previous).resolve().parent == run_dir.resolve():
        raise ValueError(f"run folder {run_dir} is the run --continue-from reads ({previous}): give the "
                         "continued run another --name")
    check_run_folder(run_dir, overwrite, RUN_OUTPUTS)
    run_dir.mkdir(parents=True, exist_ok=True)

    def make(split: str, monitor: bool = False):  # noqa: ANN202
        return build_env(env_id, {**env_kwargs, "split": split}, algo, bins=bins, monitor=monitor)

    train_env = make("train")
    val_env = make(cfg["validation"]["split"])
    test_env = make(cfg["test"]["split"])
    expert_name = str(cfg["record"]["expert"])
    if expert_name != "greedy" and cfg["record"]["soft"]:
        raise ValueError(f"record.soft needs the greedy oracle's per-choice gains; set it false for expert "
                         f"{expert_name!r}")
    expert = bc.make_expert(train_env, planner=expert_name)
    # DAgger labels: greedy's first step does not depend on the budget; perceive replans with the full budget
    labeller = bc.make_expert(train_env, max_steps=1) if expert_name == "greedy" else expert
    expert_label = "greedy oracle:psnr" if expert_name == "greedy" else expert_name
    summary: dict[str, Any] = {"name": cfg["name"], "env_id": env_id, "env_kwargs": env_kwargs,
                               "bc_config": cfg, "command": " ".join(argv or []), "candidates": {}}

    def evaluate(what: Any, label: str) -> dict[str, Any]:
        v = bc.evaluate_gain(val_env, what, cfg["validation"]["episodes"], cfg["validation"]["seed"])
        t = bc.evaluate_gain(test_env, what, cfg["test"]["episodes"], cfg["test"]["seed"])
        rec = {"val_psnr_gain": v["psnr_gain"], "test_psnr_gain": t["psnr_gain"],
               "test_tool_calls": t["tool_calls"], "test_stop_rate": t["stop_rate"],
               "val_tool_calls": v["tool_calls"], "test_gains": t["gains"]}
        log(f"{label}: val gain {v['psnr_gain']:.3f} dB, test gain {t['psnr_gain']:.3f} dB, "
            f"{t['tool_calls']:.2f} calls/episode, stop rate {t['stop_rate']:.2f}")
        return rec

    # ---------------------------------------------------------------- the PPO model
    ft = cfg["finetune"]
    venv = DummyVecEnv([lambda: make("train", monitor=True)])
    venv.seed(int(pcfg["seed"]))
    ppo_kwargs = {**pcfg["ppo"], "learning_rate": ft["learning_rate"], "ent_coef": ft["ent_coef"],
                  "n_steps": ft["n_steps"], "batch_size": ft["batch_size"], "n_epochs": ft["n_epochs"],
                  "clip_range": ft["clip_range"]}
    make_ppo = make_maskable_ppo if algo == "maskable" else make_hybrid_ppo
    model = make_ppo(venv, pcfg["policy_kwargs"], seed=int(pcfg["seed"]), device="cpu",
                     tensorboard_log=str(run_dir), **ppo_kwargs)
    cands: dict[str, Any] = summary["candidates"]
    if previous:
        prev = json.loads(Path(previous).read_text())
        summary["record"], summary["expert"], summary["continued_from"] = prev["record"], prev["expert"], previous
        cands.update({f"{prev['name']}/{k}": v for k, v in prev["candidates"].items()})
    else:
        # ---------------------------------------------------------------- 1. expert data
        if dataset:
            data = bc.Transitions.load(dataset)
            log(f"loaded {len(data)} expert states from {dataset}")
            rec_stats = {"loaded_from": dataset}
        else:
            log(f"recording {cfg['record']['episodes']} expert episodes on {env_id} {env_kwargs}")
            data, st = bc.record_expert(train_env, expert, cfg["record"]["episodes"], cfg["record"]["seed"],
                                        soft=bool(cfg["record"]["soft"]), log=log)
            data.save(run_dir / "expert_data.npz")
            rec_stats = {"episodes": len(st["psnr_gain"]), "states": len(data),
                         "psnr_gain": float(np.mean(st["psnr_gain"])), "tool_calls": float(np.mean(st["tool_calls"])),
                         "seconds": st["seconds"]}
        summary["record"] = rec_stats
        summary["expert"] = evaluate(expert, f"expert ({expert_label})")
        summary["expert"]["planner"] = expert_label

        b = cfg["bc"]
        t0 = time.perf_counter()
        log(f"BC on {len(data)} states")
        soft_kw = {"soft_coef": b["soft_coef"], "temperature": b["temperature"], "weight_decay": b["weight_decay"]}
        chunk = int(b["eval_every_epochs"]) or int(b["epochs"])
        done_epochs = 0
        while done_epochs < int(b["epochs"]):
            n = min(chunk, int(b["epochs"]) - done_epochs)
            hist = bc.train_bc(model.policy, data, epochs=n, batch_size=b["batch_size"], lr=b["lr"],
                               vf_coef=b["vf_coef"], log_std_min=b["log_std_min"], seed=b["seed"] + done_epochs,
                               log=log, **soft_kw)
            done_epochs += n
            path = run_dir / f"bc_e{done_epochs}_model.zip"
            model.save(path)
            cands[f"bc_e{done_epochs}"] = {"path": str(path), "train_seconds": time.perf_counter() - t0,
                                           "states": len(data), "epochs": done_epochs, "final_epoch": hist[-1],
                                           **evaluate(model, f"BC student, {done_epochs} epochs")}
        best_bc = max((k for k in cands if k.startswith("bc_")), key=lambda k: cands[k]["val_psnr_gain"])
        model.set_parameters(cands[best_bc]["path"])
        log(f"continuing from {best_bc}")

        # ---------------------------------------------------------------- 3. DAgger
        d = cfg["dagger"]
        for r in range(int(d["rounds"])):
            t0 = time.perf_counter()
            log(f"DAgger round {r + 1}: {d['episodes']} student episodes labelled by the expert")
            soft = data.gains is not None
            new, st = bc.dagger_collect(train_env, expert if soft else labeller, model, d["episodes"],
                                        int(d["seed"]) + 10000 * r, soft=soft, log=log)
            agree = bc.choice_accuracy(model.policy, new)  # before retraining: the student's own states
            data = data.concat(new)
            data.save(run_dir / "dagger_data.npz")
            hist = bc.train_bc(model.policy, data, epochs=max(5, b["epochs"] // 2), batch_size=b["batch_size"],
                               lr=b["lr"] / 2, vf_coef=b["vf_coef"], log_std_min=b["log_std_min"],
                               seed=b["seed"] + r + 1, log=log, **soft_kw)
            path = run_dir / f"dagger{r + 1}_model.zip"
            model.save(path)
            cands[f"dagger{r + 1}"] = {"path": str(path), "train_seconds": time.perf_counter() - t0,
                                       "states": len(data), "new_states": len(new),
                                       "student_rollout_gain": float(np.mean(st["psnr_gain"])),
                                       "student_expert_agreement": agree, "final_epoch": hist[-1],
                                       **evaluate(model, f"DAgger round {r + 1}")}

    best_im = max(cands, key=lambda k: cands[k]["val_psnr_gain"])
    model.set_parameters(cands[best_im]["path"])
    log(f"fine-tuning from {best_im}")

    # ---------------------------------------------------------------- 4. PPO fine-tune
    if int(ft["timesteps"]) > 0:
        class ValCallback(BaseCallback):
            def __init__(self) -> None:
                super().__init__()
                self.next_eval = int(ft["eval_every"])
                self.t0 = time.perf_counter()

            def _on_rollout_start(self) -> None:
                # at a rollout's start every step collected so far has been trained on, so the candidate named
                # N steps is the policy after N steps (during a rollout it lacks that rollout's update)
                if self.num_timesteps >= self.next_eval:
                    while self.next_eval <= self.num_timesteps:
                        self.next_eval += int(ft["eval_every"])
                    path = run_dir / f"finetune_{self.num_timesteps}_model.zip"
                    self.model.save(path)
                    cands[f"finetune_{self.num_timesteps}"] = {
                        "path": str(path), "timesteps": int(self.num_timesteps),
                        "train_seconds": time.perf_counter() - self.t0,
                        **evaluate(self.model, f"fine-tune @ {self.num_timesteps} steps")}

            def _on_step(self) -> bool:
                return True

        log(f"PPO fine-tune for {ft['timesteps']} steps (lr {ft['learning_rate']}, ent {ft['ent_coef']})")
        t0 = time.perf_counter()
        model.learn(total_timesteps=int(ft["timesteps"]), callback=ValCallback(), tb_log_name="tb_finetune")
        path = run_dir / "finetune_final_model.zip"
        model.save(path)
        sec = time.perf_counter() - t0
        cands["finetune_final"] = {"path": str(path), "timesteps": int(model.num_timesteps),
                                   "train_seconds": sec, "steps_per_second": model.num_timesteps / sec,
                                   **evaluate(model, "fine-tune final")}

    # ---------------------------------------------------------------- 5. pick, write, ship
    best = max(cands, key=lambda k: cands[k]["val_psnr_gain"])
    log(f"selected {best} (best validation gain {cands[best]['val_psnr_gain']:.3f} dB; "
        f"test gain {cands[best]['test_psnr_gain']:.3f} dB)")
    shutil.copyfile(cands[best]["path"], run_dir / "model.zip")
    resolved = {**pcfg, "name": cfg["name"], **_tool_info(pcfg),
                "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": th.__version__},
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "training": {"method": training_method(expert_label, int(cfg["dagger"]["rounds"]),
                                                       int(ft["timesteps"])),
                             "selected": best, "bc_config": cfg}}
    resolved["ppo"] = ppo_kwargs  # the hyperparameters the saved model carries (fine-tune values)
    write_config(resolved, run_dir)
    summary["selected"] = best
    summary["wall_seconds"] = time.perf_counter() - t_start
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    if ship and cfg["ship_dir"]:
        dest = Path(cfg["ship_dir"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / "model.zip", dest / "model.zip")
        shutil.copyfile(run_dir / "config.yml", dest / "config.yml")
        log(f"shipped to {dest}")
    for e in (train_env, val_env, test_env):
        e.close()
    venv.close()
    log(f"done in {summary['wall_seconds']:.0f} s; run folder {run_dir}")
    return run_dir


def write_report(summaries: list[Path], stem: Path) -> None:
    """``<stem>.json`` (the runs' summaries, per-episode test gains left out) and ``<stem>.md`` (a table of
    the expert and every candidate on the fixed test episodes)."""
    runs: list[dict[str, Any]] = []
    for p in summaries:
        if not p.is_file():
            raise FileNotFoundError(f"--report: no run summary at {p}")
        try:
            s = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"--report: {p} is not a run's summary.json (not JSON)") from None
        if not isinstance(s, dict) or not {"candidates", "expert", "name"} <= set(s):
            raise ValueError(f"--report: {p} is not a train_bc run's summary.json (it has no name / expert / "
                             "candidates)")
        for c in s["candidates"].values():
            c.pop("test_gains", None)
        s["expert"].pop("test_gains", None)
        runs.append(s)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps({"runs": runs}, indent=1))
    lines = ["# PPO planner trained by imitation (greedy oracle) + DAgger + PPO fine-tune", "",
             "Mean PSNR gain (dB, final minus input) on fixed episodes, deterministic policies. "
             "`val`: train-split episodes that pick the shipped candidate; `test`: test-split episodes "
             "(reported only). Expert: `greedy` with judge `psnr` (an oracle: it sees the clean image).", ""]
    for s in runs:
        t, v = s["bc_config"]["test"], s["bc_config"]["validation"]
        lines += [f"## {s['name']} ({s['env_id']}, {s['env_kwargs']['image_size']} px, "
                  f"max_regions {s['env_kwargs']['max_regions']}, {s['env_kwargs']['region_proposer']}, "
                  f"max_steps {s['env_kwargs']['max_steps']})", "",
                  f"Selected (best validation gain): **{s['selected']}**. Test: {t['episodes']} episodes, "
                  f"reset seeds {t['seed']}+i "
                  f"({t['split']} split); validation: {v['episodes']} episodes, seeds {v['seed']}+i "
                  f"({v['split']} split). Expert data: {s['record']}. Wall time {s['wall_seconds']:.0f} s.",
                  f"Command: `{s['command']}`", "",
                  "| policy | val gain | test gain | tool calls / ep (test) | STOP rate (test) | "
                  "states / PPO steps | train s |", "|---|---|---|---|---|---|---|",
                  f"| expert {s['expert'].get('planner', 'greedy oracle:psnr')} | {s['expert']['val_psnr_gain']:.2f} | "
                  f"{s['expert']['test_psnr_gain']:.2f} | {s['expert']['test_tool_calls']:.2f} | "
                  f"{s['expert']['test_stop_rate']:.2f} | - | - |"]
        names = {r["name"] for r in runs}
        for name, c in s["candidates"].items():
            if "/" in name and name.split("/")[0] in names:  # carried over from a run listed above
                continue
            size = c.get("timesteps", c.get("states", ""))
            mark = " (selected)" if name == s["selected"] else ""
            lines.append(f"| {name}{mark} | {c['val_psnr_gain']:.2f} | {c['test_psnr_gain']:.2f} | "
                         f"{c['test_tool_calls']:.2f} | {c['test_stop_rate']:.2f} | {size} | "
                         f"{c['train_seconds']:.0f} |")
        lines.append("")
    stem.with_suffix(".md").write_text("\n".join(lines))
    log(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
