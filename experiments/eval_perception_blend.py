"""Score a blend of the linear heads' and the context head's family probabilities (a perception candidate).

Both heads are calibrated (probability 0.5 at each family's best-F1 threshold on their validation scenes). The
blend is ``(1 - w) * p_linear + w * p_context`` with ``w`` = ``blend``, its per-family thresholds re-calibrated
(best F1 on the grid of ``experiments.train_encoder.best_thresholds``) on the ``calibration`` scenes: the
validation scenes of the context head's config (train photos, seed stream 2, its ``clean_split``). Then the
linear heads, the context head and the blend are scored with the same region-level protocol as
``experiments/select_encoder.py`` (``validation``: scenes of the train photos) and ``experiments/eval_encoder.py``
(``test``: the built-in test photos and the holdout photos, oracle masks; also the share of the regions of the
UNDEGRADED crops flagged per family, and the scene bootstrap standard error of the macro-F1).

    python -m experiments.eval_perception_blend --config experiments/configs/perception_blend.yaml [--ship]

``--ship`` (only when the config's rule passed): writes the blend (weight, thresholds) into the context head's
JSON (``ir_env.encoder.learned.blend_of`` reads it) and copies that weights directory beside the shipped
encoder, which must be the one the context head was fitted on; ``--ship-dir DIR`` copies it to ``DIR`` instead
(a complete weights directory for candidates: ``LearnedEmbedder(DIR)``, ``encoder: DIR`` in rule-table configs).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from ir_env.encoder.metrics import family_metrics, macro_f1_bootstrap  # noqa: E402
from restorers.spec import FAMILIES  # noqa: E402

#: The perceptions scored, in table order.
NAMES = ("linear heads", "context head", "blend")


def dataset_regions(embedders: list[Any], data: dict[str, np.ndarray]) -> tuple[list[np.ndarray], np.ndarray,
                                                                                np.ndarray]:
    """Per embedder, the (N, F) ``predict`` probabilities of every non-empty region of ``data``
    (``train_encoder.make_dataset`` scenes), and the regions' (N, F) true families and severities."""
    probs: list[list[np.ndarray]] = [[] for _ in embedders]
    fams, sevs = [], []
    for i in range(len(data["x"])):
        img = np.ascontiguousarray(data["x"][i].astype(np.float32).transpose(1, 2, 0))
        masks = data["rmap"][i][None] == np.arange(int(data["nreg"][i]))[:, None, None]
        keep = masks.reshape(len(masks), -1).any(1)
        for k, e in enumerate(embedders):
            probs[k].append(e.predict(img, masks[keep])["family_prob"])
        fams.append(data["fam"][i, : len(masks)][keep])
        sevs.append(data["sev"][i, : len(masks)][keep])
    return [np.concatenate(p) for p in probs], np.concatenate(fams), np.concatenate(sevs)


def _scores(prob: np.ndarray, fam: np.ndarray, sev: np.ndarray) -> dict[str, Any]:
    m = family_metrics(prob, np.zeros_like(prob), fam, sev)
    return {"macro_f1": m["macro_f1"], "f1": {f: v["f1"] for f, v in m["families"].items()}}


