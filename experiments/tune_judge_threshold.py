"""Pick a no-reference judge's acceptance threshold on TRAIN-split scenes (never on the test photos).

A search planner keeps a step only when its judge's gain exceeds ``threshold``. A learned judge such as
``npsnr`` is wrong on some candidate pairs, and a search over hundreds of candidates finds those errors,
so the threshold trades kept-good steps against kept-bad ones. This script runs each planner with each
threshold on scenes synthesized from the built-in TRAIN photos (seed ``--seed``), reports the mean PSNR
gain (measured with the clean image the judge never sees), and names the best threshold per planner.

    python -m experiments.tune_judge_threshold --judge npsnr --thresholds 0.25,0.5,1.0,1.5 \\
        --planners greedy,dfs --json experiments/results/npsnr/threshold.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from ir_env.corpus import load_named_corpus  # noqa: E402
from policies.evaluation import evaluate  # noqa: E402


def tune(judge: str, thresholds: list[float], planners: list[str], recipe: str = "spatial-mixed", size: int = 128,
         seed: int = 7, progress: bool = True) -> dict[str, Any]:
    """Mean PSNR gain of ``planner:judge=J:threshold=T`` on one scene per TRAIN photo; best T per planner."""
    items = load_named_corpus("builtin", split="train")
    specs = [f"{p}:judge={judge}:threshold={t:g}" for p in planners for t in thresholds]
    res = evaluate(items, recipe, specs, seed=seed, size=size, progress=progress)
    table = {p: {f"{t:g}": {k: res["planners"][f"{p}:judge={judge}:threshold={t:g}"][k]
                            for k in ("psnr_gain", "psnr_gain_std", "tool_calls", "iqa_calls", "seconds")}
                 for t in thresholds} for p in planners}
    best = {p: max(table[p], key=lambda t, p=p: table[p][t]["psnr_gain"]) for p in planners}
    return {"judge": judge, "recipe": recipe, "size": size, "seed": seed, "split": "train",
            "scenes": len(items), "table": table, "best": best}


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.tune_judge_threshold`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--judge", default="npsnr", help="the no-reference judge of every planner (default: %(default)s)")
    ap.add_argument("--thresholds", default="0.25,0.5,1.0,1.5",
                    help="comma-separated acceptance thresholds to try, dB of the judge's gain (default: %(default)s)")
    ap.add_argument("--planners", default="greedy,dfs",
                    help="comma-separated search planners to tune (default: %(default)s)")
    ap.add_argument("--recipe", default="spatial-mixed", help="scene recipe (default: %(default)s)")
    ap.add_argument("--size", type=int, default=128, help="centre-crop side in px (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=7, help="scene seed (default: %(default)s)")
    ap.add_argument("--json", help="write the result here (default: not written)")
    a = ap.parse_args(argv)
    from experiments.configio import check_output, script_command

    try:
        ts = [float(t) for t in a.thresholds.split(",") if t.strip()]
    except ValueError:
        ts = None
    if not ts or not all(math.isfinite(t) for t in ts):
        print(f"error: --thresholds must be comma-separated numbers, got {a.thresholds!r}", file=sys.stderr)
        return 2
    planners = [p.strip() for p in a.planners.split(",") if p.strip()]
    if not planners:
        print(f"error: --planners must name at least one planner (comma-separated), got {a.planners!r}",
              file=sys.stderr)
        return 2
    check_output(a.json, "--json")  # before the runs: the result is not lost at the end
    res = tune(a.judge, ts, planners, a.recipe, a.size, a.seed)
    res["command"] = script_command("experiments.tune_judge_threshold", argv)
    for p, row in res["table"].items():
        cells = ", ".join(f"T={t}: {v['psnr_gain']:+.2f} dB ({v['tool_calls']:.0f} calls)" for t, v in row.items())
        print(f"{p}: {cells}; best T={res['best'][p]}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
