"""The command line: tools, degrade, restore, evaluate; clear one-line errors with non-zero exit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ir_env.cli import main
from ir_env.imageio import read_image, write_image


@pytest.fixture()
def photo_file(tmp_path: Path, photo: np.ndarray) -> Path:
    return write_image(tmp_path / "photo.png", photo)


def test_tools_json_lists_tools_families_and_ranges(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["tools"]) >= 14
    assert len({t["family"] for t in data["tools"]}) >= 6
    for t in data["tools"]:
        assert 1 <= len(t["params"]) <= 3
        for p in t["params"]:
            assert p["low"] < p["high"] and p["low"] <= p["default"] <= p["high"]


def test_tools_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools"]) == 0
    assert "families" in capsys.readouterr().out


def test_degrade_writes_four_files_deterministically(tmp_path: Path, photo_file: Path) -> None:
    for d in ("a", "b"):
        argv = ["degrade", str(photo_file), "--recipe", "spatial-mixed", "--seed", "3", "-o", str(tmp_path / d)]
        assert main(argv) == 0
    for f in ("degraded.png", "clean.png", "masks.png", "overlay.png", "scene.json"):
        assert (tmp_path / "a" / f).exists()
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    scene = json.loads((tmp_path / "a" / "scene.json").read_text())
    # masks.png is the ground truth as data: region index per pixel, the same masks synthesize makes
    import cv2

    from ir_env.imageio import read_image
    from ir_env.recipes import synthesize

    index = cv2.imread(str(tmp_path / "a" / "masks.png"), cv2.IMREAD_UNCHANGED)
    truth = synthesize(read_image(photo_file), recipe="spatial-mixed", seed=3)
    assert index.dtype == np.uint8 and index.ndim == 2 and len(scene["regions"]) == len(truth.masks)
    np.testing.assert_array_equal(np.stack([index == k for k in range(len(truth.masks))]), truth.masks)
    kinds = [tuple(sorted({p["kind"] for p in r["params"]})) for r in scene["regions"]]
    assert len(kinds) >= 2 and len(set(kinds)) >= 2, kinds
    assert main(["degrade", str(photo_file), "--seed", "4", "-o", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "degraded.png").read_bytes() != (tmp_path / "a" / "degraded.png").read_bytes()


def test_degrade_accepts_greyscale_and_any_size(tmp_path: Path) -> None:
    grey = np.linspace(0, 1, 90 * 70, dtype=np.float32).reshape(90, 70)
    f = write_image(tmp_path / "grey.png", grey)
    assert main(["degrade", str(f), "--recipe", "mixed-2", "-o", str(tmp_path / "o")]) == 0
    assert read_image(tmp_path / "o" / "degraded.png").shape == (90, 70, 3)


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["degrade", "missing.png", "-o", "x"], "not found"),
        (["degrade", "{corrupt}", "-o", "x"], "cannot decode"),
        (["degrade", "{photo}", "--recipe", "nope", "-o", "x"], "recipe"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "nope"], "unknown planner"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "greedy", "--judge", "psnr"], "reference"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "greedy", "--judge", "nope"], "unknown metric"),
        (["restore", "{photo}", "-o", "x.png", "--judge", "brisque"], "never judges"),  # the default: perceive
        (["restore", "{photo}", "-o", "x.png", "--planner", "fixed", "--tile", "8"], "tile must be 0 (off) or >= 32"),
        (["evaluate", "--images", "missing_dir", "--planners", "fixed"], "missing_dir"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "ppo:foo=1"], "planner 'ppo' has no option 'foo'"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "dfs:budget=abc"],
         "planner 'dfs': budget must be an integer >= 1"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "greedy:oracle"], "judge 'psnr' is full-reference"),
        (["restore", "{photo}", "-o", "{dir}", "--planner", "fixed"], "is a directory"),
        (["restore", "{photo}", "-o", "x.xyz", "--planner", "fixed"], "unknown image extension '.xyz'"),
        (["restore", "{photo}", "-o", "{photo}/x.png", "--planner", "fixed"], "is a file, not a folder"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "fixed", "--trace", "{dir}"], "is a directory"),
        (["degrade", "{photo}", "-o", "{photo}"], "is a file, not a folder"),
        (["evaluate", "--planners", "fixed", "--max-images", "-1"], "--max-images and --size must be >= 0"),
        (["evaluate", "--planners", " , "], "names no planner"),
        (["evaluate", "--planners", "fixed, fixed"], "names fixed more than once"),
        (["evaluate", "--planners", "fixed", "--json", "{dir}"], "is a directory"),
        (["bench", "--steps", "0"], "--steps must be >= 1"),
        (["demo", "-o", "{photo}"], "is a file, not a folder"),
        (["train", "--config", "{badyaml}"], "invalid YAML"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "random:max_steps=abc"],
         "planner 'random': max_steps must be an integer >= 1, got 'abc'"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "greedy:threshold=abc"],
         "planner 'greedy': threshold must be a finite number, got 'abc'"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "perceive:=3"], "option '=3' has no name"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "perceive:oracle"], "never judges a candidate"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "fixed:judge=psnr"], "never judges a candidate"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "perceive", "--judge", "foo"], "unknown metric 'foo'"),
        (["restore", "{photo}", "-o", "/proc/spatial_ir_nope/x.png", "--planner", "fixed"], "cannot create its folder"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "fixed", "--trace", "/proc/spatial_ir_nope/t.json"],
         "cannot write /proc/spatial_ir_nope/t.json"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "greedy:oracle", "--reference", "{small}", "--size", "32"],
         "the clean reference must be the same picture"),
        (["evaluate", "--planners", "fixed", "--plot", "x.xyz"], "unknown plot extension '.xyz'"),
        (["evaluate", "--planners", "fixed", "--recipe", "nope"], "unknown recipe 'nope'"),
        (["evaluate", "--planners", "fixed", "--size", "8"], "at least 11 px"),
        (["encoder-eval", "--crops", "0"], "--crops and --train-crops must be >= 1"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "ppo:global", "--mode", "spatial"],
         "mode is given twice ('global' and 'spatial')"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "perceive:tile=64", "--tile", "256"],
         "tile is given twice"),
        (["restore", "{photo}", "-o", "x.png", "--planner", "dfs:oracle:judge=brisque"],
         "judge is given twice ('oracle' and 'judge=brisque')"),
        (["evaluate", "--planners", "perceive", "--judge", "foo"], "unknown metric 'foo'"),
        (["evaluate", "--planners", "fixed", "--json", "/proc/x.json"], "cannot write /proc/x.json: its folder /proc"),
    ],
)
def test_bad_input_one_clear_line(argv: list[str], msg: str, tmp_path: Path, photo_file: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: [1\n")
    (tmp_path / "adir").mkdir()
    small = write_image(tmp_path / "small.png", np.full((40, 40, 3), 0.5, np.float32))
    subs = {"{photo}": photo_file, "{corrupt}": corrupt, "{dir}": tmp_path / "adir", "{badyaml}": bad_yaml,
            "{small}": small}
    for key, value in subs.items():
        argv = [a.replace(key, str(value)) for a in argv]
    argv = [str(tmp_path / a) if a in ("x", "x.png", "x.xyz") else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and msg in err[0], err


def test_restore_writes_image_and_trace(tmp_path: Path, photo_file: Path) -> None:
    out, trace = tmp_path / "r.png", tmp_path / "t.json"
    assert main(["restore", str(photo_file), "-o", str(out), "--planner", "fixed", "--mode", "global",
                 "--trace", str(trace)]) == 0
    assert read_image(out).shape == read_image(photo_file).shape
    def no_nan(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    t = json.loads(trace.read_text(), parse_constant=no_nan)  # a planner that never judges: null, not NaN
    assert t["planner"] == "fixed" and len(t["trace"]) >= 1 and t["iqa_calls"] == 0
    assert t["trace"][0]["quality_before"] is None


def test_restore_tile_by_tile(tmp_path: Path, photo_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, trace = tmp_path / "r.png", tmp_path / "t.json"
    assert main(["restore", str(photo_file), "-o", str(out), "--planner", "fixed", "--tile", "32",
                 "--trace", str(trace)]) == 0
    assert capsys.readouterr().out.startswith("fixed (spatial, judge none)")
    t = json.loads(trace.read_text())
    h, w = read_image(photo_file).shape[:2]
    assert len(t["info"]["tiles"]) == max(1, round(h / 32)) * max(1, round(w / 32)) > 1
    assert read_image(out).shape == (h, w, 3)


def test_restore_uses_the_planners_own_tile_unless_told(tmp_path: Path, photo_file: Path) -> None:
    out, trace = tmp_path / "r.png", tmp_path / "t.json"
    assert main(["restore", str(photo_file), "-o", str(out), "--planner", "ppo", "--trace", str(trace)]) == 0
    assert json.loads(trace.read_text())["info"]["tile"] == 128  # the shipped model's deploy.tile
    assert main(["restore", str(photo_file), "-o", str(out), "--planner", "ppo", "--tile", "0",
                 "--trace", str(trace)]) == 0
    assert "tiles" not in json.loads(trace.read_text())["info"]  # --tile 0: off


def test_restore_reports_what_the_gate_dropped(tmp_path: Path, photo_file: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out, trace = tmp_path / "r.png", tmp_path / "t.json"
    assert main(["restore", str(photo_file), "-o", str(out), "--planner", "fixed:gate=table",
                 "--trace", str(trace)]) == 0
    vetoed = json.loads(trace.read_text())["info"]["gate"]["vetoed"]
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "gate dropped" in ln]
    assert vetoed and len(lines) == len(vetoed)  # the fixed pipeline runs tools for families not there
    assert f"gate dropped {vetoed[0]['tool']} on region {vetoed[0]['region']}" in lines[0]
    assert all(v["prob"] < v["threshold"] for v in vetoed)
    assert f"below the gate's threshold {vetoed[0]['threshold']:.2f}" in lines[0]


def test_evaluate_writes_json_markdown_plot(tmp_path: Path, photo_file: Path) -> None:
    j, m, p = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.png"
    assert main(["evaluate", "--images", str(tmp_path), "--recipe", "noise-25", "--planners", "fixed,random",
                 "--size", "64", "--json", str(j), "--markdown", str(m), "--plot", str(p)]) == 0
    data = json.loads(j.read_text())
    assert {"recipe", "seed", "size", "images", "planners", "rows"} <= set(data)
    for key in ("psnr_in", "psnr_out", "ssim_in", "ssim_out", "tool_calls", "iqa_calls", "seconds"):
        assert key in data["planners"]["fixed"] and key in data["rows"][0]
    assert "| fixed |" in m.read_text() and p.stat().st_size > 1000


def test_python_m_entry_point_help() -> None:
    out = subprocess.run([sys.executable, "-m", "ir_env", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "degrade" in out.stdout


def test_a_users_own_experiments_package_does_not_break_the_cli(tmp_path: Path) -> None:
    import os

    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "__init__.py").write_text("")  # the user's package, first on sys.path
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ir_env", *args], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path, env=env)

    tools = run("tools")
    assert tools.returncode == 0 and "wiener_gaussian" in tools.stdout, tools.stderr[-2000:]
    bench = run("bench", "--json", str(tmp_path / "b.json"))
    assert bench.returncode == 2 and "Traceback" not in bench.stderr
    assert "another 'experiments' package" in bench.stderr and "shadows" in bench.stderr
    assert not (tmp_path / "b.json").exists()


def test_demo_runs_every_shipped_learned_planner() -> None:
    from ir_env.demo import DEMO_PLANNERS, LEARNED_DEMO_PLANNERS, demo_planners

    assert demo_planners() == [*DEMO_PLANNERS, *LEARNED_DEMO_PLANNERS]  # the repository ships all three


def test_image_grid_pads_tiles_of_different_sizes() -> None:
    from ir_env.visualize import image_grid

    a, b = np.zeros((10, 12, 3), np.float32), np.zeros((6, 20, 3), np.float32)
    grid = image_grid([[a, a], [b]], gap=1)  # whole photos of different sizes (demo --size 0)
    assert grid.shape == (12 + 8, 2 * 14, 3)
    assert grid[12 + 1: 12 + 7, 1:21].max() == 0.0 and grid[12:, 22:].min() == 1.0  # white padding on the right


def test_overlays_take_label_maps_refuse_other_shapes_and_keep_labels_apart() -> None:
    """A label map (masks.png) was read row by row as masks (stripes); overlapping regions' labels sat on top of
    each other; long labels ran off the tile; a labels list one short raised a bare IndexError."""
    from ir_env.visualize import draw_outlines, image_grid, label_anchor, overlay_masks, put_label, render_state

    img = np.full((40, 60, 3), 0.5, np.float32)
    labels = np.zeros((40, 60), np.int64)
    labels[:, 30:] = 1
    masks = np.stack([labels == 0, labels == 1])
    np.testing.assert_array_equal(overlay_masks(img, labels, texts=["a", "b"]),
                                  overlay_masks(img, masks, texts=["a", "b"]))
    np.testing.assert_array_equal(draw_outlines(img, labels), draw_outlines(img, masks))
    assert render_state(img, labels, "x", 1, 3).shape == render_state(img, masks, "x", 1, 3).shape
    for bad, message in ((labels.astype(np.float32), "integer label map"), (labels[:20], "label map is 20x60"),
                         (masks[:, :20], "masks are 20x60"), (masks[0][None, None], "got shape")):
        with pytest.raises(ValueError, match=message):
            overlay_masks(img, bad)
    both = np.ones((40, 60), bool)
    first = label_anchor(both)
    taken = np.zeros_like(both)
    taken[first[1] - 5:first[1] + 5, first[0] - 10:first[0] + 10] = True
    second = label_anchor(both, avoid=taken)
    assert not taken[second[1], second[0]] and both[second[1], second[0]]  # a second label lands elsewhere
    wide = put_label(np.zeros((64, 64, 3), np.float32), "a label much wider than its little tile")
    narrow = put_label(np.zeros((64, 64, 3), np.float32), "short")
    def last_text_row(x: np.ndarray) -> int:
        return int((x[:, :, 0] > 0.5).any(axis=1).nonzero()[0].max())

    assert last_text_row(wide) > last_text_row(narrow)  # wrapped onto a second line
    with pytest.raises(ValueError, match="labels must match the images row by row"):
        image_grid([[img, img]], [["one"]])


def test_negative_seed_is_an_argument_error(photo_file: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["degrade", str(photo_file), "--seed", "-1", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--seed: must be an integer >= 0" in err
    assert len(err.strip().splitlines()) == 1 and "see spatial-ir degrade --help" in err  # no usage block


def test_warnings_are_one_line(tmp_path: Path, photo: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "imgs"
    for name in ("a.png", "b.png", "c.png"):
        write_image(folder / name, photo[:64, :64])
    (folder / "d.png").write_bytes(b"not an image")
    assert main(["evaluate", "--images", str(folder), "--planners", "fixed", "--size", "32"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1 and err[0].startswith("warning: skipping unreadable image") and "d.png" in err[0]


def test_a_corrupt_file_gives_one_line_and_no_opencv_log(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"GIF89a" + bytes(20))  # a GIF header cut short, named .png
    assert main(["degrade", str(fake), "-o", str(tmp_path / "out")]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot decode image file"), err


def test_nothing_is_written_when_an_output_is_bad(tmp_path: Path, photo_file: Path) -> None:
    out = tmp_path / "out.png"
    assert main(["restore", str(photo_file), "-o", str(out), "--planner", "fixed", "--trace",
                 "/proc/spatial_ir_nope/t.json"]) == 2
    assert not out.exists()  # refused before the restore, not after writing the image


def test_output_directories_are_checked_before_work(tmp_path: Path) -> None:
    from ir_env.cli import check_output_dir

    with pytest.raises(ValueError, match="must not be empty"):
        check_output_dir("")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "f" / "out")
    assert check_output_dir(tmp_path / "new" / "out") == tmp_path / "new" / "out"
    assert not (tmp_path / "new").exists()


def test_restore_refuses_a_judge_the_planner_would_ignore(tmp_path: Path, photo: np.ndarray) -> None:
    from ir_env.cli import main

    src = write_image(tmp_path / "p.png", photo[:64, :64])
    out = str(tmp_path / "o.png")
    assert main(["restore", str(src), "-o", out, "--planner", "perceive", "--judge", "brisque"]) == 2
    assert not (tmp_path / "o.png").exists()
    assert main(["restore", str(src), "-o", str(tmp_path / "o.png"), "--planner", "perceive"]) == 0


def test_train_into_a_folder_holding_a_run_is_one_clear_line(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "runs" / "mine"
    (run / "checkpoints").mkdir(parents=True)
    (run / "model.zip").write_bytes(b"old")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: mine\noutput_dir: {tmp_path / 'runs'}\n")
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run (model.zip, checkpoints/)" in err[0] and "--overwrite" in err[0]
    assert (run / "model.zip").read_bytes() == b"old"


def test_restore_keeps_sixteen_bits_and_never_overwrites_its_input(tmp_path: Path, photo: np.ndarray,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from ir_env.imageio import read_image_with_depth

    src = write_image(tmp_path / "in16.png", photo[:64, :64], bits=16)
    run = ["--planner", "fixed", "--mode", "global", "--max-steps", "1"]
    assert main(["restore", str(src), "-o", str(tmp_path / "o16.png"), *run]) == 0
    assert read_image_with_depth(tmp_path / "o16.png")[1] == 16  # a 16-bit input gives a 16-bit PNG
    assert main(["restore", str(src), "-o", str(tmp_path / "o8.png"), "--bits", "8", *run]) == 0
    assert read_image_with_depth(tmp_path / "o8.png")[1] == 8
    capsys.readouterr()
    assert main(["restore", str(src), "-o", str(tmp_path / "o.jpg"), *run]) == 0
    assert "note: the input has 16-bit samples" in capsys.readouterr().err  # said, not silently dropped
    assert main(["restore", str(src), "-o", str(tmp_path / "x.jpg"), "--bits", "16", *run]) == 2
    assert "--bits 16 needs a .png or .tif" in capsys.readouterr().err
    before = src.read_bytes()
    assert main(["restore", str(src), "-o", str(src), *run]) == 2
    assert "is the input image" in capsys.readouterr().err and src.read_bytes() == before


def test_no_command_overwrites_its_inputs_or_its_own_outputs(tmp_path: Path, photo: np.ndarray,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--trace could replace the input photo or the clean reference with JSON, -o the reference, a hard link
    got past the input check, degrade replaced its own input, evaluate's --json and --markdown were one file."""
    import os

    src = write_image(tmp_path / "in.png", photo[:64, :64])
    ref = write_image(tmp_path / "ref.png", photo[:64, :64])
    os.link(src, tmp_path / "hard.png")
    before = {p: p.read_bytes() for p in (src, ref)}
    run = ["--planner", "fixed", "--mode", "global", "--max-steps", "1"]
    for extra, message in (
            (["-o", str(tmp_path / "o.png"), "--trace", str(src)], "--trace .*in.png is the input image"),
            (["-o", str(tmp_path / "o.png"), "--trace", str(tmp_path / "o.png")], "-o .* are the same file"),
            (["-o", str(ref), "--reference", str(ref)], "-o .*ref.png is the --reference image"),
            (["-o", str(tmp_path / "o.png"), "--reference", str(ref), "--trace", str(ref)], "--trace .*--reference"),
            (["-o", str(tmp_path / "hard.png")], "is the input image")):
        assert main(["restore", str(src), *extra, *run]) == 2
        assert re.search(message, capsys.readouterr().err), extra
    assert {p: p.read_bytes() for p in (src, ref)} == before
    out = tmp_path / "deg"
    out.mkdir()
    clean = write_image(out / "clean.png", photo)
    assert main(["degrade", str(clean), "--size", "64", "-o", str(out)]) == 2
    assert "clean.png is the input image" in capsys.readouterr().err and clean.read_bytes() == write_image(
        tmp_path / "again.png", photo).read_bytes()
    same = str(tmp_path / "same.txt")
    assert main(["evaluate", "--planners", "fixed", "--json", same, "--markdown", same]) == 2
    err = capsys.readouterr().err
    assert "--markdown" in err and "same file" in err
    photos = tmp_path / "photos"
    photos.mkdir()
    write_image(photos / "a.png", photo)
    assert main(["evaluate", "--images", str(photos), "--planners", "fixed", "--json", str(photos / "a.png")]) == 2
    assert "is a photo of --images" in capsys.readouterr().err


