"""How well do the region proposers recover the ground-truth degradation regions?

Scenes are synthesized (``--recipe``, default ``spatial-mixed``) on ``--crops`` random ``--size`` px
crops of each photo of the built-in corpus split ``--split`` (default ``test``: the photos the
degradation-clusters metric was *not* fitted on). Every proposer sees only the degraded image
(``oracle`` reads the scene's masks and is the upper bound).

mIoU of one scene = mean over its ground-truth regions g of max_k IoU(g, proposed mask k) (each true
region scored by its best-matching proposal; proposals may be reused, so over-segmentation is penalised
through lower IoUs, under-segmentation through merged regions). The table gives the mean over scenes,
with the standard error, the mean number of proposed regions and the mean wall time per ``propose``
call (one thread). ``sam`` runs only with ``--sam-checkpoint`` (its weights cannot be downloaded here):
named in ``--proposers`` without one it is an error; in the default list it is skipped.

    python -m experiments.eval_regions --recipe spatial-mixed --split test --crops 25 --size 128 \\
        --json experiments/results/regions_miou.json --markdown experiments/results/regions_miou.md
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # single-core timings; set before numpy loads BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from ir_env.corpus import load_named_corpus, random_crop  # noqa: E402
from ir_env.recipes import list_recipes, synthesize  # noqa: E402
from ir_env.regions import check_partition, make_proposer  # noqa: E402

#: Rows of the table: label -> (proposer name, extra kwargs). The ``/4`` rows cap the colour baselines
#: at 4 regions, close to the 2-4 true regions of spatial-mixed, for a comparison at a similar count.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "whole": ("whole", {}),
    "grid": ("grid", {}),
    "grid/4": ("grid", {"max_regions": 4}),
    "slic": ("slic", {}),
    "slic/4": ("slic", {"max_regions": 4}),
    "felzenszwalb": ("felzenszwalb", {}),
    "felzenszwalb/4": ("felzenszwalb", {"max_regions": 4}),
    "degradation-clusters": ("degradation-clusters", {}),
    "degradation-clusters/kmeans": ("degradation-clusters", {"method": "kmeans"}),
    "sam": ("sam", {}),
    "oracle": ("oracle", {}),
}


NOTES = [
    "`/4` rows: the same proposer capped at 4 regions (spatial-mixed has 2-4 true regions), so the colour "
    "baselines are also compared at a region count close to the degradation-aware one.",
    "degradation-clusters: SLIC superpixels merged by Ward cost on local degradation statistics + Lab colour "
    "in a Fisher-discriminant metric fitted on scenes from the built-in *train* photos only "
    "(ir_env/regions/metric.json); `/kmeans` starts from k-means cells instead of superpixels.",
    "Proposers see only the degraded image; `oracle` reads the scene's ground-truth masks.",
]


def scene_miou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over ground-truth masks ``gt`` (K, H, W) of the best IoU with any mask of ``pred`` (P, H, W)."""
    p = pred.reshape(pred.shape[0], -1).astype(np.float64)
    g = gt.reshape(gt.shape[0], -1).astype(np.float64)
    inter = g @ p.T
    union = g.sum(1)[:, None] + p.sum(1)[None, :] - inter
    return float(np.mean(np.max(inter / np.maximum(union, 1.0), axis=1)))


def build_scenes(recipe: str, split: str, images: int | None, crops: int, size: int, seed: int,
                 corpus: str = "builtin") -> list[dict]:
    """``crops`` scenes per photo of ``corpus`` (``builtin`` or a folder): crop position from
    ``default_rng([seed, photo index])``, scene seed ``seed * 100000 + photo index * 1000 + crop index``."""
    named = load_named_corpus(corpus, split)[:images]
    out = []
    for i, (name, photo) in enumerate(named):
        rng = np.random.default_rng([seed, i])
        for j in range(crops):
            scene_seed = seed * 100_000 + i * 1000 + j
            out.append({"image": name, "crop": j, "scene_seed": scene_seed,
                        "scene": synthesize(random_crop(photo, size, rng), recipe, seed=scene_seed)})
    return out


