"""Evaluate the learned degradation encoder against the hand-made embedding's linear probe.

Scenes are synthesized (``--recipe``, default ``spatial-mixed``) on ``--crops`` random ``--size`` px crops
of every photo of ``--images`` (``builtin``: the built-in TEST split; ``holdout``: the 4 test-only photos of
``ir_env.corpus`` that nothing is selected on; a folder: all its images). Regions
are the scenes' ground-truth (oracle) masks. For every region:

- ``learned``: the encoder's own heads (family probability >= 0.5; severity of the present families),
- ``handcrafted probe``: one-vs-rest logistic regressions (and, for severity, ridge regressions on the
  regions where the family is present) on the 37 hand-made features, fitted on ``--train-crops`` scenes
  of the built-in TRAIN photos of the same recipe (the shipped probe's protocol,
  ``experiments/probe_embeddings.py``).

Reported: per-family precision / recall / F1 and severity MAE (in [0, 1] severity units, regions where the
family is present), macro-F1; then the region proposers' mIoU (``experiments/eval_regions.py``'s score) for
``degradation-clusters`` and its learned variant ``degradation-clusters-learned``.

    python -m experiments.eval_encoder --recipe spatial-mixed --crops 25 \
        --json experiments/results/encoder_eval.json --markdown experiments/results/encoder_eval.md
    spatial-ir encoder-eval --images DIR --recipe spatial-mixed --json encoder_eval.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ir_env.corpus import load_named_corpus
from ir_env.recipes import list_recipes
from restorers.spec import FAMILIES

PROPOSERS = ("degradation-clusters", "degradation-clusters-learned")


def build_scenes(images: str, recipe: str, crops: int, size: int, seed: int, split: str | None = None) -> list[dict]:
    """Scenes as in ``experiments/eval_regions.py`` on ``images``; ``builtin`` means its test split, a folder
    all its images."""
    from experiments.eval_regions import build_scenes as scenes_of

    split = split or ("test" if images == "builtin" else "all")
    return scenes_of(recipe, split, None, crops, size, seed, corpus=images)


def region_targets_of(scenes: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Stacked (N, F) presence and (N, F) severity of every non-empty ground-truth region."""
    from experiments.train_encoder import region_targets

    fams, sevs = [], []
    for item in scenes:
        sc = item["scene"]
        f, s = region_targets(sc.labels)
        keep = sc.masks.reshape(len(sc.masks), -1).any(1)
        fams.append(f[keep])
        sevs.append(s[keep])
    return np.concatenate(fams), np.concatenate(sevs)


def embed_all(embed: Any, scenes: list[dict]) -> np.ndarray:
    """Concatenate ``embed(image, masks)`` rows over the non-empty regions of ``scenes``."""
    rows = []
    for item in scenes:
        sc = item["scene"]
        keep = sc.masks.reshape(len(sc.masks), -1).any(1)
        rows.append(np.asarray(embed(sc.degraded, sc.masks))[keep])
    return np.concatenate(rows)


def _regions_per_scene(scenes: list[dict]) -> np.ndarray:
    """How many non-empty ground-truth regions each scene has (the rows :func:`embed_all` gives it)."""
    return np.asarray([int(it["scene"].masks.reshape(len(it["scene"].masks), -1).any(1).sum()) for it in scenes],
                      dtype=int)


def region_images_of(scenes: list[dict]) -> np.ndarray:
    """The photo name of every non-empty ground-truth region (the row order of :func:`embed_all`)."""
    return np.repeat(np.asarray([str(it["image"]) for it in scenes]), _regions_per_scene(scenes))


def region_scene_ids(scenes: list[dict]) -> np.ndarray:
    """The scene index of every non-empty ground-truth region (the row order of :func:`embed_all`)."""
    return np.repeat(np.arange(len(scenes)), _regions_per_scene(scenes))


def per_image_macro_f1(prob: np.ndarray, sev: np.ndarray, fam: np.ndarray, tsev: np.ndarray,
                       names: np.ndarray) -> dict[str, float]:
    """Macro-F1 of the regions of each photo (photo name -> macro-F1)."""
    from ir_env.encoder.metrics import family_metrics

    return {n: family_metrics(prob[names == n], sev[names == n], fam[names == n], tsev[names == n])["macro_f1"]
            for n in dict.fromkeys(names.tolist())}