def test_bench_writes_env_and_tool_figures_in_one_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DESIGN: ``spatial-ir bench --json F`` gives env AND tool speed figures (the tool figures used to need
    ``--tools-json``). The env benchmark is replaced by a stub here (its own test runs it); the tool one is real."""
    from ir_env import cli

    bench_env, bench_tools = cli.experiments_module("bench_env"), cli.experiments_module("bench_tools")

    def env_main(argv: list[str]) -> dict:
        out = {"cpu_count": 2, "single": [], "vector": {}}
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps(out))
        return out

    real_run = bench_tools.run
    monkeypatch.setattr(bench_env, "main", env_main)
    monkeypatch.setattr(bench_tools, "run", lambda sizes, rep, seed, mx, names: real_run(
        sizes, rep, seed, mx, ["gamma_correct", "clahe"]))
    path, alone = tmp_path / "b.json", tmp_path / "t.json"
    assert cli.main(["bench", "--json", str(path), "--tool-sizes", "32", "--tools-json", str(alone)]) == 0
    both = json.loads(path.read_text())
    assert both["cpu_count"] == 2 and both["tools"]["sizes"] == [32]
    assert set(both["tools"]["tools"]) == {"gamma_correct", "clahe"}
    assert all(v["ms"]["32"] > 0 for v in both["tools"]["tools"].values())
    assert json.loads(alone.read_text())["tools"].keys() == both["tools"]["tools"].keys()
    command = f"spatial-ir bench --json {path} --tool-sizes 32 --tools-json {alone}"  # the argv given, not sys.argv
    assert both["command"] == json.loads(alone.read_text())["command"] == command
    assert cli.main(["bench", "--json", str(path), "--no-tools"]) == 0
    assert "tools" not in json.loads(path.read_text())
    assert json.loads(path.read_text())["command"] == f"spatial-ir bench --json {path} --no-tools"
    assert cli.main(["bench", "--json", str(path), "--tool-sizes", "8"]) == 2


def test_restore_with_a_reference_prints_the_psnr_gain_and_threads_are_set(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    from ir_env.quality import get_metric
    from ir_env.recipes import synthesize

    clean = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    scene = synthesize(clean, recipe="mixed-2", seed=1)
    write_image(tmp_path / "in.png", scene.degraded, bits=16)
    write_image(tmp_path / "clean.png", scene.clean, bits=16)
    import torch

    try:
        assert main(["--threads", "2", "restore", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"),
                     "--planner", "fixed", "--reference", str(tmp_path / "clean.png")]) == 0
        assert cv2.getNumThreads() == 2 and torch.get_num_threads() == 2
    finally:
        from ir_env.forksafe import set_threads

        set_threads(1)  # as conftest set it
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("PSNR against --reference")][0]
    before, after = (float(x) for x in re.findall(r"(-?\d+\.\d+) dB", line.replace("->", "dB"))[:2])
    psnr = get_metric("psnr")
    assert before == pytest.approx(psnr.score(read_image(tmp_path / "in.png"), read_image(tmp_path / "clean.png")),
                                   abs=0.01)
    assert after == pytest.approx(psnr.score(read_image(tmp_path / "out.png"), read_image(tmp_path / "clean.png")),
                                  abs=0.05)  # the output was written with 8 bits
    assert main(["--threads", "-1", "tools"]) == 2


def test_restore_defaults_to_perceive_and_caps_only_the_searches(tmp_path: Path, photo_file: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The default planner is the README's recommendation; --max-steps defaults to 6 for greedy / dfs only."""
    import policies.evaluation as evaluation

    trace = tmp_path / "t.json"
    assert main(["restore", str(photo_file), "-o", str(tmp_path / "r.png"), "--trace", str(trace)]) == 0
    assert json.loads(trace.read_text())["planner"] == "perceive"
    seen: dict[str, dict] = {}
    real = evaluation.parse_planner_spec

    def spy(spec: str, **kw):  # noqa: ANN003, ANN202
        seen[spec.split(":")[0]] = kw
        return real(spec, **kw)

    monkeypatch.setattr(evaluation, "parse_planner_spec", spy)
    for planner in ("greedy", "dfs", "perceive", "fixed", "distilled"):
        assert main(["restore", str(photo_file), "-o", str(tmp_path / "r.png"), "--planner", planner,
                     "--size", "32"]) == 0
    assert seen["greedy"]["max_steps"] == seen["dfs"]["max_steps"] == 6
    assert all("max_steps" not in seen[p] for p in ("perceive", "fixed", "distilled"))
    main(["restore", str(photo_file), "-o", str(tmp_path / "r.png"), "--planner", "perceive", "--max-steps", "2",
          "--size", "32"])
    assert seen["perceive"]["max_steps"] == 2


