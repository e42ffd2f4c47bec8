"""PPO planners: the hybrid distribution's maths, the set policy (masking, equivariance, save/load), short
PPO / MaskablePPO runs, a learning check, the ``spatial-ir train`` command and the ``ppo`` planner."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from scipy.stats import norm

import ir_env  # noqa: F401  (registers the envs)
from ir_env.corpus import center_crop, load_corpus
from ir_env.wrappers import BoxAction, MultiDiscreteAction
from policies.ppo import HybridActionDistribution, HybridSetPolicy
from policies.ppo.config import read_model_config, resolve_config
from policies.ppo.train import make_hybrid_ppo, make_maskable_ppo, train_from_dict

th.set_num_threads(1)

# K = 2 regions, T = 3 tools with 2, 0 and 1 parameters, P = 2
COUNTS, K, P = [2, 0, 1], 2, 2
T = len(COUNTS)


def _dist(batch: int = 2, seed: int = 0, valid: np.ndarray | None = None):  # noqa: ANN202
    g = th.Generator().manual_seed(seed)
    tool_logits = th.randn(batch, K, T, generator=g)
    stop = th.randn(batch, generator=g)
    means = th.rand(batch, K, T, P, generator=g) * 2 - 1
    log_std = th.randn(T, P, generator=g) * 0.3 - 0.5
    v = th.ones(batch, K) if valid is None else th.as_tensor(valid, dtype=th.float32)
    d = HybridActionDistribution(COUNTS, K, P).proba_distribution(tool_logits, stop, means, log_std, v)
    return d, tool_logits.numpy(), stop.numpy(), means.numpy(), log_std.numpy(), v.numpy()


def _hand_log_softmax(tool_logits: np.ndarray, stop: np.ndarray, valid: np.ndarray) -> np.ndarray:
    logits = np.concatenate([tool_logits.reshape(len(stop), -1), stop[:, None]], axis=1).astype(np.float64)
    mask = np.concatenate([np.repeat(valid > 0.5, T, axis=1), np.ones((len(stop), 1), bool)], axis=1)
    logits = np.where(mask, logits, -np.inf)
    mx = logits.max(axis=1, keepdims=True)
    return logits - mx - np.log(np.exp(logits - mx).sum(axis=1, keepdims=True))


def test_log_prob_matches_hand_computation() -> None:
    valid = np.array([[1, 1], [1, 0]], np.float32)
    d, tl, stop, means, log_std, _ = _dist(valid=valid)
    lsm = _hand_log_softmax(tl, stop, valid)
    cases = [  # (row, region, tool or None for STOP, theta)
        (0, 1, 0, [0.3, -0.2]),  # tool 0 reads both params
        (0, 0, 1, [0.5, 0.5]),  # tool 1 has no params: theta ignored
        (1, 0, 2, [0.1, 0.9]),  # tool 2 reads only the first param
        (1, None, None, [0.7, -0.7]),  # STOP: no params
        (0, None, None, [0.0, 0.0]),
    ]
    for row, k, t, theta in cases:
        j = K * T if t is None else k * T + t
        expected = lsm[row, j]
        if t is not None:
            for dim in range(COUNTS[t]):
                expected += norm.logpdf(theta[dim], loc=means[row, k, t, dim], scale=np.exp(log_std[t, dim]))
        batch_actions = th.zeros(2, 1 + P)
        batch_actions[row] = th.tensor([float(j) + 0.3, *theta])  # the index is read by rounding
        got = d.log_prob(batch_actions)[row].item()
        assert got == pytest.approx(expected, abs=1e-4), (row, k, t)


def test_entropy_matches_hand_computation() -> None:
    valid = np.array([[1, 1], [0, 1]], np.float32)
    d, tl, stop, _, log_std, _ = _dist(valid=valid)
    probs = np.exp(_hand_log_softmax(tl, stop, valid))
    for row in range(2):
        p = probs[row]
        h_cat = -sum(pi * math.log(pi) for pi in p if pi > 0)
        h_gauss = [sum(0.5 * math.log(2 * math.pi * math.e) + log_std[t, dim] for dim in range(COUNTS[t]))
                   for t in range(T)]
        h_mix = sum(p[k * T + t] * h_gauss[t] for k in range(K) for t in range(T))
        assert d.entropy()[row].item() == pytest.approx(h_cat + h_mix, abs=1e-4)


def test_padded_regions_never_sampled_and_params_follow_tool() -> None:
    valid = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    g = th.Generator().manual_seed(1)
    tool_logits = th.randn(3, K, T, generator=g)
    tool_logits[0, 1] += 6.0  # padded slots get the highest raw logits: the mask alone must exclude them
    tool_logits[1, 0] += 6.0
    means = th.rand(3, K, T, P, generator=g) * 2 - 1
    d = HybridActionDistribution(COUNTS, K, P).proba_distribution(
        tool_logits, th.zeros(3), means, th.full((T, P), -1.0), th.as_tensor(valid))
    th.manual_seed(0)
    samples = th.stack([d.sample() for _ in range(2000)])  # (2000, 3, 1 + P)
    joint = samples[..., 0].round().long()
    assert th.equal(samples[..., 0], joint.float())
    is_stop = joint == K * T
    region = th.div(joint, T, rounding_mode="floor")
    for row in range(3):
        chosen = region[:, row][~is_stop[:, row]]
        assert chosen.numel() > 100
        assert bool(th.all(th.as_tensor(valid[row])[chosen] > 0.5)), f"row {row} sampled a padded region"
    tool = joint % T
    counts = th.as_tensor(COUNTS)[tool]
    counts[is_stop] = 0
    for dim in range(P):
        unused = counts <= dim
        assert bool(th.all(samples[..., 1 + dim][unused] == 0.0))
        used = ~unused
        assert bool(th.any(samples[..., 1 + dim][used] != 0.0))
    # deterministic: argmax among valid choices, theta = mean on the chosen tool's own dims
    m = d.mode()
    lsm = _hand_log_softmax(tool_logits.numpy(), np.zeros(3, np.float32), valid)
    assert m[:, 0].long().tolist() == lsm.argmax(axis=1).tolist()
    for row in range(3):
        j = int(m[row, 0])
        if j < K * T:
            k, t = divmod(j, T)
            expect = np.zeros(P, np.float32)
            expect[: COUNTS[t]] = means[row, k, t, : COUNTS[t]].numpy()
            assert np.allclose(m[row, 1:].numpy(), expect)


def _lite_env(image_size: int = 48, **kw) -> gym.Env:  # noqa: ANN003
    return BoxAction(gym.make("SpatialIR-Lite-v1", image_size=image_size, max_steps=3, **kw))


def _obs_batch(env: gym.Env, n: int) -> list[dict[str, np.ndarray]]:
    return [env.reset(seed=100 + i)[0] for i in range(n)]


def test_policy_masks_padded_slots_and_is_permutation_equivariant() -> None:
    env = BoxAction(gym.make("SpatialIR-v1", image_size=48, max_regions=3, region_proposer="grid",
                             proposer_kwargs={"rows": 1, "cols": 2}, max_steps=3))
    model = make_hybrid_ppo(env, {"hidden": 16}, n_steps=64, batch_size=32, seed=0, device="cpu")
    pol = model.policy
    obs, _ = env.reset(seed=0)
    assert obs["valid"].tolist() == [1.0, 1.0, 0.0]
    t_obs, _ = pol.obs_to_tensor(obs)
    with th.no_grad():
        probs = pol.get_distribution(t_obs).joint_probs()[0]
        value = pol.predict_values(t_obs)[0]
    n_tools = env.unwrapped.num_tools
    assert float(probs[2 * n_tools: 3 * n_tools].sum()) == 0.0  # padded slot 2
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    perm = [1, 0, 2]
    swapped = {"regions": obs["regions"][perm], "valid": obs["valid"][perm], "history": obs["history"][perm],
               "steps_left": obs["steps_left"]}
    s_obs, _ = pol.obs_to_tensor(swapped)
    with th.no_grad():
        probs2 = pol.get_distribution(s_obs).joint_probs()[0]
        value2 = pol.predict_values(s_obs)[0]
    per_region = probs[:-1].reshape(3, n_tools)
    assert th.allclose(probs2[:-1].reshape(3, n_tools), per_region[perm], atol=1e-6)
    assert float(probs2[-1]) == pytest.approx(float(probs[-1]), abs=1e-6)
    assert float(value2) == pytest.approx(float(value), abs=1e-5)
    # stochastic actions in the env never touch the padded slot
    for i in range(60):
        a, _ = model.predict(obs, deterministic=False)
        j = int(np.rint(a[0]))
        assert j == 3 * n_tools or j // n_tools in (0, 1)
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc:
            obs, _ = env.reset(seed=i)


def test_ppo_trains_and_save_load_round_trip(tmp_path: Path) -> None:
    env = _lite_env()
    model = make_hybrid_ppo(env, {"hidden": 16, "attention": True}, n_steps=128, batch_size=32, n_epochs=2,
                            seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    assert all(bool(th.isfinite(p).all()) for p in model.policy.parameters())
    obs = _obs_batch(env, 5)
    before = [model.predict(o, deterministic=True)[0] for o in obs]
    model.save(tmp_path / "m.zip")
    from stable_baselines3 import PPO

    loaded = PPO.load(tmp_path / "m.zip", device="cpu")
    assert isinstance(loaded.policy, HybridSetPolicy)
    assert loaded.policy.param_counts == model.policy.param_counts
    after = [loaded.predict(o, deterministic=True)[0] for o in obs]
    for a, b in zip(before, after, strict=True):
        assert np.array_equal(a, b)
    # forward's log-prob equals evaluate_actions' for the same (stored) actions
    t_obs, _ = model.policy.obs_to_tensor({k: np.stack([o[k] for o in obs]) for k in obs[0]})
    with th.no_grad():
        actions, values, logp = model.policy(t_obs)
        values2, logp2, ent = model.policy.evaluate_actions(t_obs, actions)
    assert th.allclose(logp, logp2, atol=1e-5) and th.allclose(values, values2)
    assert bool(th.all(ent > 0))


def test_region_features_reads_only_the_first_columns(tmp_path: Path) -> None:
    env = _lite_env()
    d = env.observation_space["regions"].shape[1]
    model = make_hybrid_ppo(env, {"hidden": 16, "region_features": 5}, n_steps=64, batch_size=32, seed=0,
                            device="cpu")
    pol = model.policy
    assert pol.region_features == 5 and pol.region_dim == 5 < d
    obs, _ = env.reset(seed=0)
    changed = {**obs, "regions": obs["regions"].copy()}
    changed["regions"][:, 5:] = np.random.default_rng(0).normal(size=changed["regions"][:, 5:].shape) * 3
    moved = {**obs, "regions": obs["regions"].copy()}
    moved["regions"][:, :5] += 1.0
    with th.no_grad():
        p0, p1, p2 = (pol.get_distribution(pol.obs_to_tensor(o)[0]).joint_probs()[0] for o in (obs, changed, moved))
    assert th.equal(p0, p1)  # columns past the first 5 are never read
    assert not th.allclose(p0, p2)  # the first 5 are
    model.save(tmp_path / "m.zip")
    from stable_baselines3 import PPO

    loaded = PPO.load(tmp_path / "m.zip", device="cpu")
    assert loaded.policy.region_features == 5
    with th.no_grad():
        assert th.equal(loaded.policy.get_distribution(loaded.policy.obs_to_tensor(obs)[0]).joint_probs()[0], p0)
    for bad in (0, d + 1, 2.5, "12"):
        with pytest.raises(ValueError, match="region_features must be (an integer|null or a whole number)"):
            make_hybrid_ppo(env, {"hidden": 16, "region_features": bad}, n_steps=64, batch_size=32, device="cpu")


def test_maskable_ppo_helper_respects_masks() -> None:
    env = MultiDiscreteAction(gym.make("SpatialIR-v1", image_size=48, max_regions=3, region_proposer="whole",
                                       max_steps=3), bins=3)
    model = make_maskable_ppo(env, {"net_arch": [32]}, n_steps=64, batch_size=32, n_epochs=1, seed=0,
                              device="cpu")
    model.learn(total_timesteps=64)
    obs, _ = env.reset(seed=0)
    n_tools = env.unwrapped.num_tools
    for _ in range(40):
        a, _ = model.predict(obs, deterministic=False, action_masks=env.action_masks())
        assert a[0] == 3 * n_tools or a[0] < n_tools  # only region 0 exists
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc:
            obs, _ = env.reset()


def _episode_return(env: gym.Env, act, seeds: range) -> float:  # noqa: ANN001
    total = []
    for s in seeds:
        obs, _ = env.reset(seed=s)
        done, ret = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs))
            ret += r
            done = term or trunc
        total.append(ret)
    return float(np.mean(total))


def test_short_training_beats_random_policy() -> None:
    corpus = [center_crop(im, 48) for im in load_corpus("builtin", split="train")[:2]]
    env = _lite_env(corpus=corpus)
    rng = np.random.default_rng(0)

    def random_act(obs: dict) -> np.ndarray:  # noqa: ARG001
        a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        a[0] = rng.integers(env.num_joint)
        return a

    seeds = range(1000, 1030)
    random_return = _episode_return(env, random_act, seeds)
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: _lite_env(corpus=corpus)])
    venv.seed(0)
    model = make_hybrid_ppo(venv, {"hidden": 64}, n_steps=256, batch_size=64, n_epochs=10, gamma=1.0,
                            ent_coef=0.01, seed=0, device="cpu")
    model.learn(total_timesteps=3072)
    trained_return = _episode_return(env, lambda o: model.predict(o, deterministic=True)[0], seeds)
    assert trained_return > random_return + 0.3, (random_return, trained_return)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 128-step hybrid run written by the training entry point (config.yml, model.zip, checkpoints)."""
    out = tmp_path_factory.mktemp("runs")
    raw = {"name": "tiny", "env_id": "SpatialIR-v1",
           "env_kwargs": {"image_size": 48, "max_regions": 4, "region_proposer": "degradation-clusters",
                          "max_steps": 3},
           "policy_kwargs": {"hidden": 16}, "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 1},
           "total_timesteps": 128, "eval": {"freq": 64, "episodes": 2}, "checkpoint_freq": 64,
           "output_dir": str(out), "progress_bar": False}
    return train_from_dict(raw)


