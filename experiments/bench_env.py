"""Environment speed figures: steps/s at 128 and 256 px, reset time, the share of a step spent outside
the tool function, and AsyncVectorEnv scaling with 2 workers.

Run: ``python -m experiments.bench_env --json experiments/results/bench_env.json`` (also
``spatial-ir bench --json F``). Single-threaded libraries per process (OMP, torch, OpenCV). Every tool is
called once before the clock starts (a tool's first call pays one-time costs: 119 ms for ``clahe``'s first,
under 1 ms later), so the figures are the steady state an RL run sees.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def _single_thread() -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _random_tool_action(env: Any, rng: np.random.Generator) -> dict[str, Any]:
    base = env.unwrapped
    valid = np.flatnonzero(base.state.valid)
    return {"region": int(rng.choice(valid)), "tool": int(rng.integers(base.num_tools)),
            "params": rng.uniform(-1, 1, base.num_params).astype(np.float32)}


def _warm_up(env: Any, seed: int) -> None:
    """One untimed step of every tool (region 0, neutral params), then a reset: one-time costs (imports,
    OpenCV / torch kernels, caches) are paid before anything is timed."""
    base = env.unwrapped
    env.reset(seed=seed)
    for tool in range(base.num_tools):
        env.step({"region": int(np.flatnonzero(base.state.valid)[0]), "tool": tool,
                  "params": np.zeros(base.num_params, np.float32)})


def bench_single(size: int, steps: int, seed: int, env_id: str = "SpatialIR-v1") -> dict[str, float]:
    """Steps/s, reset seconds and the non-tool share of step time for one env at ``size`` px, after
    :func:`_warm_up`."""
    import gymnasium as gym

    import ir_env  # noqa: F401

    env = gym.make(env_id, image_size=size, max_steps=1000)
    rng = np.random.default_rng(seed)
    _warm_up(env, seed + 1000)
    resets = []
    t0 = time.perf_counter()
    env.reset(seed=seed)
    resets.append(time.perf_counter() - t0)
    for i in range(4):
        t0 = time.perf_counter()
        env.reset(seed=seed + 1 + i)
        resets.append(time.perf_counter() - t0)
    step_s, tool_s = [], []
    for _ in range(steps):
        a = _random_tool_action(env, rng)
        t0 = time.perf_counter()
        _, _, _, _, info = env.step(a)
        step_s.append(time.perf_counter() - t0)
        tool_s.append(info["tool_seconds"])
    total, tools = float(np.sum(step_s)), float(np.sum(tool_s))
    return {"size": size, "steps": steps, "steps_per_s": steps / total, "reset_s": float(np.median(resets)),
            "step_ms_median": 1000 * float(np.median(step_s)), "outside_tool_share": 1.0 - tools / total}


def bench_synthesize(size: int, seed: int, repeats: int = 8) -> float:
    """Median seconds of one ``spatial-mixed`` scene synthesis at ``size`` px."""
    from ir_env.corpus import center_crop, load_named_corpus, resize_short
    from ir_env.recipes import synthesize

    img = center_crop(resize_short(load_named_corpus("builtin", "train")[0][1], size), size)
    synthesize(img, "spatial-mixed", seed)
    times = []
    for k in range(repeats):
        t0 = time.perf_counter()
        synthesize(img, "spatial-mixed", seed + k)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _make_lite(size: int):  # noqa: ANN202
    import gymnasium as gym

    return lambda: gym.make("ir_env:SpatialIR-v1", image_size=size, max_steps=1000)


def bench_vector(size: int, steps: int, workers: int, seed: int) -> float:
    """Total env steps/s of a Gymnasium AsyncVectorEnv (``workers`` > 1) or a SyncVectorEnv (1)."""
    from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

    fns = [_make_lite(size) for _ in range(workers)]
    venv = AsyncVectorEnv(fns, context="fork") if workers > 1 else SyncVectorEnv(fns)
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    base_env = _make_lite(size)().unwrapped
    t, p = base_env.num_tools, base_env.num_params

    def actions() -> dict[str, np.ndarray]:
        return {"region": np.zeros(workers, np.int64), "tool": rng.integers(t, size=workers),
                "params": rng.uniform(-1, 1, (workers, p)).astype(np.float32)}

    for tool in range(t):  # warm-up: every tool once in every worker (see _warm_up)
        venv.step({"region": np.zeros(workers, np.int64), "tool": np.full(workers, tool),
                   "params": np.zeros((workers, p), np.float32)})
    t0 = time.perf_counter()
    n = max(1, steps // workers)
    for _ in range(n):
        venv.step(actions())
    dt = time.perf_counter() - t0
    venv.close()
    return n * workers / dt


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the figures, write JSON."""
    from ir_env.cli import seed_int

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256],
                    help="image sizes (px, >= 32) of the single-env measurements (default: 128 256)")
    ap.add_argument("--steps", type=int, default=60, help="steps per measurement (default: %(default)s)")
    ap.add_argument("--seed", type=seed_int, default=0, help="seed of the resets and random actions "
                                                              "(default: %(default)s)")
    ap.add_argument("--vector-size", type=int, default=128,
                    help="image size (px, >= 32) of the AsyncVectorEnv scaling measurement (default: %(default)s)")
    ap.add_argument("--json", default=None, help="write the figures here (default: print only; the committed "
                    "figures are experiments/results/bench_env.json)")
    args = ap.parse_args(argv)
    _single_thread()
    if min(args.sizes) < 32 or args.steps < 1 or args.vector_size < 32:
        raise ValueError(f"--sizes and --vector-size must be >= 32 px and --steps >= 1, got sizes {args.sizes}, "
                         f"vector size {args.vector_size}, steps {args.steps}")
    from experiments.configio import check_output, script_command

    if args.json:
        check_output(args.json, "--json")
    rows = [bench_single(s, args.steps, args.seed) for s in args.sizes]
    for r in rows:
        r["synthesize_s"] = bench_synthesize(r["size"], args.seed)
    one = bench_vector(args.vector_size, args.steps, 1, args.seed)
    two = bench_vector(args.vector_size, args.steps, 2, args.seed)
    import platform

    out = {"command": script_command("experiments.bench_env", argv),
           "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "single": rows,
           "vector": {"size": args.vector_size, "steps_per_s_1": one, "steps_per_s_2_async": two,
                      "speedup_2_workers": two / one}}
    print(f"{'size':>5} {'steps/s':>8} {'reset s':>8} {'synth s':>8} {'step ms':>8} {'outside tool':>13}")
    for r in rows:
        print(f"{r['size']:>5} {r['steps_per_s']:8.1f} {r['reset_s']:8.3f} {r['synthesize_s']:8.3f} "
              f"{r['step_ms_median']:8.1f} {100 * r['outside_tool_share']:12.1f}%")
    print(f"AsyncVectorEnv 2 workers at {args.vector_size} px: {two:.1f} steps/s vs {one:.1f} (x{two / one:.2f})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
