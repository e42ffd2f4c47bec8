"""``spatial-ir demo``: the main job on the built-in photos.

Degrades the built-in test photos with a recipe, restores each with every available planner
(baselines plus the shipped learned planner when present), prints a table, and writes a before/after
PNG grid and a plot. Before the planners exist, it shows the tools' effect with the scene's ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ir_env.corpus import center_crop, load_named_corpus
from ir_env.degradations import PHYSICAL_ORDER
from ir_env.imageio import write_image
from ir_env.recipes import synthesize
from ir_env.visualize import image_grid, overlay_masks
from restorers import apply, list_tools


def tool_for_kind(kind: str) -> str:
    """Name of the first registered tool that targets degradation ``kind``."""
    for t in list_tools():
        if kind in t.targets:
            return t.name
    raise ValueError(f"no tool targets degradation kind {kind!r}")


def oracle_toolchain(scene, spatial: bool = True) -> np.ndarray:  # noqa: ANN001 (Scene)
    """Apply, region by region, one default tool per ground-truth degradation, in physical order
    (restoration order = reverse of degradation order). ``spatial=False`` applies the union of all
    regions' tools to the whole image instead: what a user without region information would do."""
    img = scene.degraded
    order = list(reversed(PHYSICAL_ORDER))
    if spatial:
        for kind in order:
            for k, labels in enumerate(scene.labels):
                if kind in {lab[0] for lab in labels}:
                    img = apply(img, tool_for_kind(kind), None, mask=scene.masks[k])
    else:
        kinds = {lab[0] for labels in scene.labels for lab in labels}
        for kind in order:
            if kind in kinds:
                img = apply(img, tool_for_kind(kind), None)
    return img


def run_demo(output: Path, recipe: str = "spatial-mixed", size: int = 128, seed: int = 0,
             max_images: int = 0) -> dict:
    """Run the demo; writes ``demo.png`` and ``demo.json`` under ``output``; returns the summary."""
    from skimage.metrics import peak_signal_noise_ratio as psnr

    items = load_named_corpus("builtin", split="test")
    if max_images:
        items = items[:max_images]
    output.mkdir(parents=True, exist_ok=True)
    rows, tiles, labels = [], [], []
    for i, (name, photo) in enumerate(tqdm(items, desc="demo", unit="image")):
        clean = center_crop(photo, size)
        scene = synthesize(clean, recipe=recipe, seed=seed + i)
        spatial = oracle_toolchain(scene, spatial=True)
        whole = oracle_toolchain(scene, spatial=False)
        r = {"image": name, "psnr_in": psnr(clean, scene.degraded, data_range=1.0),
             "psnr_global_tools": psnr(clean, whole, data_range=1.0),
             "psnr_region_tools": psnr(clean, spatial, data_range=1.0),
             "regions": [sorted({k for k, _ in lab}) for lab in scene.labels]}
        rows.append(r)
        tiles.append([clean, overlay_masks(scene.degraded, scene.masks), whole, spatial])
        labels.append(["clean", f"in {r['psnr_in']:.1f}", f"global {r['psnr_global_tools']:.1f}",
                       f"regions {r['psnr_region_tools']:.1f}"])
    write_image(output / "demo.png", image_grid(tiles, labels))
    summary = {"recipe": recipe, "seed": seed, "size": size, "rows": rows}
    (output / "demo.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"\n{'image':<24} {'PSNR in':>8} {'global tools':>13} {'region tools':>13}  degradations per region")
    for r in rows:
        regs = " | ".join("+".join(k) for k in r["regions"])
        print(f"{r['image']:<24} {r['psnr_in']:8.2f} {r['psnr_global_tools']:13.2f} "
              f"{r['psnr_region_tools']:13.2f}  {regs}")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_in", "psnr_global_tools", "psnr_region_tools")}
    print(f"{'mean':<24} {mean['psnr_in']:8.2f} {mean['psnr_global_tools']:13.2f} {mean['psnr_region_tools']:13.2f}")
    print(f"\nwrote {output / 'demo.png'} and {output / 'demo.json'}")
    summary["mean"] = mean
    return summary
