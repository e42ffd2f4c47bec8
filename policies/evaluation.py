"""The comparison behind ``spatial-ir evaluate``: same images, same scenes, every planner.

Planner specs are ``name[:option...]`` with options ``spatial``/``global`` (mode), ``oracle`` (judge =
PSNR against the clean image: an upper bound), ``judge=METRIC`` and ``key=value`` planner options
(numbers parsed; ``a/b/c`` gives a tuple), e.g. ``greedy``, ``greedy:global``, ``dfs:oracle``, ``greedy:judge=piqe``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ir_env.corpus import center_crop
from ir_env.quality import get_metric, metric_info
from ir_env.recipes import get_recipe, synthesize
from policies.base import Planner
from policies.registry import list_planners, make_planner, planner_judges

#: Per-image / per-planner numeric keys of the evaluate JSON (:func:`evaluate`), plus extras.
ROW_KEYS = ("psnr_in", "psnr_out", "psnr_y_in", "psnr_y_out", "ssim_in", "ssim_out", "tool_calls",
            "iqa_calls", "seconds")
DEFAULT_JUDGE = "npsnr"  # the no-reference judge that makes search raise PSNR here (README, Results)


def _value(text: str) -> Any:
    """A spec value: int, float, a tuple of numbers written with slashes (``offsets=-0.5/0.5``), else the text
    itself (file paths such as ``table=runs/x/rule_table.json`` stay strings)."""
    if "/" in text:
        parts = tuple(_value(t) for t in text.split("/"))
        if parts and all(isinstance(p, (int, float)) for p in parts):
            return parts
        return text
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_planner_spec(spec: str, default_judge: str = DEFAULT_JUDGE, default_mode: str = "spatial",
                       **common: Any) -> tuple[Planner, bool]:
    """Build the planner a spec names; returns (planner, needs_reference)."""
    parts = [p for p in spec.strip().split(":") if p]
    if not parts:
        raise ValueError("empty planner spec")
    name, kw = parts[0], dict(common)
    kw.setdefault("mode", default_mode)
    judge, judged = default_judge, ""  # judged: the spec's own judge option, if any
    given: dict[str, str] = {}  # option name -> the option that set it: each may be given once
    for opt in parts[1:]:
        key = ("mode" if opt in ("spatial", "global") else "judge" if opt == "oracle"
               else opt.split("=", 1)[0] if "=" in opt else "")
        if key and key in given:
            note = " ('oracle' means judge=psnr with the clean image)" if key == "judge" else ""
            raise ValueError(f"planner spec {spec!r}: {key} is given twice ({given[key]!r} and {opt!r}){note}; give "
                             "each option once (the command line's --mode, --tile and --judge add one to --planner)")
        given[key] = opt
        if opt in ("spatial", "global"):
            kw["mode"] = opt
        elif opt == "oracle":
            judge, judged = "psnr", opt
        elif "=" in opt:
            k, v = opt.split("=", 1)
            if not k:
                raise ValueError(f"planner spec {spec!r}: option {opt!r} has no name (use key=value)")
            if k == "judge":
                judge, judged = v, opt
            elif k == "path":
                kw[k] = v  # a file path: never parsed as numbers (not even a bare number as a file name)
            else:
                kw[k] = _value(v)
        else:
            raise ValueError(f"planner spec {spec!r}: unknown option {opt!r} (use spatial, global, oracle, "
                             "judge=METRIC or key=value)")
    if judged and name in list_planners() and not planner_judges(name):
        from ir_env.quality import metric_info

        if judge not in ("", "none"):
            metric_info(judge)  # an unknown metric is named first
        raise ValueError(f"planner spec {spec!r}: {name!r} never judges a candidate, so {judged!r} would be ignored")
    if judged or planner_judges(name):  # the default judge goes only to planners that judge (no warning)
        kw["judge"] = judge
    planner = make_planner(name, **kw)
    if judged and not planner.uses_judge:
        raise ValueError(f"planner spec {spec!r}: {name!r} never judges a candidate, so {judged!r} would be ignored")
    needs_ref = bool(planner.judge is not None and planner.judge.needs_reference)
    return planner, needs_ref


def image_metrics(image: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """PSNR (RGB and Y channel, dB) and SSIM of ``image`` against ``clean``."""
    return {"psnr": get_metric("psnr").score(image, reference=clean),
            "psnr_y": get_metric("psnr_y").score(image, reference=clean),
            "ssim": get_metric("ssim").score(image, reference=clean)}


def evaluation_scene(photo: np.ndarray, index: int, recipe: str, seed: int, size: int) -> tuple[np.ndarray, Any]:
    """The ``index``-th evaluation scene of a run: ``photo`` centre-cropped to ``size`` px (0: as is) and
    degraded with ``recipe`` at scene seed ``seed * 100003 + index``. Returns ``(clean, scene)``; every script
    that compares planners on "the same scenes" builds them here."""
    clean = center_crop(photo, size) if size else photo
    return clean, synthesize(clean, recipe=recipe, seed=seed * 100003 + index)


def _evaluation_items(items: Any) -> list[tuple[str, np.ndarray]]:
    """``items`` as (name, photo) pairs: ``load_named_corpus`` gives pairs, ``load_corpus`` bare photos (named
    ``image000``, ``image001``, ... by position); ``ValueError`` for anything else or for no photo at all."""
    if isinstance(items, np.ndarray) and items.ndim == 3:
        raise ValueError("items must be a list of photos or (name, photo) pairs, got one photo: pass [photo]")
    try:
        items = list(items)
    except TypeError:
        raise ValueError(f"items must be a list of photos or (name, photo) pairs, got {type(items).__name__}") from None
    if not items:
        raise ValueError("no images to evaluate (items is empty)")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            out.append((f"image{i:03d}", item))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
            out.append((item[0], item[1]))
        else:
            raise ValueError(f"items[{i}] must be a photo (HxWx3 array) or a (name, photo) pair, got "
                             f"{type(item).__name__}")
    return out


def _evaluation_specs(planner_specs: Any) -> list[str]:
    """Planner specs as a list: a comma-separated string (as on the command line) is split; ``ValueError`` for no
    spec or one given twice (its rows would be merged into one summary)."""
    if isinstance(planner_specs, str):
        planner_specs = [s.strip() for s in planner_specs.split(",") if s.strip()]
    specs = list(planner_specs)
    if not specs or not all(isinstance(s, str) for s in specs):
        raise ValueError(f"planner_specs must be a non-empty list of planner specs, got {planner_specs!r}")
    twice = sorted({s for s in specs if specs.count(s) > 1})
    if twice:
        raise ValueError(f"planner spec(s) given twice: {', '.join(twice)}")
    return specs


def evaluate(items: Sequence[tuple[str, np.ndarray]] | Sequence[np.ndarray], recipe: str,
             planner_specs: Sequence[str] | str, seed: int = 0,
             size: int = 128, judge: str = DEFAULT_JUDGE, progress: bool = True,
             planner_kwargs: dict[str, Any] | None = None,
             on_result: Callable[[str, str, Any, Any], None] | None = None) -> dict[str, Any]:
    """Degrade each (name, clean photo) with ``recipe`` (scene seed = ``seed * 100003 + index``), restore
    with every planner, and return the evaluate JSON: ``{"recipe", "seed", "size", "images" (count),
    "planners": {spec: means of ROW_KEYS, psnr_gain, psnr_gain_std, mode, judge}, "rows": [{"image", "planner",
    ROW_KEYS ...}]}``; PSNR in dB (RGB and Y channel), SSIM in [0, 1], ``seconds`` wall time per image,
    ``tool_calls`` every tool run (including ones a search later undid).
    ``size`` > 0 centre-crops the photos to ``size`` px first. ``on_result(image_name, spec, scene,
    result)`` is called after every restoration (e.g. to keep the images). ``items`` may also be bare photos
    (``load_corpus``; named ``image000``, ... by position), ``planner_specs`` one comma-separated string.
    ``planner_kwargs`` go to every planner (``seed`` is this function's own argument)."""
    get_recipe(recipe)  # an unknown name is refused before the progress bar starts, like every input below
    items = _evaluation_items(items)
    specs = _evaluation_specs(planner_specs)
    for name, value in (("seed", seed), ("size", size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    smallest = metric_info("ssim").min_size  # every row reports SSIM
    if 0 < size < smallest:
        raise ValueError(f"size must be 0 (whole photos) or at least {smallest} px (SSIM is reported), got {size}")
    common = dict(planner_kwargs or {})
    for key in ("seed", "default_judge"):
        if key in common:
            raise ValueError(f"planner_kwargs must not set {key!r}: pass {'seed' if key == 'seed' else 'judge'}= "
                             "to evaluate itself")
    planners = [(spec, *parse_planner_spec(spec, default_judge=judge, seed=seed, **common)) for spec in specs]
    rows: list[dict[str, Any]] = []
    jobs = [(i, name, img) for i, (name, img) in enumerate(items)]
    bar = tqdm(total=len(jobs) * len(planners), desc=f"evaluate {recipe}", unit="run", disable=not progress)
    for i, name, photo in jobs:
        clean, scene = evaluation_scene(photo, i, recipe, seed, size)
        m_in = image_metrics(scene.degraded, clean)
        for spec, planner, needs_ref in planners:
            t0 = time.perf_counter()
            res = planner.restore(scene.degraded, reference=clean if needs_ref else None)
            seconds = time.perf_counter() - t0  # the planner alone, not the scoring below
            m_out = image_metrics(res.image, clean)
            row = {"image": name, "planner": spec, "psnr_in": m_in["psnr"], "psnr_out": m_out["psnr"],
                   "psnr_y_in": m_in["psnr_y"], "psnr_y_out": m_out["psnr_y"], "ssim_in": m_in["ssim"],
                   "ssim_out": m_out["ssim"], "tool_calls": res.tool_calls, "iqa_calls": res.iqa_calls,
                   "seconds": seconds, "steps": len(res.trace), "judge": res.judge or "none",
                   "budget_bound": res.info.get("budget_bound")}
            rows.append(row)
            if on_result is not None:
                on_result(name, spec, scene, res)
            bar.update(1)
    bar.close()
    summary: dict[str, Any] = {}
    for spec, planner, _ in planners:
        mine = [r for r in rows if r["planner"] == spec]
        s = {k: float(np.mean([r[k] for r in mine])) for k in ROW_KEYS}
        s["psnr_gain"] = s["psnr_out"] - s["psnr_in"]
        s["psnr_gain_std"] = float(np.std([r["psnr_out"] - r["psnr_in"] for r in mine]))
        s["mode"], s["judge"] = planner.mode, (planner.judge.label if planner.judge else "none")
        if planner.name == "dfs":
            s["budget_bound_rate"] = float(np.mean([(r["budget_bound"] or 0) > 0 for r in mine]))
        summary[spec] = s
    return {"recipe": recipe, "seed": seed, "size": size, "images": len(items), "planners": summary,
            "rows": rows}


def size_text(size: int) -> str:
    """How an evaluation's ``size`` reads: ``128 px`` (centre crops), or ``whole photos`` for 0."""
    return f"{int(size)} px" if int(size) else "whole photos"


def markdown_table(result: dict[str, Any]) -> str:
    """The per-planner means as a Markdown table."""
    lines = [f"Recipe `{result['recipe']}`, {result['images']} images, {size_text(result['size'])}, seed "
             f"{result['seed']}.",
             "", "| planner | mode | judge | PSNR in | PSNR out | gain (dB) | PSNR-Y in | PSNR-Y out | SSIM in "
             "| SSIM out | tool calls | IQA calls | seconds |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for spec, s in result["planners"].items():
        y_in = f"{s['psnr_y_in']:.2f}" if "psnr_y_in" in s else "-"  # results saved before it was summarised
        lines.append(f"| {spec} | {s['mode']} | {s['judge']} | {s['psnr_in']:.2f} | {s['psnr_out']:.2f} | "
                     f"{s['psnr_gain']:+.2f} ± {s['psnr_gain_std']:.2f} | {y_in} | {s['psnr_y_out']:.2f} | "
                     f"{s['ssim_in']:.3f} | {s['ssim_out']:.3f} | {s['tool_calls']:.1f} | {s['iqa_calls']:.1f} | "
                     f"{s['seconds']:.2f} |")
    dfs = {k: v["budget_bound_rate"] for k, v in result["planners"].items() if "budget_bound_rate" in v}
    if dfs:
        lines += ["", "dfs budget-binding rate (share of images where the per-region tool-call budget was hit): "
                  + ", ".join(f"{k}: {v:.0%}" for k, v in dfs.items())]
    return "\n".join(lines) + "\n"


def tidy_log_xaxis(ax: Any) -> None:
    """Log-scale x axis whose minor ticks carry no labels when two or more decade ticks lie inside the view
    (matplotlib otherwise writes 2x10^-1, 3x10^-1, ... over each other); on a view with one decade tick or none,
    ticks at 1, 2 and 5 times a power of ten, labelled as plain numbers (one label alone could not be read)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    if lo <= 0:
        return
    decades = int(np.floor(np.log10(hi)) - np.ceil(np.log10(lo))) + 1  # decade ticks inside the view
    if decades >= 2:
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:  # one decade tick or none would leave the axis unreadable: label 2x and 5x too, as plain numbers
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        ax.xaxis.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 5.0) if decades == 1 else (1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(plain)
        ax.xaxis.set_major_formatter(plain)


def plot_label(spec: str) -> str:
    """A planner spec shortened for a plot: a ``path=.../<folder>/<file>`` option becomes ``path=<folder>``."""
    parts = spec.split(":")
    return ":".join(f"path={Path(p[5:]).parent.name or p[5:]}" if p.startswith("path=") else p for p in parts)


def plot_quality_vs_cost(result: dict[str, Any], path: str | Path) -> Path:
    """PSNR gain against tool calls and against seconds, one point per planner; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from adjustText import adjust_text

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, key, label in ((axes[0], "tool_calls", "tool calls per image"), (axes[1], "seconds", "seconds per image")):
        xs, ys, texts = [], [], []
        cmap = plt.get_cmap("tab10" if len(result["planners"]) <= 10 else "tab20")  # no colour shared by two
        names: dict[tuple[float, float], list[str]] = {}  # planners on the same point share one label
        for i, (spec, s) in enumerate(result["planners"].items()):
            x, y = max(s[key], 1e-3), s["psnr_gain"]
            ax.scatter(x, y, s=40, color=cmap(i % cmap.N))
            names.setdefault((x, y), []).append(plot_label(spec))
        for (x, y), labels in names.items():
            xs.append(x)
            ys.append(y)
            texts.append(ax.text(x, y, " " + ", ".join(labels), fontsize=7, va="bottom"))
        tidy_log_xaxis(ax)
        ax.set_xlabel(label + " (log)")
        ax.set_ylabel("mean PSNR gain (dB)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
        ax.margins(x=0.12, y=0.1)
        # planners of similar cost and gain wrote their names over each other: move labels apart, with a thin
        # line back to the point when one had to go far (an iteration limit: the default time limit is not
        # reproducible)
        adjust_text(texts, x=xs, y=ys, ax=ax, expand=(1.1, 1.4), iter_lim=400,
                    arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5})
    fig.suptitle(f"{result['recipe']}: quality vs cost ({result['images']} images, {size_text(result['size'])})")
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def write_outputs(result: dict[str, Any], json_path: str | None = None, markdown: str | None = None,
                  plot: str | None = None) -> None:
    """Write the JSON, Markdown and plot files that were asked for."""
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2, default=float))
    if markdown:
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown).write_text(markdown_table(result))
    if plot:
        plot_quality_vs_cost(result, plot)
