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
    ExperienceMemory().save(tmp_path / "m.json")  # an empty memory file: the planner says it cannot act yet
    with pytest.warns(UserWarning, match="memory at .*m.json is empty: it retrieves nothing"):
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
    assert res.info == {"memory_size": n0 + len(kept), "learned": len(kept)}
    assert len(ExperienceMemory.load(tmp_path / "m.json")) == len(planner.memory)  # autosaved
    again = planner.restore(scene.degraded, reference=scene.clean, masks=scene.masks)  # the same image once more
    assert np.array_equal(again.image, res.image) and again.info["learned"] == 0  # nothing new to learn
    assert len(planner.memory) == n0 + len(kept)  # its schedules are not stored twice
    reread = MemoryPlanner(memory=str(tmp_path / "m.json"), judge="psnr", tries=3, region_proposer="grid",
                           max_regions=4)  # the file's keys are rounded to 3 decimals: still the same entries
    third = reread.restore(scene.degraded, reference=scene.clean, masks=scene.masks)
    assert third.info["learned"] == 0 and len(reread.memory) == n0 + len(kept)


def test_a_new_memory_file_starts_from_the_shipped_memory(tmp_path) -> None:  # noqa: ANN001
    """memory=NEW_PATH: a copy of the shipped memory that grows into NEW_PATH (an empty one would never act)."""
    from policies.memory import DEFAULT_MEMORY

    shipped = ExperienceMemory.load(DEFAULT_MEMORY)
    scene = _scene()
    planner = MemoryPlanner(memory=str(tmp_path / "new.json"), judge="psnr", autosave=True, region_proposer="grid",
                            max_regions=4)
    assert len(planner.memory) == len(shipped)
    res = planner.restore(scene.degraded, reference=scene.clean)
    assert res.tool_calls > 0 and res.trace  # it retrieved and kept something
    assert len(ExperienceMemory.load(tmp_path / "new.json")) == len(shipped) + res.info["learned"]
    assert len(ExperienceMemory.load(DEFAULT_MEMORY)) == len(shipped)  # the shipped file is untouched


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
    assert len(mem) == 2 and out.info["learned"] == 0 and out.info["memory_size"] == 2  # learn=False adds nothing


def _prefill_data(embedding: str = "handcrafted", stamp: str | None = None) -> TrajectoryData:
    """One scene, one region dehazed then brightened (as test_prefill_from_trajectories)."""
    dim = make_embedder(embedding).dim
    k, t, p, rows = 2, 3, 3, 2
    names = ["tv_denoise", "dcp_dehaze", "gamma_correct"]
    a = {f: np.zeros((rows,), dt) for f, dt in FIELDS.items()}
    a.update(regions=np.zeros((rows, k, dim), np.float32), valid=np.ones((rows, k), np.float32),
             history=np.zeros((rows, k, t), np.float32), steps_left=np.zeros((rows, 1), np.float32),
             step=np.arange(rows, dtype=np.int32), region=np.array([1, 1], np.int32), tool=np.array([1, 2], np.int32),
             params_phys=np.array([[0.9, 0.1, 5.0], [1.6, 1.4, np.nan]], np.float32),
             params_norm=np.zeros((rows, p), np.float32), quality_before=np.array([10.0, 12.0], np.float32),
             quality_after=np.array([12.0, 13.0], np.float32), gains=np.zeros((rows, k * t + 1), np.float32),
             best_params=np.zeros((rows, k, t, p), np.float32))
    meta = {"tool_names": names, "param_counts": [len(get_tool(n).params) for n in names], "num_regions": k,
            "region_dim": dim, "num_tools": t, "num_params": p, "judge": "psnr", "embedding": embedding,
            **({"encoder_sha256": stamp} if stamp else {})}
    return TrajectoryData(a, meta)


