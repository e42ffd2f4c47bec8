"""Scale transfer: the planners on larger images than they were trained on, with and without tiling.

Every learned part (PPO and distilled policies: 64 px crops; encoder and rule table: 128 px crops) saw small
crops of photos at native resolution. This script runs the same planners on `spatial-mixed` scenes of the
built-in TEST photos centre-cropped to each size in ``sizes`` (0 = the whole photo, 300-512 px a side), the
plain planner next to its tiled form (``spec:tile=N``, :class:`policies.tiled.TiledPlanner`) and with or
without the perception gate (``spec:gate=off``, :mod:`policies.gate`); with ``train_photos`` (``{size,
scenes_per_image}``) also on scenes of the TRAIN photos; with ``clean_crops`` (``{crops, size}``) on
undegraded crops of the test photos; and, with ``real_pairs``, on the 5 distorted /
reference Kodak pairs that pyiqa installs (``ResultsCalibra``: KADID-10k distortions, mostly outside the six
simulated families, so the best a planner can do there is little harm; the reference photos are in the
encoder's training corpus, the distortions are not). ``images`` may name another photo set (e.g. ``holdout``);
``paired: [[a, b], ...]`` adds per size the paired gap between two of the planners (mean ± standard error).

    python -m experiments.scale_transfer --config experiments/configs/scale_transfer.yaml

Writes ``<output_dir>/scale_transfer.{json,md}``: mean PSNR gain ± std over scenes, tool calls and seconds
per image, per planner and size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from experiments.configio import check_keys, config_int, config_judge, config_names, read_config  # noqa: E402
from experiments.run_baselines import scene_items  # noqa: E402
from ir_env.corpus import load_named_corpus  # noqa: E402
from ir_env.imageio import read_image  # noqa: E402
from policies.evaluation import evaluate, image_metrics, parse_planner_spec  # noqa: E402

REQUIRED = ("recipe", "images", "scenes_per_image", "sizes", "seed", "planners", "output_dir")
#: Every config key (the optional ones: no_reference_judge, train_photos, clean_crops, real_pairs, paired).
KEYS = REQUIRED + ("no_reference_judge", "train_photos", "clean_crops", "real_pairs", "paired")


def real_pair_paths() -> list[tuple[str, Path, Path]]:
    """(name, distorted, reference) paths of the KADID-10k pairs in pyiqa's ``ResultsCalibra`` package;
    ``FileNotFoundError`` when the package or a file is missing."""
    try:
        import ResultsCalibra  # type: ignore[import-not-found]
    except ImportError as err:
        raise FileNotFoundError(f"the real distorted pairs need pyiqa's ResultsCalibra package: {err}") from err
    root = Path(ResultsCalibra.__path__[0])
    refs = sorted((root / "ref_dir").glob("*.bmp"))
    pairs = [(r.name, root / "dist_dir" / r.name, r) for r in refs]
    missing = [str(p) for _, d, r in pairs for p in (d, r) if not p.is_file()]
    if not pairs or missing:
        raise FileNotFoundError(f"ResultsCalibra pairs incomplete under {root}: {missing or 'no ref_dir/*.bmp'}")
    return pairs


def run_real_pairs(specs: list[str], seed: int, judge: str) -> dict[str, Any]:
    """Every planner on every distorted / reference pair: per-pair PSNR gain and the means."""
    pairs = [(n, read_image(d), read_image(r)) for n, d, r in real_pair_paths()]
    out: dict[str, Any] = {"pairs": [n for n, _, _ in pairs], "planners": {}}
    for spec in specs:
        planner, needs_ref = parse_planner_spec(spec, default_judge=judge, seed=seed)
        gains, calls, secs = [], [], []
        for _, dist, ref in pairs:
            t0 = time.perf_counter()
            res = planner.restore(dist, reference=ref if needs_ref else None)
            secs.append(time.perf_counter() - t0)
            gains.append(image_metrics(res.image, ref)["psnr"] - image_metrics(dist, ref)["psnr"])
            calls.append(res.tool_calls)
        out["planners"][spec] = {"gains": gains, "psnr_gain": float(np.mean(gains)),
                                 "tool_calls": float(np.mean(calls)), "seconds": float(np.mean(secs))}
    return out


def run_clean_crops(specs: list[str], crops: int, size: int, seed: int, judge: str) -> dict[str, Any]:
    """Every planner on ``crops`` UNDEGRADED random ``size`` px crops of the built-in TEST photos (nothing to
    restore): share left untouched, mean steps and the mean / worst PSNR (dB) of the output against the
    crop (an untouched crop counts as 100 dB)."""
    from ir_env.corpus import random_crop

    photos = [img for _, img in load_named_corpus("builtin", split="test")]
    rng = np.random.default_rng([seed, 3])
    clean = [random_crop(photos[i % len(photos)], int(size), rng) for i in range(int(crops))]
    out: dict[str, Any] = {"crops": int(crops), "size": int(size), "planners": {}}
    for spec in specs:
        planner, needs_ref = parse_planner_spec(spec, default_judge=judge, seed=seed)
        steps, q = [], []
        for img in clean:
            res = planner.restore(img, reference=img if needs_ref else None)
            steps.append(len(res.trace))
            q.append(min(100.0, image_metrics(res.image, img)["psnr"]))
        out["planners"][spec] = {"untouched": float(np.mean(np.asarray(steps) == 0)),
                                 "mean_steps": float(np.mean(steps)), "mean_psnr": float(np.mean(q)),
                                 "worst_psnr": float(np.min(q))}
    return out


def size_label(size: int) -> str:
    """Column name of a size (0 = whole photo)."""
    return "whole photo" if int(size) == 0 else f"{int(size)} px"


def markdown(res: dict[str, Any]) -> str:
    """The report: one row per planner, gain / tool calls / seconds per size (and on the real pairs)."""
    cfg = res["config"]
    sizes = [size_label(s) for s in cfg["sizes"]]
    builtin = cfg["images"] == "builtin"
    where = ("built-in TEST photos" if builtin else f"`{cfg['images']}` photos ({res['photos']})")
    first = (f"; at 128 px the first {2 * res['photos']} are the headline comparison's scenes" if builtin else "")
    whole = " (whole photo: 300-512 px a side)" if builtin else ""
    head = ("# Scale transfer and real photos: planners plain, without their perception gate, and tiled\n\n"
            f"Made by `{res['command']}`. Recipe `{cfg['recipe']}`, {where}, "
            f"{res['scenes']} scenes per size ({cfg['scenes_per_image']} per photo{first}), evaluation seed "
            f"{cfg['seed']}; each size centre-crops the photos first{whole}. Gain = mean PSNR out - "
            "PSNR in (dB) ± std over scenes; `gate=off`: a learned planner without its default perception gate "
            "(`policies/gate.py`); `tile=N`: the planner run on tiles of about N px (`policies/tiled.py`). "
            "Seconds on a shared 2-core CPU: compare by order of magnitude.\n\n")
    cols = " | ".join(f"gain {s}" for s in sizes) + " | " + " | ".join(f"tool calls {s}" for s in sizes)
    lines = [f"| planner | {cols} | seconds ({sizes[-1]}) |", "|---" * (2 + 2 * len(sizes)) + "|"]
    for spec in cfg["planners"]:
        per = [res["sizes"][str(s)]["planners"][spec] for s in cfg["sizes"]]
        g = " | ".join(f"{p['psnr_gain']:+.2f} ± {p['psnr_gain_std']:.2f}" for p in per)
        c = " | ".join(f"{p['tool_calls']:.1f}" for p in per)
        lines.append(f"| {spec} | {g} | {c} | {per[-1]['seconds']:.2f} |")
    text = head + "\n".join(lines) + "\n"
    if res.get("paired"):
        text += ("\n## Paired gaps\n\nMean over the same scenes of (a's PSNR gain - b's) in dB ± its standard error "
                 "(wins / ties / losses of a, ties within 0.05 dB; `experiments.paired_gains.paired`).\n\n"
                 "| a | b | " + " | ".join(sizes) + " |\n" + "|---" * (2 + len(sizes)) + "|\n")
        for pr in res["paired"]:
            cells = " | ".join(f"{c['mean']:+.2f} ± {c['se']:.2f} ({c['wins']}/{c['ties']}/{c['losses']})"
                               for c in (pr["sizes"][str(sz)] for sz in cfg["sizes"]))
            text += f"| {pr['a']} | {pr['b']} | {cells} |\n"
    if res.get("train_photos"):
        tr = res["train_photos"]
        text += (f"\n## The TRAIN photos ({tr['size']} px, {tr['images']} scenes)\n\nThe same planners on "
                 f"`{cfg['recipe']}` scenes of the built-in train photos, the photos the learned planners, the "
                 "encoder and the rule table were fitted on (the gate's thresholds were tuned there too): "
                 "what a planner gives on its own distribution.\n\n| planner | gain | tool calls |\n|---|---|---|\n")
        for spec in cfg["planners"]:
            p = tr["planners"][spec]
            text += f"| {spec} | {p['psnr_gain']:+.2f} ± {p['psnr_gain_std']:.2f} | {p['tool_calls']:.1f} |\n"
    if res.get("real_pairs"):
        rp = res["real_pairs"]
        text += ("\n## Real distortions (pyiqa's 5 KADID-10k pairs, 512 x 384)\n\n"
                 f"PSNR gain (dB) against the reference per pair ({', '.join(rp['pairs'])}): distortions the "
                 "simulator does not make except blur (I03), so leaving the image alone (0.00) is the safe "
                 "answer.\n\n| planner | mean gain | " + " | ".join(rp["pairs"]) + " | tool calls | seconds |\n"
                 + "|---" * (4 + len(rp["pairs"])) + "|\n")
        for spec, p in rp["planners"].items():
            text += (f"| {spec} | {p['psnr_gain']:+.2f} | " + " | ".join(f"{g:+.2f}" for g in p["gains"])
                     + f" | {p['tool_calls']:.1f} | {p['seconds']:.2f} |\n")
    if res.get("clean_crops"):
        cc = res["clean_crops"]
        text += (f"\n## Undegraded photos ({cc['crops']} random {cc['size']} px crops of the TEST photos)\n\n"
                 "Nothing to restore: the best answer is to leave the crop as it is. PSNR of the output against "
                 "the crop (an untouched crop counts as 100 dB).\n\n| planner | left untouched | steps per crop "
                 "| mean PSNR (dB) | worst PSNR (dB) |\n|---|---|---|---|---|\n")
        for spec, p in cc["planners"].items():
            text += (f"| {spec} | {p['untouched']:.0%} | {p['mean_steps']:.2f} | {p['mean_psnr']:.1f} | "
                     f"{p['worst_psnr']:.1f} |\n")
    return text


def paired_sizes(res: dict[str, Any], pairs: list[list[str]], names: list[str]) -> list[dict[str, Any]]:
    """Per ``[a, b]`` pair and size, :func:`experiments.paired_gains.paired` of a's per-scene PSNR gain minus b's
    (scenes ``names``; both planners must be in the config's ``planners``)."""
    from experiments.paired_gains import paired, scene_gains

    out = []
    for a, b in pairs:
        sizes = {k: paired(scene_gains(r, a, names) - scene_gains(r, b, names)) for k, r in res["sizes"].items()}
        out.append({"a": a, "b": b, "sizes": sizes})
    return out


def run(cfg: dict[str, Any], command: str) -> dict[str, Any]:
    """Every size (and the real pairs); returns the report dict."""
    items = scene_items(cfg["images"], int(cfg["scenes_per_image"]))
    names = [n for n, _ in items]  # the sized scenes (``items`` is reused for the train photos below)
    res: dict[str, Any] = {"config": cfg, "command": command, "scenes": len(items),
                           "photos": len(items) // int(cfg["scenes_per_image"]), "sizes": {}}
    judge = cfg.get("no_reference_judge", "brisque")
    for size in cfg["sizes"]:
        t0 = time.perf_counter()
        r = evaluate(items, cfg["recipe"], cfg["planners"], seed=int(cfg["seed"]), size=int(size), judge=judge)
        r["seconds_total"] = time.perf_counter() - t0
        res["sizes"][str(size)] = r
        print(f"{size_label(size)}: " + ", ".join(f"{k} {v['psnr_gain']:+.2f}" for k, v in r["planners"].items()),
              flush=True)
    if cfg.get("train_photos"):  # the photos the policies were trained on (their own distribution)
        tp = cfg["train_photos"]
        items = scene_items(cfg["images"], int(tp["scenes_per_image"]), split="train")
        r = evaluate(items, cfg["recipe"], cfg["planners"], seed=int(cfg["seed"]), size=int(tp["size"]), judge=judge)
        res["train_photos"] = r
        print(f"train photos {tp['size']} px: " + ", ".join(f"{k} {v['psnr_gain']:+.2f}"
                                                       for k, v in r["planners"].items()), flush=True)
    if cfg.get("paired"):  # paired gaps between two planners over the same scenes, per size
        res["paired"] = paired_sizes(res, cfg["paired"], names)
    if cfg.get("real_pairs"):
        res["real_pairs"] = run_real_pairs(cfg["planners"], int(cfg["seed"]), judge)
    if cfg.get("clean_crops"):
        cc = cfg["clean_crops"]
        res["clean_crops"] = run_clean_crops(cfg["planners"], int(cc["crops"]), int(cc["size"]), int(cfg["seed"]),
                                             judge)
    return res


def check_config(cfg: dict[str, Any], where: str) -> None:
    """``ValueError`` naming ``where`` for an unknown or missing key, a seed / scenes_per_image / size that is not a
    whole number (a size 0 is the whole photo), an empty planner list, a malformed ``train_photos`` or
    ``clean_crops``, an unknown recipe, or an ``output_dir`` that cannot be a folder; run before any scene."""
    from ir_env.paths import check_writable
    from ir_env.recipes import get_recipe

    check_keys(cfg, KEYS, where, required=REQUIRED)
    config_int(cfg, "seed", where)
    config_int(cfg, "scenes_per_image", where, minimum=1)
    sizes = cfg["sizes"]
    if not isinstance(sizes, list) or not sizes or any(isinstance(x, bool) or not isinstance(x, int) or x < 0
                                                       for x in sizes):
        raise ValueError(f"{where}: sizes must be a non-empty list of whole numbers (px; 0 = whole photo), "
                         f"got {sizes!r}")
    config_names(cfg, "planners", where, "planner specs")
    config_judge(cfg, where)
    for block, keys in (("train_photos", ("size", "scenes_per_image")), ("clean_crops", ("crops", "size"))):
        if cfg.get(block):
            if not isinstance(cfg[block], dict):
                raise ValueError(f"{where}: {block} must be a mapping with {', '.join(keys)}, got {cfg[block]!r}")
            check_keys(cfg[block], keys, f"{where}: {block}", required=keys)
            for k in keys:
                config_int(cfg[block], k, f"{where}: {block}", minimum=1)
    get_recipe(cfg["recipe"])
    check_writable(cfg["output_dir"], "output_dir", folder=True)


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.scale_transfer`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="experiments/configs/scale_transfer.yaml")
    a = ap.parse_args(argv)
    try:
        cfg = read_config(a.config)
        check_config(cfg, str(a.config))
        if cfg.get("train_photos"):  # a photo set without a train split fails now, not after the sizes
            scene_items(cfg["images"], 1, split="train")
        for pr in cfg.get("paired") or []:  # checked before any scene is run
            if not (isinstance(pr, list) and len(pr) == 2 and all(x in cfg["planners"] for x in pr)):
                raise ValueError(f"{a.config}: paired entries are [a, b] with both in planners, got {pr!r}")
        res = run(cfg, f"python -m experiments.scale_transfer --config {a.config}")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(cfg["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale_transfer.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (out / "scale_transfer.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
