"""Fit ``perceive``'s learned step chooser (:mod:`policies.step_chooser`) on TRAIN photos.

1. **Data.** Random crops of the train photos are degraded with each recipe of the config; the shipped ``perceive``
   planner (its regions, perception, thresholds and step cap) runs on each scene with the table's choices, and at
   every step records the chooser's features of the region as it is then and, with the clean crop, the PSNR of the
   scene after each option: the family's entry at every severity bin, and no step.
2. **Model selection.** Per family and ridge strength of ``alphas``: leave-one-photo-out over the train photos (the
   model of a photo's steps never saw that photo), each step takes the option predicted best; the score is the
   summed PSNR change over the table's own choice per scene (step by step: every step is scored in the state the
   table's trajectory reached). Per family the strength with the best score is kept, and the family gets no model
   (the table decides) when even that score is not above ``min_gain_db``. Models: ridge regression on
   standardised features to every option's PSNR change relative to the table's entry.
3. **Fit** each kept family on all its data; written as a step-chooser JSON.

Nothing here reads test or holdout photos.

    python -m experiments.fit_step_chooser --config experiments/configs/step_chooser.yaml
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from experiments.configio import (  # noqa: E402
    check_keys,
    check_output,
    config_int,
    config_names,
    read_config,
)
from experiments.fit_rule_table import psnr, scene_set  # noqa: E402
from ir_env.corpus import load_corpus  # noqa: E402
from policies.rules import RESTORE_ORDER, families_seen  # noqa: E402
from policies.step_chooser import FamilyModel, StepChooser, step_features  # noqa: E402
from restorers import apply  # noqa: E402

#: Required config keys (every key this script reads; no other key is accepted).
KEYS = ("recipes", "scenes_per_photo", "crop", "seed", "alphas", "min_gain_db", "corpus", "output", "report_dir")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_config(path: str | Path) -> dict[str, Any]:
    """The config at ``path``; ``ValueError`` naming the file and a missing, unknown or malformed key (checked before
    any scene is made)."""
    from ir_env.paths import check_writable
    from ir_env.recipes import get_recipe

    where = str(path)
    cfg = read_config(path)
    check_keys(cfg, KEYS, where, required=KEYS)
    for recipe in config_names(cfg, "recipes", where, "recipe names"):
        try:
            get_recipe(recipe)
        except ValueError as e:
            raise ValueError(f"{where}: recipes: {e}") from None
    config_int(cfg, "scenes_per_photo", where, minimum=1)
    config_int(cfg, "crop", where, minimum=8)
    config_int(cfg, "seed", where, minimum=0)
    alphas = cfg["alphas"]
    if not isinstance(alphas, list) or not alphas or not all(_number(a) and a > 0 for a in alphas):
        raise ValueError(f"{where}: alphas must be a non-empty list of positive ridge strengths, got {alphas!r}")
    if not _number(cfg["min_gain_db"]):
        raise ValueError(f"{where}: min_gain_db must be a number (dB per scene), got {cfg['min_gain_db']!r}")
    if not isinstance(cfg["corpus"], str) or not cfg["corpus"]:
        raise ValueError(f"{where}: corpus must be a corpus name or folder, got {cfg['corpus']!r}")
    for key in ("output", "report_dir"):
        if not isinstance(cfg[key], str) or not cfg[key]:
            raise ValueError(f"{where}: {key} must be a path, got {cfg[key]!r}")
    check_output(cfg["output"], "output")
    check_writable(cfg["report_dir"], "report_dir", folder=True)
    return cfg


@functools.cache
def _planner() -> Any:
    from policies import make_planner

    return make_planner("perceive", tile=0)


def scene_steps(scene: Any, planner: Any) -> list[dict[str, Any]]:
    """The steps ``planner`` (a table-choosing ``perceive``) takes on ``scene``, each with the chooser's features
    (``x``), its family, the table's bin, and the scene PSNR after every option (``q``: bins, then no step)."""
    img = scene.degraded
    masks = planner.proposer.propose(img)
    seen = families_seen(planner.embedder.predict(img, masks), planner.thresholds)
    table, out = planner.table, []
    for fam in RESTORE_ORDER:
        for k, fams in enumerate(seen):
            if fam not in fams or not masks[k].any() or len(out) >= planner.max_steps:
                continue
            x = step_features(planner.embedder.embed(img, masks)[k], img, masks[k])
            q = [psnr(apply(img, *table.entry(fam, b), mask=masks[k]), scene.clean) for b in range(table.bins)]
            q.append(psnr(img, scene.clean))
            b0 = table.bin_of(fams[fam])
            out.append({"family": fam, "table_bin": b0, "x": x, "q": np.asarray(q)})
            img = apply(img, *table.entry(fam, b0), mask=masks[k])
    return out


