"""The ``perceive`` planner and its rule table: lookup, JSON round trip, errors, restoration behaviour."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ir_env.recipes import synthesize
from policies import make_planner
from policies.rules import DEFAULT_RULE_TABLE, RESTORE_ORDER, RuleTable
from restorers import get_tool, list_tools
from restorers.spec import FAMILIES


def _table(bins: int = 2) -> RuleTable:
    """Every family's cheapest tool at its default parameters (bin 0) and at mid-range (other bins)."""
    entries = {}
    for f in FAMILIES:
        tool = min(list_tools(f), key=lambda t: t.cost)
        rows = [{"tool": tool.name, "params": tool.defaults(), "gain_db": 0.0, "n": 1}]
        rows += [{"tool": tool.name, "params": tool.to_physical(np.zeros(len(tool.params))), "gain_db": 0.0,
                  "n": 1} for _ in range(bins - 1)]
        entries[f] = rows
    return RuleTable(entries=entries, bins=bins, thresholds={f: 0.5 for f in FAMILIES})


def test_lookup_bins_and_nan() -> None:
    t = _table(bins=2)
    tool = min(list_tools("noise"), key=lambda x: x.cost)
    assert t.bin_of(0.0) == 0 and t.bin_of(0.49) == 0 and t.bin_of(0.5) == 1 and t.bin_of(1.0) == 1
    assert t.bin_of(-3.0) == 0 and t.bin_of(7.0) == 1  # clipped to [0, 1]
    name, params = t.lookup("noise", 0.1)
    assert name == tool.name and params == tool.defaults()
    with pytest.raises(ValueError, match="NaN"):
        t.lookup("noise", float("nan"))
    with pytest.raises(ValueError, match="unknown family"):
        t.lookup("snow", 0.5)


def test_round_trip(tmp_path) -> None:  # noqa: ANN001
    t = _table(bins=3)
    t.meta = {"encoder_fingerprint": "abc"}
    back = RuleTable.load(t.save(tmp_path / "t.json"))
    assert back.entries == json.loads(json.dumps(t.entries)) and back.bins == 3
    assert back.thresholds == t.thresholds and back.meta["encoder_fingerprint"] == "abc"
    # the fingerprint covers what decides actions, not the fit's metadata
    assert back.fingerprint() == t.fingerprint() == _table(bins=3).fingerprint()
    back.thresholds = {**back.thresholds, "haze": 0.9}
    assert back.fingerprint() != t.fingerprint()


