"""Trajectory distillation (policies/distill, experiments/record_trajectories.py): record -> shards round trip
and resume -> train the student on the tiny dataset -> it reproduces the teacher's choices on those states;
the ``distilled`` planner loads from a path and decides without IQA calls; bad input errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv

from experiments.record_trajectories import load_record_config, record
from policies import make_planner
from policies.distill.dataset import FIELDS, TrajectoryData, read_dataset, read_shard, shard_path
from policies.distill.record import make_teacher, record_episode
from policies.distill.student import agreement, decide, save_student, train_student
from policies.ppo.config import write_config
from policies.ppo.train import build_env, make_hybrid_ppo
from restorers import get_tool

th.set_num_threads(1)

TOOLS = ["tv_denoise", "wiener_defocus", "dcp_dehaze", "gamma_correct"]
ENV_KWARGS = {"recipe": "spatial-mixed", "image_size": 48, "max_regions": 2, "region_proposer": "grid",
              "embedding": "handcrafted", "reward_metric": "psnr", "max_steps": 2, "tools": TOOLS}
PPO_CFG = {"env_id": "SpatialIR-v1", "algo": "hybrid", "bins": 5, "policy_kwargs": {"hidden": 32, "attention": True},
           "ppo": {"n_steps": 64, "batch_size": 32}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrajectoryData, str]:
    out = tmp_path_factory.mktemp("traj")
    cfg = load_record_config(None, out_dir=str(out), env_id="SpatialIR-v1", env_kwargs=ENV_KWARGS, episodes=6,
                             episodes_per_shard=4, seed=100)
    record(cfg, progress=False, log=lambda m: None)
    return read_dataset(out), str(out)


def _model(env_kwargs: dict = ENV_KWARGS):  # noqa: ANN202
    venv = DummyVecEnv([lambda: build_env("SpatialIR-v1", env_kwargs, "hybrid", monitor=False)])
    return make_hybrid_ppo(venv, PPO_CFG["policy_kwargs"], seed=0, device="cpu", **PPO_CFG["ppo"])


def test_shards_round_trip_and_resume(dataset: tuple[TrajectoryData, str]) -> None:
    data, folder = dataset
    assert sorted(p.name for p in Path(folder).glob("shard_*.npz")) == ["shard_00000.npz", "shard_00001.npz"]
    a, b = read_shard(shard_path(folder, 0)), read_shard(shard_path(folder, 1))
    assert set(a) == set(FIELDS) and len(a["joint"]) + len(b["joint"]) == len(data)
    assert set(np.unique(a["scene"])) == {0, 1, 2, 3} and set(np.unique(b["scene"])) == {4, 5}
    np.testing.assert_array_equal(data["seed"], data["scene"] + 100)
    for key in FIELDS:  # the reader returns exactly what the shards hold, in order
        np.testing.assert_array_equal(data[key], np.concatenate([a[key], b[key]]))
    mtime = shard_path(folder, 0).stat().st_mtime_ns
    shard_path(folder, 1).unlink()
    with pytest.raises(ValueError, match="holds 4 of the 6 scenes its recording was asked for"):
        read_dataset(folder)  # an interrupted recording is not trained on silently
    assert len(np.unique(read_dataset(folder, allow_partial=True)["scene"])) == 4
    cfg = load_record_config(None, out_dir=folder, env_id="SpatialIR-v1", env_kwargs=ENV_KWARGS, episodes=6,
                             episodes_per_shard=4, seed=100)
    record(cfg, progress=False, log=lambda m: None)  # resumes: only the missing shard is recorded again
    assert shard_path(folder, 0).stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(read_shard(shard_path(folder, 1))["gains"], b["gains"])  # deterministic
    with pytest.raises(ValueError, match="other settings"):
        record({**cfg, "seed": 7}, progress=False, log=lambda m: None)
    good = shard_path(folder, 1).read_bytes()
    shard_path(folder, 1).write_bytes(good[: len(good) // 3])  # cut short: one clear error, then re-recorded
    with pytest.raises(ValueError, match="trajectory shard .*shard_00001.npz is damaged"):
        read_dataset(folder)
    said: list[str] = []
    record(cfg, progress=False, log=said.append)
    assert any("is damaged" in m and "recording it again" in m for m in said)
    assert shard_path(folder, 1).read_bytes() == good


def test_meta_refuses_other_encoder_weights(tmp_path: Path) -> None:
    from policies.distill.dataset import write_meta

    key = ("encoder_sha256",)
    write_meta(tmp_path, {"embedding": "learned"})  # recorded before the stamp existed
    with pytest.raises(ValueError, match="encoder_sha256"):
        write_meta(tmp_path, {"embedding": "learned", "encoder_sha256": "a" * 64}, must_match=key)
    write_meta(tmp_path / "new", {"embedding": "learned", "encoder_sha256": "a" * 64}, must_match=key)
    write_meta(tmp_path / "new", {"embedding": "learned", "encoder_sha256": "a" * 64}, must_match=key)  # resumes
    with pytest.raises(ValueError, match="encoder_sha256"):
        write_meta(tmp_path / "new", {"embedding": "learned", "encoder_sha256": "b" * 64}, must_match=key)


def test_rows_are_consistent(dataset: tuple[TrajectoryData, str]) -> None:
    data, _ = dataset
    k, t = data.meta["num_regions"], data.meta["num_tools"]
    assert data.meta["tool_names"] == TOOLS and data["regions"].shape[1:] == (k, data.meta["region_dim"])
    for i in range(len(data)):
        j = int(data["joint"][i])
        if j == k * t:  # STOP: no gain left above the threshold
            assert data["region"][i] == -1 and np.nanmax(data["gains"][i][:-1]) <= 0
            continue
        region, tool = divmod(j, t)
        assert (data["region"][i], data["tool"][i]) == (region, tool) and data["valid"][i, region] == 1
        g = data["gains"][i]
        assert g[j] >= np.nanmax(g) - 1e-5  # the teacher's choice is the best judged one
        spec = get_tool(TOOLS[tool])
        n = len(spec.params)
        phys = spec.to_physical(data["params_norm"][i, :n])
        np.testing.assert_allclose(data["params_phys"][i, :n], list(phys.values()), rtol=1e-5)
        np.testing.assert_allclose(data["best_params"][i, region, tool, :n], data["params_norm"][i, :n], atol=1e-6)
        assert data["quality_after"][i] - data["quality_before"][i] == pytest.approx(g[j], abs=1e-4)
    same_scene = data["scene"][1:] == data["scene"][:-1]
    np.testing.assert_allclose(data["psnr_before"][1:][same_scene], data["psnr_after"][:-1][same_scene], atol=1e-5)
    last = np.r_[~same_scene, True]
    np.testing.assert_allclose(data["return_to_go"][last], (data["psnr_after"] - data["psnr_before"])[last], atol=1e-4)


def test_student_reproduces_teacher_and_plans(dataset: tuple[TrajectoryData, str], tmp_path) -> None:  # noqa: ANN001
    data, _ = dataset
    model = _model()
    hist = train_student(model.policy, data, epochs=150, batch_size=16, lr=3e-3, tau=0.25, seed=0)
    agree = agreement(model.policy, data, 0.25)
    assert agree["joint"] >= 0.9, (agree, hist[-1])  # the teacher's (region, tool) on the recorded states
    assert agree["region"] >= agree["joint"] and agree["regret"] < 0.2
    path = save_student(model, tmp_path / "student", PPO_CFG, "SpatialIR-v1", ENV_KWARGS, 0.25, 0.0)
    planner = make_planner("distilled", path=str(path))
    assert planner.tau == 0.25 and planner.stop_margin == 0.0
    assert make_planner("distilled", path=str(tmp_path / "student")).model_path == path  # the run folder works
    env = planner.env
    # the planner's first decision is the student's decision on the same observation
    first = next(i for i in range(len(data)) if data["step"][i] == 0)
    obs = {key: data[key][first] for key in ("regions", "valid", "history", "steps_left")}
    np.testing.assert_array_equal(planner._act(obs), decide(model.policy, {k: v[None] for k, v in obs.items()},
                                                            0.25)[0])
    rng = np.random.default_rng(0)
    img = rng.uniform(0.2, 0.8, (48, 48, 3)).astype(np.float32)
    res = planner.restore(img)
    assert res.iqa_calls == 0 and res.image.shape == img.shape and res.tool_calls <= env.unwrapped.max_steps
    np.testing.assert_array_equal(res.replay(img), res.image)


def test_dagger_rows_hold_teacher_labels_on_student_states() -> None:
    env = build_env("SpatialIR-v1", ENV_KWARGS, "hybrid", monitor=False)
    teacher = make_teacher(env, "greedy", judge="psnr")
    stop = np.zeros(1 + env.unwrapped.num_params, np.float32)
    stop[0] = env.unwrapped.max_regions * env.unwrapped.num_tools
    rows, info = record_episode(env, teacher, seed=5, scene=0, act=lambda obs: stop)  # the "student" stops
    assert len(rows) == 1 and info["tool_calls"] == 0
    ref, _ = record_episode(env, teacher, seed=5, scene=0)
    assert rows[0]["joint"] == ref[0]["joint"]  # same state, same teacher label
    np.testing.assert_array_equal(rows[0]["gains"], ref[0]["gains"])


def test_bad_input_errors(dataset: tuple[TrajectoryData, str], tmp_path) -> None:  # noqa: ANN001
    data, _ = dataset
    with pytest.raises(FileNotFoundError, match="no distilled student"):
        make_planner("distilled", path=str(tmp_path / "none.zip"))
    with pytest.raises(FileNotFoundError, match="no trajectory dataset"):
        read_dataset(tmp_path)
    with pytest.raises(ValueError, match="missing field"):
        TrajectoryData({k: v for k, v in data.arrays.items() if k != "gains"}, data.meta)
    with pytest.raises(ValueError, match="rows"):
        TrajectoryData({**data.arrays, "tool": data["tool"][:-1]}, data.meta)
    with pytest.raises(ValueError, match="empty dataset"):
        train_student(_model().policy, data.subset(np.zeros(len(data), bool)))
    with pytest.raises(ValueError, match="unknown config key"):
        load_record_config(None, episdes=3)
    with pytest.raises(ValueError, match="teacher must be"):
        make_teacher(build_env("SpatialIR-v1", ENV_KWARGS, "hybrid", monitor=False), "beam")
    path = tmp_path / "plain" / "model.zip"
    path.parent.mkdir()
    _model().save(path)
    write_config({**PPO_CFG, "env_kwargs": ENV_KWARGS, "tool_names": TOOLS}, tmp_path / "plain")
    with pytest.raises(ValueError, match="no 'distill' block"):
        make_planner("distilled", path=str(path))


def test_shipped_default_student_reads_the_encoders_12_numbers() -> None:
    from ir_env.corpus import center_crop, load_corpus
    from ir_env.recipes import synthesize
    from policies.distill.planner import DEFAULT_MODEL, HANDCRAFTED_MODEL

    assert DEFAULT_MODEL.is_file() and HANDCRAFTED_MODEL.is_file()
    planner = make_planner("distilled", gate="off")
    assert Path(planner.model_path) == DEFAULT_MODEL
    assert planner.config["env_kwargs"]["embedding"] == "learned"
    assert planner.model.policy.region_features == 12
    scene = synthesize(center_crop(load_corpus("builtin", split="test")[0], 64), "spatial-mixed", seed=3)
    res = planner.restore(scene.degraded)
    assert res.iqa_calls == 0 and 1 <= res.tool_calls <= 4
    np.testing.assert_array_equal(res.replay(scene.degraded), res.image)
    again = make_planner("distilled", gate="off").restore(scene.degraded)
    np.testing.assert_array_equal(again.image, res.image)  # deterministic


def test_student_trained_on_other_encoder_weights_is_refused(tmp_path: Path) -> None:
    import shutil

    import yaml

    from policies.distill.planner import DEFAULT_MODEL

    folder = tmp_path / "student"
    shutil.copytree(DEFAULT_MODEL.parent, folder)
    cfg = yaml.safe_load((folder / "config.yml").read_text())
    assert cfg["encoder_sha256"]  # the shipped student names the weights it observed through
    cfg["encoder_sha256"] = "0" * 64
    (folder / "config.yml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="trained on observations of the learned encoder"):
        make_planner("distilled", path=str(folder / "model.zip"))


def test_resume_with_more_episodes_completes_the_partial_shard(tmp_path: Path) -> None:
    """A shard written by a run with fewer episodes holds fewer scenes: a later run with more re-records it, and a
    run with fewer episodes than the folder holds is refused."""
    base = {"out_dir": str(tmp_path), "env_id": "SpatialIR-v1", "env_kwargs": {**ENV_KWARGS, "max_steps": 1},
            "episodes_per_shard": 2, "seed": 100, "teacher_kwargs": {"offsets": []}}
    record(load_record_config(None, **base, episodes=3), progress=False, log=lambda m: None)
    assert set(np.unique(read_dataset(tmp_path)["scene"])) == {0, 1, 2}
    first = shard_path(tmp_path, 0).stat().st_mtime_ns
    record(load_record_config(None, **base, episodes=4), progress=False, log=lambda m: None)
    assert set(np.unique(read_dataset(tmp_path)["scene"])) == {0, 1, 2, 3}
    assert shard_path(tmp_path, 0).stat().st_mtime_ns == first  # the complete shard was kept
    with pytest.raises(ValueError, match="holds shards past the 1 that 2 episodes make"):
        record(load_record_config(None, **base, episodes=2), progress=False, log=lambda m: None)
    with pytest.raises(ValueError, match="other settings.*dense"):
        record(load_record_config(None, **base, episodes=4, dense=False), progress=False, log=lambda m: None)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"out_dir": ""}, "out_dir .* must name a dataset directory"),
    ({"episodes": 2.7}, "episodes must be a whole number"),
    ({"episodes_per_shard": "2"}, "episodes_per_shard must be a whole number"),
    ({"photos": 3}, "photos must be null or a non-empty list"),
    ({"photos": [0, -1]}, "photos must be null or a non-empty list"),
    ({"augment": 3}, "augment must be null or"),
    ({"teacher_kwargs": 3}, "teacher_kwargs must be a mapping"),
    ({"dense": "yes"}, "dense must be true or false"),
])
def test_record_config_values_are_checked(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_record_config(None, **overrides)


def test_record_refuses_what_cannot_work_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from experiments.record_trajectories import main

    a_file = tmp_path / "afile"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a dataset directory"):
        load_record_config(None, out_dir=str(a_file))
    cfg = tmp_path / "rec.yaml"
    import yaml

    base = {"out_dir": str(tmp_path / "d"), "env_id": "SpatialIR-v1", "env_kwargs": ENV_KWARGS, "episodes": 1}
    for extra, message in (({"photos": [99]}, "photos \\[99\\] out of range: the train split has"),
                           ({"env_kwargs": {**ENV_KWARGS, "image_sise": 64}}, "env_kwargs has no key 'image_sise'"),
                           ({"env_kwargs": 5}, "env_kwargs must be a mapping"),
                           ({"teacher_kwargs": {"bogus": 1}}, "teacher_kwargs: greedy takes no option 'bogus'")):
        cfg.write_text(yaml.safe_dump({**base, **extra}))
        assert main(["--config", str(cfg), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1, err
        assert __import__("re").search(message, err), err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad/meta.json is not valid JSON"):
        read_dataset(tmp_path / "bad")


def test_train_distill_refuses_data_of_other_encoder_weights_and_bad_values(dataset: tuple[TrajectoryData, str],
                                                                           tmp_path: Path) -> None:
    import json

    import yaml

    from experiments.train_distill import load_distill_config, run

    _, folder = dataset
    ok = {"data": [folder], "output_dir": str(tmp_path / "out")}
    for bad, message in (({"data": []}, "data must be a non-empty list"),
                         ({"data": "/some/path"}, "data must be a non-empty list"),
                         ({"train": {"epochs": 0}}, "train.epochs must be a whole number >= 1"),
                         ({"stop_margins": []}, "stop_margins must be a non-empty list"),
                         ({"holdout_photos": [-1]}, "holdout_photos must be a list"),
                         ({"train": {"gain_floor": "low"}}, "train.gain_floor must be a number, got 'low'"),
                         ({"train": {"rank_coef": -1}}, "train.rank_coef must be a number >= 0"),
                         ({"output_dir": str(tmp_path / "f" / "x")}, "is a file, not a folder")):
        (tmp_path / "f").write_text("x")
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump({**ok, **bad}))
        with pytest.raises(ValueError, match=message):
            load_distill_config(str(path))
    from experiments.train_distill import main as train_distill_main

    path.write_text(yaml.safe_dump(ok))
    assert train_distill_main(["--config", str(path), "--seed", "-1"]) == 2  # refused before any data is read
    assert train_distill_main(["--config", str(path), "--quick", "--ship"]) == 2  # a smoke model is never shipped
    from experiments.train_bc import main as train_bc_main

    assert train_bc_main(["--config", "experiments/configs/bc_spatial.yaml", "--quick", "--ship"]) == 2
    assert not (tmp_path / "out").exists()
    # a learned-embedding dataset whose meta names other encoder weights: refused before anything is written
    learned = tmp_path / "learned"
    import shutil

    shutil.copytree(folder, learned)
    meta = json.loads((learned / "meta.json").read_text())
    meta["env_kwargs"]["embedding"] = "learned"
    meta["encoder_sha256"] = "0" * 64
    (learned / "meta.json").write_text(json.dumps(meta))
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"data": [str(learned)], "output_dir": str(tmp_path / "out2"),
                                    "ppo_config": None}))
    cfg = load_distill_config(str(path))
    cfg["ppo_config"] = _ppo_config(tmp_path)
    with pytest.raises(ValueError, match="recorded through encoder weights 000000000000"):
        run(cfg)
    assert not (tmp_path / "out2").exists()
    cfg["data"], cfg["holdout_photos"] = [folder], [50]
    with pytest.raises(ValueError, match=r"holdout_photos \[50\] out of range"):
        run(cfg)


def _ppo_config(tmp_path: Path) -> str:
    import yaml

    path = tmp_path / "ppo.yaml"
    path.write_text(yaml.safe_dump({**PPO_CFG, "env_kwargs": ENV_KWARGS}))
    return str(path)


def test_ppo_curve_refuses_bad_runs_and_values_before_training(tmp_path: Path) -> None:
    import yaml

    from experiments.distill_ppo_curve import main as curve_main

    out = tmp_path / "res" / "curve"
    for extra, cfg, message in (
            (["--runs", "scratch,from_teacher"], {}, "unknown run(s) ['from_teacher']"),
            ([], {"seeds": [-1]}, "seeds must be a non-empty list of whole numbers >= 0"),
            ([], {"timesteps": 0}, "timesteps must be a whole number >= 1"),
            ([], {"ppo": {"clip_range": 0}}, "'ppo.clip_range' must be a number > 0"),
            ([], {"student": str(tmp_path / "none.zip")}, "student model not found"),
            ([], {"policy_kwargs": {"region_feature": 12}}, "policy_kwargs has no key 'region_feature'"),
            (["--runs", "from_student"], {"ppo_config": "experiments/configs/ppo_spatial_learned.yaml",
                                          "student": "policies/distill/models/distilled_learned/model.zip"},
             "does not fit the network of experiments/configs/ppo_spatial_learned.yaml")):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"out": str(out), **cfg}))
        with pytest.raises((ValueError, FileNotFoundError), match=re.escape(message)):
            curve_main(["--config", str(path), *extra])
    assert not out.parent.exists()  # nothing trained or written


def test_ppo_curve_points_are_labelled_with_the_steps_trained_on(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A point labelled N steps evaluates the policy after the updates of those N steps (it used to be taken
    inside the rollout that reached N, before that rollout's update), and the last update is evaluated too."""
    from experiments import distill_ppo_curve
    from policies.ppo import bc

    updates: list[tuple[int, int]] = []
    real = bc.evaluate_gain

    def spy(env: Any, model: Any, episodes: int, seed: int) -> dict[str, float]:
        updates.append((int(model.num_timesteps), int(model._n_updates)))
        return real(env, model, episodes, seed)

    monkeypatch.setattr(bc, "evaluate_gain", spy)
    cfg = {**distill_ppo_curve.DEFAULTS, "ppo_config": _ppo_config(tmp_path), "timesteps": 128, "eval_every": 64,
           "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 2}, "test": {"episodes": 1, "seed": 1, "split": "test"}}
    points = distill_ppo_curve.curve(cfg, "scratch", 0)
    assert [p["steps"] for p in points] == [0, 64, 128]
    assert updates == [(0, 0), (64, 2 * 2), (128, 4 * 2)]  # n_epochs updates per 32-step rollout trained on


def test_fewer_episodes_other_settings_and_foreign_shards_are_named(dataset: tuple[TrajectoryData, str],
                                                                    tmp_path: Path) -> None:
    """Recording 5 episodes into a 6-episode folder re-recorded its last shard and dropped scene 5; datasets of other
    envs or judges were concatenated; a .npy under a shard's name was a TypeError traceback."""
    import shutil

    data, folder = dataset
    copy = Path(shutil.copytree(folder, tmp_path / "traj"))
    before = shard_path(copy, 1).read_bytes()
    cfg = load_record_config(None, out_dir=str(copy), env_id="SpatialIR-v1", env_kwargs=ENV_KWARGS, episodes=5,
                             episodes_per_shard=4, seed=100)
    with pytest.raises(ValueError, match="holds scenes up to 5: .* recorded with more than the 5 episodes"):
        record(cfg, progress=False, log=lambda m: None)
    assert shard_path(copy, 1).read_bytes() == before
    other = TrajectoryData(dict(data.arrays), {**data.meta, "judge": "npsnr"})
    with pytest.raises(ValueError, match="different 'judge'"):
        data.concat(other)
    bigger = TrajectoryData(dict(data.arrays), {**data.meta, "env_kwargs": {**data.meta["env_kwargs"],
                                                                           "image_size": 64}})
    with pytest.raises(ValueError, match="recorded on different envs .*image_size"):
        data.concat(bigger)
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"trajectory shard .*x.npy is damaged \(a single ndarray"):
        read_shard(tmp_path / "x.npy")
