"""The judge: an IQA metric that scores candidate images for search planners, counting its calls."""

from __future__ import annotations

import numpy as np

from ir_env.quality import get_metric

#: Judged gain a search step must exceed when the planner is given no ``threshold`` (metric units). The
#: learned ``npsnr`` judge ranks a pair of candidates right about 80% of the time, so a search over hundreds
#: of candidates finds its errors unless a step must gain clearly. 1.0 dB was picked on TRAIN-split scenes
#: (``python -m experiments.tune_judge_threshold``, experiments/results/npsnr/threshold.json).
DEFAULT_THRESHOLDS: dict[str, float] = {"npsnr": 1.0}


class Judge:
    """Scores images with one metric (``ir_env.quality``) and reports sign-corrected gains.

    A no-reference metric (``niqe``, ``piqe``, ``brisque``, ...) is the deployment judge: no clean image.
    A full-reference metric (``psnr``, ``ssim``) needs the clean image and makes the planner an oracle
    (an upper bound); its :attr:`label` is ``"oracle:<metric>"``. :attr:`calls` counts evaluations.
    """

    def __init__(self, metric: str, device: str = "cpu") -> None:
        self.metric = metric
        self._m = get_metric(metric, device=device)
        self.needs_reference = bool(self._m.info.needs_reference)
        self.higher_better = bool(self._m.info.higher_better)
        self.calls = 0

    @property
    def label(self) -> str:
        """``metric`` for a no-reference judge, ``oracle:metric`` for a full-reference one."""
        return f"oracle:{self.metric}" if self.needs_reference else self.metric

    @property
    def default_threshold(self) -> float:
        """The minimum gain a search keeps when no threshold is given (:data:`DEFAULT_THRESHOLDS`, else 0)."""
        return DEFAULT_THRESHOLDS.get(self.metric, 0.0)

    def reset_count(self) -> None:
        """Set :attr:`calls` to 0."""
        self.calls = 0

    def score(self, image: np.ndarray, reference: np.ndarray | None = None) -> float:
        """The metric's raw score of ``image`` (its own units and direction)."""
        self.calls += 1
        return float(self._m.score(image, reference=reference if self.needs_reference else None))

    def gain(self, before: float, after: float) -> float:
        """Improvement from ``before`` to ``after``: positive when quality rose, whatever the direction."""
        return (after - before) if self.higher_better else (before - after)
