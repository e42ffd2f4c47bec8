"""Paired gaps between planners of a comparison: mean of (a's PSNR gain - b's) over the SAME scenes, with its
standard error, for all scenes, the first ``new_from`` and the rest (the ``paired`` block of a compare config).

A comparison table gives each planner's mean gain and its spread over scenes (2-3 dB here), which hides how
sure a difference between two planners is; scored on the same scenes, the per-scene differences vary far less.
Hand-written: a paired t-style summary of per-scene rows is a few lines of numpy, no library does it on these rows.

Run:  python -m experiments.paired_gains --config experiments/configs/compare_large.yaml
Reads ``<output_dir>/<recipe>.json`` written by ``experiments.compare``; writes ``<output_dir>/paired.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from experiments.compare import load_compare_config
from experiments.run_baselines import scene_items

#: |mean| / standard error at or above which a paired difference is called resolved.
RESOLVED_SE = 2.0


def scene_gains(result: dict[str, Any], who: str, names: list[str]) -> np.ndarray:
    """Per scene (in ``names`` order) the PSNR gain in dB of planner spec ``who`` or, when ``who`` names a learned
    group of ``result["groups"]``, the mean over its seed models' specs. Raises ``KeyError`` naming what is missing."""
    specs = result.get("groups", {}).get(who, {}).get("specs") or [who]
    per_spec = []
    for spec in specs:
        rows = {r["image"]: r["psnr_out"] - r["psnr_in"] for r in result["rows"] if r["planner"] == spec}
        if not rows:
            known = sorted({r["planner"] for r in result["rows"]} | set(result.get("groups", {})))
            raise KeyError(f"planner {spec!r} has no rows in the {result.get('recipe')} results; known: {known}")
        missing = [n for n in names if n not in rows]
        if missing:
            raise KeyError(f"planner {spec!r} has no row for scene(s) {missing[:3]} of {result.get('recipe')}")
        per_spec.append([rows[n] for n in names])
    return np.mean(np.asarray(per_spec, dtype=np.float64), axis=0)


def paired(diff: np.ndarray) -> dict[str, Any]:
    """Summary of per-scene differences (dB): n, mean, standard error of the mean (``nan`` for one scene),
    wins / losses (difference above / below +-0.05 dB) and ties."""
    d = np.asarray(diff, dtype=np.float64)
    n = int(d.size)
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": float(d.mean()) if n else float("nan"), "se": se,
            "wins": int(np.sum(d > 0.05)), "losses": int(np.sum(d < -0.05)),
            "ties": int(np.sum(np.abs(d) <= 0.05))}


def verdict(head: dict[str, Any], full: dict[str, Any]) -> str:
    """The reading of compare_large.yaml: the headline's sign (its first scenes) holds when the full set agrees
    and its mean is at least :data:`RESOLVED_SE` standard errors from 0."""
    if not (full["se"] > 0) or abs(full["mean"]) < RESOLVED_SE * full["se"]:
        return "not resolved"
    return "holds" if np.sign(full["mean"]) == np.sign(head["mean"]) else "reversed"


#: Keys of the config's ``paired`` block.
PAIRED_KEYS = ("pairs", "new_from")


def run(cfg: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """Every recipe's pairs: ``{"recipes": {recipe: [{"a", "b", "head", "all", "new", "verdict"}, ...]}}``.
    ``ValueError`` naming ``where`` (the config file) and the key for a malformed ``paired`` block."""
    from experiments.configio import check_keys, config_int

    block = cfg.get("paired") or {}
    if not isinstance(block, dict):
        raise ValueError(f"{where}: paired must be a mapping with pairs (and new_from), got {block!r}")
    check_keys(block, PAIRED_KEYS, f"{where}: paired")
    pairs = block.get("pairs") or []
    new_from = config_int(block, "new_from", f"{where}: paired", minimum=0, default=0)
    if not pairs:
        raise ValueError("the config has no paired.pairs: nothing to compare")
    if not isinstance(pairs, list):
        raise ValueError(f"{where}: paired.pairs must be a list of [a, b] planner specs, got {pairs!r}")
    for p in pairs:
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p)):
            raise ValueError(f"paired.pairs entries are [a, b] planner specs or learned group names, got {p!r}")
    names = [n for n, _ in scene_items(cfg["images"], int(cfg.get("scenes_per_image", 1)))]
    if not 0 <= new_from <= len(names):
        raise ValueError(f"{where}: paired.new_from must lie in [0, {len(names)}] (the scene count), got {new_from}")
    out: dict[str, Any] = {"images": cfg["images"], "scenes": len(names), "new_from": new_from, "recipes": {}}
    for recipe in cfg["recipes"]:
        path = Path(cfg["output_dir"]) / f"{recipe}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run experiments.compare with this config first")
        result = json.loads(path.read_text())
        rows, skipped = [], set((cfg.get("skip") or {}).get(recipe) or [])
        for a, b in pairs:
            if a in skipped or b in skipped:  # not run on this recipe (cost), by the config
                continue
            d = scene_gains(result, a, names) - scene_gains(result, b, names)
            head, full, new = paired(d[:new_from]), paired(d), paired(d[new_from:])
            rows.append({"a": a, "b": b, "head": head, "all": full, "new": new, "verdict": verdict(head, full),
                         "diffs": [round(float(x), 6) for x in d]})
        out["recipes"][recipe] = rows
    return out