def test_training_writes_run_folder_and_resumes(tiny_run: Path, tmp_path: Path) -> None:
    for name in ("config.yml", "model.zip", "best_model.zip", "checkpoints/model_64_steps.zip",
                 "eval/evaluations.npz"):
        assert (tiny_run / name).is_file(), name
    assert list(tiny_run.glob("tb_*/events.out.tfevents.*"))
    cfg = read_model_config(tiny_run / "model.zip")
    assert cfg["env_kwargs"]["region_proposer"] == "degradation-clusters"
    assert cfg["env_kwargs"]["reward_metric"] == "psnr"  # filled in from the registered preset
    assert len(cfg["tool_names"]) == len(cfg["param_counts"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(next(tiny_run.glob("tb_*")))).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"restoration/psnr_gain", "restoration/tool_calls", "restoration/stop_rate", "restoration/param_std"} <= tags
    assert {"eval/psnr_gain", "eval/tool_calls", "eval/mean_reward"} <= tags  # the eval's own PSNR gain too
    assert len(acc.Scalars("eval/psnr_gain")) == len(acc.Scalars("eval/mean_reward"))
    # every offered tool and STOP in every rollout (0 when unused), so a tool that is dropped falls to 0
    for name in [*cfg["tool_names"], "STOP"]:
        assert len(acc.Scalars(f"tools/{name}")) == len(acc.Scalars("restoration/psnr_gain")), name
    raw = {k: cfg[k] for k in ("name", "env_id", "env_kwargs", "policy_kwargs", "ppo")}
    copy = Path(shutil.copytree(tiny_run, tmp_path / "tiny"))  # the shared run stays as trained
    run = train_from_dict({**raw, "output_dir": str(tmp_path), "total_timesteps": 192, "eval": {"freq": 0},
                           "checkpoint_freq": 0, "progress_bar": False},
                          resume=str(copy / "checkpoints/model_64_steps.zip"))
    assert run == copy
    from stable_baselines3 import PPO

    assert PPO.load(run / "model.zip", device="cpu").num_timesteps == 192


