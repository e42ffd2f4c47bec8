"""Fit the perception gate's per-family thresholds for one learned policy (TRAIN photos only).

The gate (:mod:`policies.gate`) keeps a policy's step only when the encoder sees the step's tool family in its
region with probability at least the family's threshold. The rule table's thresholds were tuned for the
``perceive`` planner's own actions; this script tunes them for a given policy: it runs the policy ungated once on
tuning scenes of several recipes (random crops of the train photos) and on undegraded train crops, records every
step with the encoder's probability for its family (through the table's perception, as the gate reads it), and
then searches thresholds by coordinate descent over a grid -- maximising the mean PSNR gain over the recipes
(each weighted equally) subject to leaving at least as many undegraded crops untouched as the table's thresholds
do (and at least ``min_untouched``). Any threshold vector's outcome is the replay of the steps it keeps (exactly
what the gate does), cached per kept set, so the search runs no policy again.

    python -m experiments.fit_gate --config experiments/configs/ppo_gate.yaml [--ship]

Writes ``<output_dir>/gate.json`` and the report (``report_json`` / ``report_md``); ``--ship`` also writes the
thresholds into the policy's ``config.yml`` as ``deploy: {gate: {thresholds: ...}}``, which
``make_planner("ppo")``'s default ``"policy"`` gate reads.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from tqdm import tqdm  # noqa: E402

from experiments.configio import read_config  # noqa: E402
from experiments.fit_rule_table import clean_crop_set, psnr  # noqa: E402
from ir_env.corpus import load_named_corpus, random_crop  # noqa: E402
from ir_env.recipes import synthesize  # noqa: E402
from restorers import apply, get_tool  # noqa: E402
from restorers.spec import FAMILIES  # noqa: E402

REQUIRED = ("policy", "fit", "output_dir", "report_json", "report_md")
FIT_KEYS = ("photos", "recipes", "scenes_per_photo", "crop", "seed", "clean_crops", "min_untouched", "grid",
            "passes")


@dataclass
class Recorded:
    """One tuning image run through the ungated policy: its input, clean reference, the policy's steps, each
    step's family index and the encoder's probability for that family in the step's region (input image)."""

    image: np.ndarray
    clean: np.ndarray
    steps: list[Any]
    masks: np.ndarray
    family: np.ndarray          # (n_steps,) index into FAMILIES
    prob: np.ndarray            # (n_steps,) probability of that family in the step's region
    output: np.ndarray          # the ungated output (every step kept)
    cache: dict[tuple[int, ...], float] = field(default_factory=dict)  # kept steps -> output PSNR (dB)

    def kept(self, thr: np.ndarray) -> tuple[int, ...]:
        """Indices of the steps the gate keeps at per-family thresholds ``thr`` (FAMILIES order)."""
        return tuple(int(i) for i in np.flatnonzero(self.prob >= thr[self.family]))

    def out_psnr(self, thr: np.ndarray) -> float:
        """PSNR (dB, against the clean image) of the gated output: the kept steps replayed on the input."""
        keep = self.kept(thr)
        if keep not in self.cache:
            if len(keep) == len(self.steps):
                out = self.output
            else:
                out = self.image
                for i in keep:
                    st = self.steps[i]
                    out = apply(out, st.tool, st.params, mask=self.masks[st.region], feather=st.feather)
            self.cache[keep] = psnr(out, self.clean)
        return self.cache[keep]


def record(planner: Any, embedder: Any, image: np.ndarray, clean: np.ndarray) -> Recorded:
    """Run ``planner`` (ungated) on ``image`` and read the encoder's step probabilities as the gate does."""
    res = planner.restore(image)
    fam = np.array([FAMILIES.index(get_tool(st.tool).family) for st in res.trace], int)
    if res.trace:
        prob_map = embedder.predict(image, res.masks)["family_prob"]
        prob = np.array([float(prob_map[st.region, f]) for st, f in zip(res.trace, fam, strict=True)])
    else:
        prob = np.zeros(0)
    return Recorded(image, clean, list(res.trace), res.masks, fam, prob, res.image)


