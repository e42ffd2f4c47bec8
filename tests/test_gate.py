"""The perception gate: which steps it keeps, exact replay, defaults per planner, options and errors."""

from __future__ import annotations

import numpy as np
import pytest

from ir_env.recipes import synthesize
from policies import make_planner
from policies.evaluation import parse_planner_spec
from policies.gate import DEFAULT_GATES, PerceptionGate, gate_of_spec, gate_thresholds, resolve_gate
from restorers import get_tool
from restorers.spec import FAMILIES


@pytest.fixture(scope="module")
def scene(photo: np.ndarray):  # noqa: ANN201
    return synthesize(photo, recipe="spatial-mixed", seed=4)


def test_gate_keeps_exactly_the_perceived_steps(scene) -> None:  # noqa: ANN001
    from ir_env.encoder.learned import LearnedEmbedder

    inner = make_planner("fixed", max_regions=3)  # every family's tool on every region
    raw = inner.restore(scene.degraded)
    res = PerceptionGate(make_planner("fixed", max_regions=3), "encoder").restore(scene.degraded)
    prob = LearnedEmbedder().predict(scene.degraded, raw.masks)["family_prob"]
    want = [(st.region, st.tool) for st in raw.trace
            if prob[st.region, FAMILIES.index(get_tool(st.tool).family)] >= 0.5]
    assert [(st.region, st.tool) for st in res.trace] == want
    assert 0 < len(res.trace) < len(raw.trace)  # the fixed pipeline does more than the scene needs
    gate = res.info["gate"]
    assert gate["kept"] == len(want) and len(gate["vetoed"]) == len(raw.trace) - len(want)
    assert all(v["prob"] < 0.5 and v["threshold"] == 0.5 for v in gate["vetoed"])
    assert np.array_equal(res.replay(scene.degraded), res.image)  # the RestorationResult contract
    assert res.tool_calls == raw.tool_calls + len(want)  # the kept steps were replayed
    assert res.iqa_calls == 0


def test_nothing_vetoed_returns_the_inner_result(scene) -> None:  # noqa: ANN001
    p = PerceptionGate(make_planner("random", max_regions=2, max_steps=2, seed=1), "encoder")
    p.thresholds = dict.fromkeys(FAMILIES, 0.0)  # every step passes
    raw = make_planner("random", max_regions=2, max_steps=2, seed=1).restore(scene.degraded)
    res = p.restore(scene.degraded)
    assert np.array_equal(res.image, raw.image) and res.tool_calls == raw.tool_calls
    assert res.info["gate"]["vetoed"] == []


def test_clean_photo_is_left_alone_by_the_gated_ppo(photo: np.ndarray) -> None:
    raw = make_planner("ppo", gate="off").restore(photo)
    res = make_planner("ppo").restore(photo)  # gated by default
    assert len(raw.trace) >= 1  # the raw policy always acts
    assert len(res.trace) <= len(raw.trace)
    assert np.abs(res.image - photo).mean() <= np.abs(raw.image - photo).mean() + 1e-7


def test_defaults_and_options() -> None:
    assert set(DEFAULT_GATES) == {"ppo", "maskable_ppo", "distilled"}
    assert isinstance(make_planner("ppo", tile=0), PerceptionGate)
    assert isinstance(make_planner("ppo").inner, PerceptionGate)  # the shipped ppo: tiled (deploy.tile), gated per tile
    assert not isinstance(make_planner("ppo", gate="off", tile=0), PerceptionGate)
    assert not isinstance(make_planner("fixed"), PerceptionGate)
    assert make_planner("fixed", gate="encoder").gate == "encoder"
    p, _ = parse_planner_spec("ppo:gate=off:tile=0")
    assert not isinstance(p, PerceptionGate)
    p, _ = parse_planner_spec("distilled:gate=0")
    assert not isinstance(p, PerceptionGate)
    assert resolve_gate("ppo") == "policy" and resolve_gate("greedy") == "off"
    assert resolve_gate("distilled") == "table" and resolve_gate("maskable_ppo") == "table"
    assert resolve_gate("ppo", False) == "off" and resolve_gate("fixed", "table") == "table"
    assert gate_of_spec("ppo:path=x.zip") == "policy" and gate_of_spec("ppo:gate=off") == "off"
    assert gate_of_spec("fixed:global") == "off" and gate_of_spec("fixed:gate=encoder") == "encoder"
    thr = gate_thresholds("table")
    assert set(thr) == set(FAMILIES) and all(0 < v < 1 for v in thr.values())
    assert gate_thresholds("encoder") == dict.fromkeys(FAMILIES, 0.5)
    tiled_gated = make_planner("ppo", tile=64)
    assert isinstance(tiled_gated.inner, PerceptionGate)  # gated per tile
    # the wrappers hand other attributes to the wrapped planner (the policy, its env, its settings)
    assert tiled_gated.model is tiled_gated.inner.inner.model and tiled_gated.step_cap >= 1
    with pytest.raises(AttributeError):
        _ = make_planner("fixed", gate="table").no_such_attribute


