"""The hybrid (discrete choice + continuous parameters) action distribution of the PPO planner.

An action is the vector ``[j, θ1..θP]`` of :class:`ir_env.wrappers.BoxAction`: ``j`` is the joint index
``k * T + t`` (tool ``t`` on region ``k``) or ``K * T`` (STOP), and ``θ`` holds the tool's parameters
normalised to [-1, 1] (tool ``t`` reads its first ``p_t`` entries).

The distribution factorises as ``π(j, θ) = Cat(j) · N(θ[:p_t] | μ_j, σ_t)``:

- ``Cat``: softmax over the ``K*T + 1`` joint logits, padded regions masked out;
- ``N``: a diagonal Gaussian on the chosen tool's own ``p_t`` dimensions only (mean per region and tool,
  state-independent log-std per tool and parameter); STOP has no parameters.

So ``log π = log Cat(j) + Σ_{d < p_t} log N(θ_d | μ_{j,d}, σ_{t,d})`` and the exact entropy is
``H(Cat) + Σ_j Cat(j) · H(N_j)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch as th
from torch.nn import functional as F

#: Logit given to masked (padded-region) choices: exp() of it is exactly 0 in float32, and unlike -inf it
#: keeps 0 * logit finite in the entropy.
MASKED_LOGIT = -1e8

_HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class HybridActionDistribution:
    """Categorical over (region, tool) pairs + STOP, Gaussian over the chosen tool's parameters.

    Args:
        param_counts: ``p_t`` for each of the ``T`` tools (how many leading parameters tool ``t`` reads).
        num_regions: ``K``, region slots.
        num_params: ``P``, the width of the parameter vector (default ``max(param_counts)``).

    Call :meth:`proba_distribution` with the network outputs, then :meth:`log_prob`, :meth:`entropy`,
    :meth:`sample`, :meth:`mode` or :meth:`get_actions` (the stable-baselines3 method names).
    """

    def __init__(self, param_counts: Sequence[int], num_regions: int, num_params: int | None = None) -> None:
        counts = [int(p) for p in param_counts]
        if not counts:
            raise ValueError("param_counts must list at least one tool")
        if any(p < 0 for p in counts):
            raise ValueError(f"param_counts must be >= 0, got {counts}")
        if int(num_regions) < 1:
            raise ValueError(f"num_regions must be >= 1, got {num_regions}")
        self.param_counts = counts
        self.num_tools = len(counts)
        self.num_regions = int(num_regions)
        self.num_params = int(num_params) if num_params is not None else max(counts)
        if self.num_params < max(counts):
            raise ValueError(f"num_params={self.num_params} < the largest param count {max(counts)}")
        self.num_joint = self.num_regions * self.num_tools + 1
        self.stop_index = self.num_joint - 1
        # (T, P) mask: 1 on tool t's own first p_t dimensions
        self._param_mask = (th.arange(self.num_params)[None, :] < th.tensor(counts)[:, None]).float()
        self.log_probs_joint: th.Tensor | None = None
        self.means: th.Tensor | None = None
        self.log_std: th.Tensor | None = None

    # ------------------------------------------------------------------ building
    def proba_distribution(self, tool_logits: th.Tensor, stop_logits: th.Tensor, means: th.Tensor,
                           log_std: th.Tensor, valid: th.Tensor) -> HybridActionDistribution:
        """Set the distribution's parameters; returns ``self``.

        Args:
            tool_logits: (B, K, T) logits of tool ``t`` on region ``k``.
            stop_logits: (B,) or (B, 1) logit of STOP.
            means: (B, K, T, P) Gaussian means of the parameters (normalised units, [-1, 1] range).
            log_std: (T, P) log standard deviations (natural log, normalised units).
            valid: (B, K) 1 for a real region, 0 for a padded slot (its choices get probability 0).
        """
        b, k, t = tool_logits.shape
        if (k, t) != (self.num_regions, self.num_tools):
            raise ValueError(f"tool_logits must be (B, {self.num_regions}, {self.num_tools}), "
                             f"got {tuple(tool_logits.shape)}")
        if means.shape != (b, k, t, self.num_params):
            raise ValueError(f"means must be {(b, k, t, self.num_params)}, got {tuple(means.shape)}")
        if log_std.shape != (t, self.num_params):
            raise ValueError(f"log_std must be {(t, self.num_params)}, got {tuple(log_std.shape)}")
        ok = (valid.reshape(b, k, 1) > 0.5).expand(b, k, t)
        logits = tool_logits.masked_fill(~ok, MASKED_LOGIT).reshape(b, k * t)
        logits = th.cat([logits, stop_logits.reshape(b, 1)], dim=1)
        self.log_probs_joint = F.log_softmax(logits, dim=1)
        self.means = means.reshape(b, k * t, self.num_params)
        self.log_std = log_std
        self._param_mask = self._param_mask.to(device=means.device, dtype=means.dtype)
        return self

    def _require(self) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        if self.log_probs_joint is None or self.means is None or self.log_std is None:
            raise RuntimeError("call proba_distribution() first")
        return self.log_probs_joint, self.means, self.log_std

    # ------------------------------------------------------------------ helpers
    def joint_probs(self) -> th.Tensor:
        """(B, K*T + 1) probabilities of the joint choices (STOP last)."""
        return self._require()[0].exp()

    def tool_of_joint(self, joint: th.Tensor) -> th.Tensor:
        """Tool index of each joint index (STOP maps to tool 0; callers mask it out)."""
        return th.remainder(joint.clamp(max=self.stop_index - 1), self.num_tools)

    def gaussian_entropy_per_tool(self) -> th.Tensor:
        """(T,) entropy (nats) of each tool's Gaussian on its own ``p_t`` dimensions."""
        log_std = self._require()[2]
        return ((_HALF_LOG_2PI_E + log_std) * self._param_mask).sum(dim=1)

    def _chosen(self, joint: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """Mean (B, P), log-std (B, P), dimension mask (B, P) and is-a-tool flag (B,) for joint indices."""
        _, means, log_std = self._require()
        is_tool = joint < self.stop_index
        idx = joint.clamp(max=self.stop_index - 1)
        mu = means.gather(1, idx.view(-1, 1, 1).expand(-1, 1, self.num_params)).squeeze(1)
        tool = self.tool_of_joint(joint)
        dims = self._param_mask[tool] * is_tool.to(mu.dtype).unsqueeze(1)
        return mu, log_std[tool], dims, is_tool

    def joint_from_actions(self, actions: th.Tensor) -> th.Tensor:
        """Joint indices (B,) read from actions (B, 1 + P) by rounding ``a[:, 0]`` and clipping."""
        return th.round(actions[:, 0]).clamp(0, self.stop_index).long()

    # ------------------------------------------------------------------ SB3 distribution API
    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """(B,) log-probability of actions (B, 1 + P): categorical term + the chosen tool's own Gaussian
        dimensions (other entries of θ are ignored)."""
        log_probs_joint = self._require()[0]
        actions = actions.reshape(actions.shape[0], -1)
        joint = self.joint_from_actions(actions)
        lp = log_probs_joint.gather(1, joint.view(-1, 1)).squeeze(1)
        mu, log_std, dims, _ = self._chosen(joint)
        theta = actions[:, 1:1 + self.num_params]
        # only the chosen tool's own dims count; the others are masked in the inputs, not multiplied by 0 in the
        # output (an overflowing z would give inf * 0 = NaN there, and a NaN gradient even under th.where)
        own = dims > 0
        diff = th.where(own, theta - mu, th.zeros_like(mu))
        ls = th.where(own, log_std, th.zeros_like(log_std))
        gauss = -0.5 * (diff * th.exp(-ls)).pow(2) - ls - _HALF_LOG_2PI
        return lp + th.where(own, gauss, th.zeros_like(gauss)).sum(dim=1)

    def entropy(self) -> th.Tensor:
        """(B,) exact entropy: ``H(Cat) + Σ_j Cat(j) · H(N_j)`` (STOP contributes no Gaussian term)."""
        log_probs_joint = self._require()[0]
        probs = log_probs_joint.exp()
        h_cat = -(probs * log_probs_joint).sum(dim=1)
        h_tool = self.gaussian_entropy_per_tool()
        h_joint = th.cat([h_tool.repeat(self.num_regions), h_tool.new_zeros(1)])
        return h_cat + (probs * h_joint).sum(dim=1)

    def _assemble(self, joint: th.Tensor, theta: th.Tensor) -> th.Tensor:
        return th.cat([joint.to(theta.dtype).unsqueeze(1), theta], dim=1)

    def sample(self) -> th.Tensor:
        """(B, 1 + P) random actions: ``j ~ Cat``, ``θ ~ N(μ_j, σ_t)`` on the first ``p_t`` dims, else 0."""
        log_probs_joint = self._require()[0]
        joint = th.multinomial(log_probs_joint.exp(), 1).squeeze(1)
        mu, log_std, dims, _ = self._chosen(joint)
        theta = (mu + th.randn_like(mu) * log_std.exp()) * dims
        return self._assemble(joint, theta)

    def mode(self) -> th.Tensor:
        """(B, 1 + P) most likely actions: ``argmax`` choice and ``θ = μ`` on its own dims (0 elsewhere)."""
        log_probs_joint = self._require()[0]
        joint = log_probs_joint.argmax(dim=1)
        mu, _, dims, _ = self._chosen(joint)
        return self._assemble(joint, mu * dims)

    def get_actions(self, deterministic: bool = False) -> th.Tensor:
        """:meth:`mode` if ``deterministic`` else :meth:`sample`."""
        return self.mode() if deterministic else self.sample()
