"""A linear metric on :func:`ir_env.regions.features.region_features` fitted on synthetic scenes.

Fisher's linear discriminant over ground-truth regions: with ``S_w`` the pooled within-region
covariance and ``S_b`` the area-weighted covariance of region means (both over the training scenes),
solve ``S_b u = lam S_w u`` (``U`` is ``S_w``-orthonormal) and project ``x -> x @ T`` with
``T = U diag(lam ** (power / 2))``. Euclidean distances in the projected space measure differences in
units of within-region (content) variation, each discriminant direction further weighted by how well it
separates differently degraded regions (``power`` = 0.5 by default).

The shipped matrix (``metric.json`` next to this file) is fitted on the built-in corpus's *train*
split only; regenerate it with ``python -m ir_env.regions.metric`` (deterministic).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg

from ir_env.regions.features import REGION_FEATURE_NAMES, region_features

#: The shipped metric file.
METRIC_PATH = Path(__file__).with_name("metric.json")


def fit_metric(scenes: Iterable[Any], window: int = 9, subsample: int = 4, ridge: float = 1e-3,
               power: float = 0.5) -> np.ndarray:
    """Fisher-discriminant projection ``T`` ``(C, C)`` from scenes with ``degraded`` and ``masks``.

    Args:
        scenes: objects with ``degraded`` (HxWx3 float in [0, 1]) and ``masks`` ((K, H, W) bool partition).
        window: statistics window in pixels (as in :func:`region_features`).
        subsample: pixel stride used for the within-region covariance (>= 1).
        ridge: added to ``S_w``'s diagonal, relative to its mean variance, for a stable inverse (>= 0).
        power: direction ``i`` is scaled by ``lam_i ** (power / 2)``: 0 = plain whitening by the
            within-region covariance (Mahalanobis), 1 = Fisher weighting; 0.5 (default) in between
            scored best on held-out train-split scenes.
    """
    c = len(REGION_FEATURE_NAMES)
    sw = np.zeros((c, c))
    sb = np.zeros((c, c))
    n_w = n_b = 0.0
    for sc in scenes:
        z = region_features(np.asarray(sc.degraded, dtype=np.float32), window).astype(np.float64)
        masks = np.asarray(sc.masks, dtype=bool)
        mu = z.reshape(-1, c).mean(axis=0)
        for m in masks:
            if not m.any():
                continue
            x = z[m]
            mean = x.mean(axis=0)
            d = mean - mu
            sb += np.outer(d, d) * len(x)
            n_b += len(x)
            xs = z[::subsample, ::subsample][m[::subsample, ::subsample]] - mean
            sw += xs.T @ xs
            n_w += len(xs)
    if n_w == 0 or n_b == 0:
        raise ValueError("fit_metric needs at least one scene with a non-empty mask")
    sw /= n_w
    sb /= n_b
    sw += ridge * np.trace(sw) / c * np.eye(c)
    lam, u = scipy.linalg.eigh(sb, sw)
    order = np.argsort(lam)[::-1]
    return (u[:, order] * np.maximum(lam[order], 0.0) ** (0.5 * power)).astype(np.float32)


def save_metric(path: str | Path, matrix: np.ndarray, provenance: dict[str, Any]) -> None:
    """Write ``matrix`` with the feature names and a provenance dict as JSON."""
    rows = ",\n  ".join(json.dumps([round(float(v), 6) for v in row]) for row in np.asarray(matrix))
    text = (f'{{"features": {json.dumps(list(REGION_FEATURE_NAMES))},\n'
            f' "provenance": {json.dumps(provenance)},\n'
            f' "matrix": [\n  {rows}\n ]}}\n')
    json.loads(text)  # well-formed by construction; fail loudly otherwise
    Path(path).write_text(text)


@lru_cache(maxsize=4)
def _load(path: str, stamp: tuple[int, ...]) -> np.ndarray:
    # keyed by the file's modification time and size too: a metric re-fitted in the same session is read again
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"region metric {p} is not a metric JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"region metric {p} is not a metric JSON file (no mapping)")
    if tuple(data.get("features", ())) != REGION_FEATURE_NAMES:
        raise ValueError(f"region metric {p} was fitted for features {data.get('features')}, expected "
                         f"{list(REGION_FEATURE_NAMES)}; regenerate it with python -m ir_env.regions.metric")
    m = np.asarray(data["matrix"], dtype=np.float32)
    c = len(REGION_FEATURE_NAMES)
    if m.shape != (c, c) or not np.all(np.isfinite(m)):
        raise ValueError(f"region metric {p} must hold a finite {c}x{c} matrix, got shape {m.shape}")
    m.setflags(write=False)  # shared by every proposer reading this file: never modified in place
    return m


def load_metric(path: str | Path | None = None) -> np.ndarray:
    """The projection matrix ``(C, C)`` float32, read-only (shared by every proposer that reads the file; copy it to
    change it). The file is read again when it changes. ``FileNotFoundError`` / ``ValueError`` name the file."""
    p = Path(path) if path is not None else METRIC_PATH
    if not p.is_file():
        raise FileNotFoundError(f"region metric file not found: {p} "
                                "(regenerate it with python -m ir_env.regions.metric)")
    st = p.stat()
    return _load(str(p.resolve()), (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino))


def training_scenes(images: int | None = None, crops: int = 16, size: int = 128, seed: int = 0,
                    recipe: str = "spatial-mixed") -> list[Any]:
    """Scenes from the built-in *train* split: ``crops`` random ``size`` px crops per photo, one scene each
    (scene seed and crop position derived from ``seed``, the photo index and the crop index)."""
    from ir_env.corpus import load_corpus, random_crop
    from ir_env.recipes import synthesize

    photos = load_corpus("builtin", "train")[:images]
    out = []
    for i, photo in enumerate(photos):
        rng = np.random.default_rng([seed, i])
        for j in range(crops):
            out.append(synthesize(random_crop(photo, size, rng), recipe, seed=seed * 100_000 + i * 1000 + j))
    return out


def main(argv: list[str] | None = None) -> int:
    """Fit the metric on built-in train scenes and write it (default: the shipped ``metric.json``)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=METRIC_PATH, help="output JSON (default: the shipped file)")
    ap.add_argument("--crops", type=int, default=16, help="crops per train photo")
    ap.add_argument("--size", type=int, default=128, help="crop side in px")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe", default="spatial-mixed")
    args = ap.parse_args(argv)
    scenes = training_scenes(crops=args.crops, size=args.size, seed=args.seed, recipe=args.recipe)
    matrix = fit_metric(scenes)
    save_metric(args.out, matrix, {"corpus": "builtin", "split": "train", "recipe": args.recipe,
                                   "crops_per_image": args.crops, "size": args.size, "seed": args.seed,
                                   "scenes": len(scenes), "method": "fisher-lda", "power": 0.5, "window": 9})
    print(f"wrote {args.out} ({len(scenes)} scenes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
