"""``HybridSetPolicy``: a stable-baselines3 actor-critic for the SpatialIR env under ``BoxAction``.

The observation is a *set* of region slots (``regions`` (K, D), ``valid`` (K,), ``history`` (K, T)) plus
``steps_left`` (1,). A shared per-region MLP encodes ``[regions_k, history_k / max_steps]`` into ``h_k``
(optionally followed by one masked self-attention layer); the context is the masked mean and masked max of
the ``h_k`` plus ``steps_left / max_steps``. Per-region heads read ``[h_k, context]`` and give the ``T``
tool logits and the ``T * P`` parameter means of that region; the STOP logit and the value read the
context. Padded slots never receive probability (see
:class:`~policies.ppo.distribution.HybridActionDistribution`).
The network is permutation-equivariant in the region slots, so it does not care how the proposer orders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from policies.ppo.distribution import HybridActionDistribution

#: Value used for padded slots before the masked max pool.
_NEG = -1e4


def _mlp(sizes: Sequence[int], activation_fn: type[nn.Module], last_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(activation_fn())
    return nn.Sequential(*layers)


class SetEncoder(nn.Module):
    """Permutation-equivariant encoder of the region set.

    Args:
        region_dim: D, the region embedding width.
        num_tools: T (the history width).
        hidden: width of ``h_k`` and of the context.
        attention: add one masked multi-head self-attention layer (residual + LayerNorm) over the regions.
        activation_fn: activation class.
        heads: attention heads (``hidden`` must be divisible by it).
    """

    #: attention heads by default (``hidden`` must be a multiple of it).
    HEADS = 4

    def __init__(self, region_dim: int, num_tools: int, hidden: int = 64, attention: bool = True,
                 activation_fn: type[nn.Module] = nn.ReLU, heads: int = HEADS) -> None:
        super().__init__()
        self.phi = _mlp([region_dim + num_tools, hidden, hidden], activation_fn)
        self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True) if attention else None
        self.norm = nn.LayerNorm(hidden) if attention else None
        self.context = _mlp([2 * hidden + 1, hidden], activation_fn)

    def forward(self, regions: th.Tensor, valid: th.Tensor, history: th.Tensor,
                steps_left: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Returns ``h`` (B, K, H) and the context (B, H). ``history`` and ``steps_left`` already scaled."""
        mask = valid > 0.5  # (B, K)
        h = self.phi(th.cat([regions, history], dim=-1))
        if self.attention is not None and self.norm is not None:
            ignore = ~mask
            ignore = ignore & ~ignore.all(dim=1, keepdim=True)  # a row with no valid slot attends to all
            att, _ = self.attention(h, h, h, key_padding_mask=ignore, need_weights=False)
            h = self.norm(h + att)
        m = mask.unsqueeze(-1).to(h.dtype)
        count = m.sum(dim=1).clamp(min=1.0)
        mean = (h * m).sum(dim=1) / count
        mx = h.masked_fill(~mask.unsqueeze(-1), _NEG).max(dim=1).values
        mx = th.where(mask.any(dim=1, keepdim=True), mx, th.zeros_like(mx))
        return h, self.context(th.cat([mean, mx, steps_left], dim=-1))