def _job(args: tuple) -> list[dict[str, Any]]:
    scene, photo = args
    return [{**s, "photo": photo} for s in scene_steps(scene, _planner())]


def collect(cfg: dict[str, Any], workers: int, progress: bool) -> tuple[list[dict[str, Any]], int]:
    """Every recorded step of the config's train scenes (each tagged with its photo index) and the scene count."""
    photos = [("", p) for p in load_corpus(cfg["corpus"], "train")]
    jobs = []
    for r, recipe in enumerate(cfg["recipes"]):
        scenes = scene_set(photos, recipe, int(cfg["scenes_per_photo"]), int(cfg["crop"]), int(cfg["seed"]) + 1000 * r,
                           random_crops=True)
        jobs += [(sc, i % len(photos)) for i, sc in enumerate(scenes)]  # scene_set cycles through the photos
    with Pool(workers) as pool:
        steps = [s for part in tqdm(pool.imap(_job, jobs), total=len(jobs), desc="record steps", disable=not progress)
                 for s in part]
    return steps, len(jobs)


def fit_family(x: np.ndarray, y: np.ndarray, alpha: float) -> FamilyModel:
    """Ridge regression of ``y`` (n, options) on standardised ``x`` (n, D) with strength ``alpha``."""
    from sklearn.linear_model import Ridge

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    m = Ridge(alpha=float(alpha)).fit((x - mean) / scale, y)
    return FamilyModel(mean=mean, scale=scale, coef=np.asarray(m.coef_, np.float64),
                       intercept=np.asarray(m.intercept_, np.float64))


