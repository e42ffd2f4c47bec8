"""PPO planners: a hybrid-action set policy for stable-baselines3 PPO, the MaskablePPO comparison, training
(``spatial-ir train``) and the ``ppo`` / ``maskable_ppo`` planners that load a trained model."""

from policies.ppo.distribution import HybridActionDistribution
from policies.ppo.policy import HybridSetPolicy, SetEncoder, hybrid_policy_kwargs

__all__ = ["HybridActionDistribution", "HybridSetPolicy", "SetEncoder", "hybrid_policy_kwargs"]