def tuning_set(cfg: dict[str, Any], planner: Any, embedder: Any, progress: bool = True
               ) -> tuple[dict[str, list[Recorded]], list[Recorded]]:
    """Per recipe the recorded tuning scenes (random crops of the train photos, one scene stream per
    recipe from ``seed``), and the recorded undegraded crops."""
    fit = cfg["fit"]
    photos = [img for _, img in load_named_corpus(fit["photos"], split="train")]
    crop = int(fit["crop"])
    jobs: list[tuple[str, np.ndarray, np.ndarray]] = []
    for r, recipe in enumerate(fit["recipes"]):
        rng = np.random.default_rng([int(fit["seed"]), 1, r])
        for _ in range(int(fit["scenes_per_photo"])):
            for photo in photos:
                clean = random_crop(photo, crop, rng)
                scene = synthesize(clean, recipe=recipe, seed=int(rng.integers(2**31)))
                jobs.append((recipe, scene.degraded, clean))
    for c in clean_crop_set(photos, int(fit["clean_crops"]), crop, int(fit["seed"]), cap_db=0.0):
        jobs.append(("", c.clean, c.clean))
    scenes: dict[str, list[Recorded]] = {r: [] for r in fit["recipes"]}
    crops: list[Recorded] = []
    for recipe, image, clean in tqdm(jobs, desc="record", unit="image", disable=not progress):
        rec = record(planner, embedder, image, clean)
        (scenes[recipe] if recipe else crops).append(rec)
    return scenes, crops


def score(thr: np.ndarray, scenes: dict[str, list[Recorded]], crops: list[Recorded]) -> dict[str, Any]:
    """Mean PSNR gain per recipe (dB), their mean (the objective) and the share of undegraded crops left
    untouched at thresholds ``thr``."""
    gains = {r: float(np.mean([s.out_psnr(thr) - psnr(s.image, s.clean) for s in recs]))
             for r, recs in scenes.items()}
    untouched = float(np.mean([len(c.kept(thr)) == 0 for c in crops])) if crops else 1.0
    return {"gains": gains, "objective": float(np.mean(list(gains.values()))), "untouched": untouched}


