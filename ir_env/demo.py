"""``spatial-ir demo``: the main job on the built-in photos.

Degrades the built-in *test* photos with a recipe (default ``spatial-mixed``), restores each with every
planner (baselines with a no-reference judge, the oracle-judged search as an upper bound, and the
shipped learned planner when it is installed), prints the comparison table, and writes
``demo.png`` (per image: clean, degraded with its regions, and each planner's result with its PSNR),
``quality_vs_cost.png``, ``results.json`` and ``results.md`` under the output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ir_env.corpus import load_named_corpus
from ir_env.imageio import write_image
from ir_env.quality import get_metric
from ir_env.visualize import image_grid, overlay_masks
from policies.evaluation import evaluate, markdown_table, write_outputs
from policies.registry import list_planners

#: Planner specs the demo compares (learned planners are appended when available).
DEMO_PLANNERS: tuple[str, ...] = ("random", "fixed", "perceive", "perceive:regions=families", "greedy", "dfs",
                                  "greedy:oracle", "dfs:oracle")


#: Shipped learned planners the demo appends when their model files load.
LEARNED_DEMO_PLANNERS: tuple[str, ...] = ("ppo", "distilled", "memory")


def demo_planners() -> list[str]:
    """The demo's planner specs: :data:`DEMO_PLANNERS` plus each of :data:`LEARNED_DEMO_PLANNERS` (the PPO
    policy, the distilled student, the experience memory) whose shipped files load."""
    from policies.registry import make_planner

    specs = list(DEMO_PLANNERS)
    for name in LEARNED_DEMO_PLANNERS:
        if name not in list_planners():
            continue
        try:
            make_planner(name)
        except (FileNotFoundError, ValueError, ImportError):
            continue
        specs.append(name)
    return specs


def run_demo(output: Path, recipe: str = "spatial-mixed", size: int = 128, seed: int = 0,
             max_images: int = 0, planners: list[str] | None = None) -> dict[str, Any]:
    """Run the demo and write its files under ``output``; returns the evaluate-style results dict."""
    items = load_named_corpus("builtin", split="test")
    if max_images:
        items = items[:max_images]
    specs = planners or demo_planners()
    kept: dict[str, dict[str, Any]] = {}

    def keep(name: str, spec: str, scene: Any, res: Any) -> None:
        entry = kept.setdefault(name, {"scene": scene, "results": {}})
        entry["results"][spec] = res.image

    result = evaluate(items, recipe, specs, seed=seed, size=size, on_result=keep)
    output.mkdir(parents=True, exist_ok=True)
    psnr = get_metric("psnr")
    rows, labels = [], []
    for name, entry in kept.items():
        sc = entry["scene"]
        row = [sc.clean, overlay_masks(sc.degraded, sc.masks, alpha=0.0)]
        lab = [f"{name.rsplit('.', 1)[0]} (clean)", f"input {psnr.score(sc.degraded, sc.clean):.1f} dB"]
        for spec in specs:
            img = entry["results"][spec]
            row.append(img)
            lab.append(f"{spec} {psnr.score(img, sc.clean):.1f} dB")
        rows.append(row)
        labels.append(lab)
    scale = max(1, 256 // size) if size > 0 else 1  # size 0: whole photos, shown as they are
    grid = image_grid([[np.kron(t, np.ones((scale, scale, 1), np.float32)) for t in r] for r in rows], labels)
    write_image(output / "demo.png", grid)
    write_outputs(result, str(output / "results.json"), str(output / "results.md"),
                  str(output / "quality_vs_cost.png"))
    print(markdown_table(result))
    print(f"wrote {output / 'demo.png'}, {output / 'quality_vs_cost.png'}, {output / 'results.json'}, "
          f"{output / 'results.md'}")
    return result