def test_restore_names_an_image_too_small_for_the_planner(tmp_path: Path, photo: np.ndarray,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "strip.png"
    write_image(src, np.ascontiguousarray(photo[:9, :64]))
    assert main(["restore", str(src), "-o", str(tmp_path / "o.png"), "--planner", "ppo"]) == 2
    assert f"{src} is 64x9 px; planner ppo needs at least 11 px a side" in capsys.readouterr().err
    assert main(["restore", str(src), "-o", str(tmp_path / "o.png"), "--planner", "fixed"]) == 0  # 8 px will do


@pytest.mark.parametrize(("mode", "channels", "notes"), [("L", 1, ["greyscale"]), ("LA", 4, ["alpha"]),
                                                          ("RGB", 3, []), ("RGBA", 4, ["alpha"])])
def test_restore_says_what_an_rgb_output_leaves_out(tmp_path: Path, photo: np.ndarray, mode: str, channels: int,
                                                    notes: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Grey input is written as RGB, transparency is dropped: said in a note (OpenCV reads grey + alpha as 4)."""
    from PIL import Image

    from ir_env.imageio import read_image_file

    rgb = Image.fromarray((np.ascontiguousarray(photo[:48, :48]) * 255).astype(np.uint8), "RGB")
    src = tmp_path / "in.png"
    rgb.convert(mode).save(src)
    assert read_image_file(src)[2] == channels
    assert main(["restore", str(src), "-o", str(tmp_path / "o.png"), "--planner", "fixed", "--max-steps", "1"]) == 0
    said = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note:")]
    assert len(said) == len(notes) and all(word in ln for word, ln in zip(notes, said, strict=True))
