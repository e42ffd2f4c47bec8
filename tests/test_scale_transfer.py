"""experiments/scale_transfer.py: a tiny run writes the report with every section; bad configs are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from experiments import scale_transfer

PLAIN = "random:max_steps=1:max_regions=2"  # cheap planners: the test is about the script's plumbing
TILED = PLAIN + ":tile=96"


def test_tiny_run_writes_every_section(tmp_path: Path) -> None:
    cfg = {"recipe": "noise-25", "images": "builtin", "scenes_per_image": 1, "sizes": [64, 96], "seed": 0,
           "planners": [PLAIN, TILED], "train_photos": {"size": 64, "scenes_per_image": 1},
           "clean_crops": {"crops": 2, "size": 64}, "real_pairs": True, "output_dir": str(tmp_path / "out")}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert scale_transfer.main(["--config", str(path)]) == 0
    res = json.loads((tmp_path / "out" / "scale_transfer.json").read_text())
    assert set(res["sizes"]) == {"64", "96"} and res["scenes"] == 4
    for size in ("64", "96"):
        assert res["sizes"][size]["size"] == int(size)
        assert set(res["sizes"][size]["planners"]) == {PLAIN, TILED}
    assert res["train_photos"]["images"] == 8
    pairs = res["real_pairs"]
    assert len(pairs["pairs"]) == 5 and len(pairs["planners"][PLAIN]["gains"]) == 5
    clean = res["clean_crops"]["planners"][PLAIN]
    assert clean["untouched"] == 0.0 and clean["mean_steps"] == 1 and clean["worst_psnr"] < 100  # random acts
    md = (tmp_path / "out" / "scale_transfer.md").read_text()
    for heading in ("# Scale transfer", "## The TRAIN photos", "## Real distortions", "## Undegraded photos"):
        assert heading in md
    assert f"| {TILED} |" in md


def test_missing_keys_are_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("recipe: spatial-mixed\n")
    assert scale_transfer.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "missing config key(s)" in err[0]


def test_paired_gaps_on_another_photo_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = "random:max_steps=1:max_regions=2:seed=5"
    cfg = {"recipe": "noise-25", "images": "holdout", "scenes_per_image": 1, "sizes": [64], "seed": 0,
           "planners": [PLAIN, other], "paired": [[PLAIN, other], [PLAIN, PLAIN]], "output_dir": str(tmp_path / "o")}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert scale_transfer.main(["--config", str(path)]) == 0
    res = json.loads((tmp_path / "o" / "scale_transfer.json").read_text())
    rows = res["sizes"]["64"]["rows"]
    gain = {(r["planner"], r["image"]): r["psnr_out"] - r["psnr_in"] for r in rows}
    diffs = [gain[(PLAIN, r["image"])] - gain[(other, r["image"])] for r in rows if r["planner"] == PLAIN]
    first, same = res["paired"]
    assert first["sizes"]["64"]["n"] == 4 and first["sizes"]["64"]["mean"] == pytest.approx(sum(diffs) / 4)
    assert same["sizes"]["64"]["mean"] == 0.0 and same["sizes"]["64"]["ties"] == 4
    md = (tmp_path / "o" / "scale_transfer.md").read_text()
    assert "`holdout` photos (4)" in md and "## Paired gaps" in md and "headline" not in md
    # with the train photos run after the sizes, the pairs still read the sized scenes
    both = {**cfg, "images": "builtin", "train_photos": {"size": 64, "scenes_per_image": 1}}
    path.write_text(yaml.safe_dump(both))
    assert scale_transfer.main(["--config", str(path)]) == 0
    res = json.loads((tmp_path / "o" / "scale_transfer.json").read_text())
    assert res["paired"][0]["sizes"]["64"]["n"] == 4 and res["train_photos"]["images"] == 8
    path.write_text(yaml.safe_dump({**cfg, "train_photos": {"size": 64, "scenes_per_image": 1}}))
    assert scale_transfer.main(["--config", str(path)]) == 2  # holdout has no train split: refused up front
    assert "no 'train' split" in capsys.readouterr().err
    cfg["paired"] = [[PLAIN, "not-a-planner"]]
    path.write_text(yaml.safe_dump(cfg))
    assert scale_transfer.main(["--config", str(path)]) == 2
    assert "paired entries" in capsys.readouterr().err
