"""Experiment scripts: training, evaluation and benchmark commands, each run as ``python -m experiments.<name>``
with a committed config under ``experiments/configs/``; results go to ``experiments/results/``."""
