"""The committed baseline comparison: every planner, both modes, both judges, on three recipes.

Run: ``python -m experiments.run_baselines --config experiments/configs/baselines.yaml``. Writes, per
recipe, ``<recipe>.json`` (the evaluate JSON), ``<recipe>.md`` and ``<recipe>.png`` (quality vs cost)
under ``output_dir``, and ``README.md`` there with every table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from experiments.configio import check_keys, config_int, config_judge, config_names, read_config  # noqa: E402
from ir_env.corpus import load_named_corpus  # noqa: E402
from ir_env.recipes import get_recipe  # noqa: E402
from policies.evaluation import evaluate, markdown_table, parse_planner_spec, write_outputs  # noqa: E402


def scene_items(source: str, scenes_per_image: int, split: str | None = None) -> list[tuple[str, Any]]:
    """The test photos (or ``split``'s), each repeated ``scenes_per_image`` times under names ``photo.png#k``
    (each gets its own scene seed in :func:`policies.evaluation.evaluate`)."""
    if isinstance(scenes_per_image, bool) or not isinstance(scenes_per_image, int) or scenes_per_image < 1:
        raise ValueError(f"scenes_per_image must be a whole number >= 1, got {scenes_per_image!r}")
    split = split or ("test" if source == "builtin" else "all")
    base = load_named_corpus(source, split=split)
    return [(f"{n}#{k}" if scenes_per_image > 1 else n, img) for k in range(scenes_per_image) for n, img in base]


def merge_previous(path: Path, res: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """Add the other planners' results from an earlier run of the same comparison (same images, size,
    seed and recipe) to ``res``; planners are listed in config order."""
    if not path.exists():
        return res
    old = json.loads(path.read_text())
    if any(old.get(k) != res.get(k) for k in ("recipe", "seed", "size", "images")):
        return res
    planners = {**{k: v for k, v in old["planners"].items() if k not in res["planners"]}, **res["planners"]}
    rows = [r for r in old["rows"] if r["planner"] not in res["planners"]] + res["rows"]
    rank = {p: i for i, p in enumerate(order)}
    res["planners"] = dict(sorted(planners.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    res["rows"] = sorted(rows, key=lambda r: (r["image"], rank.get(r["planner"], len(rank))))
    return res


#: Keys of a baselines config (all required but scenes_per_image, default 1, and no_reference_judge, brisque).
CONFIG_KEYS = ("images", "scenes_per_image", "size", "seed", "recipes", "no_reference_judge", "planners",
               "output_dir", "title")


def load_config(path: str | Path) -> dict[str, Any]:
    """The baselines config at ``path`` with defaults filled in; ``ValueError`` naming the file for an unknown or
    missing key, a size / seed / scenes_per_image that is not a whole number, or an empty recipe or planner list."""
    from ir_env.paths import check_writable

    cfg = read_config(path)
    check_keys(cfg, CONFIG_KEYS, str(path), required=("images", "size", "seed", "recipes", "planners", "output_dir"))
    config_judge(cfg, str(path))
    config_int(cfg, "size", str(path), minimum=1)
    config_int(cfg, "seed", str(path))
    cfg["scenes_per_image"] = config_int(cfg, "scenes_per_image", str(path), minimum=1, default=1)
    for key in ("recipes", "planners"):
        config_names(cfg, key, str(path))
    check_writable(cfg["output_dir"], "output_dir", folder=True)
    return cfg


def _subset(option: str, known: list[str], flag: str, key: str, config: str) -> list[str]:
    """The comma-separated names of ``option`` (all of ``known`` when empty); ``ValueError`` for a name the config
    does not list (its results would be left out of the README and ordered last)."""
    names = [x.strip() for x in option.split(",") if x.strip()]
    unknown = [x for x in names if x not in known]
    if unknown:
        raise ValueError(f"{flag}: {', '.join(unknown)} not in {config}'s {key} ({', '.join(known)}); add them to "
                         "the config first")
    return names or list(known)


def main(argv: list[str] | None = None) -> None:
    """Run the comparison from a YAML config."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="experiments/configs/baselines.yaml")
    ap.add_argument("--recipes", default="", help="comma-separated subset of the config's recipes")
    ap.add_argument("--planners", default="", help="comma-separated subset of the config's planners; their "
                    "results replace those in an existing <recipe>.json made with the same images/size/seed")
    ap.add_argument("--replot", action="store_true", help="only re-draw each <recipe>.png and re-write each "
                    "<recipe>.md and the README from its committed <recipe>.json (no evaluation)")
    args = ap.parse_args(argv)
    if args.replot:  # re-drawing needs only where the results are and which recipes
        cfg = read_config(args.config)
        check_keys(cfg, CONFIG_KEYS, str(args.config), required=("output_dir", "recipes"))
        config_judge(cfg, str(args.config))  # named in the README
    else:
        cfg = load_config(args.config)
    out = Path(cfg["output_dir"])
    recipes = _subset(args.recipes, cfg["recipes"], "--recipes", "recipes", args.config)
    planners = _subset(args.planners, cfg.get("planners") or [], "--planners", "planners", args.config)
    if args.replot:
        from policies.evaluation import plot_quality_vs_cost

        for recipe in recipes:
            if not (out / f"{recipe}.json").is_file():
                raise ValueError(f"--replot: no {out / f'{recipe}.json'} to re-draw from")
            res = json.loads((out / f"{recipe}.json").read_text())
            print(f"wrote {plot_quality_vs_cost(res, out / f'{recipe}.png')}")
            (out / f"{recipe}.md").write_text(markdown_table(res))
        write_readme(out, cfg, args.config)
        print(f"wrote the tables and {out / 'README.md'}")
        return
    for r in recipes:  # every recipe and planner is checked before the first (long) evaluation
        get_recipe(r)
    for spec in planners:
        parse_planner_spec(spec, default_judge=cfg["no_reference_judge"])
    out.mkdir(parents=True, exist_ok=True)
    items = scene_items(cfg["images"], cfg["scenes_per_image"])
    for recipe in recipes:
        t0 = time.perf_counter()
        res = evaluate(items, recipe, planners, seed=int(cfg["seed"]), size=int(cfg["size"]),
                       judge=cfg["no_reference_judge"])
        res = merge_previous(out / f"{recipe}.json", res, cfg["planners"])
        res["config"] = {k: v for k, v in cfg.items() if k != "output_dir"}
        res["command"] = f"python -m experiments.run_baselines --config {args.config}"
        write_outputs(res, str(out / f"{recipe}.json"), str(out / f"{recipe}.md"), str(out / f"{recipe}.png"))
        print(markdown_table(res))
        print(f"{recipe}: {time.perf_counter() - t0:.0f} s")
    write_readme(out, cfg, args.config)


def write_readme(out: Path, cfg: dict[str, Any], config: str | Path) -> None:
    """``out/README.md``: the config's ``title`` (default "Baseline planners"), how it was made, and every
    recipe's table and plot."""
    tables = [f"## {r}\n\n" + (out / f"{r}.md").read_text() + f"\n![{r}]({r}.png)\n"
              for r in cfg["recipes"] if (out / f"{r}.md").exists()]
    (out / "README.md").write_text(
        f"# {cfg.get('title', 'Baseline planners')}\n\nMade by `python -m experiments.run_baselines --config "
        f"{config}`. Judges: `{cfg['no_reference_judge']}` (no reference) and `oracle:psnr` (the clean "
        "image is known: an upper bound, not a deployable planner).\n\n" + "\n".join(tables))


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
