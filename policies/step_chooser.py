"""A learned per-step choice for ``perceive``: which of its table's severity bins to apply, or to skip the step.

The rule table maps a perceived (family, severity) to one entry, fitted on crops degraded by that family alone. On
mixed scenes the entry that restores a region best depends on the region itself (for haze: how far away it is,
i.e. how much haze it holds; for low light: how dark it is after the other steps): with the true labels on the true
regions, picking the best of the family's five entries per step with the clean image gains +1.3 dB (test photos)
and +2.0 dB (holdout photos) over the table (``experiments/results/gap/``). A :class:`StepChooser` predicts, from
the region as it is at that step, the PSNR change of every option (each bin's entry, and skipping) relative to
the entry the table would take, and the planner takes the option predicted best.

Per family it is a ridge regression on standardised features: the encoder's region embedding (76 numbers:
family probabilities, severities, pooled features; :meth:`ir_env.encoder.learned.LearnedEmbedder.embed`) and
:func:`region_stats` (15 numbers). Hand-written on purpose: a linear model per family stores in a few kB of JSON,
and scikit-learn is used only to fit it (``experiments/fit_step_chooser.py``).

Not shipped: the chooser fitted on the train photos in stop 27 gained there and lost on the test and holdout photos
(-0.22 ± 0.13 dB pooled; ``experiments/results/step_chooser/README.md``). ``perceive:choose=PATH`` runs one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Format tag of the chooser JSON.
STEP_CHOOSER_FORMAT = "spatial-ir-step-chooser/1"
#: Names of :func:`region_stats`' numbers.
STAT_NAMES: tuple[str, ...] = ("lum_mean", "lum_std", "lum_p1", "lum_p50", "lum_p99", "dark_p1", "dark_p5",
                               "dark_p50", "r_std", "g_std", "b_std", "area", "sat_mean", "grad_mean", "lum_p10")


def region_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(15,) float64 statistics of ``image`` (float32 HxWx3 in [0, 1]) inside ``mask`` (HxW bool, not empty):
    luminance mean / std / percentiles, dark channel (per-pixel min over RGB) percentiles, per-channel std,
    area fraction, mean saturation (max - min over RGB) and mean gradient magnitude; order :data:`STAT_NAMES`."""
    px = image[mask].astype(np.float64)
    if px.size == 0:
        raise ValueError("region_stats needs a non-empty mask")
    lum = px.mean(axis=1)
    dark = px.min(axis=1)
    sat = px.max(axis=1) - dark
    grey = image.mean(axis=2, dtype=np.float64)
    gy, gx = np.gradient(grey)
    grad = np.hypot(gx, gy)[mask]
    return np.r_[lum.mean(), lum.std(), np.percentile(lum, [1, 50, 99]), np.percentile(dark, [1, 5, 50]),
                 px.std(axis=0), mask.mean(), sat.mean(), grad.mean(), np.percentile(lum, 10)]


def step_features(embedding_row: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The chooser's input for one region: its encoder embedding row followed by :func:`region_stats`."""
    return np.r_[np.asarray(embedding_row, np.float64), region_stats(image, mask)]


@dataclass
class FamilyModel:
    """One family's ridge model: ``predict(x) = ((x - mean) / scale) @ coef.T + intercept``, one output per option
    (the table's bins, then skip), in dB of PSNR relative to the table's own entry."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted PSNR change (dB) of every option for feature rows ``x`` ((n, D) or (D,))."""
        z = (np.atleast_2d(np.asarray(x, np.float64)) - self.mean) / self.scale
        return z @ self.coef.T + self.intercept


@dataclass
class StepChooser:
    """Per-family :class:`FamilyModel` over the options (bins 0 .. ``bins`` - 1 of the rule table, then skip).

    Families without a model keep the table's choice. ``encoder_fingerprint``: the
    :func:`~ir_env.encoder.learned.weights_fingerprint` of the encoder whose embedding the models read (a chooser is
    refused under other weights by :meth:`check_encoder`)."""

    bins: int
    models: dict[str, FamilyModel]
    encoder_fingerprint: str
    info: dict[str, Any]

    def choose(self, family: str, features: np.ndarray, table_bin: int) -> int | None:
        """The option predicted best for a step of ``family`` whose table bin is ``table_bin``: a bin index, or
        None to skip the step. Without a model for the family: ``table_bin``."""
        m = self.models.get(family)
        if m is None:
            return table_bin
        pred = m.predict(features)[0]
        best = int(np.argmax(pred))
        return None if best == self.bins else best

    def check_encoder(self, fingerprint: str) -> None:
        """``ValueError`` when the chooser was fitted on another encoder's embedding than ``fingerprint``'s."""
        if fingerprint != self.encoder_fingerprint:
            raise ValueError(f"this step chooser was fitted on the embedding of encoder weights "
                             f"{self.encoder_fingerprint[:12]}, not {fingerprint[:12]}: re-fit it "
                             "(experiments/fit_step_chooser.py)")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (format :data:`STEP_CHOOSER_FORMAT`)."""
        return {"format": STEP_CHOOSER_FORMAT, "bins": self.bins, "encoder_fingerprint": self.encoder_fingerprint,
                "info": self.info,
                "models": {f: {k: np.asarray(getattr(m, k)).tolist() for k in ("mean", "scale", "coef", "intercept")}
                           for f, m in self.models.items()}}

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path``."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_json(), indent=1))
        return p

    @classmethod
    def load(cls, path: str | Path) -> StepChooser:
        """Read a chooser JSON; ``ValueError`` naming the file when it is not one or its shapes disagree."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{p}: not a readable step-chooser JSON ({e})") from e
        if not isinstance(d, dict) or d.get("format") != STEP_CHOOSER_FORMAT:
            raise ValueError(f"{p}: not a step chooser (format {STEP_CHOOSER_FORMAT!r} expected)")
        bins = int(d["bins"])
        models = {}
        for f, m in d["models"].items():
            fm = FamilyModel(*(np.asarray(m[k], np.float64) for k in ("mean", "scale", "coef", "intercept")))
            dim = fm.mean.shape[0]
            if fm.scale.shape != (dim,) or fm.coef.shape != (bins + 1, dim) or fm.intercept.shape != (bins + 1,):
                raise ValueError(f"{p}: family {f!r} has inconsistent shapes (bins {bins}, features {dim})")
            models[f] = fm
        return cls(bins=bins, models=models, encoder_fingerprint=str(d["encoder_fingerprint"]), info=d.get("info", {}))
