"""The experiment scripts' shared config reading and command-line error handling (experiments/configio.py), and
the up-front checks of the scripts that used to fail late or with a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments.configio import check_output, check_run_folder, cli_main, positive_ints, read_config

ROOT = Path(__file__).resolve().parent.parent


def test_read_config_names_the_file_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file not found"):
        read_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match=r"bad.yaml is not valid YAML \(line \d+, column \d+\)"):
        read_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n")
    with pytest.raises(ValueError, match="expected a mapping of config keys, got list"):
        read_config(listed)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_config(empty, empty_ok=True) == {}
    with pytest.raises(ValueError, match="got NoneType"):
        read_config(empty)
    good = tmp_path / "good.yaml"
    good.write_text("a: 1\n")
    assert read_config(good) == {"a": 1}


def test_cli_main_turns_input_errors_into_one_line(capsys: pytest.CaptureFixture) -> None:
    def bad(argv: list[str] | None) -> int:
        raise ValueError("size must be a whole number")

    assert cli_main(bad) == 2
    assert capsys.readouterr().err == "error: size must be a whole number\n"
    assert cli_main(lambda argv: None) == 0 and cli_main(lambda argv: 3) == 3


def test_output_and_number_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a directory; give a file name"):
        check_output(tmp_path, "--json")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_output(tmp_path / "f" / "out.json")
    check_output(tmp_path / "new" / "out.json")
    assert not (tmp_path / "new").exists()  # nothing created
    assert positive_ints("64,128", "--sizes") == [64, 128]
    for text in ("0", "a", ""):
        with pytest.raises(ValueError, match="--sizes must be whole numbers >= 1"):
            positive_ints(text, "--sizes")


@pytest.mark.parametrize(("args", "message"), [
    (["-m", "experiments.run_baselines", "--config", "{missing}"], "config file not found"),
    (["-m", "experiments.bench_env", "--steps", "0", "--json", "{tmp}/b.json"], "--steps >= 1"),
    (["-m", "experiments.bench_encoder", "--repeats", "0"], "--repeats must be >= 1"),
    (["-m", "experiments.bench_tools", "--sizes", "32", "--repeats", "1", "--tools", "gamma_correct",
      "--json", "{tmp}"], "is a directory; give a file name"),
    (["-m", "experiments.run_baselines", "--config", "experiments/configs/baselines.yaml", "--recipes", "bogus"],
     "--recipes: bogus not in experiments/configs/baselines.yaml's recipes"),
    (["-m", "experiments.run_baselines", "--config", "experiments/configs/baselines.yaml", "--planners",
      "fixed,dfs:oracel"], "--planners: dfs:oracel not in"),
    (["-m", "experiments.run_baselines", "--config", "{badjudge}"], "no_reference_judge must be a no-reference metric"),
    (["-m", "experiments.compare", "--config", "{badcompare}", "--skip-training"], "unknown planner 'nosuch'"),
])
def test_scripts_refuse_bad_input_in_one_line_before_work(tmp_path: Path, args: list[str], message: str) -> None:
    cfg = yaml.safe_load((ROOT / "experiments/configs/compare.yaml").read_text())
    cfg.update(planners=["random", "nosuch"], output_dir=str(tmp_path / "cmp"), targets=None, skip=None)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    base = yaml.safe_load((ROOT / "experiments/configs/baselines.yaml").read_text())
    base.update(planners=["random", "fixed"], no_reference_judge="brisqeu", output_dir=str(tmp_path / "cmp"))
    (tmp_path / "j.yaml").write_text(yaml.safe_dump(base))  # no listed planner judges: refused all the same
    args = [a.format(missing=tmp_path / "none.yaml", tmp=tmp_path, badcompare=tmp_path / "c.yaml",
                     badjudge=tmp_path / "j.yaml") for a in args]
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("error:") and message in lines[-1], out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "cmp").exists()  # nothing evaluated or written


def test_compare_config_values_are_checked(tmp_path: Path) -> None:
    from experiments.compare import load_compare_config

    base = yaml.safe_load((ROOT / "experiments/configs/compare.yaml").read_text())
    base["skip"] = None  # its entries name planners and recipes some changes below remove
    for change, message in (({"size": "abc"}, "size must be a whole number"),
                            ({"recipes": ["nosuch"]}, "unknown recipe 'nosuch'"),
                            ({"recipes": []}, "recipes must be a non-empty list"),
                            ({"planners": "random"}, "planners must be a non-empty list")):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({**base, **change}))
        with pytest.raises(ValueError, match=message):
            load_compare_config(path)


def test_check_keys_names_a_misspelled_key_and_config_int_refuses_non_whole_numbers() -> None:
    from experiments.configio import check_keys, config_int

    with pytest.raises(ValueError, match="c.yaml: unknown config key 'scenes_per_imag' "
                                         "\\(did you mean 'scenes_per_image'\\?\\)"):
        check_keys({"scenes_per_imag": 2}, ("size", "scenes_per_image"), "c.yaml")
    with pytest.raises(ValueError, match="c.yaml: missing config key\\(s\\) size"):
        check_keys({}, ("size",), "c.yaml", required=("size",))
    check_keys({"size": 1}, ("size",), "c.yaml", required=("size",))
    assert config_int({"n": 3}, "n", "c.yaml", minimum=1) == 3
    assert config_int({}, "n", "c.yaml", default=0) == 0
    for value in (0, -1, 1.5, "2", True, None):
        with pytest.raises(ValueError, match="c.yaml: n must be a whole number >= 1"):
            config_int({"n": value}, "n", "c.yaml", minimum=1)


def test_check_sections_checks_nested_mappings() -> None:
    from experiments.configio import check_sections

    sections = {"": (("seed", "data"), ("seed",)), "data": (("crop", "augment"), ("crop",)),
                "data.augment": (("scale",), ())}
    check_sections({"seed": 0, "data": {"crop": 64, "augment": {"scale": 1}}}, sections, "c.yaml")
    check_sections({"seed": 0}, sections, "c.yaml")  # an absent optional section is not checked
    check_sections({"seed": 0, "data": {"crop": 64, "augment": False}}, sections, "c.yaml")  # nor one turned off
    with pytest.raises(ValueError, match="c.yaml: data.augment: unknown config key 'scal' \\(did you mean 'scale'"):
        check_sections({"seed": 0, "data": {"crop": 64, "augment": {"scal": 1}}}, sections, "c.yaml")
    with pytest.raises(ValueError, match="c.yaml: data: missing config key\\(s\\) crop"):
        check_sections({"seed": 0, "data": {}}, sections, "c.yaml")
    with pytest.raises(ValueError, match="c.yaml: data must be a mapping of config keys, got 3"):
        check_sections({"seed": 0, "data": 3}, sections, "c.yaml")


def test_cli_main_names_path_errors(capsys: pytest.CaptureFixture) -> None:
    def exists(argv: list[str] | None) -> int:
        raise FileExistsError("[Errno 17] File exists: 'out'")

    def denied(argv: list[str] | None) -> int:
        raise PermissionError("[Errno 13] Permission denied: 'out'")

    assert cli_main(exists) == 2 and "File exists" in capsys.readouterr().err
    assert cli_main(denied) == 2 and "Permission denied" in capsys.readouterr().err


@pytest.mark.parametrize(("script", "config", "change", "message"), [
    ("run_baselines", "baselines.yaml", {"scenes_per_imag": 2}, "did you mean 'scenes_per_image'"),
    ("run_baselines", "baselines.yaml", {"scenes_per_image": 0}, "scenes_per_image must be a whole number >= 1"),
    ("run_baselines", "baselines.yaml", {"seed": None}, "seed must be a whole number >= 0"),
    ("compare", "compare.yaml", {"skipp": {}}, "did you mean 'skip'"),
    ("compare", "compare.yaml", {"scenes_per_image": -1}, "scenes_per_image must be a whole number >= 1"),
    ("compare", "compare.yaml", {"targets": {"dfs_oracel": "dfs:oracle"}}, "targets: unknown config key 'dfs_oracel'"),
    ("compare", "compare.yaml", {"skip": {"mixed-9": ["dfs"]}}, "unknown recipe 'mixed-9'"),
    ("distill_results", "distill_results.yaml", {"recipes": ["spatial-mixed"]}, "did you mean 'recipe'"),
    ("distill_results", "distill_results.yaml", {"scenes_per_image": 0}, "scenes_per_image must be"),
    ("distill_results", "distill_results.yaml", {"out": None}, "missing config key(s) out"),
    ("scale_transfer", "scale_transfer.yaml", {"sizes": [128, -1]}, "sizes must be a non-empty list"),
    ("scale_transfer", "scale_transfer.yaml", {"clean_crops": {"crops": 0, "size": 64}}, "crops must be"),
    ("gap_decomposition", "gap_decomposition.yaml", {"max_cost": 0}, "max_cost must be a number > 0"),
    ("gap_decomposition", "gap_decomposition.yaml", {"sets": {"t": {"images": "builtin", "scenes_per_image": 0}}},
     "set 't': scenes_per_image must be"),
])
def test_experiment_configs_are_checked_before_work(tmp_path: Path, capsys: pytest.CaptureFixture, script: str,
                                                     config: str, change: dict, message: str) -> None:
    import importlib

    cfg = yaml.safe_load((ROOT / "experiments/configs" / config).read_text())
    out = tmp_path / "out"
    for key in ("output_dir", "out"):
        if key in cfg:
            cfg[key] = str(out / "r")
    cfg.update(change)
    cfg = {k: v for k, v in cfg.items() if v is not None or k == "seed"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    module = importlib.import_module(f"experiments.{script}")
    extra = ["--skip-training"] if script == "compare" else []
    assert cli_main(module.main, ["--config", str(path), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err
    assert not out.exists()  # nothing evaluated or written


def test_an_output_folder_that_is_a_file_is_named_before_work(tmp_path: Path) -> None:
    from experiments.run_baselines import main as run_baselines

    cfg = yaml.safe_load((ROOT / "experiments/configs/baselines.yaml").read_text())
    (tmp_path / "taken").write_text("x")
    cfg["output_dir"] = str(tmp_path / "taken")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="taken is a file, not a folder"):
        run_baselines(["--config", str(tmp_path / "c.yaml")])


def test_compare_report_names_its_photos_and_only_real_reuse() -> None:
    from experiments.compare import markdown

    report = {"command": "cmd", "images": 8, "recipes": {}, "training": {},
              "config": {"images": "holdout", "scenes_per_image": 2, "size": 128, "seed": 0,
                         "no_reference_judge": "brisque", "baselines_dir": None}}
    text = markdown(report)
    assert "Holdout photos (8 scenes: 2 per photo)" in text and "reused from" not in text
    report["config"].update(images="builtin", baselines_dir="experiments/results/baselines")
    text = markdown(report)
    assert "Built-in test split" in text and "reused from `experiments/results/baselines`" in text


def test_bench_env_succeeds_from_the_command_line(tmp_path: Path) -> None:
    # its main returns the result dict: cli_main took that for an exit status and crashed after writing the JSON
    out = subprocess.run([sys.executable, "-m", "experiments.bench_env", "--sizes", "32", "--steps", "2",
                          "--vector-size", "32", "--json", str(tmp_path / "b.json")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "b.json").read_text())["single"][0]["size"] == 32


@pytest.mark.parametrize(("args", "message"), [
    (["-m", "experiments.bench_distill", "--scenes-per-image", "0", "--repeats", "1"], "--scenes-per-image must be"),
    (["-m", "experiments.bench_tools", "--max-seconds", "-1"], "--max-seconds > 0"),
    (["-m", "experiments.bench_env", "--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
    (["-m", "experiments.probe_embeddings", "--crops", "3", "--size", "64", "--test-split", "foo"], "unknown split"),
    (["-m", "experiments.probe_embeddings", "--crops", "3", "--size", "64", "--json", "/tmp"], "is a directory"),
])
def test_bench_options_are_named(args: list[str], message: str) -> None:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]


def test_documented_config_paths_work_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`experiments/configs/<name>.yaml` as the README writes it, run outside the checkout (as after pip install)."""
    from ir_env.paths import find_config
    from policies.ppo.config import load_config

    monkeypatch.chdir(tmp_path)
    rel = "experiments/configs/ppo_spatial.yaml"
    assert find_config(rel) == ROOT / rel
    assert read_config("experiments/configs/compare.yaml")["recipes"]
    assert load_config(rel)["name"]
    (tmp_path / "experiments" / "configs").mkdir(parents=True)
    (tmp_path / rel).write_text("name: mine\n")  # a file here wins over the shipped one
    assert find_config(rel) == Path(rel)
    with pytest.raises(FileNotFoundError, match="config file not found: experiments/configs/nope.yaml"):
        find_config("experiments/configs/nope.yaml")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        find_config("experiments")


