"""Fit the ``perceive`` planner's rule table on TRAIN photos, tune its thresholds, and report its bounds.

Three stages, all from one config (``experiments/configs/rule_table.yaml``):

1. **Table.** For every family and severity bin, ``fit.samples`` random crops of the train photos are
   degraded by one kind of that family (blur: defocus or motion, alternating) at a severity drawn in the
   bin, and every candidate (tool, parameters) of the family is applied to the whole crop: each tool's
   parameters on a grid of ``fit.grid`` values per normalised parameter (tools with 3 or more parameters:
   the first two on the grid, the rest at mid-range, plus ``fit.random`` random draws). The candidate with
   the largest mean PSNR gain becomes the bin's entry. Tools costing more than ``fit.max_cost`` (BM3D,
   non-local means) are left out: the planner is meant to be fast.
2. **Thresholds.** Per-family probability thresholds for the encoder's family head, chosen by coordinate
   ascent (``tune.passes`` sweeps over ``tune.grid``) to maximise the mean PSNR gain of the planner as
   shipped (proposer regions) on ``tune.scenes`` validation scenes of the TRAIN photos. The encoder's own
   thresholds maximise F1; a false alarm here costs restoration quality (dehazing a dark region loses
   dB), so the trade-off differs.
3. **Report.** Mean PSNR gain on validation scenes (train photos) and on TEST-split scenes (the same
   photos, crop and scene seeds as ``experiments/compare.py``, ``report.scenes_per_photo`` each) of the
   same table driven by: the true families and severities on the true regions (the bound perfect
   perception would reach), the encoder on the true regions, and the encoder on the proposer's regions
   (the planner), with the encoder's F1 thresholds and with the tuned ones. Thresholds are never chosen on
   test scenes.

The optional config key ``encoder: DIR`` fits and reports for another encoder weights directory (e.g. one
with a context head, ``experiments/configs/rule_table_context_head.yaml``); such a table is not shipped.
``perception: linear`` fits for the encoder's linear heads even when a context head is stored beside it (the
shipped table: ``rule_table.yaml``); the default ``encoder`` reads its full perception (``predict``).
Stage 1 does not look at the encoder: ``fit.entries_from: TABLE.json`` takes the entries of an existing
table (same ``fit.bins``) instead of re-fitting them (about 8 of the 11 minutes), for perception candidates;
``tune.thresholds_from: TABLE.json`` likewise keeps that table's thresholds and ``regions="families"`` settings
(stage 2 only scores them), to see a new perception through the shipped table unchanged. An optional ``refit`` block
(stage 1b, :mod:`experiments.refit_entries`; needs ``tune.thresholds_from``) re-fits the entries on the steps the
planner's perception triggers on mixed scenes of the train photos (``experiments/configs/rule_table_refit.yaml``).

    python -m experiments.fit_rule_table --config experiments/configs/rule_table.yaml --ship
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ir_env.corpus import center_crop, load_corpus, load_named_corpus, random_crop  # noqa: E402
from ir_env.degradations import FAMILY_OF_KIND, degrade, depth_proxy  # noqa: E402
from ir_env.recipes import synthesize  # noqa: E402
from ir_env.regions import make_proposer  # noqa: E402
from policies.rules import (  # noqa: E402
    DEFAULT_PROPOSER,
    DEFAULT_RULE_TABLE,
    ENCODER_THRESHOLD,
    RuleTable,
    apply_rules,
    families_seen,
)
from restorers import apply, list_tools  # noqa: E402
from restorers.spec import FAMILIES  # noqa: E402

#: Degradation kinds of each family (blur: two kinds).
KINDS_OF_FAMILY: dict[str, tuple[str, ...]] = {
    f: tuple(k for k, fam in FAMILY_OF_KIND.items() if fam == f) for f in FAMILIES}


def psnr(image: np.ndarray, clean: np.ndarray) -> float:
    """PSNR in dB of ``image`` against ``clean`` (both in [0, 1]). Written out (not ``get_metric("psnr")``, which
    validates both images and caps at 80 dB) because the fit scores ~10^5 candidates; a fit sample is never clean,
    so the cap never applies."""
    mse = float(np.mean((image.astype(np.float64) - clean.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def candidates(family: str, grid: int, n_random: int, max_cost: float, seed: int) -> list[tuple[str, dict]]:
    """Every (tool name, physical params) tried for ``family``, in a fixed order."""
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    vals = np.linspace(-1.0, 1.0, grid)
    out: list[tuple[str, dict]] = []
    for tool in list_tools(family, max_cost=max_cost):
        p = len(tool.params)
        if p <= 2:
            thetas = [np.asarray(g, float) for g in itertools.product(vals, repeat=p)]
        else:
            thetas = [np.r_[a, b, np.zeros(p - 2)] for a in vals for b in vals]
            thetas += [rng.uniform(-1.0, 1.0, p) for _ in range(n_random)]
        out += [(tool.name, tool.to_physical(t)) for t in thetas]
    if not out:
        raise ValueError(f"no tool of family {family!r} costs at most {max_cost}")
    return out


def _fit_job(args: tuple) -> tuple[str, int, list[float]]:
    family, b, i, cfg = args
    fit, seed = cfg["fit"], int(cfg["seed"])
    photos = load_corpus(fit.get("corpus", "builtin"), "train")
    rng = np.random.default_rng([seed, FAMILIES.index(family), b, i])
    clean = random_crop(photos[i % len(photos)], int(fit["crop"]), rng)
    kinds = KINDS_OF_FAMILY[family]
    kind = kinds[i % len(kinds)]
    bins = int(fit["bins"])
    sev = float(rng.uniform(b / bins, (b + 1) / bins))
    degraded, _ = degrade(clean, kind, sev, rng, depth=depth_proxy(clean, rng))
    p0 = psnr(degraded, clean)
    cands = candidates(family, int(fit["grid"]), int(fit["random"]), float(fit["max_cost"]), seed)
    return family, b, [psnr(apply(degraded, name, params), clean) - p0 for name, params in cands]


def fit_entries(cfg: dict[str, Any], workers: int = 2, progress: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Stage 1: the best (tool, params) per (family, severity bin) by mean PSNR gain (dB)."""
    fit = cfg["fit"]
    bins, samples = int(fit["bins"]), int(fit["samples"])
    jobs = [(f, b, i, cfg) for f in FAMILIES for b in range(bins) for i in range(samples)]
    gains: dict[tuple[str, int], list[list[float]]] = {}
    with Pool(workers) as pool:
        for f, b, g in tqdm(pool.imap(_fit_job, jobs, chunksize=2), total=len(jobs), desc="fit table",
                            disable=not progress):
            gains.setdefault((f, b), []).append(g)
    entries: dict[str, list[dict[str, Any]]] = {}
    for f in FAMILIES:
        cands = candidates(f, int(fit["grid"]), int(fit["random"]), float(fit["max_cost"]), int(cfg["seed"]))
        rows = []
        for b in range(bins):
            mean = np.mean(gains[(f, b)], axis=0)
            j = int(np.argmax(mean))
            rows.append({"tool": cands[j][0], "params": {k: round(float(v), 6) for k, v in cands[j][1].items()},
                         "gain_db": round(float(mean[j]), 3), "n": len(gains[(f, b)]),
                         "candidates": len(cands)})
        entries[f] = rows
    return entries


