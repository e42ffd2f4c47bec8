"""experiments/eval_family_masks.py: true family masks, one tiny run, config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments import eval_family_masks as efm
from ir_env.degradations import FAMILY_OF_KIND
from ir_env.recipes import synthesize
from restorers.spec import FAMILIES


def test_true_family_masks_are_unions_of_the_regions_of_each_family(photo: np.ndarray) -> None:
    scene = synthesize(photo[:64, :64], recipe="spatial-mixed", seed=3)
    masks = efm.true_family_masks(scene)
    for f in FAMILIES:
        regions = [k for k, labels in enumerate(scene.labels) if any(FAMILY_OF_KIND[kd] == f for kd, _ in labels)]
        if regions:
            np.testing.assert_array_equal(masks[f], scene.masks[regions].any(0))
        else:
            assert f not in masks


def test_a_tiny_run_reports_gains_and_mask_overlap(tmp_path: Path) -> None:
    cfg = efm.check_config({"variants": [{"name": "shipped"}], "images": ["builtin"], "recipes": ["spatial-mixed"],
                            "scenes_per_photo": 1, "crop": 64, "headline": 2, "out": str(tmp_path / "r")})
    res = efm.run(cfg, progress=False)
    (r,) = res["results"]
    assert r["scenes"] == 4 and len(r["gains"]) == 4
    assert r["gain"] == pytest.approx(np.mean(r["gains"]), abs=1e-3)
    assert r["gain_headline"] == pytest.approx(np.mean(r["gains"][:2]), abs=1e-3)
    ious = [v["iou"] for v in r["mask_iou"].values() if v["iou"] is not None]
    assert ious and all(0.0 <= v <= 1.0 for v in ious) and r["mean_iou"] == pytest.approx(np.mean(ious))
    assert np.isfinite(r["true_masks_gain"])
    md = efm.markdown({**res, "config": {**cfg, "_path": "x.yaml"}})
    assert "| shipped | spatial-mixed |" in md


def test_config_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="lacks"):
        efm.check_config({"variants": []})
    with pytest.raises(ValueError, match="not found"):
        efm.check_config({"variants": [{"name": "x", "weights": str(tmp_path / "none")}], "images": [], "recipes": [],
                          "scenes_per_photo": 1, "crop": 64, "out": "o"})
    bad = tmp_path / "c.yaml"
    bad.write_text("- 1\n")
    assert efm.main(["--config", str(bad)]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_clean_crops_and_the_linear_map_variant(tmp_path: Path) -> None:
    crops = efm.clean_crops_of("builtin", 3, 64)
    assert len(crops) == 3 and all(c.shape == (64, 64, 3) and c.dtype == np.float32 for c in crops)
    np.testing.assert_array_equal(crops[0], efm.clean_crops_of("builtin", 3, 64)[0])  # seeded
    cfg = efm.check_config({"variants": [{"name": "head"}, {"name": "linear", "segment": False}],
                            "images": ["builtin"], "recipes": ["spatial-mixed"], "scenes_per_photo": 1, "crop": 64,
                            "clean_crops": 3, "out": str(tmp_path / "r")})
    res = efm.run(cfg, progress=False)
    assert [c["variant"] for c in res["clean"]] == ["head", "linear"]
    for c in res["clean"]:
        assert c["crops"] == 3 and 0.0 <= c["untouched"] <= 1.0 and c["steps"] >= 0
        assert (c["worst_psnr"] is None) == (c["untouched"] == 1.0)
    md = efm.markdown({**res, "config": {**cfg, "_path": "x.yaml"}})
    assert "Undegraded test crops of builtin (3 random 64 px crops" in md and "| linear |" in md


def test_family_swaps_and_fresh_validation_scenes(tmp_path: Path) -> None:
    cfg = efm.check_config({"variants": [{"name": "head"}, {"name": "linear", "segment": False}],
                            "images": ["builtin"], "recipes": ["spatial-mixed"], "scenes_per_photo": 1, "crop": 64,
                            "family_swaps": True, "out": str(tmp_path / "r"),
                            "validation": {"corpus": "builtin", "seed": 2, "recipes": {"spatial-mixed": 1}}})
    res = efm.run(cfg, progress=False)
    for r in res["results"]:
        assert set(r["true_mask_swap"]) == set(FAMILIES) and all(np.isfinite(list(r["true_mask_swap"].values())))
    (block,) = res["validation"]
    assert block["scenes"] == 8 and [r["variant"] for r in block["rows"]] == ["head", "linear"]
    head, linear = block["rows"]
    assert "vs_first" not in head
    assert linear["vs_first"]["mean"] == pytest.approx(np.mean(linear["gains"]) - np.mean(head["gains"]), abs=1e-3)
    md = efm.markdown({**res, "config": {**cfg, "_path": "x.yaml"}})
    assert "only ONE family's mask replaced" in md and "## validation: other scenes" in md
    two = efm.run({**cfg, "family_swaps": False, "validation": [
        {"corpus": "builtin", "seed": 2, "recipes": {"mixed-2": 1}},
        {"corpus": "builtin", "seed": 3, "crop": 96, "recipes": {"mixed-2": 1}}]}, progress=False)["validation"]
    assert [(b["crop"], b["seed"]) for b in two] == [(64, 2), (96, 3)]
    more = efm.run({**cfg, "family_swaps": False, "variants": cfg["variants"][:1], "validation": None,
                    "more_crops": {96: ["mixed-2"]}}, progress=False)["results"]
    assert [(r["recipe"], r["crop"]) for r in more] == [("spatial-mixed", 64), ("mixed-2 @96 px", 96)]
    with pytest.raises(ValueError, match="tuned on"):
        efm.check_config({**cfg, "validation": {"corpus": "builtin", "seed": 1, "recipes": {"mixed-3": 1}}})
    with pytest.raises(ValueError, match="validation block needs"):
        efm.check_config({**cfg, "validation": {"seed": 2}})
