"""Record a teacher planner's decisions on training scenes into a trajectory dataset (``.npz`` shards).

Each scene is one episode of the SpatialIR env (``env_kwargs``, ``split``; reset seed ``seed + s`` for
scene ``s``). The teacher (``greedy`` or ``dfs``, judge ``psnr`` = an oracle by default) decides every
step; every decision is a row: region embeddings (K x D) with the valid mask, history and steps left (the
env observation), the chosen region, tool, physical and normalised parameters, judge quality and PSNR
before / after, step index, scene index and seed, and the dense labels (gain and best parameters of every
(region, tool) pair). The format is documented in :mod:`policies.distill.dataset`.

Scenes are written in shards of ``episodes_per_shard``; a shard that exists is skipped, so an interrupted
run resumes where it stopped (same directory, same settings; other settings are refused).

Usage::

    python -m experiments.record_trajectories --config experiments/configs/record_greedy.yaml
    python -m experiments.record_trajectories --config ... --episodes 40 --out runs/traj_small

Config keys (YAML; command-line flags override): ``out_dir``, ``ppo_config`` (a training config whose
``env_id``/``env_kwargs`` define the env; so the student can initialise PPO) or ``env_id`` +
``env_kwargs``, ``split`` (``train``), ``teacher`` (``greedy``/``dfs``), ``judge`` (``psnr``),
``teacher_kwargs`` (e.g. ``offsets``), ``dense`` (dense labels for a dfs teacher), ``episodes``,
``episodes_per_shard``, ``seed``, ``photos`` (indices into the split's photos to use; ``null`` = all) and
``augment`` (``{variants: V, seed: S}``: each used photo also enters the corpus as V photometric variants,
see :func:`photometric_variants`; ``null`` = off).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from experiments.configio import read_config  # noqa: E402

DEFAULTS: dict[str, Any] = {
    "out_dir": "runs/trajectories/greedy_spatial64",
    "ppo_config": "experiments/configs/ppo_spatial.yaml",
    "env_id": None,
    "env_kwargs": None,
    "split": "train",
    "teacher": "greedy",
    "judge": "psnr",
    "teacher_kwargs": {},
    "dense": True,
    "episodes": 400,
    "episodes_per_shard": 25,
    "seed": 1000,
    "photos": None,
    "augment": None,
}


def merge_config(defaults: dict[str, Any], path: str | None, **overrides: Any) -> dict[str, Any]:
    """``defaults`` updated by the YAML file at ``path`` and then by ``overrides`` (``None`` values ignored).
    Mapping-valued defaults are merged one level deep; unknown keys raise ``ValueError``, a missing file
    ``FileNotFoundError``. (Shared by the distillation scripts.)"""
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}
    sources = [{k: v for k, v in overrides.items() if v is not None}]
    if path:
        sources.insert(0, read_config(path, empty_ok=True))
    for src in sources:
        unknown = set(src) - set(defaults)
        if unknown:
            raise ValueError(f"unknown config key(s) {sorted(unknown)}; known: {', '.join(defaults)}")
        for k, v in src.items():
            if isinstance(defaults[k], dict):
                if v is not None and not isinstance(v, dict):
                    raise ValueError(f"{k} must be a mapping (key: value lines), got {v!r}")
                bad = set(v or {}) - set(defaults[k]) if defaults[k] else set()
                if bad:
                    raise ValueError(f"unknown key(s) {sorted(bad)} under {k!r}")
                cfg[k] = {**cfg[k], **(v or {})}
            else:
                cfg[k] = v
    return cfg


def load_record_config(path: str | None, **overrides: Any) -> dict[str, Any]:
    """The recording config: :data:`DEFAULTS`, the YAML at ``path``, then ``overrides``; checked."""
    cfg = merge_config(DEFAULTS, path, **overrides)
    for key in ("episodes", "episodes_per_shard", "seed"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{key} must be a whole number, got {v!r}")
    if cfg["episodes"] < 1 or cfg["episodes_per_shard"] < 1:
        raise ValueError("episodes and episodes_per_shard must be >= 1")
    if not isinstance(cfg["out_dir"], (str, Path)) or not str(cfg["out_dir"]).strip():
        raise ValueError("out_dir (--out) must name a dataset directory, got an empty value")
    if Path(cfg["out_dir"]).exists() and not Path(cfg["out_dir"]).is_dir():
        raise ValueError(f"out_dir {cfg['out_dir']} is a file, not a dataset directory")
    photos = cfg["photos"]
    if photos is not None and (not isinstance(photos, list) or not photos
                               or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in photos)):
        raise ValueError(f"photos must be null or a non-empty list of photo indices (whole numbers >= 0), "
                         f"got {photos!r}")
    aug = cfg["augment"]
    if aug is not None and (not isinstance(aug, dict) or not isinstance(aug.get("variants"), int)
                            or isinstance(aug.get("variants"), bool) or aug["variants"] < 1
                            or set(aug) - {"variants", "seed"}):
        raise ValueError(f"augment must be null or {{variants: V >= 1, seed: S}}, got {aug!r}")
    if not isinstance(cfg["teacher_kwargs"] or {}, dict):
        raise ValueError(f"teacher_kwargs must be a mapping, got {cfg['teacher_kwargs']!r}")
    if not isinstance(cfg["dense"], bool):
        raise ValueError(f"dense must be true or false, got {cfg['dense']!r}")
    return cfg


def env_settings(cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(env_id, env_kwargs)`` from the config: explicit ones, else the PPO config's."""
    if cfg.get("env_kwargs") is not None and not isinstance(cfg["env_kwargs"], dict):
        raise ValueError(f"env_kwargs must be a mapping of env option -> value, got {cfg['env_kwargs']!r}")
    if cfg.get("env_kwargs"):
        return str(cfg.get("env_id") or "SpatialIR-v1"), dict(cfg["env_kwargs"])
    from policies.ppo.config import load_config

    pcfg = load_config(cfg["ppo_config"])
    return str(pcfg["env_id"]), dict(pcfg["env_kwargs"])


