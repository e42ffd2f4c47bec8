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
