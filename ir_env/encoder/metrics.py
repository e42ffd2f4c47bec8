"""Scores of per-region degradation predictions against ground truth."""

from __future__ import annotations

from typing import Any

import numpy as np

from restorers.spec import FAMILIES


def family_metrics(prob: np.ndarray, sev: np.ndarray, fam: np.ndarray, tsev: np.ndarray) -> dict[str, Any]:
    """Per-family precision / recall / F1 at 0.5 and severity MAE (regions where the family is present)."""
    from sklearn.metrics import precision_recall_fscore_support

    out: dict[str, Any] = {"regions": int(len(fam)), "families": {}}
    pred_all, true_all = np.asarray(prob) >= 0.5, np.asarray(fam).astype(bool)
    prec, rec, f1s, _ = precision_recall_fscore_support(true_all, pred_all, labels=list(range(len(FAMILIES))),
                                                        average=None, zero_division=0.0)
    for j, f in enumerate(FAMILIES):
        true = true_all[:, j]
        mae = float(np.abs(sev[true, j] - tsev[true, j]).mean()) if true.any() else float("nan")
        out["families"][f] = {"precision": float(prec[j]), "recall": float(rec[j]), "f1": float(f1s[j]),
                              "severity_mae": mae, "positives": int(true.sum())}
    out["macro_f1"] = float(np.mean(f1s))
    return out


def macro_f1_bootstrap(prob: np.ndarray, fam: np.ndarray, groups: np.ndarray | None = None, n: int = 2000,
                       seed: int = 0) -> dict[str, float]:
    """Bootstrap spread of the macro-F1 (threshold 0.5) of (N, F) probabilities against (N, F) labels.

    ``groups`` (N,): resample whole groups (e.g. the scene of each region, whose regions are correlated)
    instead of single rows. Returns ``se`` (standard deviation of the resampled macro-F1s) and the 2.5 / 97.5
    percentiles ``ci95_low`` / ``ci95_high``; ``n`` resamples drawn with ``numpy.random.default_rng(seed)``.
    """
    pred, true = np.asarray(prob) >= 0.5, np.asarray(fam).astype(bool)
    if pred.shape != true.shape or pred.ndim != 2 or len(pred) == 0:
        raise ValueError(f"prob and fam must be the same non-empty (N, F) shape, got {pred.shape} and {true.shape}")
    g = np.arange(len(pred)) if groups is None else np.asarray(groups)
    if len(g) != len(pred):
        raise ValueError(f"groups has {len(g)} entries for {len(pred)} rows")
    ids, inv = np.unique(g, return_inverse=True)

    def per_group(a: np.ndarray) -> np.ndarray:  # (N, F) bool -> (groups, F) counts
        return np.stack([np.bincount(inv, a[:, j], len(ids)) for j in range(a.shape[1])], 1)

    tp, pp, tt = per_group(pred & true), per_group(pred), per_group(true)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(ids), (n, len(ids)))
    counts = np.stack([np.bincount(row, minlength=len(ids)) for row in pick])  # (n, groups)
    f1 = 2 * (counts @ tp) / np.maximum(1, counts @ pp + counts @ tt)  # (n, F)
    m = f1.mean(1)
    return {"se": float(m.std()), "ci95_low": float(np.percentile(m, 2.5)), "ci95_high": float(np.percentile(m, 97.5)),
            "resamples": int(n), "unit": "row" if groups is None else "group"}
