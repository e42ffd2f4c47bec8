"""Bad input to the training / fitting / evaluation scripts is refused with one ``error:`` line naming the problem
before any long work starts (and nothing is written): --quick --ship, config values checked only after long stages,
unknown config keys, wrong hints, silently ignored options; and their --help texts."""

from __future__ import annotations

import argparse
import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from experiments.configio import cli_main

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "experiments" / "configs"


def _no_work(*args: object, **kwargs: object) -> None:
    raise AssertionError("long work started before the input was checked")


def _block(monkeypatch: pytest.MonkeyPatch, module: Any, *names: str) -> None:
    for name in names:
        monkeypatch.setattr(module, name, _no_work)


def _config(tmp_path: Path, name: str, change: Callable[[dict], object] | None = None,
            outputs: tuple[str, ...] = ("output_dir",)) -> tuple[Path, Path]:
    """A copy of the committed config ``name`` with its outputs under ``tmp_path/out`` and ``change`` applied;
    returns (config path, out folder)."""
    cfg = yaml.safe_load((CONFIGS / name).read_text())
    out = tmp_path / "out"
    for key in outputs:
        cfg[key] = str(out / key)
    if change is not None:
        change(cfg)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, out


def _one_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__("parsed")
        self.parser = parser


def _parser_of(module: Any, monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    """The argument parser ``module.main`` builds (stopped when it parses: nothing runs)."""
    def grab(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise _Parsed(self)

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", grab)
        with pytest.raises(_Parsed) as got:
            module.main([])
    return got.value.parser


# ---------------------------------------------------------------------------------------------- 1. --quick --ship
@pytest.mark.parametrize(("script", "config"), [("train_encoder", "encoder_v8.yaml"), ("train_npsnr", "npsnr.yaml")])
def test_quick_smoke_models_are_never_shipped(script: str, config: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(f"experiments.{script}")
    _block(monkeypatch, module, "train", "ship_weights", *(["load_or_make"] if script == "train_npsnr" else []))
    path, out = _config(tmp_path, config)
    assert module.main(["--config", str(path), "--quick", "--ship"]) == 2
    _one_error(capsys, "--quick makes a smoke model: it is never shipped")
    assert not out.exists()


@pytest.mark.parametrize("script", ["train_encoder", "train_npsnr"])
def test_quick_help_says_it_writes_into_the_configs_output_dir(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = _parser_of(importlib.import_module(f"experiments.{script}"), monkeypatch)
    quick = next(a for a in parser._actions if "--quick" in a.option_strings).help
    assert "writes its weights into the config's output_dir" in quick and "--output-dir" in quick
    assert "not with --quick" in next(a for a in parser._actions if "--ship" in a.option_strings).help


# ---------------------------------------------------------------------------------------------- 2. values up front
@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.update(channels="sixty"), r"c.yaml: channels must be a whole number >= 8, got 'sixty'"),
    (lambda c: c["arch"].update(dilations=2), r"c.yaml: arch.dilations must be a non-empty list of whole numbers"),
    (lambda c: c["train"].update(lr="fast"), r"c.yaml: train.lr must be a number > 0, got 'fast'"),
    (lambda c: c["data"]["recipes"].update({"spatial-mixd": 1}),
     r"c.yaml: data.recipes: unknown recipe 'spatial-mixd'"),
    (lambda c: c["data"].update(crop=100), r"c.yaml: data.crop must be a multiple of 8, got 100"),
])
def test_train_encoder_checks_values_before_any_scene(change: Callable[[dict], object], message: str,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import train_encoder

    _block(monkeypatch, train_encoder, "train", "make_dataset", "recalibrate")
    path, out = _config(tmp_path, "encoder_v8.yaml", change)
    assert train_encoder.main(["--config", str(path)]) == 2
    assert re.search(message, _one_error(capsys))
    assert not out.exists()


def test_encoder_architecture_names_a_dilations_value_that_is_not_a_list() -> None:
    from experiments.train_encoder import architecture

    with pytest.raises(ValueError, match=r"arch.dilations must be a non-empty list .* got 2"):
        architecture({"arch": {"dilations": 2}})
    assert architecture({"arch": {"dilations": [1, 3]}})["dilations"] == (1, 3)


def test_train_npsnr_names_a_missing_init_from_first(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import train_npsnr

    _block(monkeypatch, train_npsnr, "train", "load_or_make", "make_groups")
    path, out = _config(tmp_path, "npsnr.yaml", lambda c: c.update(init_from=str(tmp_path / "nope")))
    assert train_npsnr.main(["--config", str(path)]) == 2
    err = _one_error(capsys, "c.yaml: init_from", "nope", "is not a folder")
    assert "--ship" not in err  # the old hint: train (and ship) the shipped encoder
    assert not out.exists()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "encoder.json").write_text("{}")
    path, out = _config(tmp_path, "npsnr.yaml", lambda c: c.update(init_from=str(tmp_path / "half")))
    assert train_npsnr.main(["--config", str(path)]) == 2
    _one_error(capsys, "init_from", "holds no encoder.pt")
    path, out = _config(tmp_path, "npsnr.yaml", lambda c: c["data"].update(p_walk=1.5))
    assert train_npsnr.main(["--config", str(path), "--data-only"]) == 2
    _one_error(capsys, "c.yaml: data.p_walk must be a number >= 0 and <= 1, got 1.5")
    assert not out.exists()


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.update(perception="linearr"), r"c.yaml: perception must be 'encoder' .* got 'linearr'"),
    (lambda c: c["tune"].update(recipe="spatial-mixd"),
     r"c.yaml: tune: recipe: unknown recipe 'spatial-mixd' \(did you mean 'spatial-mixed'\?\)"),
    (lambda c: c["tune"].update(region_proposer="nope"), r"c.yaml: tune: region_proposer: unknown region proposer"),
    (lambda c: c["report"].update(recipes="spatial-mixed"),
     r"c.yaml: report: recipes must be a non-empty list of recipe names, got 'spatial-mixed'"),
    (lambda c: c["report"].update(proposers=[["slic", "eight"]]), r"max regions of 'slic' must be a whole number"),
    (lambda c: c["tune"].update(grid=[0.5, 2]), r"c.yaml: tune: grid must be a non-empty list of probability"),
    (lambda c: c.update(encoder="/nonexistent/encoder"), r"encoder /nonexistent/encoder holds no encoder.json"),
])
def test_fit_rule_table_checks_values_before_stage_one(change: Callable[[dict], object], message: str,
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import fit_rule_table

    _block(monkeypatch, fit_rule_table, "run", "fit_entries")
    path, out = _config(tmp_path, "rule_table.yaml", change, outputs=("output_dir", "report_json", "report_md"))
    assert fit_rule_table.main(["--config", str(path)]) == 2
    assert re.search(message, _one_error(capsys))
    assert not out.exists()


def _gap_config(tmp_path: Path, **extra: Any) -> Path:
    cfg = {"recipe": "spatial-mixed", "size": 64, "seed": 0, "grid": 2, "random": 0, "max_cost": 50,
           "sets": {"test": {"images": "builtin", "scenes_per_image": 1, "reference": str(tmp_path / "ref")}},
           "reference_planners": ["dfs:oracle"], "output_dir": str(tmp_path / "out"), **extra}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_gap_decomposition_reads_its_references_before_the_oracle_pass(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import gap_decomposition as gd
    from experiments.run_baselines import scene_items

    _block(monkeypatch, gd, "run_set", "_job", "decompose_scene")
    path = _gap_config(tmp_path)
    assert gd.main(["--config", str(path)]) == 2
    _one_error(capsys, "set 'test': reference", "ref is not a folder")
    (tmp_path / "ref").mkdir()
    assert gd.main(["--config", str(path)]) == 2
    _one_error(capsys, "holds no spatial-mixed.json")
    names = [n for n, _ in scene_items("builtin", 1)]
    rows = [{"planner": "dfs:oracle", "image": n, "psnr_in": 20.0, "psnr_out": 25.0} for n in names]
    (tmp_path / "ref" / "spatial-mixed.json").write_text(json.dumps({"rows": rows}))
    assert gd.load_config(path)["reference_planners"] == ["dfs:oracle"]  # a complete reference passes
    path = _gap_config(tmp_path, reference_planners=["dfs:oracle", "ppo:gate=of"])
    assert gd.main(["--config", str(path)]) == 2
    _one_error(capsys, "reference_planners: 'ppo:gate=of' has no row", "planners there: dfs:oracle")
    (tmp_path / "ref" / "spatial-mixed.json").write_text(json.dumps({"rows": rows[1:]}))
    path = _gap_config(tmp_path)
    assert gd.main(["--config", str(path)]) == 2
    _one_error(capsys, "no 'dfs:oracle' row for 1 of its", names[0])
    assert not (tmp_path / "out").exists()


def test_train_distill_checks_seeds_and_splits_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import train_distill

    _block(monkeypatch, train_distill, "run")
    out = tmp_path / "out"
    for change, message in (({"test": {"seed": "abc"}}, "test.seed must be a whole number >= 0, got 'abc'"),
                            ({"validation": {"seed": 1.5}}, "validation.seed must be a whole number >= 0"),
                            ({"dagger": {"seed": -1}}, "dagger.seed must be a whole number >= 0"),
                            ({"test": {"split": "tset"}}, "test.split must be one of train, test, all")):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"output_dir": str(out), **change}))
        assert train_distill.main(["--config", str(path)]) == 2
        _one_error(capsys, message)
    path.write_text(yaml.safe_dump({"output_dir": str(out), "ship_dir": None}))
    assert train_distill.main(["--config", str(path), "--ship"]) == 2
    _one_error(capsys, "--ship needs a ship_dir")
    assert not out.exists()