def pooled(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (a, b) pair, :func:`paired` over the per-scene differences of every recipe of every result of
    :func:`run` (e.g. the test and the holdout photos), with the number of (photo set, recipe) cells and the
    lowest cell mean."""
    acc: dict[tuple[str, str], list[list[float]]] = {}
    for res in results:
        for rows in res["recipes"].values():
            for r in rows:
                acc.setdefault((r["a"], r["b"]), []).append(r["diffs"])
    return [{"a": a, "b": b, "cells": len(cells), "worst_cell": float(min(np.mean(c) for c in cells)),
             **paired(np.concatenate(cells))} for (a, b), cells in acc.items()]


def _fmt(s: dict[str, Any]) -> str:
    if s["n"] == 0:
        return "-"
    se = "" if math.isnan(s["se"]) else f" ± {s['se']:.2f}"
    return f"{s['mean']:+.2f}{se} ({s['wins']}/{s['ties']}/{s['losses']})"


def markdown(res: dict[str, Any], command: str) -> str:
    """``paired.md``: one table per recipe."""
    k, n = res["new_from"], res["scenes"]
    lines = [f"# Paired gaps ({res['images']} photos, {n} scenes per recipe)", "",
             f"Made by `{command}` from the comparison's per-scene rows. Each cell: mean over the same scenes of "
             "(a's PSNR gain - b's) in dB ± its standard error (wins / ties / losses of a, ties within 0.05 dB). "
             f"'first {k}': scenes 0-{k - 1}; 'new': scenes {k}-{n - 1}. Verdict: the first scenes' sign 'holds' "
             f"when all {n} agree and the mean is at least {RESOLVED_SE:g} standard errors from 0; 'not resolved' "
             "when it is closer to 0; 'reversed' when the sign flips.", ""]
    for recipe, rows in res["recipes"].items():
        lines += [f"## {recipe}", "", f"| a | b | first {k} | new ({n - k}) | all {n} | verdict |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['a']} | {r['b']} | {_fmt(r['head'])} | {_fmt(r['new'])} | {_fmt(r['all'])} | {r['verdict']} |"
                  for r in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.paired_gains`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, action="append",
                    help="a compare config with a paired block (required; repeat it to pool several: --pooled)")
    ap.add_argument("--pooled", help="also write each pair pooled over every config and recipe to this .json "
                                     "(default: not written)")
    args = ap.parse_args(argv)
    from experiments.configio import check_output

    check_output(args.pooled, "--pooled")
    done = []
    try:
        for path in args.config:
            cfg = load_compare_config(path)  # the comparison's own reader and checks
            for name in ("paired.json", "paired.md"):
                check_output(Path(cfg["output_dir"]) / name, "paired report")
            done.append((path, cfg, run(cfg, path)))
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path, cfg, res in done:
        command = f"python -m experiments.paired_gains --config {path}"
        out = Path(cfg["output_dir"])
        (out / "paired.json").write_text(json.dumps(res, indent=1) + "\n")
        md = markdown(res, command)
        (out / "paired.md").write_text(md + "\n")
        print(md)
    if args.pooled:
        pool = {"configs": args.config, "pairs": pooled([res for _, _, res in done])}
        Path(args.pooled).parent.mkdir(parents=True, exist_ok=True)
        Path(args.pooled).write_text(json.dumps(pool, indent=1) + "\n")
        for r in pool["pairs"]:
            print(f"pooled {r['a']} - {r['b']}: {r['mean']:+.3f} ± {r['se']:.3f} dB over {r['n']} scenes in "
                  f"{r['cells']} cells (worst cell {r['worst_cell']:+.2f}; {r['wins']}/{r['ties']}/{r['losses']})")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
