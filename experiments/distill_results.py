"""The distillation / memory comparison table on spatial-mixed test images (built-in test split).

Runs :func:`policies.evaluation.evaluate` (same scenes for every planner: each test photo centre-cropped to
``size`` px, ``scenes_per_image`` scenes per photo, scene seed ``seed * 100003 + index``) for the planner
specs of the config, adds the time the region proposer alone takes on those images (a floor every
spatial planner pays), the student's decision agreement with its teacher (from the training summary) and,
when ``baselines`` names an evaluate JSON made with the same images, size, seed and recipe, copies the
planners it lists from there instead of running them again. Writes ``<out>.json`` (the evaluate JSON plus
``proposer_seconds``, ``agreement`` and ``reused``) and ``<out>.md``.

Usage: ``python -m experiments.distill_results --config experiments/configs/distill_results.yaml``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from experiments.configio import check_keys, config_int, config_judge, config_names, read_config  # noqa: E402


def proposer_seconds(items: list[tuple[str, np.ndarray]], recipe: str, seed: int, size: int, proposer: str,
                     max_regions: int) -> float:
    """Mean seconds of the region proposer alone on the evaluation scenes."""
    from ir_env.regions import make_proposer
    from policies.evaluation import evaluation_scene

    prop = make_proposer(proposer, max_regions=max_regions, seed=seed)
    times = []
    for i, (_, photo) in enumerate(items):
        _, scene = evaluation_scene(photo, i, recipe, seed, size)
        t0 = time.perf_counter()
        prop.propose(scene.degraded)
        times.append(time.perf_counter() - t0)
    return float(np.mean(times))


def share(value: float, of: float, fmt: str) -> str:
    """``value / of`` formatted with ``fmt``, or ``n/a`` when ``of`` is 0 (a teacher that gained nothing)."""
    return "n/a" if abs(of) < 1e-9 else format(value / of, fmt)


def table(res: dict[str, Any]) -> str:
    """Markdown: the evaluate table plus seconds relative to the teacher and the agreement lines."""
    from policies.evaluation import markdown_table

    lines = [markdown_table(res)]
    if res.get("command"):
        lines += ["", f"Made by `{res['command']}`."]
    teacher = res.get("teacher")
    if teacher in res["planners"]:
        t = res["planners"][teacher]
        lines += ["", f"Relative to the teacher `{teacher}` (gain {t['psnr_gain']:+.2f} dB, {t['seconds']:.3f} s):",
                  "", "| planner | share of teacher's PSNR gain | share of teacher's seconds | IQA calls |",
                  "|---|---|---|---|"]
        for spec, s in res["planners"].items():
            lines.append(f"| {spec} | {share(s['psnr_gain'], t['psnr_gain'], '.0%')} | "
                         f"{share(s['seconds'], t['seconds'], '.1%')} | {s['iqa_calls']:.0f} |")
        if abs(t["psnr_gain"]) < 1e-9:
            lines += ["", "The teacher gained nothing here (it kept no step): shares of its gain are undefined (n/a)."]
    lines += ["", f"Region proposer alone: {res['proposer_seconds']:.3f} s per image (paid by every spatial planner)."]
    if res.get("reused"):
        lines.append(f"Rows copied from `{res['baselines']}` (same images, size, seed): {', '.join(res['reused'])}.")
    agree = res.get("agreement")
    if agree:
        lines += ["", "Decision agreement of the distilled student with its teacher (region, tool; STOP counts as its "
                  f"own choice), on {agree['episodes']} test-split env episodes ({agree['size']} px):", "",
                  "| states | (region, tool) | region | tool | STOP vs act | regret (dB/step) | within 0.2 dB |",
                  "|---|---|---|---|---|---|---|"]
        for name, a in (("teacher's states", agree["agreement_on_teacher_states"]),
                        ("student's own states", agree["agreement_on_student_states"])):
            lines.append(f"| {name} | {a['joint']:.2f} | {a['region']:.2f} | {a['tool']:.2f} | {a['stop']:.2f} | "
                         f"{a['regret']:.2f} | {a['near']:.2f} |")
    return "\n".join(lines) + "\n"


#: Keys of a distill_results config; out, planners, size and scenes_per_image are required.
CONFIG_KEYS = ("images", "scenes_per_image", "size", "seed", "recipe", "no_reference_judge", "planners", "teacher",
               "baselines", "reuse", "region_proposer", "student_summary", "student_size", "out")


def load_config(path: str | Path) -> dict[str, Any]:
    """The config at ``path`` with defaults filled in (images builtin, recipe spatial-mixed, seed 0, judge brisque,
    region_proposer degradation-clusters); ``ValueError`` naming the file for an unknown or missing key, a number
    that is not a whole number, an empty planner list, an unknown recipe, or an ``out`` that cannot be written."""
    from ir_env.paths import check_writable
    from ir_env.recipes import get_recipe

    cfg = read_config(path)
    where = str(path)
    check_keys(cfg, CONFIG_KEYS, where, required=("out", "planners", "size", "scenes_per_image"))
    cfg.setdefault("images", "builtin")
    cfg.setdefault("recipe", "spatial-mixed")
    config_judge(cfg, where)
    cfg.setdefault("region_proposer", "degradation-clusters")
    config_int(cfg, "size", where, minimum=1)
    config_int(cfg, "scenes_per_image", where, minimum=1)
    cfg["seed"] = config_int(cfg, "seed", where, default=0)
    config_names(cfg, "planners", where, "planner specs")
    if not isinstance(cfg.get("reuse", []), list):
        raise ValueError(f"{where}: reuse must be a list of planner specs, got {cfg['reuse']!r}")
    get_recipe(cfg["recipe"])
    from ir_env.regions import list_proposers

    if cfg["region_proposer"] not in list_proposers():  # it is timed after every planner has run
        raise ValueError(f"{where}: unknown region_proposer {cfg['region_proposer']!r}; known: "
                         f"{', '.join(list_proposers())}")
    teacher = cfg.get("teacher")
    if teacher is not None and teacher not in cfg["planners"] and teacher not in cfg.get("reuse", []):
        raise ValueError(f"{where}: teacher {teacher!r} is not one of the planners (without it the table's shares "
                         "of the teacher's gain and seconds are left out)")
    summary = cfg.get("student_summary")
    if summary is not None and not Path(str(summary)).is_file():
        raise ValueError(f"{where}: student_summary {summary} not found (the agreement section needs the student "
                         "run's summary.json)")
    check_writable(Path(str(cfg["out"])).with_suffix(".json"), "out")
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.distill_results`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    from experiments.run_baselines import merge_previous, scene_items
    from policies.evaluation import evaluate, plot_quality_vs_cost

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="distillation results YAML "
                    "(experiments/configs/distill_results*.yaml)")
    ap.add_argument("--planners", default="", help="comma-separated subset of the config's planners to run; the "
                    "others are kept from an existing <out>.json made with the same images, size and seed")
    ap.add_argument("--replot", action="store_true", help="only re-draw <out>.png and re-write <out>.md from the "
                    "committed <out>.json (no evaluation)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    if args.replot:
        src = Path(cfg["out"]).with_suffix(".json")
        if not src.is_file():
            raise ValueError(f"--replot: no {src} to re-draw from")
        res = json.loads(src.read_text())
        print(f"wrote {plot_quality_vs_cost(res, Path(cfg['out']).with_suffix('.png'))}")
        Path(cfg["out"]).with_suffix(".md").write_text(table(res))
        print(f"wrote {Path(cfg['out']).with_suffix('.md')}")
        return 0
    items = scene_items(cfg["images"], cfg["scenes_per_image"])
    recipe, seed, size = cfg["recipe"], cfg["seed"], cfg["size"]
    reused: dict[str, Any] = {}
    old_rows: list[dict[str, Any]] = []
    if cfg.get("baselines"):
        old = json.loads(Path(cfg["baselines"]).read_text())
        if (old["recipe"], old["seed"], old["size"], old["images"]) != (recipe, seed, size, len(items)):
            raise ValueError(f"{cfg['baselines']} was made with other images/size/seed/recipe")
        reused = {p: old["planners"][p] for p in cfg.get("reuse", []) if p in old["planners"]}
        old_rows = [r for r in old["rows"] if r["planner"] in reused]
    subset = [p for p in args.planners.split(",") if p]
    stray = [p for p in subset if p not in cfg["planners"]]
    if stray:  # its row would be merged into the committed table, which says it was made by the config alone
        raise ValueError(f"--planners: {', '.join(stray)} not in {args.config}'s planners; add them to the config "
                         "first")
    run = [p for p in (subset or cfg["planners"]) if p not in reused]
    res = evaluate(items, recipe, run, seed=seed, size=size, judge=cfg["no_reference_judge"])
    res["planners"] = {**reused, **res["planners"]}
    res["rows"] += old_rows
    out = Path(cfg["out"])
    if subset:
        res = merge_previous(out.with_suffix(".json"), res, cfg["planners"])
    res["reused"], res["baselines"] = list(reused), cfg.get("baselines")
    res["teacher"] = cfg.get("teacher")
    res["proposer_seconds"] = proposer_seconds(items, recipe, seed, size, cfg["region_proposer"], 4)
    if cfg.get("student_summary") and Path(cfg["student_summary"]).is_file():
        s = json.loads(Path(cfg["student_summary"]).read_text())["test"]
        res["agreement"] = {"episodes": s["episodes"], "size": cfg.get("student_size", 64),
                            **{k: s[k] for k in ("agreement_on_teacher_states", "agreement_on_student_states")}}
    res["config"] = cfg
    res["command"] = f"python -m experiments.distill_results --config {args.config}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=float))
    out.with_suffix(".md").write_text(table(res))
    plot_quality_vs_cost(res, out.with_suffix(".png"))
    print(table(res))
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
