"""Benchmark the built-in restoration tools: full-image time per size, and the time of a masked call
(a centred square covering 25 % of the image) relative to the full-image call.

Usage::

    python experiments/bench_tools.py --sizes 128 256 512 --repeats 3 \
        --json experiments/results/bench_tools.json

Single-threaded (OpenCV, OpenMP/BLAS, bm3d), so figures compare across machines with many cores.
Each figure is the median of ``--repeats`` timed repeats after one warm-up call (a repeat loops a fast
call until it lasts 20 ms); a tool whose first repeat exceeds ``--max-seconds`` is timed once at that
size (the JSON records the number of calls timed).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import restorers  # noqa: E402

DEFAULT_JSON = Path("experiments/results/bench_tools.json")  # relative to the working directory, as bench_env


def bench_image(size: int, seed: int) -> np.ndarray:
    """The built-in astronaut photo resized to ``size`` px with mild Gaussian noise (sigma 8 in 0-255 units,
    from ``seed``), float32 HxWx3 in [0, 1]."""
    from skimage import data

    img = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    noise = np.random.default_rng(seed).normal(0.0, 8.0 / 255.0, img.shape).astype(np.float32)
    return np.clip(img + noise, 0.0, 1.0).astype(np.float32)


def quarter_mask(size: int) -> np.ndarray:
    """Centred square mask covering 25 % of a ``size`` x ``size`` image."""
    m = np.zeros((size, size), bool)
    lo, hi = size // 4, size // 4 + size // 2
    m[lo:hi, lo:hi] = True
    return m


#: A timed repeat lasts at least this long: fast calls are looped (like timeit's autorange) so that
#: sub-millisecond figures are not dominated by timer and scheduling noise.
MIN_REPEAT_SECONDS = 0.02


def crop_fraction(mask: np.ndarray, tool: restorers.Tool) -> float:
    """Area of the box restorers.apply runs ``tool`` on for ``mask`` (its bounding box plus the effective
    margin, aligned to 8 px), as a fraction of the image: the ideal masked/full time ratio."""
    from restorers import region

    pad = max(int(tool.margin), int(np.ceil(3 * region.FEATHER_SIGMA)) + 2)
    y0, y1, x0, x1 = region.bounding_box(mask, pad)
    return (y1 - y0) * (x1 - x0) / mask.size


def time_call(fn, repeats: int, max_seconds: float) -> tuple[float, int]:
    """Median seconds per call of ``fn`` over ``repeats`` timed repeats after one warm-up call; each repeat
    loops ``fn`` enough times to last ~MIN_REPEAT_SECONDS. Returns (median, calls timed in total)."""
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    inner = int(min(200, max(1, np.ceil(MIN_REPEAT_SECONDS / max(warm, 1e-6)))))
    times: list[float] = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
        if times[0] > max_seconds:
            break
    return statistics.median(times), len(times) * inner


def run(sizes: list[int], repeats: int, seed: int, max_seconds: float, names: list[str] | None) -> dict:
    """Time every (selected) tool at every size; returns the JSON-ready result dict."""
    cv2.setNumThreads(1)
    tools = [t for t in restorers.list_tools() if names is None or t.name in names]
    if names is not None:
        missing = sorted(set(names) - {t.name for t in tools})
        if missing:
            raise ValueError(f"unknown tool(s): {', '.join(missing)}")
    result: dict = {
        "sizes": sizes,
        "repeats": repeats,
        "seed": seed,
        "threads": 1,
        "mask": "centred square, 25% of the area",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": sys.version.split()[0],
        },
        "tools": {},
    }
    for size in sizes:
        img = bench_image(size, seed)
        mask = quarter_mask(size)
        for t in tools:
            params = t.defaults()
            full, n_full = time_call(
                lambda t=t, p=params, x=img: restorers.apply(x, t, p), repeats, max_seconds
            )
            masked, n_masked = time_call(
                lambda t=t, p=params, x=img, m=mask: restorers.apply(x, t, p, mask=m), repeats, max_seconds
            )
            entry = result["tools"].setdefault(
                t.name,
                {
                    "family": t.family,
                    "declared_cost": t.cost,
                    "margin": t.margin,
                    "ms": {},
                    "masked_ms": {},
                    "ratio": {},
                    "crop_fraction": {},
                    "timed_calls": {},
                },
            )
            entry["ms"][str(size)] = round(1000.0 * full, 3)
            entry["masked_ms"][str(size)] = round(1000.0 * masked, 3)
            entry["ratio"][str(size)] = round(masked / full, 3)
            entry["crop_fraction"][str(size)] = round(crop_fraction(mask, t), 3)
            entry["timed_calls"][str(size)] = [n_full, n_masked]
            print(
                f"  {size:4d} px  {t.name:22s} {1000 * full:10.2f} ms   masked/full {masked / full:5.2f}",
                flush=True,
            )
    ratios = [r for e in result["tools"].values() for r in e["ratio"].values()]
    result["ratio_median"] = round(statistics.median(ratios), 3)
    result["crop_fraction_median_by_size"] = {
        str(s): round(statistics.median(e["crop_fraction"][str(s)] for e in result["tools"].values()), 3)
        for s in sizes
    }
    result["ratio_median_by_size"] = {
        str(s): round(statistics.median(e["ratio"][str(s)] for e in result["tools"].values()), 3)
        for s in sizes
    }
    ref = "256" if 256 in sizes else str(sizes[len(sizes) // 2])
    cheapest = min(e["ms"][ref] for e in result["tools"].values())
    result["relative_cost_reference_size"] = int(ref)
    for e in result["tools"].values():
        e["measured_relative_cost"] = round(e["ms"][ref] / cheapest, 2)
    return result


def print_table(result: dict) -> None:
    """Human-readable summary: ms per size, masked/full ratio per size, measured vs declared cost."""
    sizes = [str(s) for s in result["sizes"]]
    head = f"{'tool':22s} {'family':6s} " + " ".join(f"{s + ' px':>10s}" for s in sizes)
    head += "  " + " ".join(f"{'r' + s:>6s}" for s in sizes) + f"  {'rel.cost':>8s} {'declared':>8s}"
    print(head)
    print("-" * len(head))
    for name, e in result["tools"].items():
        row = f"{name:22s} {e['family']:6s} " + " ".join(f"{e['ms'][s]:10.2f}" for s in sizes)
        row += "  " + " ".join(f"{e['ratio'][s]:6.2f}" for s in sizes)
        row += f"  {e['measured_relative_cost']:8.1f} {e['declared_cost']:8.1f}"
        print(row)
    print(
        f"\nmasked (25% centred square) / full-image time: median {result['ratio_median']:.3f}"
        " over all tools and sizes"
    )
    print("  by size: " + ", ".join(f"{s} px: {r:.3f}" for s, r in result["ratio_median_by_size"].items()))
    print(
        "  ideal (area of the margin-padded box the tool runs on), median by size: "
        + ", ".join(f"{s} px: {r:.3f}" for s, r in result["crop_fraction_median_by_size"].items())
    )
    print(f"  (relative cost: time at {result['relative_cost_reference_size']} px / the cheapest tool's)")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from ir_env.cli import seed_int

    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512], help="square image sizes in px")
    ap.add_argument(
        "--repeats", type=int, default=3, help="timed calls per figure (median), after one warm-up"
    )
    ap.add_argument("--json", type=Path, default=None,
                    help=f"write the figures here (default: print only; the committed figures are {DEFAULT_JSON})")
    ap.add_argument("--seed", type=seed_int, default=0, help="seed of the mild noise added to the benchmark photo")
    ap.add_argument(
        "--max-seconds", type=float, default=5.0, help="time a call once if it takes longer than this"
    )
    ap.add_argument("--tools", nargs="+", default=None, help="only these tools (default: all registered)")
    args = ap.parse_args(argv)
    from experiments.configio import check_output, script_command

    if args.json:
        check_output(args.json, "--json")
    if any(s < 16 for s in args.sizes) or args.repeats < 1 or not args.max_seconds > 0:
        print(f"error: sizes must be >= 16 px, repeats >= 1 and --max-seconds > 0, got sizes {args.sizes}, "
              f"repeats {args.repeats}, --max-seconds {args.max_seconds}", file=sys.stderr)
        return 2
    try:
        result = run(args.sizes, args.repeats, args.seed, args.max_seconds, args.tools)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print_table(result)
    if args.json:
        result["command"] = script_command("experiments.bench_tools", argv)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