def run(cfg: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Everything in the module docstring; returns the JSON-ready result."""
    from experiments.configio import read_config
    from experiments.eval_encoder import build_scenes, embed_all, region_scene_ids, region_targets_of
    from experiments.train_encoder import best_thresholds, make_dataset, split_clean
    from ir_env.encoder.learned import LearnedEmbedder, blend_probabilities

    w = float(cfg["blend"])
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"blend must lie in [0, 1], got {w}")
    lin = LearnedEmbedder(cfg["weights"], context=False)
    ctx = LearnedEmbedder(cfg["context"])
    if ctx.context is None:
        raise ValueError(f"{cfg['context']} holds no context head (fit it with experiments.fit_context_head)")
    pair = [lin, ctx]
    ccfg = read_config(cfg["calibration"]["config"])
    dcfg = {"seed": int(ccfg["seed"]), "data": {**ccfg["data"], "workers": 1}}
    cal = split_clean(make_dataset(dcfg, int(ccfg["data"]["val_scenes"]), 2, "calibration scenes"),
                      float(ccfg["data"].get("clean_split", 0.0)), [int(ccfg["seed"]), 2])
    (pl, pc), fam, _ = dataset_regions(pair, cal)
    thresholds, _ = best_thresholds((1.0 - w) * pl + w * pc, fam.astype(bool))
    out: dict[str, Any] = {"config": cfg, "thresholds": {f: float(t) for f, t in zip(FAMILIES, thresholds,
                                                                                     strict=True)},
                           "calibration_regions": int(len(fam))}

    def three(pl: np.ndarray, pc: np.ndarray) -> list[np.ndarray]:
        return [pl, pc, blend_probabilities(pl, pc, w, thresholds)]

    v = cfg["validation"]
    vcfg = copy.deepcopy(lin.enc.info["config"])
    vcfg["seed"], vcfg["data"]["workers"] = int(v["seed"]), 1
    val = make_dataset(vcfg, int(v["scenes"]), 2, "common validation scenes")
    (pl, pc), fam, sev = dataset_regions(pair, val)
    out["validation"] = {"regions": int(len(fam)),
                         **{n: _scores(p, fam, sev) for n, p in zip(NAMES, three(pl, pc), strict=True)}}
    t = cfg["test"]
    for images in ("builtin", "holdout"):
        scenes = build_scenes(images, t["recipe"], int(t["crops"]), int(t["size"]), int(t["seed"]))
        fam, sev = region_targets_of(scenes)
        groups = region_scene_ids(scenes)
        res: dict[str, Any] = {"regions": int(len(fam))}
        degraded = [embed_all(lambda im, m, e=e: e.predict(im, m)["family_prob"], scenes) for e in pair]
        clean_scenes = [{"scene": replace(it["scene"], degraded=it["scene"].clean)} for it in scenes]
        clean = [embed_all(lambda im, m, e=e: e.predict(im, m)["family_prob"], clean_scenes) for e in pair]
        for n, p, q in zip(NAMES, three(*degraded), three(*clean), strict=True):
            res[n] = {**_scores(p, fam, sev), "bootstrap": macro_f1_bootstrap(p, fam, groups),
                      "clean_flag_rate": {f: float((q[:, j] >= 0.5).mean()) for j, f in enumerate(FAMILIES)}}
        out[images] = res
    lin_flags = out["builtin"]["linear heads"]["clean_flag_rate"]
    b = out["builtin"]["blend"]
    out["rule"] = {
        "a_validation_gain": out["validation"]["blend"]["macro_f1"] - out["validation"]["linear heads"]["macro_f1"],
        "b_test_macro_f1": b["macro_f1"],
        "c_clean_haze_blur": [b["clean_flag_rate"]["haze"], b["clean_flag_rate"]["blur"]],
        "c_limits": [lin_flags["haze"] + 0.03, lin_flags["blur"] + 0.03],
        "d_holdout_macro_f1": out["holdout"]["blend"]["macro_f1"]}
    r = out["rule"]
    r["passed"] = bool(r["a_validation_gain"] >= 0.005 and r["b_test_macro_f1"] >= 0.85
                       and all(x <= lim + 1e-12 for x, lim in zip(r["c_clean_haze_blur"], r["c_limits"], strict=True))
                       and r["d_holdout_macro_f1"] >= 0.85)
    return out


def markdown(res: dict[str, Any]) -> str:
    """The report: one table per scene set, then the rule's verdict."""
    lines = ["# Perception candidate: linear heads + context head, blended",
             "", f"Made by `python -m experiments.eval_perception_blend --config {res['config'].get('_path', '')}`. "
             f"Blend weight of the context head {res['config']['blend']}; blend thresholds (calibrated on "
             f"{res['calibration_regions']} regions of the context head's validation scenes): "
             + ", ".join(f"{f} {t:.3f}" for f, t in res["thresholds"].items()) + ".", ""]
    head = "| perception | macro-F1 | " + " | ".join(FAMILIES) + " |"
    for key, title in (("validation", "common validation (train photos, select_encoder's 1500 scenes)"),
                       ("builtin", "built-in TEST photos (eval_encoder protocol)"), ("holdout", "HOLDOUT photos")):
        s = res[key]
        lines += [f"## {title}: {s['regions']} regions", "", head, "|---" * (len(FAMILIES) + 2) + "|"]
        for n in NAMES:
            se = f" (s.e. {s[n]['bootstrap']['se']:.3f})" if "bootstrap" in s[n] else ""
            lines.append(f"| {n} | {s[n]['macro_f1']:.3f}{se} | "
                         + " | ".join(f"{s[n]['f1'][f]:.3f}" for f in FAMILIES) + " |")
        if key != "validation":
            lines += ["", "Share of the regions of the UNDEGRADED crops flagged:", "",
                      "| perception | " + " | ".join(FAMILIES) + " |", "|---" * (len(FAMILIES) + 1) + "|"]
            lines += [f"| {n} | " + " | ".join(f"{s[n]['clean_flag_rate'][f]:.2f}" for f in FAMILIES) + " |"
                      for n in NAMES]
        lines.append("")
    r = res["rule"]
    lines += [f"## Rule ({res['config'].get('_path', 'experiments/configs/perception_blend.yaml')}, written before "
              "scoring)", "",
              f"- (a) common validation gain over the linear heads {r['a_validation_gain']:+.4f} (needed >= +0.005)",
              f"- (b) test macro-F1 {r['b_test_macro_f1']:.4f} (needed >= 0.85)",
              f"- (c) clean test regions flagged haze / blur {r['c_clean_haze_blur'][0]:.2f} / "
              f"{r['c_clean_haze_blur'][1]:.2f} (limits {r['c_limits'][0]:.2f} / {r['c_limits'][1]:.2f})",
              f"- (d) holdout macro-F1 {r['d_holdout_macro_f1']:.4f} (needed >= 0.85)",
              f"- **{'passed' if r['passed'] else 'failed'}**", ""]
    return "\n".join(lines)


def ship(res: dict[str, Any], context_dir: str | Path, ship_dir: str | Path) -> Path:
    """Copy ``context_dir`` (encoder + context head) to ``ship_dir`` (whose encoder, if it has one, must be the
    one the head was fitted on) and write ``res``'s blend into the copy's context head JSON; ``ValueError`` when
    the rule did not pass. Returns ``ship_dir``."""
    from ir_env.encoder.context import CONTEXT_JSON
    from ir_env.encoder.learned import EncoderWeightsError, file_sha256, ship_weights

    if not res["rule"]["passed"]:
        raise ValueError("the blend failed its rule: nothing shipped")
    src, dst = Path(context_dir), Path(ship_dir)
    if (dst / "encoder.pt").is_file() and file_sha256(src / "encoder.pt") != file_sha256(dst / "encoder.pt"):
        raise EncoderWeightsError(f"cannot ship: {src} holds other encoder weights than {dst}")
    out = ship_weights(src, dst)
    js = out / CONTEXT_JSON  # the copy gets the blend; the source directory stays the plain context head
    info = json.loads(js.read_text())
    info["blend"] = {"weight": float(res["config"]["blend"]), "thresholds": res["thresholds"],
                     "source": str(Path(res["config"]["out"]).with_suffix(".json")),
                     "command": f"python -m experiments.eval_perception_blend --config {res['config'].get('_path', '')}"
                                " --ship"}
    js.write_text(json.dumps(info, indent=1) + "\n")
    return out


#: Every key this script reads: (known, required) at the top level ("") and in each section (see
#: :func:`experiments.configio.check_sections`; the top level's required keys are named by :func:`check_config`).
CONFIG_SECTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "": (("weights", "context", "blend", "calibration", "validation", "test", "out"), ()),
    "calibration": (("config",), ("config",)),
    "validation": (("scenes", "seed"), ("scenes", "seed")),
    "test": (("crops", "size", "seed", "recipe"), ("crops", "size", "seed", "recipe")),
}


