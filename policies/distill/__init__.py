"""Trajectory distillation: record a search teacher's decisions, train a fast student, plan with it.

- :mod:`policies.distill.dataset`: the on-disk dataset (``.npz`` shards + ``meta.json``, format documented
  there) and its reader;
- :mod:`policies.distill.record`: labelling states with the teacher (``greedy`` / ``dfs``), one episode's rows;
- :mod:`policies.distill.student`: training the PPO planner's network to predict every choice's gain and
  best parameters (+ agreement metrics);
- :mod:`policies.distill.planner`: ``DistilledPlanner`` = ``make_planner("distilled", path=...)``.

Scripts: ``experiments/record_trajectories.py`` and ``experiments/train_distill.py``.
"""

from policies.distill.dataset import FIELDS, TrajectoryData, read_dataset

__all__ = ["FIELDS", "TrajectoryData", "read_dataset"]