def test_a_missing_resume_file_changes_nothing(tiny_run: Path) -> None:
    before = (tiny_run / "config.yml").read_bytes()
    cfg = read_model_config(tiny_run / "model.zip")
    raw = {k: cfg[k] for k in ("name", "env_id", "env_kwargs", "policy_kwargs", "ppo", "output_dir")}
    with pytest.raises(FileNotFoundError, match="resume checkpoint not found"):
        train_from_dict({**raw, "total_timesteps": 999, "progress_bar": False}, resume=str(tiny_run / "missing.zip"))
    assert (tiny_run / "config.yml").read_bytes() == before  # the run's config still describes its model


def _raw_of(run: Path) -> dict:
    cfg = read_model_config(run / "model.zip")
    return {k: cfg[k] for k in ("name", "env_id", "env_kwargs", "policy_kwargs", "ppo", "output_dir")}


@pytest.mark.parametrize("section, value, msg", [
    ("env_kwargs", {"imagesize": 64}, "config env_kwargs has no key 'imagesize'"),
    ("env_kwargs", {"max_regions": "four"}, "config env_kwargs: max_regions must be a whole number >= 1, got 'four'"),
    ("policy_kwargs", {"hiden": 16}, "config policy_kwargs has no key 'hiden'"),
    ("policy_kwargs", {"hidden": -3}, "config policy_kwargs.hidden must be a whole number >= 1, got -3"),
    ("ppo", {"learning_rate": "fast"}, "config 'ppo.learning_rate' must be a number > 0, got 'fast'"),
    ("ppo", {"batch_size": 0}, "config 'ppo.batch_size' must be a whole number >= 2, got 0"),
    # training env fine, eval env (test split) impossible: found before the old run is removed (it was deleted)
    ("env_kwargs", {"corpus": "kodak"}, "config eval: the 'kodak' corpus is train-only: it has no 'test' split"),
])
def test_a_bad_config_is_named_and_leaves_the_run_as_it_was(tiny_run: Path, tmp_path: Path, section: str,
                                                            value: dict, msg: str) -> None:
    run = Path(shutil.copytree(tiny_run, tmp_path / "tiny"))
    before = (run / "config.yml").read_bytes()
    raw = {**_raw_of(run), "output_dir": str(tmp_path), "total_timesteps": 64, "progress_bar": False}
    raw[section] = {**raw[section], **value}
    with pytest.raises(ValueError, match=re.escape(msg)):
        train_from_dict(raw, overwrite=True)
    assert (run / "config.yml").read_bytes() == before  # written (and the old run removed) only once all is built
    assert (run / "model.zip").is_file() and (run / "checkpoints").is_dir()
    with pytest.raises(ValueError, match=re.escape(msg)):
        train_from_dict({**raw, "name": "fresh"})
    assert not (tmp_path / "fresh").exists()  # no empty run folder left behind


