"""Behaviour cloning (and DAgger) of the :class:`~policies.ppo.policy.HybridSetPolicy` from a greedy oracle.

PPO from scratch collapses to "always STOP" on SpatialIR (most random tool calls lose PSNR), so the PPO
planner starts from imitation: the expert is ``make_planner("greedy", judge="psnr")`` (an oracle, it sees
the clean image that the env knows in training), attached to a ``BoxAction`` env so ``predict`` gives the
env's own Box actions ``[joint, θ]``. The student is the policy of an SB3 ``PPO`` model; the loss is the
negative log-likelihood of the expert's actions from ``policy.evaluate_actions`` plus a small regression of
the value head on the returns-to-go (so a later PPO fine-tune starts with a sensible critic).

The `imitation` package pins old SB3 / Gymnasium versions, so this is a short hand-written loop.

Public pieces: :class:`Transitions` (the dataset, with ``.npz`` round trip), :func:`make_expert`,
:func:`record_expert`, :func:`label_current` / :func:`dagger_collect` (student states, expert labels),
:func:`train_bc`, :func:`choice_accuracy` and :func:`evaluate_gain` (fixed seeded episodes, deterministic).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Observation keys of the SpatialIR env, in a fixed order (used for storage).
OBS_KEYS = ("regions", "valid", "history", "steps_left")


@dataclass
class Transitions:
    """(observation, expert action) pairs.

    ``obs``: dict of float32 arrays, one row per state (``regions`` (N, K, D), ``valid`` (N, K),
    ``history`` (N, K, T), ``steps_left`` (N, 1)). ``actions``: (N, 1 + P) float32 Box actions
    ``[joint, θ]`` (θ normalised to [-1, 1]; STOP is joint ``K*T``). ``returns``: (N,) float32 return-to-go
    of the trajectory that visited the state (env reward units, dB for PSNR, γ = 1). ``episode``: (N,) int
    episode number. ``gains`` (optional): (N, K*T + 1) float32 oracle gain of every joint choice (best of the
    expert's candidate parameters, in the judge's units, dB for PSNR; STOP = 0; NaN for padded regions), the
    soft labels of :func:`train_bc`.
    """

    obs: dict[str, np.ndarray]
    actions: np.ndarray
    returns: np.ndarray
    episode: np.ndarray
    gains: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.actions)
        if self.gains is not None and self.gains.shape != (n, int(self.actions_joint_count())):
            raise ValueError(f"gains must be (N, K*T + 1) = ({n}, {self.actions_joint_count()}), "
                             f"got {self.gains.shape}")
        if set(self.obs) != set(OBS_KEYS):
            raise ValueError(f"obs must hold the keys {OBS_KEYS}, got {sorted(self.obs)}")
        for k, v in self.obs.items():
            if len(v) != n:
                raise ValueError(f"obs[{k!r}] has {len(v)} rows, actions has {n}")
        if len(self.returns) != n or len(self.episode) != n:
            raise ValueError("returns and episode must have one entry per action")

    def __len__(self) -> int:
        return int(len(self.actions))

    def actions_joint_count(self) -> int:
        """``K * T + 1``: the number of joint choices (from the observation's shapes)."""
        k, t = self.obs["history"].shape[1:3]
        return int(k * t + 1)

    @staticmethod
    def empty_like(obs_space: Any, action_dim: int) -> Transitions:
        """An empty dataset with the shapes of ``obs_space`` (a Dict space) and ``action_dim``."""
        obs = {k: np.zeros((0, *obs_space[k].shape), np.float32) for k in OBS_KEYS}
        return Transitions(obs, np.zeros((0, action_dim), np.float32), np.zeros(0, np.float32),
                           np.zeros(0, np.int64))

    @staticmethod
    def from_rows(rows: Sequence[tuple]) -> Transitions:
        """Build from ``(obs, action, return_to_go, episode[, gains])`` rows (at least one; gains kept only
        when every row has them)."""
        if not rows:
            raise ValueError("no rows")
        obs = {k: np.stack([np.asarray(r[0][k], np.float32) for r in rows]) for k in OBS_KEYS}
        has_gains = all(len(r) > 4 and r[4] is not None for r in rows)
        gains = np.stack([np.asarray(r[4], np.float32) for r in rows]) if has_gains else None
        return Transitions(obs, np.stack([np.asarray(r[1], np.float32) for r in rows]),
                           np.asarray([r[2] for r in rows], np.float32), np.asarray([r[3] for r in rows], np.int64),
                           gains)

    def concat(self, other: Transitions) -> Transitions:
        """Both datasets, ``self`` first (gains kept only if both have them)."""
        gains = (np.concatenate([self.gains, other.gains])
                 if self.gains is not None and other.gains is not None else None)
        return Transitions({k: np.concatenate([self.obs[k], other.obs[k]]) for k in OBS_KEYS},
                           np.concatenate([self.actions, other.actions]),
                           np.concatenate([self.returns, other.returns]),
                           np.concatenate([self.episode, other.episode]), gains)

    def save(self, path: str | Path) -> Path:
        """Write a compressed ``.npz`` (keys ``obs_<key>``, ``actions``, ``returns``, ``episode``[, ``gains``])."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        extra = {} if self.gains is None else {"gains": self.gains}
        np.savez_compressed(p, actions=self.actions, returns=self.returns, episode=self.episode,
                            **{f"obs_{k}": v for k, v in self.obs.items()}, **extra)
        return p

    @staticmethod
    def load(path: str | Path) -> Transitions:
        """Read a dataset written by :meth:`save`."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no dataset at {p}")
        with np.load(p) as z:
            missing = {"actions", "returns", "episode", *(f"obs_{k}" for k in OBS_KEYS)} - set(z.files)
            if missing:
                raise ValueError(f"{p} is not a Transitions file: missing {sorted(missing)}")
            return Transitions({k: z[f"obs_{k}"] for k in OBS_KEYS}, z["actions"], z["returns"], z["episode"],
                               z["gains"] if "gains" in z.files else None)