class HybridSetPolicy(ActorCriticPolicy):
    """Actor-critic with a set encoder and the hybrid (region, tool, params) / STOP distribution.

    Use with :class:`ir_env.wrappers.BoxAction`; build the extra kwargs with :func:`hybrid_policy_kwargs`.

    Args (besides :class:`~stable_baselines3.common.policies.ActorCriticPolicy`'s; ``net_arch`` and the
    features extractor are not used):
        param_counts: ``p_t`` per tool, in the env's tool order (``len(tool.params)``).
        hidden: encoder / head width (default 64).
        attention: one masked self-attention layer over the regions (default True).
        share_encoder: actor and critic share the set encoder (default False: two encoders).
        param_defaults: (T, P) normalised default parameters of each tool (0 beyond ``p_t``); the mean head
            starts there (its weights start near 0 and its bias at ``atanh(default)``), so early exploration
            centres on the tools' documented defaults. ``None``: the middle of every range.
        log_std_init: initial log standard deviation of the parameter Gaussians (normalised units).
        region_features: read only the first ``region_features`` columns of each region embedding
            (e.g. 12 = the learned embedding's 6 family probabilities and 6 severities, without its 64
            pooled features); ``None`` (default): all ``D``.
    """

    def __init__(self, observation_space: spaces.Dict, action_space: spaces.Box, lr_schedule: Schedule,
                 param_counts: Sequence[int] | None = None, hidden: int = 64, attention: bool = True,
                 share_encoder: bool = False, param_defaults: Sequence[Sequence[float]] | None = None,
                 activation_fn: type[nn.Module] = nn.ReLU, log_std_init: float = -0.5,
                 region_features: int | None = None, **kwargs: Any) -> None:
        check_policy_values("policy_kwargs", hidden=hidden, attention=attention, share_encoder=share_encoder,
                            log_std_init=log_std_init, region_features=region_features)
        if kwargs.get("use_sde"):  # SB3 would build a gSDE distribution this policy never samples from
            raise ValueError("use_sde is not supported by HybridSetPolicy: its Gaussian parameters explore with the "
                             "per-tool log_std (policy_kwargs log_std_init); drop use_sde")
        keys = {"regions", "valid", "history", "steps_left"}
        if not isinstance(observation_space, spaces.Dict) or not keys <= set(observation_space.spaces):
            raise ValueError("HybridSetPolicy needs the SpatialIR Dict observation "
                             "(regions, valid, history, steps_left)")
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError("HybridSetPolicy needs the BoxAction action space [joint, θ1..θP]")
        k, d = observation_space["regions"].shape
        t = observation_space["history"].shape[1]
        if param_counts is None:
            raise ValueError("param_counts is required: use policies.ppo.hybrid_policy_kwargs(env)")
        if len(param_counts) != t:
            raise ValueError(f"param_counts lists {len(param_counts)} tools, the observation has {t}")
        p = int(action_space.shape[0]) - 1
        if int(action_space.high[0]) + 1 != k * t + 1:
            raise ValueError(f"action space joint range {action_space.high[0]} does not match K*T = {k * t}")
        # set before super().__init__ because ActorCriticPolicy.__init__ calls _build()
        self.param_counts = [int(c) for c in param_counts]
        self.hidden = int(hidden)
        self.attention = bool(attention)
        self.share_encoder = bool(share_encoder)
        defaults = np.zeros((t, p), np.float32) if param_defaults is None else np.asarray(param_defaults,
                                                                                          np.float32)
        if defaults.shape != (t, p) or not np.all(np.isfinite(defaults)) or np.any(np.abs(defaults) > 1):
            raise ValueError(f"param_defaults must be a ({t}, {p}) array of values in [-1, 1]")
        self.param_defaults = defaults.tolist()
        if region_features is not None and not (isinstance(region_features, (int, np.integer))
                                                 and 1 <= int(region_features) <= int(d)):
            raise ValueError(f"region_features must be an integer in [1, {d}] (the embedding's D) or None, "
                             f"got {region_features!r}")
        self.region_features = None if region_features is None else int(region_features)
        self.num_regions, self.num_tools, self.num_params = int(k), int(t), p
        self.region_dim = int(d) if region_features is None else int(region_features)
        self.max_steps = float(max(1.0, float(observation_space["steps_left"].high[0])))
        kwargs.pop("net_arch", None)
        super().__init__(observation_space, action_space, lr_schedule, activation_fn=activation_fn,
                         log_std_init=log_std_init, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.pop("net_arch", None)
        data.update(param_counts=self.param_counts, hidden=self.hidden, attention=self.attention,
                    share_encoder=self.share_encoder, param_defaults=self.param_defaults,
                    region_features=self.region_features)
        return data

    def _build(self, lr_schedule: Schedule) -> None:
        """Create the encoders, heads, log-std and the optimizer."""
        hid, t, p, act = self.hidden, self.num_tools, self.num_params, self.activation_fn
        self.hybrid_dist = HybridActionDistribution(self.param_counts, self.num_regions, p)
        self.pi_encoder = SetEncoder(self.region_dim, t, hid, self.attention, act)
        self.vf_encoder = self.pi_encoder if self.share_encoder else SetEncoder(self.region_dim, t, hid,
                                                                                 self.attention, act)
        self.region_body = _mlp([2 * hid, hid], act)
        self.tool_head = nn.Linear(hid, t)
        self.mean_head = nn.Linear(hid, t * p)
        self.stop_head = nn.Linear(hid, 1)
        self.value_net = nn.Sequential(_mlp([hid, hid], act), nn.Linear(hid, 1))
        self.log_std = nn.Parameter(th.full((t, p), float(self.log_std_init)))
        if self.ortho_init:
            encoders = [self.pi_encoder] if self.share_encoder else [self.pi_encoder, self.vf_encoder]
            gains: list[tuple[nn.Module, float]] = [(e, float(np.sqrt(2))) for e in encoders]
            gains += [(self.region_body, float(np.sqrt(2))), (self.value_net[0], float(np.sqrt(2))),
                      (self.tool_head, 0.01), (self.mean_head, 0.01), (self.stop_head, 0.01),
                      (self.value_net[1], 1.0)]
            for module, gain in gains:
                module.apply(partial(self.init_weights, gain=gain))
        with th.no_grad():  # means start at the tools' default parameters (tanh(atanh(d)) = d)
            d = th.as_tensor(self.param_defaults, dtype=th.float32).clamp(-0.95, 0.95)
            self.mean_head.bias.copy_(th.atanh(d).reshape(-1))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    # ------------------------------------------------------------------ pieces
    def _inputs(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        if not isinstance(obs, dict):
            raise ValueError("HybridSetPolicy expects a Dict observation")
        regions = obs["regions"].float()
        if self.region_features is not None:
            regions = regions[..., : self.region_features]
        valid = obs["valid"].float().reshape(regions.shape[0], self.num_regions)
        if not bool(((valid == 0) | (valid == 1)).all()):
            raise ValueError("observation 'valid' must hold 0/1 flags, got other values: is the env wrapped by "
                             "VecNormalize? Normalise only the embeddings: VecNormalize(venv, "
                             "norm_obs_keys=['regions'])")
        history = obs["history"].float().reshape(regions.shape[0], self.num_regions, self.num_tools)
        history = history / self.max_steps
        steps_left = obs["steps_left"].float().reshape(-1, 1) / self.max_steps
        return regions, valid, history, steps_left

    def _distribution(self, obs: PyTorchObs) -> HybridActionDistribution:
        regions, valid, history, steps_left = self._inputs(obs)
        h, ctx = self.pi_encoder(regions, valid, history, steps_left)
        b, k = h.shape[:2]
        z = self.region_body(th.cat([h, ctx.unsqueeze(1).expand(b, k, -1)], dim=-1))
        tool_logits = self.tool_head(z)
        means = th.tanh(self.mean_head(z)).reshape(b, k, self.num_tools, self.num_params)
        stop = self.stop_head(ctx)
        return self.hybrid_dist.proba_distribution(tool_logits, stop, means, self.log_std, valid)

    def _values(self, obs: PyTorchObs) -> th.Tensor:
        regions, valid, history, steps_left = self._inputs(obs)
        _, ctx = self.vf_encoder(regions, valid, history, steps_left)
        return self.value_net(ctx)

    # ------------------------------------------------------------------ what PPO calls
    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Actions (B, 1 + P), values (B, 1) and log-probabilities (B,)."""
        dist = self._distribution(obs)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, self._values(obs), dist.log_prob(actions)

    def evaluate_actions(self, obs: PyTorchObs, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Values (B, 1), log-probabilities (B,) and entropies (B,) of stored (unclipped) actions."""
        dist = self._distribution(obs)
        return self._values(obs), dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs: PyTorchObs) -> HybridActionDistribution:  # type: ignore[override]
        """The action distribution for ``obs`` (has ``get_actions(deterministic)``)."""
        return self._distribution(obs)

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        """Values (B, 1)."""
        return self._values(obs)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._distribution(observation).get_actions(deterministic=deterministic)


def _base_env(env: Any) -> Any:
    if hasattr(env, "envs"):  # DummyVecEnv
        return env.envs[0].unwrapped
    if hasattr(env, "get_attr") and not isinstance(env, gym.Env):  # SubprocVecEnv and other VecEnvs
        return None
    return env.unwrapped


def param_counts_for(tool_names: Sequence[str]) -> list[int]:
    """``len(tool.params)`` for each named tool (registry order is the caller's)."""
    from restorers import get_tool

    return [len(get_tool(n).params) for n in tool_names]


def param_defaults_for(tool_names: Sequence[str], num_params: int) -> list[list[float]]:
    """(T, P) normalised default parameters of the named tools (0 beyond each tool's own ``p_t``)."""
    from restorers import get_tool

    out = np.zeros((len(tool_names), int(num_params)), np.float32)
    for i, name in enumerate(tool_names):
        tool = get_tool(name)
        if tool.params:
            d = np.asarray(tool.to_normalised(tool.defaults()), np.float32).reshape(-1)
            out[i, : d.size] = np.clip(d, -1.0, 1.0)
    return out.tolist()


def hybrid_policy_kwargs(env: Any, hidden: int = 64, attention: bool = True, share_encoder: bool = False,
                         **extra: Any) -> dict[str, Any]:
    """``policy_kwargs`` for :class:`HybridSetPolicy` from a SpatialIR env (bare, wrapped or a VecEnv of
    them): ``param_counts`` and ``param_defaults`` from the env's tools plus the architecture options
    (checked by :func:`check_policy_values`)."""
    check_policy_values("policy_kwargs", hidden=hidden, attention=attention, share_encoder=share_encoder, **extra)
    base = _base_env(env)
    names = list(base.tool_names) if base is not None else list(env.get_attr("tool_names", [0])[0])
    counts = param_counts_for(names)
    return {"param_counts": counts, "param_defaults": param_defaults_for(names, max(counts)),
            "hidden": int(hidden), "attention": bool(attention), "share_encoder": bool(share_encoder),
            **extra}


def check_policy_values(where: str = "policy_kwargs", hidden: Any = 64, attention: Any = True,
                        share_encoder: Any = False, log_std_init: Any = -0.5, region_features: Any = None,
                        **_other: Any) -> None:
    """``ValueError`` naming ``where``'s option when an architecture value of :class:`HybridSetPolicy` cannot work:
    ``hidden`` a whole number >= 1 (a multiple of the 4 attention heads with ``attention``), ``attention`` and
    ``share_encoder`` true/false, ``log_std_init`` a finite number, ``region_features`` None or a whole number
    >= 1. (torch named none of them: 'invalid literal for int()', 'negative dimension -3'.)"""
    def whole(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not whole(hidden) or hidden < 1:
        raise ValueError(f"{where}.hidden must be a whole number >= 1, got {hidden!r}")
    for name, v in (("attention", attention), ("share_encoder", share_encoder)):
        if not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"{where}.{name} must be true or false, got {v!r}")
    if attention and hidden % SetEncoder.HEADS:
        raise ValueError(f"{where}.hidden must be a multiple of {SetEncoder.HEADS} (the attention heads), got "
                         f"{hidden}")
    if isinstance(log_std_init, bool) or not isinstance(log_std_init, (int, float, np.integer, np.floating)) or \
            not np.isfinite(float(log_std_init)):
        raise ValueError(f"{where}.log_std_init must be a finite number, got {log_std_init!r}")
    if region_features is not None and (not whole(region_features) or region_features < 1):
        raise ValueError(f"{where}.region_features must be null or a whole number >= 1, got {region_features!r}")


def check_policy_kwargs(kwargs: Any, where: str = "policy_kwargs") -> None:
    """``ValueError`` naming ``where`` when ``kwargs`` is not a mapping, holds a key :class:`HybridSetPolicy`
    (and SB3's ``ActorCriticPolicy`` under it) does not take, or a value :func:`check_policy_values` refuses,
    before any env or model is built."""
    import inspect

    from stable_baselines3.common.policies import ActorCriticPolicy

    if not isinstance(kwargs, dict):
        raise ValueError(f"{where} must be a mapping of option -> value, got {kwargs!r}")
    fixed = {"self", "observation_space", "action_space", "lr_schedule", "kwargs"}
    known = {n for cls in (HybridSetPolicy, ActorCriticPolicy)
             for n in inspect.signature(cls.__init__).parameters} - fixed
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"{where} has no key {unknown[0]!r} (HybridSetPolicy takes {', '.join(sorted(known))})")
    check_policy_values(where, **kwargs)