def reused_entries(path: str | Path, bins: int) -> dict[str, list[dict[str, Any]]]:
    """Stage 1 taken from the rule table at ``path`` (``fit.entries_from``); ``ValueError`` when it has
    another number of severity bins than the config's ``fit.bins``."""
    src = RuleTable.load(path)
    if src.bins != bins:
        raise ValueError(f"fit.entries_from: {path} has {src.bins} severity bins, the config fit.bins {bins}")
    return src.entries


def kept_settings(path: str | Path) -> dict[str, Any]:
    """Stage 2 taken from the rule table at ``path`` (``tune.thresholds_from``): its per-family thresholds and its
    ``regions="families"`` settings (None when it has none), scored but not tuned; ``ValueError`` when the table
    has no thresholds."""
    src = RuleTable.load(path)
    if not src.thresholds:
        raise ValueError(f"tune.thresholds_from: {path} holds no tuned thresholds")
    missing = [f for f in FAMILIES if f not in src.thresholds]
    if missing:
        raise ValueError(f"tune.thresholds_from: {path} has no threshold for {', '.join(missing)}")
    return {"thresholds": {f: float(src.thresholds[f]) for f in FAMILIES},
            "family_masks": dict(src.family_masks) if src.family_masks else None}


# ---------------------------------------------------------------------------------------------- scenes
def scene_set(photos: list[tuple[str, np.ndarray]], recipe: str, per_photo: int, crop: int, seed: int,
              random_crops: bool) -> list[Any]:
    """Scenes of ``recipe``: validation (random crops, seeds from ``seed``) or test (centre crops, the
    scene seeds of experiments/compare.py: ``index`` over photo-major repeats)."""
    out = []
    if random_crops:
        rng = np.random.default_rng([seed, 1])
        for _ in range(per_photo):
            for _name, photo in photos:
                clean = random_crop(photo, crop, rng)
                out.append(synthesize(clean, recipe=recipe, seed=int(rng.integers(2**31))))
        return out
    items = [img for _ in range(per_photo) for _, img in photos]  # experiments.run_baselines.scene_items
    return [synthesize(center_crop(img, crop), recipe=recipe, seed=i) for i, img in enumerate(items)]


@dataclass(frozen=True)
class CleanCrop:
    """An undegraded crop used as a validation scene (``tune.clean_crops``): nothing to restore, one
    whole-image region, no labels. Its gain is :func:`scene_gain`'s capped penalty."""

    clean: np.ndarray
    cap_db: float

    @property
    def degraded(self) -> np.ndarray:
        return self.clean

    @property
    def masks(self) -> np.ndarray:
        return np.ones((1, *self.clean.shape[:2]), bool)

    @property
    def labels(self) -> list[list[tuple[str, float]]]:
        return [[]]


def clean_crop_set(photos: list[np.ndarray], n: int, crop: int, seed: int, cap_db: float) -> list[CleanCrop]:
    """``n`` undegraded random ``crop`` px crops of ``photos`` (in turn), seed stream ``[seed, 2]``."""
    rng = np.random.default_rng([seed, 2])
    return [CleanCrop(random_crop(photos[i % len(photos)], crop, rng), float(cap_db)) for i in range(int(n))]


def scene_gain(image: np.ndarray, scene: Any) -> float:
    """PSNR gain (dB) of the planner's output ``image`` on ``scene``; on a :class:`CleanCrop` the PSNR of the
    output against the crop, capped at its ``cap_db``, minus the cap: 0 when left alone (or changed beyond
    visibility), negative when the planner damaged clean content."""
    if isinstance(scene, CleanCrop):
        return min(psnr(image, scene.clean), scene.cap_db) - scene.cap_db
    return psnr(image, scene.clean) - psnr(scene.degraded, scene.clean)