#: Experts :func:`make_expert` builds: the greedy search (its judge decides: ``psnr`` is an oracle) and the
#: ``perceive`` planner (learned-encoder perception + rule table; sees only the degraded image, so a student
#: on the learned embedding can imitate it exactly).
EXPERTS: tuple[str, ...] = ("greedy", "perceive")


def make_expert(env: Any, judge: str = "psnr", max_steps: int | None = None,
                offsets: Sequence[float] = (-0.5, 0.5), seed: int = 0, planner: str = "greedy"):
    """The expert planner for ``env`` (a SpatialIR env, wrapped), attached: ``planner="greedy"`` (default)
    is the greedy search with the env's tools and ``judge`` (default ``psnr``: sees the clean image);
    ``"perceive"`` is :class:`policies.rules.PerceivePlanner` (never judges). ``max_steps`` = the env's
    budget unless given."""
    from policies.registry import make_planner

    if planner not in EXPERTS:
        raise ValueError(f"unknown expert {planner!r}; known: {', '.join(EXPERTS)}")
    base = env.unwrapped
    steps = int(base.max_steps if max_steps is None else max_steps)
    if planner == "perceive":
        expert = make_planner("perceive", max_steps=steps, seed=seed, tile=0)  # acts on the env's regions
        used = {row["tool"] for rows in expert.table.entries.values() for row in rows}
        missing = sorted(used - set(base.tool_names))
        if missing:
            raise ValueError(f"the perceive expert uses tools the env does not offer: {missing}")
        return expert.attach(env)
    expert = make_planner("greedy", judge=judge, max_steps=steps, offsets=tuple(offsets),
                          tools=list(base.tool_names), seed=seed)
    return expert.attach(env)


def label_current(env: Any, expert: Any) -> np.ndarray:
    """The expert's action for the env's CURRENT state: re-attaching clears any cached plan, so the expert
    replans from the env's current image with the env's masks (not from the episode start)."""
    expert.attach(env)
    obs = None  # the scripted planner reads the env, not the observation
    action, _ = expert.predict(obs)
    return np.asarray(action, np.float32)