def test_learned_keys_carry_the_encoder_weights_and_other_weights_are_refused(tmp_path) -> None:  # noqa: ANN001
    from ir_env.encoder.learned import DEFAULT_WEIGHTS, weights_fingerprint

    now = weights_fingerprint(DEFAULT_WEIGHTS)
    mem = ExperienceMemory("learned")
    assert mem.add_trajectories(_prefill_data("learned", now)) == 1
    with pytest.raises(ValueError, match="observed through encoder weights 000000000000"):
        ExperienceMemory("learned").add_trajectories(_prefill_data("learned", "0" * 64))
    with pytest.raises(ValueError, match="observed through encoder weights None"):
        ExperienceMemory("learned").add_trajectories(_prefill_data("learned", None))
    with pytest.raises(ValueError, match="observed through encoder weights"):  # hand-made keys, stamped data
        ExperienceMemory().add_trajectories(_prefill_data("handcrafted", now))
    path = mem.save(tmp_path / "learned.json")
    doc = json.loads(path.read_text())
    assert doc["encoder_sha256"] == now
    assert len(ExperienceMemory.load(path)) == 1
    doc["encoder_sha256"] = "f" * 64
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="made by encoder weights ffffffffffff"):
        ExperienceMemory.load(path)
    assert "encoder_sha256" not in ExperienceMemory().to_json()  # hand-made keys need no stamp


def test_prefill_command_takes_the_datasets_embedding(tmp_path, capsys) -> None:  # noqa: ANN001
    from ir_env.encoder.learned import DEFAULT_WEIGHTS, weights_fingerprint
    from policies.distill.dataset import rows_to_arrays, shard_path, write_meta, write_shard  # noqa: F401
    from policies.memory import main

    data = _prefill_data("learned", weights_fingerprint(DEFAULT_WEIGHTS))
    folder = tmp_path / "traj"
    write_meta(folder, data.meta)
    write_shard(shard_path(folder, 0), data.arrays)
    assert main(["--trajectories", str(folder), "-o", str(tmp_path / "m.json")]) == 0
    assert "(learned keys)" in capsys.readouterr().out
    assert ExperienceMemory.load(tmp_path / "m.json").embedding == "learned"
    assert main(["--trajectories", str(folder), "-o", str(tmp_path / "h.json"), "--embedding", "handcrafted"]) == 2
    assert "error:" in capsys.readouterr().err
    for gain, message in (("nan", "min_gain must be a finite number"), ("100", "the memory would be empty")):
        assert main(["--trajectories", str(folder), "-o", str(tmp_path / "e.json"), "--min-gain", gain]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize(("doc", "message"), [
    ({"entries": None}, "'entries' must be a list"),
    ({"entries": {"a": 1}}, "'entries' must be a list"),
    ({"entries": [{"schedule": DENOISE, "gain": 1.0}]}, "entry 0 must hold key, schedule and gain"),
    ({"entries": [{"key": [0.0] * DIM, "schedule": [{"tool": "tv_denoise", "params": {"weight": 0.1}}],
                   "gain": None}]}, "entry 0"),
    ({"ignore_features": ["no_such_feature"]}, "not features of the 'handcrafted' embedding"),
])
def test_malformed_memory_files_name_the_file_and_the_problem(tmp_path, doc: dict, message: str) -> None:  # noqa: ANN001
    base = {"format": "spatial-ir-memory/1", "embedding": "handcrafted", "dim": DIM, "entries": []}
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**base, **doc}))
    with pytest.raises(ValueError, match=message) as err:
        ExperienceMemory.load(path)
    assert str(path) in str(err.value)
    (tmp_path / "blob.json").write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match="is not a memory file"):
        ExperienceMemory.load(tmp_path / "blob.json")


def test_bad_memory_paths_are_refused_before_any_restore(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="not a directory"):
        MemoryPlanner(memory=str(tmp_path))
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        MemoryPlanner(memory=str(a_file / "m.json"), autosave=True)
    assert not list(tmp_path.glob("*.tmp"))


def test_two_processes_autosaving_one_file_keep_each_others_entries(tmp_path) -> None:  # noqa: ANN001
    """Each process adds entries and autosaves to the same file; none of them is lost (merge under a lock)."""
    import subprocess
    import sys

    path = tmp_path / "shared.json"
    code = f"""
import numpy as np, sys
from policies.memory import ExperienceMemory
tag = int(sys.argv[1])
mem = ExperienceMemory()
for i in range(40):
    k = np.zeros(mem.dim, np.float32); k[0] = tag * 100 + i
    e = mem.add(k, [("tv_denoise", {{"weight": 0.1}})], 1.0, f"p{{tag}}-{{i}}")
    mem = mem.merge_into_file({str(path)!r}, [e])
"""
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tag)]) for tag in (1, 2)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    sources = {e.source for e in ExperienceMemory.load(path).entries}
    assert sources == {f"p{tag}-{i}" for tag in (1, 2) for i in range(40)}
    assert not list(tmp_path.glob("shared.json.*.tmp"))


