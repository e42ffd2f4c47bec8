"""``perceive`` with the rule table's validation-tuned thresholds vs the encoder's calibrated 0.5, on test photos.

The rule table's per-family thresholds are tuned for restoration gain on validation scenes of the TRAIN
photos (``experiments.fit_rule_table``); the encoder's own threshold is 0.5 for every family (its F1-best
point). On the built-in test photos 0.5 does better on two recipes (rule-table report); this script asks
whether that holds on other photos: the same comparison on the scenes of each corpus's test split (the
rule-table report's test scenes: centre crops, scene seed = index), proposer regions as the planner uses.

    python -m experiments.eval_perceive_thresholds --images builtin holdout \\
        --json experiments/results/rules/perceive_thresholds.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from experiments.fit_rule_table import Perceived, clean_crops_check, scene_set  # noqa: E402
from ir_env.corpus import load_named_corpus  # noqa: E402
from policies.rules import ENCODER_THRESHOLD, RuleTable  # noqa: E402
from restorers.spec import FAMILIES  # noqa: E402

#: This script's regions unless told otherwise: (proposer, max regions), those the shipped table's thresholds were
#: tuned on (``tune`` of experiments/configs/rule_table.yaml), not the ``perceive`` planner's own default.
DEFAULT_REGIONS: tuple[str, int] = ("degradation-clusters", 4)
#: ``--perception`` choices (:func:`run`).
PERCEPTIONS: tuple[str, ...] = ("table", "encoder", "linear")


def run(images: list[str], recipes: list[str], per_photo: int, crop: int, proposer: str = DEFAULT_REGIONS[0],
        max_regions: int = DEFAULT_REGIONS[1], weights: str | None = None, clean_crops: int = 0,
        perception: str = "table") -> dict[str, Any]:
    """Mean PSNR gain (dB) of the shipped table with its tuned thresholds and with 0.5, per corpus and recipe;
    ``weights``: another encoder weights directory perceiving through the same table (default: the shipped one);
    ``clean_crops`` > 0: also the planner (tuned thresholds) on that many UNDEGRADED random crops of each corpus's
    test photos (:func:`experiments.fit_rule_table.clean_crops_check`, seed 0). ``perception``: ``"table"`` (as the
    planner perceives: the perception the table was tuned on, :meth:`RuleTable.perception_context`; for the shipped
    table the linear heads), ``"encoder"`` (the encoder's own ``predict``: a candidate's context head or blend) or
    ``"linear"`` (its linear heads)."""
    table = RuleTable.load()
    if perception not in PERCEPTIONS:
        raise ValueError(f"perception must be one of {', '.join(PERCEPTIONS)}, got {perception!r}")
    context = {"table": table.perception_context(weights) is not False, "encoder": True, "linear": False}[perception]
    rows, clean = [], {}
    for corpus in images:
        photos = load_named_corpus(corpus, "test")
        if clean_crops > 0:
            clean[corpus] = clean_crops_check(table, table.thresholds, [img for _, img in photos], clean_crops, crop, 0,
                                              proposer, max_regions, weights, context)
        for recipe in recipes:
            p = Perceived(scene_set(photos, recipe, per_photo, crop, 0, random_crops=False), proposer, max_regions,
                          weights, context)
            tuned = p.gains(table, table.thresholds, "encoder")
            half = p.gains(table, dict.fromkeys(FAMILIES, ENCODER_THRESHOLD), "encoder")
            rows.append({"images": corpus, "recipe": recipe, "scenes": len(tuned),
                         "tuned": sum(tuned) / len(tuned), "encoder_0.5": sum(half) / len(half),
                         "tuned_gains": [round(g, 4) for g in tuned], "encoder_gains": [round(g, 4) for g in half]})
    return {"thresholds": table.thresholds, **({"weights": weights} if weights else {}),
            **({"perception": perception} if perception != "table" else {}), "proposer": proposer,
            "max_regions": max_regions, "crop": crop, "scenes_per_photo": per_photo, "rows": rows,
            **({"clean_crops": clean} if clean else {})}


def markdown(res: dict[str, Any]) -> str:
    """The table of :func:`run`'s result."""
    lines = ([f"Encoder: the weights in `{res['weights']}` (not the shipped ones), through the shipped table.", ""]
             if res.get("weights") else [])
    if res.get("perception"):
        lines += [f"Perception: `{res['perception']}` ("
                  + ("the encoder's own `predict`, its context head or blend included"
                     if res["perception"] == "encoder" else "the encoder's linear heads")
                  + "; the planner's is the one the table was tuned on).", ""]
    if (res["proposer"], res["max_regions"]) != DEFAULT_REGIONS:
        lines += [f"Regions: `{res['proposer']}`, at most {res['max_regions']} (this script's default: "
                  f"`{DEFAULT_REGIONS[0]}`, {DEFAULT_REGIONS[1]}, the regions the table's thresholds were tuned on).",
                  ""]
    lines += ["| photos | recipe | scenes | tuned thresholds | encoder's 0.5 |", "|---|---|---|---|---|"]
    lines += [f"| {r['images']} | {r['recipe']} | {r['scenes']} | {r['tuned']:+.2f} | {r['encoder_0.5']:+.2f} |"
              for r in res["rows"]]
    for corpus, c in res.get("clean_crops", {}).items():
        lines += ["", f"Undegraded {corpus} test crops ({c['crops']}, nothing to restore; tuned thresholds): "
                  f"{c['untouched']:.0%} left untouched, {c['mean_steps']:.2f} steps per crop, worst output PSNR "
                  f"against the crop {c['worst_psnr']:.1f} dB."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.eval_perceive_thresholds`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", nargs="+", default=["builtin", "holdout"],
                    help="corpora, their test split (default: builtin holdout)")
    ap.add_argument("--recipes", nargs="+", default=["spatial-mixed", "global-moderate", "mixed-3"],
                    help="scene recipes (default: spatial-mixed global-moderate mixed-3)")
    ap.add_argument("--scenes-per-photo", type=int, default=8,
                    help="scenes per test photo, >= 1 (default: %(default)s)")
    ap.add_argument("--crop", type=int, default=128, help="centre-crop side in px, >= 32 (default: %(default)s)")
    ap.add_argument("--proposer", default=DEFAULT_REGIONS[0],
                    help="region proposer of the planner (default: %(default)s, the one the table was tuned on)")
    ap.add_argument("--max-regions", type=int, default=DEFAULT_REGIONS[1],
                    help="most regions per scene, >= 1 (default: %(default)s)")
    ap.add_argument("--weights", default=None, help="encoder weights directory (default: the shipped encoder)")
    ap.add_argument("--perception", choices=PERCEPTIONS, default="table",
                    help="table: as the planner (the perception the table was tuned on); encoder: the encoder's "
                         "predict (a candidate's context head); linear: its linear heads (default: %(default)s)")
    ap.add_argument("--clean-crops", type=int, default=0,
                    help="also run the planner on this many undegraded test crops per corpus (default: %(default)s)")
    ap.add_argument("--json", default="",
                    help="write the result here and the table next to it as .md (default: not written)")
    a = ap.parse_args(argv)
    if a.scenes_per_photo < 1 or a.crop < 32 or a.clean_crops < 0 or a.max_regions < 1:
        print("error: --scenes-per-photo and --max-regions must be >= 1, --crop >= 32 and --clean-crops >= 0",
              file=sys.stderr)
        return 2
    if a.json:
        from experiments.configio import check_output

        try:  # before any scene: the result is not lost at the end
            check_output(a.json, "--json")
            check_output(Path(a.json).with_suffix(".md"), "--json's .md table")
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    try:
        res = run(a.images, a.recipes, a.scenes_per_photo, a.crop, a.proposer, a.max_regions, weights=a.weights,
                  clean_crops=a.clean_crops, perception=a.perception)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from experiments.configio import script_command

    res["command"] = script_command("experiments.eval_perceive_thresholds", argv)
    md = markdown(res)
    if a.json:
        out = Path(a.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1) + "\n")
        out.with_suffix(".md").write_text(f"`{res['command']}`\n\n{md}\n")
    print(md)
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
