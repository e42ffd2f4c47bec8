"""Planners: the interface, monotone search results, exact trace replay, SB3-style predict."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from ir_env.recipes import synthesize
from policies import list_planners, make_planner
from policies.evaluation import parse_planner_spec

FAST = {"max_regions": 3, "max_steps": 3}
SEARCH_FAST = {"tools": None}


@pytest.fixture(scope="module")
def scene(photo96: np.ndarray):  # noqa: ANN201
    return synthesize(photo96, recipe="spatial-mixed", seed=3)


def _cheap_tools() -> list[str]:
    from restorers import list_tools

    return [t.name for t in sorted(list_tools(), key=lambda t: t.cost)][:8]


@pytest.mark.parametrize("name", ["greedy", "dfs"])
@pytest.mark.parametrize("judge", ["piqe", "psnr", "npsnr"])
def test_search_never_worse_by_own_judge(name: str, judge: str, scene) -> None:  # noqa: ANN001
    p = make_planner(name, judge=judge, tools=_cheap_tools(), **FAST)
    ref = scene.clean if p.judge.needs_reference else None
    res = p.restore(scene.degraded, reference=ref)
    before = p.judge.score(scene.degraded, ref)
    after = p.judge.score(res.image, ref)
    assert p.judge.gain(before, after) >= -1e-9
    assert res.iqa_calls >= res.tool_calls  # each tried candidate was judged
    assert res.tool_calls >= len(res.trace)
    for st in res.trace:
        assert p.judge.gain(st.quality_before, st.quality_after) > 0


@pytest.mark.parametrize("name", ["random", "fixed", "greedy", "dfs"])
@pytest.mark.parametrize("mode", ["spatial", "global"])
def test_trace_replays_exactly(name: str, mode: str, scene) -> None:  # noqa: ANN001
    kw = {"tools": _cheap_tools(), "judge": "psnr"} if name in ("greedy", "dfs") else {}
    p = make_planner(name, mode=mode, **FAST, **kw)
    res = p.restore(scene.degraded, reference=scene.clean)
    assert np.array_equal(res.replay(scene.degraded), res.image)
    assert res.image.dtype == np.float32 and res.image.shape == scene.degraded.shape
    if mode == "global":
        assert len(res.masks) == 1 and res.masks[0].all()
    assert res.seconds > 0


def test_oracle_search_raises_psnr(scene) -> None:  # noqa: ANN001
    from ir_env.quality import get_metric

    psnr = get_metric("psnr")
    p = make_planner("greedy", judge="psnr", tools=_cheap_tools(), **FAST)
    res = p.restore(scene.degraded, reference=scene.clean)
    assert psnr.score(res.image, scene.clean) > psnr.score(scene.degraded, scene.clean) + 0.3


def test_random_planner_deterministic(scene) -> None:  # noqa: ANN001
    a = make_planner("random", seed=4, **FAST).restore(scene.degraded)
    b = make_planner("random", seed=4, **FAST).restore(scene.degraded)
    assert np.array_equal(a.image, b.image)
    assert [s.tool for s in a.trace] == [s.tool for s in b.trace]
    assert a.iqa_calls == 0 and a.tool_calls == FAST["max_steps"]


def test_dfs_reports_budget(scene) -> None:  # noqa: ANN001
    res = make_planner("dfs", judge="psnr", budget=2, **FAST).restore(scene.degraded, reference=scene.clean)
    assert res.info["budget_bound"] >= 1
    assert res.tool_calls <= 2 * len(res.masks)


def test_errors_are_clear(scene) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="unknown planner"):
        make_planner("gredy")
    with pytest.raises(ValueError, match="did you mean ppo"):
        make_planner("PPO")  # names are lower case: the hint says which
    with pytest.raises(ValueError, match="mode"):
        make_planner("greedy", mode="local")
    with pytest.raises(ValueError, match="full-reference"):
        make_planner("greedy", judge="psnr").restore(scene.degraded)
    with pytest.raises(ValueError, match="HxWx3"):
        make_planner("fixed").restore(scene.degraded[..., 0])
    with pytest.raises(ValueError, match="unknown option"):
        parse_planner_spec("greedy:fast")
    with pytest.raises(ValueError, match="judge is given twice \\('judge=brisque' and 'judge=niqe'\\)"):
        parse_planner_spec("greedy:judge=brisque:judge=niqe")  # not: the last one wins
    with pytest.raises(ValueError, match="gate is given twice"):
        parse_planner_spec("ppo:gate=off:gate=table")
    assert {"random", "fixed", "greedy", "dfs"} <= set(list_planners())


def test_spec_parsing() -> None:
    p, ref = parse_planner_spec("dfs:global:oracle:budget=7")
    assert p.mode == "global" and ref and p.budget == 7 and p.judge.label == "oracle:psnr"
    p, ref = parse_planner_spec("greedy:judge=piqe")
    assert not ref and p.judge.label == "piqe" and p.mode == "spatial"


@pytest.mark.parametrize("wrapper", ["box", "multidiscrete"])
def test_predict_drives_the_env_like_an_sb3_model(wrapper: str) -> None:
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    import ir_env  # noqa: F401
    from ir_env.wrappers import BoxAction, MultiDiscreteAction

    def make() -> gym.Env:
        env = gym.make("SpatialIR-Lite-v1", image_size=48, max_steps=3)
        return Monitor({"box": BoxAction, "multidiscrete": MultiDiscreteAction}[wrapper](env))

    venv = DummyVecEnv([make])
    planner = make_planner("greedy", judge="psnr", tools=_cheap_tools(), max_steps=3).attach(venv)
    rewards, lengths = evaluate_policy(planner, venv, n_eval_episodes=2, return_episode_rewards=True)
    assert len(rewards) == 2 and all(1 <= n <= 3 + 1 for n in lengths)
    if wrapper != "multidiscrete":  # exact params: the oracle plan never loses PSNR (step cost aside)
        assert all(r > -0.2 for r in rewards)


@pytest.mark.parametrize("wrapper", ["box", "multidiscrete", "dict"])
def test_evaluate_policy_on_a_plain_env(wrapper: str) -> None:
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy

    import ir_env  # noqa: F401
    from ir_env.wrappers import BoxAction, MultiDiscreteAction

    env = {"box": BoxAction, "multidiscrete": MultiDiscreteAction, "dict": lambda e: e}[wrapper](
        gym.make("SpatialIR-Lite-v1", image_size=48, max_steps=3))  # dict: the native action space
    planner = make_planner("greedy", judge="psnr", tools=_cheap_tools(), max_steps=3).attach(env)
    with warnings.catch_warnings():  # SB3's advice to add a Monitor: this test is about the plain env
        warnings.simplefilter("ignore", UserWarning)
        rewards, lengths = evaluate_policy(planner, env, n_eval_episodes=2, return_episode_rewards=True)
    assert len(rewards) == 2 and all(1 <= n <= 3 + 1 for n in lengths)
    obs, _ = env.reset(seed=0)
    action, _ = planner.predict(obs)  # unbatched observation: unbatched action, as before
    assert env.action_space.contains(action) if wrapper == "dict" else np.shape(action) == env.action_space.shape


def test_vector_envs_get_actions_in_their_own_batch_form_and_async_ones_are_refused() -> None:
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    import ir_env  # noqa: F401

    def make() -> gym.Env:
        return gym.make("SpatialIR-Lite-v1", image_size=48, max_steps=2)

    sync = gym.vector.SyncVectorEnv([make, make])
    planner = make_planner("fixed").attach(sync)
    obs, _ = sync.reset(seed=0)
    action, _ = planner.predict(obs)
    assert isinstance(action, dict) and np.shape(action["tool"]) == (2,)  # Gymnasium: dict of batched arrays
    sync.step(action)
    wrapped = gym.wrappers.vector.RecordEpisodeStatistics(gym.vector.SyncVectorEnv([make, make]))
    planner = make_planner("fixed").attach(wrapped)  # a vector wrapper hides .envs: looked up underneath
    action, _ = planner.predict(wrapped.reset(seed=0)[0])
    assert isinstance(action, dict) and np.shape(action["tool"]) == (2,)
    dummy = DummyVecEnv([make, make])
    planner = make_planner("fixed").attach(dummy)
    action, _ = planner.predict(dummy.reset())
    assert isinstance(action, list) and len(action) == 2 and all(isinstance(a, dict) for a in action)  # SB3
    dummy.step(action)
    async_env = gym.vector.AsyncVectorEnv([make, make])
    try:
        with pytest.raises(ValueError, match="cannot attach a planner to AsyncVectorEnv: its envs run in other "
                                             "processes.*SyncVectorEnv"):
            make_planner("fixed").attach(async_env)
    finally:
        async_env.close()
    with pytest.raises(ValueError, match="attach\\(\\) needs a SpatialIR env"):
        make_planner("fixed").attach(gym.make("CartPole-v1"))


def test_predict_on_native_dict_env_replays_the_plan() -> None:
    import gymnasium as gym

    import ir_env  # noqa: F401

    env = gym.make("SpatialIR-Lite-v1", image_size=48, max_steps=3, step_cost=0.0)
    planner = make_planner("greedy", judge="psnr", tools=_cheap_tools(), max_steps=3).attach(env)
    obs, _ = env.reset(seed=2)
    total, done, n = 0.0, False, 0
    while not done:
        action, _ = planner.predict(obs)
        assert isinstance(action, dict) and set(action) == {"region", "tool", "params"}
        obs, r, term, trunc, info = env.step(action)
        total, done, n = total + r, term or trunc, n + 1
    assert info["psnr_gain"] >= 0.0
    assert total == pytest.approx(info["psnr_gain"], abs=1e-4)


def test_greedy_perceive_limits_candidates_to_perceived_families(scene) -> None:  # noqa: ANN001
    from policies.perception import Perception

    full = make_planner("greedy", judge="psnr", max_regions=3, max_steps=1)
    gated = make_planner("greedy", judge="psnr", max_regions=3, max_steps=1, perceive=0.5)
    a = full.restore(scene.degraded, reference=scene.clean)
    b = gated.restore(scene.degraded, reference=scene.clean)
    assert b.tool_calls < a.tool_calls
    ranks = Perception("handcrafted").rank(scene.degraded, b.masks)
    from restorers import get_tool

    for st in b.trace:
        fams = {f for f, p in ranks[st.region] if p >= 0.5} or {ranks[st.region][0][0]}
        assert get_tool(st.tool).family in fams
    assert np.array_equal(b.replay(scene.degraded), b.image)


def test_learned_judge_is_the_default_and_keeps_only_clear_gains() -> None:
    from policies.judge import DEFAULT_THRESHOLDS

    p = make_planner("greedy")
    assert p.judge.metric == "npsnr" and p.threshold == DEFAULT_THRESHOLDS["npsnr"] == 1.0
    assert make_planner("greedy", judge="brisque").threshold == 0.0
    assert make_planner("dfs", judge="npsnr", threshold=0.25).threshold == 0.25  # explicit wins
    assert parse_planner_spec("greedy:judge=npsnr:threshold=2")[0].threshold == 2.0


def test_spec_values_keep_paths_and_parse_number_lists(tmp_path) -> None:  # noqa: ANN001
    from policies.evaluation import _value, parse_planner_spec
    from policies.rules import DEFAULT_RULE_TABLE

    assert _value("-0.5/0.5") == (-0.5, 0.5) and _value("3") == 3 and _value("0.25") == 0.25
    assert _value("runs/x/rule_table.json") == "runs/x/rule_table.json"  # a path, not a tuple of strings
    table = tmp_path / "sub" / "table.json"
    table.parent.mkdir()
    table.write_text(DEFAULT_RULE_TABLE.read_text())
    planner, needs_ref = parse_planner_spec(f"perceive:table={table}")
    assert planner.table.entries and not needs_ref


def test_unknown_or_mistyped_options_name_the_planner() -> None:
    with pytest.raises(ValueError, match="planner 'random' has no option 'foo'"):
        make_planner("random", foo=1)
    with pytest.raises(ValueError, match="planner 'dfs': budget must be an integer >= 1, got 'abc'"):
        make_planner("dfs", budget="abc")
    with pytest.raises(ValueError, match="max_steps must be an integer >= 1, got 2.5"):
        make_planner("random", max_steps=2.5)  # was silently truncated to 2
    with pytest.raises(ValueError, match="max_steps must be an integer >= 1, got 0"):
        make_planner("ppo", max_steps=0)  # was accepted and did nothing
    assert make_planner("dfs", offsets=0.3).offsets == (0.3,)  # one offset needs no tuple
    assert make_planner("greedy", offsets=[-0.2, 0.2]).offsets == (-0.2, 0.2)


def test_result_json_has_no_nan(photo: np.ndarray) -> None:
    import json

    res = make_planner("fixed", mode="global").restore(photo[:64, :64])
    data = res.to_json()
    assert data["trace"][0]["quality_before"] is None  # a planner that never judges: null, not NaN
    json.dumps(data, allow_nan=False)  # strict JSON


def test_result_image_is_never_the_callers_array(photo: np.ndarray) -> None:
    img = np.ascontiguousarray(photo[:64, :64])
    img.flags.writeable = False  # a read-only input still gives a writable result
    res = make_planner("perceive", thresholds=1.0, tile=0).restore(img)  # nothing reaches 1.0: no step kept
    assert res.trace == [] and np.array_equal(res.image, img)
    assert not np.shares_memory(res.image, img) and res.image.flags.writeable
    again = res.replay(img)
    assert np.array_equal(again, img) and not np.shares_memory(again, img)


def test_one_planner_shared_by_threads_gives_the_sequential_results(photo: np.ndarray) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ir_env.recipes import synthesize

    imgs = [synthesize(np.ascontiguousarray(photo[:96, :96]), recipe="spatial-mixed", seed=s).degraded
            for s in range(3)]
    planner = make_planner("distilled")  # steps one internal env: calls must not interleave
    ref = [planner.restore(x).image for x in imgs]
    with ThreadPoolExecutor(2) as ex:
        got = list(ex.map(lambda i: planner.restore(imgs[i % 3]).image, range(6)))
    assert all(np.array_equal(g, ref[i % 3]) for i, g in enumerate(got))


def test_make_planner_points_specs_and_missing_cuda_to_the_fix() -> None:
    import torch

    with pytest.raises(ValueError, match=r"planner spec .*make_planner\('perceive', key=value"):
        make_planner("perceive:regions=families")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            make_planner("ppo", device="cuda")


def test_gated_and_tiled_results_are_new_arrays_when_no_step_is_kept(photo: np.ndarray) -> None:
    img = np.ascontiguousarray(photo[:96, :96])
    img.flags.writeable = False
    gated = make_planner("perceive", thresholds=1.0, tile=0, gate="table").restore(img)  # the gate's own restore
    tiled = make_planner("perceive", thresholds=1.0, tile=48).restore(img)  # 4 tiles, no step on any
    for res in (gated, tiled):
        assert res.trace == [] and np.array_equal(res.image, img)
        assert not np.shares_memory(res.image, img) and res.image.flags.writeable


def test_search_planners_need_a_judge_and_take_tool_names_as_text() -> None:
    for name in ("greedy", "dfs"):
        with pytest.raises(ValueError, match=f"{name} needs a judge"):
            make_planner(name, judge="none")
    one = make_planner("greedy", judge="psnr", tools="tv_denoise")
    assert [t.name for t in one.tools] == ["tv_denoise"]
    two, _ = parse_planner_spec("greedy:oracle:tools=tv_denoise/gamma_correct")
    assert [t.name for t in two.tools] == ["tv_denoise", "gamma_correct"]
    fixed, _ = parse_planner_spec("fixed:pipeline=noise/haze")
    assert fixed.pipeline == ("nlm_denoise", "dcp_dehaze")
    with pytest.raises(ValueError, match="tools must be a list of names"):
        make_planner("greedy", judge="psnr", tools=5)


def test_fixed_runs_its_whole_pipeline_unless_max_steps_is_given(photo: np.ndarray) -> None:
    img = synthesize(np.ascontiguousarray(photo[:64, :64]), recipe="spatial-mixed", seed=1).degraded
    masks = np.zeros((2, 64, 64), bool)
    masks[0, :32], masks[1, 32:] = True, True
    full = make_planner("fixed").restore(img, masks=masks)
    assert len(full.trace) == 2 * len(make_planner("fixed").pipeline)
    capped = make_planner("fixed", max_steps=3).restore(img, masks=masks)
    assert len(capped.trace) == 3 and [s.tool for s in capped.trace] == [s.tool for s in full.trace[:3]]


@pytest.mark.parametrize(("name", "options", "message"), [
    ("greedy", {"judge": "psnr", "threshold": float("nan")}, "threshold must be a finite number"),
    ("greedy", {"judge": "psnr", "offsets": (0.5, float("nan"))}, "offsets must be a finite number"),
    ("greedy", {"judge": "psnr", "perceive": 2.0}, r"perceive must be a finite number in \[0, 1\]"),
    ("greedy", {"judge": "psnr", "embedding": "bogus"}, "unknown embedding 'bogus'"),
    ("dfs", {"judge": "psnr", "min_prob": -1.0}, r"min_prob must be a finite number in \[0, 1\]"),
    ("dfs", {"judge": "psnr", "budget": 2.5}, "budget must be an integer >= 1"),
    ("dfs", {"judge": "psnr", "budget": "abc"}, "budget must be an integer >= 1"),
    ("dfs", {"judge": "psnr", "max_depth": 2.5}, "max_depth must be an integer >= 1"),
    ("memory", {"tries": 1.5}, "tries must be an integer >= 1"),
    ("random", {"max_regions": 2.5}, "max_regions must be an integer >= 1"),
    ("random", {"max_steps": None}, "max_steps must be an integer >= 1"),
    ("perceive", {"device": "meta"}, "other device types are unsupported"),
    ("perceive", {"device": "nonsense"}, "device must be 'cpu' or 'cuda\\[:N\\]', got 'nonsense'"),
    ("perceive", {"device": 3}, "device must be 'cpu' or 'cuda\\[:N\\]', got 3"),
    ("ppo", {"judge": "nonsense"}, "unknown metric 'nonsense'"),
    ("distilled", {"mode": "global"}, "no global distilled student ships"),
])
def test_planner_option_values_are_checked_and_named(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_planner(name, **options)


def test_bad_region_masks_and_planner_names_are_named(photo: np.ndarray) -> None:
    img = np.ascontiguousarray(photo[:64, :64])
    planner = make_planner("random")
    with pytest.raises(ValueError, match=r"got one \(64, 64\) mask: pass mask\[None\]"):
        planner.restore(img, masks=np.ones((64, 64), bool))
    with pytest.raises(ValueError, match="K >= 1 regions"):
        planner.restore(img, masks=np.zeros((0, 64, 64), bool))
    with pytest.raises(ValueError, match="planner name must be a string"):
        make_planner(5)  # type: ignore[arg-type]


def test_a_judge_given_to_a_planner_that_never_judges_is_named_in_a_warning() -> None:
    import warnings

    from policies import make_planner
    from policies.evaluation import parse_planner_spec

    with pytest.warns(UserWarning, match="'random' never judges a candidate: judge='psnr' is ignored"):
        make_planner("random", judge="psnr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the spec parser's default judge reaches only planners that judge
        parse_planner_spec("random", default_judge="brisque")
        make_planner("random")


def test_yes_no_options_read_words_and_refuse_others(tmp_path: Path) -> None:
    assert parse_planner_spec("greedy:refine=false")[0].refine is False  # was True: bool("false")
    assert parse_planner_spec("greedy:refine=Yes")[0].refine is True
    memory = tmp_path / "m.json"
    p = parse_planner_spec(f"memory:memory={memory}:learn=off:autosave=0")[0]
    assert p.learn is False and p.autosave is False
    for kwargs, message in (({"refine": "maybe"}, "refine must be true or false, got 'maybe'"),
                            ({"refine": 2}, "refine must be true or false, got 2")):
        with pytest.raises(ValueError, match=message):
            make_planner("greedy", **kwargs)
    with pytest.raises(ValueError, match="autosave must be true or false"):
        make_planner("memory", memory=str(memory), autosave="sometimes")
    for tile in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tile must be a whole number of px"):
            make_planner("perceive", tile=tile)
    for value in (8.5, "8", True):  # a learned planner no longer truncates max_regions
        with pytest.raises(ValueError, match="max_regions must be an integer >= 1"):
            make_planner("ppo", max_regions=value)


def test_evaluate_takes_what_the_loaders_give_and_refuses_what_it_cannot_score() -> None:
    """evaluate() returned an all-NaN table for no images, took a spec string letter by letter and unpacked
    load_corpus's bare photos into a cryptic error."""
    from ir_env.corpus import load_corpus
    from policies.evaluation import evaluate

    photos = load_corpus("builtin", split="test")[:2]
    res = evaluate(photos, "spatial-mixed", "random, fixed", size=64, progress=False)
    assert list(res["planners"]) == ["random", "fixed"] and res["images"] == 2
    assert [r["image"] for r in res["rows"]] == ["image000", "image000", "image001", "image001"]
    named = evaluate([("a", photos[0]), ("b", photos[1])], "spatial-mixed", ["random"], size=64, progress=False)
    assert [r["psnr_out"] for r in named["rows"]] == [r["psnr_out"] for r in res["rows"] if r["planner"] == "random"]
    for kwargs, message in (({"items": []}, "no images to evaluate"),
                            ({"items": photos[0]}, "got one photo: pass \\[photo\\]"),
                            ({"items": [3]}, r"items\[0\] must be a photo"),
                            ({"planner_specs": []}, "planner_specs must be a non-empty list"),
                            ({"planner_specs": ["random", "random"]}, "given twice: random"),
                            ({"size": 64.5}, "size must be a whole number >= 0, got 64.5"),
                            ({"seed": -1}, "seed must be a whole number"),
                            ({"planner_kwargs": {"seed": 5}}, "planner_kwargs must not set 'seed'")):
        args = {"items": photos, "recipe": "spatial-mixed", "planner_specs": ["random"], "size": 64,
                "progress": False, **kwargs}
        with pytest.raises(ValueError, match=message):
            evaluate(**args)


