"""The ``spatial-ir`` command line (also ``python -m ir_env``).

Each sub-command lives in a small function; heavy imports happen inside them so ``--help`` is fast.
Errors in user input exit with status 2 and one line ``error: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ir_env.paths import check_takes_files, check_writable, nearest_existing

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _command(name: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return deco


@_command("tools")
def cmd_tools(args: argparse.Namespace) -> int:
    """Print the toolbox (or its JSON)."""
    from restorers import FAMILIES, list_tools

    tools = list_tools()
    if args.json:
        print(json.dumps({"families": list(FAMILIES), "tools": [t.as_dict() for t in tools]}, indent=2))
        return 0
    print(f"{len(tools)} tools, families: {', '.join(sorted({t.family for t in tools}))}")
    for t in tools:
        print(f"\n{t.name}  [{t.family}; targets {', '.join(t.targets) or '-'}; cost {t.cost:g}]")
        if t.description:
            print(f"  {t.description}")
        for p in t.params:
            scale = (", log" if p.log else "") + (", rounded to a whole number" if p.integer else "")
            print(f"  - {p.name}: {p.low:g} .. {p.high:g} {p.unit} (default {p.default:g}{scale})")
    return 0


@_command("degrade")
def cmd_degrade(args: argparse.Namespace) -> int:
    """Degrade one image file with a recipe; write degraded/clean/masks PNGs and scene.json."""
    from ir_env.corpus import center_crop
    from ir_env.imageio import read_image, write_image
    from ir_env.recipes import synthesize
    from ir_env.visualize import overlay_masks

    out = check_output_dir(args.output)
    written = ("degraded.png", "clean.png", "masks.png", "overlay.png", "scene.json")
    check_distinct_paths([(f"-o {out}'s {name}", out / name) for name in written],
                         [(f"the input image ({args.image})", args.image)])
    clean = read_image(args.image)
    if args.size:
        clean = center_crop(clean, args.size)
    scene = synthesize(clean, recipe=args.recipe, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / "degraded.png", scene.degraded)
    write_image(out / "clean.png", scene.clean)
    texts = ["+".join(kind for kind, _ in labels) for labels in scene.labels]
    # the ground-truth regions as data: one 8-bit grey PNG whose pixel value is the region's index (the masks
    # partition the image), and a picture of them for people
    import cv2
    import numpy as np

    index = np.argmax(scene.masks, axis=0).astype(np.uint8)
    if not cv2.imwrite(str(out / "masks.png"), index):
        raise ValueError(f"cannot write {out / 'masks.png'}")
    write_image(out / "overlay.png", overlay_masks(scene.degraded, scene.masks, texts=texts))
    info = scene.to_json()
    info["source"] = str(args.image)
    info["masks_png"] = ("8-bit grey, pixel value = region index (regions[k] is masks.png == k); overlay.png draws "
                         "them on degraded.png")
    (out / "scene.json").write_text(json.dumps(info, indent=2))
    print(f"wrote {out}/degraded.png, clean.png, masks.png (region index per pixel), overlay.png, scene.json "
          f"({scene.num_regions} region{'s' if scene.num_regions != 1 else ''})")
    return 0


def check_output_file(path: str | Path, image: bool = False, plot: bool = False) -> Path:
    """An output file path, checked before any work: not an existing directory, no parent that is a file, a
    folder that exists (it is created now) and is writable, and an extension the image writer (``image``) or
    matplotlib (``plot``) knows. ``ValueError`` naming the output and the problem otherwise."""
    import os

    from ir_env.imageio import IMAGE_EXTENSIONS

    p = check_writable(path, "output")
    if image and p.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"output {p}: unknown image extension {p.suffix!r}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    if plot:
        from matplotlib.backend_bases import FigureCanvasBase

        kinds = sorted(FigureCanvasBase.get_supported_filetypes())
        if p.suffix.lower().lstrip(".") not in kinds:
            raise ValueError(f"plot {p}: unknown plot extension {p.suffix!r}; use one of "
                             f"{', '.join('.' + k for k in kinds)}")
    folder = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot write {p}: cannot create its folder {folder} ({e.strerror or e})") from None
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write {p}: its folder {folder} is not writable")
    check_takes_files(folder, f"cannot write {p}: its folder {folder}")
    return p


def check_output_dir(path: str | Path) -> Path:
    """An output directory path, checked before any work: not empty, not an existing file (nor below one), and its
    nearest existing folder writable (tried with a real file: ``os.access`` says yes to root everywhere, /proc
    included). Nothing is left behind."""
    if str(path).strip() == "":
        raise ValueError("the output directory must not be empty (give -o DIR)")
    p = check_writable(path, "into", folder=True, writable=True)
    near = nearest_existing(p)
    check_takes_files(near, f"cannot write into {p}: the folder {near}")
    return p


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether paths ``a`` and ``b`` name one file: the same inode when both exist (hard and symbolic links too),
    else the same resolved path."""
    import os

    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def check_distinct_paths(outputs: Sequence[tuple[str, str | Path | None]],
                         inputs: Sequence[tuple[str, str | Path | None]] = ()) -> None:
    """``ValueError`` before any work when an output would overwrite an input or another output of the same
    command (``outputs`` / ``inputs``: (what the user called it, path or None))."""
    for i, (name, path) in enumerate(outputs):
        if not path:
            continue
        for other, src in inputs:
            if src and same_file(path, src):
                raise ValueError(f"{name} {path} is {other}: writing it would overwrite that file; write elsewhere")
        for other, dst in outputs[:i]:
            if dst and same_file(path, dst):
                raise ValueError(f"{name} {path} and {other} {dst} are the same file: give each its own path")


