"""The student-vs-teacher speed benchmark (experiments/bench_distill.py) on a tiny setting."""

from __future__ import annotations

import json

import pytest

from experiments import bench_distill


def test_bench_distill_tiny(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "bench.json"
    assert bench_distill.main(["--scenes-per-image", "1", "--repeats", "2", "--teacher", "fixed",
                               "--planners", "distilled:gate=off,fixed", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["repeats"] == 2 and res["scenes"] == 4 and res["teacher"] == "fixed"
    assert list(res["planners"]) == ["fixed", "distilled:gate=off"]  # teacher first, listed once
    t, s = res["planners"]["fixed"], res["planners"]["distilled:gate=off"]
    assert t["share_of_teacher"] == pytest.approx(1.0) and t["share_per_repeat"] == pytest.approx([1.0, 1.0])
    assert s["seconds"] > 0 and s["share_of_teacher"] == pytest.approx(s["seconds"] / t["seconds"])
    assert len(s["share_per_repeat"]) == 2 and all(v > 0 for v in s["share_per_repeat"])
    assert "bench_distill" in res["command"] and "fixed" in bench_distill.table(res)


def test_bench_distill_rejects_bad_repeats() -> None:
    with pytest.raises(ValueError, match="repeats"):
        bench_distill.run_bench(scenes_per_image=1, repeats=0, teacher="fixed", planners=[], progress=False)


def test_bench_distill_bad_input_is_one_error_line(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # noqa: ANN001
    assert bench_distill.main(["--planners", "nope", "--repeats", "1", "--scenes-per-image", "1"]) == 2
    assert "unknown planner 'nope'" in capsys.readouterr().err
    assert bench_distill.main(["--images", str(tmp_path / "missing"), "--repeats", "1"]) == 2
    assert "not found" in capsys.readouterr().err
