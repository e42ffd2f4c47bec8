"""Where the gap to ``dfs:oracle`` sits when perception is perfect: the rule table's parameters against per-step
oracle choices, on the scenes of a comparison.

Issue 5 asks the shipped PPO policy (which imitates ``perceive``: learned perception + the rule table) to come
within 0.5 dB of ``dfs:oracle``. Earlier reports split that gap into perception (families), regions and "the
rest", with the table given the TRUE families, severities and regions as the bound perfect perception would
reach. This script asks what that bound itself leaves: on every scene of a comparison config (same photos, crop
and scene seeds as :mod:`experiments.compare`), with the true labels on the true regions, the table's steps (one
per labelled family and region, in :data:`policies.rules.RESTORE_ORDER`) are re-decided step by step with the
clean image (the oracle) among

- ``bins``: the table's own entries for the family at all of its severity bins (what a perfect severity estimate
  could at best add: the bins are fitted on single-family crops, the scene's region holds several families);
- ``tools``: every candidate of the family (``experiments.fit_rule_table.candidates``: each tool on the table
  fit's parameter grid, and the table entry itself): what choosing tool and parameters FOR THIS IMAGE is worth.

Each step keeps the choice with the highest PSNR of the scene (a greedy oracle per step, same number of steps as
the table, never a step the table would not take). Per family it reports the mean per-step advantage of the
``tools`` choice over the table's entry (scene dB) and the tools the oracle picked. The planners' gains on the same
scenes are read from the comparison's JSON (``reference``), paired by scene. Nothing is trained, tuned or chosen:
a diagnosis.

    python -m experiments.gap_decomposition --config experiments/configs/gap_decomposition.yaml
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from experiments.configio import check_keys, config_int, config_names, read_config  # noqa: E402
from experiments.fit_rule_table import candidates, psnr, scene_gain, true_families  # noqa: E402
from experiments.run_baselines import scene_items  # noqa: E402
from policies.evaluation import evaluation_scene  # noqa: E402
from policies.rules import DEFAULT_RULE_TABLE, RESTORE_ORDER, RuleTable, apply_rules  # noqa: E402
from restorers import apply  # noqa: E402

#: Required config keys.
KEYS = ("sets", "recipe", "size", "seed", "grid", "random", "max_cost", "output_dir")
#: The re-decided variants, in report order.
VARIANTS = ("table", "bins", "tools")


def load_config(path: str | Path) -> dict[str, Any]:
    """The config at ``path``; ``ValueError`` naming a missing key or a malformed set."""
    from ir_env.paths import check_writable
    from ir_env.recipes import get_recipe

    cfg = read_config(path)
    where = str(path)
    check_keys(cfg, KEYS + ("reference_planners", "table"), where, required=KEYS)
    for key, low in (("size", 1), ("seed", 0), ("grid", 1), ("random", 0)):
        config_int(cfg, key, where, minimum=low)
    if isinstance(cfg["max_cost"], bool) or not isinstance(cfg["max_cost"], (int, float)) or not cfg["max_cost"] > 0:
        raise ValueError(f"{where}: max_cost must be a number > 0, got {cfg['max_cost']!r}")
    if not isinstance(cfg["sets"], dict) or not cfg["sets"]:
        raise ValueError(f"{path}: sets must map a name to {{images, scenes_per_image, reference}}")
    for name, s in cfg["sets"].items():
        if not isinstance(s, dict):
            raise ValueError(f"{path}: set {name!r} needs images and scenes_per_image")
        check_keys(s, ("images", "scenes_per_image", "reference"), f"{where}: set {name!r}",
                   required=("images", "scenes_per_image"))
        config_int(s, "scenes_per_image", f"{where}: set {name!r}", minimum=1)
    get_recipe(cfg["recipe"])
    if cfg.get("reference_planners") is not None:
        config_names(cfg, "reference_planners", where, "planner specs")
    if cfg.get("table") is not None:
        try:
            RuleTable.load(cfg["table"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{where}: table {cfg['table']}: {e}") from None
    check_writable(cfg["output_dir"], "output_dir", folder=True)
    for name in cfg["sets"]:
        check_reference(cfg, name, where)
    return cfg


def check_reference(cfg: dict[str, Any], name: str, where: str) -> None:
    """``ValueError`` naming ``where``, the set and ``reference`` / ``reference_planners`` when set ``name``'s
    comparison JSON (``<reference>/<recipe>.json``) is missing or unreadable, or lacks a row of a
    ``reference_planners`` entry on one of the set's scenes: checked when the config is read, not after the
    oracle pass over every scene (minutes). Reads the set's photos (for the scene names) and the JSON."""
    s = cfg["sets"][name]
    if not s.get("reference"):
        return
    ref = Path(str(s["reference"]))
    path = ref / f"{cfg['recipe']}.json"
    if not ref.is_dir():
        raise ValueError(f"{where}: set {name!r}: reference {ref} is not a folder (the output_dir of an "
                         f"experiments.compare run holding {cfg['recipe']}.json)")
    if not path.is_file():
        raise ValueError(f"{where}: set {name!r}: reference {ref} holds no {path.name} (run experiments.compare "
                         f"with recipe {cfg['recipe']} into it)")
    try:
        rows = json.loads(path.read_text())["rows"]
        got = {(r["planner"], r["image"]) for r in rows}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{where}: set {name!r}: reference {path} is not a comparison's JSON with rows "
                         f"({type(e).__name__}: {e})") from None
    planners = list(cfg.get("reference_planners") or [])
    there = sorted({p for p, _ in got})
    for p in planners:
        if p not in there:
            raise ValueError(f"{where}: reference_planners: {p!r} has no row in {path} (planners there: "
                             f"{', '.join(there)})")
    names = [n for n, _ in scene_items(s["images"], int(s["scenes_per_image"]))]
    for p in planners:
        missing = [n for n in names if (p, n) not in got]
        if missing:
            raise ValueError(f"{where}: set {name!r}: reference {path} has no {p!r} row for {len(missing)} of its "
                             f"{len(names)} scene(s), e.g. {missing[0]} (another comparison?)")