def check_image_limits(args: argparse.Namespace) -> None:
    """``--max-images`` and ``--size`` (demo, evaluate) must be >= 0 (0: all images / whole photos)."""
    if args.max_images < 0 or args.size < 0:
        raise ValueError(f"--max-images and --size must be >= 0, got {args.max_images} and {args.size}")


@_command("demo")
def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the built-in photos (see ir_env.demo)."""
    from ir_env.demo import run_demo

    check_image_limits(args)
    run_demo(output=check_output_dir(args.output), recipe=args.recipe, size=args.size, seed=args.seed,
             max_images=args.max_images)
    return 0


@_command("restore")
def cmd_restore(args: argparse.Namespace) -> int:
    """Restore one image file with a planner; optionally write the trace JSON."""
    from ir_env.corpus import center_crop
    from ir_env.imageio import SIXTEEN_BIT_EXTENSIONS, read_image, read_image_file, write_image
    from policies.evaluation import parse_planner_spec

    out_path = check_output_file(args.output, image=True)
    check_distinct_paths([("-o", args.output), ("--trace", args.trace)],
                         [(f"the input image ({args.image})", args.image),
                          (f"the --reference image ({args.reference})", args.reference)])
    img, depth, channels = read_image_file(args.image)
    wide = out_path.suffix.lower() in SIXTEEN_BIT_EXTENSIONS
    bits = args.bits if args.bits is not None else (16 if depth > 8 and wide else 8)
    if bits == 16 and not wide:
        raise ValueError(f"--bits 16 needs a {' or '.join(SIXTEEN_BIT_EXTENSIONS)} output, got {args.output}")
    ref = None
    if args.reference:
        ref = read_image(args.reference)
        if ref.shape != img.shape:  # checked before --size crops both, which would hide the mismatch
            raise ValueError(f"--reference {args.reference} is {ref.shape[1]}x{ref.shape[0]} px, the image "
                             f"{img.shape[1]}x{img.shape[0]}: the clean reference must be the same picture")
    if args.size:
        img = center_crop(img, args.size)
        ref = center_crop(ref, args.size) if ref is not None else None
    spec = (args.planner + (f":{args.mode}" if args.mode else "")
            + (f":tile={args.tile}" if args.tile is not None else ""))
    if args.trace:
        check_output_file(args.trace)
    steps = args.max_steps
    if steps is None and spec.split(":", 1)[0].strip() in CAPPED_SEARCHES:  # the others keep their own budget
        steps = DEFAULT_CLI_STEPS
    if args.judge is not None:  # given explicitly: as the spec's judge= option, refused where it would be ignored
        spec += f":judge={args.judge}"
    planner, needs_ref = parse_planner_spec(spec, default_judge=args.judge or DEFAULT_CLI_JUDGE, seed=args.seed,
                                            **({} if steps is None else {"max_steps": steps}))
    if needs_ref and ref is None:
        judge = planner.judge.metric if planner.judge is not None else (args.judge or DEFAULT_CLI_JUDGE)
        raise ValueError(f"judge {judge!r} is full-reference: pass --reference CLEAN_IMAGE")
    if min(img.shape[:2]) < planner.min_side:  # named here with the file and --size, which the planner cannot know
        raise ValueError(f"{args.image} is {img.shape[1]}x{img.shape[0]} px"
                         + (f" after --size {args.size}" if args.size else "")
                         + f"; planner {args.planner} needs at least {planner.min_side} px a side")
    from tqdm import tqdm

    from policies.base import show_progress

    # tool calls as they run (a search tries hundreds per step) and the tile being planned; shown on a terminal only
    with tqdm(desc=f"restoring {img.shape[1]}x{img.shape[0]} px with {args.planner}", unit=" tool calls",
              file=sys.stderr, disable=None, leave=False) as bar:
        show_progress(planner, bar)
        try:
            res = planner.restore(img, reference=ref)
        finally:
            show_progress(planner, None)
    write_image(args.output, res.image, bits=bits)
    if depth > 8 and bits == 8:
        print(f"note: the input has {depth}-bit samples, {args.output} was written with 8 (--bits 16 with a "
              f"{' or '.join(SIXTEEN_BIT_EXTENSIONS)} output keeps 16)", file=sys.stderr)
    if channels in (1, 2):
        print(f"note: the input is greyscale; {args.output} was written as RGB (three equal channels where the "
              "planner kept them equal)", file=sys.stderr)
    if channels in (2, 4):
        print(f"note: the input has an alpha channel; {args.output} was written without it (the colour restored "
              "as stored, transparency dropped)", file=sys.stderr)
    if args.trace:
        Path(args.trace).parent.mkdir(parents=True, exist_ok=True)
        Path(args.trace).write_text(json.dumps(res.to_json(), indent=2, default=float))
    print(f"{args.planner} ({planner.mode}, judge {res.judge or 'none'}): {len(res.trace)} steps, "
          f"{res.tool_calls} tool calls, {res.iqa_calls} IQA calls, {res.seconds:.2f} s -> {args.output}")
    if ref is not None:  # the clean image is known: say what the restoration gained
        from ir_env.quality import get_metric

        psnr = get_metric("psnr")
        before, after = psnr.score(img, ref), psnr.score(res.image, ref)
        print(f"PSNR against --reference: {before:.2f} -> {after:.2f} dB ({after - before:+.2f} dB)")
    from restorers import get_tool

    for st in res.trace:
        print(f"  region {st.region} ({st.region_area:.0%}): {st.tool}({get_tool(st.tool).format_params(st.params)})")
    for v in res.info.get("gate", {}).get("vetoed", []):  # steps the perception gate dropped (policies/gate.py)
        where = f" (tile {v['tile']})" if "tile" in v else ""
        print(f"  gate dropped {v['tool']} on region {v['region']}{where}: the encoder sees {v['family']} there "
              f"with probability {v['prob']:.3f}, below the gate's threshold {v['threshold']:.3f}")
    return 0


@_command("evaluate")
def cmd_evaluate(args: argparse.Namespace) -> int:
    """Compare planners on the same degraded images; write JSON / Markdown / plot."""
    from ir_env.corpus import load_named_corpus
    from policies.evaluation import evaluate, markdown_table, write_outputs

    check_image_limits(args)
    specs = [s.strip() for s in args.planners.split(",") if s.strip()]
    if not specs:
        raise ValueError("--planners names no planner")
    dup = sorted({s for s in specs if specs.count(s) > 1})
    if dup:
        raise ValueError(f"--planners names {', '.join(dup)} more than once")
    if args.judge is not None:  # an unknown metric is an error even when no listed planner judges
        from ir_env.quality import metric_info

        metric_info(args.judge)
    for path in (args.json, args.markdown):
        if path:
            check_output_file(path)
    if args.plot:
        check_output_file(args.plot, plot=True)
    outputs = [("--json", args.json), ("--markdown", args.markdown), ("--plot", args.plot)]
    check_distinct_paths(outputs)
    folder = Path(args.images)
    if folder.is_dir():  # a photo of the corpus must not be overwritten by a result
        from ir_env.imageio import IMAGE_EXTENSIONS

        for name, path in outputs:
            if path and Path(path).is_file() and Path(path).suffix.lower() in IMAGE_EXTENSIONS and \
                    folder.resolve() in Path(path).resolve().parents:
                raise ValueError(f"{name} {path} is a photo of --images {args.images}: writing it would overwrite "
                                 "that photo; write elsewhere")
    split = "test" if args.images == "builtin" else "all"
    items = load_named_corpus(args.images, split=split, limit=args.max_images or None)  # decodes no more than used
    result = evaluate(items, args.recipe, specs, seed=args.seed, size=args.size, judge=args.judge)
    print(markdown_table(result))
    write_outputs(result, args.json, args.markdown, args.plot)
    written = [p for p in (args.json, args.markdown, args.plot) if p]
    if written:
        print("wrote " + ", ".join(written))
    return 0


@_command("train")
def cmd_train(args: argparse.Namespace) -> int:
    """Train a PPO planner from a YAML config (policies/ppo/train.py)."""
    from policies.ppo.train import train_from_config

    for flag, value in (("--total-timesteps", args.total_timesteps), ("--n-envs", args.n_envs)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if args.output_dir is not None and not args.output_dir.strip():
        raise ValueError("--output-dir is empty; give a folder (the config's output_dir is used without the flag)")
    run_dir = train_from_config(args.config, total_timesteps=args.total_timesteps, n_envs=args.n_envs,
                                resume=args.resume or None, output_dir=args.output_dir,
                                progress_bar=False if args.no_progress else None, overwrite=args.overwrite)
    files = [f for f in ("model.zip", "best_model.zip", "config.yml") if (run_dir / f).exists()]
    print(f"wrote {', '.join(f'{run_dir}/{f}' for f in files)}; TensorBoard: tensorboard --logdir {run_dir}")
    return 0


@_command("bench")
def cmd_bench(args: argparse.Namespace) -> int:
    """Env and tool speed figures (experiments/bench_env.py, experiments/bench_tools.py) in one JSON: the env's
    keys, and under ``tools`` the tool benchmark at ``--tool-sizes`` (unless ``--no-tools``)."""
    bench_env = experiments_module("bench_env")

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if (not args.no_tools or args.tools_json) and (not args.tool_sizes or min(args.tool_sizes) < 16):
        raise ValueError(f"--tool-sizes must be >= 16 px, got {args.tool_sizes}")
    check_output_file(args.json)
    if args.tools_json:
        check_output_file(args.tools_json)
    out = bench_env.main(["--json", args.json, "--steps", str(args.steps)])
    out["command"] = "spatial-ir " + " ".join(args.argv)
    Path(args.json).write_text(json.dumps(out, indent=2))
    if args.no_tools and not args.tools_json:
        return 0
    bench_tools = experiments_module("bench_tools")
    tools = bench_tools.run(args.tool_sizes, 1, 0, 5.0, None)
    print()
    bench_tools.print_table(tools)
    if not args.no_tools:
        Path(args.json).write_text(json.dumps({**out, "tools": tools}, indent=2))
        print(f"wrote {args.json} (env figures; tool figures under 'tools')")
    if args.tools_json:
        Path(args.tools_json).write_text(json.dumps({**tools, "command": out["command"]}, indent=2) + "\n")
        print(f"wrote {args.tools_json}")
    return 0


@_command("encoder-eval")
def cmd_encoder_eval(args: argparse.Namespace) -> int:
    """Learned encoder vs hand-made probe: per-family P/R/F1, severity MAE, proposers' mIoU."""
    experiments_module("eval_encoder").run_from_args(args)
    return 0