def photometric_variants(image: Any, n: int, rng: Any) -> list[Any]:
    """``n`` variants of a clean photo with other global tone and colour: gamma U[0.6, 1.6], gain U[0.6, 1.15],
    saturation U[0.4, 1.3] and a horizontal flip half of the time. They break the link between a photo's
    own brightness / colour and its degradations (the train split has 8 photos only). Hand-written: a
    few array operations, no library offers this exact jitter."""
    import numpy as np

    out = []
    for _ in range(int(n)):
        img = np.clip(image, 0.0, 1.0) ** rng.uniform(0.6, 1.6) * rng.uniform(0.6, 1.15)
        luma = img @ np.array([0.299, 0.587, 0.114], np.float32)
        img = luma[..., None] + rng.uniform(0.4, 1.3) * (img - luma[..., None])
        if rng.uniform() < 0.5:
            img = img[:, ::-1]
        out.append(np.ascontiguousarray(np.clip(img, 0.0, 1.0), dtype=np.float32))
    return out


def training_corpus(cfg: dict[str, Any], env_kwargs: dict[str, Any]) -> list[Any] | None:
    """The corpus images for ``photos`` / ``augment`` (``None``: the env loads its named corpus itself)."""
    import numpy as np

    from ir_env.corpus import load_corpus

    if cfg["photos"] is None and not cfg["augment"]:
        return None
    photos = load_corpus(env_kwargs.get("corpus", "builtin"), split=cfg["split"])
    wanted = cfg["photos"] if cfg["photos"] is not None else range(len(photos))
    bad = [i for i in wanted if not 0 <= int(i) < len(photos)]
    if bad:
        raise ValueError(f"photos {bad} out of range: the {cfg['split']} split has {len(photos)} photos "
                         f"(indices 0-{len(photos) - 1})")
    chosen = [photos[int(i)] for i in wanted]
    if cfg["augment"]:
        rng = np.random.default_rng(int(cfg["augment"].get("seed", 0)))
        chosen += [v for img in list(chosen) for v in photometric_variants(img, cfg["augment"]["variants"], rng)]
    return chosen


