"""Table of distilled-student recipes over training seeds, from the ``summary.json`` each
``experiments/train_distill.py`` run writes (nothing is re-run here).

For every recipe of the config (a label and its run folders, one per seed) it reports, per seed and as
mean ± sample standard deviation over seeds: the validation gain of the selected candidate (held-out train
photos: what selection saw), the test gain on ``train_distill``'s fixed test episodes, the teacher's gain on
the same episodes and the ratio, the (region, tool) agreement on the teacher's test states and the student's
seconds as a share of the teacher's. Writes ``<out>.json`` and ``<out>.md``.

Usage: ``python -m experiments.summarise_students --config experiments/configs/student_inputs.yaml``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from experiments.configio import read_config


def seed_row(run_dir: str | Path) -> dict[str, Any]:
    """The numbers of one training run, read from its ``summary.json``."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"no summary.json in {run_dir}: run experiments/train_distill.py first")
    s = json.loads(path.read_text())
    test = s["test"]
    return {"run": str(run_dir), "seed": int(s["config"]["train"]["seed"]), "selected": s["selected"],
            "states": int(s["dataset"]["states"]), "val_gain": float(s["candidates"][s["selected"]]["val_psnr_gain"]),
            "test_gain": float(test["student"]["psnr_gain"]), "teacher_gain": float(test["teacher"]["psnr_gain"]),
            "gain_ratio": float(test["gain_ratio"]),
            "agreement_joint": float(test["agreement_on_teacher_states"]["joint"]),
            "seconds_ratio": float(test["student"]["seconds"]) / float(test["teacher"]["seconds"])}


def summarise(recipes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per recipe: its rows and mean / std (ddof 1; 0 for one seed) of every numeric column."""
    out = []
    for rec in recipes:
        rows = [seed_row(r) for r in rec["runs"]]
        stats = {}
        for key in ("val_gain", "test_gain", "gain_ratio", "agreement_joint", "seconds_ratio"):
            v = np.array([r[key] for r in rows], float)
            stats[key] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
        out.append({"label": rec["label"], "note": rec.get("note", ""), "rows": rows, "stats": stats})
    return out


def markdown(result: list[dict[str, Any]], title: str) -> str:
    """The Markdown report: one summary line per recipe, then every seed."""
    def ms(st: dict[str, float], fmt: str = "{:+.2f}", sd: str = "{:.2f}") -> str:
        return f"{fmt.format(st['mean'])} ± {sd.format(st['std'])}"

    lines = [f"# {title}", "",
             "Mean ± std over training seeds. Validation: episodes on held-out TRAIN photos (what picked each "
             "run's candidate and stop margin). Test: `train_distill`'s 64 fixed test-split episodes "
             "(64 px, seed 12345), teacher greedy:oracle on the same episodes.", "",
             "| recipe | seeds | validation gain (dB) | test gain (dB) | share of teacher's gain | (region, tool) "
             "agreement | share of teacher's seconds |", "|---|---|---|---|---|---|---|"]
    for rec in result:
        st = rec["stats"]
        lines.append(f"| {rec['label']} | {len(rec['rows'])} | {ms(st['val_gain'])} | {ms(st['test_gain'])} | "
                     f"{ms(st['gain_ratio'], '{:.0%}', '{:.0%}')} | {ms(st['agreement_joint'], '{:.2f}')} | "
                     f"{ms(st['seconds_ratio'], '{:.1%}', '{:.1%}')} |")
    lines += ["", "Per seed:", "", "| recipe | seed | selected | recorded states | validation | test | teacher |",
              "|---|---|---|---|---|---|---|"]
    for rec in result:
        for r in rec["rows"]:
            lines.append(f"| {rec['label']} | {r['seed']} | {r['selected']} | {r['states']} | {r['val_gain']:+.2f} | "
                         f"{r['test_gain']:+.2f} | {r['teacher_gain']:+.2f} |")
    notes = [f"- {rec['label']}: {rec['note']}" for rec in result if rec["note"]]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.summarise_students`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="YAML with title, out and recipes: [{label, runs, note}]")
    args = ap.parse_args(argv)
    try:
        path = Path(args.config)
        cfg = read_config(path, empty_ok=True)
        if not cfg.get("recipes") or not cfg.get("out"):
            raise ValueError(f"{path} needs 'recipes' (a list of {{label, runs}}) and 'out'")
        for i, rec in enumerate(cfg["recipes"]):
            if not isinstance(rec, dict) or not rec.get("label") or not isinstance(rec.get("runs"), list) \
                    or not rec["runs"]:
                raise ValueError(f"{path}: recipe {i} needs a 'label' and a non-empty list 'runs', got {rec!r}")
        result = summarise(cfg["recipes"])
        out = Path(cfg["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps({"config": cfg, "recipes": result}, indent=1))
        text = markdown(result, str(cfg.get("title", "Distilled students")))
        out.with_suffix(".md").write_text(text)
        print(text)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