def apply_rules_image(table: RuleTable, image: np.ndarray, masks: np.ndarray,
                      seen: list[dict[str, float]]) -> np.ndarray:
    """The planner's loop (:func:`policies.rules.apply_rules`, no step limit); the image only."""
    return apply_rules(table, image, masks, seen)[0]


def true_families(scene: Any) -> list[dict[str, float]]:
    """Per ground-truth region, {family: severity} of its labels."""
    return [{FAMILY_OF_KIND[k]: float(s) for k, s in labels} for labels in scene.labels]


@functools.cache
def encoder(weights: str | None = None, context: bool = True) -> Any:
    """The encoder in ``weights`` (default: the shipped one; :class:`ir_env.encoder.learned.LearnedEmbedder`),
    loaded once per process; ``context=False``: its linear heads' perception (config ``perception: linear``)."""
    from ir_env.encoder.learned import LearnedEmbedder

    return LearnedEmbedder(weights, context=context)


def region_proposer(name: str, max_regions: int, weights: str | None = None) -> Any:
    """The proposer ``name`` as the planner builds it: ``degradation-clusters-learned`` clusters with the encoder in
    ``weights`` (None: the shipped one), every other proposer ignores ``weights``."""
    extra = {"weights": weights} if weights is not None and name == "degradation-clusters-learned" else {}
    return make_proposer(name, max_regions=max_regions, seed=0, **extra)


class Perceived:
    """Encoder predictions of a scene set, on the proposer's regions (computed once) and on the true
    regions (computed on first use). ``embedder``: what predicts (default: :func:`encoder` of ``weights`` and
    ``context``); the proposer's regions come from :func:`region_proposer` with ``weights``."""

    def __init__(self, scenes: list[Any], proposer: str, max_regions: int, weights: str | None = None,
                 context: bool = True, embedder: Any = None) -> None:
        emb = encoder(weights, context) if embedder is None else embedder
        self.weights, self.context = weights, context
        prop = region_proposer(proposer, max_regions, weights)
        self.scenes = scenes
        self.thresholds = dict.fromkeys(FAMILIES, ENCODER_THRESHOLD)  # calibrated probabilities: 0.5 is F1-best
        self.masks = [prop.propose(s.degraded) for s in scenes]
        self.prop = [emb.predict(s.degraded, m) for s, m in zip(scenes, self.masks, strict=True)]

    @functools.cached_property
    def true(self) -> list[dict[str, np.ndarray]]:
        """Predictions on the scenes' true regions."""
        return [encoder(self.weights, self.context).predict(s.degraded, s.masks) for s in self.scenes]

    def gains(self, table: RuleTable, thresholds: dict[str, float] | None, source: str) -> list[float]:
        """Per-scene PSNR gains (dB) with perception ``source``: ``labels`` (true families on true regions),
        ``encoder_true_regions`` or ``encoder`` (proposer regions, the planner)."""
        out = []
        for i, s in enumerate(self.scenes):
            if source == "labels":
                img = apply_rules_image(table, s.degraded, s.masks, true_families(s))
            elif source == "encoder_true_regions":
                img = apply_rules_image(table, s.degraded, s.masks, families_seen(self.true[i], thresholds or {}))
            elif source == "encoder":
                img = apply_rules_image(table, s.degraded, self.masks[i], families_seen(self.prop[i], thresholds or {}))
            else:
                raise ValueError(f"unknown perception source {source!r}")
            out.append(scene_gain(img, s))
        return out

    def gain(self, table: RuleTable, thresholds: dict[str, float] | None, source: str) -> float:
        """Mean of :meth:`gains`."""
        return float(np.mean(self.gains(table, thresholds, source)))


