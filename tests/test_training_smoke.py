"""A short PPO run on the MultiDiscrete wrapper trains without error and writes TensorBoard logs."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

import ir_env  # noqa: F401  (registers the envs)
from ir_env.wrappers import MultiDiscreteAction


def test_ppo_2000_steps_multidiscrete_logs_to_tensorboard(tmp_path: Path) -> None:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor

    torch.set_num_threads(1)
    env = Monitor(MultiDiscreteAction(gym.make("SpatialIR-Lite-v1", image_size=48, max_steps=3), bins=3),
                  info_keywords=("psnr_gain", "is_success"))
    model = PPO("MultiInputPolicy", env, n_steps=250, batch_size=50, n_epochs=2, seed=0, verbose=0,
                tensorboard_log=str(tmp_path), policy_kwargs={"net_arch": [32, 32]})
    model.learn(total_timesteps=2000)
    assert model.num_timesteps >= 2000
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    episodes = list(model.ep_info_buffer)
    assert len(episodes) >= 20
    assert all(np.isfinite(ep["r"]) and np.isfinite(ep["psnr_gain"]) for ep in episodes)
    assert all(ep["l"] <= 3 for ep in episodes)