def test_bad_tables_name_the_problem(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(FileNotFoundError, match="fit_rule_table"):
        RuleTable.load(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        RuleTable.load(tmp_path / "junk.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a rule table"):
        RuleTable.load(tmp_path / "other.json")
    good = _table().entries
    with pytest.raises(ValueError, match="unknown tool"):
        RuleTable(entries={**good, "noise": [{"tool": "magic", "params": {}}] * 2}, bins=2)
    blur_tool = list_tools("blur")[0]
    with pytest.raises(ValueError, match="restores 'blur', not 'noise'"):
        RuleTable(entries={**good, "noise": [{"tool": blur_tool.name, "params": blur_tool.defaults()}] * 2},
                  bins=2)
    noise_tool = get_tool(good["noise"][0]["tool"])
    pname = noise_tool.params[0].name
    with pytest.raises(ValueError, match=pname):
        RuleTable(entries={**good, "noise": [{"tool": noise_tool.name, "params": {pname: 1e9}}] * 2}, bins=2)
    with pytest.raises(ValueError, match="no entries"):
        RuleTable(entries={f: good[f] for f in FAMILIES[1:]}, bins=2)
    with pytest.raises(ValueError, match="threshold"):
        RuleTable(entries=good, bins=2, thresholds={"noise": 1.5})


def test_planner_never_judges_and_replays(tmp_path, photo96: np.ndarray) -> None:  # noqa: ANN001
    path = _table().save(tmp_path / "t.json")
    scene = synthesize(photo96, recipe="spatial-mixed", seed=3)
    p = make_planner("perceive", table=str(path), thresholds=0.0, max_steps=5)  # every family, every region
    res = p.restore(scene.degraded, masks=scene.masks)
    assert res.iqa_calls == 0 and res.tool_calls == len(res.trace) == 5  # capped by max_steps
    assert np.array_equal(res.replay(scene.degraded), res.image)
    # reverse physical order: all regions' JPEG steps first, then noise, ...
    fams = [get_tool(st.tool).family for st in res.trace]
    assert fams == sorted(fams, key=RESTORE_ORDER.index)
    again = p.restore(scene.degraded, masks=scene.masks)
    assert np.array_equal(again.image, res.image)
    nothing = make_planner("perceive", table=str(path), thresholds=1.0).restore(scene.degraded, masks=scene.masks)
    assert len(nothing.trace) == 0 and np.array_equal(nothing.image, scene.degraded)


def test_planner_options_are_checked(tmp_path) -> None:  # noqa: ANN001
    path = _table().save(tmp_path / "t.json")
    with pytest.raises(ValueError, match="thresholds"):
        make_planner("perceive", table=str(path), thresholds=2.0)
    with pytest.raises(ValueError, match="thresholds"):
        make_planner("perceive", table=str(path), thresholds="best")
    with pytest.warns(UserWarning, match="another encoder"):  # no fingerprint: tuned for other perception
        p = make_planner("perceive", table=str(path))
    # the encoder's probabilities are calibrated: its own F1 threshold is 0.5 (not encoder.json's raw ones)
    assert p.thresholds == dict.fromkeys(FAMILIES, 0.5)
    assert make_planner("perceive", table=str(path), thresholds="encoder").thresholds == dict.fromkeys(FAMILIES, 0.5)


@pytest.mark.skipif(not DEFAULT_RULE_TABLE.exists(), reason="no shipped rule table")
def test_shipped_table_restores_noise(photo: np.ndarray) -> None:
    """On pure noise (sigma 25) the shipped planner sees noise, denoises every region and gains >= 3 dB."""
    scene = synthesize(photo, recipe="noise-25", seed=1)
    res = make_planner("perceive", max_steps=12).restore(scene.degraded)

    def psnr(a: np.ndarray) -> float:
        return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - scene.clean) ** 2)))

    assert res.iqa_calls == 0 and len(res.trace) >= 1
    assert {get_tool(st.tool).family for st in res.trace} == {"noise"}
    assert psnr(res.image) - psnr(scene.degraded) >= 3.0


def test_demo_shows_perceive(tmp_path) -> None:  # noqa: ANN001
    """The quickstart's demo compares the rule planner too (a 64 px photo, two cheap planners here)."""
    from ir_env.demo import DEMO_PLANNERS, run_demo

    assert "perceive" in DEMO_PLANNERS
    res = run_demo(tmp_path, size=64, max_images=1, planners=["fixed", "perceive"])
    assert set(res["planners"]) == {"fixed", "perceive"} and res["planners"]["perceive"]["iqa_calls"] == 0
    for f in ("demo.png", "quality_vs_cost.png", "results.json", "results.md"):
        assert (tmp_path / f).stat().st_size > 0


def test_families_seen_uses_each_familys_threshold() -> None:
    from policies.rules import families_seen

    prob = np.array([[0.5, 0.2, 0.9, 0.0, 0.0, 0.6], [0.1] * 6])
    sev = np.tile(np.linspace(0.1, 0.6, 6), (2, 1))
    thr = {f: 0.5 for f in FAMILIES} | {"dark": 0.7}
    seen = families_seen({"family_prob": prob, "severity": sev}, thr)
    assert seen == [{"noise": pytest.approx(0.1), "jpeg": pytest.approx(0.3)}, {}]


