"""experiments/compare.py on a tiny config: one 64 px image, two scripted planners, one learned variant
trained for one seed with a minimal imitation budget; baseline rows reused; a second run retrains nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from experiments import compare
from ir_env.corpus import center_crop
from ir_env.imageio import write_image
from policies.evaluation import evaluate

RECIPE = "spatial-mixed"
SENTINEL = 42.125  # a gain no planner measures: proves a row was read from the baselines file


def _config(tmp: Path, baselines: Path) -> dict[str, Any]:
    return {
        "images": str(tmp / "photos"), "scenes_per_image": 1, "size": 64, "seed": 0, "recipes": [RECIPE],
        "no_reference_judge": "brisque", "baselines_dir": str(baselines), "planners": ["fixed", "random:global"],
        "learned": {"seeds": [0], "runs_dir": str(tmp / "runs"),
                    "variants": {"tiny": {"planner": "ppo", "ppo_config": "experiments/configs/ppo_spatial.yaml",
                                          "label": "tiny PPO"}},
                    "train": {"record": {"episodes": 2, "seed": 1000}, "bc": {"epochs": 1, "eval_every_epochs": 1},
                              "dagger": {"rounds": 0}, "finetune": {"timesteps": 0},
                              "validation": {"episodes": 1}, "test": {"episodes": 1}}},
        "targets": {"recipes": [RECIPE], "ppo_groups": ["tiny"], "greedy_nr": "random:global",
                    "dfs_oracle": "fixed"},
        "output_dir": str(tmp / "out"),
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, photo: np.ndarray) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("compare")
    (tmp / "photos").mkdir()
    write_image(tmp / "photos" / "astronaut.png", photo)
    # a baselines file made on the same scenes, with a marked value for `fixed`
    base = evaluate([("astronaut.png", photo)], RECIPE, ["fixed"], seed=0, size=64, progress=False)
    base["planners"]["fixed"]["psnr_gain"] = SENTINEL
    (tmp / "baselines").mkdir()
    (tmp / "baselines" / f"{RECIPE}.json").write_text(json.dumps(base))
    cfg_path = tmp / "compare.yaml"
    cfg_path.write_text(yaml.safe_dump(_config(tmp, tmp / "baselines")))
    assert compare.main(["--config", str(cfg_path), "--no-progress"]) == 0
    return {"tmp": tmp, "cfg": cfg_path, "photo": photo}


def test_outputs_and_keys(tiny: dict[str, Any]) -> None:
    out = tiny["tmp"] / "out"
    report = json.loads((out / "compare.json").read_text())
    assert {"command", "images", "recipes", "config", "training"} <= set(report)
    rec = report["recipes"][RECIPE]
    assert {"table", "groups", "targets", "reused"} <= set(rec)
    assert [r["label"] for r in rec["table"]] == ["fixed", "random:global", "tiny PPO"]
    res = json.loads((out / f"{RECIPE}.json").read_text())
    assert {"recipe", "seed", "size", "images", "planners", "rows"} <= set(res)  # the evaluate JSON
    assert res["size"] == 64 and res["images"] == 1 and len(res["rows"]) == 3
    g = rec["groups"]["tiny"]
    assert g["seeds"] == 1 and g["psnr_gain_std"] == 0.0 and len(g["per_seed_gain"]) == 1
    assert g["iqa_calls"] == 0  # a learned policy decides without IQA calls
    assert all(t["met"] in (True, False) and t["measured"] for t in rec["targets"])
    assert len(rec["targets"]) == 3
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "compare.md").read_text()
    assert "| fixed* |" in md and "tiny PPO" in md and "1 seeds" in md
    assert "tiny_s0" in report["training"]


def test_baseline_rows_reused_only_when_settings_match(tiny: dict[str, Any]) -> None:
    res = json.loads((tiny["tmp"] / "out" / f"{RECIPE}.json").read_text())
    assert res["reused"] == {"fixed": str(tiny["tmp"] / "baselines" / f"{RECIPE}.json")}
    assert res["planners"]["fixed"]["psnr_gain"] == SENTINEL
    cfg = compare.load_compare_config(tiny["cfg"])
    items = [("astronaut.png", tiny["photo"])]
    assert compare.reusable_baselines(cfg, RECIPE, items) is not None
    assert compare.reusable_baselines({**cfg, "size": 96}, RECIPE, items) is None
    assert compare.reusable_baselines({**cfg, "seed": 1}, RECIPE, items) is None
    assert compare.reusable_baselines(cfg, RECIPE, [("other.png", tiny["photo"])]) is None
    # same name, another photo: the scene's input PSNR differs, so the rows are not the same scenes
    assert compare.reusable_baselines(cfg, RECIPE, [("astronaut.png", tiny["photo"][::-1].copy())]) is None
    assert compare.reusable_baselines(cfg, "mixed-3", items) is None


def test_resumed_run_does_not_retrain(tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import train_bc

    model = tiny["tmp"] / "runs" / "tiny_s0" / "model.zip"
    before = (model.stat().st_mtime_ns, model.read_bytes())

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a trained seed was trained again")

    monkeypatch.setattr(train_bc, "run", no_training)
    monkeypatch.setattr(compare, "evaluate", no_training)  # every evaluation comes from the cache now
    assert compare.main(["--config", str(tiny["cfg"]), "--no-progress"]) == 0
    assert (model.stat().st_mtime_ns, model.read_bytes()) == before
    res = json.loads((tiny["tmp"] / "out" / f"{RECIPE}.json").read_text())
    assert len(res["rows"]) == 3


def test_learned_row_matches_the_planner(tiny: dict[str, Any]) -> None:
    """The cached learned row is what the trained model does on the same scene."""
    model = tiny["tmp"] / "runs" / "tiny_s0" / "model.zip"
    spec = f"ppo:path={model}:gate=off"  # seed rows: the policy as trained
    fresh = evaluate([("astronaut.png", center_crop(tiny["photo"], 64))], RECIPE, [spec], seed=0, size=64,
                     progress=False)
    res = json.loads((tiny["tmp"] / "out" / f"{RECIPE}.json").read_text())
    assert res["planners"][spec]["psnr_out"] == pytest.approx(fresh["planners"][spec]["psnr_out"], abs=1e-9)
    assert res["planners"][spec]["tool_calls"] == fresh["planners"][spec]["tool_calls"]


def test_bad_config_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({"images": "builtin", "size": 64, "seed": 0, "recipes": [RECIPE],
                                 "planners": ["fixed"], "output_dir": str(tmp_path),
                                 "learned": {"variants": {"x": {"planner": "ppo"}}}}))
    assert compare.main(["--config", str(p)]) == 2
    assert "needs ppo_config" in capsys.readouterr().err
    assert compare.main(["--config", str(tmp_path / "missing.yaml")]) == 2


def test_search_survives_a_candidate_the_judge_cannot_score(photo: np.ndarray,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison's no-reference rows: BRISQUE is undefined on a constant image, which some candidate
    steps produce; such a candidate is never kept instead of aborting the evaluation."""
    from policies.registry import make_planner

    planner = make_planner("greedy", mode="global", judge="brisque", tools=["tv_denoise"], max_steps=2)
    real = planner.judge.score
    calls = {"n": 0}

    def score(image: np.ndarray, reference: np.ndarray | None = None) -> float:
        calls["n"] += 1
        if calls["n"] > 1:  # every candidate after the input's own score
            raise ValueError("brisque is undefined on a constant image (no local contrast)")
        return real(image, reference)

    monkeypatch.setattr(planner.judge, "score", score)
    img = center_crop(photo, 64)
    res = planner.restore(img)
    assert res.trace == [] and np.array_equal(res.image, img) and res.tool_calls > 0


