"""experiments.gap_decomposition: the rule table against per-step oracle choices under perfect perception."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from experiments import gap_decomposition as gd
from experiments.fit_rule_table import candidates, psnr, scene_gain, true_families
from ir_env.recipes import synthesize
from policies.rules import RuleTable, apply_rules
from restorers import apply


@pytest.fixture(scope="module")
def scene(photo: np.ndarray):
    return synthesize(photo[:64, :64].copy(), recipe="spatial-mixed", seed=3)


def test_oracle_step_keeps_the_option_closest_to_the_clean_image(scene) -> None:
    mask = np.ones(scene.degraded.shape[:2], bool)
    options = [("tv_denoise", {"weight": 0.01}), ("gamma_correct", {"gamma": 2.0, "gain": 1.0}),
               ("tv_denoise", {"weight": 0.1})]
    by_hand = [psnr(apply(scene.degraded, t, p, mask=mask), scene.clean) for t, p in options]
    img, q, tool = gd.oracle_step(scene.degraded, scene.clean, mask, options)
    best = int(np.argmax(by_hand))
    assert q == pytest.approx(by_hand[best]) and tool == options[best][0]
    assert np.array_equal(img, apply(scene.degraded, *options[best], mask=mask))


def test_decompose_scene_table_row_is_the_rule_table_and_oracles_never_lose_a_step(scene) -> None:
    table = RuleTable.load()
    pool = {f: candidates(f, 2, 0, 50, 0) for f in table.entries}
    out = gd.decompose_scene(table, scene, pool)
    img, steps = apply_rules(table, scene.degraded, scene.masks, true_families(scene))
    assert out["table"] == pytest.approx(scene_gain(img, scene))
    assert len(out["steps"]) == len(steps) > 0  # one oracle step per table step
    assert all(s["advantage_db"] >= 0 for s in out["steps"])  # the table's entry is among the options
    assert {s["family"] for s in out["steps"]} <= set(table.entries)


def test_reference_gains_pair_by_scene_and_refuse_a_missing_one(tmp_path: Path) -> None:
    rows = [{"planner": p, "image": n, "psnr_in": 20.0, "psnr_out": 20.0 + g}
            for p, gains in (("dfs:oracle", (5.0, 3.0)), ("ppo", (1.0, -1.0)))
            for n, g in zip(("a#0", "b#0"), gains, strict=True)]
    (tmp_path / "spatial-mixed.json").write_text(json.dumps({"rows": rows}))
    got = gd.reference_gains(tmp_path, "spatial-mixed", ["b#0", "a#0"], ["dfs:oracle", "ppo"])
    assert got == {"dfs:oracle": [3.0, 5.0], "ppo": [-1.0, 1.0]}
    with pytest.raises(ValueError, match="no 'ppo' row for 1 scene"):
        gd.reference_gains(tmp_path, "spatial-mixed", ["a#0", "c#0"], ["ppo"])


def test_mean_se_by_hand() -> None:
    m, se = gd.mean_se([1.0, 2.0, 6.0])
    assert m == pytest.approx(3.0) and se == pytest.approx(np.std([1, 2, 6], ddof=1) / np.sqrt(3))


def test_main_writes_the_report_and_refuses_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = {"recipe": "spatial-mixed", "size": 64, "seed": 0, "grid": 2, "random": 0, "max_cost": 50,
           "sets": {"test": {"images": "builtin", "scenes_per_image": 1}}, "output_dir": str(tmp_path / "out")}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert gd.main(["--config", str(path), "--workers", "1", "--no-progress"]) == 0
    rep = json.loads((tmp_path / "out" / "gap.json").read_text())
    t = rep["sets"]["test"]
    assert t["scenes"] == 4 and len(t["per_scene"]) == 4  # one scene per built-in test photo
    assert t["mean"]["table"][0] == pytest.approx(np.mean([s["table"] for s in t["per_scene"]]), abs=1e-3)
    assert "true labels, rule table" in (tmp_path / "out" / "gap.md").read_text()
    del cfg["grid"]
    path.write_text(yaml.safe_dump(cfg))
    assert gd.main(["--config", str(path)]) == 2
    assert "missing config key(s) grid" in capsys.readouterr().err
