"""Linear probe of region embeddings: can a logistic regression read the degradation families off them?

Scenes are synthesized on random crops of the built-in TRAIN photos (ground-truth region masks = oracle
masks; label of a region = the set of families present in it: noise, blur, jpeg, haze, rain, dark), one
one-vs-rest logistic regression per family is trained on standardised embeddings (class_weight balanced)
and evaluated on regions of scenes built from the TEST photos: per-family precision / recall / F1,
macro-F1, and confusion notes (which true families the false positives carry, recall per kind and per
severity). Also times the embedder on one core (128 px and 256 px crops, 8 regions).

``--save`` also writes the probe fitted on the first recipe's training regions to
``ir_env/data/family_probe_<embedding>.json`` (families, StandardScaler mean / scale, coef F x D,
intercept F: plain numbers), which :class:`policies.perception.Perception` loads.

    python experiments/probe_embeddings.py --recipe spatial-mixed,mixed-3 --crops 600 \
        --json experiments/results/embedding_probe.json --markdown experiments/results/embedding_probe.md
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # timings are single-core; set before numpy loads BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score, precision_score, recall_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from ir_env.corpus import load_named_corpus, random_crop  # noqa: E402
from ir_env.degradations import FAMILY_OF_KIND  # noqa: E402
from ir_env.embeddings import RegionEmbedder, make_embedder  # noqa: E402
from ir_env.recipes import list_recipes, synthesize  # noqa: E402
from policies.perception import probe_path  # noqa: E402
from restorers.spec import FAMILIES  # noqa: E402

SPLIT_SALT = {"train": 1, "test": 2, "all": 3}


def build_regions(
    embedder: RegionEmbedder, corpus: str, split: str, recipe: str, crops: int, size: int, seed: int
) -> dict[str, Any]:
    """Embed every ground-truth region of ``crops`` scenes synthesized on random ``size`` px crops.

    Returns X (N, D) float32, Y (N, F) bool over FAMILIES, and per-region metadata (image, kinds with
    severities, area fraction), plus the embedding time per scene (s).
    """
    named = load_named_corpus(corpus, split)
    rng = np.random.default_rng([seed, SPLIT_SALT[split]])
    xs, ys, meta, secs = [], [], [], []
    for _ in range(crops):
        i = int(rng.integers(len(named)))
        name, photo = named[i]
        clean = random_crop(photo, size, rng)
        scene = synthesize(clean, recipe=recipe, seed=int(rng.integers(2**31 - 1)))
        t0 = time.perf_counter()
        emb = embedder.embed(scene.degraded, scene.masks)
        secs.append(time.perf_counter() - t0)
        for k in range(scene.num_regions):
            area = float(scene.masks[k].mean())
            if area == 0:
                continue
            fams = {FAMILY_OF_KIND[kind] for kind, _ in scene.labels[k]}
            xs.append(emb[k])
            ys.append([f in fams for f in FAMILIES])
            labels = [(kd, float(s)) for kd, s in scene.labels[k]]
            meta.append({"image": name, "labels": labels, "area": area})
    return {
        "X": np.asarray(xs, np.float32).reshape(-1, embedder.dim),
        "Y": np.asarray(ys, bool).reshape(-1, len(FAMILIES)),
        "meta": meta,
        "seconds_per_scene": float(np.mean(secs)) if secs else 0.0,
    }


def _severity_bin(s: float) -> str:
    return "low (<1/3)" if s < 1 / 3 else ("mid" if s < 2 / 3 else "high (>=2/3)")


def fit_family(x: np.ndarray, y: np.ndarray, c: float = 1.0):
    """Standardised logistic regression (class_weight balanced) for one family; None if y has one class."""
    if y.all() or not y.any():
        return None
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=5000))
    return clf.fit(x, y)


def export_probe(embedder: RegionEmbedder, train: dict[str, Any], c: float, meta: dict[str, Any]) -> dict:
    """Plain-number probe (families, mean, scale, coef F x D, intercept F) fitted on ``train``.

    A family with a single class in ``train`` gets zero weights and an intercept of +-10."""
    x = train["X"].astype(np.float64)
    scaler = StandardScaler().fit(x)
    coef = np.zeros((len(FAMILIES), embedder.dim))
    intercept = np.zeros(len(FAMILIES))
    for j in range(len(FAMILIES)):
        y = train["Y"][:, j]
        clf = fit_family(x, y, c)
        if clf is None:
            intercept[j] = 10.0 if y.all() else -10.0
            continue
        coef[j] = clf[-1].coef_[0]
        intercept[j] = clf[-1].intercept_[0]
    return {
        "embedding": embedder.name,
        "dim": embedder.dim,
        "feature_names": embedder.feature_names,
        "families": list(FAMILIES),
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "coef": coef.tolist(),
        "intercept": intercept.tolist(),
        **meta,
    }


def probe(
    embedder: RegionEmbedder, train: dict[str, Any], test: dict[str, Any], c: float = 1.0
) -> dict[str, Any]:
    """Train one-vs-rest logistic regressions on ``train`` and evaluate on ``test`` (see module doc)."""
    names = embedder.feature_names
    fams: dict[str, Any] = {}
    preds = np.zeros_like(test["Y"])
    for j, fam in enumerate(FAMILIES):
        ytr, yte = train["Y"][:, j], test["Y"][:, j]
        row: dict[str, Any] = {"train_pos": int(ytr.sum()), "test_pos": int(yte.sum()), "test_n": len(yte)}
        clf = fit_family(train["X"], ytr, c)
        if clf is None:
            row["note"] = "only one class in the training set: not evaluated"
            fams[fam] = row
            continue
        p = clf.predict(test["X"]).astype(bool)
        preds[:, j] = p
        coef = clf[-1].coef_[0]
        top = np.argsort(-np.abs(coef))[:5]
        row.update(
            precision=float(precision_score(yte, p, zero_division=0)),
            recall=float(recall_score(yte, p, zero_division=0)),
            f1=float(f1_score(yte, p, zero_division=0)),
            train_f1=float(f1_score(ytr, clf.predict(train["X"]).astype(bool), zero_division=0)),
            top_features=[{"name": names[t], "weight": round(float(coef[t]), 3)} for t in top],
        )
        # confusion notes: which true families do the false positives carry; recall per kind / severity
        fp = np.flatnonzero(p & ~yte)
        fp_fams = Counter(f for i in fp for f, y in zip(FAMILIES, test["Y"][i], strict=True) if y)
        row["false_positives"] = int(len(fp))
        row["false_positive_true_families"] = dict(fp_fams.most_common())
        row["false_positives_clean_regions"] = int(sum(not test["Y"][i].any() for i in fp))
        by_kind: dict[str, list[bool]] = defaultdict(list)
        by_sev: dict[str, list[bool]] = defaultdict(list)
        for i in np.flatnonzero(yte):
            for kind, s in test["meta"][i]["labels"]:
                if FAMILY_OF_KIND[kind] == fam:
                    by_kind[kind].append(bool(p[i]))
                    by_sev[_severity_bin(s)].append(bool(p[i]))
        row["recall_by_kind"] = {k: round(float(np.mean(v)), 3) for k, v in sorted(by_kind.items())}
        row["recall_by_severity"] = {k: round(float(np.mean(v)), 3) for k, v in sorted(by_sev.items())}
        fams[fam] = row
    evaluated = [f for f in FAMILIES if "f1" in fams[f]]
    macro = float(np.mean([fams[f]["f1"] for f in evaluated])) if evaluated else 0.0
    exact = float(np.mean(np.all(preds == test["Y"], axis=1))) if len(preds) else 0.0
    return {
        "train_regions": int(len(train["Y"])),
        "test_regions": int(len(test["Y"])),
        "clean_test_regions": int((~test["Y"].any(axis=1)).sum()),
        "macro_f1": macro,
        "exact_match": exact,
        "families": fams,
        "embed_ms_per_scene": round(1000 * test["seconds_per_scene"], 2),
    }


def time_embedder(embedder: RegionEmbedder, repeats: int = 30) -> dict[str, float]:
    """Median and minimum ms to embed 8 regions (4x2 grid) of a built-in photo crop at 128 and 256 px,
    one thread (the minimum is the better figure on a shared machine)."""
    cv2.setNumThreads(1)
    _, photo = load_named_corpus("builtin", "test")[0]
    out: dict[str, float] = {}
    for size in (128, 256):
        img = random_crop(photo, size, np.random.default_rng(0))
        masks = np.zeros((8, size, size), bool)
        for k in range(8):
            r, col = divmod(k, 4)
            masks[k, r * size // 2:(r + 1) * size // 2, col * size // 4:(col + 1) * size // 4] = True
        embedder.embed(img, masks)
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            embedder.embed(img, masks)
            ts.append(time.perf_counter() - t0)
        out[f"ms_{size}px_8regions"] = round(1000 * float(np.median(ts)), 2)
        out[f"min_ms_{size}px_8regions"] = round(1000 * float(np.min(ts)), 2)
    return out


def to_markdown(result: dict[str, Any]) -> str:
    """Human-readable tables of a probe result."""
    lines = [
        f"# Embedding probe: `{result['embedder']}` ({result['dim']} features)",
        "",
        f"Linear probe (one-vs-rest logistic regression, standardised features, balanced class weights, "
        f"C={result['C']}) trained on regions of {result['crops']} scenes on random {result['size']} px "
        f"crops of the built-in `{result['train_split']}` photos, tested on {result['test_crops']} scenes "
        f"from the `{result['test_split']}` photos. Regions = ground-truth (oracle) masks; label = families "
        f"present. Seed {result['seed']}.",
        "",
        *([f"Made by `{result['command']}`.", ""] if result.get("command") else []),
        "Embedding time, one thread, 8 regions: "
        + "; ".join(f"{px} px: median {result['timing'][f'ms_{px}px_8regions']} ms "
                    f"(min {result['timing'][f'min_ms_{px}px_8regions']} ms)" for px in (128, 256)),
        "",
    ]
    for recipe, res in result["recipes"].items():
        lines += [
            f"## {recipe}: macro-F1 {res['macro_f1']:.3f}",
            "",
            f"{res['train_regions']} train regions, {res['test_regions']} test regions "
            f"({res['clean_test_regions']} of them clean); exact-match rate of the six-family label set "
            f"{res['exact_match']:.3f}.",
            "",
            "| family | precision | recall | F1 | test positives | recall by kind | recall by severity | "
            "top features |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for fam, row in res["families"].items():
            if "f1" not in row:
                lines.append(f"| {fam} | - | - | - | {row['test_pos']} | {row.get('note', '')} | | |")
                continue
            kinds = ", ".join(f"{k} {v:.2f}" for k, v in row["recall_by_kind"].items())
            sev = ", ".join(f"{k} {v:.2f}" for k, v in row["recall_by_severity"].items())
            top = ", ".join(f"{t['name']} ({t['weight']:+.2f})" for t in row["top_features"][:3])
            lines.append(
                f"| {fam} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} "
                f"| {row['test_pos']} | {kinds} | {sev} | {top} |"
            )
        lines += ["", "Confusion notes (false positives: how many, and the true families they carry):", ""]
        for fam, row in res["families"].items():
            if "f1" in row:
                carried = ", ".join(f"{k} {v}" for k, v in row["false_positive_true_families"].items()) or "-"
                clean = (f" ({row['false_positives_clean_regions']} on clean regions)"
                         if res["clean_test_regions"] else "")
                lines.append(f"- {fam}: {row['false_positives']} false positives{clean}; true: {carried}")
        lines.append("")
    return "\n".join(lines)


def print_table(recipe: str, res: dict[str, Any]) -> None:
    print(f"\n{recipe}: macro-F1 {res['macro_f1']:.3f}  ({res['train_regions']} train / "
          f"{res['test_regions']} test regions, exact match {res['exact_match']:.3f})")
    print(f"{'family':8s} {'prec':>6s} {'rec':>6s} {'F1':>6s} {'trainF1':>7s} {'pos':>5s}  top features")
    for fam, row in res["families"].items():
        if "f1" not in row:
            print(f"{fam:8s} {row.get('note', '')}")
            continue
        top = ", ".join(f"{t['name']}{t['weight']:+.2f}" for t in row["top_features"][:3])
        print(f"{fam:8s} {row['precision']:6.3f} {row['recall']:6.3f} {row['f1']:6.3f} "
              f"{row['train_f1']:7.3f} {row['test_pos']:5d}  {top}")


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.probe_embeddings`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="spatial-mixed", help="recipe name(s), comma-separated")
    ap.add_argument("--embedder", "--embedding", dest="embedder", default="handcrafted",
                    help="embedder name (ir_env.embeddings)")
    ap.add_argument("--corpus", default="builtin", help="corpus name or folder")
    ap.add_argument("--train-split", default="train")
    ap.add_argument("--test-split", default="test")
    ap.add_argument("--crops", type=int, default=400, help="training scenes (random crops) per recipe")
    ap.add_argument("--test-crops", type=int, default=None, help="test scenes per recipe (default: --crops)")
    ap.add_argument("--size", type=int, default=128, help="crop side in px")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--C", type=float, default=1.0, help="inverse L2 regularisation of the probe")
    ap.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    ap.add_argument("--markdown", type=Path, default=None, help="write markdown tables here")
    ap.add_argument("--save", nargs="?", const="default", default=None, metavar="PATH",
                    help="also write the probe fitted on the first recipe's training regions (default "
                         "path: ir_env/data/family_probe_<embedding>.json)")
    args = ap.parse_args(argv)

    recipes = [r.strip() for r in args.recipe.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in list_recipes()]
    if unknown:
        print(f"error: unknown recipe(s) {unknown}; known: {', '.join(list_recipes())}", file=sys.stderr)
        return 2
    if args.crops < 1 or (args.test_crops is not None and args.test_crops < 1):
        print("error: --crops and --test-crops must be >= 1", file=sys.stderr)
        return 2
    if args.size < 32 or not args.C > 0:
        print(f"error: --size must be >= 32 px and --C > 0, got {args.size} and {args.C}", file=sys.stderr)
        return 2
    from experiments.configio import check_output, script_command
    from ir_env.corpus import load_corpus

    try:  # every option and output is checked before the (minutes-long) probe, not after it
        for path, flag in ((args.json, "--json"), (args.markdown, "--markdown"),
                           (None if args.save in (None, "default") else args.save, "--save")):
            check_output(None if path is None else str(path), flag)
        for split in (args.train_split, args.test_split):
            if not load_corpus(args.corpus, split=split):
                raise ValueError(f"corpus {args.corpus!r} has no images in split {split!r}")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    test_crops = args.test_crops or args.crops
    embedder = make_embedder(args.embedder)
    result: dict[str, Any] = {
        "command": script_command("experiments.probe_embeddings", argv),
        "embedder": embedder.name,
        "dim": embedder.dim,
        "feature_names": embedder.feature_names,
        "corpus": args.corpus,
        "train_split": args.train_split,
        "test_split": args.test_split,
        "crops": args.crops,
        "test_crops": test_crops,
        "size": args.size,
        "seed": args.seed,
        "C": args.C,
        "timing": time_embedder(embedder),
        "recipes": {},
    }
    print("embedding time (one thread):", result["timing"])
    for recipe in recipes:
        t0 = time.perf_counter()
        common = {"embedder": embedder, "corpus": args.corpus, "recipe": recipe, "size": args.size,
                  "seed": args.seed}
        train = build_regions(split=args.train_split, crops=args.crops, **common)
        test = build_regions(split=args.test_split, crops=test_crops, **common)
        res = probe(embedder, train, test, c=args.C)
        res["seconds"] = round(time.perf_counter() - t0, 1)
        result["recipes"][recipe] = res
        print_table(recipe, res)
        if args.save and recipe == recipes[0]:
            meta = {"recipe": recipe, "train_split": args.train_split, "crops": args.crops, "size": args.size,
                    "seed": args.seed, "C": args.C, "test_macro_f1": res["macro_f1"]}
            saved = export_probe(embedder, train, args.C, meta)
            path = probe_path(embedder.name) if args.save == "default" else Path(args.save)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(saved) + "\n")
            print(f"probe saved to {path}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(to_markdown(result))
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