def test_results_and_scenes_print_as_one_line_summaries() -> None:
    from ir_env.recipes import synthesize

    sc = synthesize(np.full((48, 64, 3), 0.5, np.float32), recipe="spatial-mixed", seed=1)
    text = repr(sc)
    assert text.startswith("Scene(recipe='spatial-mixed', seed=1, size=48x64, regions=[") and len(text) < 300
    res = make_planner("fixed").restore(sc.degraded)
    text = repr(res)
    assert text.startswith("RestorationResult(planner='fixed'") and "image=48x64" in text and len(text) < 400
    assert f"tool_calls={res.tool_calls}" in text


def test_log_axes_always_carry_readable_tick_labels() -> None:
    """A view from 4.5 to 21 tool calls showed one labelled tick ("10^1") only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from policies.evaluation import tidy_log_xaxis

    for lo, hi, at_least in ((4.5, 21.0, 3), (0.2, 0.9, 2), (1.0, 2000.0, 3)):
        fig, ax = plt.subplots()
        ax.plot([lo, hi], [0, 1])
        ax.set_xlim(lo, hi)
        tidy_log_xaxis(ax)
        fig.canvas.draw()
        shown = [t.get_text() for t in ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True)
                 if t.get_text() and lo <= t.get_position()[0] <= hi]
        plt.close(fig)
        assert len(shown) >= at_least, (lo, hi, shown)


def test_scripted_planners_take_no_step_on_an_empty_user_region(photo: np.ndarray) -> None:
    """A user's masks may hold an empty region (a class absent from this photo): random and fixed used to record
    tool calls there that changed nothing."""
    from ir_env.corpus import center_crop

    img = center_crop(photo, 64)
    masks = np.zeros((3, 64, 64), bool)
    masks[0, :32], masks[2, 32:] = True, True  # region 1 is empty
    for spec in ("random:max_steps=8", "fixed"):
        res = parse_planner_spec(spec)[0].restore(img, masks=masks)
        assert res.trace and all(s.region != 1 for s in res.trace), spec
        assert res.tool_calls == len(res.trace)
    with pytest.warns(UserWarning, match="every one of the 2 given region masks is empty") as said:
        none = parse_planner_spec("random")[0].restore(img, masks=np.zeros((2, 64, 64), bool))
    assert none.trace == [] and np.array_equal(none.image, img)
    from policies.gate import PerceptionGate

    with pytest.warns(UserWarning, match="region masks is empty") as through_gate:  # through a wrapper too:
        PerceptionGate(parse_planner_spec("fixed")[0], "table").restore(img, masks=np.zeros((2, 64, 64), bool))
    assert [w.filename for w in [*said, *through_gate]] == [__file__, __file__]  # the warning names this call


@pytest.mark.parametrize("spec", ["perceive", "perceive:regions=families", "memory"])
def test_traces_record_the_whole_numbers_the_tools_ran_with(spec: str, photo: np.ndarray) -> None:
    """Table and memory values (a rule's iterations=10.95) are recorded as the tool ran them (11), like every
    other planner's."""
    from ir_env.corpus import center_crop
    from ir_env.recipes import synthesize
    from restorers import get_tool

    planner = parse_planner_spec(spec)[0]
    whole = 0
    for seed in range(4):
        scene = synthesize(center_crop(photo, 96), "spatial-mixed", seed)
        res = planner.restore(scene.degraded)
        for st in res.trace:
            for p in get_tool(st.tool).params:
                if p.integer:
                    whole += 1
                    assert st.params[p.name] == round(st.params[p.name]), (st.tool, st.params)
        assert np.array_equal(res.replay(scene.degraded), res.image)
    assert whole or spec == "memory"  # the rule planners use integer parameters on these scenes


def _restore_in_child(planner, img, queue) -> None:  # noqa: ANN001
    queue.put(planner.restore(img).image.shape)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_restores_while_a_parent_thread_was_mid_restore(photo: np.ndarray) -> None:
    """A lock held by another parent thread at fork time is never released in the child: the child gets fresh ones."""
    import multiprocessing as mp
    import threading

    from policies.gate import PerceptionGate

    planner = PerceptionGate(make_planner("fixed"), "table")  # a wrapper and its inner planner: two locks
    img = np.ascontiguousarray(photo[:64, :64])
    held, release = threading.Event(), threading.Event()

    def mid_restore() -> None:
        with planner._restore_lock, planner.inner._restore_lock:
            held.set()
            release.wait(60)

    t = threading.Thread(target=mid_restore)
    t.start()
    held.wait(10)
    try:
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_restore_in_child, args=(planner, img, queue))
        child.start()
        child.join(60)
        hung = child.is_alive()
        if hung:
            child.kill()
        assert not hung and child.exitcode == 0
        assert queue.get(timeout=5) == (64, 64, 3)
    finally:
        release.set()
        t.join()


def test_planners_built_under_a_float64_torch_default_still_restore(photo: np.ndarray) -> None:
    """A caller's torch.set_default_dtype(torch.float64) at build time made every network float64, and each later
    restore failed with a dtype mismatch; the loaders now build in float32 and leave the caller's default alone."""
    import torch

    img = np.ascontiguousarray(photo[:64, :64])
    old = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        planners = [parse_planner_spec(s)[0] for s in ("perceive", "ppo", "distilled", "greedy:max_steps=1")]
        assert torch.get_default_dtype() == torch.float64  # restored after each load
    finally:
        torch.set_default_dtype(old)
    for planner in planners:
        assert planner.restore(img).image.dtype == np.float32


def test_learned_planners_keep_no_copy_of_the_last_image(photo: np.ndarray) -> None:
    """ppo / distilled step an internal env; after a restore it holds no state (the caller's image, its scene)."""
    img = np.ascontiguousarray(photo[:64, :64])
    for spec in ("ppo:tile=0:gate=off", "distilled:gate=off"):
        planner = parse_planner_spec(spec)[0]
        res = planner.restore(img)
        assert planner.env.unwrapped.state is None, spec
        assert np.array_equal(res.replay(img), res.image) and np.array_equal(planner.restore(img).image, res.image)
