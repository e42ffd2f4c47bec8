"""policies.step_chooser and experiments.fit_step_chooser: perceive's learned per-step bin choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from experiments import fit_step_chooser as fsc
from ir_env.encoder.learned import DEFAULT_WEIGHTS, weights_fingerprint
from ir_env.recipes import synthesize
from policies.rules import PerceivePlanner
from policies.step_chooser import STAT_NAMES, FamilyModel, StepChooser, region_stats, step_features

D = 76 + len(STAT_NAMES)


def constant_chooser(option: int, bins: int = 5, families: tuple[str, ...] = ("jpeg", "noise", "dark", "blur",
                                                                               "rain", "haze")) -> StepChooser:
    """A chooser whose every family model predicts ``option`` best whatever the region."""
    intercept = np.zeros(bins + 1)
    intercept[option] = 1.0
    m = FamilyModel(mean=np.zeros(D), scale=np.ones(D), coef=np.zeros((bins + 1, D)), intercept=intercept)
    return StepChooser(bins=bins, models=dict.fromkeys(families, m), encoder_fingerprint=weights_fingerprint(
        DEFAULT_WEIGHTS), info={})


def test_region_stats_by_hand() -> None:
    img = np.zeros((4, 4, 3), np.float32)
    img[:2] = [0.2, 0.4, 0.6]
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    s = dict(zip(STAT_NAMES, region_stats(img, mask), strict=True))
    assert s["lum_mean"] == pytest.approx(0.4) and s["lum_std"] == pytest.approx(0.0, abs=1e-7)
    assert s["dark_p50"] == pytest.approx(0.2) and s["sat_mean"] == pytest.approx(0.4)
    assert s["area"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="non-empty mask"):
        region_stats(img, np.zeros((4, 4), bool))
    assert step_features(np.arange(3.0), img, mask)[:3].tolist() == [0.0, 1.0, 2.0]


def test_choose_and_round_trip(tmp_path: Path) -> None:
    ch = constant_chooser(2, families=("haze",))
    x = np.random.default_rng(0).normal(size=D)
    assert ch.choose("haze", x, table_bin=4) == 2
    assert ch.choose("noise", x, table_bin=4) == 4  # no model: the table decides
    assert constant_chooser(5).choose("haze", x, table_bin=1) is None  # option `bins` = skip the step
    back = StepChooser.load(ch.save(tmp_path / "c.json"))
    assert back.bins == 5 and set(back.models) == {"haze"}
    assert np.allclose(back.models["haze"].predict(x), ch.models["haze"].predict(x))


def test_load_and_encoder_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable step-chooser JSON"):
        StepChooser.load(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a step chooser"):
        StepChooser.load(bad)
    d = constant_chooser(0).to_json()
    d["models"]["haze"]["coef"] = [[0.0] * D] * 3
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        StepChooser.load(bad)
    with pytest.raises(ValueError, match="re-fit it"):
        constant_chooser(0).check_encoder("0" * 64)


def test_planner_with_a_chooser_skips_or_takes_the_chosen_bin(tmp_path: Path, photo96: np.ndarray) -> None:
    scene = synthesize(photo96, recipe="mixed-3", seed=4)
    table_plan = PerceivePlanner().restore(scene.degraded)
    assert table_plan.trace, "the scene should make the table act"
    skip = PerceivePlanner(choose=constant_chooser(5).save(tmp_path / "skip.json")).restore(scene.degraded)
    assert skip.trace == [] and np.array_equal(skip.image, scene.degraded)
    fixed = PerceivePlanner(choose=constant_chooser(1).save(tmp_path / "bin1.json"))
    res = fixed.restore(scene.degraded)
    assert len(res.trace) == len(table_plan.trace)
    tools = {fixed.table.entry(f, 1)[0] for f in fixed.table.entries}
    assert all(step.tool in tools for step in res.trace)
    assert not np.array_equal(res.image, table_plan.image) or all(
        fixed.table.entry(f, 1) == fixed.table.lookup(f, 0.3) for f in fixed.table.entries)


def test_planner_refuses_a_bad_choose(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        PerceivePlanner(choose=tmp_path / "missing.json")
    with pytest.raises(ValueError, match="choose must be"):
        PerceivePlanner(choose=3)  # type: ignore[arg-type]
    path = constant_chooser(0).save(tmp_path / "c.json")
    with pytest.raises(ValueError, match="needs regions='proposer'"):
        PerceivePlanner(choose=path, regions="families")
    d = constant_chooser(0, bins=4).to_json()
    (tmp_path / "b4.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="4 bins"):
        PerceivePlanner(choose=tmp_path / "b4.json")


def _steps(n: int, photos: int, rng: np.random.Generator) -> list[dict]:
    """Synthetic steps: option ``argmax`` is a linear function of the first feature (bin 0 below 0, else skip)."""
    out = []
    for i in range(n):
        x = rng.normal(size=4)
        q = np.zeros(6)
        q[0 if x[0] < 0 else 5] = 2.0 + abs(x[0])
        out.append({"family": "haze", "table_bin": 2, "x": x, "q": q, "photo": i % photos})
    return out


def test_cross_validation_learns_a_learnable_choice_and_alphas_drop_useless_families() -> None:
    steps = _steps(200, 4, np.random.default_rng(0))
    cv = fsc.cross_validate(steps, 1.0, scenes=100)
    fam = cv["families"]["haze"]
    assert fam["oracle_per_scene_db"] == pytest.approx(sum(s["q"].max() for s in steps) / 100)
    assert fam["per_scene_db"] > 0.9 * fam["oracle_per_scene_db"]  # leave-one-photo-out still finds the rule
    assert fam["changed"] == pytest.approx(1.0) and 0.3 < fam["skipped"] < 0.7
    useless = [{**cv, "alpha": 1.0, "families": {"haze": {**fam, "per_scene_db": -0.1}}}]
    assert fsc.choose_alphas(useless, 0.0) == {}
    assert fsc.choose_alphas([cv], 0.0) == {"haze": 1.0}
    ch = fsc.fit_chooser(steps, {"haze": 1.0}, 5, "fp", {})
    assert ch.choose("haze", np.array([-2.0, 0, 0, 0]), 2) == 0
    assert ch.choose("haze", np.array([2.0, 0, 0, 0]), 2) is None


def test_main_fits_a_loadable_chooser_and_refuses_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = {"corpus": "builtin", "recipes": ["mixed-3"], "scenes_per_photo": 1, "crop": 64, "seed": 1,
           "alphas": [10.0], "min_gain_db": -1e9, "output": str(tmp_path / "c.json"), "report_dir": str(tmp_path / "r")}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert fsc.main(["--config", str(path), "--workers", "1", "--no-progress"]) == 0
    ch = StepChooser.load(tmp_path / "c.json")
    rep = json.loads((tmp_path / "r" / "fit.json").read_text())
    assert rep["scenes"] == 8 and set(ch.models) == set(rep["alphas"]) and ch.models  # min_gain_db -1e9: all kept
    assert "Kept choices together" in (tmp_path / "r" / "fit.md").read_text()
    cfg["alphas"] = [0]
    path.write_text(yaml.safe_dump(cfg))
    assert fsc.main(["--config", str(path)]) == 2
    assert "alphas must be" in capsys.readouterr().err