def record(cfg: dict[str, Any], progress: bool = True, log: Any = print) -> Path:
    """Record the dataset a resolved config describes; returns its directory."""
    import numpy as np
    from tqdm import tqdm

    from ir_env.encoder.learned import observation_fingerprint
    from policies.distill.dataset import read_shard, rows_to_arrays, shard_path, write_meta, write_shard
    from policies.distill.record import RecordingGreedy, make_teacher, record_episode
    from policies.ppo.policy import param_counts_for
    from policies.ppo.train import build_env, config_error, set_single_thread

    set_single_thread()
    env_id, env_kwargs = env_settings(cfg)
    corpus = training_corpus(cfg, env_kwargs)
    try:
        env = build_env(env_id, {**env_kwargs, "split": cfg["split"], **({"corpus": corpus} if corpus else {})},
                        "hybrid", monitor=False)
    except TypeError as exc:  # an env keyword it does not take: named as spatial-ir train names it
        raise config_error("env_kwargs", env_kwargs, exc) from None
    base = env.unwrapped
    try:
        teacher = make_teacher(env, cfg["teacher"], judge=cfg["judge"], seed=int(cfg["seed"]),
                               **dict(cfg["teacher_kwargs"] or {}))
    except TypeError as exc:  # an option the teacher does not take
        from ir_env.option_errors import unexpected_keyword

        name = unexpected_keyword(exc)
        raise ValueError(f"teacher_kwargs: {cfg['teacher']} takes no option {name!r}" if name
                         else f"teacher_kwargs: {exc}") from None
    labeller = None
    if not isinstance(teacher, RecordingGreedy) and cfg["dense"]:
        labeller = make_teacher(env, "greedy", judge=cfg["judge"], seed=int(cfg["seed"]))
    out = Path(cfg["out_dir"])
    per = int(cfg["episodes_per_shard"])
    fingerprint = observation_fingerprint(env_kwargs)  # shards made with other encoder weights: never resumed
    stamp = {"encoder_sha256": fingerprint} if fingerprint else {}
    n_shards = -(-int(cfg["episodes"]) // per)
    beyond = sorted(q.name for q in out.glob("shard_*.npz") if _shard_index(q) >= n_shards)
    if beyond:
        raise ValueError(f"{out} holds shards past the {n_shards} that {cfg['episodes']} episodes make "
                         f"({beyond[0]}, ...): it was recorded with more episodes; use that number or more, or a new "
                         "directory")

    def complete(i: int) -> bool:  # a shard of an earlier run with fewer episodes holds fewer scenes: re-record it
        path = shard_path(out, i)
        if not path.is_file():
            return False
        try:
            have = set(np.unique(read_shard(path)["scene"]).tolist())
        except ValueError as exc:  # damaged (cut short, not a zip, a field missing): recorded again
            log(f"{exc}: recording it again")
            return False
        if max(have, default=-1) >= int(cfg["episodes"]):  # re-recording it would drop recorded scenes
            raise ValueError(f"{path} holds scenes up to {max(have)}: {out} was recorded with more than the "
                             f"{cfg['episodes']} episodes asked for; use that number or more, or a new directory")
        return have == set(range(i * per, min((i + 1) * per, int(cfg["episodes"]))))

    todo = [i for i in range(n_shards) if not complete(i)]  # every check before meta.json or a shard is written
    write_meta(out, {"teacher": cfg["teacher"], "judge": cfg["judge"], "teacher_kwargs": cfg["teacher_kwargs"] or {},
                     "env_id": env_id, "env_kwargs": {**env_kwargs, "split": cfg["split"]},
                     "tool_names": list(base.tool_names), "param_counts": param_counts_for(base.tool_names),
                     "num_regions": base.max_regions, "region_dim": int(base.embedder.dim),
                     "num_tools": base.num_tools, "num_params": base.num_params, "embedding": base.embedding,
                     "episodes_per_shard": per, "episodes": int(cfg["episodes"]), "seed": int(cfg["seed"]),
                     "photos": cfg["photos"],
                     "augment": cfg["augment"], "dense": bool(cfg["dense"]), **stamp}, must_match=tuple(stamp))
    log(f"{out}: {n_shards - len(todo)} of {n_shards} shards exist; recording {len(todo)}")
    bar = tqdm(total=sum(min(per, int(cfg["episodes"]) - i * per) for i in todo), unit="scene",
               desc=f"record {cfg['teacher']}", disable=not progress)
    gains: list[float] = []
    t0 = time.perf_counter()
    for i in todo:
        rows: list[dict[str, Any]] = []
        for scene in range(i * per, min((i + 1) * per, int(cfg["episodes"]))):
            ep, info = record_episode(env, teacher, int(cfg["seed"]) + scene, scene, labeller=labeller)
            rows += ep
            gains.append(float(info["psnr_gain"]))
            bar.update(1)
            bar.set_postfix(gain=f"{np.mean(gains):.2f} dB")
        write_shard(shard_path(out, i), rows_to_arrays(rows))
    bar.close()
    env.close()
    if gains:
        log(f"recorded {len(gains)} scenes in {time.perf_counter() - t0:.0f} s, teacher mean PSNR gain "
            f"{np.mean(gains):.3f} dB")
    return out


def _shard_index(path: Path) -> int:
    """The index in a ``shard_<index>.npz`` name (-1 for another name)."""
    digits = path.stem.removeprefix("shard_")
    return int(digits) if digits.isdigit() else -1


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.record_trajectories`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="record YAML, e.g. experiments/configs/record_greedy.yaml (default: the "
                    "built-in settings, which record fewer episodes than that file)")
    ap.add_argument("--out", dest="out_dir", help="dataset directory (overrides out_dir)")
    ap.add_argument("--episodes", type=int, help="number of scenes (overrides episodes)")
    ap.add_argument("--teacher", choices=["greedy", "dfs"], help="teacher planner (overrides teacher)")
    ap.add_argument("--judge", help="judge metric of the teacher (psnr, also written oracle: sees the clean image; "
                    "npsnr, brisque, ...: deployable)")
    ap.add_argument("--seed", type=int, help="scene s uses reset seed seed + s")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        cfg = load_record_config(args.config, out_dir=args.out_dir, episodes=args.episodes, teacher=args.teacher,
                                 judge="psnr" if args.judge == "oracle" else args.judge, seed=args.seed)
        record(cfg, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