def seed_int(text: str) -> int:
    """argparse type of ``--seed``: an integer >= 0 (numpy's generators take no negative seeds)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one ``error:`` line (with where to find help) instead of the usage
    block, as every other error of the command line is."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``<prog>: error: <message> (see <prog> --help)`` and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    from ir_env.recipes import list_recipes
    p = OneLineParser(prog="spatial-ir", description="Spatially aware image restoration planning.")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for torch and OpenCV in this process (default: OMP_NUM_THREADS when it is set, "
                        "else 1: on the small images and nets here more threads contend; demo ran 6x slower with the "
                        "libraries' default on a busy 2-core machine); 0 = the libraries' default")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    s = sub.add_parser("tools", help="list the restoration tools and their parameter ranges")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")

    s = sub.add_parser("degrade", help="degrade one image with a recipe; writes 5 files to -o DIR")
    s.add_argument("image", help="input image file (PNG/JPEG/BMP/TIFF, greyscale ok)")
    s.add_argument("--recipe", default="spatial-mixed", help="degradation recipe (default spatial-mixed; one of "
                   f"{', '.join(list_recipes())})")
    s.add_argument("--seed", type=seed_int, default=0, help="random seed (same seed, same scene)")
    s.add_argument("--size", type=int, default=0,
                   help="centre-crop to this many px first (0: full image; a smaller image is upscaled to cover it)")
    s.add_argument("-o", "--output", required=True, help="output directory")

    s = sub.add_parser("demo", help="degrade the built-in photos, restore them, print a table, write PNGs")
    s.add_argument("-o", "--output", default="demo_out", help="output directory (default demo_out)")
    s.add_argument("--recipe", default="spatial-mixed", help="degradation recipe (default spatial-mixed; one of "
                   f"{', '.join(list_recipes())})")
    s.add_argument("--size", type=int, default=128, help="centre-crop size in px (default 128)")
    s.add_argument("--seed", type=seed_int, default=0, help="seed of the scenes and planners (default 0)")
    s.add_argument("--max-images", type=int, default=0, help="limit the number of images (0: all test images)")
    s = sub.add_parser("restore", help="restore one image file with a planner")
    s.add_argument("image", help="degraded image file")
    s.add_argument("-o", "--output", required=True, help="output image file (PNG recommended; not the input file)")
    s.add_argument("--bits", type=int, choices=[8, 16], default=None, help="bits per sample of the output (16: .png "
                   "or .tif); default: 16 when the input has more than 8 and the format holds them, else 8")
    s.add_argument("--planner", default="perceive", help="planner spec name[:key=value...]: random, fixed, greedy, "
                   "dfs, perceive, perceive:regions=families, ppo, distilled, ... (default perceive: the best without "
                   "the clean image on the built-in test photos, no IQA call; about 1 s for a 451x300 photo, 9 s "
                   "for 1500x1000 on 2 cores)")
    s.add_argument("--mode", choices=["spatial", "global"], default="", help="default: spatial")
    s.add_argument("--tile", type=int, default=None, help="plan tile by tile on tiles of about this many px (>= 32; "
                   "0: off); for photos much larger than the planner's training crops (policies/tiled.py). Default: "
                   "the planner's own (the shipped ppo and perceive: 128 px, the crops they were fitted on; "
                   "the others: off)")
    s.add_argument("--judge", default=None, help="IQA judge of the search planners (default npsnr): npsnr (learned), "
                   "niqe, piqe, brisque (no-reference) or psnr/ssim (needs --reference: an oracle upper bound); "
                   "refused for a planner that never judges")
    s.add_argument("--reference", default="", help="clean image for a full-reference judge")
    s.add_argument("--trace", default="", help="write the schedule (trace) as JSON here")
    s.add_argument("--size", type=int, default=0,
                   help="centre-crop to this many px first (0: full image; a smaller image is upscaled to cover it)")
    s.add_argument("--max-steps", type=int, default=None,
                   help=f"at most this many kept steps (default: {DEFAULT_CLI_STEPS} for the searches greedy and dfs, "
                        "whose cost grows with it; every other planner its own budget, as in Python: 12, the trained "
                        "budget for ppo / distilled, the whole pipeline for fixed; a tiling planner counts them per "
                        "tile, each tile being planned as an image of its own)")
    s.add_argument("--seed", type=seed_int, default=0, help="seed of the planner's random choices (default 0)")

    s = sub.add_parser("evaluate", help="compare planners on degraded images (JSON, Markdown, plot)")
    s.add_argument("--images", default="builtin", help="folder of images, 'builtin' (its test split) or 'holdout' "
                   "(4 test-only photos nothing is selected on)")
    s.add_argument("--recipe", default="spatial-mixed", help="degradation recipe (default spatial-mixed; one of "
                   f"{', '.join(list_recipes())})")
    s.add_argument("--planners", default="random,fixed,greedy,dfs",
                   help="comma-separated specs name[:global|spatial][:oracle][:judge=M][:key=value], e.g. "
                   "perceive:regions=families, ppo:gate=off (no perception gate), perceive:tile=128")
    s.add_argument("--judge", default="npsnr", help="default judge for search planners (npsnr, niqe, piqe, brisque)")
    s.add_argument("--seed", type=seed_int, default=0, help="seed of the scenes and planners (default 0)")
    s.add_argument("--max-images", type=int, default=0, help="limit the number of images (default 0: all)")
    s.add_argument("--size", type=int, default=128, help="centre-crop size in px (0: full images)")
    s.add_argument("--json", default="", help="write the results JSON here")
    s.add_argument("--markdown", default="", help="write the Markdown table here")
    s.add_argument("--plot", default="", help="write the quality-vs-cost plot (PNG) here")

    s = sub.add_parser("train", help="train a PPO planner from a YAML config (TensorBoard logs under runs/)")
    s.add_argument("--config", required=True, help="training YAML, e.g. experiments/configs/ppo_spatial.yaml")
    s.add_argument("--total-timesteps", type=int, default=None, help="override the config's total_timesteps "
                   "(SB3 rounds it up to whole rollouts of ppo.n_steps x n_envs; with --resume: the total, counting "
                   "the checkpoint's steps)")
    s.add_argument("--n-envs", type=int, default=None, help="override the config's n_envs (parallel env workers)")
    s.add_argument("--resume", default="", help="continue from this checkpoint .zip, in the run folder it belongs to "
                   "(unless --output-dir is given); its eval history and best model are kept")
    s.add_argument("--output-dir", default=None, help="override the config's output_dir (default runs)")
    s.add_argument("--overwrite", action="store_true", help="replace a run already in the run folder (its model, "
                   "checkpoints, eval history and logs are removed first); without it such a folder is refused")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")

    s = sub.add_parser("bench", help="env speed figures (steps/s, reset time, overhead share, 2-worker scaling) "
                       "and tool speed figures (milliseconds per call, masked / full-image time)")
    s.add_argument("--json", default="bench.json", help="output JSON path (default bench.json); the tool figures "
                   "are under its 'tools' key")
    s.add_argument("--steps", type=int, default=60, help="env steps per measurement (default 60)")
    s.add_argument("--tool-sizes", type=int, nargs="+", default=[128], metavar="PX",
                   help="image sizes of the tool benchmark (default 128; one timed repeat each, ~20 s at 128 px)")
    s.add_argument("--no-tools", action="store_true", help="env figures only")
    s.add_argument("--tools-json", default="", help="also write the tool figures to this JSON on their own "
                   "(experiments/bench_tools.py's format, one timed repeat at --tool-sizes; the committed "
                   "bench_tools.json is made by python -m experiments.bench_tools, 3 repeats at 128/256/512 px)")

    s = sub.add_parser("encoder-eval", help="score the learned degradation encoder against the hand-made probe")
    try:
        experiments_module("eval_encoder").add_arguments(s)
    except ValueError:  # another 'experiments' package shadows ours: the other commands still work, this one says why
        s.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def experiments_module(name: str) -> Any:
    """spatial-ir's ``experiments.<name>`` script module; ``ValueError`` naming the other package when a different
    top-level ``experiments`` package (say, the user's own, found first on ``sys.path`` from the current
    directory under ``python -m ir_env``) shadows the one shipped beside ``ir_env``."""
    import importlib

    ours = (Path(__file__).resolve().parent.parent / "experiments").resolve()
    try:
        package = importlib.import_module("experiments")
    except ImportError:
        package = None
    where = Path(getattr(package, "__file__", None) or "?").resolve().parent
    if package is None or where != ours:
        raise ValueError(f"another 'experiments' package ({where}) shadows spatial-ir's scripts in {ours}: "
                         "run from a directory that does not hold one, or use the spatial-ir command")
    return importlib.import_module(f"experiments.{name}")


def cv2_error() -> type[Exception]:
    """OpenCV's exception class (an image that cannot be encoded, ...), imported only when needed."""
    import cv2

    return cv2.error


