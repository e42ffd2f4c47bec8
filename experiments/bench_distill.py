"""Issue 7's speed target as a benchmark: seconds per image of the distilled student (and any other planner)
against its teacher, on the same scenes, repeated and interleaved so that machine drift hits every planner.

Scenes are those of ``experiments/distill_results.py`` (built-in test split, centre crops, scene seed
``seed * 100003 + index``). Every planner is built once and warmed up on the first scene (not timed); then
each repeat runs every scene through every planner (planner order rotated per repeat) and times
``restore()`` alone. Reported per planner: seconds per image (mean over scenes of the per-scene median over
repeats), the share of the teacher's seconds, and that share in each repeat on its own (its spread is the
run-to-run noise of the figure). The restored images must be identical in every repeat (checked).

Run: ``python -m experiments.bench_distill --json experiments/results/bench_distill.json``
(one thread per process: OMP, torch, OpenCV).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

DEFAULT_PLANNERS = ("distilled:gate=off", "distilled")


def run_bench(images: str = "builtin", scenes_per_image: int = 4, size: int = 64, recipe: str = "spatial-mixed",
              seed: int = 0, repeats: int = 5, teacher: str = "greedy:oracle:max_steps=4",
              planners: tuple[str, ...] | list[str] = DEFAULT_PLANNERS, judge: str = "brisque",
              progress: bool = True) -> dict[str, Any]:
    """Time ``teacher`` and ``planners`` (planner specs as in ``spatial-ir evaluate``) on the same scenes;
    ``repeats`` >= 1 passes. Returns the JSON-ready result (module docstring)."""
    from tqdm import tqdm

    from experiments.run_baselines import scene_items
    from policies.evaluation import evaluation_scene, image_metrics, parse_planner_spec

    if int(repeats) < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    specs = [teacher] + [p for p in planners if p != teacher]
    items = scene_items(images, int(scenes_per_image))
    scenes = [(name, *evaluation_scene(photo, i, recipe, seed, size)) for i, (name, photo) in enumerate(items)]
    built = {spec: parse_planner_spec(spec, default_judge=judge, seed=seed) for spec in specs}

    def restore(spec: str, k: int) -> tuple[float, np.ndarray]:
        planner, needs_ref = built[spec]
        _, clean, scene = scenes[k]
        t0 = time.perf_counter()
        res = planner.restore(scene.degraded, reference=clean if needs_ref else None)
        return time.perf_counter() - t0, res.image

    for spec in specs:  # warm-up: lazy imports, model loading, first-call allocations
        restore(spec, 0)
    secs = {s: np.zeros((int(repeats), len(scenes))) for s in specs}
    first: dict[tuple[str, int], np.ndarray] = {}
    bar = tqdm(total=int(repeats) * len(scenes) * len(specs), desc="bench_distill", unit="run",
               disable=not progress)
    for r in range(int(repeats)):
        order = specs[r % len(specs):] + specs[:r % len(specs)]
        for k in range(len(scenes)):
            for spec in order:
                dt, img = restore(spec, k)
                secs[spec][r, k] = dt
                if (spec, k) not in first:
                    first[(spec, k)] = img
                elif not np.array_equal(first[(spec, k)], img):
                    raise RuntimeError(f"{spec} restored scene {k} differently in repeat {r}: not deterministic")
                bar.update(1)
    bar.close()
    t_rep = secs[teacher].mean(axis=1)
    t_med = float(np.median(secs[teacher], axis=0).mean())
    psnr_in = [image_metrics(scene.degraded, clean)["psnr"] for _, clean, scene in scenes]
    rows = {}
    for spec in specs:
        gains = [image_metrics(first[(spec, k)], clean)["psnr"] - psnr_in[k] for k, (_, clean, _) in enumerate(scenes)]
        per_rep = secs[spec].mean(axis=1) / t_rep
        med = float(np.median(secs[spec], axis=0).mean())
        rows[spec] = {"seconds": med, "share_of_teacher": med / t_med,
                      "share_per_repeat": per_rep.tolist(), "psnr_gain": float(np.mean(gains))}
    import torch

    return {"images": images, "scenes": len(scenes), "size": size, "recipe": recipe, "seed": seed,
            "repeats": int(repeats), "teacher": teacher, "planners": rows,
            "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "processor": platform.processor() or platform.machine()}}


def table(res: dict[str, Any]) -> str:
    """Markdown table of a :func:`run_bench` result."""
    t = res["planners"][res["teacher"]]
    lines = [f"{res['scenes']} scenes, {res['size']} px, {res['recipe']}, {res['repeats']} repeats; teacher "
             f"`{res['teacher']}` {t['seconds']:.3f} s per image", "",
             "| planner | PSNR gain (dB) | seconds per image | share of teacher's seconds | per repeat (min-max) |",
             "|---|---|---|---|---|"]
    for spec, r in res["planners"].items():
        lo, hi = min(r["share_per_repeat"]), max(r["share_per_repeat"])
        lines.append(f"| {spec} | {r['psnr_gain']:+.2f} | {r['seconds']:.4f} | {r['share_of_teacher']:.1%} | "
                     f"{lo:.1%}-{hi:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.bench_distill`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    from ir_env.cli import seed_int

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="builtin", help="builtin or a folder of clean photos")
    ap.add_argument("--scenes-per-image", type=int, default=4)
    ap.add_argument("--size", type=int, default=64, help="centre-crop side in px (0: full photos)")
    ap.add_argument("--recipe", default="spatial-mixed")
    ap.add_argument("--seed", type=seed_int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--teacher", default="greedy:oracle:max_steps=4")
    ap.add_argument("--planners", default=",".join(DEFAULT_PLANNERS), help="comma-separated planner specs")
    ap.add_argument("--json", default=None, help="write the result here")
    args = ap.parse_args(argv)
    from policies.ppo.train import set_single_thread

    set_single_thread()
    try:
        from experiments.configio import check_output

        check_output(args.json, "--json")
        if args.scenes_per_image < 1:
            raise ValueError(f"--scenes-per-image must be >= 1, got {args.scenes_per_image}")
        res = run_bench(args.images, args.scenes_per_image, args.size, args.recipe, args.seed, args.repeats,
                        args.teacher, [p for p in args.planners.split(",") if p])
    except (OSError, ValueError) as e:  # bad planner spec, missing folder or model, bad numbers
        print(f"error: {e}", file=sys.stderr)
        return 2
    from experiments.configio import script_command

    res["command"] = script_command("experiments.bench_distill", argv)
    print(table(res))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