def test_fit_script_rejects_an_incomplete_config(tmp_path, capsys) -> None:  # noqa: ANN001
    import yaml

    from experiments import fit_rule_table

    cfg = yaml.safe_load(open("experiments/configs/rule_table.yaml"))
    assert fit_rule_table.check_config(cfg) is cfg
    del cfg["tune"]["grid"], cfg["output_dir"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert fit_rule_table.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "tune.grid" in err and "output_dir" in err
    assert fit_rule_table.candidates("noise", 3, 0, 50, 0)  # the grid of a family's cheap tools


def test_fit_script_never_ships_a_table_fitted_for_other_weights(capsys) -> None:  # noqa: ANN001
    from experiments import fit_rule_table

    cfg = "experiments/configs/rule_table_context_head.yaml"
    assert fit_rule_table.main(["--config", cfg, "--ship"]) == 2  # refused before any work
    assert "drop --ship" in capsys.readouterr().err


def test_fit_script_reuses_a_tables_entries(tmp_path, capsys) -> None:  # noqa: ANN001
    import yaml

    from experiments import fit_rule_table

    shipped = RuleTable.load(DEFAULT_RULE_TABLE)
    assert fit_rule_table.reused_entries(DEFAULT_RULE_TABLE, shipped.bins) == shipped.entries
    with pytest.raises(ValueError, match="severity bins"):
        fit_rule_table.reused_entries(DEFAULT_RULE_TABLE, shipped.bins + 1)
    cfg = yaml.safe_load(open("experiments/configs/rule_table_segment_head.yaml"))
    assert fit_rule_table.check_config(cfg) is cfg
    cfg["fit"]["entries_from"] = str(tmp_path / "missing.json")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert fit_rule_table.main(["--config", str(path)]) == 2  # refused before any work
    err = capsys.readouterr().err
    assert err.startswith("error:") and "missing.json" in err and len(err.splitlines()) == 1


#: Every committed config of experiments/fit_rule_table.py (their ``# Run:`` lines).
RULE_TABLE_CONFIGS = sorted(c.name for c in
                            (Path(__file__).parent.parent / "experiments/configs").glob("rule_table*.yaml"))


@pytest.mark.parametrize("name", RULE_TABLE_CONFIGS)
def test_committed_rule_table_configs_pass_the_key_check(name: str) -> None:
    from experiments import fit_rule_table
    from experiments.configio import read_config

    assert len(RULE_TABLE_CONFIGS) >= 16
    path = f"experiments/configs/{name}"
    cfg = read_config(path)
    assert fit_rule_table.check_config(cfg, path) is cfg


@pytest.mark.parametrize(("config", "change", "message"), [
    ("rule_table.yaml", lambda c: c.update(perceptoin=c.pop("perception")),
     r"c.yaml: unknown config key 'perceptoin' \(did you mean 'perception'\?\)"),
    ("rule_table_blend.yaml", lambda c: c["fit"].update(entries_frm=c["fit"].pop("entries_from")),
     r"c.yaml: fit: unknown config key 'entries_frm' \(did you mean 'entries_from'\?\)"),
    ("rule_table.yaml", lambda c: c["report"].update(headline_scene=c["report"].pop("headline_scenes")),
     r"c.yaml: report: unknown config key 'headline_scene' \(did you mean 'headline_scenes'\?\)"),
    ("rule_table.yaml", lambda c: c["tune"]["family_masks"].update(min_aera=0.1),
     r"c.yaml: tune.family_masks: unknown config key 'min_aera' \(did you mean 'min_area'\?\)"),
    ("rule_table.yaml", lambda c: c["tune"]["family_masks"].pop("passes"),
     r"c.yaml: tune.family_masks: missing config key\(s\) passes"),
    ("rule_table.yaml", lambda c: c["tune"].update(family_masks=True), r"c.yaml: tune.family_masks must be a mapping"),
    ("rule_table_refit.yaml", lambda c: c["refit"].update(min_sampels=c["refit"].pop("min_samples")),
     r"c.yaml: refit: unknown config key 'min_sampels' \(did you mean 'min_samples'\?\)"),
])
def test_fit_script_refuses_unknown_config_keys_before_work(config: str, change: Callable[[dict], object], message: str,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from experiments import fit_rule_table

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the config was checked")

    monkeypatch.setattr(fit_rule_table, "run", no_work)
    cfg = yaml.safe_load((Path("experiments/configs") / config).read_text())
    out = tmp_path / "out"
    cfg.update(output_dir=str(out / "run"), report_json=str(out / "r.json"), report_md=str(out / "r.md"))
    change(cfg)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match=message):
        fit_rule_table.check_config(cfg, str(path))
    assert fit_rule_table.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not out.exists()  # nothing fitted or written


class _FakeEncoder:
    """Dense and pooled perception fixed by hand: noise everywhere on the left half, nothing else."""

    device = "cpu"

    def __init__(self) -> None:
        self.calls, self.pooled = 0, 0

    def predict(self, image: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        self.pooled += len(masks)
        prob = np.zeros((len(masks), len(FAMILIES)))
        left = masks[:, :, : image.shape[1] // 2].mean(axis=(1, 2))
        prob[:, FAMILIES.index("noise")] = left  # probability = share of the mask on the left half
        return {"family_prob": prob, "severity": np.full((len(masks), len(FAMILIES)), 0.3)}


def test_family_masks_act_once_per_family_inside_its_mask() -> None:
    from policies.rules import apply_family_masks

    t = _table()
    img = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    prob = np.zeros((32, 32, len(FAMILIES)), np.float32)
    prob[:, :16, FAMILIES.index("noise")] = 0.9  # noise on the left half
    prob[:2, :2, FAMILIES.index("haze")] = 0.9  # a haze speck: below min_area
    prob[:, 16:, FAMILIES.index("blur")] = 0.9  # blur cells on the right, but its pooled probability is 0
    thr = dict.fromkeys(FAMILIES, 0.5)
    enc = _FakeEncoder()
    out, steps = apply_family_masks(t, enc, img, thr, thr, min_area=0.05, prob=prob)
    assert [s[0] for s in steps] == ["noise"] and enc.pooled == 2  # haze never pooled: too small
    assert enc.calls == 1  # the encoder runs once for every mask
    fam, mask, tool, params = steps[0]
    assert mask[:, :16].all() and not mask[:, 16:].any()
    assert (tool, params) == t.lookup("noise", 0.3)
    np.testing.assert_array_equal(out[:, 24:], img[:, 24:])  # away from the mask (feathered seam): untouched
    assert not np.array_equal(out[:, :16], img[:, :16])
    _, none = apply_family_masks(t, enc, img, thr, thr, min_area=0.05, prob=prob, max_steps=0)
    assert none == []


@pytest.mark.filterwarnings("ignore:the rule table's thresholds were tuned")  # tables without a fit
def test_family_masks_settings_round_trip_and_errors(tmp_path) -> None:  # noqa: ANN001
    t = _table()
    fp = t.fingerprint()
    t.family_masks = {"thresholds": dict.fromkeys(FAMILIES, 0.5), "cell_thresholds": dict.fromkeys(FAMILIES, 0.4),
                      "min_area": 0.05}
    back = RuleTable.load(t.save(tmp_path / "t.json"))
    assert back.family_masks == t.family_masks
    assert back.fingerprint() == fp  # the proposer planner's actions do not depend on them
    assert back.fingerprint(family_masks=True) != fp
    with pytest.raises(ValueError, match="cell_thresholds"):
        RuleTable(t.entries, t.bins, t.thresholds, family_masks={**t.family_masks, "cell_thresholds": {"noise": 2}})
    with pytest.raises(ValueError, match="no family_masks"):
        make_planner("perceive", table=str(tmp_path / "t0.json" if _table().save(tmp_path / "t0.json") else ""),
                     regions="families")
    with pytest.raises(ValueError, match="regions must be"):
        make_planner("perceive", regions="superpixels")
    with pytest.raises(ValueError, match="mode='spatial'"):
        make_planner("perceive", table=str(tmp_path / "t.json"), regions="families", mode="global")
    with pytest.warns(UserWarning, match="family-mask thresholds are used as they are"):  # no fingerprint in t.json
        make_planner("perceive", table=str(tmp_path / "t.json"), regions="families")


@pytest.mark.skipif(not DEFAULT_RULE_TABLE.exists() or not RuleTable.load().family_masks,
                    reason="the shipped rule table has no family_masks settings")
def test_shipped_family_mask_planner_restores_noise(photo: np.ndarray) -> None:
    """``perceive:regions=families`` denoises noise-25 by >= 3 dB on average over 3 scenes, with at most one step
    per family (one scene of the three also brightens a small dark patch of the photo, as the planner may)."""
    from experiments.fit_rule_table import psnr

    planner = make_planner("perceive", regions="families")
    gains = []
    for seed in (1, 2, 3):
        scene = synthesize(photo, recipe="noise-25", seed=seed)
        res = planner.restore(scene.degraded)
        assert res.iqa_calls == 0 and 1 <= res.tool_calls <= len(FAMILIES)
        assert res.masks.shape[0] == res.tool_calls and res.masks.dtype == bool
        assert "noise" in res.info["families"]
        gains.append(psnr(res.image, scene.clean) - psnr(scene.degraded, scene.clean))
    assert np.mean(gains) >= 3.0, gains
    again = planner.restore(scene.degraded)
    np.testing.assert_array_equal(res.image, again.image)  # deterministic


def test_threshold_comparison_script_runs_on_a_tiny_set(tmp_path, capsys) -> None:  # noqa: ANN001
    from experiments import eval_perceive_thresholds as ept

    out = tmp_path / "t.json"
    assert ept.main(["--images", "holdout", "--recipes", "mixed-2", "--scenes-per-photo", "1", "--crop", "64",
                     "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    (row,) = res["rows"]
    assert row["scenes"] == 4 and len(row["tuned_gains"]) == 4
    assert row["tuned"] == pytest.approx(np.mean(row["tuned_gains"]), abs=1e-3)
    assert out.with_suffix(".md").read_text().count("| holdout | mixed-2 |") == 1
    assert "weights" not in res  # the shipped encoder: the committed report's keys
    assert ept.main(["--scenes-per-photo", "0"]) == 2 and capsys.readouterr().err.startswith("error:")
    assert ept.main(["--clean-crops", "-1"]) == 2 and "--clean-crops" in capsys.readouterr().err
    from ir_env.encoder.learned import DEFAULT_WEIGHTS

    other = tmp_path / "w.json"  # --weights: the same scenes perceived by the encoder in that directory
    assert ept.main(["--images", "holdout", "--recipes", "mixed-2", "--scenes-per-photo", "1", "--crop", "64",
                     "--weights", str(DEFAULT_WEIGHTS), "--clean-crops", "2", "--json", str(other)]) == 0
    res2 = json.loads(other.read_text())
    c = res2["clean_crops"]["holdout"]
    assert c["crops"] == 2 and 0.0 <= c["untouched"] <= 1.0 and "Undegraded holdout test crops (2" in \
        other.with_suffix(".md").read_text()
    assert res2["weights"] == str(DEFAULT_WEIGHTS) and res2["rows"][0]["tuned_gains"] == row["tuned_gains"]
    assert other.with_suffix(".md").read_text().startswith("`python -m") and "Encoder: the weights in" in \
        other.with_suffix(".md").read_text()
    assert ept.main(["--images", "holdout", "--weights", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error:")
    two = tmp_path / "p.json"  # --proposer / --max-regions: the planner's regions
    assert ept.main(["--images", "holdout", "--recipes", "mixed-2", "--scenes-per-photo", "1", "--crop", "64",
                     "--proposer", "grid", "--max-regions", "2", "--json", str(two)]) == 0
    res3 = json.loads(two.read_text())
    assert (res3["proposer"], res3["max_regions"]) == ("grid", 2)
    assert "Regions: `grid`, at most 2" in two.with_suffix(".md").read_text()
    assert ept.main(["--proposer", "nope"]) == 2 and "unknown region proposer" in capsys.readouterr().err
    # --perception: the planner's (the table's: the linear heads) by default; the encoder's own predict on request
    runs = {}
    for perception in ("linear", "encoder"):
        f = tmp_path / f"{perception}.json"
        assert ept.main(["--images", "holdout", "--recipes", "mixed-2", "--scenes-per-photo", "1", "--crop", "64",
                         "--perception", perception, "--json", str(f)]) == 0
        runs[perception] = json.loads(f.read_text())
        assert runs[perception]["perception"] == perception
        assert f"Perception: `{perception}`" in f.with_suffix(".md").read_text()
    assert runs["linear"]["rows"][0]["tuned_gains"] == row["tuned_gains"]  # the table was tuned on the linear heads
    assert runs["encoder"]["rows"][0]["tuned_gains"] != row["tuned_gains"]  # the blend sees other families
    with pytest.raises(SystemExit) as exc:
        ept.main(["--perception", "nope"])
    assert exc.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_restore_in_masks_checks_only_where_asked(photo: np.ndarray) -> None:
    from ir_env.encoder.learned import LearnedEmbedder
    from policies.rules import restore_in_masks

    table, emb = RuleTable.load(), LearnedEmbedder()
    img = synthesize(photo, recipe="noise-25", seed=1).degraded
    half = np.zeros(img.shape[:2], bool)
    half[:, : img.shape[1] // 2] = True
    never = dict.fromkeys(FAMILIES, 1.01)  # no pooled probability reaches it
    out, steps = restore_in_masks(table, emb, img, [("noise", half, True)], never)
    assert steps == [] and out is img
    out, steps = restore_in_masks(table, emb, img, [("noise", half, False), ("haze", ~half, False)], never,
                                  max_steps=1)
    assert [s[0] for s in steps] == ["noise"] and steps[0][2] in {e["tool"] for e in table.entries["noise"]}
    np.testing.assert_array_equal(out[:, img.shape[1] // 2 + 16:], img[:, img.shape[1] // 2 + 16:])  # outside
    assert not np.array_equal(out[:, : img.shape[1] // 2], img[:, : img.shape[1] // 2])
    assert restore_in_masks(table, emb, img, [], never) == (img, [])


def test_clean_crops_score_a_capped_penalty() -> None:
    from experiments.fit_rule_table import CleanCrop, clean_crop_set, scene_gain

    rng = np.random.default_rng(0)
    clean = rng.random((32, 32, 3), dtype=np.float32)
    crop = CleanCrop(clean, 40.0)
    assert crop.degraded is crop.clean and crop.masks.shape == (1, 32, 32) and crop.masks.all() and crop.labels == [[]]
    assert scene_gain(clean.copy(), crop) == 0.0  # left alone
    assert scene_gain(np.clip(clean + 1e-4, 0, 1), crop) == 0.0  # changed beyond visibility (> 40 dB)
    damaged = np.clip(clean + 0.1, 0, 1)
    assert scene_gain(damaged, crop) < -15.0  # about 20 dB PSNR: 20 dB below the cap
    crops = clean_crop_set([clean, clean[::-1]], 3, 16, 0, 35.0)
    assert len(crops) == 3 and crops[0].clean.shape == (16, 16, 3) and crops[0].cap_db == 35.0
    again = clean_crop_set([clean, clean[::-1]], 3, 16, 0, 35.0)
    assert all(np.array_equal(a.clean, b.clean) for a, b in zip(crops, again, strict=True))


def test_fit_script_keeps_a_tables_thresholds(tmp_path, capsys) -> None:  # noqa: ANN001
    import yaml

    from experiments import fit_rule_table

    shipped = RuleTable.load(DEFAULT_RULE_TABLE)
    kept = fit_rule_table.kept_settings(DEFAULT_RULE_TABLE)
    assert kept["thresholds"] == {f: float(shipped.thresholds[f]) for f in FAMILIES}
    assert kept["family_masks"] == shipped.family_masks
    bare = RuleTable(entries=shipped.entries, bins=shipped.bins)  # entries only: nothing to keep
    bare.save(tmp_path / "bare.json")
    with pytest.raises(ValueError, match="no tuned thresholds"):
        fit_rule_table.kept_settings(tmp_path / "bare.json")
    part = RuleTable(entries=shipped.entries, bins=shipped.bins, thresholds={"noise": 0.5})
    part.save(tmp_path / "part.json")
    with pytest.raises(ValueError, match="no threshold for blur"):
        fit_rule_table.kept_settings(tmp_path / "part.json")
    cfg = yaml.safe_load(open("experiments/configs/rule_table_blend_kept.yaml"))
    cfg["tune"]["thresholds_from"] = str(tmp_path / "bare.json")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert fit_rule_table.main(["--config", str(path)]) == 2  # refused before any work
    err = capsys.readouterr().err
    assert err.startswith("error:") and "bare.json" in err and "no tuned thresholds" in err


def test_perceive_default_regions_and_overrides() -> None:
    from policies import make_planner
    from policies.rules import DEFAULT_PROPOSER

    p = make_planner("perceive")
    assert (p.region_proposer, p.max_regions) == DEFAULT_PROPOSER == ("degradation-clusters-learned", 8)
    assert make_planner("perceive", max_regions=3).max_regions == 3  # the default proposer, fewer regions
    q = make_planner("perceive", region_proposer="degradation-clusters")
    assert (q.region_proposer, q.max_regions) == ("degradation-clusters", 4)  # the base planners' default count
    assert make_planner("perceive", mode="global").region_proposer == "whole"
    assert make_planner("perceive", regions="families").region_proposer == "whole"
    assert make_planner("greedy").region_proposer == "degradation-clusters"  # other planners keep theirs


def test_perceive_regions_come_from_its_own_encoder(tmp_path, photo96: np.ndarray) -> None:  # noqa: ANN001
    import shutil

    import torch

    from ir_env.encoder.learned import DEFAULT_WEIGHTS, file_sha256
    from policies import make_planner

    other = tmp_path / "w"  # the shipped encoder with its family heads' biases shifted: other dense predictions
    other.mkdir()
    for name in ("encoder.pt", "encoder.json"):  # not the context head: it was fitted on the shipped weights
        shutil.copy2(DEFAULT_WEIGHTS / name, other / name)
    state = torch.load(other / "encoder.pt", map_location="cpu", weights_only=True)
    keys = [k for k in state if "head" in k and k.endswith("bias")]
    assert keys
    for k in keys:
        state[k] = state[k] + 3.0
    torch.save(state, other / "encoder.pt")
    info = json.loads((other / "encoder.json").read_text())
    info["sha256"] = file_sha256(other / "encoder.pt")  # a consistent weights directory, as shipping writes one
    (other / "encoder.json").write_text(json.dumps(info))
    with pytest.warns(UserWarning, match="another encoder"):  # the shipped table was tuned for the shipped one
        p = make_planner("perceive", weights=str(other))
    shipped = make_planner("perceive")
    img = photo96.astype(np.float32)
    assert not np.allclose(p.proposer.features(img), shipped.proposer.features(img))  # its regions: its encoder
    assert np.allclose(make_planner("perceive", weights=str(DEFAULT_WEIGHTS)).proposer.features(img),
                       shipped.proposer.features(img))
    with pytest.warns(UserWarning, match="another encoder"):
        q = make_planner("perceive", region_proposer="degradation-clusters", weights=str(other))
    assert q.proposer.name == "degradation-clusters"  # a proposer that reads no encoder is left as given


def test_perceive_tiles_larger_images_by_default(photo: np.ndarray) -> None:
    from policies.rules import DEPLOY_TILE, PerceivePlanner
    from policies.tiled import TiledPlanner

    default = make_planner("perceive")
    assert isinstance(default, TiledPlanner) and default.tile == DEPLOY_TILE == 128
    for opts in ({"tile": 0}, {"mode": "global"}, {"regions": "families"}):  # off, and the modes it does not apply to
        assert isinstance(make_planner("perceive", **opts), PerceivePlanner)
    assert PerceivePlanner().deploy_tile == 128  # the class itself never tiles; make_planner reads this
    big = np.ascontiguousarray(np.tile(photo, (2, 2, 1))[:256, :256])
    scene = synthesize(big, recipe="noise-25", seed=0)
    tiled_res = default.restore(scene.degraded)
    plain = make_planner("perceive", tile=0).restore(scene.degraded)
    assert len(tiled_res.info["tiles"]) > 1 and "tiles" not in plain.info
    assert np.array_equal(tiled_res.replay(scene.degraded), tiled_res.image)