#: ``spatial-ir restore``'s judge for the search planners when ``--judge`` is not given.
DEFAULT_CLI_JUDGE = "npsnr"
#: ``spatial-ir restore``'s step budget for the searches (:data:`CAPPED_SEARCHES`) when ``--max-steps`` is not given.
DEFAULT_CLI_STEPS = 6
#: Planners ``restore`` caps at :data:`DEFAULT_CLI_STEPS` by default: searches, whose tool and IQA calls grow with
#: the budget (hundreds per step); every other planner keeps its Python default.
CAPPED_SEARCHES = ("greedy", "dfs")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spatial-ir`` console script; returns the exit status."""
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command line as given (bench records it)
    start = "\n" if sys.stderr.isatty() else ""  # a progress bar may hold the terminal's current line
    if args.threads is not None and args.threads < 0:
        print(f"{start}error: --threads must be >= 0, got {args.threads}", file=sys.stderr)
        return 2
    import os

    threads = args.threads if args.threads is not None else (0 if os.environ.get("OMP_NUM_THREADS") else 1)
    if threads:  # 0: the libraries' default (or the exported OMP_NUM_THREADS) is left alone
        from ir_env.forksafe import set_threads

        set_threads(threads)

    def one_line_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        print(f"{start}warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = one_line_warning  # e.g. "skipping unreadable image ...", without a source line
        try:
            return COMMANDS[args.command](args)
        except BrokenPipeError:  # the reader went away (`spatial-ir tools | head`): stop quietly
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            return 0
        except (ValueError, OSError, KeyError, RuntimeError, cv2_error()) as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"{start}error: {msg}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{start}error: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    raise SystemExit(main())
