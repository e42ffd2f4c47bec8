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

from experiments.configio import check_keys, check_output, read_config

#: The config's keys and a recipe's (``label`` and ``runs`` required).
CONFIG_KEYS = ("title", "out", "recipes")
RECIPE_KEYS = ("label", "runs", "note")
#: What :func:`seed_row` reads from a run's ``summary.json``, as dotted paths.
SUMMARY_KEYS = ("config.train.seed", "selected", "dataset.states", "test.student.psnr_gain", "test.student.seconds",
                "test.teacher.psnr_gain", "test.teacher.seconds", "test.gain_ratio",
                "test.agreement_on_teacher_states.joint")


def _at(doc: Any, dotted: str, path: Path) -> Any:
    """``doc``'s value at the dotted key path, or ``ValueError`` naming the summary file and the missing key."""
    value = doc
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"{path} lacks {dotted}: not a summary written by experiments/train_distill.py")
        value = value[part]
    return value


def seed_row(run_dir: str | Path) -> dict[str, Any]:
    """The numbers of one training run, read from its ``summary.json``; ``FileNotFoundError`` when there is none,
    ``ValueError`` naming the file and the key when it is not a ``train_distill`` summary."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"no summary.json in {run_dir}: run experiments/train_distill.py first")
    try:
        s = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    for key in SUMMARY_KEYS:
        _at(s, key, path)
    selected = s["selected"]
    cand = s.get("candidates")
    if not isinstance(selected, str) or not isinstance(cand, dict) or not isinstance(cand.get(selected), dict) \
            or "val_psnr_gain" not in cand[selected]:
        raise ValueError(f"{path} lacks candidates[{selected!r}].val_psnr_gain (the selected candidate's validation "
                         "gain): not a summary written by experiments/train_distill.py")
    val = cand[selected]["val_psnr_gain"]
    test = s["test"]
    try:
        return {"run": str(run_dir), "seed": int(s["config"]["train"]["seed"]), "selected": selected,
                "states": int(s["dataset"]["states"]), "val_gain": float(val),
                "test_gain": float(test["student"]["psnr_gain"]), "teacher_gain": float(test["teacher"]["psnr_gain"]),
                "gain_ratio": float(test["gain_ratio"]),
                "agreement_joint": float(test["agreement_on_teacher_states"]["joint"]),
                "seconds_ratio": float(test["student"]["seconds"]) / float(test["teacher"]["seconds"])}
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise ValueError(f"{path}: a number of the summary is malformed ({e})") from None


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
    ap.add_argument("--config", required=True,
                    help="YAML with title, out and recipes: [{label, runs, note}] (required; e.g. "
                         "experiments/configs/student_inputs.yaml)")
    args = ap.parse_args(argv)
    try:
        path = Path(args.config)
        cfg = read_config(path, empty_ok=True)
        check_keys(cfg, CONFIG_KEYS, str(path))
        if not cfg.get("recipes") or not cfg.get("out"):
            raise ValueError(f"{path} needs 'recipes' (a list of {{label, runs}}) and 'out'")
        if not isinstance(cfg["recipes"], list):
            raise ValueError(f"{path}: recipes must be a list of {{label, runs, note}} mappings (one '- label: ...' "
                             f"entry per recipe), got {cfg['recipes']!r}")
        if not isinstance(cfg["out"], str):
            raise ValueError(f"{path}: out must be a path (without suffix), got {cfg['out']!r}")
        for i, rec in enumerate(cfg["recipes"]):
            if not isinstance(rec, dict) or not rec.get("label") or not isinstance(rec.get("runs"), list) \
                    or not rec["runs"]:
                raise ValueError(f"{path}: recipe {i} needs a 'label' and a non-empty list 'runs', got {rec!r}")
            check_keys(rec, RECIPE_KEYS, f"{path}: recipe {i} ({rec['label']})")
        out = Path(cfg["out"])
        for suffix in (".json", ".md"):
            check_output(out.with_suffix(suffix), "out")
        result = summarise(cfg["recipes"])
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
