"""Behaviour cloning of the greedy oracle (policies/ppo/bc.py): record -> train -> the student copies the
expert's (region, tool) choices; DAgger labels the current state; dataset round trip; fixed evaluation."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv

import ir_env  # noqa: F401  (registers the envs)
from ir_env.wrappers import BoxAction
from policies.actions import encode_action
from policies.ppo import bc
from policies.ppo.train import make_hybrid_ppo

th.set_num_threads(1)

#: A few tools that matter for spatial-mixed scenes: keeps the greedy expert cheap.
TOOLS = ["tv_denoise", "wiener_defocus", "dcp_dehaze", "gamma_correct"]


def _env(max_steps: int = 3) -> gym.Env:
    return BoxAction(gym.make("SpatialIR-Lite-v1", image_size=48, max_steps=max_steps, tools=TOOLS))


@pytest.fixture(scope="module")
def recorded() -> tuple[gym.Env, bc.Transitions, dict]:
    env = _env()
    expert = bc.make_expert(env)
    data, stats = bc.record_expert(env, expert, episodes=5, seed=3)
    return env, data, stats


def test_record_shapes_and_returns(recorded) -> None:  # noqa: ANN001
    env, data, stats = recorded
    base = env.unwrapped
    assert len(stats["psnr_gain"]) == 5
    assert np.mean(stats["psnr_gain"]) > 0.5  # the oracle restores
    assert len(data) == int(data.episode.size) >= 5
    assert data.obs["regions"].shape[1:] == env.observation_space["regions"].shape
    assert data.actions.shape == (len(data), 1 + base.num_params)
    assert all(env.action_space.contains(a) for a in data.actions)
    joint = np.rint(data.actions[:, 0])
    assert np.all(joint == data.actions[:, 0]) and joint.max() <= base.max_regions * base.num_tools
    # returns-to-go (gamma 1): the first state's is the episode return = PSNR gain - step costs
    for ep in np.unique(data.episode):
        sel = data.episode == ep
        assert np.all(np.diff(data.obs["steps_left"][sel, 0]) < 0)  # states in visiting order
        r0, gain = float(data.returns[sel][0]), stats["psnr_gain"][int(ep)]
        assert gain - 0.02 * 3 * base.max_steps <= r0 <= gain + 1e-4
    # expert states replay: first state of each episode has a full budget and empty history
    first = np.flatnonzero(np.r_[True, np.diff(data.episode) != 0])
    assert np.all(data.obs["steps_left"][first, 0] == base.max_steps)
    assert np.all(data.obs["history"][first] == 0)


def test_student_reproduces_expert_choices(recorded) -> None:  # noqa: ANN001
    env, data, _ = recorded
    model = make_hybrid_ppo(DummyVecEnv([_env]), {"hidden": 64}, seed=0, device="cpu")
    before = bc.choice_accuracy(model.policy, data)
    hist = bc.train_bc(model.policy, data, epochs=150, batch_size=16, lr=3e-3, seed=0)
    assert hist[-1]["nll"] < hist[0]["nll"]
    acc = bc.choice_accuracy(model.policy, data)
    assert acc >= 0.9 > before
    assert float(model.policy.log_std.detach().min()) >= -1.6 - 1e-6  # the floor holds
    # the student's deterministic action has the expert's (region, tool) and nearly its parameters
    obs = {k: data.obs[k][:1] for k in bc.OBS_KEYS}
    a, _ = model.predict({k: v[0] for k, v in obs.items()}, deterministic=True)
    assert np.rint(a[0]) == data.actions[0, 0]


def test_label_current_replans_from_the_current_state() -> None:
    env = _env()
    expert = bc.make_expert(env, max_steps=1)
    env.reset(seed=11)
    base = env.unwrapped
    # move the env away from the episode start with a non-expert action (gamma on region 0)
    env.step(encode_action(env, _Step(0, "gamma_correct", {})))
    s = base.state
    assert s.steps == 1
    label = bc.label_current(env, expert)
    idx = np.flatnonzero(s.valid)
    res = expert.restore(s.image, reference=s.scene.clean, masks=s.masks[idx])
    want = encode_action(env, _Step(int(idx[res.trace[0].region]), res.trace[0].tool, res.trace[0].params)
                         if res.trace else None)
    np.testing.assert_allclose(label, want)


class _Step:
    def __init__(self, region: int, tool: str, params: dict) -> None:
        from restorers import get_tool

        self.region, self.tool = region, tool
        self.params = params or get_tool(tool).defaults()


def test_dataset_round_trip(recorded, tmp_path) -> None:  # noqa: ANN001
    _, data, _ = recorded
    p = data.save(tmp_path / "d.npz")
    back = bc.Transitions.load(p)
    for k in bc.OBS_KEYS:
        np.testing.assert_array_equal(back.obs[k], data.obs[k])
        assert back.obs[k].dtype == np.float32
    np.testing.assert_array_equal(back.actions, data.actions)
    np.testing.assert_array_equal(back.returns, data.returns)
    np.testing.assert_array_equal(back.episode, data.episode)
    both = data.concat(back)
    assert len(both) == 2 * len(data)
    with pytest.raises(FileNotFoundError):
        bc.Transitions.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", actions=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="missing"):
        bc.Transitions.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="rows"):
        bc.Transitions({k: v[:1] for k, v in data.obs.items()}, data.actions, data.returns, data.episode)


def test_evaluation_is_fixed_and_deterministic(recorded) -> None:  # noqa: ANN001
    env, _, stats = recorded
    expert = bc.make_expert(env)
    a = bc.evaluate_gain(env, expert, episodes=2, seed=3)
    b = bc.evaluate_gain(env, expert, episodes=2, seed=3)
    assert a["gains"] == b["gains"]
    assert a["gains"] == pytest.approx(stats["psnr_gain"][:2])  # same seeds as the recording
    assert a["stop_rate"] in (0.0, 0.5, 1.0)


def test_oracle_label_matches_greedy_and_gives_every_gain() -> None:
    env = _env()
    expert = bc.make_expert(env)
    env.reset(seed=5)
    base = env.unwrapped
    action, gains = bc.oracle_label(env, expert)
    np.testing.assert_allclose(action, bc.label_current(env, expert))  # the greedy planner's own first step
    k, t = base.max_regions, base.num_tools
    assert gains.shape == (k * t + 1,) and gains[-1] == 0.0
    padded = np.repeat(~base.state.valid, t)
    assert np.all(np.isnan(gains[:-1][padded])) and np.all(np.isfinite(gains[:-1][~padded]))
    j = int(action[0])
    if j < k * t:  # a tool was chosen: it is the best choice and it gains
        assert gains[j] == pytest.approx(np.nanmax(gains)) and gains[j] > 0


def test_soft_labels_train_and_round_trip(tmp_path) -> None:  # noqa: ANN001
    env = _env(max_steps=2)
    expert = bc.make_expert(env)
    data, _ = bc.record_expert(env, expert, episodes=3, seed=21, soft=True)
    assert data.gains is not None and data.gains.shape == (len(data), data.actions_joint_count())
    back = bc.Transitions.load(data.save(tmp_path / "soft.npz"))
    np.testing.assert_array_equal(back.gains, data.gains)
    model = make_hybrid_ppo(DummyVecEnv([lambda: _env(max_steps=2)]), {"hidden": 32}, seed=0, device="cpu")
    bc.train_bc(model.policy, data, epochs=120, batch_size=16, lr=3e-3, soft_coef=1.0, temperature=0.5)
    assert bc.choice_accuracy(model.policy, data) >= 0.9


def test_perceive_expert_is_recorded_and_checked(tmp_path) -> None:  # noqa: ANN001
    """``planner="perceive"``: the rule planner as the expert (the env must offer its tools); its recorded
    actions replay its own plan, which never judges."""
    from policies.rules import PerceivePlanner

    with pytest.raises(ValueError, match="does not offer"):
        bc.make_expert(_env(), planner="perceive")  # TOOLS lack the rule table's tools
    with pytest.raises(ValueError, match="unknown expert"):
        bc.make_expert(_env(), planner="oracle")
    env = BoxAction(gym.make("SpatialIR-Lite-v1", image_size=48, max_steps=3, embedding="learned"))
    expert = bc.make_expert(env, planner="perceive")
    assert isinstance(expert, PerceivePlanner) and expert.max_steps == 3
    data, stats = bc.record_expert(env, expert, episodes=3, seed=5)
    assert len(stats["psnr_gain"]) == 3 and len(data) >= 3
    base = env.unwrapped
    for ep in range(3):  # each episode's non-STOP actions are the planner's plan for that scene
        env.reset(seed=5 + ep)
        s = base.state
        plan = expert.restore(s.image, masks=s.masks[s.valid]).trace
        acts = data.actions[data.episode == ep]
        stop = base.max_regions * base.num_tools
        chosen = [int(a[0]) for a in acts if int(round(a[0])) != stop]
        assert len(chosen) == min(len(plan), base.max_steps)
        idx = np.flatnonzero(s.valid)
        for a, st in zip(chosen, plan, strict=False):
            assert divmod(a, base.num_tools) == (int(idx[st.region]), base.tool_names.index(st.tool))


def test_train_bc_refuses_soft_labels_without_the_greedy_oracle(tmp_path) -> None:  # noqa: ANN001
    from experiments import train_bc

    cfg = train_bc.load_bc_config(None, record={"expert": "perceive", "soft": True}, output_dir=str(tmp_path),
                                  ppo_config="experiments/configs/ppo_spatial_perceive.yaml")
    with pytest.raises(ValueError, match="record.soft"):
        train_bc.run(cfg)


@pytest.mark.parametrize(("override", "message"), [
    ({"bc": {"epochs": 0}}, "config bc.epochs must be a whole number >= 1, got 0"),
    ({"bc": {"epochs": "40"}}, "config bc.epochs must be a whole number >= 1, got '40'"),
    ({"bc": {"lr": 0}}, "config bc.lr must be a number > 0, got 0"),
    ({"record": {"soft": "yes"}}, "config record.soft must be true or false"),
    ({"finetune": {"ent_coef": -0.1}}, "config finetune.ent_coef must be a number >= 0"),
    ({"test": {"split": "tset"}}, "config test.split must be one of"),
    ({"name": "a/b"}, "config name must be a folder name"),
    ({"record": {"expert": "greedyy"}}, "config record.expert must be one of greedy, perceive, got 'greedyy'"),
])
def test_train_bc_config_values_are_checked_before_work(tmp_path: Path, override: dict, message: str) -> None:
    import re

    from experiments import train_bc

    with pytest.raises(ValueError, match=re.escape(message)):
        train_bc.load_bc_config(None, output_dir=str(tmp_path / "runs"), **override)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"output_dir: {tmp_path / 'runs'}\n")
    with pytest.raises(ValueError, match="finetune.timesteps must be a whole number >= 0, got -5"):
        train_bc.main(["--config", str(cfg), "--finetune-timesteps", "-5"])
    assert not (tmp_path / "runs").exists()


def test_report_of_a_smoke_run_never_replaces_the_committed_table(tmp_path, capsys) -> None:  # noqa: ANN001
    from pathlib import Path

    from experiments import train_bc

    before = Path("experiments/results/ppo_training.md").read_bytes()
    assert train_bc.main(["--report", str(tmp_path / "bc_spatial_quick" / "summary.json")]) == 2
    assert "is a --quick smoke run" in capsys.readouterr().err
    assert Path("experiments/results/ppo_training.md").read_bytes() == before


def test_report_names_a_file_that_is_not_a_run_summary(tmp_path) -> None:  # noqa: ANN001
    from experiments import train_bc

    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="is not a train_bc run's summary.json"):
        train_bc.main(["--report", str(other), "--results", str(tmp_path / "t")])
    with pytest.raises(FileNotFoundError, match="no run summary at"):
        train_bc.main(["--report", str(tmp_path / "none.json"), "--results", str(tmp_path / "t")])
    assert not list(tmp_path.glob("t.*"))


def test_a_trained_models_config_names_its_expert_and_what_followed() -> None:
    """The shipped ppo's config.yml said "behaviour cloning of greedy oracle:psnr (+ DAgger, ...)" for a model
    cloned from perceive with no DAgger round: the text was fixed, whatever the run did."""
    import yaml

    from experiments.train_bc import training_method
    from policies.ppo.planner import default_model_path

    assert training_method("greedy oracle:psnr", 1, 40960) == ("behaviour cloning of greedy oracle:psnr "
                                                               "(+ DAgger, + PPO fine-tune)")
    assert training_method("perceive", 0, 12288) == "behaviour cloning of perceive (+ PPO fine-tune)"
    assert training_method("perceive", 0, 0) == "behaviour cloning of perceive"
    shipped = yaml.safe_load((default_model_path("hybrid", "spatial").parent / "config.yml").read_text())["training"]
    bc = shipped["bc_config"]
    assert shipped["method"] == training_method(bc["record"].get("expert", "greedy oracle:psnr"),
                                                bc["dagger"]["rounds"], bc["finetune"]["timesteps"])