@pytest.mark.parametrize("bad", ["strict", 2, 0.5])
def test_bad_gate_is_named(bad: object) -> None:
    with pytest.raises(ValueError, match="gate must be one of"):
        make_planner("fixed", gate=bad)


def test_gate_needs_a_planner() -> None:
    with pytest.raises(TypeError, match="Planner"):
        PerceptionGate("fixed")  # type: ignore[arg-type]


def test_policy_gate_reads_the_models_own_thresholds(tmp_path) -> None:  # noqa: ANN001
    import shutil

    import yaml

    from policies.ppo.planner import MODELS_DIR

    d = tmp_path / "m"
    d.mkdir()
    shutil.copy2(MODELS_DIR / "ppo_spatial" / "model.zip", d / "model.zip")
    cfg = yaml.safe_load((MODELS_DIR / "ppo_spatial" / "config.yml").read_text())
    own = {f: 0.05 * (i + 1) for i, f in enumerate(FAMILIES)}
    cfg["deploy"] = {"tile": 128, "gate": {"thresholds": own}}
    (d / "config.yml").write_text(yaml.safe_dump(cfg))
    gate = make_planner("ppo", path=str(d / "model.zip"), tile=0)
    assert gate.gate == "policy" and gate.source == "policy" and gate.thresholds == pytest.approx(own)
    assert make_planner("ppo", path=str(d / "model.zip"), tile=0, gate="table").thresholds == gate_thresholds("table")
    # a model without deploy.gate (the shipped ppo): the "policy" gate falls back to the table's thresholds
    shipped = make_planner("ppo", tile=0)
    assert shipped.gate == "policy" and shipped.source == "table" and shipped.thresholds == gate_thresholds("table")
    # a malformed entry names the file and the problem
    for bad, match in (({"thresholds": {"noise": 0.1}}, "missing"), ({"thresholds": dict.fromkeys(FAMILIES, 1.5)},
                       "in \\[0, 1\\]"), ({"tile": 3}, "thresholds"), ({"thresholds": {**own, "fog": 0.2}}, "fog")):
        cfg["deploy"] = {"tile": 128, "gate": bad}
        (d / "config.yml").write_text(yaml.safe_dump(cfg))
        with pytest.raises(ValueError, match=match) as err:
            make_planner("ppo", path=str(d / "model.zip"))
        assert "config.yml" in str(err.value) and "deploy.gate" in str(err.value)


def test_given_thresholds_replace_the_gates(scene) -> None:  # noqa: ANN001
    thr = dict.fromkeys(FAMILIES, 0.3)
    p = PerceptionGate(make_planner("fixed", max_regions=3), "table", thresholds=thr)
    assert p.thresholds == thr and p.source == "given"
    res = p.restore(scene.degraded)
    assert all(v["threshold"] == 0.3 and v["prob"] < 0.3 for v in res.info["gate"]["vetoed"])
    assert res.info["gate"]["thresholds_from"] == "given"
    for bad in ({"noise": 0.1}, {**thr, "noise": -0.1}, {**thr, "noise": "high"}, [0.3] * 6):
        with pytest.raises(ValueError, match="gate threshold"):
            PerceptionGate(make_planner("fixed"), "table", thresholds=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gate must be one of"):
        PerceptionGate(make_planner("fixed"), "off")
    assert resolve_gate("ppo", "Table") == "table" and resolve_gate("ppo", "OFF") == "off"  # any case, as documented


def test_replayed_steps_do_not_keep_the_inner_runs_scores(photo: np.ndarray) -> None:
    """After a veto the kept steps run on other images than in the inner run: their judged scores are dropped."""
    scene = synthesize(photo, recipe="spatial-mixed", seed=6)  # greedy takes steps of three families here
    inner = make_planner("greedy", judge="psnr", max_regions=3, max_steps=4)
    raw = inner.restore(scene.degraded, reference=scene.clean)
    families = [get_tool(s.tool).family for s in raw.trace]
    assert len(set(families)) >= 2 and all(np.isfinite(s.quality_after) for s in raw.trace)
    keep = families[-1]  # every step of the last step's family is kept, every other one vetoed
    res = PerceptionGate(make_planner("greedy", judge="psnr", max_regions=3, max_steps=4), "encoder",
                         thresholds={f: 0.0 if f == keep else 1.0 for f in FAMILIES}).restore(
        scene.degraded, reference=scene.clean)
    assert res.info["gate"]["vetoed"] and [s.tool for s in res.trace] == [
        s.tool for s in raw.trace if get_tool(s.tool).family == keep]
    assert all(np.isnan(s.quality_before) and np.isnan(s.quality_after) for s in res.trace)
    assert np.array_equal(res.replay(scene.degraded), res.image)
