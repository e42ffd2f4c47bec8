"""experiments/distill_results.py: shares of the teacher's gain and seconds, also when the teacher kept nothing."""

from __future__ import annotations

from experiments.distill_results import share, table
from experiments.run_baselines import scene_items
from policies.evaluation import evaluate


def test_share_is_na_for_a_teacher_that_gained_nothing() -> None:
    assert share(0.9, 1.0, ".0%") == "90%" and share(0.05, 2.0, ".1%") == "2.5%"
    assert share(0.3, 0.0, ".0%") == "n/a" and share(-0.2, 1e-12, ".0%") == "n/a"


def test_table_reports_shares_and_survives_a_zero_teacher() -> None:
    items = [(n, img[:64, :64]) for n, img in scene_items("builtin", 1)[:1]]
    res = evaluate(items, "spatial-mixed", ["fixed", "random"], size=0, progress=False)
    res.update(teacher="fixed", proposer_seconds=0.01)
    text = table(res)
    assert "| fixed | 100% | 100.0% |" in text
    res["planners"]["fixed"]["psnr_gain"] = 0.0
    text = table(res)
    assert "| random | n/a |" in text and "gained nothing" in text


def test_plot_labels_shorten_model_paths() -> None:
    from policies.evaluation import plot_label

    spec = "distilled:gate=off:path=policies/distill/models/x128/model.zip"
    assert plot_label(spec) == "distilled:gate=off:path=x128"
    assert plot_label("ppo:path=model.zip") == "ppo:path=model.zip" and plot_label("greedy:oracle") == "greedy:oracle"


def test_quality_plot_is_reproducible_and_replot_reads_only_the_json(tmp_path) -> None:
    import json

    from experiments.run_baselines import main as baselines_main
    from policies.evaluation import plot_quality_vs_cost

    planners = {f"p{i}": {"tool_calls": 5.0 + i * 0.1, "seconds": 0.1, "psnr_gain": 1.0 + 0.01 * i,
                          "psnr_gain_std": 0.5, "mode": "spatial", "judge": "none", "psnr_in": 20.0,
                          "psnr_out": 21.0 + 0.01 * i, "psnr_y_in": 21.5, "psnr_y_out": 22.25, "ssim_in": 0.5,
                          "ssim_out": 0.6, "iqa_calls": 0.0}
                for i in range(6)}  # six planners on one spot: labels must be moved apart
    res = {"recipe": "spatial-mixed", "images": 2, "size": 64, "seed": 0, "planners": planners}
    a, b = plot_quality_vs_cost(res, tmp_path / "a.png"), plot_quality_vs_cost(res, tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 10_000
    out = tmp_path / "base"
    out.mkdir()
    (out / "mixed-3.json").write_text(json.dumps(res))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"output_dir: {out}\nrecipes: [mixed-3, global-moderate]\nplanners: [fixed]\ntitle: My table\n")
    baselines_main(["--config", str(cfg), "--recipes", "mixed-3", "--replot"])
    assert (out / "mixed-3.png").read_bytes() == a.read_bytes()
    table = (out / "mixed-3.md").read_text()  # the table re-written too, with PSNR on RGB and on Y in and out
    assert "| PSNR-Y in | PSNR-Y out |" in table and "| 21.50 | 22.25 |" in table
    assert (out / "README.md").read_text().startswith("# My table\n") and table in (out / "README.md").read_text()
    import pytest

    with pytest.raises(ValueError, match="--replot: no .*global-moderate.json"):
        baselines_main(["--config", str(cfg), "--recipes", "global-moderate", "--replot"])


def test_config_mistakes_that_used_to_drop_sections_silently_are_named(tmp_path) -> None:  # noqa: ANN001
    """A misspelled teacher or a missing student summary dropped a whole section of the table without a word; an
    unknown region_proposer failed only after every planner had run; --planners outside the config was merged."""
    import pytest
    import yaml

    from experiments.distill_results import load_config, main

    base = {"out": str(tmp_path / "res" / "t"), "planners": ["fixed", "random"], "size": 64, "scenes_per_image": 1,
            "teacher": "fixed"}
    for change, message in (({"teacher": "greedyy"}, "teacher 'greedyy' is not one of the planners"),
                            ({"student_summary": str(tmp_path / "none.json")}, "student_summary .* not found"),
                            ({"region_proposer": "nope"}, "unknown region_proposer 'nope'")):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({**base, **change}))
        with pytest.raises(ValueError, match=message):
            load_config(path)
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(ValueError, match="--planners: greedy:oracle not in"):
        main(["--config", str(path), "--planners", "greedy:oracle"])
    assert not (tmp_path / "res").exists()