def evaluate(scenes: list[dict], labels: list[str], max_regions: int, seed: int,
             sam_kwargs: dict[str, Any]) -> tuple[dict[str, dict], list[dict]]:
    """Per-proposer summaries and per-scene rows."""
    summary: dict[str, dict] = {}
    rows: list[dict] = []
    for label in labels:
        name, kwargs = VARIANTS[label]
        kw = dict(kwargs, **(sam_kwargs if name == "sam" else {}))
        kw["max_regions"] = min(max_regions, int(kw.get("max_regions", max_regions)))
        proposer = make_proposer(name, seed=seed, **kw)
        proposer.propose(scenes[0]["scene"].degraded, scene=scenes[0]["scene"])  # warm-up (imports, caches)
        mious, ks, secs = [], [], []
        for item in scenes:
            sc = item["scene"]
            t0 = time.perf_counter()
            masks = proposer.propose(sc.degraded, scene=sc)
            dt = time.perf_counter() - t0
            check_partition(masks, sc.degraded.shape[:2], max_regions)
            m = scene_miou(masks, sc.masks)
            mious.append(m)
            ks.append(masks.shape[0])
            secs.append(dt)
            rows.append({"image": item["image"], "crop": item["crop"], "scene_seed": item["scene_seed"],
                         "gt_regions": int(sc.masks.shape[0]), "proposer": label, "miou": round(m, 4),
                         "regions": int(masks.shape[0]), "seconds": round(dt, 5)})
        summary[label] = {"miou": round(float(np.mean(mious)), 4),
                          "miou_se": round(float(np.std(mious, ddof=1) / np.sqrt(len(mious))), 4)
                          if len(mious) > 1 else 0.0,
                          "regions": round(float(np.mean(ks)), 3),
                          "seconds": round(float(np.mean(secs)), 5)}
        print(f"  {label:28s} mIoU {summary[label]['miou']:.3f}  regions {summary[label]['regions']:.2f}  "
              f"{1000 * summary[label]['seconds']:.1f} ms", file=sys.stderr, flush=True)
    return summary, rows