def tune_thresholds(table: RuleTable, val: Perceived, grid: list[float], passes: int,
                    progress: bool = True) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Stage 2: coordinate ascent on per-family thresholds (start: the encoder's), maximising the
    planner's mean validation gain; returns (thresholds, history)."""
    thr = dict(val.thresholds)
    best = val.gain(table, thr, "encoder")
    history = [{"pass": 0, "family": None, "threshold": None, "gain_db": best}]
    for p in range(passes):
        changed = False
        for f in tqdm(FAMILIES, desc=f"tune thresholds, pass {p + 1}", disable=not progress):
            for t in grid:
                trial = {**thr, f: float(t)}
                g = val.gain(table, trial, "encoder")
                if g > best + 1e-6:
                    best, thr, changed = g, trial, True
            history.append({"pass": p + 1, "family": f, "threshold": thr[f], "gain_db": best})
        if not changed:
            break
    return thr, history


class FamilyMaskScenes:
    """A scene set with each scene's dense family probabilities computed once (``regions="families"``)."""

    def __init__(self, scenes: list[Any], weights: str | None = None, context: bool = True) -> None:
        from policies.rules import dense_family_prob

        self.scenes, self.weights, self.context = scenes, weights, context
        self.prob = [dense_family_prob(encoder(weights, context), s.degraded) for s in scenes]

    def gains(self, table: RuleTable, settings: dict[str, Any]) -> list[float]:
        """Per-scene PSNR gains (dB) of the ``regions="families"`` planner with ``settings``."""
        from policies.rules import apply_family_masks

        out = []
        for s, p in zip(self.scenes, self.prob, strict=True):
            img, _ = apply_family_masks(table, encoder(self.weights, self.context), s.degraded, settings["thresholds"],
                                        settings["cell_thresholds"], float(settings["min_area"]), prob=p)
            out.append(scene_gain(img, s))
        return out


def tune_family_masks(table: RuleTable, val: FamilyMaskScenes, cfg: dict[str, Any], progress: bool = True
                      ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Stage 2b: coordinate ascent (``cfg['passes']`` sweeps, one family at a time) on the pooled and the
    per-cell thresholds of ``regions="families"``, from the table's tuned thresholds, maximising the mean
    validation gain; each family's two thresholds are searched jointly on ``cfg['grid']`` x ``cfg['grid']``
    (one after the other, the result depended on which went first); returns (settings, history)."""
    cur = {"thresholds": dict(table.thresholds), "cell_thresholds": dict(table.thresholds),
           "min_area": float(cfg.get("min_area", 0.05))}
    best = float(np.mean(val.gains(table, cur)))
    history = [{"pass": 0, "family": None, "gain_db": best}]
    for p in range(int(cfg["passes"])):
        changed = False
        for f in tqdm(FAMILIES, desc=f"tune family masks, pass {p + 1}", disable=not progress):
            base = cur
            for tp, tc in itertools.product(cfg["grid"], cfg["grid"]):
                trial = {**base, "thresholds": {**base["thresholds"], f: float(tp)},
                         "cell_thresholds": {**base["cell_thresholds"], f: float(tc)}}
                g = float(np.mean(val.gains(table, trial)))
                if g > best + 1e-6:
                    best, cur, changed = g, trial, True
            history.append({"pass": p + 1, "family": f, "gain_db": best})
        if not changed:
            break
    return cur, history


def report(table: RuleTable, perceived: Perceived, tuned: dict[str, float], first: int = 0) -> dict[str, Any]:
    """Stage 3 rows for one scene set: mean gain per perception source, and with ``first`` > 0 also the
    mean over the first ``first`` scenes (key ``first``)."""
    per = {"labels_true_regions": perceived.gains(table, None, "labels"),
           "encoder_true_regions_f1_thresholds": perceived.gains(table, perceived.thresholds, "encoder_true_regions"),
           "encoder_true_regions_tuned": perceived.gains(table, tuned, "encoder_true_regions"),
           "planner_f1_thresholds": perceived.gains(table, perceived.thresholds, "encoder"),
           "planner_tuned": perceived.gains(table, tuned, "encoder")}
    out: dict[str, Any] = {k: float(np.mean(v)) for k, v in per.items()}
    if first:
        out["first"] = {k: float(np.mean(v[:first])) for k, v in per.items()}
        out["first_scenes"] = int(first)
    return out


ROW_NAMES = {
    "labels_true_regions": "true families and severities, true regions (perfect perception)",
    "encoder_true_regions_f1_thresholds": "encoder, true regions, encoder's F1 thresholds",
    "encoder_true_regions_tuned": "encoder, true regions, tuned thresholds",
    "planner_f1_thresholds": "encoder, proposer regions, encoder's F1 thresholds",
    "planner_tuned": "**encoder, proposer regions, tuned thresholds (the planner)**",
}


def markdown(res: dict[str, Any]) -> str:
    """The report as Markdown."""
    recipes = list(res["test"])
    kept = res["config"]["tune"].get("thresholds_from")
    lines = [f"# Rule table of the `perceive` planner ({res['command']})", "",
             "Mean PSNR gain (dB) of the same rule table under different perception. Validation: "
             f"{res['validation']['scenes']} `{res['validation']['recipe']}` scenes of the TRAIN photos ("
             + (f"thresholds and family-mask settings kept from `{kept}`, not tuned" if kept
                else "thresholds tuned there")
             + f"). Test: the built-in TEST photos, {res['test_scenes']} scenes per recipe, scene seeds "
             "of `experiments/compare.py`; in brackets the mean over its first "
             f"{res['test'][recipes[0]].get('first_scenes', 0)}, the scenes of the headline table.", "",
             *([f"Encoder: the weights in `{res['encoder_weights']}` (not the shipped ones).", ""]
               if res.get("encoder_weights") else []),
             f"Proposer regions: `{res['config']['tune']['region_proposer']}`, at most "
             f"{res['config']['tune']['max_regions']} (the `perceive` planner's default since stop 23 is "
             f"`{DEFAULT_PROPOSER[0]}` with {DEFAULT_PROPOSER[1]}: its row in the proposer table below).", "",
             "| perception | validation | " + " | ".join(f"test {r}" for r in recipes) + " |",
             "|---|---|" + "---|" * len(recipes)]
    for key, label in ROW_NAMES.items():
        cells = [f"{res['validation']['gains'][key]:+.2f}"]
        for r in recipes:
            first = res["test"][r].get("first")
            cells.append(f"{res['test'][r][key]:+.2f}" + (f" ({first[key]:+.2f})" if first else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if res.get("proposers"):
        r0 = res["config"]["report"]["proposers_recipe"]
        lines += ["", f"The planner (tuned thresholds) with other region proposers, `{r0}`:", "",
                  "| proposer | max regions | validation | test (headline scenes) |", "|---|---|---|---|"]
        lines += [f"| `{q['proposer']}` | {q['max_regions']} | {q['validation']:+.2f} | {q['test']:+.2f} "
                  f"({q['test_first']:+.2f}) |" for q in res["proposers"]]
    fm = res.get("family_masks")
    if fm:
        st = fm["settings"]
        lines += ["", "The planner without a region proposer (`regions=\"families\"`: per family, the pixels whose "
                  "per-cell probability reaches a cell threshold form one mask; acted on when it covers at least "
                  f"{st['min_area']:.0%} of the image and its pooled probability reaches the family's threshold; "
                  + ("both kept from that table):" if kept else "both tuned on the validation scenes):"), "",
                  "| planner | validation | " + " | ".join(f"test {r}" for r in recipes) + " |",
                  "|---|---|" + "---|" * len(recipes),
                  f"| `perceive` (proposer regions, `{res['config']['tune']['region_proposer']}`, "
                  f"{res['config']['tune']['max_regions']}) | {res['validation']['gains']['planner_tuned']:+.2f} | "
                  + " | ".join(f"{res['test'][r]['planner_tuned']:+.2f}"
                               + (f" ({res['test'][r]['first']['planner_tuned']:+.2f})" if 'first' in res['test'][r]
                                  else "") for r in recipes) + " |",
                  f"| `perceive:regions=families` | {fm['validation']:+.2f} | "
                  + " | ".join(f"{fm['test'][r]['mean']:+.2f} ({fm['test'][r]['first']:+.2f})" for r in recipes) + " |",
                  "", "Family-mask thresholds (pooled / per cell): " + ", ".join(
                      f"{f} {st['thresholds'][f]:.2f} / {st['cell_thresholds'][f]:.2f}" for f in FAMILIES) + "."]
    for split, c in res.get("clean_crops", {}).items():
        lines += ["", f"Undegraded {split} crops ({c['crops']}, nothing to restore): {c['untouched']:.0%} left "
                  f"untouched, {c['mean_steps']:.2f} steps per crop, worst output PSNR against the crop "
                  f"{c['worst_psnr']:.1f} dB."]
    lines += ["", "Thresholds (family probability): " + ", ".join(
        f"{f} {res['encoder_thresholds'][f]:.2f} -> {res['thresholds'][f]:.2f}" for f in FAMILIES)
        + (" (encoder's F1-calibrated -> kept)." if kept else " (encoder's F1-calibrated -> tuned for gain)."),
        *refit_lines(res),
        "", "Table (severity bins of width "
        f"{1 / res['bins']:.2f}; gain on single-family crops of the train photos"
        + ("; re-fitted bins: mean scene PSNR change per perceived step" if res.get("refit") else "") + "):", "",
        "| family | " + " | ".join(f"bin {b}" for b in range(res["bins"])) + " |",
        "|---|" + "---|" * res["bins"]]
    for f in FAMILIES:
        cells = []
        for e in res["entries"][f]:
            ps = ", ".join(f"{k} {v:.3g}" for k, v in e["params"].items())
            cells.append(f"`{e['tool']}` ({ps}) {e['gain_db']:+.1f} dB")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def refit_lines(res: dict[str, Any]) -> list[str]:
    """The report's lines on stage 1b (``refit``), empty when it did not run."""
    rf = res.get("refit")
    if not rf:
        return []
    c = res["config"]["refit"]
    lines = ["", "Entries re-fitted on the planner's own steps (`experiments/refit_entries.py`): "
             f"{rf['scenes']} scenes of the TRAIN photos ({', '.join(c['recipes'])}; `{c['region_proposer']}`, "
             f"{c['max_regions']} regions), "
             "each region and family the perception flags is a sample of its perceived severity bin; mean scene PSNR "
             f"change per step (dB), re-fitted entry vs the stage-1 entry on the same samples; bins with fewer than "
             f"{c['min_samples']} samples keep stage 1 ({rf['seconds']:.0f} s):", "",
             "| family | bin | samples | stage 1 | re-fitted |", "|---|---|---|---|---|"]
    for r in rf["rows"]:
        if r["tool"] is None:
            lines.append(f"| {r['family']} | {r['bin']} | {r['samples']} | `{r['stage1_tool']}` | (kept) |")
        else:
            lines.append(f"| {r['family']} | {r['bin']} | {r['samples']} | `{r['stage1_tool']}` "
                         f"{r['stage1_gain_db']:+.2f} | `{r['tool']}` {r['gain_db']:+.2f} |")
    return lines


def clean_crops_check(table: RuleTable, thresholds: dict[str, float], photos: list[np.ndarray], crops: int,
                      crop: int, seed: int, proposer: str, max_regions: int, weights: str | None = None,
                      context: bool = True) -> dict[str, float]:
    """The planner on UNDEGRADED random crops (nothing to restore): share left untouched, mean steps, and
    the mean / worst PSNR (dB) of its output against the crop (untouched crops count as 100 dB)."""
    emb, prop = encoder(weights, context), region_proposer(proposer, max_regions, weights)
    rng = np.random.default_rng([seed, 2])
    steps, out = [], []
    for i in range(int(crops)):
        clean = random_crop(photos[i % len(photos)], crop, rng)
        masks = prop.propose(clean)
        img, done = apply_rules(table, clean, masks, families_seen(emb.predict(clean, masks), thresholds))
        steps.append(len(done))
        out.append(min(100.0, psnr(img, clean)))
    return {"crops": int(crops), "untouched": float(np.mean(np.asarray(steps) == 0)),
            "mean_steps": float(np.mean(steps)), "mean_psnr": float(np.mean(out)), "worst_psnr": float(np.min(out))}


def run(cfg: dict[str, Any], workers: int = 2, progress: bool = True) -> tuple[RuleTable, dict[str, Any]]:
    """All three stages; returns (table with tuned thresholds, report)."""
    from ir_env.encoder.learned import DEFAULT_WEIGHTS, perception_fingerprint

    t0 = time.perf_counter()
    if cfg["fit"].get("entries_from"):
        entries = reused_entries(cfg["fit"]["entries_from"], int(cfg["fit"]["bins"]))
    else:
        entries = fit_entries(cfg, workers=workers, progress=progress)
    table = RuleTable(entries=entries, bins=int(cfg["fit"]["bins"]))
    t_fit = time.perf_counter() - t0
    tune, rep = cfg["tune"], cfg["report"]
    weights = cfg.get("encoder")  # None: the shipped encoder
    perception = cfg.get("perception", "encoder")
    if perception not in ("encoder", "linear"):
        raise ValueError(f"perception must be 'encoder' (LearnedEmbedder.predict) or 'linear' (its linear heads), "
                         f"got {perception!r}")
    context = perception == "encoder"
    kept = kept_settings(tune["thresholds_from"]) if tune.get("thresholds_from") else None
    refit_res: dict[str, Any] = {}
    if cfg.get("refit"):  # stage 1b: entries re-fitted on the planner's own perceived steps
        from experiments.refit_entries import perceived_scenes, refit_entries

        t1 = time.perf_counter()
        block = cfg["refit"]
        scenes = perceived_scenes(block, encoder(weights, context), kept["thresholds"],  # check_config: kept is set
                                  cfg["fit"].get("corpus", "builtin"), weights)
        entries, refit_rows = refit_entries(table, scenes, cfg["fit"], int(cfg["seed"]), int(block["min_samples"]),
                                            progress)
        table = RuleTable(entries=entries, bins=table.bins)
        refit_res = {"scenes": len(scenes), "rows": refit_rows, "seconds": round(time.perf_counter() - t1, 1)}
    train = load_corpus(cfg["fit"].get("corpus", "builtin"), "train")
    val_scenes = scene_set([("", p) for p in train], tune["recipe"], int(tune["scenes_per_photo"]),
                           int(tune["crop"]), int(cfg["seed"]) + 1, random_crops=True)
    n_clean = int(tune.get("clean_crops", 0))  # undegraded crops in the tuning objective (capped penalty)
    if n_clean < 0:
        raise ValueError(f"tune.clean_crops must be >= 0, got {n_clean}")
    val_scenes = val_scenes + clean_crop_set(train, n_clean, int(tune["crop"]), int(cfg["seed"]) + 1,
                                             float(tune.get("clean_cap_db", 40.0)))
    val = Perceived(val_scenes, tune["region_proposer"], int(tune["max_regions"]), weights, context)
    if kept:  # thresholds of an existing table, not tuned: only scored
        thr = kept["thresholds"]
        history = [{"pass": 0, "family": None, "threshold": None, "gain_db": val.gain(table, thr, "encoder")}]
    else:
        thr, history = tune_thresholds(table, val, [float(x) for x in tune["grid"]], int(tune["passes"]), progress)
    table.thresholds = thr
    test_photos = load_named_corpus("builtin", "test")

    @functools.cache
    def test_scenes(recipe: str) -> list[Any]:  # each recipe's test scenes, made once
        return scene_set(test_photos, recipe, int(rep["scenes_per_photo"]), int(rep["crop"]), 0, random_crops=False)

    test: dict[str, dict[str, float]] = {}
    for recipe in rep["recipes"]:
        test[recipe] = report(table, Perceived(test_scenes(recipe), tune["region_proposer"], int(tune["max_regions"]),
                                               weights, context),
                              thr, first=int(rep.get("headline_scenes", 0)))
    fm_res: dict[str, Any] = {}
    if (kept and kept["family_masks"]) or (not kept and tune.get("family_masks")):  # stage 2b: regions="families"
        fm_val = FamilyMaskScenes(val_scenes, weights, context)
        if kept:
            settings = kept["family_masks"]
            fm_hist = [{"pass": 0, "family": None, "gain_db": float(np.mean(fm_val.gains(table, settings)))}]
        else:
            settings, fm_hist = tune_family_masks(table, fm_val, tune["family_masks"], progress)
        table.family_masks = settings
        first = int(rep.get("headline_scenes", 0))
        fm_test = {}
        for recipe in rep["recipes"]:
            g = FamilyMaskScenes(test_scenes(recipe), weights, context).gains(table, settings)
            fm_test[recipe] = {"mean": float(np.mean(g)), "first": float(np.mean(g[:first or len(g)]))}
        fm_res = {"settings": settings, "validation": fm_hist[-1]["gain_db"], "history": fm_hist, "test": fm_test}
    proposers = []
    for name, k in rep.get("proposers", []):  # the planner with other region proposers (tuned thresholds)
        v = Perceived(val_scenes, name, int(k), weights, context).gain(table, thr, "encoder")
        g = Perceived(test_scenes(rep["proposers_recipe"]), name, int(k), weights, context).gains(table, thr,
                                                                                                    "encoder")
        first = int(rep.get("headline_scenes", 0)) or len(g)
        proposers.append({"proposer": name, "max_regions": int(k), "validation": v, "test": float(np.mean(g)),
                          "test_first": float(np.mean(g[:first]))})
    clean = {split: clean_crops_check(table, thr, [p for _, p in load_named_corpus("builtin", split)],
                                      int(rep.get("clean_crops", 0)), int(rep["crop"]), int(cfg["seed"]),
                                      tune["region_proposer"], int(tune["max_regions"]), weights, context)
             for split in ("train", "test")} if int(rep.get("clean_crops", 0)) else {}
    res = {"config": cfg, "command": "python -m experiments.fit_rule_table --config "
           + str(cfg.get("_path", "experiments/configs/rule_table.yaml")),
           "encoder_fingerprint": perception_fingerprint(weights or DEFAULT_WEIGHTS, context=context),
           "encoder_weights": weights,
           "bins": table.bins,
           "entries": entries, "encoder_thresholds": val.thresholds, "thresholds": thr,
           "validation": {"recipe": tune["recipe"], "scenes": len(val_scenes), "gains": report(table, val, thr),
                          "history": history},
           "test_scenes": int(rep["scenes_per_photo"]) * len(test_photos), "test": test, "proposers": proposers,
           "family_masks": fm_res,
           "refit": refit_res,
           "clean_crops": clean,
           "seconds": {"fit": round(t_fit, 1), "total": round(time.perf_counter() - t0, 1)}}
    table.meta = {"encoder_fingerprint": res["encoder_fingerprint"], "config": cfg,
                  "validation_gain_db": res["validation"]["gains"]["planner_tuned"]}
    return table, res


#: Keys every config section must hold (``report.headline_scenes``, ``clean_crops`` and ``proposers`` are
#: optional).
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "fit": ("crop", "bins", "samples", "grid", "random", "max_cost"),
    "tune": ("recipe", "scenes_per_photo", "crop", "region_proposer", "max_regions", "grid", "passes"),
    "report": ("recipes", "scenes_per_photo", "crop"),
}


#: Every key this script reads, at the top level ("") and in each section (``refit``: ``REFIT_KEYS`` of
#: :mod:`experiments.refit_entries`). ``name`` is a label kept in the report's config; ``_path`` is added by
#: :func:`main`. With ``tune.thresholds_from``, ``tune.grid`` / ``passes`` / ``family_masks`` are not used.
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "": ("name", "seed", "encoder", "perception", "fit", "tune", "report", "refit", "output_dir", "report_json",
         "report_md", "_path"),
    "fit": (*REQUIRED_KEYS["fit"], "corpus", "entries_from"),
    "tune": (*REQUIRED_KEYS["tune"], "thresholds_from", "family_masks", "clean_crops", "clean_cap_db"),
    "tune.family_masks": ("grid", "passes", "min_area"),
    "report": (*REQUIRED_KEYS["report"], "headline_scenes", "clean_crops", "proposers", "proposers_recipe"),
}