def oracle_label(env: Any, expert: Any) -> tuple[np.ndarray, np.ndarray]:
    """The expert's action for the env's CURRENT state and the oracle gain of every joint choice.

    Runs the greedy planner's own first step (every tool on every valid region with its candidate
    parameters, ``_try``; the best refined by ``_refine``; STOP when no gain beats its threshold), keeping
    the gains it computes anyway. Returns the Box action and (K*T + 1,) float32 gains (judge units, STOP 0,
    NaN on padded regions). Same decision as :func:`label_current`, at the same cost.
    """
    from policies.actions import encode_action
    from policies.base import TraceStep
    from policies.search import candidate_thetas

    base = env.unwrapped
    s = base.state
    if s is None:
        raise RuntimeError("the env has not been reset")
    if [t.name for t in expert.tools] != list(base.tool_names):
        raise ValueError("the expert's tools differ from the env's (use make_expert(env))")
    ref = s.scene.clean if expert.judge.needs_reference else None
    t_count = base.num_tools
    gains = np.full(base.max_regions * t_count + 1, np.nan, np.float32)
    gains[-1] = 0.0
    score = expert.judge.score(s.image, ref)
    best = None
    for k in np.flatnonzero(s.valid):
        for ti, tool in enumerate(expert.tools):
            for th in candidate_thetas(tool, expert.offsets):
                c = expert._try(s.image, s.masks, int(k), tool, th, ref, score)
                j = int(k) * t_count + ti
                gains[j] = c.gain if np.isnan(gains[j]) else max(gains[j], c.gain)
                if best is None or c.gain > best.gain:
                    best = c
    if best is None or best.gain <= expert.threshold:
        return np.asarray(encode_action(env, None), np.float32), gains
    if expert.refine:
        best = expert._refine(s.image, s.masks, best, ref, score)
        j = best.region * t_count + expert.tools.index(best.tool)
        gains[j] = max(gains[j], best.gain)
    step = TraceStep(best.region, 0.0, best.tool.name, best.tool.to_physical(best.theta), score, best.score, 0.0)
    return np.asarray(encode_action(env, step), np.float32), gains


def model_action(model: Any, obs: dict[str, np.ndarray], env: Any, deterministic: bool = True) -> np.ndarray:
    """``model.predict`` for one observation of ``env``; a ``MaskablePPO`` model also gets the env's
    ``action_masks()`` (so it never picks a padded region), as the maskable planner does."""
    if "action_masks" in inspect.signature(model.predict).parameters:
        masks = env.get_wrapper_attr("action_masks")()
        return np.asarray(model.predict(obs, deterministic=deterministic, action_masks=masks)[0])
    return np.asarray(model.predict(obs, deterministic=deterministic)[0])


def _returns_to_go(rewards: Sequence[float]) -> list[float]:
    return [float(x) for x in np.cumsum(np.asarray(rewards, np.float64)[::-1])[::-1]]


def _rollout(env: Any, act: Callable[[dict[str, np.ndarray]], np.ndarray],
             label: Callable[[dict[str, np.ndarray]], np.ndarray], seed: int, episode: int
             ) -> tuple[list[tuple[dict[str, np.ndarray], np.ndarray, float, int]], dict[str, Any]]:
    """One episode reset with ``seed``: each state is labelled by ``label`` and stepped with ``act``."""
    obs, _ = env.reset(seed=int(seed))
    states, labels, soft, rewards = [], [], [], []
    info: dict[str, Any] = {}
    done = False
    while not done:
        y = label(obs)
        y, gains = y if isinstance(y, tuple) else (y, None)
        a = act(obs) if act is not label else y
        states.append({k: np.asarray(obs[k], np.float32).copy() for k in OBS_KEYS})
        labels.append(np.asarray(y, np.float32))
        soft.append(gains)
        obs, r, terminated, truncated, info = env.step(a)
        rewards.append(float(r))
        done = bool(terminated or truncated)
    rtg = _returns_to_go(rewards)
    return [(s, y, g, episode, q) for s, y, g, q in zip(states, labels, rtg, soft, strict=True)], info


