"""Pick between trained encoder candidates on one common validation set of TRAIN photos.

Each training run calibrates its thresholds and picks its epoch on its own validation scenes, so two runs'
validation scores come from different scenes and cannot rank them. This script makes ``--scenes`` new
validation scenes (the first candidate's data config, seed ``--seed``; never the test split) and scores every
candidate on them with its own calibrated thresholds (probability 0.5): region-level macro-F1 and per-family
F1, as ``experiments/train_encoder.py`` reports them.

    python -m experiments.select_encoder --candidates runs/encoder_v8 runs/encoder_v8_seed1 \\
        --scenes 1500 --seed 7 --json experiments/results/encoder_variants/selection.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from experiments.train_encoder import make_dataset, predict_regions  # noqa: E402
from ir_env.encoder.learned import EncoderWeightsError, load_encoder  # noqa: E402
from ir_env.encoder.metrics import family_metrics  # noqa: E402


def select(candidates: list[str], scenes: int = 1500, seed: int = 7) -> dict[str, Any]:
    """Macro-F1 of every candidate directory (``encoder.pt`` + ``encoder.json``) on ``scenes`` validation
    scenes of the first candidate's data config with seed ``seed``; ``best``: the highest."""
    if not candidates:
        raise ValueError("no candidates given")
    import numbers

    if isinstance(scenes, bool) or not isinstance(scenes, numbers.Integral) or scenes < 1:
        raise ValueError(f"--scenes must be a whole number >= 1 (validation scenes), got {scenes!r}")
    encs = {c: load_encoder(c, fuse=False) for c in candidates}
    if not isinstance(encs[candidates[0]].info.get("config"), dict):
        raise ValueError(f"{candidates[0]}/encoder.json holds no training config (written by train_encoder)")
    cfg = copy.deepcopy(encs[candidates[0]].info["config"])
    cfg["seed"] = int(seed)
    cfg["data"]["workers"] = 1
    data = make_dataset(cfg, int(scenes), 2, "common validation scenes")
    out: dict[str, Any] = {"scenes": int(scenes), "seed": int(seed), "split": cfg["data"]["split"],
                           "corpus": cfg["data"]["corpus"], "candidates": {}}
    for c, enc in encs.items():
        m = family_metrics(*predict_regions(copy.deepcopy(enc.net), data))
        out["candidates"][c] = {"macro_f1": m["macro_f1"],
                                "f1": {f: v["f1"] for f, v in m["families"].items()}}
    out["best"] = max(out["candidates"], key=lambda c: out["candidates"][c]["macro_f1"])
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.select_encoder`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidates", nargs="+", required=True,
                    help="encoder weight directories (required; the first one's data config makes the scenes)")
    ap.add_argument("--scenes", type=int, default=1500,
                    help="common validation scenes, >= 1 (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the validation scenes, >= 0 (default: %(default)s)")
    ap.add_argument("--json", help="write the scores here (default: not written)")
    a = ap.parse_args(argv)
    from experiments.configio import check_output

    torch.set_num_threads(1)
    try:
        if a.scenes < 1:
            raise ValueError(f"--scenes must be >= 1 (validation scenes), got {a.scenes}")
        if a.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {a.seed}")
        check_output(a.json, "--json")  # before any scene is made: the scores are not lost at the end
        res = select(a.candidates, a.scenes, a.seed)
    except (EncoderWeightsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for c, r in res["candidates"].items():
        fams = ", ".join(f"{f} {v:.3f}" for f, v in r["f1"].items())
        print(f"{c}: macro-F1 {r['macro_f1']:.3f} ({fams})")
    print(f"best: {res['best']}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