def test_distill_ppo_curve_checks_init_log_std_before_the_scratch_run(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import distill_ppo_curve

    _block(monkeypatch, distill_ppo_curve, "curve", "check_student_fits")
    out = tmp_path / "out"
    for change, message in (({"init_log_std": "low"}, "init_log_std must be a number"),
                            ({"test": {"seed": "x"}}, "test.seed must be a whole number >= 0, got 'x'"),
                            ({"test": {"split": "val"}}, "test.split must be one of"),
                            ({"runs": "scratch"}, "runs must be a list of run names")):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"runs": ["scratch"], "out": str(out / "curve"), **change}))
        assert cli_main(distill_ppo_curve.main, ["--config", str(path)]) == 2
        _one_error(capsys, message)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- 3. fit_context_head
@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["head"].update(hidden="wide"), r"c.yaml: head.hidden must be a whole number >= 1, got 'wide'"),
    (lambda c: c.update(encodr=c.pop("encoder")), r"c.yaml: unknown config key 'encodr' \(did you mean 'encoder'\?\)"),
    (lambda c: c["train"].update(epoch=3), r"c.yaml: train: unknown config key 'epoch' \(did you mean 'epochs'\?\)"),
    (lambda c: c["head"].update(dropout=1.0), r"c.yaml: head.dropout must be a number >= 0"),
    (lambda c: c["data"].update(split="tran"), r"c.yaml: data.split must be one of train, test, all"),
    (lambda c: c.update(encoder="/nonexistent/enc"), r"c.yaml: encoder /nonexistent/enc is not a folder"),
])
def test_fit_context_head_checks_keys_and_values_before_any_scene(change: Callable[[dict], object], message: str,
                                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import fit_context_head

    _block(monkeypatch, fit_context_head, "fit", "load_encoder", "region_rows")
    path, out = _config(tmp_path, "context_head.yaml", change)
    assert fit_context_head.main(["--config", str(path)]) == 2
    assert re.search(message, _one_error(capsys))
    assert not out.exists()


@pytest.mark.parametrize("script", ["fit_context_head", "eval_perception_blend"])
def test_head_scripts_read_their_config_with_one_line_errors(script: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(f"experiments.{script}")
    _block(monkeypatch, module, "fit" if script == "fit_context_head" else "run")
    assert module.main(["--config", str(tmp_path / "none.yaml")]) == 2
    _one_error(capsys, "config file not found", "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1, 2\nhead: {}\n")
    assert module.main(["--config", str(bad)]) == 2
    _one_error(capsys, "bad.yaml is not valid YAML (line")


# ---------------------------------------------------------------------------------------------- 3./4. perception blend
@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["test"].update(crop=c["test"].pop("crops")),
     r"c.yaml: test: unknown config key 'crop' \(did you mean 'crops'\?\)"),
    (lambda c: c.update(weigths=c.pop("weights")),
     r"c.yaml: unknown config key 'weigths' \(did you mean 'weights'\?\)"),
    (lambda c: c.pop("out"), r"c.yaml must be a mapping with .* \(missing: out\)"),
    (lambda c: c.update(blend=1.5), r"c.yaml: blend must be a number in \[0, 1\], got 1.5"),
    (lambda c: c["test"].update(recipe="spatial"), r"c.yaml: test: unknown recipe 'spatial'"),
    (lambda c: c["validation"].update(seed="seven"), r"c.yaml: validation: seed must be a whole number >= 0"),
    (lambda c: c["calibration"].update(config="/nonexistent/head.yaml"),
     r"c.yaml: calibration.config: config file not found: /nonexistent/head.yaml"),
])
def test_eval_perception_blend_checks_its_config_before_any_scene(change: Callable[[dict], object], message: str,
                                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import eval_perception_blend

    _block(monkeypatch, eval_perception_blend, "run", "dataset_regions")
    path, out = _config(tmp_path, "perception_blend.yaml", change, outputs=("out",))
    assert eval_perception_blend.main(["--config", str(path)]) == 2
    assert re.search(message, _one_error(capsys))
    assert not out.exists()


def test_eval_perception_blend_points_at_fit_context_head_for_a_missing_head(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str],
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import eval_perception_blend

    _block(monkeypatch, eval_perception_blend, "run")
    head = tmp_path / "head"
    path, out = _config(tmp_path, "perception_blend.yaml", lambda c: c.update(context=str(head)), outputs=("out",))
    assert eval_perception_blend.main(["--config", str(path)]) == 2
    err = _one_error(capsys, f"context {head} is not a folder",
                     "python -m experiments.fit_context_head --config experiments/configs/context_head.yaml")
    assert "train_encoder" not in err
    head.mkdir()
    for name in ("encoder.json", "encoder.pt"):  # an encoder without its context head
        (head / name).write_text("{}")
    assert eval_perception_blend.main(["--config", str(path)]) == 2
    _one_error(capsys, "holds no context_head.json or context_head.pt", "fit_context_head")
    assert not out.exists()
    cfg = yaml.safe_load(path.read_text())
    cfg["context"] = "ir_env/encoder/weights"  # the shipped folder holds all four files
    assert eval_perception_blend.check_config(cfg, "c.yaml") is cfg


def test_eval_perception_blend_refuses_ship_dir_without_ship(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import eval_perception_blend

    _block(monkeypatch, eval_perception_blend, "run", "ship")
    path, out = _config(tmp_path, "perception_blend.yaml", lambda c: c.update(context="ir_env/encoder/weights"),
                        outputs=("out",))
    assert eval_perception_blend.main(["--config", str(path), "--ship-dir", str(tmp_path / "cand")]) == 2
    _one_error(capsys, "--ship-dir only says where --ship writes: add --ship")
    assert not out.exists() and not (tmp_path / "cand").exists()


# ---------------------------------------------------------------------------------------------- 5. --help
HELP_SCRIPTS = ["train_encoder", "train_npsnr", "fit_rule_table", "gap_decomposition", "train_distill",
                "distill_ppo_curve", "fit_context_head", "eval_perception_blend", "bench_env"]


@pytest.mark.parametrize("script", HELP_SCRIPTS)
def test_every_option_has_help_and_shows_its_default(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(f"experiments.{script}")
    parser = _parser_of(module, monkeypatch)
    first = module.__doc__.split("\n\n")[0]
    assert parser.description == first and len(first.splitlines()) >= 1
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[-1]
        assert action.help, f"{script} {name} has no help"
        if action.default not in (None, False) or name == "--config":
            assert "default" in action.help, f"{script} {name} does not show its default"


@pytest.mark.parametrize(("script", "words"), [
    ("bench_env", "the share of a step spent outside the tool function, and AsyncVectorEnv scaling with 2 workers."),
    ("gap_decomposition", "the rule table's parameters against per-step oracle choices, on the scenes of a "
                          "comparison."),
])
def test_help_descriptions_are_not_cut_after_one_line(script: str, words: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(f"experiments.{script}")
    with pytest.raises(SystemExit):
        module.main(["--help"])
    assert words in " ".join(capsys.readouterr().out.split())