def check_config(cfg: Any, where: str = "config") -> dict[str, Any]:
    """``cfg`` if it has every section and key this script reads and no other (a misspelt key is named with the
    closest known one, not silently ignored), else ``ValueError`` naming ``where`` (the config file) and the
    problem; run before any work."""
    from experiments.configio import check_sections
    from experiments.refit_entries import REFIT_KEYS, check_refit

    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: the config must be a YAML mapping")
    missing = [k for k in ("seed", "output_dir", "report_json", "report_md", *REQUIRED_KEYS) if k not in cfg]
    missing += [f"{sec}.{k}" for sec, keys in REQUIRED_KEYS.items() if isinstance(cfg.get(sec), dict)
                for k in keys if k not in cfg[sec]]
    if missing:
        raise ValueError(f"{where} misses {', '.join(missing)} (see experiments/configs/rule_table.yaml)")
    sections = {section: (keys, ()) for section, keys in CONFIG_KEYS.items()}  # missing keys: all named above
    sections[""] = (CONFIG_KEYS[""], tuple(REQUIRED_KEYS))  # fit, tune and report must be mappings
    sections["tune.family_masks"] = (CONFIG_KEYS["tune.family_masks"], ("grid", "passes"))
    sections["refit"] = (REFIT_KEYS, ())  # a missing refit key: check_refit
    check_sections(cfg, sections, where)
    if cfg["report"].get("proposers") and "proposers_recipe" not in cfg["report"]:
        raise ValueError(f"{where}: report.proposers needs report.proposers_recipe")
    if cfg.get("refit") is not None and not cfg["tune"].get("thresholds_from"):
        raise ValueError(f"{where}: refit scores the planner's perceived steps, so it needs the thresholds given: "
                         "set tune.thresholds_from")
    check_values(cfg, where)
    try:
        src = cfg["fit"].get("entries_from")
        if src:
            reused_entries(src, int(cfg["fit"]["bins"]))  # a missing / invalid table or other bins: a clear error now
        if cfg["tune"].get("thresholds_from"):
            kept_settings(cfg["tune"]["thresholds_from"])  # the same, for the kept thresholds
        if cfg.get("refit") is not None:
            check_refit(cfg["refit"])
    except (OSError, ValueError) as e:  # FileNotFoundError (entries_from) is an OSError
        raise ValueError(f"{where}: {e}") from None
    return cfg