def record_expert(env: Any, expert: Any, episodes: int, seed: int = 0, soft: bool = False,
                  log: Callable[[str], None] | None = None) -> tuple[Transitions, dict[str, Any]]:
    """Run ``episodes`` expert episodes (reset seeds ``seed + i``) on ``env`` (``BoxAction``-wrapped) and
    store every visited state with the expert's action. ``soft``: label each state with
    :func:`oracle_label` (also stores every choice's gain; the same actions as the greedy plan, up to
    ties). Returns the dataset and episode statistics (``psnr_gain`` and ``tool_calls`` lists, ``seconds``)."""
    if int(episodes) < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    expert.attach(env)
    if soft:
        def soft_policy(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            return oracle_label(env, expert)

        return _collect(env, soft_policy, soft_policy, episodes, seed, log)

    def policy(obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(expert.predict(obs)[0], np.float32)  # the plan made at step 0, replayed

    return _collect(env, policy, policy, episodes, seed, log)


def dagger_collect(env: Any, expert: Any, student: Any, episodes: int, seed: int = 0,
                   deterministic: bool = True, soft: bool = False, log: Callable[[str], None] | None = None
                   ) -> tuple[Transitions, dict[str, Any]]:
    """DAgger data: the ``student`` (an SB3 model, ``predict``) drives ``episodes`` episodes (reset seeds
    ``seed + i``); every state it visits is labelled with the expert's action for that state
    (:func:`label_current`, or :func:`oracle_label` with its gains when ``soft``). Returns the dataset and
    the student's episode statistics."""
    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        return model_action(student, obs, env, deterministic).astype(np.float32)

    if soft:
        return _collect(env, act, lambda obs: oracle_label(env, expert), episodes, seed, log)
    return _collect(env, act, lambda obs: label_current(env, expert), episodes, seed, log)


def _collect(env: Any, act: Callable, label: Callable, episodes: int, seed: int,
             log: Callable[[str], None] | None) -> tuple[Transitions, dict[str, Any]]:
    rows: list[tuple[dict[str, np.ndarray], np.ndarray, float, int]] = []
    gains, calls = [], []
    t0 = time.perf_counter()
    for i in range(int(episodes)):
        ep_rows, info = _rollout(env, act, label, seed + i, i)
        rows += ep_rows
        gains.append(float(info.get("psnr_gain", np.nan)))
        calls.append(int(info.get("tool_calls", 0)))
        if log is not None and ((i + 1) % 50 == 0 or i + 1 == episodes):
            log(f"  {i + 1}/{episodes} episodes, {len(rows)} states, mean gain {np.nanmean(gains):.3f} dB, "
                f"{time.perf_counter() - t0:.0f} s")
    stats = {"psnr_gain": gains, "tool_calls": calls, "seconds": time.perf_counter() - t0}
    return Transitions.from_rows(rows), stats


def _to_tensors(data: Transitions, idx: np.ndarray, device: Any) -> tuple[dict[str, Any], Any, Any]:
    import torch as th

    obs = {k: th.as_tensor(data.obs[k][idx], device=device) for k in OBS_KEYS}
    return obs, th.as_tensor(data.actions[idx], device=device), th.as_tensor(data.returns[idx], device=device)


def train_bc(policy: Any, data: Transitions, epochs: int = 30, batch_size: int = 128, lr: float = 1e-3,
             vf_coef: float = 0.25, weight_decay: float = 0.0, log_std_min: float = -1.6, seed: int = 0,
             soft_coef: float = 0.0, temperature: float = 0.5,
             log: Callable[[str], None] | None = None) -> list[dict[str, float]]:
    """Fit ``policy`` (a :class:`~policies.ppo.policy.HybridSetPolicy`, or a ``MaskablePPO`` policy with
    ``MultiDiscrete`` actions in ``data``) to ``data`` in place.

    Loss per minibatch: ``-mean(log π(a_expert | s)) + vf_coef * MSE(V(s), return_to_go)`` (Adam, ``lr``),
    plus, when ``soft_coef > 0`` and the data has ``gains``, ``soft_coef`` times the cross-entropy of the
    joint choice against ``softmax(gains / temperature)`` (``temperature`` in the gains' units, dB): the
    student learns which other choices are nearly as good and which hurt, not only the argmax.
    After each step the parameter log-std is floored at ``log_std_min`` (natural log, normalised units), so
    the Gaussian NLL cannot shrink the exploration noise to nothing before a PPO fine-tune.
    Returns one dict per epoch: ``nll``, ``value_mse`` (means over minibatches) and ``accuracy``
    (the deterministic (region, tool) choice equals the expert's, on the whole dataset).
    """
    import torch as th

    if len(data) == 0:
        raise ValueError("empty dataset")
    if int(epochs) < 1 or int(batch_size) < 1:
        raise ValueError("epochs and batch_size must be >= 1")
    rng = np.random.default_rng(seed)
    th.manual_seed(seed)
    opt = th.optim.Adam(policy.parameters(), lr=lr, weight_decay=weight_decay)
    policy.set_training_mode(True)
    history: list[dict[str, float]] = []
    n = len(data)
    for ep in range(int(epochs)):
        perm = rng.permutation(n)
        nll_sum, vf_sum, batches = 0.0, 0.0, 0
        for start in range(0, n, int(batch_size)):
            idx = perm[start:start + int(batch_size)]
            obs, actions, returns = _to_tensors(data, idx, policy.device)
            values, log_prob, _ = policy.evaluate_actions(obs, actions)
            nll = -log_prob.mean()
            vf = th.nn.functional.mse_loss(values.flatten(), returns)
            loss = nll + vf_coef * vf
            if soft_coef > 0 and data.gains is not None:
                g = th.as_tensor(data.gains[idx], device=policy.device)
                target = th.softmax(th.nan_to_num(g / temperature, nan=-1e4), dim=1)
                log_joint = joint_log_probs(policy, obs)
                loss = loss + soft_coef * -(target * log_joint).sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
            if hasattr(policy, "log_std"):  # the hybrid policy's Gaussian; MaskablePPO has none
                with th.no_grad():
                    policy.log_std.clamp_(min=log_std_min)
            nll_sum += nll.item()
            vf_sum += vf.item()
            batches += 1
        rec = {"epoch": ep + 1, "nll": nll_sum / batches, "value_mse": vf_sum / batches,
               "accuracy": choice_accuracy(policy, data)}
        history.append(rec)
        if log is not None and ((ep + 1) % 5 == 0 or ep + 1 == epochs):
            log(f"  epoch {ep + 1}: nll {rec['nll']:.3f}, value mse {rec['value_mse']:.3f}, "
                f"choice accuracy {rec['accuracy']:.3f}")
    policy.set_training_mode(False)
    return history


def joint_log_probs(policy: Any, obs: dict[str, Any]) -> Any:
    """(N, K*T + 1) log-probabilities of the joint (region, tool) / STOP choice: the hybrid policy's own,
    or the first ``MultiDiscrete`` dimension of a ``MaskablePPO`` policy (unmasked)."""
    dist = policy.get_distribution(obs)
    if hasattr(dist, "log_probs_joint"):
        return dist.log_probs_joint
    return dist.distributions[0].logits  # torch's Categorical keeps normalised logits = log-probabilities


def choice_accuracy(policy: Any, data: Transitions, batch_size: int = 1024) -> float:
    """Share of states where the policy's most likely joint (region, tool) choice / STOP equals the
    expert's (rounded ``actions[:, 0]``)."""
    import torch as th

    hits = 0
    with th.no_grad():
        for start in range(0, len(data), batch_size):
            idx = np.arange(start, min(len(data), start + batch_size))
            obs, actions, _ = _to_tensors(data, idx, policy.device)
            pred = policy.get_distribution(obs).mode()[:, 0]
            hits += int((th.round(pred) == th.round(actions[:, 0])).sum())
    return hits / max(1, len(data))


def evaluate_gain(env: Any, act: Callable[[dict[str, np.ndarray]], np.ndarray] | Any, episodes: int,
                  seed: int) -> dict[str, Any]:
    """Mean PSNR gain (dB) over ``episodes`` fixed episodes (reset seeds ``seed + i``).

    ``act`` is an SB3 model (deterministic ``predict``), a scripted planner (attached to ``env`` here) or a
    callable ``obs -> action``. Returns ``psnr_gain`` (mean), ``tool_calls`` (mean), ``stop_rate`` (share
    of episodes ended by STOP), ``gains`` (per episode) and ``seconds``.
    """
    from policies.base import Planner

    if isinstance(act, Planner):
        planner = act.attach(env)

        def fn(obs: dict[str, np.ndarray]) -> np.ndarray:
            return np.asarray(planner.predict(obs)[0])
    elif hasattr(act, "predict"):
        model = act

        def fn(obs: dict[str, np.ndarray]) -> np.ndarray:
            return model_action(model, obs, env)
    else:
        fn = act
    gains, calls, stops = [], [], []
    t0 = time.perf_counter()
    for i in range(int(episodes)):
        obs, _ = env.reset(seed=int(seed) + i)
        done, info = False, {}
        while not done:
            obs, _, terminated, truncated, info = env.step(fn(obs))
            done = bool(terminated or truncated)
        gains.append(float(info["psnr_gain"]))
        calls.append(int(info["tool_calls"]))
        stops.append(bool(info.get("tool") == "STOP"))
    return {"psnr_gain": float(np.mean(gains)), "tool_calls": float(np.mean(calls)),
            "stop_rate": float(np.mean(stops)), "gains": gains, "seconds": time.perf_counter() - t0}