def test_encoder_fingerprint_only_for_learned_observations() -> None:
    from ir_env.encoder.learned import DEFAULT_WEIGHTS, file_sha256, observation_fingerprint

    assert observation_fingerprint({"embedding": "handcrafted"}) is None
    sha = file_sha256(DEFAULT_WEIGHTS / "encoder.pt")
    assert observation_fingerprint({"embedding": "learned"}) == sha
    assert observation_fingerprint({"region_proposer": "degradation-clusters-learned"}) == sha


def test_rows_perceiving_through_the_encoder_rerun_when_its_weights_change(
        tiny: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scripted spec naming ``learned`` is never taken from the baselines file and its cached row is
    keyed by the shipped encoder weights: new weights, new evaluation."""
    cfg = compare.load_compare_config(tiny["cfg"])
    cfg["learned"]["runs_dir"] = str(tmp_path / "runs")
    items = [("astronaut.png", tiny["photo"])]
    spec = "fixed:embedding=learned"  # a name only: the fake evaluate below never builds the planner
    calls: list[str] = []

    def fake_evaluate(items_: Any, recipe: str, specs: list[str], **kwargs: Any) -> dict[str, Any]:
        calls.append(specs[0])
        return {"planners": {specs[0]: {"psnr_gain": float(len(calls))}},
                "rows": [{"image": "astronaut.png", "planner": specs[0]}]}

    monkeypatch.setattr(compare, "evaluate", fake_evaluate)
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "encoder.pt").write_bytes(b"first weights")
    monkeypatch.setattr(compare, "DEFAULT_WEIGHTS", weights)
    first = compare.evaluate_recipe(cfg, RECIPE, items, ["fixed", spec], progress=False)
    assert calls == [spec] and first["planners"]["fixed"]["psnr_gain"] == SENTINEL  # fixed: from baselines
    again = compare.evaluate_recipe(cfg, RECIPE, items, [spec], progress=False)
    assert calls == [spec] and again["planners"][spec]["psnr_gain"] == 1.0  # same weights: cached
    (weights / "encoder.pt").write_bytes(b"retrained weights")
    changed = compare.evaluate_recipe(cfg, RECIPE, items, [spec], progress=False)
    assert calls == [spec, spec] and changed["planners"][spec]["psnr_gain"] == 2.0
    (weights / "context_head.pt").write_bytes(b"a context head")  # perception changes, observations do not
    compare.evaluate_recipe(cfg, RECIPE, items, [spec], progress=False)
    assert calls == [spec] * 3
    # perceive: keyed by the encoder's perception and by the rule table's content
    tables = iter(["table-a", "table-a", "table-b"])
    monkeypatch.setattr(compare, "_rule_table_fingerprint", lambda family_masks=False: next(tables))
    for _ in range(3):
        compare.evaluate_recipe(cfg, RECIPE, items, ["perceive"], progress=False)
    assert calls == [spec] * 3 + ["perceive", "perceive"]  # new table: evaluated again


def test_gated_rows_rerun_when_the_gate_table_changes(tiny: dict[str, Any], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A gated spec (the learned planners' default) is keyed by the gate, the encoder and the rule table's
    thresholds; an ungated one by none of them."""
    cfg = compare.load_compare_config(tiny["cfg"])
    cfg["learned"]["runs_dir"] = str(tmp_path / "runs")
    items = [("astronaut.png", tiny["photo"])]
    calls: list[str] = []

    def fake_evaluate(items_: Any, recipe: str, specs: list[str], **kwargs: Any) -> dict[str, Any]:
        calls.append(specs[0])
        return {"planners": {specs[0]: {"psnr_gain": 0.0}}, "rows": [{"image": "astronaut.png", "planner": specs[0]}]}

    monkeypatch.setattr(compare, "evaluate", fake_evaluate)
    tables = iter(["table-a", "table-a", "table-b"])
    monkeypatch.setattr(compare, "_rule_table_fingerprint", lambda family_masks=False: next(tables))
    for _ in range(3):
        compare.evaluate_recipe(cfg, RECIPE, items, ["fixed:gate=table"], progress=False)
    assert calls == ["fixed:gate=table"] * 2  # the table's thresholds changed once
    for _ in range(2):
        compare.evaluate_recipe(cfg, RECIPE, items, ["fixed:global:gate=off"], progress=False)
    assert calls.count("fixed:global:gate=off") == 1  # no gate: no table lookup (the iterator is spent)


def test_variant_train_overrides_merge_one_level_and_key_the_expert(tmp_path: Path) -> None:
    cfg = yaml.safe_load(Path("experiments/configs/compare.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    loaded = compare.load_compare_config(path)
    tr = compare.variant_train_config(loaded, "ppo_spatial_perceive")
    shared = loaded["learned"]["train"]
    own = loaded["learned"]["variants"]["ppo_spatial_perceive"]["train"]
    assert tr["record"] == {**shared["record"], **own["record"]} and own["record"]["expert"] == "perceive"
    assert tr["record"]["seed"] == shared["record"]["seed"]  # a key the variant does not set is kept
    assert tr["finetune"] == shared["finetune"] and compare.variant_train_config(loaded, "ppo_spatial") == shared
    # the perceive expert's data and seed models are keyed by the rule table; greedy's keys are unchanged
    assert compare.expert_fingerprint({"expert": "greedy"}) == compare.expert_fingerprint({}) == ""
    assert compare.expert_fingerprint({"expert": "perceive"}).startswith("+rules")
    cfg["learned"]["variants"]["ppo_spatial"]["tools"] = 3
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="unknown keys"):
        compare.load_compare_config(path)


def test_runs_of_variant_evaluates_the_source_models_without_training(tiny: dict[str, Any],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import train_bc

    cfg = yaml.safe_load(tiny["cfg"].read_text())
    cfg["learned"]["variants"]["tiny_gated"] = {"runs_of": "tiny", "gate": "table", "label": "tiny PPO, gated"}
    cfg["output_dir"] = str(tiny["tmp"] / "out_gated")
    path = tiny["tmp"] / "compare_gated.yaml"
    path.write_text(yaml.safe_dump(cfg))

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a runs_of variant must not train")

    monkeypatch.setattr(train_bc, "run", no_training)
    assert compare.main(["--config", str(path), "--no-progress"]) == 0
    model = tiny["tmp"] / "runs" / "tiny_s0" / "model.zip"
    report = json.loads((tiny["tmp"] / "out_gated" / "compare.json").read_text())
    groups = report["recipes"][RECIPE]["groups"]
    assert groups["tiny_gated"]["specs"] == [f"ppo:path={model}:gate=table"]
    assert groups["tiny"]["specs"] == [f"ppo:path={model}:gate=off"]
    assert list(report["training"]) == ["tiny_s0"]  # one run, listed once
    loaded = compare.load_compare_config(path)
    assert loaded["learned"]["variants"]["tiny_gated"]["ppo_config"] == "experiments/configs/ppo_spatial.yaml"
    assert compare.run_dir(loaded, "tiny_gated", 0) == compare.run_dir(loaded, "tiny", 0)
    for bad, msg in (({"runs_of": "nope"}, "runs_of must name"), ({"runs_of": "tiny_gated"}, "runs_of must name"),
                     ({"runs_of": "tiny", "train": {"bc": {"epochs": 2}}}, "trains nothing")):
        cfg["learned"]["variants"]["other"] = bad
        path.write_text(yaml.safe_dump(cfg))
        with pytest.raises(ValueError, match=msg):
            compare.load_compare_config(path)


def test_replot_redraws_from_the_json_only(tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    png = tiny["tmp"] / "out" / "compare.png"
    png.unlink()
    monkeypatch.setattr(compare, "evaluate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("evaluated")))
    monkeypatch.setattr(compare, "train_seed", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    assert compare.main(["--config", str(tiny["cfg"]), "--replot"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    cfg = yaml.safe_load(tiny["cfg"].read_text())
    cfg["output_dir"] = str(tmp_path / "empty")
    other = tmp_path / "c.yaml"
    other.write_text(yaml.safe_dump(cfg))
    assert compare.main(["--config", str(other), "--replot"]) == 2


def test_refresh_re_makes_only_the_named_rows(tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    import shutil

    cfg = yaml.safe_load(tiny["cfg"].read_text())
    cfg["output_dir"] = str(tmp_path / "out")
    cfg["learned"]["runs_dir"] = str(tmp_path / "runs")  # no seed model here: refresh needs none
    shutil.copytree(tiny["tmp"] / "out", tmp_path / "out")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    before = json.loads((tmp_path / "out" / "compare.json").read_text())
    real = compare.evaluate

    def marked(*a: Any, **k: Any) -> dict[str, Any]:
        res = real(*a, **k)
        for p in res["planners"].values():
            p["psnr_gain"] = -SENTINEL
        return res

    monkeypatch.setattr(compare, "evaluate", marked)
    monkeypatch.setattr(compare, "train_seed", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    assert compare.main(["--config", str(path), "--refresh", "random:global", "--no-progress"]) == 0
    after = json.loads((tmp_path / "out" / "compare.json").read_text())
    gain = {r["label"]: r["psnr_gain"] for r in after["recipes"][RECIPE]["table"]}
    old = {r["label"]: r["psnr_gain"] for r in before["recipes"][RECIPE]["table"]}
    assert gain["random:global"] == -SENTINEL  # re-evaluated
    assert gain["fixed"] == SENTINEL and gain["tiny PPO"] == old["tiny PPO"]  # kept
    assert after["training"] == before["training"] and after["refreshed"] == [
        {"planners": ["random:global"], "command": after["refreshed"][0]["command"]}]
    res = json.loads((tmp_path / "out" / f"{RECIPE}.json").read_text())
    assert [r["planner"] for r in res["rows"]].count("random:global") == 1 and len(res["rows"]) == 3
    assert "were re-made later by" in (tmp_path / "out" / "compare.md").read_text()
    assert compare.main(["--config", str(path), "--refresh", "dfs"]) == 2
    # `all`: every fixed planner; a row taken again from baselines_dir keeps its * mark and value
    assert compare.main(["--config", str(path), "--refresh", "all", "--no-progress"]) == 0
    after = json.loads((tmp_path / "out" / "compare.json").read_text())
    rows = {r["label"]: r for r in after["recipes"][RECIPE]["table"]}
    assert rows["fixed"]["reused"] and rows["fixed"]["psnr_gain"] == SENTINEL
    assert rows["random:global"]["psnr_gain"] == -SENTINEL and rows["tiny PPO"]["psnr_gain"] == old["tiny PPO"]
    assert after["recipes"][RECIPE]["reused"] == {"fixed": str(tiny["tmp"] / "baselines" / f"{RECIPE}.json")}
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "| fixed* |" in md and "Every scripted and shipped-planner row was re-made later by" in md
    cfg["output_dir"] = str(tmp_path / "empty")
    path.write_text(yaml.safe_dump(cfg))
    assert compare.main(["--config", str(path), "--refresh", "fixed"]) == 2


def test_refresh_variants_re_makes_only_the_retrained_seed_groups(tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    import shutil

    cfg = yaml.safe_load(tiny["cfg"].read_text())
    cfg["output_dir"] = str(tmp_path / "out")
    shutil.copytree(tiny["tmp"] / "out", tmp_path / "out")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    before = json.loads((tmp_path / "out" / "compare.json").read_text())
    real = compare.evaluate

    def marked(*a: Any, **k: Any) -> dict[str, Any]:
        res = real(*a, **k)
        for p in res["planners"].values():
            p["psnr_gain"] = -SENTINEL
        return res

    monkeypatch.setattr(compare, "evaluate", marked)
    monkeypatch.setattr(compare, "_cache_path", lambda c, r, s: tmp_path / "cache" / f"{abs(hash((r, s)))}.json")
    assert compare.main(["--config", str(path), "--refresh-variants", "tiny", "--no-progress"]) == 0
    after = json.loads((tmp_path / "out" / "compare.json").read_text())
    gain = {r["label"]: r["psnr_gain"] for r in after["recipes"][RECIPE]["table"]}
    old = {r["label"]: r["psnr_gain"] for r in before["recipes"][RECIPE]["table"]}
    assert gain["tiny PPO"] == -SENTINEL  # the seed group re-evaluated
    assert gain["fixed"] == SENTINEL and gain["random:global"] == old["random:global"]  # kept
    assert after["recipes"][RECIPE]["groups"]["tiny"]["per_seed_gain"] == [-SENTINEL]
    assert after["training"] == before["training"] and after["refreshed"][-1]["kind"] == "variants"
    res = json.loads((tmp_path / "out" / f"{RECIPE}.json").read_text())
    assert len(res["rows"]) == 3  # the seed's row replaced, not added
    assert "The seed-averaged rows of tiny PPO (`tiny`) were re-made later from their seed models by" in (
        tmp_path / "out" / "compare.md").read_text()
    assert compare.main(["--config", str(path), "--refresh-variants", "nosuch"]) == 2
    cfg["learned"]["runs_dir"] = str(tmp_path / "no_runs")  # seed models missing: refused before any evaluation
    path.write_text(yaml.safe_dump(cfg))
    assert compare.main(["--config", str(path), "--refresh-variants", "tiny"]) == 2


def test_refreshes_accumulate_and_name_each_rows_last_command() -> None:
    from experiments.compare import add_refresh, refreshes

    old = {"refreshed": {"planners": ["perceive", "ppo"], "command": "c1"}}  # a report written before stop 24
    assert refreshes(old) == [{"planners": ["perceive", "ppo"], "command": "c1"}] and refreshes({}) == []
    once = {"refreshed": add_refresh(old, ["dfs"], "c2")}
    assert refreshes(once) == [{"planners": ["perceive", "ppo"], "command": "c1"},
                               {"planners": ["dfs"], "command": "c2"}]
    twice = add_refresh(once, ["ppo", "dfs"], "c3")  # re-made again: older entries give them up
    assert twice == [{"planners": ["perceive"], "command": "c1"}, {"planners": ["ppo", "dfs"], "command": "c3"}]
    third = add_refresh({"refreshed": twice}, ["ppo"], "c4", kind="variants")  # a variant named like a spec
    assert third[:2] == twice and third[2] == {"planners": ["ppo"], "command": "c4", "kind": "variants"}


def test_planner_styles_tell_every_label_apart_and_keep_their_order() -> None:
    labels = [f"planner {i}" for i in range(25)]
    styles = compare.planner_styles(labels)
    assert list(styles) == labels
    pairs = {(s["color"], s["marker"]) for s in styles.values()}
    assert len(pairs) == len(labels)  # no two planners drawn alike
    assert styles["planner 0"] != styles["planner 1"]


@pytest.mark.parametrize("edit, msg", [
    (lambda c: c["learned"].update(seeds=0), "learned.seeds must be a non-empty list"),
    (lambda c: c["learned"].update(seeds=[0, 0]), "learned.seeds must be a non-empty list"),
    (lambda c: c["learned"]["train"]["bc"].update(epoch=3), r"variant 'tiny'.*unknown key\(s\) \['epoch'\]"),
    (lambda c: c["learned"]["train"]["finetune"].update(timesteps="many"), "finetune.timesteps must be a whole"),
    (lambda c: c["learned"]["variants"]["tiny"].update(train={"bc": {"lr": -1.0}}), "bc.lr must be a number > 0"),
    (lambda c: c["learned"]["variants"]["tiny"].update(ppo_config="nope.yaml"), "ppo_config nope.yaml not found"),
    (lambda c: c["targets"].update(ppo_groups=["tiyn"]), r"targets.ppo_groups names 'tiyn'.*learned.variants"),
    (lambda c: c["targets"].update(dfs_oracle="dfs:oracel"), r"targets.dfs_oracle names 'dfs:oracel'.*planners"),
    (lambda c: c["targets"].update(recipes=["mixed-3"]), r"targets.recipes names 'mixed-3'"),
    (lambda c: c.update(planners=[]), "planners must be a non-empty list"),
    (lambda c: c.update(skip={RECIPE: ["fixedd"]}), r"skip.spatial-mixed names 'fixedd', not in planners"),
    (lambda c: c["learned"].update(variants=["tiny"]), "learned.variants must map a variant name"),
    (lambda c: c["learned"]["variants"].update(tiny="ppo"), "learned.variants must map a variant name"),
])
def test_config_mistakes_are_named_when_the_config_is_read(tmp_path: Path, edit: Any, msg: str) -> None:
    """Mistakes that used to surface only when training started (seeds: 0 was a TypeError traceback, a
    misspelled train key failed after the other variants had trained), as tracebacks (a list or string of variants:
    AttributeError) or never (a misspelled target name silently dropped its target from the report; planners: []
    wrote an empty comparison over the committed one; a misspelled skip entry ran the planner it meant to skip)."""
    cfg = _config(tmp_path, tmp_path / "baselines")
    edit(cfg)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match=msg):
        compare.load_compare_config(path)


def test_exclusive_modes_and_seeds_outside_the_config_are_refused(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compare, "train_seed", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, tmp_path / "baselines")))
    assert compare.main(["--config", str(path), "--train-only", "--skip-training"]) == 2
    assert "--train-only and --skip-training exclude each other" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--seeds 7 not in learned.seeds \(0\)"):
        compare.main(["--config", str(path), "--train-only", "--seeds", "7"])
    assert not (tmp_path / "out").exists()
