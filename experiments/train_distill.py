"""Train the distilled student (planner ``distilled``) from recorded teacher trajectories, with DAgger.

1. read the trajectory dataset(s) (``experiments/record_trajectories.py``); the scenes cropped from the
   ``holdout_photos`` (indices into the train split) are held out: the student never trains on them, the
   validation episodes use only them (the test photos are unseen too, so selection must reward what
   transfers to new photos); without ``holdout_photos`` the last ``val_fraction`` of the scenes are held out;
2. build the PPO planner's network (``PPO(HybridSetPolicy)`` on the dataset's env, the PPO config's
   ``policy_kwargs`` updated by the distill config's own) and train it with
   :func:`policies.distill.student.train_student` (predicted gain of
   every (region, tool), best parameters, value); every ``eval_every_epochs`` epochs is a candidate;
3. DAgger rounds: the student drives episodes of the training photos, the greedy teacher labels every state it
   visits (dense labels), the new rows join the data and the student is trained further;
4. every candidate (BC chunks, each DAgger round, which continues from the best so far) is scored on fixed
   validation episodes (the held-out photos, own seeds) for each ``stop_margins`` value; the best
   (candidate, margin) is kept;
5. the kept student and the teacher run the same fixed TEST-split episodes: PSNR gain, seconds per
   episode, decision agreement (region, tool) on the teacher's states and on the student's own states.

Writes ``<output_dir>/<name>/{model.zip, config.yml, summary.json}`` (``make_planner("distilled",
path=.../model.zip)`` loads it; ``PPO.load`` continues training it) and, with ``--ship``, copies model and
config to ``ship_dir``.

Usage: ``python -m experiments.train_distill --config experiments/configs/distill_spatial.yaml [--ship]
[--seed N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

DEFAULTS: dict[str, Any] = {
    "name": "distilled_spatial",
    "data": ["runs/trajectories/greedy_spatial64"],
    "ppo_config": "experiments/configs/ppo_spatial.yaml",
    "policy_kwargs": {},  # merged over the PPO config's policy_kwargs (e.g. region_features: 12)
    "val_fraction": 0.1,
    "holdout_photos": [],
    "eval_every_epochs": 10,
    "train": {"epochs": 60, "batch_size": 128, "lr": 1.0e-3, "tau": 0.25, "gain_floor": -2.0, "param_coef": 1.0,
              "vf_coef": 0.1, "nll_coef": 0.0, "rank_coef": 1.0, "weight_decay": 0.0, "seed": 0},
    "dagger": {"rounds": 1, "episodes": 150, "seed": 50000, "epochs": 20},
    "stop_margins": [0.0, 0.05, 0.1, 0.2],
    "validation": {"episodes": 48, "seed": 777000, "split": "train"},
    "test": {"episodes": 64, "seed": 12345, "split": "test"},
    "output_dir": "runs/distill",
    "ship_dir": "policies/distill/models/distilled_spatial",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_distill_config(path: str | None) -> dict[str, Any]:
    """DEFAULTS merged with the YAML at ``path`` (one level of nesting); unknown keys are refused."""
    from experiments.record_trajectories import merge_config

    cfg = merge_config(DEFAULTS, path)
    check_distill_config(cfg)
    return cfg


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_distill_config(cfg: dict[str, Any]) -> None:
    """``ValueError`` naming the first config value that cannot work (checked before anything is loaded or
    written)."""
    data = cfg["data"]
    if not isinstance(data, list) or not data or not all(isinstance(d, str) and d for d in data):
        raise ValueError(f"data must be a non-empty list of trajectory dataset folders, got {data!r}")
    if not isinstance(cfg["name"], str) or not cfg["name"].strip():
        raise ValueError(f"name must be a non-empty string, got {cfg['name']!r}")
    if not isinstance(cfg["output_dir"], str) or not cfg["output_dir"].strip():
        raise ValueError(f"output_dir must name a folder, got {cfg['output_dir']!r}")
    from ir_env.paths import check_writable
    from policies.ppo.policy import check_policy_kwargs

    check_writable(cfg["output_dir"], "output_dir", folder=True)
    check_policy_kwargs(cfg["policy_kwargs"], "policy_kwargs")
    hold = cfg["holdout_photos"]
    if not isinstance(hold, list) or not all(_whole(i) and i >= 0 for i in hold):
        raise ValueError(f"holdout_photos must be a list of photo indices (whole numbers >= 0), got {hold!r}")
    margins = cfg["stop_margins"]
    if (not isinstance(margins, list) or not margins
            or not all(isinstance(m, (int, float)) and not isinstance(m, bool) and np.isfinite(m) for m in margins)):
        raise ValueError(f"stop_margins must be a non-empty list of numbers, got {margins!r}")
    if not (isinstance(cfg["val_fraction"], (int, float)) and 0.0 <= float(cfg["val_fraction"]) < 1.0):
        raise ValueError(f"val_fraction must lie in [0, 1), got {cfg['val_fraction']!r}")
    wholes = [("train", "epochs", 1), ("train", "batch_size", 1), ("train", "seed", 0), ("dagger", "rounds", 0),
              ("dagger", "episodes", 1), ("dagger", "epochs", 1), ("dagger", "seed", 0), ("validation", "episodes", 1),
              ("validation", "seed", 0), ("test", "episodes", 1), ("test", "seed", 0), (None, "eval_every_epochs", 0)]
    for section, key, low in wholes:
        v = cfg[key] if section is None else cfg[section][key]
        if not _whole(v) or v < low:
            where = key if section is None else f"{section}.{key}"
            raise ValueError(f"{where} must be a whole number >= {low}, got {v!r}")
    for key in ("lr", "tau"):
        v = cfg["train"][key]
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
            raise ValueError(f"train.{key} must be a number > 0, got {v!r}")
    for key, low in (("gain_floor", None), ("param_coef", 0.0), ("vf_coef", 0.0), ("nll_coef", 0.0),
                     ("rank_coef", 0.0), ("weight_decay", 0.0)):
        v = cfg["train"][key]
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                and (low is None or v >= low)):
            rng = "a number" if low is None else f"a number >= {low:g}"
            raise ValueError(f"train.{key} must be {rng}, got {v!r}")
    from ir_env.corpus import SPLITS

    for section in ("validation", "test"):  # read only after the student is trained (minutes)
        if cfg[section]["split"] not in SPLITS:
            raise ValueError(f"{section}.split must be one of {', '.join(SPLITS)}, got {cfg[section]['split']!r}")
    if Path(cfg["name"]).name != cfg["name"]:
        raise ValueError(f"name must be a folder name (no '/'), got {cfg['name']!r}")
    if cfg["ship_dir"] is not None and (not isinstance(cfg["ship_dir"], str) or not cfg["ship_dir"].strip()):
        raise ValueError(f"ship_dir must name a folder (or be null), got {cfg['ship_dir']!r}")


def scene_photo(seed: int, n_photos: int) -> int:
    """Index of the corpus photo the SpatialIR env crops for ``reset(seed=seed)``: its first draw from the
    seeded generator (``ir_env.env.SpatialIREnv.reset``), recomputed here because the shards do not store it."""
    from gymnasium.utils import seeding

    return int(seeding.np_random(int(seed))[0].integers(int(n_photos)))


def student_actor(policy: Any, tau: float, margin: float) -> Any:
    """``obs -> Box action`` of the deterministic student (one observation, no batch axis)."""
    from policies.distill.student import decide

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        return decide(policy, {k: np.asarray(v)[None] for k, v in obs.items()}, tau, margin)[0]

    return act


def rollouts(env: Any, teacher: Any, episodes: int, seed: int, act: Any = None) -> tuple[Any, list[float]]:
    """Teacher-labelled episodes (the student acts when ``act`` is given); returns the rows as
    :class:`~policies.distill.dataset.TrajectoryData` (meta from the env) and per-episode PSNR gains."""
    from policies.distill.dataset import TrajectoryData, rows_to_arrays
    from policies.distill.record import record_episode
    from policies.ppo.policy import param_counts_for

    rows, gains = [], []
    for i in range(int(episodes)):
        ep, info = record_episode(env, teacher, seed + i, i, act=act)
        rows += ep
        gains.append(float(info["psnr_gain"]))
    base = env.unwrapped
    meta = {"tool_names": list(base.tool_names), "param_counts": param_counts_for(base.tool_names),
            "num_regions": base.max_regions, "region_dim": int(base.embedder.dim), "num_tools": base.num_tools,
            "num_params": base.num_params}
    return TrajectoryData(rows_to_arrays(rows), meta), gains


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.train_distill`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="distill YAML, e.g. experiments/configs/distill_spatial.yaml (default: none, "
                                     "the built-in settings, DEFAULTS in this script)")
    ap.add_argument("--ship", action="store_true",
                    help="copy model.zip, config.yml and summary.json to the config's ship_dir; not with --quick")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: few epochs and episodes, into <output_dir>/<name>_quick")
    ap.add_argument("--seed", type=int, default=None,
                    help="training seed instead of the config's train.seed; the run is named <name>_seed<N> "
                         "(default: the config's)")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace the run already in <output_dir>/<name> (its outputs are removed first) "
                         "(default: refuse)")
    args = ap.parse_args(argv)
    try:
        if args.quick and args.ship:  # a smoke model must never replace the shipped student
            raise ValueError("--quick makes a smoke model: it is never shipped (drop --ship or --quick)")
        cfg = load_distill_config(args.config)
        if args.ship and not cfg["ship_dir"]:  # it was skipped silently after the whole run
            raise ValueError(f"--ship needs a ship_dir in {args.config or 'the config'}")
        if args.seed is not None:
            cfg["train"]["seed"] = int(args.seed)
            cfg["name"] = f"{cfg['name']}_seed{int(args.seed)}"
        if args.quick:
            cfg["train"]["epochs"], cfg["dagger"]["episodes"], cfg["dagger"]["epochs"] = 5, 4, 2
            cfg["validation"]["episodes"] = cfg["test"]["episodes"] = 4
            cfg["name"] += "_quick"
        check_distill_config(cfg)  # the command-line values too (--seed -1), before anything is loaded
        run(cfg, ship=args.ship, argv=sys.argv if argv is None else argv, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


#: What a run of this script writes into its folder (glob patterns); ``overwrite`` removes them first.
RUN_OUTPUTS = ("model.zip", "config.yml", "summary.json", "*_model.zip")


def run(cfg: dict[str, Any], ship: bool = False, argv: list[str] | None = None, overwrite: bool = False) -> Path:
    """The whole pipeline for a resolved config; returns the run folder. A folder already holding a run
    (:data:`RUN_OUTPUTS`) is refused with ``ValueError`` before any data is read, unless ``overwrite`` (its
    outputs are then removed)."""
    import torch as th
    from stable_baselines3.common.vec_env import DummyVecEnv

    from experiments.configio import check_run_folder
    from ir_env.corpus import load_corpus
    from ir_env.encoder.learned import observation_fingerprint
    from policies.distill.dataset import read_dataset
    from policies.distill.record import make_teacher
    from policies.distill.student import agreement, save_student, train_student
    from policies.ppo.bc import evaluate_gain
    from policies.ppo.config import load_config
    from policies.ppo.train import _tool_info, build_env, make_hybrid_ppo, set_single_thread

    run_dir = Path(cfg["output_dir"]) / str(cfg["name"])
    if not overwrite:  # refused before the (slow) reading; with overwrite, removed only once the data checks
        check_run_folder(run_dir, False, RUN_OUTPUTS)
    set_single_thread()
    th.set_num_threads(1)
    t_start = time.perf_counter()
    parts = [read_dataset(d) for d in cfg["data"]]
    data = parts[0]
    for part in parts[1:]:
        data = data.concat(part)
    meta = data.meta
    pcfg = load_config(cfg["ppo_config"])
    pcfg["policy_kwargs"] = {**pcfg["policy_kwargs"], **cfg["policy_kwargs"]}
    env_id, env_kwargs = meta["env_id"], {k: v for k, v in meta["env_kwargs"].items() if k != "split"}
    if list(meta["tool_names"]) != _tool_info({**pcfg, "env_id": env_id, "env_kwargs": env_kwargs})["tool_names"]:
        raise ValueError("the dataset's tools differ from this install's env tools: record it again")
    now = observation_fingerprint(env_kwargs)
    for folder, part in zip(cfg["data"], parts, strict=True):  # the student is stamped with the weights of NOW
        if part.meta.get("encoder_sha256") != now:
            was = str(part.meta.get("encoder_sha256"))[:12]
            raise ValueError(f"{folder} was recorded through encoder weights {was}, this install observes through "
                             f"{str(now)[:12]}: record it again")
    n_train = len(load_corpus(env_kwargs.get("corpus", "builtin"), split=meta["env_kwargs"].get("split", "train")))
    bad = [i for i in cfg["holdout_photos"] if i >= n_train]
    if bad:
        raise ValueError(f"holdout_photos {bad} out of range: the dataset's split has {n_train} photos")
    check_run_folder(run_dir, overwrite, RUN_OUTPUTS)
    run_dir.mkdir(parents=True, exist_ok=True)
    tr = cfg["train"]
    tau = float(tr["tau"])

    def make(split: str, photos: list[int] | None = None) -> Any:
        if photos is None:
            return build_env(env_id, {**env_kwargs, "split": split}, "hybrid", monitor=False)
        corpus = load_corpus(env_kwargs.get("corpus", "builtin"), split=meta["env_kwargs"].get("split", "train"))
        return build_env(env_id, {**env_kwargs, "corpus": [corpus[i] for i in photos]}, "hybrid", monitor=False)

    scenes = np.unique(data["seed"])  # a scene's reset seed: scene indices repeat across datasets, seeds do not
    hold_photos = [int(i) for i in cfg["holdout_photos"]]
    if hold_photos:  # unseen photos for selection: the test split has photos the student never saw
        n_photos = len(load_corpus(env_kwargs.get("corpus", "builtin"), split=meta["env_kwargs"].get("split", "train")))
        held_parts = []
        for part in parts:
            used = part.meta.get("photos")
            if used is None and not part.meta.get("augment"):
                held_parts.append(np.isin([scene_photo(int(sd), n_photos) for sd in part["seed"]], hold_photos))
            elif used is not None and not set(map(int, used)) & set(hold_photos):
                held_parts.append(np.zeros(len(part), bool))  # recorded without the held-out photos
            else:
                raise ValueError("a dataset recorded on an augmented or chosen corpus must leave out holdout_photos")
        held = np.concatenate(held_parts)
        keep = [i for i in range(n_photos) if i not in hold_photos]
        train_env, val_env = make("train", keep), make("train", hold_photos)
    else:
        n_val = int(round(len(scenes) * float(cfg["val_fraction"])))
        held = np.isin(data["seed"], scenes[len(scenes) - n_val:]) if n_val else np.zeros(len(data), bool)
        train_env, val_env = make("train"), make(cfg["validation"]["split"])
    test_env = make(cfg["test"]["split"])
    # the labels (DAgger, test baseline) always come from greedy; a dfs dataset's own options (budget, max_depth)
    # are not greedy's: only the shared ones are carried over
    shared = ("offsets", "threshold")
    greedy_kwargs = {k: v for k, v in dict(meta.get("teacher_kwargs") or {}).items()
                     if meta["teacher"] == "greedy" or k in shared}
    if meta["teacher"] != "greedy":
        log(f"the dataset's teacher is {meta['teacher']}: its states are learned from, greedy (judge {meta['judge']}) "
            "gives the dense labels, the DAgger labels and the test baseline")
    teacher = make_teacher(train_env, "greedy", judge=meta["judge"], **greedy_kwargs)
    train_data, held_data = data.subset(~held), data.subset(held)
    log(f"{len(train_data)} training states, {len(held_data)} held-out states "
        f"({'photos ' + str(hold_photos) if hold_photos else 'last scenes'})")

    venv = DummyVecEnv([lambda: build_env(env_id, {**env_kwargs, "split": "train"}, "hybrid")])
    model = make_hybrid_ppo(venv, pcfg["policy_kwargs"], seed=int(tr["seed"]), device="cpu", **pcfg["ppo"])
    kw = {k: tr[k] for k in ("batch_size", "lr", "tau", "gain_floor", "param_coef", "vf_coef", "nll_coef",
                             "rank_coef", "weight_decay")}
    summary: dict[str, Any] = {"name": cfg["name"], "config": cfg, "command": " ".join(argv or []),
                               "dataset": {"dirs": cfg["data"], "states": len(data), "scenes": int(len(scenes)),
                                           "teacher": meta["teacher"], "judge": meta["judge"]},
                               "env_id": env_id, "env_kwargs": env_kwargs, "candidates": {}}
    cands = summary["candidates"]

    def validate(label: str, hist: list[dict[str, float]], extra: dict[str, Any]) -> None:
        path = run_dir / f"{label}_model.zip"
        model.save(path)
        per_margin = {}
        for m in cfg["stop_margins"]:
            v = evaluate_gain(val_env, student_actor(model.policy, tau, float(m)), cfg["validation"]["episodes"],
                              cfg["validation"]["seed"])
            per_margin[str(m)] = {"psnr_gain": v["psnr_gain"], "tool_calls": v["tool_calls"]}
        best_m = max(per_margin, key=lambda m: per_margin[m]["psnr_gain"])
        held_agree = agreement(model.policy, held_data, tau, float(best_m)) if len(held_data) else {}
        cands[label] = {"path": str(path), "val": per_margin, "best_margin": float(best_m),
                        "val_psnr_gain": per_margin[best_m]["psnr_gain"], "final_epoch": hist[-1],
                        "heldout_agreement": held_agree, **extra}
        margins = ", ".join(f"{m}: {r['psnr_gain']:.2f}" for m, r in per_margin.items())
        agree = ", ".join(f"{k} {v:.3f}" for k, v in held_agree.items())
        log(f"{label}: validation gain {per_margin[best_m]['psnr_gain']:.3f} dB at stop margin {best_m} "
            f"({margins}); held-out agreement {agree}")

    t0 = time.perf_counter()
    log(f"training the student for {tr['epochs']} epochs")
    done, chunk = 0, int(cfg["eval_every_epochs"]) or int(tr["epochs"])
    while done < int(tr["epochs"]):  # every chunk of epochs is a candidate (early stopping by validation)
        n = min(chunk, int(tr["epochs"]) - done)
        hist = train_student(model.policy, train_data, epochs=n, seed=int(tr["seed"]) + done, val=held_data,
                             log=log, **kw)
        done += n
        validate(f"bc_e{done}", hist, {"train_seconds": time.perf_counter() - t0, "states": len(train_data)})
    d = cfg["dagger"]
    for r in range(int(d["rounds"])):
        t0 = time.perf_counter()
        start = max(cands, key=lambda c: cands[c]["val_psnr_gain"])
        model.set_parameters(cands[start]["path"])
        margin = cands[start]["best_margin"]
        log(f"DAgger round {r + 1}: {d['episodes']} student episodes labelled by the teacher")
        new, gains = rollouts(train_env, teacher, int(d["episodes"]), int(d["seed"]) + 10000 * r,
                              act=student_actor(model.policy, tau, margin))
        own = agreement(model.policy, new, tau, margin)
        new.meta = dict(train_data.meta)
        train_data = train_data.concat(new)
        hist = train_student(model.policy, train_data, epochs=int(d["epochs"]), seed=int(tr["seed"]) + r + 1,
                             val=held_data, log=log, **kw)
        validate(f"dagger{r + 1}", hist, {"train_seconds": time.perf_counter() - t0, "states": len(train_data),
                                          "student_rollout_gain": float(np.mean(gains)),
                                          "own_state_agreement_before": own})

    best = max(cands, key=lambda c: cands[c]["val_psnr_gain"])
    margin = cands[best]["best_margin"]
    model.set_parameters(cands[best]["path"])
    log(f"selected {best} with stop margin {margin}")

    # ------------------------------------------------------------------ test: student vs teacher
    te = cfg["test"]
    s_eval = evaluate_gain(test_env, student_actor(model.policy, tau, margin), te["episodes"], te["seed"])
    test_teacher = make_teacher(test_env, "greedy", judge=meta["judge"], **greedy_kwargs)
    t_data, t_gains = rollouts(test_env, test_teacher, te["episodes"], te["seed"])
    t_sec = time.perf_counter()
    t_eval = evaluate_gain(test_env, test_teacher, te["episodes"], te["seed"])
    t_sec = time.perf_counter() - t_sec
    own_data, _ = rollouts(test_env, test_teacher, te["episodes"], te["seed"],
                           act=student_actor(model.policy, tau, margin))
    summary["test"] = {
        "episodes": te["episodes"], "seed": te["seed"], "split": te["split"],
        "student": {k: s_eval[k] for k in ("psnr_gain", "tool_calls", "stop_rate", "seconds")},
        "teacher": {k: t_eval[k] for k in ("psnr_gain", "tool_calls", "stop_rate")} | {
            "seconds": t_sec, "planner": f"greedy (judge {meta['judge']})"},  # the labeller, also for a dfs dataset
        "gain_ratio": s_eval["psnr_gain"] / t_eval["psnr_gain"] if t_eval["psnr_gain"] else float("nan"),
        "agreement_on_teacher_states": agreement(model.policy, t_data, tau, margin),
        "agreement_on_student_states": agreement(model.policy, own_data, tau, margin),
        "teacher_rollout_gain": float(np.mean(t_gains)),
    }
    log(f"TEST ({te['episodes']} episodes): student {s_eval['psnr_gain']:.3f} dB vs teacher {t_eval['psnr_gain']:.3f}"
        f" dB (ratio {summary['test']['gain_ratio']:.2f}); seconds {s_eval['seconds']:.1f} vs {t_sec:.1f}; "
        f"agreement on teacher states {summary['test']['agreement_on_teacher_states']}")

    save_student(model, run_dir, pcfg, env_id, env_kwargs, tau, float(margin), selected=best,
                 teacher=meta["teacher"], judge=meta["judge"], data=cfg["data"], states=len(train_data))
    summary["selected"], summary["stop_margin"] = best, margin
    summary["wall_seconds"] = time.perf_counter() - t_start
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    if ship and cfg["ship_dir"]:
        keep = {"model.zip", "config.yml", "summary.json"}
        shutil.copytree(run_dir, cfg["ship_dir"], dirs_exist_ok=True,
                        ignore=lambda folder, names: [n for n in names if n not in keep])
        log(f"shipped model.zip, config.yml and summary.json to {cfg['ship_dir']}")
    for closable in (train_env, val_env, test_env, venv):
        closable.close()
    log(f"done in {summary['wall_seconds']:.0f} s; run folder {run_dir}")
    return run_dir


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