def learned_scores(scenes: list[dict], weights: str | None = None, context: bool = True) -> dict[str, Any]:
    """The encoder's own family / severity predictions scored on the scenes' regions, per photo too, and
    ``clean_photo``: the same regions of the UNDEGRADED crop run through the encoder (``flag_rate``: share of
    regions flagged per family, and per photo in ``clean_photo_per_image``; ``false_positives`` /
    ``fp_flagged_on_clean``: how many of the false
    positives on the degraded scene the encoder also flags on the clean photo, i.e. content that already
    looks degraded, such as real haze or bokeh in the test photos). ``context``: use the context head stored
    with the weights (when there is one; ``context_head`` in the result says whether one was used)."""
    from ir_env.encoder.learned import LearnedEmbedder

    enc = LearnedEmbedder(weights, context=context)
    fam, sev = region_targets_of(scenes)
    names = region_images_of(scenes)

    def heads(im: np.ndarray, m: np.ndarray) -> np.ndarray:
        return np.concatenate([v for v in enc.predict(im, m).values()], 1)

    pred = embed_all(heads, scenes)
    nf = len(FAMILIES)
    from ir_env.encoder.metrics import family_metrics, macro_f1_bootstrap

    out = family_metrics(pred[:, :nf], pred[:, nf:], fam, sev)
    out["context_head"] = enc.context is not None
    if enc.blend is not None:  # the context head's weight in its blend with the linear heads
        out["context_blend"] = float(enc.blend[0])
    out["per_image_macro_f1"] = per_image_macro_f1(pred[:, :nf], pred[:, nf:], fam, sev, names)
    out["macro_f1_bootstrap"] = macro_f1_bootstrap(pred[:, :nf], fam, region_scene_ids(scenes))
    from experiments.train_encoder import best_thresholds

    # an upper bound, not a result: each family's threshold picked on these very regions
    out["macro_f1_oracle_thresholds"] = float(best_thresholds(pred[:, :nf], fam.astype(bool))[1].mean())
    on_clean = embed_all(heads, [{"scene": replace(it["scene"], degraded=it["scene"].clean)} for it in scenes])
    flag, hit = on_clean[:, :nf] >= 0.5, pred[:, :nf] >= 0.5
    fp = hit & ~fam.astype(bool)
    out["clean_photo"] = {f: {"flag_rate": float(flag[:, j].mean()), "false_positives": int(fp[:, j].sum()),
                              "fp_flagged_on_clean": int((fp[:, j] & flag[:, j]).sum())}
                          for j, f in enumerate(FAMILIES)}
    out["clean_photo_per_image"] = {n: {f: float(flag[names == n, j].mean()) for j, f in enumerate(FAMILIES)}
                                    for n in dict.fromkeys(names.tolist())}
    return out


