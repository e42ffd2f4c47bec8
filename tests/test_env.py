"""The Gymnasium environment, its registration and the SB3 action wrappers."""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import numpy as np
import pytest

import ir_env
from ir_env.env import SpatialIREnv, tool_cost
from ir_env.wrappers import BoxAction, MultiDiscreteAction

SMALL = {"image_size": 64, "max_steps": 3}
ENV_IDS = sorted(ir_env.ENV_SPECS)

# Warnings check_env may raise that are expected for this env (and why):
ALLOWED_WARNINGS = (
    # observation Boxes have finite but wide bounds; regions are clipped to +-EMBED_BOUND
    "not normalized",
    "lower and upper bounds",
)


def make(env_id: str, **kw) -> gym.Env:  # noqa: ANN003
    cfg = dict(SMALL)
    cfg.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Gymnasium: the -v0 ids are out of date (on purpose)
        return gym.make(env_id, **cfg)


def test_registration_is_idempotent() -> None:
    before = {k for k in gym.registry if "IR-" in k}
    ir_env.register_envs()
    ir_env.register_envs()
    assert {k for k in gym.registry if "IR-" in k} == before
    assert {"SpatialIR-v1", "GlobalIR-v1", "SpatialIR-Lite-v1"} <= before


def test_module_qualified_id() -> None:
    env = gym.make("ir_env:SpatialIR-Lite-v1")
    obs, _ = env.reset(seed=0)
    assert obs["regions"].dtype == np.float32


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = make(env_id, render_mode="rgb_array").unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=False)
    unexpected = [str(w.message) for w in caught
                  if not any(a in str(w.message) for a in ALLOWED_WARNINGS)
                  and "env_checker" in (w.filename or "") + str(w.category)]
    assert not unexpected, unexpected