def test_two_planners_starting_one_new_file_store_the_shipped_entries_once(tmp_path) -> None:  # noqa: ANN001
    """Both start from a copy of the shipped memory; the second's autosave used to add all of it again."""
    import os
    import stat

    from policies.memory import DEFAULT_MEMORY

    shipped = len(ExperienceMemory.load(DEFAULT_MEMORY))
    path = tmp_path / "shared.json"
    kw = {"judge": "psnr", "autosave": True, "region_proposer": "grid", "max_regions": 4}
    p1, p2 = MemoryPlanner(memory=str(path), **kw), MemoryPlanner(memory=str(path), **kw)
    a, b = _scene(), _scene(seed=11)
    learned = p1.restore(a.degraded, reference=a.clean).info["learned"]
    learned += p2.restore(b.degraded, reference=b.clean).info["learned"]
    disk = ExperienceMemory.load(path)
    assert len(disk) == shipped + learned
    assert len({json.dumps(e.as_dict(), sort_keys=True) for e in disk.entries}) == len(disk)  # no duplicate
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # as open() creates files, not mkstemp's 0600
    path.chmod(0o664)
    p1.restore(a.degraded, reference=a.clean)
    assert stat.S_IMODE(path.stat().st_mode) == 0o664  # a shared file keeps its permissions


def test_autosave_to_a_folder_that_takes_no_files_is_refused_before_any_restore(tmp_path) -> None:  # noqa: ANN001
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root: os.access says yes; /proc takes no files for anyone
            target = "/proc/spatial_ir_memory.json"
        else:
            target = str(ro / "m.json")
        with pytest.raises(ValueError, match="(cannot write|not writable).*memory"):
            MemoryPlanner(memory=target, autosave=True, judge="psnr")
    finally:
        ro.chmod(0o700)


def test_threshold_defaults_as_the_searches_and_one_ignored_feature_may_be_a_string() -> None:
    assert MemoryPlanner().threshold == make_planner("greedy", judge="npsnr").threshold == 1.0  # npsnr's default
    assert MemoryPlanner(judge="psnr").threshold == 0.0 and MemoryPlanner(judge="none").threshold == 0.0
    assert MemoryPlanner(threshold=0.25).threshold == 0.25
    assert ExperienceMemory(ignore_features="area").ignore_features == ("area",)


def test_prefill_keeps_datasets_apart_reads_any_judge_and_never_overwrites_silently(tmp_path, capsys) -> None:  # noqa: ANN001
    """Scene numbers restart at 0 in every dataset: two folders used to be merged scene by scene (one schedule from
    each under one key). A no-reference teacher's gains were NaN, so its memory was always empty. An existing
    memory file was replaced without a word."""
    from policies.distill.dataset import shard_path, write_meta, write_shard
    from policies.memory import main, prefill

    folders = []
    for i, quality in enumerate(([10.0, 12.0], [30.0, 25.0])):  # the second: niqe, lower is better (gains +5)
        data = _prefill_data()
        data.arrays["quality_before"] = np.array([quality[0], quality[1]], np.float32)
        data.arrays["quality_after"] = np.array([quality[1], quality[1] - 1.0 if i else 13.0], np.float32)
        data.arrays["regions"][:, 1, 0] = float(i)  # a key of its own
        if i:
            data.meta["judge"] = "niqe"
        folder = tmp_path / f"traj{i}"
        write_meta(folder, data.meta)
        write_shard(shard_path(folder, 0), data.arrays)
        folders.append(folder)
    mem = prefill(folders, tmp_path / "m.json")
    assert len(mem) == 2 and all(len(e.schedule) == 2 for e in mem.entries)  # one 2-step schedule per dataset
    assert sorted(round(e.gain, 3) for e in mem.entries) == [3.0, 6.0]  # psnr +2 +1; niqe 30->25->24: +5 +1
    assert main(["--trajectories", str(folders[0]), "-o", str(tmp_path / "m.json")]) == 2
    assert "--overwrite" in capsys.readouterr().err and len(ExperienceMemory.load(tmp_path / "m.json")) == 2
    assert main(["--trajectories", str(folders[0]), "-o", str(tmp_path / "m.json"), "--overwrite"]) == 0
    assert len(ExperienceMemory.load(tmp_path / "m.json")) == 1