def test_resume_continues_in_the_checkpoints_run_with_its_eval_history(tiny_run: Path, tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    run = Path(shutil.copytree(tiny_run, tmp_path / "tiny"))
    ckpt = run / "checkpoints" / "model_64_steps.zip"
    raw = {**_raw_of(run), "output_dir": str(tmp_path / "elsewhere"), "eval": {"freq": 64, "episodes": 2},
           "checkpoint_freq": 0, "progress_bar": False}
    with pytest.raises(ValueError, match="already holds 64 steps and total_timesteps is 64: nothing to train"):
        train_from_dict({**raw, "total_timesteps": 64}, resume=str(ckpt))
    with np.load(run / "eval" / "evaluations.npz") as old:
        first = int(old["timesteps"][0])
    out = train_from_dict({**raw, "total_timesteps": 128}, resume=str(ckpt))
    assert out == run and not (tmp_path / "elsewhere").exists()  # the checkpoint's run folder, not the config's
    assert PPO.load(run / "model.zip", device="cpu").num_timesteps == 128
    with np.load(run / "eval" / "evaluations.npz") as new:
        assert [int(t) for t in new["timesteps"]] == [first, 128]  # the evaluation up to step 64 kept
    assert read_model_config(run / "model.zip")["trained_timesteps"] == 128
    (tmp_path / "not.zip").write_text("no")
    with pytest.raises(ValueError, match="is not a model .zip"):
        train_from_dict({**raw, "total_timesteps": 256}, resume=str(tmp_path / "not.zip"))


def test_cli_train_refuses_zero_steps_workers_and_empty_configs(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from ir_env.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\n")
    for argv, msg in ((["--total-timesteps", "0"], "--total-timesteps must be >= 1"),
                      (["--n-envs", "0"], "--n-envs must be >= 1"), (["--output-dir", ""], "--output-dir is empty")):
        assert main(["train", "--config", str(cfg), *argv]) == 2
        assert msg in capsys.readouterr().err
    cfg.write_text("")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "the config is empty" in capsys.readouterr().err


def test_a_broken_model_config_is_named(tmp_path: Path) -> None:
    """config.yml next to a model that is not YAML, or not a training config: one clear error naming the file."""
    from policies import make_planner

    (tmp_path / "model.zip").write_bytes(b"PK")
    for text, msg in ((": : [\n", "config.yml is not valid YAML"), ("- 1\n", "is not a training config")):
        (tmp_path / "config.yml").write_text(text)
        with pytest.raises(ValueError, match=msg):
            read_model_config(tmp_path / "model.zip")
        with pytest.raises(ValueError, match=msg):
            make_planner("ppo", path=str(tmp_path / "model.zip"))


def test_config_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown config key 'lr'"):
        resolve_config({"lr": 1e-3})
    with pytest.raises(ValueError, match="unknown config key .ppo.lr."):
        resolve_config({"ppo": {"lr": 1e-3}})
    with pytest.raises(ValueError, match="algo"):
        resolve_config({"algo": "dqn"})
    with pytest.raises(ValueError, match="env_id"):
        resolve_config({"env_id": "Pong-v5"})
    with pytest.raises(ValueError, match="no reward to learn from"):
        resolve_config({"env_kwargs": {"reward_metric": "none"}})
    with pytest.raises(ValueError, match="final_observation"):
        resolve_config({"env_kwargs": {"final_observation": False}})
    assert "final_observation" not in resolve_config({})["env_kwargs"]
    # an older env id resolves to the latest one with its own dynamics spelled out (what a shipped model records)
    old = resolve_config({"env_id": "ir_env:SpatialIR-v0"})
    assert old["env_id"] == "SpatialIR-v1" and old["env_kwargs"]["budget_end"] == "truncated"
    assert resolve_config({})["env_kwargs"]["budget_end"] == "terminated"
    for ppo, message in (({"gamma": None}, "'ppo.gamma' must be a number in [0, 1], got None"),
                         ({"gamma": 5.0}, "'ppo.gamma' must be a number in [0, 1], got 5.0"),
                         ({"n_steps": "ten"}, "'ppo.n_steps' must be a whole number >= 2, got 'ten'"),
                         ({"batch_size": 1}, "'ppo.batch_size' must be a whole number >= 2"),
                         ({"learning_rate": 0}, "'ppo.learning_rate' must be a number > 0"),
                         ({"clip_range": float("nan")}, "'ppo.clip_range' must be a number > 0, got nan")):
        with pytest.raises(ValueError, match=re.escape(message)):
            resolve_config({"ppo": ppo})
    with pytest.raises(ValueError, match="'n_envs' must be an integer >= 1, got True"):
        resolve_config({"n_envs": True})
    assert resolve_config({"ppo": {"gamma": 0.99, "learning_rate": 1e-4}})["ppo"]["gamma"] == 0.99


def test_cli_train(tmp_path: Path) -> None:
    from ir_env.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: cli\nenv_id: GlobalIR-v1\nenv_kwargs: {image_size: 48, max_steps: 2}\n"
                   "policy_kwargs: {hidden: 16}\nppo: {n_steps: 32, batch_size: 16, n_epochs: 1}\n"
                   "total_timesteps: 32\neval: {freq: 0}\ncheckpoint_freq: 0\n")
    assert main(["train", "--config", str(cfg), "--output-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    assert (tmp_path / "runs/cli/model.zip").is_file() and (tmp_path / "runs/cli/config.yml").is_file()
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2


def test_ppo_planner_restores_with_exact_replay(tiny_run: Path, photo: np.ndarray) -> None:
    from ir_env.recipes import synthesize
    from policies import make_planner

    scene = synthesize(center_crop(photo, 64), recipe="spatial-mixed", seed=5)
    planner = make_planner("ppo", path=tiny_run / "model.zip", gate="off")  # the policy itself, no gate
    assert planner.mode == "spatial" and planner.region_proposer == "degradation-clusters"
    res = planner.restore(scene.degraded)
    assert res.image.shape == (64, 64, 3) and res.image.dtype == np.float32
    assert res.iqa_calls == 0 and res.planner == "ppo"
    assert res.tool_calls == len(res.trace) <= 3
    assert 1 <= len(res.masks) <= 4
    assert np.array_equal(res.replay(scene.degraded), res.image)
    again = make_planner("ppo", path=tiny_run / "model.zip", gate="off").restore(scene.degraded)
    assert np.array_equal(again.image, res.image)  # deterministic
    gated = make_planner("ppo", path=tiny_run / "model.zip").restore(scene.degraded)  # the default gate
    kept = [(s.tool, s.region) for s in gated.trace]
    assert kept == [(s.tool, s.region) for s in res.trace if (s.tool, s.region) in kept]  # a subsequence
    assert np.array_equal(gated.replay(scene.degraded), gated.image)
    # the planner observes exactly what the training env observes for the same scene and regions
    env = gym.make("SpatialIR-v1", **read_model_config(tiny_run / "model.zip")["env_kwargs"]).unwrapped
    env_obs, _ = env.reset(seed=0, options={"scene": scene})
    masks = env.state.masks[env.state.valid]
    planner_obs = planner.observe(scene.degraded, masks)
    for key in env_obs:
        assert np.array_equal(env_obs[key], planner_obs[key]), key


def test_ppo_planner_errors(tiny_run: Path, tmp_path: Path) -> None:
    from policies import list_planners, make_planner

    assert {"ppo", "maskable_ppo"} <= set(list_planners())
    with pytest.raises(FileNotFoundError, match="spatial-ir train"):
        make_planner("ppo", path=tmp_path / "nothing.zip")
    with pytest.raises(ValueError, match="algo 'maskable'"):
        make_planner("maskable_ppo", path=tiny_run / "model.zip")
    with pytest.raises(ValueError, match="max_regions"):
        make_planner("ppo", path=tiny_run / "model.zip", max_regions=8)


def test_saved_config_records_the_encoder_weights_observed() -> None:
    from ir_env.encoder import DEFAULT_WEIGHTS
    from ir_env.encoder.learned import weights_fingerprint
    from policies.ppo.train import _tool_info

    base = {"env_id": "SpatialIR-v1", "algo": "hybrid", "bins": 5}
    learned = _tool_info({**base, "env_kwargs": {"image_size": 48, "max_regions": 2, "embedding": "learned"}})
    hand = _tool_info({**base, "env_kwargs": {"image_size": 48, "max_regions": 2, "embedding": "handcrafted"}})
    assert learned["encoder_sha256"] == weights_fingerprint(DEFAULT_WEIGHTS)
    assert hand["encoder_sha256"] is None and hand["tool_names"] == learned["tool_names"]


@pytest.mark.parametrize("change, msg", [
    ({"eval": {"split": "tset"}}, "config 'eval.split' must be one of train, test, all, got 'tset'"),
    ({"eval": {"freq": "abc"}}, "config 'eval.freq' must be an integer >= 0, got 'abc'"),
    ({"eval": {"episodes": 0.5}}, "config 'eval.episodes' must be an integer >= 0, got 0.5"),
    ({"checkpoint_freq": 1.5}, "config 'checkpoint_freq' must be an integer >= 0, got 1.5"),
    ({"verbose": "x"}, "config 'verbose' must be an integer >= 0"),
    ({"seed": -1}, "config 'seed' must be an integer in [0, 2**32)"),
])
def test_eval_and_checkpoint_settings_are_checked_before_the_run_folder(tiny_run: Path, tmp_path: Path, change: dict,
                                                                       msg: str) -> None:
    run = Path(shutil.copytree(tiny_run, tmp_path / "tiny"))
    before = (run / "config.yml").read_bytes()
    raw = {**_raw_of(run), "output_dir": str(tmp_path), "total_timesteps": 256, "progress_bar": False, **change}
    with pytest.raises(ValueError, match=re.escape(msg)):
        train_from_dict(raw, resume=str(run / "model.zip"))
    assert (run / "config.yml").read_bytes() == before


def test_a_checkpoint_loads_as_a_planner(tiny_run: Path) -> None:
    from policies import make_planner

    ckpt = sorted((tiny_run / "checkpoints").glob("model_*_steps.zip"))[0]
    planner = make_planner("ppo", path=str(ckpt), gate="off")
    img = np.random.default_rng(0).random((48, 48, 3)).astype(np.float32)
    assert planner.restore(img).image.shape == (48, 48, 3)


def test_run_names_are_folder_names() -> None:
    from policies.ppo.config import resolve_config

    for name in ("", None, "a/b"):
        with pytest.raises(ValueError, match="config 'name' must be a folder name"):
            resolve_config({"name": name})


def test_an_existing_run_is_refused_unless_resumed_or_overwritten(tiny_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(tiny_run, tmp_path / "tiny"))
    before = (run / "model.zip").read_bytes()
    raw = {**_raw_of(run), "output_dir": str(tmp_path), "total_timesteps": 64, "progress_bar": False,
           "eval": {"freq": 0}, "checkpoint_freq": 0}
    with pytest.raises(ValueError, match=r"run folder .*tiny already holds a run \(model.zip, best_model.zip, "
                                         r"config.yml, checkpoints/, eval/, tb_1/\).*--overwrite"):
        train_from_dict(raw)
    assert (run / "model.zip").read_bytes() == before
    # resuming a checkpoint of ANOTHER folder into this one is refused too
    other = Path(shutil.copytree(tiny_run, tmp_path / "other"))
    with pytest.raises(ValueError, match="already holds a run"):
        train_from_dict({**raw, "total_timesteps": 256}, resume=str(other / "model.zip"), output_dir=str(tmp_path))
    out = train_from_dict(raw, overwrite=True)
    assert out == run
    assert not (run / "checkpoints").exists() and not (run / "eval").exists()  # no stale outputs
    assert not (run / "best_model.zip").exists()
    assert [p.name for p in run.glob("tb_*")] == ["tb_1"]  # a fresh log, not tb_2 beside the old one
    from stable_baselines3 import PPO

    assert PPO.load(run / "model.zip", device="cpu").num_timesteps == 64


def test_an_interrupted_run_keeps_its_model_for_resume(tiny_run: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during learn(): model.zip and config.yml (trained_timesteps, interrupted) are written, so the advice
    '--resume <run>/model.zip' the next start gives points at a file that exists."""
    from stable_baselines3 import PPO

    def stop(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(PPO, "learn", stop)
    raw = {**_raw_of(tiny_run), "output_dir": str(tmp_path), "total_timesteps": 256, "progress_bar": False}
    with pytest.raises(KeyboardInterrupt):
        train_from_dict(raw)
    run = tmp_path / raw["name"]
    cfg = read_model_config(run / "model.zip")
    assert cfg["interrupted"] is True and cfg["trained_timesteps"] == 0
    with pytest.raises(ValueError, match=f"continue it with --resume {run}/model.zip"):
        train_from_dict(raw)


def test_resume_refuses_settings_the_checkpoint_would_ignore(tiny_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(tiny_run, tmp_path / "tiny"))
    before = (run / "config.yml").read_bytes()
    raw = {**_raw_of(run), "output_dir": str(tmp_path), "total_timesteps": 256, "progress_bar": False}
    raw["ppo"] = {**raw["ppo"], "ent_coef": 0.05}
    with pytest.raises(ValueError, match=r"keeps its own settings.*ppo.ent_coef: checkpoint 0.01, config 0.05"):
        train_from_dict(raw, resume=str(run / "model.zip"))
    raw = {**_raw_of(run), "output_dir": str(tmp_path), "total_timesteps": 256, "progress_bar": False,
           "policy_kwargs": {"hidden": 32}}
    with pytest.raises(ValueError, match=r"policy_kwargs.hidden: checkpoint 16, config 32"):
        train_from_dict(raw, resume=str(run / "model.zip"))
    raw = {**_raw_of(run), "output_dir": str(tmp_path), "total_timesteps": 256, "progress_bar": False}
    raw["env_kwargs"] = {**raw["env_kwargs"], "recipe": "mixed-3", "step_cost": 0.5}  # same spaces, other task
    with pytest.raises(ValueError, match=r"env_kwargs.recipe: checkpoint 'spatial-mixed', config 'mixed-3'; "
                                         r"env_kwargs.step_cost: checkpoint 0.02, config 0.5"):
        train_from_dict(raw, resume=str(run / "model.zip"))
    junk = tmp_path / "junk.zip"
    import zipfile

    with zipfile.ZipFile(junk, "w") as z:
        z.writestr("notes.txt", "not a model")
    with pytest.raises(ValueError, match="resume checkpoint .*junk.zip: .*not a model saved by stable-baselines3"):
        train_from_dict({**_raw_of(run), "output_dir": str(tmp_path / "j"), "total_timesteps": 256,
                         "progress_bar": False}, resume=str(junk))
    with pytest.raises(ValueError, match="config 'output_dir' must name a folder"):
        resolve_config({"output_dir": None})
    assert (run / "config.yml").read_bytes() == before


def test_a_model_trained_in_a_script_is_saved_for_the_planner(tmp_path: Path) -> None:
    """README's Python route: make_hybrid_ppo + learn in your own script, then save_model -> make_planner."""
    from policies import make_planner
    from policies.ppo.train import save_model

    model = make_hybrid_ppo(BoxAction(gym.make("SpatialIR-Lite-v1", image_size=48)), n_steps=32, batch_size=32,
                            seed=0, device="cpu")
    model.learn(32)
    path = save_model(model, tmp_path / "mine", "SpatialIR-Lite-v1", {"image_size": 48})
    cfg = read_model_config(path)
    assert path == tmp_path / "mine" / "model.zip" and cfg["trained_timesteps"] == 32
    assert cfg["env_kwargs"]["image_size"] == 48 and cfg["algo"] == "hybrid" and cfg["tool_names"]
    img = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    res = make_planner("ppo", path=str(path), gate="off").restore(img)
    assert res.image.shape == img.shape and res.iqa_calls == 0
    with pytest.raises(ValueError, match="observation_space .* is not that of SpatialIR-Lite-v1 with env_kwargs "
                                         "\\{'max_regions': 3\\}"):
        save_model(model, tmp_path / "bad", "SpatialIR-Lite-v1", {"max_regions": 3})
    with pytest.raises(ValueError, match="trained on an env with region_proposer='grid', but SpatialIR-Lite-v1 "
                                         "with env_kwargs .* has 'slic'"):  # same spaces, other regions
        save_model(model, tmp_path / "bad", "SpatialIR-Lite-v1", {"image_size": 48, "region_proposer": "slic"})
    assert not (tmp_path / "bad").exists()
    for env_id, kw, what in [("SpatialIR-Lite-v1", {"image_size": 64}, "image_size=48"),  # same spaces
                             ("SpatialIR-Lite-v1", {"image_size": 48, "step_cost": 0.5}, "step_cost=0.02"),
                             ("SpatialIR-Lite-v0", {"image_size": 48}, "budget_end='terminated'")]:
        with pytest.raises(ValueError, match=f"trained on an env with {what}"):
            save_model(model, tmp_path / "bad", env_id, kw)
    with pytest.raises(ValueError, match="save_model env_kwargs has no key 'imagesize'"):
        save_model(model, tmp_path / "bad", "SpatialIR-Lite-v1", {"imagesize": 48})
    from stable_baselines3 import A2C

    other = A2C("MultiInputPolicy", BoxAction(gym.make("SpatialIR-Lite-v1", image_size=48)), device="cpu")
    with pytest.raises(ValueError, match="saves PPO with the hybrid policy .* got A2C"):
        save_model(other, tmp_path / "bad", "SpatialIR-Lite-v1", {"image_size": 48})
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="already holds a run .* save into another folder, or pass overwrite=True"):
        save_model(model, tmp_path / "mine", "SpatialIR-Lite-v1", {"image_size": 48})
    assert save_model(model, tmp_path / "mine", "SpatialIR-Lite-v1", {"image_size": 48}, overwrite=True) == path
    assert "ppo" not in read_model_config(path) and read_model_config(path)["budget_end"] == "terminated"
    # the run folder itself is a path the planner takes (its model.zip)
    folder = make_planner("ppo", path=str(tmp_path / "mine"), gate="off").restore(img).image
    assert np.array_equal(folder, res.image)


def test_a_resumed_run_keeps_its_evaluation_steps_and_is_reproducible(tiny_run: Path, tmp_path: Path) -> None:
    """Resumed at step 64 with evaluations every 128 steps, the next evaluation is at step 128 (SB3's callbacks
    counted from the resume: it came at 192); two resumes of one checkpoint train the same model."""
    from stable_baselines3 import PPO

    params = []
    for copy in ("a", "b"):
        run = Path(shutil.copytree(tiny_run, tmp_path / copy / "tiny"))
        raw = {**_raw_of(run), "output_dir": str(tmp_path / copy), "eval": {"freq": 128, "episodes": 2},
               "checkpoint_freq": 128, "progress_bar": False, "total_timesteps": 192}
        with pytest.raises(ValueError, match=r"eval.episodes 1 \(its .*evaluations.npz holds 2 episodes per "):
            train_from_dict({**raw, "eval": {"freq": 128, "episodes": 1}},
                            resume=str(run / "checkpoints" / "model_64_steps.zip"))
        for old in (run / "checkpoints").glob("*.zip"):
            if old.name != "model_64_steps.zip":
                old.unlink()
        train_from_dict(raw, resume=str(run / "checkpoints" / "model_64_steps.zip"))
        with np.load(run / "eval" / "evaluations.npz") as ev:
            assert [int(t) for t in ev["timesteps"]] == [64, 128]
        assert sorted(p.name for p in (run / "checkpoints").glob("*.zip")) == ["model_128_steps.zip",
                                                                               "model_64_steps.zip"]
        params.append(PPO.load(run / "model.zip", device="cpu").policy.state_dict())
    for k, v in params[0].items():
        assert th.equal(v, params[1][k]), k


def test_user_script_mistakes_are_named() -> None:
    """VecNormalize on every key made the hybrid policy mask every region (STOP only, silently); bad
    policy_kwargs values reached torch ('negative dimension -3'); wrong bins in save_model named no option."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from policies.ppo.policy import check_policy_kwargs

    venv = VecNormalize(DummyVecEnv([lambda: _lite_env()]))
    model = make_hybrid_ppo(venv, {"hidden": 16}, n_steps=8, batch_size=8, device="cpu")
    with pytest.raises(ValueError, match="'valid' must hold 0/1 flags.*norm_obs_keys=\\['regions'\\]"):
        model.learn(16)
    ok = VecNormalize(DummyVecEnv([lambda: _lite_env()]), norm_obs_keys=["regions"])
    make_hybrid_ppo(ok, {"hidden": 16}, n_steps=8, batch_size=8, device="cpu").learn(16)  # the advice works
    for kwargs, message in (({"hidden": "abc"}, "policy_kwargs.hidden must be a whole number >= 1, got 'abc'"),
                            ({"hidden": -3}, "hidden must be a whole number >= 1, got -3"),
                            ({"hidden": 18}, "hidden must be a multiple of 4"),
                            ({"log_std_init": [1, 2]}, "log_std_init must be a finite number"),
                            ({"attention": "yes"}, "attention must be true or false"),
                            ({"region_features": 0}, "region_features must be null or a whole number")):
        with pytest.raises(ValueError, match=re.escape(message)):
            check_policy_kwargs(kwargs)
        with pytest.raises(ValueError, match=re.escape(message)):
            make_hybrid_ppo(DummyVecEnv([lambda: _lite_env()]), kwargs, n_steps=8, batch_size=8, device="cpu")
    check_policy_kwargs({"hidden": 18, "attention": False})  # no heads to divide among


def test_save_model_names_the_bins_of_a_maskable_model(tmp_path: Path) -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    from policies.ppo.train import save_model

    env = MultiDiscreteAction(gym.make("SpatialIR-Lite-v1", image_size=48, max_steps=3), bins=3)
    model = make_maskable_ppo(DummyVecEnv([lambda: env]), n_steps=8, batch_size=8, device="cpu")
    with pytest.raises(ValueError, match="take 3 bins each, not 5: pass bins=3"):
        save_model(model, tmp_path / "m", "SpatialIR-Lite-v1", {"image_size": 48, "max_steps": 3})
    assert save_model(model, tmp_path / "m", "SpatialIR-Lite-v1", {"image_size": 48, "max_steps": 3},
                      bins=3).is_file()


def test_training_refuses_a_missing_gpu_and_names_env_changes_before_loading(tiny_run: Path, tmp_path: Path) -> None:
    """device: cuda trained on the CPU without a word; resuming with a config whose env has other spaces gave
    SB3's 'Observation spaces do not match' and a hint that the zip was not a model."""
    raw = {**_raw_of(tiny_run), "output_dir": str(tmp_path), "total_timesteps": 256, "progress_bar": False}
    if not th.cuda.is_available():
        with pytest.raises(ValueError, match="config device: device 'cuda' requested but CUDA is not available"):
            train_from_dict({**raw, "name": "gpu", "device": "cuda"})
        assert not (tmp_path / "gpu").exists()
    with pytest.raises(ValueError, match="config device: device must be 'cpu' or 'cuda"):
        train_from_dict({**raw, "name": "gpu", "device": "gpu0"})
    changed = {**raw, "env_kwargs": {**raw["env_kwargs"], "max_steps": 2}}
    with pytest.raises(ValueError, match=r"keeps its own settings, which the config changes \(env_kwargs.max_steps: "
                                         r"checkpoint 3, config 2\)"):
        train_from_dict(changed, resume=str(tiny_run / "model.zip"))
    with pytest.raises(ValueError, match="algo: checkpoint hybrid, config maskable"):
        train_from_dict({**raw, "algo": "maskable", "policy_kwargs": {}}, resume=str(tiny_run / "model.zip"))


def test_training_on_a_held_out_recipe_warns(tiny_run: Path, tmp_path: Path) -> None:
    raw = {**_raw_of(tiny_run), "output_dir": str(tmp_path), "name": "b", "progress_bar": False,
           "device": "bogus"}  # the warning comes first; the bad device then stops the run before any work
    raw["env_kwargs"] = {**raw["env_kwargs"], "recipe": "agenticir-B"}
    with pytest.warns(UserWarning, match="unseen-combination test recipes"), pytest.raises(ValueError, match="device"):
        train_from_dict(raw)


def test_a_tool_registered_later_does_not_stop_a_trained_model_from_loading(tiny_run: Path) -> None:
    """A plugin tool (``spatial_ir.tools`` entry point or register_tool) is not one of a trained model's actions:
    the planner's env offers the tools recorded in config.yml, in their order (fresh interpreter: the registry
    is process-wide)."""
    import subprocess
    import sys

    code = f"""
import numpy as np
from restorers import ParamSpec, Tool, register_tool
register_tool(Tool("my_brighten", "dark", (ParamSpec("k", 0.0, 1.0, 0.5),), lambda image, k=0.5: image))
from policies import make_planner
for spec in ({{"name": "ppo"}}, {{"name": "distilled"}}, {{"name": "ppo", "path": {str(tiny_run / "model.zip")!r}}}):
    p = make_planner(spec.pop("name"), **spec)
    assert "my_brighten" not in p.env.unwrapped.tool_names and p.env.unwrapped.tool_names == p.config["tool_names"]
    img = np.random.default_rng(0).random((48, 48, 3), dtype=np.float32)
    assert all(s.tool != "my_brighten" for s in p.restore(img).trace)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_a_damaged_or_mismatched_model_is_one_error_naming_the_file(tiny_run: Path, tmp_path: Path) -> None:
    import shutil
    import zipfile

    from policies import make_planner

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run / "config.yml", run / "config.yml")
    with zipfile.ZipFile(tiny_run / "model.zip") as src, zipfile.ZipFile(run / "model.zip", "w") as dst:
        for item in src.infolist():  # the weights replaced by bytes torch cannot read
            dst.writestr(item, b"not a torch file" if item.filename == "policy.pth" else src.read(item))
    with pytest.raises(ValueError, match=r"model.zip is damaged or not a stable-baselines3 PPO model"):
        make_planner("ppo", path=run / "model.zip")
    (run / "model.zip").write_bytes((tiny_run / "model.zip").read_bytes()[:2000])  # truncated
    with pytest.raises(ValueError, match="is damaged or not|not a zip|stable-baselines3"):
        make_planner("ppo", path=run / "model.zip")
    # the global model copied beside this run's config.yml: observations of other shapes
    shutil.copy("policies/ppo/models/ppo_global/model.zip", run / "model.zip")
    with pytest.raises(ValueError, match="do not belong together"):
        make_planner("ppo", path=run / "model.zip")


def test_a_model_trained_on_normalised_observations_is_deployed_with_its_statistics(tmp_path: Path) -> None:
    """README: VecNormalize(venv, norm_obs_keys=["regions"]) for your own training. save_model keeps the statistics
    and the planner feeds the policy what it was trained on (it used to feed raw embeddings without a word)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from policies import make_planner
    from policies.ppo.train import save_model

    venv = VecNormalize(DummyVecEnv([lambda: BoxAction(gym.make("SpatialIR-Lite-v1", image_size=48))]),
                        norm_obs_keys=["regions"])
    model = make_hybrid_ppo(venv, n_steps=32, batch_size=32, seed=0, device="cpu")
    model.learn(64)
    path = save_model(model, tmp_path / "vn", "SpatialIR-Lite-v1", {"image_size": 48})
    assert read_model_config(path)["obs_normalization"] == "vecnormalize.pkl"
    planner = make_planner("ppo", path=str(path), gate="off")
    obs = planner.observe(np.random.default_rng(1).random((48, 48, 3), dtype=np.float32),
                          np.ones((1, 48, 48), bool))
    want = venv.normalize_obs(obs)  # what the policy saw in training (statistics frozen at save)
    got = planner.normalise(obs)
    np.testing.assert_allclose(got["regions"], want["regions"], rtol=1e-6)
    assert np.array_equal(got["valid"], obs["valid"]) and not np.allclose(got["regions"], obs["regions"])
    mean = planner.obs_normalizer.obs_rms["regions"].mean.copy()
    planner.restore(np.random.default_rng(2).random((48, 48, 3), dtype=np.float32))
    assert np.array_equal(planner.obs_normalizer.obs_rms["regions"].mean, mean)  # frozen while deployed
    (tmp_path / "vn" / "vecnormalize.pkl").unlink()
    with pytest.raises(ValueError, match="trained on normalised observations, but its statistics file"):
        make_planner("ppo", path=str(path))
    with pytest.raises(ValueError, match="use_sde is not supported"):
        make_hybrid_ppo(venv, n_steps=32, batch_size=32, use_sde=True)


def test_stop_and_unused_dims_never_make_a_log_prob_nan() -> None:
    """At an extreme log_std the unused dims' Gaussian terms overflow; they used to be multiplied by 0 (NaN), and a
    NaN gradient stayed even when the value was masked."""
    from policies.ppo.distribution import HybridActionDistribution

    # STOP at -100 (exp(-log_std) overflows float32); tool 1 at its mean on its one own dim at -60
    for value, actions in ((-100.0, [[4.0, 0.3, -0.2]]), (-60.0, [[4.0, 0.0, 0.0], [1.0, 0.5, 0.7]])):
        n = len(actions)
        log_std = th.full((2, 2), value, requires_grad=True)
        means = th.full((n, 2, 2, 2), 0.5, requires_grad=True)
        d = HybridActionDistribution([2, 1], num_regions=2, num_params=2)
        d.proba_distribution(th.zeros(n, 2, 2), th.zeros(n), means, log_std, th.tensor([[1.0, 0.0]] * n))
        lp = d.log_prob(th.tensor(actions))  # the second row's dim 1 (0.7) is not tool 1's: it must not count
        assert th.isfinite(lp).all()
        lp.sum().backward()
        assert th.isfinite(log_std.grad).all() and th.isfinite(means.grad).all()  # no NaN gradient either

def test_resuming_an_older_checkpoint_sets_the_later_outputs_aside(tiny_run: Path, tmp_path: Path) -> None:
    """The abandoned branch's later checkpoints and its best_model.zip (possibly from an evaluation the resumed run
    dropped from its history) used to stay beside the resumed run's; they are moved to abandoned_after_<step>/ and
    best_model.zip is the kept history's best again (its checkpoint)."""
    run = Path(shutil.copytree(tiny_run, tmp_path / "r" / "tiny"))
    with np.load(run / "eval" / "evaluations.npz") as ev:
        assert [int(t) for t in ev["timesteps"]] == [64, 128]
    later = (run / "checkpoints" / "model_128_steps.zip").read_bytes()
    old_best = (run / "best_model.zip").read_bytes()
    raw = {**_raw_of(run), "output_dir": str(tmp_path / "r"), "eval": {"freq": 64, "episodes": 2},
           "checkpoint_freq": 64, "progress_bar": False, "total_timesteps": 96}
    train_from_dict(raw, resume=str(run / "checkpoints" / "model_64_steps.zip"))
    aside = run / "abandoned_after_64"
    assert (aside / "model_128_steps.zip").read_bytes() == later
    assert (aside / "best_model.zip").read_bytes() == old_best and (aside / "model.zip").is_file()
    assert (run / "checkpoints" / "model_128_steps.zip").read_bytes() != later  # the resumed run's own step 128
    with np.load(run / "eval" / "evaluations.npz") as ev:
        steps, means = [int(t) for t in ev["timesteps"]], ev["results"].mean(axis=1)
    assert steps == [64, 128]  # 64 kept, 128 evaluated again by the resumed run
    best = run / "checkpoints" / f"model_{steps[int(np.argmax(means))]}_steps.zip"
    from stable_baselines3 import PPO

    got, want = PPO.load(run / "best_model.zip").policy.state_dict(), PPO.load(best).policy.state_dict()
    assert all(th.equal(v, want[k]) for k, v in got.items())  # the best of the history as it now stands
    from policies.ppo.train import run_outputs

    assert aside in run_outputs(run)  # removed with the rest by --overwrite
