"""The distilled student: the PPO planner's :class:`~policies.ppo.policy.HybridSetPolicy`, trained to predict
the teacher's judged gain of every (region, tool) choice and the best parameters of each.

Why not plain behaviour cloning: on the recorded greedy states, the earlier BC student
(:mod:`policies.ppo.bc`) picked a choice within 0.2 dB of the best only 57% of the time and its predicted
parameters lost about 40% of the teacher's per-step gain even on the teacher's own (region, tool), because
one hard label per state trains one of the K*T parameter heads and many choices are near ties. The
teacher's search tries every choice anyway, so each recorded state carries K*T gains and K*T best
parameter vectors (:mod:`policies.distill.dataset`); the student regresses all of them.

The policy's joint logits are read as predicted gains: ``gain(k, t) = τ · (logit(k, t) - logit(STOP))``
(dB, STOP's gain is 0), which only needs the log-probabilities SB3 exposes. Losses per state:

- gain: Huber loss between predicted and recorded gains on every tried choice, recorded gains floored
  at ``gain_floor`` (how much a bad choice hurts matters little);
- params: MSE between the mean head of every (region, tool) and the best parameters tried there;
- value (``vf_coef``): MSE of the value head against the return-to-go, so PPO can start from the student;
- rank (``rank_coef``): cross-entropy of ``softmax(logits)`` against ``softmax(gains / τ)`` (STOP
  included), which weights the top of the list; its optimum is the same logits ``gains / τ + c``;
- optional ``nll_coef`` times the negative log-likelihood of the teacher's action (plain BC).

The deterministic decision (:func:`decide`): the choice with the largest predicted gain, STOP when that is
below ``stop_margin`` dB. Because ``softmax(logits)`` is then a Boltzmann policy over predicted gains with
temperature ``τ``, PPO can be initialised from the student directly (same network, same action space).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from policies.distill.dataset import OBS_FIELDS, TrajectoryData


def _batch(data: TrajectoryData, idx: np.ndarray, device: Any) -> dict[str, Any]:
    import torch as th

    out = {k: th.as_tensor(data[k][idx], device=device) for k in (*OBS_FIELDS, "gains", "best_params",
                                                                      "return_to_go")}
    out["actions"] = th.as_tensor(data.box_actions()[idx], device=device)
    return out


def predicted_gains(log_probs_joint: Any, tau: float) -> Any:
    """(B, K*T) predicted gains (dB) ``τ · (logit - logit_STOP)`` from a distribution's ``log_probs_joint``
    (B, K*T + 1; STOP last); padded slots get about -1e8·τ."""
    return (log_probs_joint[:, :-1] - log_probs_joint[:, -1:]) * float(tau)


def student_loss(policy: Any, batch: dict[str, Any], tau: float, gain_floor: float = -2.0, param_coef: float = 1.0,
                 vf_coef: float = 0.1, nll_coef: float = 0.0, rank_coef: float = 1.0) -> tuple[Any, dict[str, float]]:
    """The training loss of one batch (see the module docstring) and its parts as floats."""
    import torch as th
    from torch.nn import functional as F

    obs = {k: batch[k] for k in OBS_FIELDS}
    dist = policy.get_distribution(obs)
    lp = dist.log_probs_joint
    pred = predicted_gains(lp, tau)
    g = batch["gains"][:, :-1]
    seen = th.isfinite(g)
    zero = pred.sum() * 0.0
    gain_loss = F.huber_loss(pred[seen], g[seen].clamp(min=gain_floor)) if seen.any() else zero
    target = batch["best_params"].reshape(dist.means.shape)
    has = th.isfinite(target)
    param_loss = F.mse_loss(dist.means[has], target[has]) if has.any() else zero
    values = policy.predict_values(obs).flatten()
    vf_loss = F.mse_loss(values, batch["return_to_go"])
    loss = gain_loss + param_coef * param_loss + vf_coef * vf_loss
    parts = {"gain": gain_loss.item(), "params": param_loss.item(), "value": vf_loss.item()}
    if rank_coef > 0:  # listwise: softmax(logits) against softmax(gains / τ), STOP (gain 0) included
        target = th.softmax(th.nan_to_num(batch["gains"] / float(tau), nan=-1e4), dim=1)
        rank = -(target * lp.clamp(min=-1e4)).sum(dim=1).mean()
        loss = loss + rank_coef * rank
        parts["rank"] = rank.item()
    if nll_coef > 0:
        nll = -dist.log_prob(batch["actions"]).mean()
        loss = loss + nll_coef * nll
        parts["nll"] = nll.item()
    return loss, parts


def train_student(policy: Any, data: TrajectoryData, epochs: int = 30, batch_size: int = 128, lr: float = 1e-3,
                  tau: float = 0.25, gain_floor: float = -2.0, param_coef: float = 1.0, vf_coef: float = 0.1,
                  nll_coef: float = 0.0, rank_coef: float = 1.0, weight_decay: float = 0.0, seed: int = 0,
                  val: TrajectoryData | None = None,
                  log: Callable[[str], None] | None = None) -> list[dict[str, float]]:
    """Fit ``policy`` (a ``HybridSetPolicy``) to ``data`` in place (Adam). Returns one record per epoch with
    the mean loss parts and :func:`agreement` on ``data`` (``train_*``) and ``val`` (``val_*``)."""
    import torch as th

    if len(data) == 0:
        raise ValueError("empty dataset")
    if int(epochs) < 1 or int(batch_size) < 1:
        raise ValueError("epochs and batch_size must be >= 1")
    if not np.isfinite(data["gains"][:, :-1]).any():
        raise ValueError("the dataset has no dense gain labels (record with a greedy teacher or dense: true)")
    rng = np.random.default_rng(seed)
    th.manual_seed(seed)
    opt = th.optim.Adam(policy.parameters(), lr=lr, weight_decay=weight_decay)
    history: list[dict[str, float]] = []
    for ep in range(int(epochs)):
        policy.set_training_mode(True)
        sums: dict[str, float] = {}
        batches = 0
        perm = rng.permutation(len(data))
        for start in range(0, len(data), int(batch_size)):
            idx = perm[start:start + int(batch_size)]
            loss, parts = student_loss(policy, _batch(data, idx, policy.device), tau, gain_floor, param_coef,
                                       vf_coef, nll_coef, rank_coef)
            opt.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            batches += 1
        policy.set_training_mode(False)
        rec: dict[str, float] = {"epoch": ep + 1, **{k: v / batches for k, v in sums.items()}}
        if log is not None or ep + 1 == int(epochs):
            rec.update({f"train_{k}": v for k, v in agreement(policy, data, tau).items()})
            if val is not None and len(val):
                rec.update({f"val_{k}": v for k, v in agreement(policy, val, tau).items()})
        history.append(rec)
        if log is not None and ((ep + 1) % 5 == 0 or ep + 1 == int(epochs)):
            log("  epoch {epoch}: gain loss {gain:.3f}, param loss {params:.4f}; ".format(**rec)
                + ", ".join(f"{k} {v:.3f}" for k, v in rec.items() if k.startswith(("train_", "val_"))))
    return history


def decide(policy: Any, obs: dict[str, np.ndarray], tau: float, stop_margin: float = 0.0) -> np.ndarray:
    """Deterministic Box actions ``[joint, θ]`` (B, 1 + P) for a batch of observations (numpy, with a
    leading batch axis): the (region, tool) with the largest predicted gain and its mean parameters
    (0 beyond the tool's own dimensions), or STOP (``K*T``) when no predicted gain reaches ``stop_margin`` dB."""
    import torch as th

    with th.no_grad():
        o = {k: th.as_tensor(np.asarray(obs[k], np.float32), device=policy.device) for k in OBS_FIELDS}
        dist = policy.get_distribution(o)
        lp = dist.log_probs_joint
        pred = predicted_gains(lp, tau)
        best, joint = pred.max(dim=1)
        stop = best < float(stop_margin)
        joint = th.where(stop, th.full_like(joint, lp.shape[1] - 1), joint)
        mu, _, dims, _ = dist._chosen(joint)
        theta = (mu * dims).clamp(-1.0, 1.0)
    return th.cat([joint.to(theta.dtype).unsqueeze(1), theta], dim=1).cpu().numpy()


def agreement(policy: Any, data: TrajectoryData, tau: float, stop_margin: float = 0.0,
              batch_size: int = 2048) -> dict[str, float]:
    """How the student's deterministic choice compares with the teacher's on the recorded states.

    ``joint``/``region``/``tool``: share of states where the student picks the teacher's (region, tool) /
    region / tool (STOP counts as its own region and tool); ``stop``: share where both stop or both act;
    ``regret``: mean dB the student's choice loses against the best recorded choice (its recorded gain with
    the best tried parameters; STOP = 0); ``near``: share of choices within 0.2 dB of the best.
    """
    k_slots, t_count = int(data.meta["num_regions"]), int(data.meta["num_tools"])
    stop_j = k_slots * t_count
    picks = []
    for start in range(0, len(data), batch_size):
        sl = slice(start, min(len(data), start + batch_size))
        picks.append(decide(policy, {k: data[k][sl] for k in OBS_FIELDS}, tau, stop_margin)[:, 0])
    pj = np.rint(np.concatenate(picks)).astype(np.int64)
    tj = data["joint"].astype(np.int64)
    g = np.where(np.isfinite(data["gains"]), data["gains"], -np.inf)
    g[:, -1] = 0.0
    got = g[np.arange(len(pj)), pj]
    best = g.max(axis=1)
    region = np.where(pj == stop_j, -1, pj // t_count) == np.where(tj == stop_j, -1, tj // t_count)
    tool = np.where(pj == stop_j, t_count, pj % t_count) == np.where(tj == stop_j, t_count, tj % t_count)
    finite = np.isfinite(got)
    return {"joint": float(np.mean(pj == tj)), "region": float(np.mean(region)), "tool": float(np.mean(tool)),
            "stop": float(np.mean((pj == stop_j) == (tj == stop_j))),
            "regret": float(np.mean(best[finite] - got[finite])) if finite.any() else float("nan"),
            "near": float(np.mean(got >= best - 0.2))}


def save_student(model: Any, folder: str | Path, ppo_config: dict[str, Any], env_id: str,
                 env_kwargs: dict[str, Any], tau: float, stop_margin: float, **extra: Any) -> Path:
    """Write ``<folder>/model.zip`` (SB3 PPO zip) and ``config.yml`` (the PPO config with the student's env,
    tools, the learned encoder's ``encoder_sha256``, and a ``distill`` block: ``tau``, ``stop_margin`` and
    ``extra``), the layout that
    ``make_planner("distilled", path=<folder>/model.zip)`` and ``PPO.load`` read. Returns the zip path."""
    import stable_baselines3
    import torch as th

    from policies.ppo.config import write_config
    from policies.ppo.train import _tool_info

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env_kwargs = {k: v for k, v in env_kwargs.items() if k != "split"}
    cfg = {**ppo_config, "env_id": env_id, "env_kwargs": env_kwargs}
    resolved = {**cfg, **_tool_info(cfg),
                "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": th.__version__},
                "distill": {"tau": float(tau), "stop_margin": float(stop_margin), **extra}}
    model.save(folder / "model.zip")
    write_config(resolved, folder)
    return folder / "model.zip"
