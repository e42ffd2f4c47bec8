"""Speed of the region embedders on one CPU core: a 256-px (and 128-px) image with 8 regions.

Times ``embed(image, masks)`` (network + pooling + heads for ``learned``), median of ``--repeats`` calls
after warm-up, with torch / OpenCV / BLAS limited to one thread, and the learned encoder's perception
``predict(image, masks)`` (``learned-predict``: with the context head when one is shipped, which pools the
rest of the image too). Goal (issue: learned encoder): the learned encoder embeds a 256-px image and 8
regions in <= 20 ms.

    python -m experiments.bench_encoder --json experiments/results/bench_encoder.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy / torch load their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

GOAL_MS = 20.0


def bench(sizes: tuple[int, ...] = (128, 256), regions: int = 8, repeats: int = 100,
          weights: str | None = None) -> dict[str, Any]:
    """Median / min milliseconds per ``embed`` call for the learned and handcrafted embedders, and per
    ``predict`` call of the learned one."""
    import cv2
    import torch

    from ir_env.corpus import center_crop, load_corpus
    from ir_env.embeddings import make_embedder
    from ir_env.regions import make_proposer

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    photo = load_corpus("builtin", "test")[0]
    kw = {"weights": weights} if weights else {}
    embedders = {"learned": make_embedder("learned", **kw), "handcrafted": make_embedder("handcrafted")}
    out: dict[str, Any] = {"regions": regions, "repeats": repeats, "threads": 1, "goal_ms_256": GOAL_MS,
                           "machine": platform.processor() or platform.machine(), "results": {}}
    for size in sizes:
        img = center_crop(photo, size)
        masks = make_proposer("grid", max_regions=regions).propose(img)
        calls = {name: emb.embed for name, emb in embedders.items()}
        calls["learned-predict"] = embedders["learned"].predict
        for call in calls.values():
            for _ in range(3):
                call(img, masks)
        ts: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(repeats):  # interleaved, so a busy spell of a shared CPU hits every call alike
            for name, call in calls.items():
                t0 = time.perf_counter()
                call(img, masks)
                ts[name].append(1000 * (time.perf_counter() - t0))
        for name, t in ts.items():
            out["results"][f"{name}@{size}"] = {"median_ms": round(float(np.median(t)), 2),
                                                "min_ms": round(float(np.min(t)), 2), "regions": int(len(masks))}
    if 256 in sizes:
        out["learned_256_ms"] = out["results"]["learned@256"]["median_ms"]
        out["goal_met"] = bool(out["learned_256_ms"] <= GOAL_MS)
        out["learned_predict_256_ms"] = out["results"]["learned-predict@256"]["median_ms"]
        out["context_head"] = embedders["learned"].context is not None
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.bench_encoder`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=None, help="write the figures here (default: print only; the committed "
                    "figures are experiments/results/bench_encoder.json)")
    ap.add_argument("--repeats", type=int, default=100, help="timed calls per figure, median (default: %(default)s)")
    ap.add_argument("--weights", help="encoder weights directory (default: shipped)")
    a = ap.parse_args(argv)
    from experiments.configio import check_output, script_command

    if a.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {a.repeats}")
    if a.json:
        check_output(a.json, "--json")
    res = bench(repeats=a.repeats, weights=a.weights)
    res["command"] = script_command("experiments.bench_encoder", argv)
    if "learned_256_ms" in res:
        res["ratio_to_goal_256"] = round(res["learned_256_ms"] / GOAL_MS, 3)
    for k, v in res["results"].items():
        print(f"{k:22s} {v['median_ms']:7.2f} ms (min {v['min_ms']:.2f}), {v['regions']} regions")
    if "goal_met" in res:
        print(f"learned @256 px: {res['learned_256_ms']:.2f} ms vs goal {GOAL_MS:.0f} ms (ratio "
              f"{res['ratio_to_goal_256']:.2f}) -> {'met' if res['goal_met'] else 'NOT met'}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
