"""Scores of per-region degradation predictions against ground truth."""

from __future__ import annotations

from typing import Any

import numpy as np

from restorers.spec import FAMILIES


def family_metrics(prob: np.ndarray, sev: np.ndarray, fam: np.ndarray, tsev: np.ndarray) -> dict[str, Any]:
    """Per-family precision / recall / F1 at 0.5 and severity MAE (regions where the family is present)."""
    out: dict[str, Any] = {"regions": int(len(fam)), "families": {}}
    f1s = []
    for j, f in enumerate(FAMILIES):
        pred, true = prob[:, j] >= 0.5, fam[:, j].astype(bool)
        tp, fp, fn = int((pred & true).sum()), int((pred & ~true).sum()), int((~pred & true).sum())
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        mae = float(np.abs(sev[true, j] - tsev[true, j]).mean()) if true.any() else float("nan")
        out["families"][f] = {"precision": prec, "recall": rec, "f1": f1, "severity_mae": mae,
                              "positives": int(true.sum())}
        f1s.append(f1)
    out["macro_f1"] = float(np.mean(f1s))
    return out