def oracle_step(image: np.ndarray, clean: np.ndarray, mask: np.ndarray, options: list[tuple[str, dict]]
                ) -> tuple[np.ndarray, float, str]:
    """The option (tool, physical params) applied inside ``mask`` that gives the highest PSNR against ``clean``
    (the first on ties): (image, its PSNR, tool name)."""
    best: tuple[np.ndarray, float, str] | None = None
    for tool, params in options:
        out = apply(image, tool, params, mask=mask)
        q = psnr(out, clean)
        if best is None or q > best[1]:
            best = (out, q, tool)
    assert best is not None, "no option to choose from"
    return best


def decompose_scene(table: RuleTable, scene: Any, pool: dict[str, list[tuple[str, dict]]]) -> dict[str, Any]:
    """One scene: its gain (dB) under the table and under the two per-step oracles (true labels, true regions),
    and per ``tools`` step (family, the table's tool, the oracle's tool, its advantage in scene dB)."""
    seen = true_families(scene)
    table_img, _ = apply_rules(table, scene.degraded, scene.masks, seen)
    out: dict[str, Any] = {"table": scene_gain(table_img, scene)}
    for variant in ("bins", "tools"):
        img, steps = scene.degraded, []
        for fam in RESTORE_ORDER:
            for k, fams in enumerate(seen):
                if fam not in fams or not scene.masks[k].any():
                    continue
                entry = table.lookup(fam, fams[fam])
                entry_img = apply(img, *entry, mask=scene.masks[k])
                at_entry = psnr(entry_img, scene.clean)
                others = ([o for o in (table.entry(fam, b) for b in range(table.bins)) if o != entry]
                          if variant == "bins" else pool[fam])
                best = oracle_step(img, scene.clean, scene.masks[k], others) if others else None
                img, q, tool = best if best is not None and best[1] > at_entry else (entry_img, at_entry, entry[0])
                steps.append({"family": fam, "table_tool": entry[0], "tool": tool, "advantage_db": q - at_entry})
        out[variant] = scene_gain(img, scene)
        if variant == "tools":
            out["steps"] = steps
    return out


def _job(args: tuple) -> dict[str, Any]:
    cfg, photo, index = args
    table = RuleTable.load(cfg.get("table") or DEFAULT_RULE_TABLE)
    pool = {f: candidates(f, int(cfg["grid"]), int(cfg["random"]), float(cfg["max_cost"]), int(cfg["seed"]))
            for f in RESTORE_ORDER}
    _, scene = evaluation_scene(photo, index, cfg["recipe"], int(cfg["seed"]), int(cfg["size"]))
    return decompose_scene(table, scene, pool)


def reference_gains(path: str | Path, recipe: str, names: list[str], planners: list[str]) -> dict[str, list[float]]:
    """Per planner spec, its gain (dB) on each scene ``names`` (in that order) from a comparison's recipe JSON
    (``<output_dir>/<recipe>.json`` of :mod:`experiments.compare`); ``ValueError`` when a scene or planner is
    missing, so a reference never pairs other scenes."""
    rows = json.loads((Path(path) / f"{recipe}.json").read_text())["rows"]
    got = {(r["planner"], r["image"]): r["psnr_out"] - r["psnr_in"] for r in rows}
    out = {}
    for p in planners:
        missing = [n for n in names if (p, n) not in got]
        if missing:
            raise ValueError(f"{path}: no {p!r} row for {len(missing)} scene(s), e.g. {missing[0]}")
        out[p] = [got[(p, n)] for n in names]
    return out


