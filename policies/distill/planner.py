"""``DistilledPlanner`` (``make_planner("distilled")``): the distilled student as a planner.

The student is a :class:`~policies.ppo.policy.HybridSetPolicy` saved as an SB3 ``PPO`` zip with the
``config.yml`` that ``experiments/train_distill.py`` writes (env settings, tools, and a ``distill`` block
with ``tau`` and ``stop_margin``). Like the ``ppo`` planner it rebuilds the training env from that config
to observe the image, and decides with :func:`policies.distill.student.decide`: the (region, tool) with
the largest predicted gain and its predicted parameters, or STOP. No IQA call is made to decide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from policies.ppo.planner import PPOPlanner

_MODELS = Path(__file__).resolve().parent / "models"
#: The shipped default student: the learned encoder's 12 family probabilities and severities per region
#: (experiments/configs/distill_spatial_learned_probs.yaml, seed 2).
DEFAULT_MODEL = _MODELS / "distilled_learned" / "model.zip"
#: The previous default, on the hand-made 37-number region embedding (experiments/configs/distill_spatial.yaml);
#: still shipped: ``make_planner("distilled", path=HANDCRAFTED_MODEL)``, and the PPO sample-efficiency curve
#: starts from it.
HANDCRAFTED_MODEL = _MODELS / "distilled_spatial" / "model.zip"


class DistilledPlanner(PPOPlanner):
    """A distilled student as a planner.

    Args:
        path: the student's ``model.zip`` (``config.yml`` next to it) or its run folder; default: the shipped
            ``policies/distill/models/distilled_learned/model.zip`` (:data:`DEFAULT_MODEL`).
        stop_margin: STOP when no predicted gain reaches this many dB (default: the trained value from
            ``config.yml``).
        Other arguments as :class:`~policies.ppo.planner.PPOPlanner` (the model's ``config.yml`` decides the
        regions, embedding, tools and step budget).
    """

    name = "distilled"

    def __init__(self, path: str | Path | None = None, stop_margin: float | None = None, **kwargs: Any) -> None:
        if path is None and kwargs.get("mode") == "global":
            raise ValueError("no global distilled student ships (the shipped one plans regions): train one on a global "
                             "dataset and pass path=..., or use mode='spatial'")
        model_path = Path(path) if path is not None else DEFAULT_MODEL
        if model_path.is_dir() and (model_path / "model.zip").is_file():  # a run folder: its model
            model_path = model_path / "model.zip"
        if not model_path.is_file():
            raise FileNotFoundError(
                f"no distilled student at {model_path}; record trajectories and train one with "
                "`python -m experiments.record_trajectories --config experiments/configs/record_greedy_learned.yaml` "
                "and `python -m experiments.train_distill --config "
                "experiments/configs/distill_spatial_learned_probs.yaml`, "
                "then pass path=runs/distill/<name>/model.zip")
        super().__init__(path=model_path, **kwargs)
        info = self.config.get("distill")
        if not isinstance(info, dict) or "tau" not in info:
            raise ValueError(f"{model_path.parent / 'config.yml'} has no 'distill' block (tau, stop_margin): "
                             "it was not written by experiments/train_distill.py")
        self.tau = float(info["tau"])
        self.stop_margin = float(info.get("stop_margin", 0.0) if stop_margin is None else stop_margin)
        if not np.isfinite(self.stop_margin):
            raise ValueError(f"stop_margin must be a finite number of dB, got {stop_margin}")

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        from policies.distill.student import decide

        obs = self.normalise(obs)
        return decide(self.model.policy, {k: np.asarray(v)[None] for k, v in obs.items()}, self.tau,
                      self.stop_margin)[0]