def targets(steps: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(features, PSNR change of every option relative to the table's bin) of ``steps``."""
    x = np.stack([s["x"] for s in steps])
    q = np.stack([s["q"] for s in steps])
    base = q[np.arange(len(steps)), [s["table_bin"] for s in steps]]
    return x, q - base[:, None]


def cross_validate(steps: list[dict[str, Any]], alpha: float, scenes: int) -> dict[str, Any]:
    """Leave-one-photo-out score of ridge strength ``alpha``: per family and in total, the summed PSNR change (dB)
    over the table's choice per scene, and the same for the per-step oracle (the best option with the clean image)."""
    fams: dict[str, Any] = {}
    for fam in RESTORE_ORDER:
        mine = [s for s in steps if s["family"] == fam]
        if not mine:
            continue
        x, y = targets(mine)
        photo = np.array([s["photo"] for s in mine])
        chosen = np.zeros(len(mine), dtype=int)
        for p in np.unique(photo):
            tr, te = photo != p, photo == p
            if not tr.any():  # one photo only: nothing to learn from
                chosen[te] = [s["table_bin"] for s, t in zip(mine, te, strict=True) if t]
                continue
            chosen[te] = np.argmax(fit_family(x[tr], y[tr], alpha).predict(x[te]), axis=1)
        got = y[np.arange(len(mine)), chosen]
        fams[fam] = {"steps": len(mine), "per_scene_db": float(got.sum() / scenes),
                     "oracle_per_scene_db": float(y.max(axis=1).sum() / scenes),
                     "skipped": float(np.mean(chosen == y.shape[1] - 1)),
                     "changed": float(np.mean(chosen != [s["table_bin"] for s in mine]))}
    return {"alpha": float(alpha), "per_scene_db": float(sum(f["per_scene_db"] for f in fams.values())),
            "oracle_per_scene_db": float(sum(f["oracle_per_scene_db"] for f in fams.values())), "families": fams}


def choose_alphas(cv: list[dict[str, Any]], min_gain_db: float) -> dict[str, float]:
    """Per family, the ridge strength with the best leave-one-photo-out score in ``cv`` (one
    :func:`cross_validate` result per strength); families whose best score is not above ``min_gain_db`` are left
    out (the table keeps deciding them)."""
    out = {}
    for fam in cv[0]["families"]:
        best = max(cv, key=lambda c: c["families"][fam]["per_scene_db"])
        if best["families"][fam]["per_scene_db"] > min_gain_db:
            out[fam] = best["alpha"]
    return out


def fit_chooser(steps: list[dict[str, Any]], alphas: dict[str, float], bins: int, fingerprint: str,
                info: dict[str, Any]) -> StepChooser:
    """The chooser fitted on all ``steps``: a model for each family of ``alphas`` (its ridge strength)."""
    models = {}
    for fam, alpha in alphas.items():
        mine = [s for s in steps if s["family"] == fam]
        if mine:
            models[fam] = fit_family(*targets(mine), alpha)
    return StepChooser(bins=bins, models=models, encoder_fingerprint=fingerprint, info=info)


def kept_score(cv: list[dict[str, Any]], alphas: dict[str, float]) -> float:
    """Leave-one-photo-out dB per scene of the kept per-family choices (families without a model count 0)."""
    by_alpha = {c["alpha"]: c for c in cv}
    return float(sum(by_alpha[a]["families"][f]["per_scene_db"] for f, a in alphas.items()))


def markdown(report: dict[str, Any]) -> str:
    """The fit report as Markdown."""
    lines = ["# Step chooser for `perceive` (fitted on TRAIN photos)", "", f"`{report['command']}`", "",
             f"{report['scenes']} train scenes ({', '.join(report['config']['recipes'])}), {report['steps']} steps; "
             f"{report['seconds']:.0f} s. Leave-one-photo-out: summed PSNR change (dB) per scene over the table's own "
             "choice, every step scored in the state the table's trajectory reached (oracle: the best option "
             "with the clean image). Per family the best ridge strength is kept; a family whose best is not above "
             f"{report['config']['min_gain_db']:+g} dB gets no model.", "",
             "| family | steps | oracle | " + " | ".join(f"alpha {c['alpha']:g}" for c in report["cv"])
             + " | kept |", "|---|---|---|" + "---|" * len(report["cv"]) + "---|"]
    for fam, v in report["cv"][0]["families"].items():
        cells = [f"{c['families'][fam]['per_scene_db']:+.3f}" for c in report["cv"]]
        kept = f"alpha {report['alphas'][fam]:g}" if fam in report["alphas"] else "table"
        lines.append(f"| {fam} | {v['steps']} | {v['oracle_per_scene_db']:+.3f} | " + " | ".join(cells)
                     + f" | {kept} |")
    lines += ["", f"Kept choices together: **{report['kept_per_scene_db']:+.3f} dB per scene** (leave-one-photo-out; "
              f"the oracle {report['cv'][0]['oracle_per_scene_db']:+.3f})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: record, cross-validate, fit, write the chooser and its report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="experiments/configs/step_chooser.yaml",
                    help="the YAML config (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2,
                    help="processes recording the planner's steps (default: %(default)s)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar (default: one is shown)")
    args = ap.parse_args(argv)
    try:
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        cfg = load_config(args.config)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from ir_env.encoder.learned import DEFAULT_WEIGHTS, weights_fingerprint

    t0 = time.perf_counter()
    steps, scenes = collect(cfg, args.workers, not args.no_progress)
    if not steps:
        print("error: the planner took no step on these scenes: nothing to fit", file=sys.stderr)
        return 2
    cv = [cross_validate(steps, float(a), scenes) for a in cfg["alphas"]]
    alphas = choose_alphas(cv, float(cfg["min_gain_db"]))
    command = f"python -m experiments.fit_step_chooser --config {args.config}"
    chooser = fit_chooser(steps, alphas, _planner().table.bins, weights_fingerprint(DEFAULT_WEIGHTS),
                          {"command": command, "alphas": alphas, "scenes": scenes, "steps": len(steps),
                           "recipes": list(cfg["recipes"])})
    path = chooser.save(cfg["output"])
    report = {"command": command, "config": cfg, "scenes": scenes, "steps": len(steps), "alphas": alphas, "cv": cv,
              "kept_per_scene_db": kept_score(cv, alphas), "seconds": round(time.perf_counter() - t0, 1),
              "output": str(path)}
    out = Path(cfg["report_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "fit.json").write_text(json.dumps(report, indent=1))
    (out / "fit.md").write_text(markdown(report))
    print(f"wrote {path}, {out}/fit.json and fit.md (models for {', '.join(alphas) or 'no family'}: "
          f"{report['kept_per_scene_db']:+.2f} dB per scene, leave-one-photo-out)")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