def markdown(result: dict[str, Any]) -> str:
    """The result as a markdown page (table plus definitions)."""
    lines = [
        f"# Region proposers vs ground-truth masks ({result['recipe']})",
        "",
        f"{result['scenes']} scenes: {result['crops_per_image']} random {result['size']} px crops of each "
        f"of the {result['images']} built-in `{result['split']}` photos, recipe `{result['recipe']}`, "
        f"seed {result['seed']}, max_regions {result['max_regions']}; mean ground-truth regions per scene "
        f"{result['gt_regions_mean']:.2f}.",
        "",
        "| proposer | mIoU | ± s.e. | regions | ms / call |",
        "|---|---|---|---|---|",
    ]
    for label, s in result["proposers"].items():
        lines.append(f"| {label} | {s['miou']:.3f} | {s['miou_se']:.3f} | {s['regions']:.2f} | "
                     f"{1000 * s['seconds']:.1f} |")
    lines += ["", f"mIoU: {result['definition']}", ""] + [f"- {n}" for n in result["notes"]] + ["",
              "Timing: mean wall time of one `propose` call, one thread, on the machine that ran the script.",
              ""]
    for label, why in result["skipped"].items():
        lines.append(f"- `{label}` skipped: {why}")
    lines.append("")
    lines.append("Reproduce: `" + result["command"] + "`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.eval_regions`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="spatial-mixed", help="scene recipe (default: %(default)s)")
    ap.add_argument("--split", default="test", choices=["train", "test", "all"],
                    help="built-in corpus split (default: %(default)s)")
    ap.add_argument("--images", type=int, default=None,
                    help="use only the first N photos of the split, N >= 1 (default: every photo)")
    ap.add_argument("--crops", type=int, default=25, help="random crops (scenes) per photo (default: %(default)s)")
    ap.add_argument("--size", type=int, default=128, help="crop side in px, >= 8 (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="crop and scene seed, >= 0 (default: %(default)s)")
    ap.add_argument("--max-regions", type=int, default=8,
                    help="most regions a proposer may return (default: %(default)s)")
    ap.add_argument("--proposers", default=None,
                    help=f"comma-separated rows among {', '.join(VARIANTS)} (default: all of them; sam only with "
                         "--sam-checkpoint)")
    ap.add_argument("--sam-checkpoint", default=None,
                    help="local SAM checkpoint (.pth) (default: none: sam is skipped, and naming it in --proposers "
                         "is an error)")
    ap.add_argument("--sam-model-type", default="vit_b", choices=["vit_b", "vit_l", "vit_h"],
                    help="SAM backbone of the checkpoint (default: %(default)s)")
    ap.add_argument("--sam-device", default="cpu", help="torch device SAM runs on (default: %(default)s)")
    ap.add_argument("--json", type=Path, default=None, help="write the results JSON here (default: not written)")
    ap.add_argument("--markdown", type=Path, default=None, help="write a markdown table here (default: not written)")
    args = ap.parse_args(argv)

    from experiments.configio import check_output, script_command

    labels = [s.strip() for s in (args.proposers or ",".join(VARIANTS)).split(",") if s.strip()]
    unknown = [s for s in labels if s not in VARIANTS]
    if unknown:
        raise ValueError(f"--proposers: unknown proposers {unknown}; choose among {', '.join(VARIANTS)}")
    if not labels:
        raise ValueError(f"--proposers names no proposer; choose among {', '.join(VARIANTS)}")
    if args.recipe not in list_recipes():
        raise ValueError(f"--recipe: unknown recipe {args.recipe!r}; choose among {', '.join(list_recipes())}")
    if args.crops < 1 or args.size < 8 or args.max_regions < 1 or args.seed < 0:
        raise ValueError(f"need --crops >= 1, --size >= 8, --max-regions >= 1 and --seed >= 0, got --crops "
                         f"{args.crops}, --size {args.size}, --max-regions {args.max_regions}, --seed {args.seed}")
    if args.images is not None and args.images < 1:
        raise ValueError(f"--images must be >= 1 (the first N photos of the split; leave it out for all), "
                         f"got {args.images}")
    skipped: dict[str, str] = {}
    if "sam" in labels and args.sam_checkpoint is None:
        if args.proposers is not None:
            raise ValueError("--proposers names sam, which needs --sam-checkpoint: a local Segment Anything "
                             "checkpoint (sam_vit_b/l/h .pth; the weights cannot be downloaded here)")
        labels.remove("sam")
        skipped["sam"] = ("no --sam-checkpoint given; Segment Anything weights cannot be downloaded here "
                          "(pass a local sam_vit_b/l/h checkpoint to include it)")
    if "sam" in labels and not Path(args.sam_checkpoint).is_file():
        raise FileNotFoundError(f"--sam-checkpoint {args.sam_checkpoint} not found (a local Segment Anything "
                                "checkpoint .pth)")
    check_output(args.json, "--json")
    check_output(args.markdown, "--markdown")
    sam_kwargs = {"checkpoint": args.sam_checkpoint, "model_type": args.sam_model_type,
                  "device": args.sam_device}

    t0 = time.perf_counter()
    scenes = build_scenes(args.recipe, args.split, args.images, args.crops, args.size, args.seed)
    print(f"{len(scenes)} scenes built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    summary, rows = evaluate(scenes, labels, args.max_regions, args.seed, sam_kwargs)
    result: dict[str, Any] = {
        "recipe": args.recipe, "split": args.split, "seed": args.seed, "size": args.size,
        "max_regions": args.max_regions, "images": len({s["image"] for s in scenes}),
        "crops_per_image": args.crops, "scenes": len(scenes),
        "gt_regions_mean": round(float(np.mean([s["scene"].masks.shape[0] for s in scenes])), 3),
        "definition": "per scene, the mean over ground-truth regions of the best IoU with any proposed mask; "
                      "averaged over scenes (miou_se: standard error over scenes)",
        "proposers": summary, "skipped": skipped, "notes": NOTES,
        "command": script_command("experiments.eval_regions", argv),
        "rows": rows,
    }
    width = max(len(k) for k in summary)
    print(f"{'proposer':{width}s}  mIoU   ±s.e.  regions  ms/call")
    for label, s in summary.items():
        print(f"{label:{width}s}  {s['miou']:.3f}  {s['miou_se']:.3f}  {s['regions']:6.2f}  "
              f"{1000 * s['seconds']:7.1f}")
    for label, why in skipped.items():
        print(f"{label}: skipped ({why})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(result))
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