def handcrafted_scores(train: list[dict], test: list[dict]) -> dict[str, Any]:
    """Linear probe (logistic per family) + ridge severity regressors on the handcrafted embedding."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ir_env.embeddings import make_embedder

    emb = make_embedder("handcrafted")
    xtr, xte = embed_all(emb.embed, train), embed_all(emb.embed, test)
    ftr, str_ = region_targets_of(train)
    fte, ste = region_targets_of(test)
    names = region_images_of(test)
    prob = np.zeros(fte.shape)
    sev = np.zeros(fte.shape)
    for j in range(len(FAMILIES)):
        y = ftr[:, j]
        if y.all() or not y.any():
            prob[:, j] = float(y.all())
        else:
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000))
            prob[:, j] = clf.fit(xtr, y).predict_proba(xte)[:, 1]
        if y.sum() >= 2:
            reg = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(xtr[y], str_[y, j])
            sev[:, j] = np.clip(reg.predict(xte), 0.0, 1.0)
    from ir_env.encoder.metrics import family_metrics

    out = family_metrics(prob, sev, fte, ste)
    out["per_image_macro_f1"] = per_image_macro_f1(prob, sev, fte, ste, names)
    return out


def proposer_scores(scenes: list[dict], max_regions: int, seed: int, weights: str | None = None) -> dict[str, Any]:
    """mIoU of the two degradation-clusters proposers on the scenes (eval_regions' protocol)."""
    from experiments import eval_regions

    kw = {"weights": weights} if weights else {}
    eval_regions.VARIANTS["degradation-clusters-learned"] = ("degradation-clusters-learned", kw)
    summary, _ = eval_regions.evaluate(scenes, list(PROPOSERS), max_regions, seed, {})
    return summary


def run(images: str = "builtin", recipe: str = "spatial-mixed", crops: int = 25, size: int = 128, seed: int = 0,
        train_crops: int = 400, max_regions: int = 8, weights: str | None = None,
        proposers: bool = True) -> dict[str, Any]:
    """The whole evaluation (module docstring); returns the JSON-ready result."""
    if recipe not in list_recipes():
        raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(list_recipes())}")
    test = build_scenes(images, recipe, crops, size, seed)
    per_photo = max(1, train_crops // len(load_named_corpus("builtin", "train")))
    train = build_scenes("builtin", recipe, per_photo, size, seed + 1, split="train")
    res: dict[str, Any] = {
        "images": images, "recipe": recipe, "size": size, "seed": seed, "test_scenes": len(test),
        "train_scenes_for_probe": len(train), "masks": "oracle (ground truth)",
        "learned": learned_scores(test, weights),
        "handcrafted_probe": handcrafted_scores(train, test),
    }
    if res["learned"]["context_head"]:  # the same weights' linear heads (what the embedding carries)
        lin = learned_scores(test, weights, context=False)
        res["learned_linear_heads"] = {"macro_f1": lin["macro_f1"],
                                       "f1": {f: lin["families"][f]["f1"] for f in FAMILIES},
                                       "clean_flag_rate": {f: lin["clean_photo"][f]["flag_rate"] for f in FAMILIES}}
    if proposers:
        res["proposers_miou"] = proposer_scores(test, max_regions, seed, weights)
    return res


def markdown(res: dict[str, Any]) -> str:
    """A readable report of :func:`run`'s result."""
    lines = [f"# Learned encoder vs hand-made embedding ({res['recipe']})", "",
             f"{res['test_scenes']} scenes ({res['size']} px crops of `{res['images']}` "
             f"{'test split' if res['images'] == 'builtin' else 'images'}), seed {res['seed']}, "
             f"{res['learned']['regions']} ground-truth regions (oracle masks). Handcrafted probe fitted on "
             f"{res['train_scenes_for_probe']} train-split scenes. Severity MAE in [0, 1] severity units, "
             "over regions where the family is present.", "",
             "| family | learned P | learned R | learned F1 | probe P | probe R | probe F1 | learned sev. MAE "
             "| probe sev. MAE | positives |", "|---|---|---|---|---|---|---|---|---|---|"]
    le, hc = res["learned"]["families"], res["handcrafted_probe"]["families"]
    for f in FAMILIES:
        a, b = le[f], hc[f]
        lines.append(f"| {f} | {a['precision']:.3f} | {a['recall']:.3f} | **{a['f1']:.3f}** | {b['precision']:.3f} | "
                     f"{b['recall']:.3f} | {b['f1']:.3f} | {a['severity_mae']:.3f} | {b['severity_mae']:.3f} | "
                     f"{a['positives']} |")
    lines.append(f"| **macro** | | | **{res['learned']['macro_f1']:.3f}** | | | "
                 f"{res['handcrafted_probe']['macro_f1']:.3f} | | | |")
    if res["learned"].get("context_head"):
        lin = res.get("learned_linear_heads")
        w = res["learned"].get("context_blend")
        blend = ("" if w is None else f", its probabilities and severities averaged with the linear heads' (weight "
                 f"{w:g} on the context head) and re-calibrated: `experiments/results/encoder_variants/"
                 "perception_blend.md`")
        lines += ["", "Learned predictions: the encoder's perception (`LearnedEmbedder.predict`) with its context head "
                  f"(each region judged against the rest of its image{blend})."
                  + (f" Its linear heads alone (what the region embedding carries): macro-F1 {lin['macro_f1']:.3f} ("
                     + ", ".join(f"{f} {v:.3f}" for f, v in lin["f1"].items()) + ")." if lin else "")
                  + " Planners that read a rule table's thresholds (`perceive`, the gates of the learned policies) "
                  "perceive through the perception that table was tuned on (the shipped table: the linear heads)."]
    bs = res["learned"].get("macro_f1_bootstrap")
    if bs:
        lines += ["", f"Learned macro-F1 bootstrap over scenes ({bs['resamples']} resamples of the scenes, seed 0): "
                  f"standard error {bs['se']:.3f}, 95% interval {bs['ci95_low']:.3f}-{bs['ci95_high']:.3f}."]
    if "macro_f1_oracle_thresholds" in res["learned"]:
        lines += ["", "Upper bound, not a result: with each family's threshold picked on these very regions the "
                  f"learned macro-F1 would be {res['learned']['macro_f1_oracle_thresholds']:.3f} (the shipped "
                  "thresholds come from validation scenes of the train photos)."]
    lp, hp = res["learned"].get("per_image_macro_f1"), res["handcrafted_probe"].get("per_image_macro_f1")
    if lp and hp:
        lines += ["", "Macro-F1 per photo (the regions of that photo's scenes):", "",
                  "| photo | learned | probe |", "|---|---|---|"]
        lines += [f"| {n} | {lp[n]:.3f} | {hp[n]:.3f} |" for n in lp]
    cp = res["learned"].get("clean_photo")
    if cp:
        lines += ["", "The same regions of the UNDEGRADED crops run through the encoder: how often it flags each "
                  "family on clean content, and how many of its false positives on the degraded scenes it also "
                  "flags on the clean photo (content that already looks degraded, e.g. real haze or bokeh):", "",
                  "| family | flagged on clean | false positives | of them flagged on clean |", "|---|---|---|---|"]
        lines += [f"| {f} | {c['flag_rate']:.2f} | {c['false_positives']} | {c['fp_flagged_on_clean']} |"
                  for f, c in cp.items()]
    per = res["learned"].get("clean_photo_per_image")
    if per:
        lines += ["", "Share of the regions of the UNDEGRADED crops flagged, per photo:", "",
                  "| photo | " + " | ".join(FAMILIES) + " |", "|---|" + "---|" * len(FAMILIES)]
        lines += [f"| {n} | " + " | ".join(f"{r[f]:.2f}" for f in FAMILIES) + " |" for n, r in per.items()]
    if "proposers_miou" in res:
        lines += ["", "| proposer | mIoU | ± s.e. | regions | ms / call |", "|---|---|---|---|---|"]
        for name, s in res["proposers_miou"].items():
            lines.append(f"| {name} | {s['miou']:.3f} | {s['miou_se']:.3f} | {s['regions']:.2f} | "
                         f"{1000 * s['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Options shared by this script and ``spatial-ir encoder-eval``."""
    ap.add_argument("--images", default="builtin",
                    help="builtin (its test split), holdout (4 test-only photos nothing is selected on) or a folder")
    ap.add_argument("--recipe", default="spatial-mixed", help="degradation recipe (default spatial-mixed)")
    ap.add_argument("--crops", type=int, default=25, help="scenes per photo (default 25)")
    ap.add_argument("--size", type=int, default=128, help="crop side in px (default 128)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the scenes (default 0)")
    ap.add_argument("--train-crops", type=int, default=400, help="train-split scenes for the handcrafted probe")
    ap.add_argument("--weights", help="encoder weights directory (default: shipped)")
    ap.add_argument("--no-proposers", action="store_true", help="skip the proposers' mIoU")
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--markdown", help="write a Markdown report here")


def run_from_args(a: argparse.Namespace) -> dict[str, Any]:
    """Run with parsed options, write the requested files, print the report."""
    if a.crops < 1 or a.train_crops < 1 or a.size < 8:
        raise ValueError(f"--crops and --train-crops must be >= 1 and --size >= 8, got {a.crops}, {a.train_crops}, "
                         f"{a.size}")
    from experiments.configio import check_output

    check_output(a.json, "--json")  # before the run, not after it
    check_output(a.markdown, "--markdown")
    res = run(a.images, a.recipe, a.crops, a.size, a.seed, a.train_crops, weights=a.weights,
              proposers=not a.no_proposers)
    res["command"] = "python -m experiments.eval_encoder " + " ".join(sys.argv[1:])
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    md = markdown(res)
    if a.markdown:
        Path(a.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(a.markdown).write_text(md)
    print(md)
    return res


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.eval_encoder`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    run_from_args(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
