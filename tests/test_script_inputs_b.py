"""Bad script input is refused with one clear ``error:`` line naming the problem before any long work starts
(experiments/*.py: output paths, unknown / malformed config keys, bad options, library modules run as scripts,
--help texts)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from experiments.configio import cli_main

ROOT = Path(__file__).resolve().parents[1]


def _never(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("the long work started although the input was bad")


def _config(name: str, tmp_path: Path, change: Any = None) -> Path:
    """A copy of ``experiments/configs/<name>`` in ``tmp_path``, changed by ``change(cfg)``."""
    cfg = yaml.safe_load((ROOT / "experiments" / "configs" / name).read_text())
    if change is not None:
        change(cfg)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _one_error(capsys: pytest.CaptureFixture[str], *parts: str) -> str:
    """The captured stderr, which must be one ``error:`` line holding every one of ``parts``."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    for part in parts:
        assert part in err, (part, err)
    return err


def _unreadable_configs_refused(main: Any, broken_yaml: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """A script's ``main`` names a config that is not valid YAML (``broken_yaml``) and one that does not exist, each in
    one ``error:`` line with exit status 2."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(broken_yaml)
    assert cli_main(main, ["--config", str(bad)]) == 2
    _one_error(capsys, str(bad), "is not valid YAML")
    assert cli_main(main, ["--config", str(tmp_path / "none.yaml")]) == 2
    _one_error(capsys, "config file not found", "none.yaml")


# ---------------------------------------------------------------------------------------------- 1: output paths


def test_output_paths_are_checked_before_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import eval_perceive_thresholds as ept
    from experiments import eval_regions as er
    from experiments import select_encoder as se
    from experiments import tune_judge_threshold as tjt

    monkeypatch.setattr(ept, "run", _never)
    monkeypatch.setattr(se, "select", _never)
    monkeypatch.setattr(se, "load_encoder", _never)
    monkeypatch.setattr(tjt, "tune", _never)
    monkeypatch.setattr(er, "build_scenes", _never)
    folder = str(tmp_path)
    assert cli_main(ept.main, ["--json", folder]) == 2
    _one_error(capsys, "--json", folder, "is a directory")
    (tmp_path / "t.md").mkdir()  # the .md table written beside the JSON
    assert cli_main(ept.main, ["--json", str(tmp_path / "t.json")]) == 2
    _one_error(capsys, "t.md", "is a directory")
    assert cli_main(se.main, ["--candidates", "ir_env/encoder/weights", "--json", folder]) == 2
    _one_error(capsys, "--json", "is a directory")
    assert cli_main(tjt.main, ["--json", folder]) == 2
    _one_error(capsys, "--json", "is a directory")
    assert cli_main(er.main, ["--proposers", "whole", "--markdown", folder]) == 2
    _one_error(capsys, "--markdown", "is a directory")
    assert not (tmp_path / "t.json").exists()


# ---------------------------------------------------------------------------------------- 2: unknown config keys


def test_fit_segment_head_refuses_unknown_keys_invalid_yaml_and_a_missing_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import fit_segment_head as fsh

    monkeypatch.setattr(fsh, "fit", _never)

    def balance(cfg: dict) -> None:
        cfg["train"]["balance"] = cfg["train"].pop("balanced")

    path = _config("segment_head.yaml", tmp_path, balance)
    assert cli_main(fsh.main, ["--config", str(path)]) == 2
    _one_error(capsys, str(path), "train: unknown config key 'balance'", "did you mean 'balanced'?")
    path = _config("segment_head.yaml", tmp_path, lambda c: c["data"].update(more_crop={192: [1, 1]}))
    assert cli_main(fsh.main, ["--config", str(path)]) == 2
    _one_error(capsys, "data: unknown config key 'more_crop'", "did you mean 'more_crops'?")
    path = _config("segment_head.yaml", tmp_path, lambda c: c.update(target="benefit"))
    assert cli_main(fsh.main, ["--config", str(path)]) == 2
    _one_error(capsys, "unknown config key 'target'", "did you mean 'targets'?")
    path = _config("segment_head.yaml", tmp_path, lambda c: c["train"].update(balanced="no"))
    assert cli_main(fsh.main, ["--config", str(path)]) == 2
    _one_error(capsys, "train.balanced must be true or false")
    _unreadable_configs_refused(fsh.main, "seed: 0\ndata: [1, 2\n", tmp_path, capsys)
    (tmp_path / "afile").write_text("x")  # output_dir must be able to be a folder
    path = _config("segment_head.yaml", tmp_path)
    assert cli_main(fsh.main, ["--config", str(path), "--output-dir", str(tmp_path / "afile")]) == 2
    _one_error(capsys, "output_dir", "is a file")
    # the committed configs of this script hold only keys it reads
    for name in sorted(p.name for p in (ROOT / "experiments" / "configs").glob("segment_head*.yaml")):
        fsh.check_config(yaml.safe_load((ROOT / "experiments" / "configs" / name).read_text()), name)


def test_eval_family_masks_refuses_unknown_keys_invalid_yaml_and_a_missing_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import eval_family_masks as efm

    monkeypatch.setattr(efm, "run", _never)

    def shipped_only(cfg: dict) -> None:  # variants whose weights exist in every checkout
        cfg["variants"] = [{"name": "shipped"}, {"name": "linear", "segment": False}]
        cfg["out"] = str(tmp_path / "r" / "family_masks")

    def swap(cfg: dict) -> None:
        shipped_only(cfg)
        cfg["family_swap"] = cfg.pop("family_swaps")

    path = _config("eval_family_masks.yaml", tmp_path, swap)
    assert cli_main(efm.main, ["--config", str(path)]) == 2
    _one_error(capsys, str(path), "unknown config key 'family_swap'", "did you mean 'family_swaps'?")

    def weigths(cfg: dict) -> None:
        shipped_only(cfg)
        cfg["variants"].append({"name": "segment head", "weigths": "ir_env/encoder/weights"})

    path = _config("eval_family_masks.yaml", tmp_path, weigths)
    assert cli_main(efm.main, ["--config", str(path)]) == 2
    _one_error(capsys, "variant 'segment head': unknown config key 'weigths'", "did you mean 'weights'?")

    def val_typo(cfg: dict) -> None:
        shipped_only(cfg)
        cfg["validation"][1]["crops"] = cfg["validation"][1].pop("crop")

    path = _config("eval_family_masks.yaml", tmp_path, val_typo)
    assert cli_main(efm.main, ["--config", str(path)]) == 2
    _one_error(capsys, "validation: unknown config key 'crops'", "did you mean 'crop'?")
    path = _config("eval_family_masks.yaml", tmp_path, lambda c: (shipped_only(c), c.update(recipes="mixed-3")))
    assert cli_main(efm.main, ["--config", str(path)]) == 2
    _one_error(capsys, "recipes must be a non-empty list of recipe names")
    path = _config("eval_family_masks.yaml", tmp_path, lambda c: (shipped_only(c), c.update(out=str(tmp_path / "fm"))))
    (tmp_path / "fm.md").mkdir()  # out + .md is a folder
    assert cli_main(efm.main, ["--config", str(path)]) == 2
    _one_error(capsys, "fm.md", "is a directory")
    _unreadable_configs_refused(efm.main, "variants: [\n", tmp_path, capsys)
    path = _config("eval_family_masks.yaml", tmp_path, shipped_only)
    assert efm.check_config(yaml.safe_load(path.read_text()), str(path))["variants"][1]["segment"] is False
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------ 3: fit_step_chooser


@pytest.mark.parametrize(("change", "parts"), [
    ({"alphas": 3}, ("alphas must be a non-empty list of positive ridge strengths", "got 3")),
    ({"alphas": [3, "ten"]}, ("alphas must be",)),
    ({"recipes": "spatial-mixed"}, ("recipes must be a non-empty list of recipe names", "'spatial-mixed'")),
    ({"recipes": ["spatial-mixd"]}, ("unknown recipe 'spatial-mixd'",)),
    ({"crop": "big"}, ("crop must be a whole number >= 8", "'big'")),
    ({"scenes_per_photo": 0}, ("scenes_per_photo must be a whole number >= 1",)),
    ({"min_gain_db": "high"}, ("min_gain_db must be a number",)),
    ({"min_gain_dbb": 0.1}, ("unknown config key 'min_gain_dbb'", "did you mean 'min_gain_db'?")),
])
def test_fit_step_chooser_names_the_bad_key_before_recording(
        change: dict, parts: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import fit_step_chooser as fsc

    monkeypatch.setattr(fsc, "collect", _never)
    path = _config("step_chooser.yaml", tmp_path, lambda c: c.update(change))
    assert cli_main(fsc.main, ["--config", str(path)]) == 2
    _one_error(capsys, str(path), *parts)


def test_fit_step_chooser_checks_its_outputs_and_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import fit_step_chooser as fsc

    monkeypatch.setattr(fsc, "collect", _never)
    path = _config("step_chooser.yaml", tmp_path, lambda c: c.update(output=str(tmp_path)))
    assert cli_main(fsc.main, ["--config", str(path)]) == 2
    _one_error(capsys, "output", "is a directory")
    path = _config("step_chooser.yaml", tmp_path, lambda c: c.update(report_dir=str(path)))
    assert cli_main(fsc.main, ["--config", str(path)]) == 2
    _one_error(capsys, "report_dir", "is a file")
    path = _config("step_chooser.yaml", tmp_path)
    assert cli_main(fsc.main, ["--config", str(path), "--workers", "0"]) == 2
    _one_error(capsys, "--workers must be >= 1")
    assert fsc.load_config(path)["alphas"]  # the committed config passes


# ------------------------------------------------------------------------------------------------ 4: eval_regions


@pytest.mark.parametrize(("argv", "parts"), [
    (["--images", "0"], ("--images must be >= 1", "got 0")),
    (["--images", "-1"], ("--images must be >= 1", "got -1")),
    (["--proposers", "sam"], ("sam", "needs --sam-checkpoint")),
    (["--proposers", "sam,grid"], ("sam", "needs --sam-checkpoint")),
    (["--proposers", "sam", "--sam-checkpoint", "/nonexistent/sam_vit_b.pth"], ("--sam-checkpoint", "not found")),
    (["--proposers", "grdi"], ("--proposers: unknown proposers ['grdi']",)),
    (["--proposers", ","], ("--proposers names no proposer",)),
    (["--recipe", "nope"], ("--recipe: unknown recipe 'nope'",)),
    (["--seed", "-1"], ("--seed >= 0",)),
])
def test_eval_regions_refuses_bad_options_before_building_scenes(
        argv: list[str], parts: tuple[str, ...], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import eval_regions as er

    monkeypatch.setattr(er, "build_scenes", _never)
    assert cli_main(er.main, argv) == 2
    _one_error(capsys, *parts)


def test_eval_regions_runs_on_the_first_photo_and_its_help_shows_the_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import eval_regions as er

    out = tmp_path / "r.json"
    assert er.main(["--images", "1", "--crops", "1", "--size", "32", "--proposers", "whole",
                    "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["images"] == 1 and res["scenes"] == 1 and res["skipped"] == {}
    assert res["command"].startswith("python -m experiments.eval_regions --images 1")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        er.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "    python -m experiments.eval_regions --recipe spatial-mixed --split test --crops 25 --size 128 \\\n" \
           "        --json experiments/results/regions_miou.json" in text
    assert "experiments/eval_regions.py" not in text


# ---------------------------------------------------------------------------------------------- 5: select_encoder


def test_select_encoder_refuses_fewer_than_one_scene(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import select_encoder as se

    monkeypatch.setattr(se, "load_encoder", _never)
    for n in ("0", "-5"):
        assert cli_main(se.main, ["--candidates", "ir_env/encoder/weights", "--scenes", n]) == 2
        _one_error(capsys, "--scenes must be >= 1", f"got {n}")
    with pytest.raises(ValueError, match="--scenes must be a whole number >= 1"):
        se.select(["ir_env/encoder/weights"], scenes=0)


# ---------------------------------------------------------------------------------------- 6: tune_judge_threshold


@pytest.mark.parametrize(("argv", "parts"), [
    (["--thresholds", ","], ("--thresholds must be comma-separated numbers", "','")),
    (["--thresholds", "0.5,x"], ("--thresholds",)),
    (["--thresholds", "nan"], ("--thresholds",)),
    (["--planners", ","], ("--planners must name at least one planner",)),
])
def test_tune_judge_threshold_names_the_option(argv: list[str], parts: tuple[str, ...],
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import tune_judge_threshold as tjt

    monkeypatch.setattr(tjt, "tune", _never)
    assert cli_main(tjt.main, argv) == 2
    err = _one_error(capsys, *parts)
    assert "planner_specs" not in err


# ------------------------------------------------------------------------------------------ 7: summarise_students


def _summary(folder: Path, drop: str | None = None) -> str:
    folder.mkdir(parents=True)
    s = {"config": {"train": {"seed": 0}}, "selected": "bc_e10", "dataset": {"states": 100},
         "candidates": {"bc_e10": {"val_psnr_gain": 1.0}},
         "test": {"student": {"psnr_gain": 2.0, "seconds": 1.0}, "teacher": {"psnr_gain": 4.0, "seconds": 20.0},
                  "gain_ratio": 0.5, "agreement_on_teacher_states": {"joint": 0.25}}}
    if drop:
        s.pop(drop)
    (folder / "summary.json").write_text(json.dumps(s))
    return str(folder)


def test_summarise_students_names_the_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import summarise_students as ss

    out = tmp_path / "o" / "students"
    cfg = tmp_path / "c.yaml"
    run = _summary(tmp_path / "r0", drop="test")
    cfg.write_text(yaml.safe_dump({"out": str(out), "recipes": [{"label": "a", "runs": [run]}]}))
    assert cli_main(ss.main, ["--config", str(cfg)]) == 2
    _one_error(capsys, str(Path(run) / "summary.json"), "lacks test.student.psnr_gain", "train_distill")
    (Path(run) / "summary.json").write_text("{not json")
    assert cli_main(ss.main, ["--config", str(cfg)]) == 2
    _one_error(capsys, str(Path(run) / "summary.json"), "is not valid JSON")
    run2 = _summary(tmp_path / "r1", drop="candidates")
    cfg.write_text(yaml.safe_dump({"out": str(out), "recipes": [{"label": "a", "runs": [run2]}]}))
    assert cli_main(ss.main, ["--config", str(cfg)]) == 2
    _one_error(capsys, "candidates['bc_e10'].val_psnr_gain")
    path = _config("student_inputs.yaml", tmp_path, lambda c: c.update(recipes={"label": "a"}, out=str(out)))
    assert cli_main(ss.main, ["--config", str(path)]) == 2
    _one_error(capsys, str(path), "recipes must be a list of {label, runs, note} mappings", "{'label': 'a'}")

    def titel(c: dict) -> None:
        c["titel"] = c.pop("title")
        c["out"] = str(out)

    path = _config("student_inputs.yaml", tmp_path, titel)
    assert cli_main(ss.main, ["--config", str(path)]) == 2
    _one_error(capsys, str(path), "unknown config key 'titel'", "did you mean 'title'?")
    path = _config("student_inputs.yaml", tmp_path, lambda c: (c["recipes"][0].update(notes="x"),
                                                              c.update(out=str(out))))
    assert cli_main(ss.main, ["--config", str(path)]) == 2
    _one_error(capsys, "recipe 0", "unknown config key 'notes'", "did you mean 'note'?")
    good = _summary(tmp_path / "r2")
    (tmp_path / "o" / "students.md").mkdir(parents=True)  # out + .md is a folder: refused before reading runs
    cfg.write_text(yaml.safe_dump({"out": str(out), "recipes": [{"label": "a", "runs": [good]}]}))
    assert cli_main(ss.main, ["--config", str(cfg)]) == 2
    _one_error(capsys, "students.md", "is a directory")
    assert not out.with_suffix(".json").exists()


# ------------------------------------------------------------------------------------------------ 8: paired_gains


def test_paired_gains_names_a_bad_new_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments import paired_gains as pg

    def many(c: dict) -> None:
        c["paired"]["new_from"] = "many"
        c["output_dir"] = str(tmp_path)

    path = _config("compare_large.yaml", tmp_path, many)
    assert cli_main(pg.main, ["--config", str(path)]) == 2
    _one_error(capsys, str(path), "paired: new_from must be a whole number >= 0", "'many'")
    path = _config("compare_large.yaml", tmp_path, lambda c: (c["paired"].update(new_form=8),
                                                             c.update(output_dir=str(tmp_path))))
    assert cli_main(pg.main, ["--config", str(path)]) == 2
    _one_error(capsys, "paired: unknown config key 'new_form'", "did you mean 'new_from'?")
    assert not (tmp_path / "paired.json").exists() and not (tmp_path / "paired.md").exists()


# ---------------------------------------------------------------------------- 9: library modules run as scripts


@pytest.mark.parametrize(("module", "argv", "names"), [
    ("experiments.head_fit", ["--help"], ("experiments.fit_context_head", "experiments.fit_segment_head")),
    ("experiments.refit_entries", ["--bogus"], ("experiments.fit_rule_table",)),
])
def test_library_modules_say_so_when_run_as_scripts(module: str, argv: list[str], names: tuple[str, ...]) -> None:
    res = subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith(f"error: {module} is a library module, not a script")
    assert len(res.stderr.strip().splitlines()) == 1
    for name in names:
        assert name in res.stderr


# ----------------------------------------------------------------------------------------------------- 10: --help


@pytest.mark.parametrize("module", [
    "fit_segment_head", "eval_family_masks", "fit_step_chooser", "summarise_students", "eval_regions",
    "select_encoder", "tune_judge_threshold", "eval_perceive_thresholds", "paired_gains",
])
def test_help_has_a_text_and_the_default_of_every_option(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    mod = importlib.import_module(f"experiments.{module}")
    seen: list[argparse.ArgumentParser] = []

    def capture(self: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> Any:
        seen.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        mod.main([])
    (ap,) = seen
    first = " ".join(mod.__doc__.split("\n\n")[0].split())
    assert first in " ".join((ap.description or "").split())  # the whole first paragraph, not its first line
    for action in ap._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, (module, action.option_strings)
        if action.required:
            assert "required" in action.help, (module, action.option_strings)
        elif action.default not in (None, "", False):
            text = action.help % {"default": action.default}
            assert "(default: " in text and (str(action.default) in text or isinstance(action.default, list)), \
                (module, action.option_strings, text)
        else:
            assert "default: " in action.help, (module, action.option_strings)
    ap.format_help()  # every help text formats (no stray %)
