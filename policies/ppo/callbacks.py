"""Training callbacks: restoration statistics for TensorBoard, evaluation on a fixed set of test episodes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback


class RestorationStatsCallback(BaseCallback):
    """Logs, once per rollout, what the env's ``info`` dicts say about the episodes that ended in it.

    Scalars (TensorBoard tags): ``restoration/psnr_gain`` (dB, final minus input PSNR),
    ``restoration/tool_calls`` (tools applied per episode), ``restoration/stop_rate`` (share of episodes
    ended by STOP rather than by the step budget), ``restoration/episodes``, and ``tools/<name>`` (share of
    all steps of the rollout that chose that tool; ``tools/STOP`` included). Every tool the env offers (and STOP)
    is recorded in every rollout, 0 when unused, so a tool that stops being chosen drops to 0 in the curves.
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.names: list[str] = []
        self._reset_stats()

    def _on_training_start(self) -> None:
        try:  # the env's tools (any wrapper / vector env reaches them); unknown envs: the tools seen so far
            self.names = [*map(str, self.training_env.get_attr("tool_names", indices=[0])[0]), "STOP"]
        except (AttributeError, TypeError, ValueError, IndexError):
            self.names = []

    def _reset_stats(self) -> None:
        self.gains: list[float] = []
        self.calls: list[float] = []
        self.stops: list[float] = []
        self.tools: Counter[str] = Counter()
        self.steps = 0

    def _on_step(self) -> bool:
        infos: list[dict[str, Any]] = self.locals.get("infos", [])
        dones = np.asarray(self.locals.get("dones", np.zeros(len(infos), bool)))
        for info, done in zip(infos, dones, strict=False):
            tool = info.get("tool")
            if tool is not None:
                self.tools[str(tool)] += 1
                self.steps += 1
            if done and "psnr_gain" in info:
                self.gains.append(float(info["psnr_gain"]))
                self.calls.append(float(info.get("tool_calls", np.nan)))
                self.stops.append(float(tool == "STOP"))
        return True

    def _on_rollout_end(self) -> None:
        if self.gains:
            self.logger.record("restoration/psnr_gain", float(np.mean(self.gains)))
            self.logger.record("restoration/tool_calls", float(np.nanmean(self.calls)))
            self.logger.record("restoration/stop_rate", float(np.mean(self.stops)))
            self.logger.record("restoration/episodes", len(self.gains))
        if self.steps:
            for name in sorted(set(self.names) | set(self.tools)):
                self.logger.record(f"tools/{name}", self.tools.get(name, 0) / self.steps)
        counts = getattr(self.model.policy, "param_counts", None)
        log_std = getattr(self.model.policy, "log_std", None)
        if counts is not None and log_std is not None and log_std.ndim == 2:
            # SB3's train/std averages the whole (tools x params) table, whose slots beyond a tool's own
            # parameters never train: this is the mean std of the parameters the tools have
            std = log_std.detach().exp().cpu().numpy()
            own = np.arange(std.shape[1])[None, :] < np.asarray(counts)[:, None]
            if own.any():
                self.logger.record("restoration/param_std", float(std[own].mean()))
        self._reset_stats()


class _FixedEpisodes:
    """Mixin for SB3 eval callbacks: reseed the eval env before every evaluation, so each evaluation sees
    the same test scenes and ``best_model.zip`` is chosen on a fixed set (not on lucky draws)."""

    eval_seed: int = 0
    eval_freq: int
    n_calls: int
    eval_env: Any

    n_eval_episodes: int

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            self.eval_env.seed(self.eval_seed)
            self._gains: list[tuple[float, float]] = []
        return super()._on_step()  # type: ignore[misc]

    def _log_success_callback(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        """SB3's success-rate hook, plus ``eval/psnr_gain`` (dB) and ``eval/tool_calls`` (means over the
        evaluation's episodes), recorded before the evaluation's log line is written."""
        super()._log_success_callback(locals_, globals_)  # type: ignore[misc]
        info = locals_["info"]
        gains = getattr(self, "_gains", None)
        if locals_["done"] and "psnr_gain" in info and gains is not None and len(gains) < self.n_eval_episodes:
            gains.append((float(info["psnr_gain"]), float(info.get("tool_calls", np.nan))))
            if len(gains) == self.n_eval_episodes:
                self.logger.record("eval/psnr_gain", float(np.mean([g for g, _ in gains])))
                self.logger.record("eval/tool_calls", float(np.nanmean([c for _, c in gains])))


class SeededEvalCallback(_FixedEpisodes, EvalCallback):
    """:class:`~stable_baselines3.common.callbacks.EvalCallback` on fixed episodes (``eval_seed``); also logs
    ``eval/psnr_gain`` and ``eval/tool_calls``."""

    def __init__(self, *args: Any, eval_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eval_seed = int(eval_seed)


class SeededMaskableEvalCallback(_FixedEpisodes, MaskableEvalCallback):
    """sb3-contrib's ``MaskableEvalCallback`` on fixed episodes (``eval_seed``)."""

    def __init__(self, *args: Any, eval_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eval_seed = int(eval_seed)