@pytest.mark.parametrize("wrapper", [BoxAction, MultiDiscreteAction])
def test_sb3_check_env_on_wrappers(wrapper: type) -> None:
    from stable_baselines3.common.env_checker import check_env

    env = wrapper(make("SpatialIR-Lite-v1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # SB3's advice on non-normalised Box observations
        check_env(env, warn=True)


def test_wrong_shaped_actions_are_refused_not_flattened() -> None:
    """A (2, 2) array has the 4 numbers of a Box / MultiDiscrete action but is not one: refused with its own
    shape. A leading batch axis of size 1 (what a batched predict gives) is accepted."""
    box, md = BoxAction(make("SpatialIR-Lite-v1")), MultiDiscreteAction(make("SpatialIR-Lite-v1"))
    box.reset(seed=0)
    md.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape("Box action must have shape (4,) ([joint index, θ1..θP]), "
                                                   "got (2, 2)")):
        box.step(np.array([[3, 0.5], [0.2, 0.1]], np.float32))
    with pytest.raises(ValueError, match="BoxAction env takes a Box vector .* not a Dict action"):
        box.step({"region": 0, "tool": 0, "params": np.zeros(3)})
    with pytest.raises(ValueError, match=re.escape("MultiDiscrete action must have shape (4,)")):
        md.step(np.array([[3, 1], [2, 1]]))
    with pytest.raises(ValueError, match="MultiDiscrete action must hold whole numbers"):
        md.step([0.5, 0, 0, 0])
    base = box.unwrapped
    with pytest.raises(ValueError, match=re.escape("action params must have shape (3,), got (3, 1)")):
        base.step({"region": 0, "tool": 0, "params": np.zeros((3, 1))})
    with pytest.raises(ValueError, match="action params must be 3 numbers in \\[-1, 1\\], got 'abc'"):
        base.step({"region": 0, "tool": 0, "params": "abc"})
    assert box.step(np.zeros((1, 4), np.float32))[4]["steps"] == 1  # a batch of one
    assert md.step(np.zeros((1, 4), np.int64))[4]["steps"] == 1


@pytest.mark.parametrize("wrapper", [BoxAction, MultiDiscreteAction])
def test_gymnasium_check_env_on_wrappers(wrapper: type) -> None:
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check_env(wrapper(make("SpatialIR-Lite-v1")), skip_render_check=True)  # re-creates the wrapper too


def _rollout(env: gym.Env, seed: int, n: int = 3) -> tuple[list, list[float], np.ndarray]:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    obs_list, rewards = [obs], []
    for _ in range(n):
        a = env.action_space.sample()
        a["tool"] = min(int(a["tool"]), env.unwrapped.num_tools - 1)  # no STOP, so steps happen
        obs, r, term, trunc, _ = env.step(a)
        obs_list.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return obs_list, rewards, env.unwrapped.current_image


def test_same_seed_same_episode() -> None:
    a = _rollout(make("SpatialIR-v1"), seed=7)
    b = _rollout(make("SpatialIR-v1"), seed=7)
    for oa, ob in zip(a[0], b[0], strict=False):
        for k in oa:
            assert np.array_equal(oa[k], ob[k]), k
    assert a[1] == b[1]
    assert np.array_equal(a[2], b[2])
    c = _rollout(make("SpatialIR-v1"), seed=8)
    assert not np.array_equal(a[0][0]["regions"], c[0][0]["regions"])


def test_no_nan_in_observations_over_random_rollouts() -> None:
    env = make("SpatialIR-v1", max_steps=4)
    for seed in range(4):
        obs_list, rewards, img = _rollout(env, seed, n=4)
        for obs in obs_list:
            assert env.observation_space.contains(obs)
            for k, v in obs.items():
                assert np.all(np.isfinite(v)), k
        assert np.all(np.isfinite(rewards))
        assert np.all(np.isfinite(img))


def test_actions_outside_space_raise_clear_errors() -> None:
    env = make("SpatialIR-Lite-v1")
    env.reset(seed=0)
    base = env.unwrapped
    p = np.zeros(base.num_params, np.float32)
    with pytest.raises(ValueError, match="region"):
        env.step({"region": base.max_regions, "tool": 0, "params": p})
    with pytest.raises(ValueError, match="tool"):
        env.step({"region": 0, "tool": base.num_tools + 1, "params": p})
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        env.step({"region": 0, "tool": 0, "params": p + 2})
    with pytest.raises(ValueError, match="NaN"):
        env.step({"region": 0, "tool": 0, "params": p * np.nan})
    with pytest.raises(ValueError, match="shape"):
        env.step({"region": 0, "tool": 0, "params": np.zeros(base.num_params + 1)})
    with pytest.raises(ValueError, match="missing"):
        env.step({"region": 0, "tool": 0})
    wrapped = BoxAction(make("SpatialIR-Lite-v1"))
    wrapped.reset(seed=0)
    with pytest.raises(ValueError, match="outside"):
        wrapped.step(wrapped.action_space.high + 1)
    md = MultiDiscreteAction(make("SpatialIR-Lite-v1"))
    md.reset(seed=0)
    with pytest.raises(ValueError, match="outside"):
        md.step(md.action_space.nvec)


def test_padded_region_is_a_noop_with_step_cost() -> None:
    env = make("SpatialIR-v1", region_proposer="oracle", max_regions=8, step_cost=0.05)
    obs, _ = env.reset(seed=1)
    base = env.unwrapped
    padded = int(np.flatnonzero(obs["valid"] == 0)[0])
    before = base.current_image
    tool = 0
    obs2, r, term, trunc, info = env.step({"region": padded, "tool": tool, "params": np.zeros(base.num_params)})
    assert np.array_equal(base.current_image, before)
    assert r == pytest.approx(-0.05 * tool_cost(base.tools[tool]))
    assert info["rewards"]["quality_gain"] == 0.0
    assert not term
    assert np.array_equal(obs2["regions"], obs["regions"])
    assert obs2["steps_left"][0] == obs["steps_left"][0] - 1


def test_stop_terminates_and_reports_episode() -> None:
    env = make("SpatialIR-Lite-v1")
    env.reset(seed=3)
    base = env.unwrapped
    _, r, term, trunc, info = env.step({"region": 0, "tool": base.num_tools, "params": np.zeros(base.num_params)})
    assert term and not trunc and r == 0.0
    assert info["psnr_gain"] == pytest.approx(0.0, abs=1e-9)
    assert info["is_success"] is False
    assert info["trace"] == []


def test_budget_ends_the_episode_as_terminal_and_reward_telescopes_to_psnr_gain() -> None:
    """The last budgeted step is terminal (``steps_left`` is observed: nothing can follow), never truncated, so
    stable-baselines3 does not bootstrap its reward from an untrained value; every step carries the running
    ``psnr_gain`` / ``quality_gain`` / ``tool_calls`` / ``is_success``, the last one the summary."""
    env = make("SpatialIR-Lite-v1", step_cost=0.0)
    env.reset(seed=5)
    base = env.unwrapped
    total, term, info = 0.0, False, {}
    k = 0
    while not term:
        a = {"region": k % base.max_regions, "tool": k % base.num_tools, "params": np.zeros(base.num_params)}
        obs, r, term, trunc, info = env.step(a)
        assert not trunc
        total += r
        k += 1
        assert info["steps"] == k and info["psnr_gain"] == pytest.approx(total, abs=1e-4)  # running figures
        assert info["is_success"] == (info["psnr_gain"] > 1e-6) and "tool_calls" in info
        assert ("trace" in info) == (k == base.max_steps)
    assert k == base.max_steps and obs["steps_left"][0] == 0
    assert total == pytest.approx(info["psnr_gain"], abs=1e-4)
    assert len(info["trace"]) == base.max_steps
    assert {"psnr_in", "psnr_out", "ssim_in", "ssim_out", "is_success", "rewards"} <= set(info)


@pytest.mark.parametrize("family", ["SpatialIR-Lite", "GlobalIR"])
def test_v0_ids_truncate_at_the_budget_where_v1_terminates(family: str) -> None:
    """The -v1 ids changed one thing against -v0: a spent step budget is terminal. Both play the same scene and
    rewards; -v0 (the dynamics of the models shipped before stop 32) ends it with ``truncated=True``."""
    ends = {}
    for version in ("v0", "v1"):
        env = make(f"{family}-{version}", max_steps=2, step_cost=0.0)
        env.reset(seed=7)
        base = env.unwrapped
        out = [env.step({"region": 0, "tool": t, "params": np.zeros(base.num_params)}) for t in (0, 1)]
        ends[version] = [(o[2], o[3]) for o in out], [round(o[1], 6) for o in out], out[-1][4]
        with pytest.raises(RuntimeError, match="episode has ended"):
            env.step({"region": 0, "tool": 0, "params": np.zeros(base.num_params)})
    assert ends["v1"][0] == [(False, False), (True, False)]
    assert ends["v0"][0] == [(False, False), (False, True)]
    assert ends["v0"][1] == ends["v1"][1]  # same rewards
    for version in ("v0", "v1"):  # the summary comes with whichever flag ends the episode
        assert {"psnr_in", "psnr_out", "trace"} <= set(ends[version][2])
        assert ends[version][2]["psnr_out"] == pytest.approx(ends["v1"][2]["psnr_out"])


def test_latest_env_id_and_the_budget_end_option() -> None:
    assert ir_env.latest_env_id("SpatialIR-v0") == "SpatialIR-v1"
    assert ir_env.latest_env_id("ir_env:GlobalIR-v0") == "ir_env:GlobalIR-v1"  # the module prefix is kept
    assert ir_env.latest_env_id("SpatialIR") == "SpatialIR-v1"
    assert ir_env.latest_env_id("SpatialIR-Lite-v1") == "SpatialIR-Lite-v1"
    assert set(ir_env.LATEST_ENV_IDS) <= set(ir_env.ENV_SPECS)
    with pytest.raises(ValueError, match="unknown env id 'SpatialIR-v9'"):
        ir_env.latest_env_id("SpatialIR-v9")
    with pytest.raises(ValueError, match="budget_end must be one of 'terminated', 'truncated', got 'stop'"):
        SpatialIREnv(corpus=[np.zeros((32, 32, 3), np.float32)], budget_end="stop")
    from policies.ppo.train import build_env

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # an old id is built as the latest one: no warning
        env = build_env("SpatialIR-Lite-v0", {"image_size": 64}, monitor=False, single_thread=False)
    assert env.unwrapped.budget_end == "truncated" and env.unwrapped.max_regions == 4
    assert env.unwrapped.spec.id == "SpatialIR-Lite-v1"


def test_monitor_reads_the_running_gain_when_a_time_limit_truncates() -> None:
    from stable_baselines3.common.monitor import Monitor

    from ir_env.wrappers import MultiDiscreteAction

    env = Monitor(MultiDiscreteAction(make("SpatialIR-Lite-v1", max_episode_steps=2)),
                  info_keywords=("psnr_gain", "tool_calls"))
    env.reset(seed=0)
    env.step(np.array([0, 2, 2, 2]))
    _, _, term, trunc, info = env.step(np.array([0, 2, 2, 2]))
    assert trunc and not term  # the TimeLimit, before the env's own budget
    assert info["episode"]["tool_calls"] == 2 and np.isfinite(info["episode"]["psnr_gain"])


def test_observe_only_env_measures_nothing_and_skips_the_last_embedding() -> None:
    """reward_metric="none" + final_observation=False (what planners use): same images and observations as
    the default env, except that the last step repeats the previous embeddings; reward = step cost only."""
    full = make("SpatialIR-Lite-v1").unwrapped
    lean = make("SpatialIR-Lite-v1", reward_metric="none", final_observation=False).unwrapped
    o_full, i_full = full.reset(seed=4)
    o_lean, i_lean = lean.reset(seed=4)
    assert "psnr" in i_full and "psnr" not in i_lean and "quality" not in i_lean
    for key in o_full:
        np.testing.assert_array_equal(o_full[key], o_lean[key])
    calls = []
    lean.embedder.embed = _counting(lean.embedder.embed, calls)
    for k in range(lean.max_steps):
        a = {"region": 0, "tool": k % lean.num_tools, "params": np.full(lean.num_params, 0.3)}
        prev = o_lean["regions"].copy()
        o_full, _, t_full, _, i_full = full.step(a)
        o_lean, r, term, trunc, info = lean.step(a)
        np.testing.assert_array_equal(full.state.image, lean.state.image)
        assert r == pytest.approx(-lean.step_cost * tool_cost(lean.tools[a["tool"]]))
        assert "psnr" not in info and (term, trunc) == (t_full, False) and term == (k == lean.max_steps - 1)
        np.testing.assert_array_equal(o_lean["history"], o_full["history"])
        np.testing.assert_array_equal(o_lean["steps_left"], o_full["steps_left"])
        if term:
            np.testing.assert_array_equal(o_lean["regions"], prev)  # not re-embedded
            assert not np.array_equal(o_full["regions"], prev)
            assert {"psnr_out", "ssim_out", "psnr_gain"}.isdisjoint(info) and len(info["trace"]) == k + 1
        else:
            np.testing.assert_array_equal(o_lean["regions"], o_full["regions"])
    assert len(calls) == lean.max_steps - 1
    with pytest.raises(ValueError, match="metric"):
        make("SpatialIR-v1", reward_metric="nope")
    with pytest.raises(ValueError, match="final_observation"):
        make("SpatialIR-v1", final_observation="no")


def _counting(fn, calls):  # noqa: ANN001, ANN202
    def wrapped(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return fn(*a, **kw)
    return wrapped


def test_render_shows_image_with_outlines() -> None:
    env = make("SpatialIR-Lite-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert min(frame.shape[:2]) >= 256


def test_action_masks_follow_valid_regions() -> None:
    env = MultiDiscreteAction(make("SpatialIR-v1", region_proposer="oracle", max_regions=8))
    obs, _ = env.reset(seed=1)
    base = env.unwrapped
    m = env.action_masks()
    t = base.num_tools
    joint = m[: base.max_regions * t + 1]
    assert joint[-1]
    for k in range(base.max_regions):
        assert joint[k * t : (k + 1) * t].all() == bool(obs["valid"][k])
    assert m.size == sum(env.action_space.nvec)


def test_bad_config_rejected() -> None:
    with pytest.raises(ValueError, match="recipe"):
        make("SpatialIR-v1", recipe="nope")
    with pytest.raises(ValueError, match="tool"):
        make("SpatialIR-v1", tools=["nope"])
    with pytest.raises(ValueError, match="image_size"):
        make("SpatialIR-v1", image_size=8)


def test_unknown_reset_options_are_rejected() -> None:
    env = make("SpatialIR-v1", image_size=64)
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['imgae'\]"):
        env.reset(seed=0, options={"imgae": np.zeros((64, 64, 3), np.float32)})  # a typo, not a random scene
    env.reset(seed=0, options={"image": np.full((64, 64, 3), 0.5, np.float32)})  # the known ones still work


def test_async_vector_env_with_the_learned_encoder_does_not_hang() -> None:
    """The encoder runs torch in the parent (gymnasium builds one env there for the spaces); forked workers used to
    deadlock on their first torch op. Run in a child process so a hang fails the test instead of the run."""
    import subprocess
    import sys

    code = """
import gymnasium as gym, numpy as np, ir_env
mk = lambda: gym.make("SpatialIR-v1", image_size=32, max_regions=2, embedding="learned", region_proposer="grid")
v = gym.vector.AsyncVectorEnv([mk, mk], context="fork")
obs, _ = v.reset(seed=0)
v.step(v.action_space.sample())
v.close()
print("ok", obs["regions"].shape)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0 and out.stdout.startswith("ok (2, 2, 76)"), out.stderr[-2000:]


def test_small_given_images_and_bad_options_are_refused_at_once(tmp_path) -> None:  # noqa: ANN001
    env = gym.make("SpatialIR-v1", max_steps=1, image_size=32, region_proposer="grid", max_regions=2)
    with pytest.raises(ValueError, match="is 10x40 px; an episode needs at least 11 px a side"):
        env.reset(seed=0, options={"image": np.full((10, 40, 3), 0.5, np.float32)})
    with pytest.raises(ValueError, match="'scene' and 'image' exclude each other"):
        env.reset(seed=0, options={"image": np.full((32, 32, 3), 0.5, np.float32), "scene": None})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="region/tool must be integers"):
        env.step({"region": 0, "tool": 1.7, "params": np.zeros(env.unwrapped.num_params)})
    with pytest.raises(ValueError, match="region/tool must be integers"):
        env.step({"region": True, "tool": 1, "params": np.zeros(env.unwrapped.num_params)})
    for kwargs, message in (({"image_size": 64.7}, "image_size must be a whole number"),
                            ({"image_size": 100000}, r"image_size must be a whole number in \[32, 4096\]"),
                            ({"max_regions": 1.5}, "max_regions must be a whole number"),
                            ({"max_steps": None}, "max_steps must be a whole number"),
                            ({"step_cost": "0.1"}, "step_cost must be a finite number"),
                            ({"proposer_kwargs": "x"}, "proposer_kwargs must be a mapping"),
                            ({"region_proposer": "grid", "proposer_kwargs": {"rows": 2.5, "cols": 2}},
                             "rows and cols must be whole numbers")):
        with pytest.raises(ValueError, match=message):
            SpatialIREnv(**kwargs)
    with pytest.raises(ValueError, match="bins must be a whole number >= 2"):
        MultiDiscreteAction(SpatialIREnv(image_size=32), bins=2.5)


def test_corpus_as_a_path_and_one_tool_name(tmp_path) -> None:  # noqa: ANN001
    from pathlib import Path

    from ir_env.imageio import write_image

    rng = np.random.default_rng(0)
    write_image(tmp_path / "a.png", rng.random((48, 48, 3)).astype(np.float32))
    write_image(tmp_path / "tiny.png", rng.random((4, 4, 3)).astype(np.float32))
    with pytest.warns(UserWarning, match="tiny.png: 4x4 px is smaller than 8 px"):
        env = SpatialIREnv(corpus=Path(tmp_path), split="all", image_size=32, tools="tv_denoise")
    assert len(env.images) == 1 and env.tool_names == ["tv_denoise"]


def test_a_step_after_the_episode_ended_is_refused_until_reset() -> None:
    env = make("SpatialIR-Lite-v1")
    base = env.unwrapped
    act = {"region": 0, "tool": 0, "params": np.zeros(base.num_params)}
    env.reset(seed=0)
    env.step({**act, "tool": base.num_tools})  # STOP
    with pytest.raises(RuntimeError, match="episode has ended .*call reset"):
        env.step(act)  # before: ran the tool, so STOP undid itself
    env.reset(seed=0)
    for _ in range(base.max_steps - 1):
        assert not any(env.step(act)[2:4])
    obs, _, term, trunc, _ = env.step(act)
    assert term and not trunc and env.observation_space.contains(obs)  # no steps left: terminal
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(act)  # before: steps_left went to -1, outside the observation space
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(env.step(act)[0])


@pytest.mark.parametrize("action, msg", [
    ({"region": "1", "tool": 0}, "region/tool must be integers, got '1'"),
    ({"region": 0, "tool": 0, "stop": True}, "unknown key(s) ['stop']"),
])
def test_string_indices_and_unknown_action_keys_are_refused(action: dict, msg: str) -> None:
    env = make("SpatialIR-Lite-v1")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(msg)):
        env.step({"params": np.zeros(env.unwrapped.num_params), **action})


@pytest.mark.parametrize("kw, msg", [
    ({"seed": -1}, "seed must be a whole number >= 0 or None, got -1"),
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"seed": "a"}, "seed must be a whole number"),
    ({"corpus": [np.full((64, 64, 3), 0.5, np.float32)], "split": "tset"}, "unknown split 'tset'"),
])
def test_constructor_seed_and_split_are_checked_at_once(kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=re.escape(msg)):
        SpatialIREnv(**kw)


def test_a_numpy_seed_works() -> None:
    a = SpatialIREnv(image_size=64, seed=np.int64(3)).reset()[0]
    b = SpatialIREnv(image_size=64, seed=3).reset()[0]
    assert np.array_equal(a["regions"], b["regions"])


def test_joint_index_and_native_action_round_trip() -> None:
    from ir_env.wrappers import action_to_joint, joint_to_action

    env = make("SpatialIR-Lite-v1")
    base = env.unwrapped
    theta = np.linspace(-1, 1, base.num_params)
    for joint in range(base.max_regions * base.num_tools + 1):  # the last one is STOP
        action = joint_to_action(env, joint, theta)
        assert action_to_joint(env, action) == joint
    assert joint_to_action(env, base.max_regions * base.num_tools, theta)["tool"] == base.num_tools


def test_a_no_reference_reward_never_raises_on_a_legal_action() -> None:
    """NIQE / BRISQUE / PIQE are undefined on a flat image, which an extreme tool setting makes (airlight_dehaze at
    its ends turns this scene black): the step is applied, scores no gain, says so in info, and the state stays
    consistent (it used to raise after counting the step)."""
    env = gym.make("GlobalIR-v1", image_size=64, reward_metric="niqe", recipe="agenticir-A")
    env.reset(seed=0)
    base = env.unwrapped
    t = base.tool_names.index("airlight_dehaze")
    obs, reward, _, _, info = env.step({"region": 0, "tool": t, "params": np.array([-1.0, 1.0, 0.0], np.float32)})
    assert float(np.ptp(base.current_image)) < 1e-6  # the output is flat: NIQE cannot score it
    assert info["quality_undefined"] is True and info["rewards"]["quality_gain"] <= 0.0
    assert np.isfinite(reward) and info["steps"] == 1 == len(base.state.trace) and info["tool_calls"] == 1
    assert env.observation_space.contains(obs)
    clahe = base.tool_names.index("clahe")
    _, _, _, _, info = env.step({"region": 0, "tool": clahe, "params": np.zeros(3, np.float32)})
    assert info["steps"] == 2 == len(base.state.trace) and np.isfinite(info["quality_gain"])


def test_reset_draws_again_when_the_reward_metric_cannot_score_a_scene() -> None:
    """A flat degraded crop (2 of 150 seeds here) used to make reset() raise; a caller's own flat image is named."""
    env = gym.make("GlobalIR-v1", image_size=32, reward_metric="niqe", recipe="agenticir-A")
    _, info = env.reset(seed=107)
    assert np.isfinite(info["quality"])
    flat = np.full((32, 32, 3), 0.5, np.float32)
    from ir_env.recipes import Scene

    scene = Scene(degraded=flat, clean=flat, masks=np.ones((1, 32, 32), bool), labels=[[]], params=[[]],
                  recipe="external", seed=0, depth=np.zeros((32, 32), np.float32))
    with pytest.raises(ValueError, match=r"options\['scene'\] cannot be scored.*psnr"):
        env.reset(options={"scene": scene})


def test_a_given_scene_below_the_episode_size_is_refused_at_reset() -> None:
    from ir_env import synthesize

    sc = synthesize(np.random.default_rng(0).random((8, 8, 3), dtype=np.float32), recipe="mixed-2", seed=0)
    with pytest.raises(ValueError, match=r"options\['scene'\].degraded is 8x8 px; an episode needs at least 11"):
        gym.make("SpatialIR-Lite-v1").reset(options={"scene": sc})


@pytest.mark.parametrize("metric", ["brisque", "piqe", "niqe"])
def test_envs_with_any_reward_metric_copy_and_pickle(metric: str) -> None:
    """Lookahead / MCTS agents copy envs; brisque's and piqe's backends do not pickle (the metric is now pickled as
    its name): a copy continues exactly as the original."""
    import copy
    import pickle

    env = gym.make("SpatialIR-Lite-v1", reward_metric=metric)
    env.reset(seed=1)
    copies = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    action = {"region": 0, "tool": 2, "params": np.zeros(3, np.float32)}
    want = env.step(action)
    for c in copies:
        got = c.step(action)
        assert got[1] == want[1] and np.array_equal(got[0]["regions"], want[0]["regions"])


def test_a_tool_listed_twice_is_refused_and_a_thin_image_renders_at_a_sane_size() -> None:
    with pytest.raises(ValueError, match="tools lists clahe more than once"):
        gym.make("SpatialIR-Lite-v1", tools=["clahe", "tv_denoise", "clahe"])
    assert gym.make("SpatialIR-Lite-v1", tools=(t for t in ["clahe", "tv_denoise"])).unwrapped.tool_names == [
        "clahe", "tv_denoise"]  # a generator is read once
    env = gym.make("SpatialIR-Lite-v1", render_mode="rgb_array")
    env.reset(seed=0, options={"image": np.random.default_rng(0).random((12, 300, 3), dtype=np.float32)})
    frame = env.render()
    assert frame.shape[1] <= 4 * 256 and frame.shape[0] >= 12 and frame.shape[1] / frame.shape[0] == 300 / 12
    env.reset(seed=0)
    assert env.render().shape[:2] == (256, 256)  # a 64 px scene: upscaled 4x as before