def _weights_folder(cfg: dict[str, Any], key: str, where: str, files: tuple[str, ...], hint: str) -> None:
    folder = cfg[key]
    if not isinstance(folder, str) or not folder.strip():
        raise ValueError(f"{where}: {key} must name a weights folder, got {folder!r}")
    from ir_env.encoder.learned import weights_folder_problem

    what = weights_folder_problem(folder, files)
    if what:
        raise ValueError(f"{where}: {key} {folder} {what}; {hint}")


def check_config(cfg: Any, where: str) -> dict[str, Any]:
    """``cfg`` if :func:`run` can use it, else ``ValueError`` naming ``where`` (the config file) and the problem,
    before any scene is made: a key it does not read (:data:`CONFIG_SECTIONS`, with the closest known one), a missing
    key, a value out of range, an unknown recipe, an output path that is a folder, the calibration config (the context
    head's, checked as ``fit_context_head`` does), or a ``weights`` / ``context`` folder without its files (named
    with the script that makes them: ``context`` is ``fit_context_head``'s output_dir)."""
    from experiments.configio import check_output, check_sections, config_int, read_config
    from experiments.fit_context_head import check_config as check_head_config
    from ir_env.encoder.context import CONTEXT_JSON, CONTEXT_PT
    from ir_env.recipes import list_recipes

    keys = CONFIG_SECTIONS[""][0]
    if not isinstance(cfg, dict):
        raise ValueError(f"{where} must be a mapping with {', '.join(keys)}")
    check_sections(cfg, CONFIG_SECTIONS, where)
    missing = [k for k in keys if k not in cfg]
    if missing:
        raise ValueError(f"{where} must be a mapping with {', '.join(keys)} (missing: {', '.join(missing)})")
    for key in ("calibration", "validation", "test"):
        if not isinstance(cfg[key], dict):
            raise ValueError(f"{where}: {key} must be a mapping of config keys, got {cfg[key]!r}")
    w = cfg["blend"]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
        raise ValueError(f"{where}: blend must be a number in [0, 1], got {w!r}")
    config_int(cfg["validation"], "scenes", f"{where}: validation", minimum=1)
    config_int(cfg["validation"], "seed", f"{where}: validation")
    t = cfg["test"]
    for key, low in (("crops", 1), ("size", 8), ("seed", 0)):
        config_int(t, key, f"{where}: test", minimum=low)
    if t["recipe"] not in list_recipes():
        raise ValueError(f"{where}: test: unknown recipe {t['recipe']!r}; known: {', '.join(list_recipes())}")
    if not isinstance(cfg["out"], str) or not cfg["out"].strip():
        raise ValueError(f"{where}: out must name an output stem (.json and .md are written), got {cfg['out']!r}")
    for suffix in (".json", ".md"):
        check_output(Path(cfg["out"]).with_suffix(suffix), "out")
    head_cfg = cfg["calibration"]["config"]
    if not isinstance(head_cfg, str) or not head_cfg.strip():
        raise ValueError(f"{where}: calibration.config must name the context head's config file, got {head_cfg!r}")
    try:
        check_head_config(read_config(head_cfg), head_cfg)
    except (OSError, ValueError) as e:
        raise ValueError(f"{where}: calibration.config: {e}") from None
    _weights_folder(cfg, "weights", where, ("encoder.json", "encoder.pt"),
                    "train an encoder with `python -m experiments.train_encoder --config CONFIG` (its output_dir) or "
                    "use the shipped ir_env/encoder/weights")
    _weights_folder(cfg, "context", where, ("encoder.json", "encoder.pt", CONTEXT_JSON, CONTEXT_PT),
                    f"fit the context head with `python -m experiments.fit_context_head --config {head_cfg}` "
                    "(it writes its output_dir)")
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.eval_perception_blend`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="experiments/configs/perception_blend.yaml",
                    help="config YAML (default: %(default)s)")
    ap.add_argument("--ship", action="store_true",
                    help="ship the blend beside the shipped encoder (only when the rule passed) (default: off)")
    ap.add_argument("--ship-dir", help="with --ship: write the weights directory here instead (a candidate) "
                                       "(default: the shipped encoder's folder)")
    a = ap.parse_args(argv)
    try:
        from experiments.configio import read_config

        if a.ship_dir and not a.ship:  # it was silently ignored: nothing would be written there
            raise ValueError("--ship-dir only says where --ship writes: add --ship (or drop --ship-dir)")
        cfg = check_config(read_config(a.config), a.config)
        import torch

        torch.set_num_threads(1)
        res = run(cfg)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res["config"]["_path"] = a.config
    out = Path(cfg["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    md = markdown(res)
    out.with_suffix(".md").write_text(md)
    print(md)
    if a.ship:
        from ir_env.encoder.learned import DEFAULT_WEIGHTS

        try:
            print(f"shipped to {ship(res, cfg['context'], a.ship_dir or DEFAULT_WEIGHTS)}")
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
