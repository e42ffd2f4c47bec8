"""experiments.refit_entries: rule-table entries re-fitted on the planner's own perceived steps."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from experiments import fit_rule_table
from experiments.fit_rule_table import candidates, psnr
from experiments.refit_entries import check_refit, refit_entries
from ir_env.degradations import degrade
from policies.rules import DEFAULT_RULE_TABLE, RuleTable
from restorers import apply
from restorers.spec import FAMILIES

FIT = {"grid": 5, "random": 40, "max_cost": 50}  # the shipped grid: its entries are candidates


def _scene(photo: np.ndarray, seed: int) -> tuple[SimpleNamespace, np.ndarray]:
    """Noise (severity 0.9) in the left half only; two regions: left, right."""
    rng = np.random.default_rng(seed)
    noisy, _ = degrade(photo, "noise", 0.9, rng)
    masks = np.zeros((2, *photo.shape[:2]), bool)
    masks[0, :, : photo.shape[1] // 2] = True
    masks[1] = ~masks[0]
    degraded = np.where(masks[0][..., None], noisy, photo).astype(np.float32)
    return SimpleNamespace(degraded=degraded, clean=photo), masks


def test_refit_picks_the_best_candidate_on_the_perceived_steps(photo96: np.ndarray) -> None:
    table = RuleTable.load(DEFAULT_RULE_TABLE)
    scenes = []
    for seed in (0, 1):
        sc, masks = _scene(photo96, seed)
        scenes.append((sc, masks, [{"noise": 0.9}, {}]))  # perception: noise on the left, bin 4
    entries, rows = refit_entries(table, scenes, FIT, seed=0, min_samples=2, progress=False)
    cands = candidates("noise", 5, 40, 50, 0)
    by_hand = np.zeros(len(cands))
    for sc, masks, _ in scenes:
        p0 = psnr(sc.degraded, sc.clean)
        by_hand += [psnr(apply(sc.degraded, n, p, mask=masks[0]), sc.clean) - p0 for n, p in cands]
    best = int(np.argmax(by_hand))
    assert entries["noise"][4]["tool"] == cands[best][0]
    assert entries["noise"][4]["params"] == pytest.approx(cands[best][1], abs=1e-6)
    assert entries["noise"][4]["gain_db"] == pytest.approx(by_hand[best] / 2, abs=1e-3)
    row = next(r for r in rows if r["family"] == "noise" and r["bin"] == 4)
    assert row["samples"] == 2 and row["gain_db"] >= row["stage1_gain_db"] - 1e-4  # stage 1: a candidate
    assert row["gain_db"] > 1.0  # denoising the noisy half helps
    # every bin without (enough) samples keeps the stage-1 entry, and the input table is not modified
    for f in FAMILIES:
        for b in range(table.bins):
            if (f, b) != ("noise", 4):
                assert entries[f][b] == table.entries[f][b]
    assert RuleTable(entries=entries, bins=table.bins).lookup("noise", 0.9)[0] == cands[best][0]
    assert table.entries == RuleTable.load(DEFAULT_RULE_TABLE).entries
    _, rows = refit_entries(table, scenes[:1], FIT, seed=0, min_samples=2, progress=False)  # 1 sample < 2: kept
    assert next(r for r in rows if r["family"] == "noise" and r["bin"] == 4)["tool"] is None


def test_refit_block_errors(tmp_path, capsys) -> None:  # noqa: ANN001
    good = {"recipes": ["spatial-mixed"], "scenes_per_photo": 1, "crop": 64, "seed": 0, "min_samples": 1,
            "region_proposer": "grid", "max_regions": 4}
    assert check_refit(good) is good
    with pytest.raises(ValueError, match="refit misses seed"):
        check_refit({k: v for k, v in good.items() if k != "seed"})
    with pytest.raises(ValueError, match="refit.min_samples must be >= 1"):
        check_refit({**good, "min_samples": 0})
    with pytest.raises(ValueError, match="refit.recipes"):
        check_refit({**good, "recipes": []})
    cfg = yaml.safe_load(open("experiments/configs/rule_table_refit.yaml"))
    del cfg["tune"]["thresholds_from"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert fit_rule_table.main(["--config", str(path)]) == 2  # refused before any work
    assert "set tune.thresholds_from" in capsys.readouterr().err


def test_perceived_scenes_flag_what_the_perception_reports() -> None:
    from experiments.refit_entries import perceived_scenes

    class Fixed:  # perception stub: noise at probability 0.9 (severity 0.5) in every region, nothing else
        def predict(self, image: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
            prob, sev = np.zeros((len(masks), len(FAMILIES))), np.full((len(masks), len(FAMILIES)), 0.5)
            prob[:, FAMILIES.index("noise")] = 0.9
            return {"family_prob": prob, "severity": sev}

    block = {"recipes": ["spatial-mixed", "global-mild"], "scenes_per_photo": 1, "crop": 64, "seed": 3,
             "min_samples": 1, "region_proposer": "grid", "max_regions": 4}
    thresholds = dict.fromkeys(FAMILIES, 0.5)
    scenes = perceived_scenes(block, Fixed(), thresholds)
    assert len(scenes) == 2 * 8  # one scene per train photo and recipe
    for sc, masks, seen in scenes:
        assert sc.degraded.shape == (64, 64, 3) and masks.shape[1:] == (64, 64)
        assert seen == [{"noise": 0.5}] * len(masks)
    again = perceived_scenes(block, Fixed(), thresholds)  # same seed, same scenes
    assert all(np.array_equal(a[0].degraded, b[0].degraded) for a, b in zip(scenes, again, strict=True))
    assert perceived_scenes(block, Fixed(), {**thresholds, "noise": 0.95})[0][2] == [{}] * len(scenes[0][1])


def test_region_proposer_clusters_with_the_configured_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, dict]] = []
    monkeypatch.setattr(fit_rule_table, "make_proposer",
                        lambda name, max_regions, seed, **kw: seen.append((name, kw)) or SimpleNamespace())
    fit_rule_table.region_proposer("degradation-clusters-learned", 8, "runs/other_encoder")
    fit_rule_table.region_proposer("degradation-clusters-learned", 8)  # shipped encoder: nothing passed
    fit_rule_table.region_proposer("degradation-clusters", 4, "runs/other_encoder")  # no encoder in it
    assert seen == [("degradation-clusters-learned", {"weights": "runs/other_encoder"}),
                    ("degradation-clusters-learned", {}), ("degradation-clusters", {})]