def coordinate_descent(start: np.ndarray, grid: list[float], passes: int, floor: float,
                       scenes: dict[str, list[Recorded]], crops: list[Recorded]
                       ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Per family in turn (``passes`` times) the grid value with the best objective among those keeping at
    least ``floor`` of the crops untouched (ties: the higher threshold); returns the thresholds and the log."""
    thr = start.astype(float).copy()
    log = []
    for p in range(int(passes)):
        for fi, fam in enumerate(FAMILIES):
            best_v, best = thr[fi], score(thr, scenes, crops)
            for v in sorted(set(grid) | {float(thr[fi])}, reverse=True):  # high first: ties keep the higher
                t = thr.copy()
                t[fi] = v
                s = score(t, scenes, crops)
                if s["untouched"] >= floor - 1e-12 and s["objective"] > best["objective"] + 1e-9:
                    best_v, best = v, s
            log.append({"pass": p, "family": fam, "from": float(thr[fi]), "to": float(best_v),
                        "objective": best["objective"], "untouched": best["untouched"]})
            thr[fi] = best_v
    return thr, log


def run(cfg: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Record, search, and return the report (thresholds, scores of the table / fitted / no gate)."""
    from ir_env.encoder.learned import DEFAULT_WEIGHTS, perception_fingerprint
    from policies import make_planner
    from policies.gate import PerceptionGate, gate_thresholds

    fit = cfg["fit"]
    t0 = time.perf_counter()
    planner = make_planner("ppo", path=cfg["policy"], gate="off", tile=0)
    gate = PerceptionGate(planner, "table")  # the table's perception: what the gate reads
    scenes, crops = tuning_set(cfg, planner, gate.embedder, progress=progress)
    t_rec = time.perf_counter() - t0
    table = gate_thresholds("table")
    start = np.array([table[f] for f in FAMILIES])
    at_table = score(start, scenes, crops)
    floor = max(float(fit["min_untouched"]), at_table["untouched"])
    fitted, log = coordinate_descent(start, [float(v) for v in fit["grid"]], int(fit["passes"]), floor, scenes, crops)
    context = gate.embedder.context is not None  # the perception the gate reads (the table's)
    return {
        "config": cfg, "policy": str(cfg["policy"]),
        "thresholds": {f: float(v) for f, v in zip(FAMILIES, fitted, strict=True)},
        "table_thresholds": table, "floor": floor,
        "scores": {"off": score(np.zeros(len(FAMILIES)), scenes, crops), "table": at_table,
                   "fitted": score(fitted, scenes, crops)},
        "scenes": {r: len(v) for r, v in scenes.items()}, "clean_crops": len(crops),
        "steps_per_scene": float(np.mean([len(s.steps) for v in scenes.values() for s in v])),
        "search": log, "encoder": perception_fingerprint(DEFAULT_WEIGHTS, context=context),
        "seconds": {"record": t_rec, "total": time.perf_counter() - t0},
    }


def markdown(res: dict[str, Any], command: str) -> str:
    """The report as Markdown."""
    fit = res["config"]["fit"]
    sc = res["scores"]
    recipes = list(res["scenes"])
    lines = [f"# Perception-gate thresholds fitted for `{res['policy']}`", "",
             f"Made by `{command}` ({res['seconds']['total']:.0f} s). TRAIN photos only: per recipe "
             f"{res['scenes'][recipes[0]]} random {fit['crop']} px crops ({fit['scenes_per_photo']} per photo, "
             f"seed {fit['seed']}), and {res['clean_crops']} undegraded random crops. The policy ran once, "
             f"ungated ({res['steps_per_scene']:.1f} steps per scene); each threshold vector's outcome is the replay "
             "of the steps it keeps. Objective: mean PSNR gain over the recipes (each weighted equally); "
             f"constraint: at least {res['floor']:.0%} of the undegraded crops untouched (the table's thresholds' "
             f"rate on them, and at least {fit['min_untouched']:.0%}). Coordinate descent from the table's "
             f"thresholds, {fit['passes']} passes.", "",
             "| gate | " + " | ".join(f"{r} gain (dB)" for r in recipes) + " | mean | undegraded crops untouched |",
             "|---|" + "---|" * (len(recipes) + 2)]
    names = {"off": "none (the policy as trained)", "table": "rule table's thresholds (shipped gate)",
             "fitted": "fitted for this policy"}
    for k, label in names.items():
        s = sc[k]
        lines.append(f"| {label} | " + " | ".join(f"{s['gains'][r]:+.2f}" for r in recipes)
                     + f" | {s['objective']:+.2f} | {s['untouched']:.0%} |")
    lines += ["", "| family | " + " | ".join(FAMILIES) + " |", "|---|" + "---|" * len(FAMILIES),
              "| table | " + " | ".join(f"{res['table_thresholds'][f]:.2f}" for f in FAMILIES) + " |",
              "| fitted | " + " | ".join(f"{res['thresholds'][f]:.2f}" for f in FAMILIES) + " |", "",
              "Search (family: from -> to, objective, untouched):", ""]
    lines += [f"- pass {e['pass']} {e['family']}: {e['from']:.2f} -> {e['to']:.2f}, {e['objective']:+.3f} dB, "
              f"{e['untouched']:.0%}" for e in res["search"]]
    return "\n".join(lines) + "\n"


def ship(res: dict[str, Any], command: str) -> Path:
    """Write the fitted thresholds into the policy's ``config.yml`` (``deploy.gate``), keeping the file's lines (and
    comments) outside its ``deploy:`` block as they are."""
    cfg_path = Path(res["policy"]).parent / "config.yml"
    text = cfg_path.read_text()
    cfg = yaml.safe_load(text)
    deploy = dict(cfg.get("deploy") or {})
    deploy["gate"] = {"thresholds": {f: round(v, 4) for f, v in res["thresholds"].items()},
                      "encoder": res["encoder"], "fitted_by": command}
    lines = text.splitlines()
    at = next((i for i, ln in enumerate(lines) if ln.startswith("deploy:")), None)
    head = lines[:at] if at is not None else lines
    end = len(lines) if at is None else next(  # the deploy block ends at the next top-level key
        (i for i in range(at + 1, len(lines)) if lines[i][:1] not in ("", " ", "#", "-")), len(lines))
    tail = lines[end:] if at is not None else []
    comment = lines[at].split("#", 1)[1].strip() if at is not None and "#" in lines[at] else None
    body = yaml.safe_dump({"deploy": deploy}, sort_keys=False, width=200).splitlines()
    if comment:
        body[0] = f"deploy:    # {comment}"
    cfg_path.write_text("\n".join(head + body + tail) + "\n")
    if yaml.safe_load(cfg_path.read_text()).get("deploy") != deploy:  # the file says what we meant
        raise RuntimeError(f"{cfg_path}: the written deploy block does not read back")
    return cfg_path


def load_config(path: str | Path) -> dict[str, Any]:
    """The YAML config, checked for its keys."""
    from experiments.configio import check_keys, config_int

    cfg = read_config(path)
    where = str(path)
    missing = [k for k in REQUIRED if k not in cfg] + [f"fit.{k}" for k in FIT_KEYS if k not in (cfg.get("fit") or {})]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    check_keys(cfg, REQUIRED, where)
    if not isinstance(cfg["fit"], dict):
        raise ValueError(f"{where}: fit must be a mapping of {', '.join(FIT_KEYS)}")
    fit = cfg["fit"]
    check_keys(fit, FIT_KEYS, f"{where}: fit")
    for key, low in (("scenes_per_photo", 1), ("crop", 32), ("seed", 0), ("clean_crops", 0), ("passes", 1)):
        config_int(fit, key, f"{where}: fit", minimum=low)
    grid = fit["grid"]
    if not isinstance(grid, list) or not grid or any(isinstance(g, bool) or not isinstance(g, (int, float))
                                                     or not 0 <= g <= 1 for g in grid):
        raise ValueError(f"{where}: fit.grid must be a non-empty list of probabilities in [0, 1], got {grid!r}")
    mu = fit["min_untouched"]
    if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not 0 <= mu <= 1:
        raise ValueError(f"{where}: fit.min_untouched must be a share in [0, 1], got {mu!r}")
    if not isinstance(fit["recipes"], list) or not fit["recipes"]:
        raise ValueError(f"{where}: fit.recipes must be a non-empty list of recipe names, got {fit['recipes']!r}")
    from ir_env.recipes import get_recipe

    for recipe in fit["recipes"]:
        get_recipe(recipe)
    if not Path(cfg["policy"]).is_file():
        raise FileNotFoundError(f"{path}: policy {cfg['policy']} not found")
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.fit_gate`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--ship", action="store_true", help="write the thresholds into the policy's config.yml")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    command = f"python -m experiments.fit_gate --config {args.config}"
    res = run(cfg, progress=not args.no_progress)
    out = Path(cfg["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "gate.json").write_text(json.dumps({"thresholds": res["thresholds"], "encoder": res["encoder"]}, indent=1))
    for key, text in (("report_json", json.dumps(res, indent=1, default=float)), ("report_md", markdown(res, command))):
        Path(cfg[key]).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg[key]).write_text(text)
    print(markdown(res, command))
    if args.ship:
        print(f"shipped: {ship(res, command)}")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