def mean_se(x: list[float] | np.ndarray) -> tuple[float, float]:
    """Mean and standard error of ``x``."""
    a = np.asarray(x, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0


def run_set(cfg: dict[str, Any], name: str, workers: int, progress: bool) -> dict[str, Any]:
    """Every scene of one photo set: per-scene results, the summary and the paired references."""
    s = cfg["sets"][name]
    items = scene_items(s["images"], int(s["scenes_per_image"]))
    jobs = [(cfg, photo, i) for i, (_, photo) in enumerate(items)]
    with Pool(workers) as pool:
        scenes = list(tqdm(pool.imap(_job, jobs), total=len(jobs), desc=name, disable=not progress))
    names = [n for n, _ in items]
    res: dict[str, Any] = {"scenes": len(scenes), "images": s["images"],
                           "mean": {v: mean_se([sc[v] for sc in scenes]) for v in VARIANTS}}
    res["paired"] = {f"{v} - table": mean_se([sc[v] - sc["table"] for sc in scenes]) for v in ("bins", "tools")}
    fam: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for sc in scenes:
        for st in sc["steps"]:
            fam[st["family"]].append(st)
    res["families"] = {f: {"steps": len(v), "advantage_db": float(np.mean([x["advantage_db"] for x in v])),
                           "advantage_sum_db": float(np.sum([x["advantage_db"] for x in v])) / len(scenes),
                           "table_tools": dict(collections.Counter(x["table_tool"] for x in v).most_common()),
                           "oracle_tools": dict(collections.Counter(x["tool"] for x in v).most_common())}
                       for f, v in sorted(fam.items(), key=lambda kv: -sum(x["advantage_db"] for x in kv[1]))}
    if s.get("reference"):
        ref = reference_gains(s["reference"], cfg["recipe"], names, list(cfg.get("reference_planners", [])))
        res["reference"] = {p: {"mean": mean_se(g),
                                "minus_table": mean_se(np.asarray(g) - [sc["table"] for sc in scenes]),
                                "minus_tools": mean_se(np.asarray(g) - [sc["tools"] for sc in scenes])}
                            for p, g in ref.items()}
    res["per_scene"] = [{"image": n, **{v: round(sc[v], 4) for v in VARIANTS}} for n, sc in zip(names, scenes,
                                                                                                  strict=True)]
    return res


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    cfg = report["config"]
    lines = [f"# Gap decomposition: {cfg['recipe']}, {cfg['size']} px, true labels on the true regions", "",
             f"`{report['command']}`", "",
             "Mean PSNR gain (dB ± standard error over scenes) of the shipped rule table given the TRUE families, "
             "severities and regions, and of the same steps re-decided one by one with the clean image: among the "
             "table's entries at every severity bin (`bins`), and among every candidate tool and parameter of the "
             "family (`tools`). Planners' gains on the same scenes from the comparison, paired.", ""]
    for name, r in report["sets"].items():
        lines += [f"## {name} ({r['scenes']} scenes, photos `{r['images']}`)", "",
                  "| perception / choice | mean gain | paired vs the table |", "|---|---|---|"]
        lines.append(f"| true labels, rule table | {r['mean']['table'][0]:+.2f} ± {r['mean']['table'][1]:.2f} | |")
        for v, text in (("bins", "true labels, best table bin per step (oracle)"),
                        ("tools", "true labels, best tool + parameters per step (oracle)")):
            d = r["paired"][f"{v} - table"]
            lines.append(f"| {text} | {r['mean'][v][0]:+.2f} ± {r['mean'][v][1]:.2f} | {d[0]:+.2f} ± {d[1]:.2f} |")
        for p, g in r.get("reference", {}).items():
            lines.append(f"| `{p}` (the comparison's row) | {g['mean'][0]:+.2f} ± {g['mean'][1]:.2f} | "
                         f"{g['minus_table'][0]:+.2f} ± {g['minus_table'][1]:.2f} |")
        lines += ["", "Per family, the `tools` oracle's steps: mean advantage over the table's entry per step and "
                  "summed per scene (scene dB), the tools chosen.", "",
                  "| family | steps | per step | per scene | table's tools | oracle's tools |",
                  "|---|---|---|---|---|---|"]
        for f, x in r["families"].items():
            tt = ", ".join(f"{k} {v}" for k, v in x["table_tools"].items())
            ot = ", ".join(f"{k} {v}" for k, v in x["oracle_tools"].items())
            lines.append(f"| {f} | {x['steps']} | {x['advantage_db']:+.2f} | {x['advantage_sum_db']:+.2f} | {tt} | "
                         f"{ot} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run every set of the config, write ``gap.json`` and ``gap.md`` in its output_dir."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="experiments/configs/gap_decomposition.yaml",
                    help="config YAML (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="processes over the scenes (default: %(default)s)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (default: shown)")
    args = ap.parse_args(argv)
    try:
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        cfg = load_config(args.config)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    report: dict[str, Any] = {"command": f"python -m experiments.gap_decomposition --config {args.config}",
                              "config": {k: v for k, v in cfg.items() if k != "output_dir"}, "sets": {}}
    try:
        for name in cfg["sets"]:
            report["sets"][name] = run_set(cfg, name, max(1, args.workers), not args.no_progress)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(cfg["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "gap.json").write_text(json.dumps(report, indent=1))
    (out / "gap.md").write_text(markdown(report))
    print(f"wrote {out}/gap.json and gap.md ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