def _number(block: dict[str, Any], key: str, where: str, low: float, high: float | None = None,
            above: bool = False) -> None:
    from experiments.configio import number_value

    number_value(block[key], key, where, low, high, above)


def _probabilities(block: dict[str, Any], key: str, where: str) -> None:
    value = block[key]
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in value)):
        raise ValueError(f"{where}: {key} must be a non-empty list of probability thresholds in [0, 1], got {value!r}")


def _recipe(name: Any, key: str, where: str) -> None:
    from experiments.configio import check_choice
    from ir_env.recipes import list_recipes

    check_choice(name, list_recipes(), "recipe", f"{where}: {key}")


def _proposer(name: Any, key: str, where: str) -> None:
    from experiments.configio import check_choice
    from ir_env.regions import list_proposers

    check_choice(name, list_proposers(), "region proposer", f"{where}: {key}")


def check_values(cfg: dict[str, Any], where: str) -> None:
    """``ValueError`` naming ``where`` and the key for a value of a key-checked config (:func:`check_config`) that a
    stage would refuse only after the earlier ones ran (minutes): ``perception``, recipe and region proposer names,
    counts that are not whole numbers in range, thresholds outside [0, 1], ``report.recipes`` / ``proposers`` that
    are not lists, output paths that cannot be written."""
    from experiments.configio import check_output, config_int, config_names
    from ir_env.paths import check_writable

    config_int(cfg, "seed", where)
    perception = cfg.get("perception", "encoder")
    if perception not in ("encoder", "linear"):
        raise ValueError(f"{where}: perception must be 'encoder' (LearnedEmbedder.predict) or 'linear' (its linear "
                         f"heads), got {perception!r}")
    enc = cfg.get("encoder")
    if enc is not None and (not isinstance(enc, str) or not enc.strip()):
        raise ValueError(f"{where}: encoder must name an encoder weights folder, got {enc!r}")
    fit, tune, rep = cfg["fit"], cfg["tune"], cfg["report"]
    w = f"{where}: fit"
    corpus = fit.get("corpus", "builtin")
    if not isinstance(corpus, str) or not corpus.strip():
        raise ValueError(f"{w}: corpus must name a corpus or a folder, got {corpus!r}")
    for key, low in (("crop", 8), ("bins", 1), ("samples", 1), ("grid", 1), ("random", 0)):
        config_int(fit, key, w, minimum=low)
    _number(fit, "max_cost", w, 0.0, above=True)
    w = f"{where}: tune"
    _recipe(tune["recipe"], "recipe", w)
    _proposer(tune["region_proposer"], "region_proposer", w)
    for key, low in (("scenes_per_photo", 1), ("crop", 8), ("max_regions", 1)):
        config_int(tune, key, w, minimum=low)
    config_int(tune, "clean_crops", w, default=0)
    if "clean_cap_db" in tune:
        _number(tune, "clean_cap_db", w, 0.0, above=True)
    if not tune.get("thresholds_from"):  # grid, passes and family_masks are only read when tuning
        _probabilities(tune, "grid", w)
        config_int(tune, "passes", w)
        fm = tune.get("family_masks")
        if fm:
            wf = f"{where}: tune.family_masks"
            _probabilities(fm, "grid", wf)
            config_int(fm, "passes", wf)
            if "min_area" in fm:
                _number(fm, "min_area", wf, 0.0, 1.0)
    w = f"{where}: report"
    for name in config_names(rep, "recipes", w, "recipe names"):
        _recipe(name, "recipes", w)
    for key, low in (("scenes_per_photo", 1), ("crop", 8)):
        config_int(rep, key, w, minimum=low)
    for key in ("headline_scenes", "clean_crops"):
        config_int(rep, key, w, default=0)
    proposers = rep.get("proposers") or []
    if not isinstance(proposers, list) or not all(isinstance(q, list) and len(q) == 2 for q in proposers):
        raise ValueError(f"{w}: proposers must be a list of [region proposer, max regions] pairs, got {proposers!r}")
    for name, k in proposers:
        _proposer(name, "proposers", w)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"{w}: proposers: max regions of {name!r} must be a whole number >= 1, got {k!r}")
    if proposers:
        _recipe(rep["proposers_recipe"], "proposers_recipe", w)
    block = cfg.get("refit")
    if isinstance(block, dict):  # the rest: experiments.refit_entries.check_refit
        if isinstance(block.get("recipes"), list):
            for name in block["recipes"]:
                _recipe(name, "recipes", f"{where}: refit")
        if "region_proposer" in block:
            _proposer(block["region_proposer"], "region_proposer", f"{where}: refit")
    if not isinstance(cfg["output_dir"], str) or not cfg["output_dir"].strip():
        raise ValueError(f"{where}: output_dir must name a folder, got {cfg['output_dir']!r}")
    check_writable(cfg["output_dir"], "output_dir", folder=True)
    for key in ("report_json", "report_md"):
        if not isinstance(cfg[key], str) or not cfg[key].strip():
            raise ValueError(f"{where}: {key} must name a file, got {cfg[key]!r}")
        check_output(cfg[key], key)


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.fit_rule_table`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="experiments/configs/rule_table.yaml",
                    help="config YAML (default: %(default)s, the shipped table's)")
    ap.add_argument("--ship", action="store_true",
                    help=f"also write the table to {DEFAULT_RULE_TABLE} (the shipped table; only for the shipped "
                         "encoder) (default: off)")
    ap.add_argument("--workers", type=int, default=2, help="processes for the table fit (default: %(default)s)")
    a = ap.parse_args(argv)
    from experiments.configio import read_config

    try:
        if a.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {a.workers}")
        cfg = check_config(read_config(a.config), a.config)
    except (OSError, ValueError) as e:  # FileNotFoundError (a missing config file) is an OSError
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.ship and cfg.get("encoder"):
        print(f"error: {a.config} fits the table for the encoder in {cfg['encoder']}; the shipped table serves the "
              "shipped encoder (drop --ship, or ship those weights first)", file=sys.stderr)
        return 2
    enc = cfg.get("encoder")
    missing = [n for n in ("encoder.json", "encoder.pt") if enc and not (Path(enc) / n).is_file()]
    if missing:  # read only in stage 2, after the table fit (minutes)
        print(f"error: {a.config}: encoder {enc} holds no {' or '.join(missing)} (an encoder weights folder; see "
              "the config's comments for the script that makes it)", file=sys.stderr)
        return 2
    cfg["_path"] = a.config
    table, res = run(cfg, workers=a.workers)
    cfg.pop("_path", None)
    out = Path(cfg["output_dir"])
    table.save(out / "rule_table.json")
    for path, text in ((cfg["report_json"], json.dumps(res, indent=1) + "\n"), (cfg["report_md"], markdown(res))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    if a.ship:
        table.save(DEFAULT_RULE_TABLE)
    print(markdown(res))
    print(f"table: {out / 'rule_table.json'}" + (f", shipped to {DEFAULT_RULE_TABLE}" if a.ship else ""))
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
