"""The proposer-free planner ``perceive:regions=families`` under different dense perception, on test photos.

For each variant (an encoder weights directory, with or without a segmentation head -- ``segment: false``
reads the linear family head on every cell even when the directory holds a head -- and the rule table
fitted for it), on the scenes of each recipe (centre crops of every photo of ``--images``, scene seeds of
``experiments/compare.py``: ``synthesize(crop, recipe, seed=index)`` over photo-major repeats):

- the planner's mean PSNR gain (dB; also over the first ``--headline`` scenes: the headline comparison's),
  tool calls per image;
- the dense family map against the truth: per family, F1 and IoU of the planner's masks (dense probability
  >= the table's per-cell threshold) against the union of the scene's regions degraded by that family,
  over all pixels of all scenes (scenes with the family and without it);
- the same table with TRUE family masks (union of true regions) and the encoder's pooled severity: how much
  better masks alone could give (the planner's pooled-probability check is skipped there).

With ``family_swaps: true``, per family also the gain when only that family's mask is the true one (the others
the planner's): where the masks cost the most. With ``more_crops: {size: [recipes]}``, those recipes also at
other crop sizes (rows ``recipe @size px``). With ``clean_crops: N``, the planner on N undegraded random
crops of each corpus's test photos (share left untouched, PSNR of the changed ones). With ``validation``
(a block or a list of blocks: ``corpus``, ``seed``, ``recipes: {recipe: scenes per photo}``, optional
``crop``), the gains on other random-crop scenes of the
TRAIN photos than the ones the thresholds were tuned on, with each variant's paired difference to the first.

Nothing is tuned here; thresholds come from each variant's table (fitted on TRAIN photos by
``experiments.fit_rule_table``).

    python -m experiments.eval_family_masks --config experiments/configs/eval_family_masks.yaml
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from experiments.fit_rule_table import psnr, scene_set  # noqa: E402
from ir_env.corpus import load_named_corpus, random_crop  # noqa: E402
from ir_env.degradations import FAMILY_OF_KIND  # noqa: E402
from policies.rules import (  # noqa: E402
    RESTORE_ORDER,
    RuleTable,
    apply_family_masks,
    dense_family_prob,
    family_masks_of,
    restore_in_masks,
)
from restorers.spec import FAMILIES  # noqa: E402

#: The config's keys (``_path`` is added by the command line) and the required ones.
CONFIG_KEYS = ("variants", "images", "recipes", "scenes_per_photo", "crop", "headline", "more_crops", "clean_crops",
               "family_swaps", "validation", "out", "_path")
REQUIRED_KEYS = ("variants", "images", "recipes", "scenes_per_photo", "crop", "out")
#: Keys of a ``variants`` entry and of a ``validation`` block.
VARIANT_KEYS = ("name", "weights", "table", "segment")
VALIDATION_KEYS = ("corpus", "seed", "recipes", "crop")


def true_family_masks(scene: Any) -> dict[str, np.ndarray]:
    """Per family present in ``scene``, the union of its regions degraded by that family (H, W) bool."""
    out: dict[str, np.ndarray] = {}
    for k, labels in enumerate(scene.labels):
        for kind, _ in labels:
            f = FAMILY_OF_KIND[kind]
            out[f] = out.get(f, np.zeros(scene.masks.shape[1:], bool)) | scene.masks[k]
    return out


def scenes_of(images: str, recipe: str, per_photo: int, crop: int) -> list[Any]:
    """The scenes of ``recipe`` on the test photos of ``images``: the rule-table report's test scenes
    (:func:`experiments.fit_rule_table.scene_set`: centre crops, scene seed = index, as compare.py)."""
    return scene_set(load_named_corpus(images, "test"), recipe, per_photo, crop, 0, random_crops=False)


def load_variant(weights: str | None, table_path: str | None, segment: bool = True) -> tuple[RuleTable, Any]:
    """(rule table, encoder) of a variant: the table at ``table_path`` (default: shipped), which must hold
    ``family_masks`` settings, and the encoder in ``weights`` reading its head when ``segment``, perceiving as the
    planner does (the perception the table was tuned on, :meth:`RuleTable.perception_context`)."""
    from ir_env.encoder.learned import LearnedEmbedder

    table = RuleTable.load(table_path) if table_path else RuleTable.load()
    if not table.family_masks:
        raise ValueError(f"rule table {table_path or 'shipped'} has no family_masks settings")
    return table, LearnedEmbedder(weights, segment=segment, context=table.perception_context(weights) is not False)


def evaluate_variant(weights: str | None, table_path: str | None, scenes: list[Any], headline: int,
                     segment: bool = True, swaps: bool = False, bounds: bool = True) -> dict[str, Any]:
    """The module docstring's numbers for one variant on one scene list; with ``swaps`` also, per family, the
    gain when only that family's mask is the true one (``true_mask_swap``; the others the planner's); with
    ``bounds=False`` only the planner's gains and tool calls (no true masks, no IoU)."""
    table, emb = load_variant(weights, table_path, segment)
    fm = table.family_masks
    min_area = float(fm.get("min_area", 0.0))
    gains, true_gains, calls = [], [], []
    swap_gains: dict[str, list[float]] = {f: [] for f in FAMILIES}
    counts = {f: [0, 0, 0] for f in FAMILIES}  # tp, fp, fn pixels
    for s in scenes:
        base = psnr(s.degraded, s.clean)
        prob = dense_family_prob(emb, s.degraded)
        img, done = apply_family_masks(table, emb, s.degraded, fm["thresholds"], fm["cell_thresholds"], min_area,
                                       prob=prob)
        gains.append(psnr(img, s.clean) - base)
        calls.append(len(done))
        if not bounds:
            continue
        truth = true_family_masks(s)
        for j, f in enumerate(FAMILIES):
            p = prob[..., j] >= fm["cell_thresholds"][f]
            t = truth.get(f, np.zeros(p.shape, bool))
            counts[f][0] += int((p & t).sum())
            counts[f][1] += int((p & ~t).sum())
            counts[f][2] += int((~p & t).sum())
        out, _ = restore_in_masks(table, emb, s.degraded,
                                  [(f, truth[f], False) for f in RESTORE_ORDER if f in truth], fm["thresholds"])
        true_gains.append(psnr(out, s.clean) - base)
        mine = family_masks_of(prob, fm["cell_thresholds"], min_area) if swaps else {}
        for f in FAMILIES if swaps else ():
            masks = [(g, truth[g], False) if g == f else (g, mine[g], True) for g in RESTORE_ORDER
                     if (g == f and g in truth) or (g != f and g in mine)]
            swapped, _ = restore_in_masks(table, emb, s.degraded, masks, fm["thresholds"])
            swap_gains[f].append(psnr(swapped, s.clean) - base)
    first = headline or len(gains)
    res = {"gain": float(np.mean(gains)), "gain_headline": float(np.mean(gains[:first])),
           "gain_sem": float(np.std(gains, ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else 0.0,
           "tool_calls": float(np.mean(calls)), "gains": [round(float(g), 4) for g in gains]}
    if bounds:
        per = {f: ({"f1": 2 * tp / (2 * tp + fp + fn), "iou": tp / (tp + fp + fn)} if tp + fp + fn else
                   {"f1": None, "iou": None}) for f, (tp, fp, fn) in counts.items()}  # None: absent, never flagged
        res.update({"true_masks_gain": float(np.mean(true_gains)),
                    "true_masks_gain_headline": float(np.mean(true_gains[:first])), "mask_iou": per,
                    "mean_iou": float(np.mean([v["iou"] for v in per.values() if v["iou"] is not None]))})
    if swaps:
        res["true_mask_swap"] = {f: float(np.mean(v)) for f, v in swap_gains.items()}
    return res


def validation_blocks(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The config's ``validation`` as a list of blocks (one mapping or a list of them)."""
    val = cfg.get("validation")
    return [] if not val else list(val) if isinstance(val, list) else [val]


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean and standard error of ``b - a`` over paired scenes (dB)."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    return {"mean": float(d.mean()), "sem": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0}


def clean_crops_of(images: str, n: int, crop: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` undegraded random ``crop`` px crops of the test photos of ``images`` (photo-major, seeded)."""
    photos = [p for _, p in load_named_corpus(images, "test")]
    rng = np.random.default_rng([seed, 3])
    return [random_crop(photos[i % len(photos)], crop, rng) for i in range(n)]


def clean_behaviour(weights: str | None, table_path: str | None, crops: list[np.ndarray],
                    segment: bool = True) -> dict[str, Any]:
    """The planner on undegraded crops (nothing to restore): share left untouched (output identical to the
    crop), steps per crop, mean and worst output PSNR against the crop over the changed crops (dB)."""
    table, emb = load_variant(weights, table_path, segment)
    fm = table.family_masks
    steps, touched = [], []
    for c in crops:
        img, done = apply_family_masks(table, emb, c, fm["thresholds"], fm["cell_thresholds"],
                                       float(fm.get("min_area", 0.0)))
        steps.append(len(done))
        if not np.array_equal(img, c):
            touched.append(psnr(img, c))
    return {"crops": len(crops), "untouched": 1.0 - len(touched) / max(1, len(crops)),
            "steps": float(np.mean(steps)) if steps else 0.0,
            "touched_mean_psnr": float(np.mean(touched)) if touched else None,
            "worst_psnr": float(np.min(touched)) if touched else None}


def run(cfg: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Every variant x corpus x recipe of ``cfg`` (and, with ``clean_crops``, every variant x corpus on
    undegraded crops)."""
    res: dict[str, Any] = {"config": cfg, "results": [], "clean": []}
    n_clean = int(cfg.get("clean_crops", 0))
    for images in cfg["images"] if n_clean else []:
        crops = clean_crops_of(images, n_clean, int(cfg["crop"]))
        for v in cfg["variants"]:
            res["clean"].append({"variant": v["name"], "images": images,
                                 **clean_behaviour(v.get("weights"), v.get("table"), crops,
                                                   segment=bool(v.get("segment", True)))})
    crop = int(cfg["crop"])
    jobs = [(v, images, recipe, crop) for v in cfg["variants"] for images in cfg["images"] for recipe in cfg["recipes"]]
    jobs += [(v, images, recipe, int(size)) for v in cfg["variants"] for images in cfg["images"]
             for size, recipes in (cfg.get("more_crops") or {}).items() for recipe in recipes]
    cache: dict[tuple[str, str, int], list[Any]] = {}
    for v, images, recipe, size in tqdm(jobs, desc="eval family masks", disable=not progress):
        key = (images, recipe, size)
        if key not in cache:
            cache[key] = scenes_of(images, recipe, int(cfg["scenes_per_photo"]), size)
        r = evaluate_variant(v.get("weights"), v.get("table"), cache[key], int(cfg.get("headline", 0)),
                             segment=bool(v.get("segment", True)),
                             swaps=bool(cfg.get("family_swaps", False)) and size == crop)
        res["results"].append({"variant": v["name"], "images": images,
                               "recipe": recipe if size == crop else f"{recipe} @{size} px",
                               "crop": size, "scenes": len(cache[key]), **r})
    blocks = validation_blocks(cfg)
    if blocks:  # fresh scenes of the TRAIN photos (random crops, another seed than the tuning scenes)
        res["validation"] = []
        for val in blocks:
            photos = load_named_corpus(val["corpus"], "train")
            crop = int(val.get("crop", cfg["crop"]))
            for recipe, per_photo in val["recipes"].items():
                scenes = scene_set(photos, recipe, int(per_photo), crop, int(val["seed"]), random_crops=True)
                rows = []
                for v in tqdm(cfg["variants"], desc=f"validation {recipe} {crop} px", disable=not progress):
                    r = evaluate_variant(v.get("weights"), v.get("table"), scenes, 0,
                                         segment=bool(v.get("segment", True)), bounds=False)
                    rows.append({"variant": v["name"], "gain": r["gain"], "gain_sem": r["gain_sem"],
                                 "gains": r["gains"]})
                for row in rows[1:]:
                    row["vs_first"] = paired(rows[0]["gains"], row["gains"])
                res["validation"].append({"recipe": recipe, "crop": crop, "seed": int(val["seed"]),
                                          "scenes": len(scenes), "rows": rows})
    return res


def markdown(res: dict[str, Any]) -> str:
    """Tables of :func:`run`'s result."""
    cfg = res["config"]
    lines = [f"# `perceive:regions=families` under different dense perception "
             f"(python -m experiments.eval_family_masks --config {cfg.get('_path', '')})", "",
             f"{cfg['scenes_per_photo']} scenes per photo, {cfg['crop']} px centre crops, scene seeds of "
             "experiments/compare.py. Mean PSNR gain (dB) ± standard error over scenes; in brackets the mean over "
             f"the first {cfg.get('headline', 0)} scenes (builtin: the headline comparison's). 'True masks': the same "
             "table on the true family masks with the encoder's severities (what better masks alone could give). "
             "IoU: the planner's per-family masks against the true ones, pixels of all scenes ('-': the family is "
             "in no scene and never flagged; the mean IoU is over the other families).", ""]
    for images in cfg["images"]:
        lines += [f"## {images}", "", "| variant | recipe | gain | tool calls | true masks | mean IoU | "
                  + " | ".join(f"IoU {f}" for f in FAMILIES) + " |", "|" + "---|" * (6 + len(FAMILIES))]
        for r in res["results"]:
            if r["images"] != images:
                continue
            lines.append(f"| {r['variant']} | {r['recipe']} | {r['gain']:+.2f} ± {r['gain_sem']:.2f} "
                         f"({r['gain_headline']:+.2f}) | {r['tool_calls']:.1f} | {r['true_masks_gain']:+.2f} "
                         f"({r['true_masks_gain_headline']:+.2f}) | {r['mean_iou']:.3f} | "
                         + " | ".join(_fmt(r["mask_iou"][f]["iou"]) for f in FAMILIES) + " |")
        lines.append("")
        swapped = [r for r in res["results"] if r["images"] == images and "true_mask_swap" in r]
        if swapped:
            lines += [f"The same, with only ONE family's mask replaced by the true one (the others the planner's), "
                      f"{images}: where the masks cost the most.", "",
                      "| variant | recipe | planner | " + " | ".join(f"true {f}" for f in FAMILIES) + " |",
                      "|" + "---|" * (3 + len(FAMILIES))]
            lines += [f"| {r['variant']} | {r['recipe']} | {r['gain']:+.2f} | "
                      + " | ".join(f"{r['true_mask_swap'][f]:+.2f}" for f in FAMILIES) + " |" for r in swapped]
            lines.append("")
        clean = [c for c in res.get("clean", []) if c["images"] == images]
        if clean:
            lines += [f"Undegraded test crops of {images} ({clean[0]['crops']} random {cfg['crop']} px crops, "
                      "nothing to restore):", "",
                      "| variant | left untouched | steps per crop | PSNR of touched crops (mean / worst) |",
                      "|---|---|---|---|"]
            for c in clean:
                psnrs = ("-" if c["touched_mean_psnr"] is None
                         else f"{c['touched_mean_psnr']:.1f} / {c['worst_psnr']:.1f} dB")
                lines.append(f"| {c['variant']} | {c['untouched']:.0%} | {c['steps']:.2f} | {psnrs} |")
            lines.append("")
    if res.get("validation"):
        lines += ["## validation: other scenes of the TRAIN photos", "",
                  "Random crops of the train photos, scene seed as listed (the rule tables' thresholds were tuned on "
                  "seed 1 scenes of the same photos at 128 px). Gain ± standard error; paired difference against the "
                  "first variant ± standard error.", "",
                  "| recipe | crop | seed | scenes | variant | gain | vs first |", "|---|---|---|---|---|---|---|"]
        for block in res["validation"]:
            for row in block["rows"]:
                d = row.get("vs_first")
                lines.append(f"| {block['recipe']} | {block['crop']} px | {block['seed']} | {block['scenes']} | "
                             f"{row['variant']} | {row['gain']:+.2f} ± {row['gain_sem']:.2f} | "
                             + (f"{d['mean']:+.2f} ± {d['sem']:.2f}" if d else "-") + " |")
        lines.append("")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def check_config(cfg: Any, where: str = "config") -> dict[str, Any]:
    """``cfg`` when it names ``variants`` (each with a ``name``), ``images``, ``recipes``, ``scenes_per_photo``,
    ``crop``, ``out``, holds no key this script does not read (:data:`CONFIG_KEYS`, :data:`VARIANT_KEYS`,
    :data:`VALIDATION_KEYS`: a misspelt key is not silently ignored) and well-formed values; else ``ValueError``
    naming ``where`` (the config file) and what is wrong. Nothing is computed."""
    from experiments.configio import check_keys, check_output, config_int, config_names
    from ir_env.recipes import get_recipe

    if not isinstance(cfg, dict):
        raise ValueError("config must be a YAML mapping")
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")
    check_keys(cfg, CONFIG_KEYS, where)
    if not isinstance(cfg["variants"], list) or not cfg["variants"]:
        raise ValueError(f"{where}: variants must be a non-empty list of {{name, weights, table, segment}}, "
                         f"got {cfg['variants']!r}")
    for v in cfg["variants"]:
        if not isinstance(v, dict) or "name" not in v:
            raise ValueError(f"every variant needs a name, got {v!r}")
        check_keys(v, VARIANT_KEYS, f"{where}: variant {v['name']!r}")
        for key in ("weights", "table"):
            if v.get(key) and not Path(v[key]).exists():
                raise ValueError(f"variant {v['name']}: {key} {v[key]} not found")
        if not isinstance(v.get("segment", True), bool):
            raise ValueError(f"{where}: variant {v['name']!r}: segment must be true or false, got {v['segment']!r}")
    config_names(cfg, "images", where, "corpus names")
    def known_recipe(recipe: str, key: str) -> None:
        try:
            get_recipe(recipe)
        except ValueError as e:
            raise ValueError(f"{where}: {key}: {e}") from None

    for recipe in config_names(cfg, "recipes", where, "recipe names"):
        known_recipe(recipe, "recipes")
    config_int(cfg, "scenes_per_photo", where, minimum=1)
    config_int(cfg, "crop", where, minimum=8)
    config_int(cfg, "headline", where, minimum=0, default=0)
    config_int(cfg, "clean_crops", where, minimum=0, default=0)
    if not isinstance(cfg.get("family_swaps", False), bool):
        raise ValueError(f"{where}: family_swaps must be true or false, got {cfg['family_swaps']!r}")
    more = cfg.get("more_crops") or {}
    if not isinstance(more, dict) or not all(
            isinstance(size, int) and not isinstance(size, bool) and size >= 8 and isinstance(r, list) and r
            and all(isinstance(x, str) for x in r) for size, r in more.items()):
        raise ValueError(f"{where}: more_crops must map a crop size (px, >= 8) to a list of recipe names, "
                         f"got {cfg['more_crops']!r}")
    for recipe in (x for r in more.values() for x in r):
        known_recipe(recipe, "more_crops")
    for val in validation_blocks(cfg):
        if not isinstance(val, dict) or not {"corpus", "seed", "recipes"} <= set(val) \
                or not isinstance(val["recipes"], dict):
            raise ValueError("every validation block needs corpus, seed and recipes (a mapping recipe -> scenes per "
                             "photo); crop is optional")
        check_keys(val, VALIDATION_KEYS, f"{where}: validation")
        config_int(val, "seed", f"{where}: validation", minimum=0)
        if "crop" in val:
            config_int(val, "crop", f"{where}: validation", minimum=8)
        for recipe in val["recipes"]:
            known_recipe(recipe, "validation: recipes")
            config_int(val["recipes"], recipe, f"{where}: validation: recipes", minimum=1)
        if val["seed"] == 1:
            raise ValueError("validation seed 1 makes the scenes the rule tables were tuned on; use another seed")
    out = Path(str(cfg["out"]))
    for suffix in (".json", ".md"):
        check_output(out.with_suffix(suffix), "out")
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.eval_family_masks`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    from experiments.configio import read_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="experiments/configs/eval_family_masks.yaml",
                    help="the YAML config: variants, images, recipes, ... (default: %(default)s)")
    a = ap.parse_args(argv)
    try:
        cfg = check_config(read_config(a.config), a.config)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg["_path"] = a.config
    res = run(cfg)
    out = Path(cfg["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(res) + "\n")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
