"""experiments/summarise_students.py: per-seed rows read from train_distill summaries, mean / std, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.summarise_students import main, markdown, summarise


def _summary(folder: Path, seed: int, val: float, test: float) -> str:
    folder.mkdir(parents=True)
    s = {"config": {"train": {"seed": seed}}, "selected": "bc_e10", "dataset": {"states": 100},
         "candidates": {"bc_e10": {"val_psnr_gain": val}},
         "test": {"student": {"psnr_gain": test, "seconds": 1.0}, "teacher": {"psnr_gain": 4.0, "seconds": 20.0},
                  "gain_ratio": test / 4.0, "agreement_on_teacher_states": {"joint": 0.25}}}
    (folder / "summary.json").write_text(json.dumps(s))
    return str(folder)


def test_mean_and_std_over_seeds(tmp_path: Path) -> None:
    runs = [_summary(tmp_path / f"r{i}", i, 1.0 + i, 0.5 * (i + 1)) for i in range(3)]
    (res,) = summarise([{"label": "a", "runs": runs}])
    assert [r["seed"] for r in res["rows"]] == [0, 1, 2]
    assert res["stats"]["val_gain"] == pytest.approx({"mean": 2.0, "std": 1.0})
    assert res["stats"]["test_gain"]["mean"] == pytest.approx(1.0)
    assert res["stats"]["gain_ratio"]["mean"] == pytest.approx(0.25)
    assert res["stats"]["seconds_ratio"] == pytest.approx({"mean": 0.05, "std": 0.0})
    text = markdown([res], "T")
    assert "| a | 3 | +2.00 ± 1.00 | +1.00 ± 0.50 | 25% ± 12% |" in text


def test_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"out: {tmp_path / 'o'}\nrecipes: [{{label: a, runs: [{tmp_path / 'missing'}]}}]\n")
    assert main(["--config", str(cfg)]) == 2
    assert "no summary.json" in capsys.readouterr().err
    cfg.write_text("out: x\n")
    assert main(["--config", str(cfg)]) == 2
    assert "needs 'recipes'" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "none.yaml")]) == 2
    cfg.write_text("out: x\nrecipes: [{label: a}]\n")
    assert main(["--config", str(cfg)]) == 2
    assert "recipe 0 needs a 'label' and a non-empty list 'runs'" in capsys.readouterr().err
