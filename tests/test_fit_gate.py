"""experiments/fit_gate.py: the recorded replay equals the gate's output, the search keeps its floor, ship
round trip."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import yaml

from experiments import fit_gate
from ir_env.recipes import synthesize
from policies import make_planner
from policies.gate import PerceptionGate
from policies.ppo.planner import MODELS_DIR
from restorers.spec import FAMILIES


@pytest.fixture(scope="module")
def recorded(photo: np.ndarray):  # noqa: ANN201
    planner = make_planner("fixed", max_regions=3)  # acts with every family: many steps to keep or drop
    gate = PerceptionGate(planner, "table")
    scenes = [synthesize(photo, recipe="spatial-mixed", seed=s) for s in (1, 2)]
    return planner, [fit_gate.record(planner, gate.embedder, sc.degraded, sc.clean) for sc in scenes], scenes


def test_replay_of_kept_steps_is_the_gates_output(recorded) -> None:  # noqa: ANN001
    planner, recs, scenes = recorded
    for thr_value in (0.0, 0.3, 0.7, 1.0):
        thr = dict.fromkeys(FAMILIES, thr_value)
        arr = np.array([thr[f] for f in FAMILIES])
        for rec, sc in zip(recs, scenes, strict=True):
            gated = PerceptionGate(planner, "table", thresholds=thr).restore(sc.degraded)
            assert len(rec.kept(arr)) == len(gated.trace)
            assert rec.out_psnr(arr) == pytest.approx(fit_gate.psnr(gated.image, sc.clean), abs=1e-6)
    nothing = recs[0].out_psnr(np.full(len(FAMILIES), 1.01))  # every step vetoed: the input
    assert nothing == pytest.approx(fit_gate.psnr(scenes[0].degraded, scenes[0].clean))


def test_search_improves_and_keeps_the_floor(recorded, photo: np.ndarray) -> None:  # noqa: ANN001
    planner, recs, _ = recorded
    gate = PerceptionGate(planner, "table")
    crops = [fit_gate.record(planner, gate.embedder, c, c) for c in (photo[:64, :64], photo[-64:, -64:])]
    scenes = {"spatial-mixed": recs}
    start = np.full(len(FAMILIES), 0.5)
    floor = fit_gate.score(start, scenes, crops)["untouched"]
    thr, log = fit_gate.coordinate_descent(start, [0.0, 0.25, 0.5, 0.75, 1.0], 1, floor, scenes, crops)
    s = fit_gate.score(thr, scenes, crops)
    assert s["untouched"] >= floor and s["objective"] >= fit_gate.score(start, scenes, crops)["objective"]
    assert [e["family"] for e in log] == list(FAMILIES)
    assert log[-1]["objective"] == pytest.approx(s["objective"])


def test_ship_writes_deploy_gate_and_keeps_the_rest(tmp_path) -> None:  # noqa: ANN001
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy2(MODELS_DIR / "ppo_spatial" / "model.zip", d / "model.zip")
    src = (MODELS_DIR / "ppo_spatial" / "config.yml").read_text()
    (d / "config.yml").write_text(src)
    thr = {f: 0.1 * (i + 1) for i, f in enumerate(FAMILIES)}
    fit_gate.ship({"policy": str(d / "model.zip"), "thresholds": thr, "encoder": "abc"}, "cmd")
    cfg = yaml.safe_load((d / "config.yml").read_text())
    assert cfg["deploy"]["gate"]["thresholds"] == pytest.approx(thr) and cfg["deploy"]["tile"] == 128
    before = yaml.safe_load(src)
    assert {k: v for k, v in cfg.items() if k != "deploy"} == {k: v for k, v in before.items() if k != "deploy"}
    assert make_planner("ppo", path=str(d / "model.zip"), tile=0).thresholds == pytest.approx(thr)
    # a deploy block in the middle of the file: the keys after it stay
    moved = "deploy:\n  tile: 64\n" + src.split("deploy:")[0]  # deploy first, every other key after it
    (d / "config.yml").write_text(moved)
    fit_gate.ship({"policy": str(d / "model.zip"), "thresholds": thr, "encoder": "abc"}, "cmd")
    cfg = yaml.safe_load((d / "config.yml").read_text())
    assert cfg["deploy"]["tile"] == 64 and cfg["deploy"]["gate"]["thresholds"] == pytest.approx(thr)
    assert {k: v for k, v in cfg.items() if k != "deploy"} == {k: v for k, v in before.items() if k != "deploy"}


def test_config_errors_are_named(tmp_path) -> None:  # noqa: ANN001
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"policy": "nowhere.zip", "fit": {}}))
    with pytest.raises(ValueError, match="missing keys"):
        fit_gate.load_config(p)
    cfg = yaml.safe_load(open("experiments/configs/ppo_gate.yaml"))
    cfg["policy"] = "nowhere.zip"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(FileNotFoundError, match="nowhere.zip"):
        fit_gate.load_config(p)
    for change, message in (({"fit": {**cfg["fit"], "pases": 2}}, "unknown config key 'pases' (did you mean"),
                            ({"fit": {**cfg["fit"], "grid": [0.5, 1.5]}}, "fit.grid must be a non-empty list"),
                            ({"fit": {**cfg["fit"], "crop": 8}}, "fit: crop must be a whole number >= 32"),
                            ({"reportjson": "x.json"}, "unknown config key 'reportjson'")):
        p.write_text(yaml.safe_dump({**cfg, **change}))
        with pytest.raises(ValueError, match=re.escape(message)):
            fit_gate.load_config(p)
