"""experiments.paired_gains: paired differences over the same scenes, from a comparison's per-scene rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from experiments import paired_gains as pg
from experiments.run_baselines import scene_items

NAMES = [n for n, _ in scene_items("builtin", 2)]  # 8 scenes: the 4 test photos twice


def _result(recipe: str, gains: dict[str, list[float]], groups: dict | None = None) -> dict:
    rows = [{"image": n, "planner": p, "psnr_in": 10.0, "psnr_out": 10.0 + g}
            for p, gs in gains.items() for n, g in zip(NAMES, gs, strict=True)]
    return {"recipe": recipe, "rows": rows[::-1], "groups": groups or {}}  # row order must not matter


def _cfg(tmp_path, pairs, **extra) -> dict:
    return {"images": "builtin", "scenes_per_image": 2, "size": 128, "seed": 0, "recipes": ["spatial-mixed"],
            "planners": ["x", "y"], "output_dir": str(tmp_path), "paired": {"new_from": 4, "pairs": pairs}, **extra}


def test_paired_difference_matches_hand_computation(tmp_path):
    a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    b = [0.5, 2.5, 1.0, 4.0, 1.0, 1.0, 1.0, 1.0]
    (tmp_path / "spatial-mixed.json").write_text(json.dumps(_result("spatial-mixed", {"x": a, "y": b})))
    res = pg.run(_cfg(tmp_path, [["x", "y"]]))
    row = res["recipes"]["spatial-mixed"][0]
    d = np.subtract(a, b)
    assert row["all"]["mean"] == pytest.approx(d.mean())
    assert row["all"]["se"] == pytest.approx(d.std(ddof=1) / math.sqrt(8))
    assert row["head"]["mean"] == pytest.approx(d[:4].mean()) and row["new"]["mean"] == pytest.approx(d[4:].mean())
    assert (row["all"]["wins"], row["all"]["ties"], row["all"]["losses"]) == (6, 1, 1)
    assert row["verdict"] == "holds"  # +2.75 with se ~0.9 and the first four positive too


def test_learned_group_is_the_mean_over_its_seed_specs(tmp_path):
    s0, s1 = [1.0] * 8, [3.0] * 8
    groups = {"grp": {"specs": ["ppo:path=s0", "ppo:path=s1"]}}
    result = _result("spatial-mixed", {"ppo:path=s0": s0, "ppo:path=s1": s1, "z": [0.0] * 8}, groups)
    assert pg.scene_gains(result, "grp", NAMES) == pytest.approx([2.0] * 8)


def test_skipped_planner_is_left_out_unknown_planner_is_an_error(tmp_path):
    (tmp_path / "spatial-mixed.json").write_text(json.dumps(_result("spatial-mixed", {"x": [1.0] * 8})))
    res = pg.run(_cfg(tmp_path, [["x", "greedy"]], skip={"spatial-mixed": ["greedy"]}))
    assert res["recipes"]["spatial-mixed"] == []
    with pytest.raises(KeyError, match="'typo' has no rows"):
        pg.run(_cfg(tmp_path, [["x", "typo"]]))


def test_verdicts():
    head = {"mean": 1.0}
    assert pg.verdict(head, {"mean": 1.0, "se": 0.4}) == "holds"
    assert pg.verdict(head, {"mean": 0.5, "se": 0.4}) == "not resolved"
    assert pg.verdict(head, {"mean": -1.0, "se": 0.3}) == "reversed"
    assert pg.verdict(head, {"mean": 1.0, "se": float("nan")}) == "not resolved"


def test_cli_writes_reports_and_names_bad_input(tmp_path, capsys):
    import yaml

    (tmp_path / "spatial-mixed.json").write_text(json.dumps(_result("spatial-mixed", {"x": [1.0] * 8, "y": [0.0] * 8})))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_cfg(tmp_path, [["x", "y"]])))
    assert pg.main(["--config", str(cfg)]) == 0
    assert "| x | y |" in (tmp_path / "paired.md").read_text()
    assert json.loads((tmp_path / "paired.json").read_text())["scenes"] == 8
    cfg.write_text(yaml.safe_dump(_cfg(tmp_path, [["x"]])))
    assert pg.main(["--config", str(cfg)]) == 2
    assert "paired.pairs entries" in capsys.readouterr().err
    cfg.write_text(yaml.safe_dump({**_cfg(tmp_path, [["x", "y"]]), "recipes": ["mixed-3"]}))
    assert pg.main(["--config", str(cfg)]) == 2
    assert "run experiments.compare" in capsys.readouterr().err
    cfg.write_text(yaml.safe_dump({k: v for k, v in _cfg(tmp_path, [["x", "y"]]).items() if k != "planners"}))
    assert pg.main(["--config", str(cfg)]) == 2  # read as a comparison config: its keys are checked
    assert "missing config key(s) planners" in capsys.readouterr().err


def test_pooled_over_results_and_recipes():
    r1 = {"recipes": {"a": [{"a": "x", "b": "y", "diffs": [1.0, 2.0]}], "b": [{"a": "x", "b": "y", "diffs": [3.0]}]}}
    r2 = {"recipes": {"a": [{"a": "x", "b": "y", "diffs": [-1.0, 0.0]}]}}
    (p,) = pg.pooled([r1, r2])
    d = np.array([1.0, 2.0, 3.0, -1.0, 0.0])
    assert (p["a"], p["b"], p["cells"], p["n"]) == ("x", "y", 3, 5)
    assert p["mean"] == pytest.approx(d.mean()) and p["se"] == pytest.approx(d.std(ddof=1) / math.sqrt(5))
    assert p["worst_cell"] == pytest.approx(-0.5)
