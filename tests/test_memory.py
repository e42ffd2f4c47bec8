"""Experience memory (policies/memory.py): nearest-schedule retrieval, persistence round trip, pre-filling
from trajectories, the ``memory`` planner (judge counts, learning, exact replay) and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ir_env.embeddings import make_embedder
from ir_env.recipes import synthesize
from policies import make_planner
from policies.distill.dataset import FIELDS, TrajectoryData
from policies.memory import GEOMETRY, ExperienceMemory, MemoryPlanner
from restorers import get_tool

NAMES = make_embedder("handcrafted").feature_names
DIM = len(NAMES)
DENOISE = [("tv_denoise", {"weight": 0.1})]
DEHAZE = [("dcp_dehaze", {"omega": 0.9, "t0": 0.1, "radius": 5.0})]
BRIGHTEN = [("gamma_correct", {"gamma": 1.6, "gain": 1.4}), ("tv_denoise", {"weight": 0.05})]


def key(value: float, dim: int = 0) -> np.ndarray:
    k = np.zeros(DIM, np.float32)
    k[dim] = value
    return k


@pytest.fixture()
def memory() -> ExperienceMemory:
    m = ExperienceMemory()
    m.add(key(0.0), DENOISE, 1.0, "a")
    m.add(key(2.0), DEHAZE, 2.0, "b")
    m.add(key(5.0), BRIGHTEN, 3.0, "c")
    return m


def test_nearest_returns_the_closest_schedule(memory: ExperienceMemory) -> None:
    assert memory.nearest(key(1.8), 1)[0][1].schedule == DEHAZE
    (d0, e0), (d1, e1), (d2, e2) = memory.nearest(key(4.0), 3)
    assert [e0.source, e1.source, e2.source] == ["c", "b", "a"]
    assert (d0, d1, d2) == pytest.approx((1.0, 2.0, 4.0))
    assert memory.distances(key(0.0)).tolist() == pytest.approx([0.0, 2.0, 5.0])


def test_distinct_tool_sequences_and_geometry_ignored(memory: ExperienceMemory) -> None:
    memory.add(key(0.1), [("tv_denoise", {"weight": 0.3})], 0.5, "a2")  # same tools as "a"
    got = [e.source for _, e in memory.nearest(key(0.0), 2)]
    assert got == ["a", "b"]  # "a2" repeats "a"'s tool sequence
    assert [e.source for _, e in memory.nearest(key(0.0), 2, distinct=False)] == ["a", "a2"]
    geo = NAMES.index(GEOMETRY[0])
    far_in_geometry = key(2.0) + key(9.0, geo)  # differs from "b" only in the region's area
    assert memory.nearest(far_in_geometry, 1)[0][1].source == "b"


def test_persistence_round_trip(memory: ExperienceMemory, tmp_path) -> None:  # noqa: ANN001
    p = memory.save(tmp_path / "mem.json")
    back = ExperienceMemory.load(p)
    assert len(back) == len(memory)
    for a, b in zip(memory.entries, back.entries, strict=True):
        np.testing.assert_allclose(a.key, b.key, atol=1e-3)
        assert a.schedule == b.schedule and a.gain == pytest.approx(b.gain) and a.source == b.source
    assert back.nearest(key(4.9), 1)[0][1].schedule == BRIGHTEN
    assert json.loads(p.read_text())["format"].startswith("spatial-ir-memory")


def test_bad_input_is_refused(memory: ExperienceMemory, tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="values"):
        memory.add(np.zeros(DIM + 1), DENOISE, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        memory.add(np.full(DIM, np.nan), DENOISE, 1.0)
    with pytest.raises(ValueError, match="unknown tool"):
        memory.add(key(0), [("no_such_tool", {})], 1.0)
    with pytest.raises(ValueError, match="outside"):
        memory.add(key(0), [("tv_denoise", {"weight": 7.0})], 1.0)
    with pytest.raises(ValueError, match="misses"):
        memory.add(key(0), [("tv_denoise", {})], 1.0)
    with pytest.raises(ValueError, match="at least one step"):
        memory.add(key(0), [], 1.0)
    with pytest.raises(ValueError, match="n must be"):
        memory.nearest(key(0), 0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a spatial-ir-memory"):
        ExperienceMemory.load(bad)
    with pytest.raises(FileNotFoundError):
        ExperienceMemory.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="tries"):
        MemoryPlanner(memory=memory, tries=0)
    with pytest.raises(ValueError, match="autosave"):
        MemoryPlanner(memory=memory, autosave=True)


def _scene(size: int = 64, seed: int = 3):  # noqa: ANN202
    from skimage import data

    clean = np.ascontiguousarray(data.astronaut()[100:100 + 2 * size:2, 150:150 + 2 * size:2].astype(np.float32) / 255)
    return synthesize(clean, recipe="spatial-mixed", seed=seed)


def test_planner_tries_judges_keeps_best_and_learns(tmp_path) -> None:  # noqa: ANN001
    scene = _scene()
    planner = MemoryPlanner(memory=str(tmp_path / "m.json"), judge="psnr", tries=3, autosave=True,
                            region_proposer="grid", max_regions=4)
    empty = planner.restore(scene.degraded, reference=scene.clean)
    assert empty.trace == [] and empty.tool_calls == 0  # nothing remembered yet
    emb = make_embedder("handcrafted").embed(scene.degraded, scene.masks)
    for k in range(len(scene.masks)):  # every region: the three schedules, keyed by its own embedding
        for sched, g in ((DENOISE, 1.0), (DEHAZE, 1.0), (BRIGHTEN, 1.0)):
            planner.memory.add(emb[k], sched, g)
    n0 = len(planner.memory)
    res = planner.restore(scene.degraded, reference=scene.clean, masks=scene.masks)
    k_regions = len(scene.masks)
    assert res.iqa_calls == 1 + 3 * k_regions  # one score of the input, then one per try
    assert res.tool_calls == k_regions * (1 + 1 + 2)  # every try's tool calls counted
    psnr = planner.judge
    assert psnr.score(res.image, scene.clean) >= psnr.score(scene.degraded, scene.clean)  # never worse
    np.testing.assert_array_equal(res.replay(scene.degraded), res.image)  # the trace replays exactly
    kept = {st.region for st in res.trace}
    assert len(planner.memory) == n0 + len(kept)  # it learned the kept schedules
    assert len(ExperienceMemory.load(tmp_path / "m.json")) == len(planner.memory)  # autosaved


def test_no_judge_applies_the_nearest_schedule() -> None:
    scene = _scene(48)
    masks = np.ones((1, 48, 48), bool)
    emb = make_embedder("handcrafted").embed(scene.degraded, masks)[0]
    mem = ExperienceMemory()
    mem.add(emb, DEHAZE, 1.0)
    mem.add(emb + 3.0, DENOISE, 1.0)
    res = make_planner("memory", memory=mem, judge="none", mode="global").restore(scene.degraded)
    assert res.iqa_calls == 0 and [s.tool for s in res.trace] == ["dcp_dehaze"]
    assert math.isnan(res.trace[0].quality_before)


def test_prefill_from_trajectories() -> None:
    k, t, p = 2, 3, 3
    names = ["tv_denoise", "dcp_dehaze", "gamma_correct"]
    rows = 3  # scene 0: region 1 dehaze, region 1 brighten, STOP
    a = {f: np.zeros((rows,), dt) for f, dt in FIELDS.items()}
    a["regions"] = np.zeros((rows, k, DIM), np.float32)
    a["regions"][0, 1] = key(1.5)
    a["valid"] = np.ones((rows, k), np.float32)
    a["history"] = np.zeros((rows, k, t), np.float32)
    a["steps_left"] = np.zeros((rows, 1), np.float32)
    a["step"] = np.arange(rows, dtype=np.int32)
    a["region"] = np.array([1, 1, -1], np.int32)
    a["tool"] = np.array([1, 2, t], np.int32)
    a["params_phys"] = np.array([[0.9, 0.1, 5.0], [1.6, 1.4, np.nan], [np.nan] * 3], np.float32)
    a["params_norm"] = np.zeros((rows, p), np.float32)
    a["quality_before"] = np.array([10.0, 12.0, 13.0], np.float32)
    a["quality_after"] = np.array([12.0, 13.0, 13.0], np.float32)
    a["gains"] = np.zeros((rows, k * t + 1), np.float32)
    a["best_params"] = np.zeros((rows, k, t, p), np.float32)
    meta = {"tool_names": names, "param_counts": [len(get_tool(n).params) for n in names], "num_regions": k,
            "region_dim": DIM, "num_tools": t, "num_params": p, "judge": "psnr", "embedding": "handcrafted"}
    mem = ExperienceMemory()
    assert mem.add_trajectories(TrajectoryData(a, meta)) == 1  # region 0 never acted on: no entry
    entry = mem.entries[0]
    assert [s[0] for s in entry.schedule] == ["dcp_dehaze", "gamma_correct"]
    assert entry.schedule[1][1] == pytest.approx({"gamma": 1.6, "gain": 1.4})
    assert entry.gain == pytest.approx(3.0)
    np.testing.assert_allclose(entry.key, key(1.5))
    assert ExperienceMemory().add_trajectories(TrajectoryData(a, meta), min_gain=5.0) == 0


def test_default_judge_matches_the_command_line_and_unscorable_tries_are_skipped() -> None:
    assert make_planner("memory").judge.label == "npsnr"  # as `spatial-ir ... --planner memory`
    scene = _scene(48)
    masks = np.ones((1, 48, 48), bool)
    emb = make_embedder("handcrafted").embed(scene.degraded, masks)[0]
    mem = ExperienceMemory()
    flat = [("gamma_correct", {"gamma": 1.0, "gain": 4.0}), ("gamma_correct", {"gamma": 1.0, "gain": 4.0}),
            ("gamma_correct", {"gamma": 1.0, "gain": 4.0})]  # drives every pixel to 1.0: brisque is undefined there
    mem.add(emb, flat, 1.0)
    mem.add(emb + 0.1, DENOISE, 0.5)
    planner = make_planner("memory", memory=mem, judge="brisque", mode="global", tries=2, learn=False)
    out = planner.restore(np.clip(scene.degraded * 0.3 + 0.5, 0, 1).astype(np.float32))
    assert out.tool_calls == 4 and out.iqa_calls == 3  # the input, then both tries (one undefined, so dropped)
    assert all(s.tool == "tv_denoise" for s in out.trace)  # never the unscorable try