def test_training_scripts_refuse_a_folder_holding_a_run_unless_overwrite(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    """train_bc and train_distill used to train into a folder holding a finished run, replacing its model and
    leaving the old candidates beside the new ones."""
    run = tmp_path / "runs" / "old"
    run.mkdir(parents=True)
    for name in ("model.zip", "summary.json", "bc_e10_model.zip"):
        (run / name).write_text("x")
    (run / "notes.txt").write_text("mine")
    (run / "tb_finetune_1").mkdir()
    with pytest.raises(ValueError, match=r"run folder .*old already holds a run \(bc_e10_model.zip, model.zip, "
                                         r"summary.json, tb_finetune_1/\); .*pass --overwrite"):
        check_run_folder(run, False, ("model.zip", "summary.json", "*_model.zip", "tb_*"))
    check_run_folder(tmp_path / "missing", False, ("model.zip",))  # nothing there: nothing to refuse or create
    assert not (tmp_path / "missing").exists()
    check_run_folder(run, True, ("model.zip", "summary.json", "*_model.zip", "tb_*"))
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # the run's outputs went, the user's file stayed

    from experiments import train_bc, train_distill

    quick = tmp_path / "runs" / "old_quick"  # --quick runs are named <name>_quick
    quick.mkdir()
    for name in ("model.zip", "summary.json"):
        (run / name).write_text("x")
        (quick / name).write_text("x")
    cfg = tmp_path / "bc.yaml"
    cfg.write_text(yaml.safe_dump({"name": "old", "output_dir": str(tmp_path / "runs")}))
    assert train_bc.main(["--config", str(cfg), "--quick"]) == 2
    assert "already holds a run (model.zip, summary.json)" in capsys.readouterr().err
    assert train_bc.main(["--config", str(cfg), "--quick", "--name", "new",
                          "--continue-from", str(tmp_path / "runs" / "new" / "summary.json")]) == 2
    assert (quick / "model.zip").read_text() == "x"
    assert "is the run --continue-from reads" in capsys.readouterr().err
    dcfg = tmp_path / "distill.yaml"
    dcfg.write_text(yaml.safe_dump({"name": "old", "output_dir": str(tmp_path / "runs"),
                                    "data": [str(tmp_path / "no_data")]}))
    assert train_distill.main(["--config", str(dcfg)]) == 2  # refused before the data is read
    assert "already holds a run (model.zip, summary.json)" in capsys.readouterr().err
    assert (run / "model.zip").read_text() == "x"


def test_running_the_config_library_as_a_script_says_what_to_run() -> None:
    out = subprocess.run([sys.executable, "-m", "experiments.configio", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 2 and "library module" in out.stderr and "python -m experiments." in out.stderr


def test_benchmarks_write_json_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quick benchmark run used to overwrite the committed figures (their --json defaulted to them)."""
    from experiments import bench_tools

    monkeypatch.chdir(tmp_path)  # the committed path, relative to the working directory, would be written here
    assert bench_tools.main(["--sizes", "32", "--repeats", "1", "--tools", "gamma_correct"]) == 0
    assert not (tmp_path / "experiments").exists()
    assert bench_tools.main(["--sizes", "32", "--repeats", "1", "--tools", "gamma_correct", "--json", "t.json"]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["command"].startswith("python -m experiments.bench_tools")
