"""PPO planners: a hybrid-action set policy for stable-baselines3 PPO, the MaskablePPO comparison, training
(``spatial-ir train``) and the ``ppo`` / ``maskable_ppo`` planners that load a trained model.

Names are imported lazily so registering the planners does not import stable-baselines3.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "HybridActionDistribution": "policies.ppo.distribution",
    "HybridSetPolicy": "policies.ppo.policy",
    "SetEncoder": "policies.ppo.policy",
    "hybrid_policy_kwargs": "policies.ppo.policy",
    "MaskablePPOPlanner": "policies.ppo.planner",
    "PPOPlanner": "policies.ppo.planner",
    "make_hybrid_ppo": "policies.ppo.train",
    "make_maskable_ppo": "policies.ppo.train",
    "train_from_config": "policies.ppo.train",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'policies.ppo' has no attribute {name!r}")
