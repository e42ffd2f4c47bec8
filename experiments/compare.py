"""The headline comparison: scripted planners against PPO planners trained over several seeds.

Run: ``python -m experiments.compare --config experiments/configs/compare.yaml``.

1. **Training** (resumable): for every ``learned.variants`` entry and every seed, the imitation + PPO
   pipeline of :mod:`experiments.train_bc` (BC from the greedy oracle, DAgger, PPO fine-tune) with the
   config's reduced budget, into ``<runs_dir>/<variant>_s<seed>/``; a run folder holding ``model.zip`` and
   ``summary.json`` is reused, never retrained (unless its env observes through the learned encoder and
   the shipped encoder weights changed since: :func:`ir_env.encoder.learned.observation_fingerprint`). One
   expert dataset per env (recorded once, shared by the seeds and, converted to parameter bins, by the
   MaskablePPO variant) lives in ``<runs_dir>/``. A variant with ``runs_of: <variant>`` trains nothing: it
   evaluates that variant's seed models again with its own ``gate`` and ``label`` (e.g. gated and ungated).
2. **Evaluation** on the built-in test split (``evaluate`` scenes, same images/size/seed for every row):
   rows of ``baselines_dir/<recipe>.json`` made with the same recipe, seed, size and images are reused, not
   recomputed; other rows are computed once and cached in ``<runs_dir>/eval/`` (keyed by the model file's
   hash for learned planners; for specs perceiving through the encoder -- naming ``learned``, such as
   ``dfs:oracle:embedding=learned``, or ``perceive`` -- by its perception fingerprint (weights and context
   head), and for ``perceive`` also by the rule table's content hash).
3. **Outputs** under ``output_dir``: ``<recipe>.json`` (the evaluate JSON of every planner spec, plus
   ``groups``: the seed-averaged learned variants, and ``reused``), ``compare.json`` (the headline table of
   every recipe, the issue's targets as met / not met, training costs), ``compare.md`` and ``compare.png``
   (mean PSNR gain against tool calls and against seconds per image).

``--train-only`` / ``--variants`` / ``--seeds`` train a subset (e.g. two processes in parallel on
different seeds); ``--skip-training`` evaluates whatever seed models exist; ``--replot`` only re-draws
``compare.png`` from ``compare.json``; ``--refresh SPEC[,SPEC]`` (or ``all``) re-evaluates only those fixed planner rows
and splices them into the existing outputs (after a change that affects those planners alone: every other
row, the seed groups and the training summary are kept, so no seed model has to exist);
``--refresh-variants V[,V]`` does the same for learned variants whose seed models were retrained (remove
``<runs_dir>/V_s*`` and run ``--train-only --variants V`` first: a trained seed is otherwise reused).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from experiments.configio import check_keys, config_int, config_judge, read_config  # noqa: E402
from experiments.run_baselines import scene_items  # noqa: E402
from ir_env.encoder.learned import DEFAULT_WEIGHTS, perception_fingerprint  # noqa: E402
from ir_env.recipes import get_recipe  # noqa: E402
from policies.evaluation import evaluate, evaluation_scene, image_metrics, parse_planner_spec  # noqa: E402
from policies.gate import gate_of_spec, resolve_gate  # noqa: E402

#: What a training variant may set in ``learned.variants``.
VARIANT_KEYS = {"planner", "ppo_config", "label", "train", "gate", "runs_of"}
#: Top-level keys of a compare config (``paired`` is read by ``experiments.paired_gains``).
CONFIG_KEYS = ("title", "images", "scenes_per_image", "size", "seed", "recipes", "no_reference_judge", "planners",
               "skip", "baselines_dir", "learned", "targets", "paired", "output_dir")
#: Keys of the ``learned`` block.
LEARNED_KEYS = ("seeds", "runs_dir", "variants", "train")
#: Keys of the ``targets`` block (see :func:`check_targets`).
TARGET_KEYS = ("recipes", "ppo", "ppo_groups", "greedy_nr", "dfs_oracle", "spatial_group", "global_group",
               "hybrid_group", "maskable_group")
# train: per-variant overrides of learned.train; gate: the seed rows' perception gate (default off);
# runs_of: another variant whose trained seed models this one evaluates (with its own gate / label), no training
#: Table columns (per-planner means of the evaluate JSON).
COLUMNS = ("psnr_in", "psnr_out", "psnr_gain", "ssim_out", "tool_calls", "iqa_calls", "seconds")


def log(msg: str) -> None:
    """A timestamped progress line on stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_compare_config(path: str | Path) -> dict[str, Any]:
    """Read and check the YAML (keys: images, scenes_per_image, size, seed, recipes, no_reference_judge,
    planners, skip, baselines_dir, learned, targets, output_dir; optional title)."""
    p = Path(path)
    cfg = read_config(p, empty_ok=True)
    check_keys(cfg, CONFIG_KEYS, str(p), required=("images", "size", "seed", "recipes", "planners", "output_dir"))
    cfg["scenes_per_image"] = config_int(cfg, "scenes_per_image", str(p), minimum=1, default=1)
    for section, known in (("learned", LEARNED_KEYS), ("targets", TARGET_KEYS)):
        if cfg.get(section) is not None:
            if not isinstance(cfg[section], dict):
                raise ValueError(f"{p}: {section} must be a mapping, got {cfg[section]!r}")
            check_keys(cfg[section], known, f"{p}: {section}")
    if cfg.get("skip") is not None and not (isinstance(cfg["skip"], dict) and all(
            isinstance(v, list) for v in cfg["skip"].values())):
        raise ValueError(f"{p}: skip must map a recipe to a list of planner specs, got {cfg['skip']!r}")
    for key in ("size", "seed"):
        config_int(cfg, key, str(p))
    if not isinstance(cfg["recipes"], list) or not cfg["recipes"]:
        raise ValueError(f"{p}: recipes must be a non-empty list of recipe names, got {cfg['recipes']!r}")
    for recipe in [*cfg["recipes"], *(cfg.get("skip") or {})]:
        get_recipe(recipe)  # an unknown name is an error now, not after hours of the recipes before it
    if not isinstance(cfg["planners"], list) or not cfg["planners"] or not all(isinstance(x, str)
                                                                             for x in cfg["planners"]):
        raise ValueError(f"{p}: planners must be a non-empty list of planner specs, got {cfg['planners']!r}")
    for recipe, specs in (cfg.get("skip") or {}).items():
        unknown = [x for x in specs if x not in cfg["planners"]]
        if unknown:  # a misspelled skip entry would run the expensive planner it meant to skip
            raise ValueError(f"{p}: skip.{recipe} names {', '.join(map(repr, unknown))}, not in planners")
    cfg.setdefault("scenes_per_image", 1)
    config_judge(cfg, str(p))
    cfg.setdefault("baselines_dir", None)
    cfg["skip"] = cfg.get("skip") or {}  # recipe -> planner specs not run there (cost)
    learned = cfg.setdefault("learned", {}) or {}
    cfg["learned"] = learned
    learned.setdefault("seeds", [0])
    learned.setdefault("runs_dir", "runs/compare")
    for key in ("variants", "train"):  # an empty YAML block is None
        if learned.get(key) is None:
            learned[key] = {}
    variants = learned["variants"]
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise ValueError(f"{p}: learned.variants must map a variant name to its settings (planner, ppo_config, "
                         f"label, ...), got {variants!r}")
    for name, v in variants.items():
        src = v.get("runs_of")
        if src is not None:
            if src not in variants or src == name or variants[src].get("runs_of") is not None:
                raise ValueError(f"learned variant {name!r}: runs_of must name another variant that trains its own "
                                 f"models, got {src!r}; variants: {', '.join(variants)}")
            if "train" in v:
                raise ValueError(f"learned variant {name!r}: a runs_of variant trains nothing, drop its 'train'")
            for key in ("planner", "ppo_config"):
                v.setdefault(key, variants[src].get(key))
        unknown = set(v) - VARIANT_KEYS
        if unknown or "ppo_config" not in v or v.get("planner") not in ("ppo", "maskable_ppo"):
            raise ValueError(f"learned variant {name!r}: needs ppo_config and planner (ppo | maskable_ppo); "
                             f"unknown keys {sorted(unknown)}")
    _check_learned(cfg, str(p))
    _check_target_names(cfg, str(p))
    return cfg


def _check_learned(cfg: dict[str, Any], where: str) -> None:
    """``ValueError`` for ``learned`` values that would fail only when training starts: seeds that are not a
    non-empty list of distinct whole numbers >= 0, a ``train`` block (shared or a variant's) that
    ``experiments.train_bc`` refuses, a variant's missing ``ppo_config``."""
    from experiments import train_bc
    from ir_env.paths import find_config

    learned = cfg["learned"]
    seeds = learned["seeds"]
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise ValueError(f"{where}: learned.seeds must be a non-empty list of distinct whole numbers >= 0, "
                         f"got {seeds!r}")
    if not isinstance(learned["runs_dir"], str) or not learned["runs_dir"].strip():
        raise ValueError(f"{where}: learned.runs_dir must be a folder path, got {learned['runs_dir']!r}")
    for section, block in [("learned.train", learned["train"])] + [
            (f"learned.variants.{n}.train", v.get("train")) for n, v in learned["variants"].items()]:
        if block is not None and not isinstance(block, dict):
            raise ValueError(f"{where}: {section} must be a mapping of experiments/train_bc.py keys, got {block!r}")
    for name, v in learned["variants"].items():
        try:
            find_config(v["ppo_config"])
        except FileNotFoundError:
            raise ValueError(f"{where}: learned variant {name!r}: ppo_config {v['ppo_config']} not found") from None
        if v.get("runs_of") is not None:
            continue
        try:  # the merged block as train_seed() hands it to train_bc, checked now rather than after hours
            train_bc.load_bc_config(None, **variant_train_config(cfg, name), name=f"{name}_s0",
                                    output_dir=learned["runs_dir"], ship_dir=None)
        except ValueError as exc:
            raise ValueError(f"{where}: learned.train (variant {name!r}): {exc}") from None


def _check_target_names(cfg: dict[str, Any], where: str) -> None:
    """``ValueError`` for a ``targets`` name the comparison never produces: a recipe not in ``recipes``, a
    planner spec (``ppo``, ``greedy_nr``, ``dfs_oracle``) not in ``planners``, a group not in ``learned.variants``.
    Without this a misspelled name silently dropped its target from the report."""
    t = cfg.get("targets") or {}
    variants, planners = cfg["learned"]["variants"], cfg["planners"]

    def names(key: str) -> list[Any]:
        val = t.get(key)
        return [] if val is None else [val] if isinstance(val, str) else val if isinstance(val, list) else [val]

    for key, known, what in (("recipes", cfg["recipes"], "recipes"), ("ppo", planners, "planners"),
                             ("greedy_nr", planners, "planners"), ("dfs_oracle", planners, "planners"),
                             ("ppo_groups", variants, "learned.variants"),
                             ("spatial_group", variants, "learned.variants"),
                             ("global_group", variants, "learned.variants"),
                             ("hybrid_group", variants, "learned.variants"),
                             ("maskable_group", variants, "learned.variants")):
        for n in names(key):
            if not isinstance(n, str) or n not in known:
                raise ValueError(f"{where}: targets.{key} names {n!r}, which is not in {what} "
                                 f"({', '.join(map(str, known)) or 'none'})")


# ----------------------------------------------------------------------------------------- training
def run_dir(cfg: dict[str, Any], variant: str, seed: int) -> Path:
    """``<runs_dir>/<variant>_s<seed>``: one trained seed model (``model.zip`` + ``config.yml``); a ``runs_of``
    variant's are its source variant's."""
    variant = cfg["learned"]["variants"].get(variant, {}).get("runs_of") or variant
    return Path(cfg["learned"]["runs_dir"]) / f"{variant}_s{seed}"


def is_trained(path: Path) -> bool:
    """A finished training run: ``model.zip``, ``config.yml`` and ``summary.json`` are all there."""
    return all((path / f).is_file() for f in ("model.zip", "config.yml", "summary.json"))


def expert_fingerprint(record: dict[str, Any]) -> str:
    """What else decides a non-default expert's actions: for ``perceive`` the rule table's hash and, when the
    encoder perceives through a context head, that head's (``+ctx...``), else ''."""
    if record.get("expert", "greedy") != "perceive":
        return ""
    from ir_env.encoder.learned import context_fingerprint

    ctx = context_fingerprint(DEFAULT_WEIGHTS) if _table_reads_context() else ""
    return "+rules" + _rule_table_fingerprint() + ctx


def _table_reads_context() -> bool:
    """Whether the shipped rule table's planners perceive through the shipped encoder's context head
    (:meth:`policies.rules.RuleTable.perception_context`; False: its linear heads)."""
    from policies.rules import RuleTable

    return RuleTable.load().perception_context() is not False


def _policy_gate(model: Path | None) -> dict[str, float] | None:
    """The gate thresholds a model's ``config.yml`` names for it (``deploy.gate``), or None."""
    from policies.ppo.config import CONFIG_NAME, read_model_config
    from policies.ppo.planner import deploy_gate

    if model is None or not (model.parent / CONFIG_NAME).is_file():
        return None
    return deploy_gate(read_model_config(model), model)


def _rule_table_fingerprint(family_masks: bool = False) -> str:
    """Content hash of the shipped rule table (the ``perceive`` planner's); ``family_masks``: also of the
    settings of ``perceive:regions=families`` (evaluation keys; an expert acting on the env's regions never
    reads them)."""
    from policies.rules import RuleTable

    return RuleTable.load().fingerprint(family_masks=family_masks)


def _expert_data(cfg: dict[str, Any], pcfg: dict[str, Any], record: dict[str, Any]) -> Path:
    """The expert dataset for ``pcfg``'s env (Box actions), recorded once: ``record["expert"]`` (default the
    greedy oracle), train split."""
    from ir_env.encoder.learned import observation_fingerprint
    from policies.ppo import bc
    from policies.ppo.train import build_env

    rec = {k: v for k, v in record.items() if not (k == "expert" and v == "greedy")}  # old keys stay valid
    key = json.dumps([pcfg["env_id"], pcfg["env_kwargs"], rec], sort_keys=True)
    key += expert_fingerprint(record)
    key += observation_fingerprint(pcfg["env_kwargs"]) or ""  # unchanged key (and file) for hand-made input
    path = Path(cfg["learned"]["runs_dir"]) / f"expert_{hashlib.sha1(key.encode()).hexdigest()[:10]}.npz"
    if path.is_file():
        return path
    env = build_env(pcfg["env_id"], {**pcfg["env_kwargs"], "split": "train"}, "hybrid", monitor=False)
    log(f"recording {record['episodes']} expert episodes on {pcfg['env_id']} -> {path}")
    expert = bc.make_expert(env, planner=str(record.get("expert", "greedy")))
    data, _ = bc.record_expert(env, expert, int(record["episodes"]), int(record["seed"]),
                               soft=bool(record.get("soft", True)), log=log)
    env.close()
    tmp = path.with_name(path.stem + ".tmp.npz")
    data.save(tmp)
    tmp.replace(path)  # complete files only: a parallel process never reads half a dataset
    return path


def to_multidiscrete(src: Path, bins: int) -> Path:
    """The Box-action dataset at ``src`` with parameters snapped to ``bins`` levels (the
    ``MultiDiscreteAction`` encoding of the same expert choices); written once next to ``src``."""
    from policies.ppo.bc import Transitions

    dst = src.with_name(f"{src.stem}_md{bins}.npz")
    if dst.is_file():
        return dst
    data = Transitions.load(src)
    levels = np.linspace(-1.0, 1.0, bins)
    idx = np.abs(data.actions[:, 1:, None] - levels[None, None, :]).argmin(axis=2)
    acts = np.concatenate([np.rint(data.actions[:, :1]), idx], axis=1).astype(np.float32)
    Transitions(data.obs, acts, data.returns, data.episode, data.gains).save(dst)
    return dst


def variant_train_config(cfg: dict[str, Any], variant: str) -> dict[str, Any]:
    """``learned.train`` with the variant's own ``train`` overrides merged in (one level deep: a variant's
    ``record: {expert: perceive}`` keeps the shared ``record.episodes``)."""
    tr = {k: dict(val) if isinstance(val, dict) else val for k, val in cfg["learned"]["train"].items()}
    for k, val in (cfg["learned"]["variants"][variant].get("train") or {}).items():
        tr[k] = {**tr.get(k, {}), **val} if isinstance(val, dict) else val
    return tr


def train_seed(cfg: dict[str, Any], variant: str, seed: int) -> Path:
    """Train (or reuse) one seed of a learned variant; returns its run folder."""
    from experiments import train_bc
    from ir_env.encoder.learned import observation_fingerprint
    from policies.ppo.config import load_config

    out = run_dir(cfg, variant, seed)
    v = cfg["learned"]["variants"][variant]
    pcfg = load_config(v["ppo_config"])
    pcfg["seed"] = int(seed)
    tr = variant_train_config(cfg, variant)
    record = {**train_bc.DEFAULTS["record"], **tr.get("record", {})}
    fingerprint = observation_fingerprint(pcfg["env_kwargs"])
    if fingerprint:
        fingerprint += expert_fingerprint(record)  # a new rule table retrains the variant ("" for greedy)
    stamp = out / "encoder_sha256.txt"
    if is_trained(out):
        if fingerprint is None or (stamp.is_file() and stamp.read_text().strip() == fingerprint):
            log(f"{out}: trained already, reused")
            return out
        log(f"{out}: trained with other encoder weights, training again")
    out.mkdir(parents=True, exist_ok=True)
    if fingerprint:
        stamp.write_text(fingerprint + "\n")
    ppo_cfg_path = out / "ppo_config.yml"
    ppo_cfg_path.write_text(yaml.safe_dump(pcfg, sort_keys=False))
    data = _expert_data(cfg, pcfg, record)
    if pcfg["algo"] == "maskable":
        data = to_multidiscrete(data, int(pcfg["bins"]))
    tr["bc"] = {**tr.get("bc", {}), "seed": int(seed)}
    bcfg = train_bc.load_bc_config(None, **tr, name=out.name, ppo_config=str(ppo_cfg_path),
                                   output_dir=str(out.parent), ship_dir=None)
    log(f"training {variant} seed {seed} -> {out}")
    train_bc.run(bcfg, dataset=str(data), argv=["experiments/compare.py", "--variants", variant,
                                                  "--seeds", str(seed)],
                 overwrite=True)  # a stale or unfinished run of this seed is replaced (decided above)
    return out


# ----------------------------------------------------------------------------------------- evaluation
def _file_hash(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def model_path_of(spec: str) -> Path | None:
    """The model file a learned planner spec uses (``path=...`` or the shipped default), else None."""
    parts = spec.split(":")
    if parts[0] not in ("ppo", "maskable_ppo"):
        return None
    for p in parts[1:]:
        if p.startswith("path="):
            return Path(p[5:])
    from policies.ppo.planner import default_model_path

    return default_model_path("hybrid" if parts[0] == "ppo" else "maskable", "global" if "global" in parts
                              else "spatial")


def _cache_path(cfg: dict[str, Any], recipe: str, spec: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec)
    return Path(cfg["learned"]["runs_dir"]) / "eval" / recipe / f"{safe}.json"


def reusable_baselines(cfg: dict[str, Any], recipe: str, items: list[tuple[str, Any]]) -> dict[str, Any] | None:
    """``baselines_dir/<recipe>.json`` if it was made on the same scenes, else None: same recipe, seed, size
    and image names, and each scene's input PSNR equal to that of the scene :func:`evaluate` makes here."""
    if not cfg.get("baselines_dir"):
        return None
    p = Path(cfg["baselines_dir"]) / f"{recipe}.json"
    if not p.is_file():
        return None
    old = json.loads(p.read_text())
    same = (old.get("recipe") == recipe and old.get("seed") == int(cfg["seed"])
            and old.get("size") == int(cfg["size"]) and old.get("images") == len(items)
            and old.get("config", {}).get("no_reference_judge", cfg["no_reference_judge"]) == cfg["no_reference_judge"])
    if not same:
        return None
    first = next(iter(old["planners"]), None)
    psnr_in = {r["image"]: r["psnr_in"] for r in old["rows"] if r["planner"] == first}
    if sorted(psnr_in) != sorted(n for n, _ in items):
        return None
    size, seed = int(cfg["size"]), int(cfg["seed"])
    for i, (name, photo) in enumerate(items):  # the scene seeds follow the item order, as in evaluate()
        clean, scene = evaluation_scene(photo, i, recipe, seed, size)
        if abs(image_metrics(scene.degraded, clean)["psnr"] - psnr_in[name]) > 1e-6:
            return None
    old["path"] = str(p)
    return old


def evaluate_recipe(cfg: dict[str, Any], recipe: str, items: list[tuple[str, Any]], specs: list[str],
                    progress: bool = True) -> dict[str, Any]:
    """The evaluate JSON of ``specs`` on ``recipe``: reused baseline rows, cached rows, or fresh ones.
    Adds ``reused`` (spec -> source file) to the result."""
    names = [n for n, _ in items]
    base = reusable_baselines(cfg, recipe, items)
    planners: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    reused: dict[str, str] = {}
    for spec in specs:
        rules = spec.split(":")[0] == "perceive"  # the encoder's perception + the shipped rule table
        learned_perception = "learned" in spec or rules  # e.g. dfs:oracle:embedding=learned reads the encoder
        if base is not None and spec in base["planners"] and model_path_of(spec) is None and not learned_perception:
            planners[spec] = base["planners"][spec]
            rows += [r for r in base["rows"] if r["planner"] == spec]
            reused[spec] = base["path"]
            continue
        model = model_path_of(spec)
        key = {"recipe": recipe, "seed": int(cfg["seed"]), "size": int(cfg["size"]), "images": names,
               "judge": cfg["no_reference_judge"], "model": _file_hash(model) if model and model.is_file() else None}
        if learned_perception:  # a scripted planner perceiving through the encoder: re-run when it changes
            # (perceive reads the perception its rule table was tuned on, RuleTable.perception_context)
            key["encoder"] = perception_fingerprint(DEFAULT_WEIGHTS, context=not rules or _table_reads_context())
        if rules:
            key["rule_table"] = _rule_table_fingerprint(family_masks=True)
        gate = gate_of_spec(spec)
        if gate != "off":  # the perception gate reads the encoder (and the table's thresholds)
            key["gate"] = gate
            key["encoder"] = perception_fingerprint(DEFAULT_WEIGHTS,
                                                    context=gate == "encoder" or _table_reads_context())
            key["gate_table"] = _rule_table_fingerprint() if gate in ("table", "policy") else None
            if gate == "policy":  # the thresholds fitted for this model (its config.yml deploy.gate), if any
                key["gate_policy"] = _policy_gate(model)
        cache = _cache_path(cfg, recipe, spec)
        if cache.is_file():
            old = json.loads(cache.read_text())
            if old.get("key") == key:
                planners[spec] = old["result"]["planners"][spec]
                rows += old["result"]["rows"]
                continue
        t0 = time.perf_counter()
        res = evaluate(items, recipe, [spec], seed=int(cfg["seed"]), size=int(cfg["size"]),
                       judge=cfg["no_reference_judge"], progress=progress)
        log(f"{recipe} / {spec}: gain {res['planners'][spec]['psnr_gain']:+.2f} dB "
            f"({time.perf_counter() - t0:.0f} s)")
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"key": key, "result": res}, default=float))
        planners[spec] = res["planners"][spec]
        rows += res["rows"]
    rank = {s: i for i, s in enumerate(specs)}
    rows.sort(key=lambda r: (names.index(r["image"]), rank[r["planner"]]))
    return {"recipe": recipe, "seed": int(cfg["seed"]), "size": int(cfg["size"]), "images": len(items),
            "planners": planners, "rows": rows, "reused": reused}


def group_seeds(result: dict[str, Any], variant: str, specs: list[str], label: str) -> dict[str, Any]:
    """Across-seed statistics of one learned variant: mean and std (over seeds) of each seed's mean PSNR
    gain, and the means of the cost columns."""
    per_seed = [result["planners"][s] for s in specs]
    gains = [s["psnr_gain"] for s in per_seed]
    g = {k: float(np.mean([s[k] for s in per_seed])) for k in COLUMNS if k != "psnr_gain"}
    g.update({"label": label, "variant": variant, "specs": specs, "seeds": len(specs),
              "psnr_gain": float(np.mean(gains)), "psnr_gain_std": float(np.std(gains)),
              "per_seed_gain": gains, "mode": per_seed[0]["mode"], "judge": per_seed[0]["judge"]})
    return g


# ----------------------------------------------------------------------------------------- report
def table_rows(result: dict[str, Any], fixed_specs: list[str]) -> list[dict[str, Any]]:
    """One row per scripted/shipped planner spec, then one per seed-averaged learned variant."""
    out = []
    for spec in fixed_specs:
        s = result["planners"][spec]
        out.append({"label": spec, **{k: s[k] for k in COLUMNS}, "mode": s["mode"], "judge": s["judge"],
                    "psnr_gain_std": s["psnr_gain_std"], "spread": "images", "reused": spec in result["reused"]})
    for g in result["groups"].values():
        out.append({**{k: g[k] for k in COLUMNS}, "label": g["label"], "mode": g["mode"], "judge": g["judge"],
                    "psnr_gain_std": g["psnr_gain_std"], "spread": f"{g['seeds']} seeds", "reused": False})
    return out


def check_targets(result: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets on this recipe, each with the measured numbers and met / not met."""
    t = cfg.get("targets") or {}
    p, groups = result["planners"], result["groups"]
    out: list[dict[str, Any]] = []

    def add(name: str, met: bool, measured: str) -> None:
        out.append({"target": name, "met": bool(met), "measured": measured})

    greedy_nr, dfs_or = t.get("greedy_nr"), t.get("dfs_oracle")
    greedy_nrs = [g for g in ([greedy_nr] if isinstance(greedy_nr, str) else greedy_nr or []) if g in p]
    for who in [s for s in t.get("ppo", []) if s in p] + [k for k in t.get("ppo_groups", []) if k in groups]:
        r = p[who] if who in p else groups[who]
        lab = who if who in p else groups[who]["label"]
        for g in greedy_nrs:
            add(f"{lab} gain >= {g} gain", r["psnr_gain"] >= p[g]["psnr_gain"],
                f"{r['psnr_gain']:+.2f} vs {p[g]['psnr_gain']:+.2f} dB")
        if dfs_or in p:
            add(f"{lab} within 0.5 dB of {dfs_or}", r["psnr_gain"] >= p[dfs_or]["psnr_gain"] - 0.5,
                f"{r['psnr_gain']:+.2f} vs {p[dfs_or]['psnr_gain']:+.2f} dB "
                f"(short by {max(0.0, p[dfs_or]['psnr_gain'] - 0.5 - r['psnr_gain']):.2f})")
        for g in greedy_nrs:
            add(f"{lab} <= 1/10 of {g}'s tool calls, 0 IQA calls",
                r["tool_calls"] <= p[g]["tool_calls"] / 10 and r["iqa_calls"] == 0,
                f"{r['tool_calls']:.1f} vs {p[g]['tool_calls']:.1f} calls, {r['iqa_calls']:.0f} IQA calls")
    for a, b, rule in ((t.get("spatial_group"), t.get("global_group"), "clear"),
                       (t.get("hybrid_group"), t.get("maskable_group"), "at_least")):
        if a in groups and b in groups:
            ga, gb = groups[a], groups[b]
            diff = ga["psnr_gain"] - gb["psnr_gain"]
            if rule == "clear":  # clear margin: the mean difference exceeds the sum of the seed spreads
                met = diff > ga["psnr_gain_std"] + gb["psnr_gain_std"]
                name = f"{ga['label']} > {gb['label']} by a clear margin (diff > std_a + std_b)"
            else:
                met, name = diff >= 0, f"{ga['label']} >= {gb['label']}"
            add(name, met, f"{ga['psnr_gain']:+.2f} ± {ga['psnr_gain_std']:.2f} vs {gb['psnr_gain']:+.2f} ± "
                f"{gb['psnr_gain_std']:.2f} dB (diff {diff:+.2f})")
    return out


def markdown(report: dict[str, Any]) -> str:
    """``compare.md``: one table per recipe, the targets, and how the numbers were made."""
    c = report["config"]
    source = c.get("images", "builtin")
    photos = {"builtin": "Built-in test split", "holdout": "Holdout photos"}.get(str(source), f"Photos of `{source}`")
    reused = (f"Rows marked * are reused from `{c['baselines_dir']}` (same images, size and seed), not recomputed. "
              if c.get("baselines_dir") else "")
    lines = [f"# {c.get('title') or 'Headline comparison: scripted planners vs PPO planners'}", "",
             f"Made by `{report['command']}`. {photos} ({report['images']} scenes: "
             f"{c.get('scenes_per_image', 1)} per photo), {c['size']} px, evaluation seed {c['seed']}; "
             f"no-reference judge `{c['no_reference_judge']}` (rows whose spec says `judge=J` use J), "
             f"`oracle` = PSNR judge with the clean image "
             "(an upper bound, not deployable). Gain = mean PSNR out - PSNR in (dB) ± std over images "
             "(scripted and shipped rows) or ± std over training seeds of the per-seed mean gain "
             f"(learned rows, `N seeds`). Tool calls, IQA calls and seconds are per image. {reused}Seconds "
             "were measured on a 2-core CPU shared with other jobs, at different times for different rows: "
             "compare them only by order of magnitude. Learned models were trained on crops of the train "
             "split with `spatial-mixed` only, 64 px unless their label says otherwise.", ""]
    labels = {v: x.get("label", v) for v, x in c["learned"]["variants"].items()} if c.get("learned") else {}
    for ref in refreshes(report):
        if ref.get("kind") == "variants":
            named = ", ".join(f"{labels.get(v, v)} (`{v}`)" for v in ref["planners"])
            lines += [f"The seed-averaged rows of {named} were re-made later from their seed models by "
                      f"`{ref['command']}` (every other row as above).", ""]
            continue
        if set(ref["planners"]) == set(c.get("planners") or []):
            lines += [f"Every scripted and shipped-planner row was re-made later by `{ref['command']}` (the "
                      "seed-averaged learned rows as above).", ""]
            continue
        lines += [f"The rows of {', '.join(f'`{p}`' for p in ref['planners'])} were re-made later by "
                  f"`{ref['command']}` (every other row as above).", ""]
    for recipe, rec in report["recipes"].items():
        lines += [f"## {recipe}", "", "| planner | mode | judge | PSNR in | PSNR out | gain (dB) | spread | SSIM out "
                  "| tool calls | IQA calls | seconds |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rec["table"]:
            mark = "*" if r["reused"] else ""
            lines.append(f"| {r['label']}{mark} | {r['mode']} | {r['judge']} | {r['psnr_in']:.2f} | "
                         f"{r['psnr_out']:.2f} | {r['psnr_gain']:+.2f} ± {r['psnr_gain_std']:.2f} | {r['spread']} | "
                         f"{r['ssim_out']:.3f} | {r['tool_calls']:.1f} | {r['iqa_calls']:.1f} | {r['seconds']:.2f} |")
        if rec.get("not_run"):
            lines += ["", "Not run on this recipe (cost of the search on a shared 2-core CPU): "
                      + ", ".join(f"`{s}`" for s in rec["not_run"]) + "."]
        seeds = [f"{g['label']}: " + ", ".join(f"{x:+.2f}" for x in g["per_seed_gain"])
                 for g in rec["groups"].values()]
        if seeds:
            lines += ["", "Per-seed mean gains (dB): " + "; ".join(seeds) + "."]
        if rec["targets"]:
            lines += ["", "| target (issue 5) | measured | met? |", "|---|---|---|"]
            lines += [f"| {t['target']} | {t['measured']} | {'met' if t['met'] else '**not met**'} |"
                      for t in rec["targets"]]
        lines.append("")
    lines += ["![quality vs cost](compare.png)", "", "## Learned planners: training", "",
              "| run | selected candidate | val gain | test gain (train_bc episodes) | train s |",
              "|---|---|---|---|---|"]
    for name, tr in report["training"].items():
        lines.append(f"| {name} | {tr['selected']} | {tr['val_psnr_gain']:.2f} | {tr['test_psnr_gain']:.2f} | "
                     f"{tr['wall_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def planner_styles(labels: list[str]) -> dict[str, dict[str, Any]]:
    """One colour + marker per planner label (the same in every panel), in first-seen order: colour cycles
    over 10, marker over 7, so no two of the first 70 labels share both."""
    import matplotlib

    colours = matplotlib.colormaps["tab10"].colors
    markers = "osD^vPX"
    return {lab: {"color": colours[i % 10], "marker": markers[i % 7]} for i, lab in enumerate(labels)}


def judge_note(row: dict[str, Any]) -> str:
    """`` (judge J)`` for a row whose label does not name the judge it was scored with (``greedy`` run with the
    brisque judge), else ''."""
    judge = str(row.get("judge") or "none")
    return "" if judge == "none" or judge.split(":")[0] in row["label"] else f" (judge {judge})"


def plot(report: dict[str, Any], path: Path) -> Path:
    """Mean PSNR gain against tool calls and against seconds per image, one panel pair per recipe; learned
    variants with error bars (std over seeds). Planners are told apart by colour and marker in one legend
    beside the panels (labels written next to the points overlapped where planners cost about the same)."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from policies.evaluation import tidy_log_xaxis

    recipes = list(report["recipes"])
    labels = list(dict.fromkeys(r["label"] for rec in report["recipes"].values() for r in rec["table"]))
    styles = planner_styles(labels)
    fig, axes = plt.subplots(len(recipes), 2, figsize=(14, 3.8 * len(recipes)), squeeze=False)
    handles: dict[str, Any] = {}
    for i, recipe in enumerate(recipes):
        for ax, key, label in ((axes[i][0], "tool_calls", "tool calls per image"),
                               (axes[i][1], "seconds", "seconds per image")):
            for r in report["recipes"][recipe]["table"]:
                x = max(r[key], 1e-3)
                learned = r["spread"] != "images"
                st = styles[r["label"]]
                h = ax.errorbar(x, r["psnr_gain"], yerr=r["psnr_gain_std"] if learned else None, ms=6, capsize=3,
                                fmt=st["marker"], color=st["color"], mec="black" if learned else st["color"],
                                mew=0.6)
                handles.setdefault(r["label"] + judge_note(r) + (" (mean ± std over seeds)" if learned else ""), h)
            tidy_log_xaxis(ax)
            ax.set_xlabel(label + " (log)")
            ax.set_ylabel("mean PSNR gain (dB)")
            ax.set_title(recipe, fontsize=9)
            ax.axhline(0, color="grey", lw=0.5)
            ax.grid(alpha=0.3)
    fig.legend(list(handles.values()), [textwrap.fill(h, 34) for h in handles], loc="center right", fontsize=8,
               frameon=False, borderaxespad=0.5)
    fig.tight_layout(rect=(0, 0, 0.77, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def training_summary(cfg: dict[str, Any]) -> dict[str, Any]:
    """Per trained seed run: the selected candidate, its validation/test gains and the wall time."""
    out = {}
    for variant, v in cfg["learned"]["variants"].items():
        if v.get("runs_of"):
            continue  # the same runs as its source variant
        for seed in cfg["learned"]["seeds"]:
            p = run_dir(cfg, variant, seed) / "summary.json"
            if p.is_file():
                s = json.loads(p.read_text())
                c = s["candidates"][s["selected"]]
                out[p.parent.name] = {"selected": s["selected"], "val_psnr_gain": c["val_psnr_gain"],
                                      "test_psnr_gain": c["test_psnr_gain"], "wall_seconds": s["wall_seconds"]}
    return out


def fixed_specs(cfg: dict[str, Any], recipe: str) -> list[str]:
    """The config's fixed planner specs that run on ``recipe`` (its ``skip`` list left out)."""
    return [s for s in cfg["planners"] if s not in cfg["skip"].get(recipe, [])]


def finish_recipe(cfg: dict[str, Any], recipe: str, res: dict[str, Any], out: Path) -> dict[str, Any]:
    """Add the targets and the table to one recipe's evaluate JSON ``res`` (which holds ``groups``), write it
    to ``out/<recipe>.json`` and return its entry of ``compare.json``."""
    res["targets"] = check_targets(res, cfg) if recipe in (cfg.get("targets") or {}).get("recipes", []) else []
    res["table"] = table_rows(res, fixed_specs(cfg, recipe))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{recipe}.json").write_text(json.dumps(res, indent=1, default=float))
    return {k: res[k] for k in ("table", "groups", "targets", "reused", "not_run")}


def write_report(out: Path, report: dict[str, Any]) -> None:
    """``compare.json``, ``compare.md`` and ``compare.png`` of ``report`` in ``out``."""
    (out / "compare.json").write_text(json.dumps(report, indent=1, default=float))
    (out / "compare.md").write_text(markdown(report))
    plot(report, out / "compare.png")


def compare(cfg: dict[str, Any], command: str, progress: bool = True) -> dict[str, Any]:
    """Evaluate every recipe (training must be done) and write all outputs; returns ``compare.json``'s dict."""
    out = Path(cfg["output_dir"])
    items = scene_items(cfg["images"], int(cfg["scenes_per_image"]))
    fixed = list(cfg["planners"])
    groups: dict[str, list[str]] = {}
    for variant, v in cfg["learned"]["variants"].items():
        paths = [run_dir(cfg, variant, s) / "model.zip" for s in cfg["learned"]["seeds"]]
        gate = resolve_gate(v["planner"], v.get("gate", "off"))  # default: the policy as trained, ungated
        groups[variant] = [f"{v['planner']}:path={p}:gate={gate}" for p in paths if is_trained(p.parent)]
        if len(groups[variant]) < len(paths):
            log(f"warning: {variant}: {len(groups[variant])} of {len(paths)} seed models found")
    report: dict[str, Any] = {"command": command, "images": len(items), "recipes": {},
                              "config": {k: v for k, v in cfg.items() if k != "output_dir"}}
    for recipe in cfg["recipes"]:
        mine = fixed_specs(cfg, recipe)
        specs = mine + [s for g in groups.values() for s in g]
        res = evaluate_recipe(cfg, recipe, items, specs, progress=progress)
        res["groups"] = {v: group_seeds(res, v, specs_v, cfg["learned"]["variants"][v].get("label", v))
                         for v, specs_v in groups.items() if specs_v}
        res["not_run"] = [s for s in fixed if s not in mine]
        res["command"] = command
        report["recipes"][recipe] = finish_recipe(cfg, recipe, res, out)
    report["training"] = training_summary(cfg)
    write_report(out, report)
    log(f"wrote {out}/compare.json, compare.md, compare.png and one JSON per recipe")
    return report


def refreshes(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The refreshes recorded in a report or recipe result, oldest first (``refreshed``: one dict in reports
    written before stop 24, a list since)."""
    ref = result.get("refreshed") or []
    return [ref] if isinstance(ref, dict) else list(ref)


def add_refresh(result: dict[str, Any], specs: list[str], command: str, kind: str | None = None
                ) -> list[dict[str, Any]]:
    """``result``'s refreshes plus one of ``specs`` by ``command``; a spec re-made again leaves its older entry of
    the same ``kind`` (None: fixed planner specs; ``"variants"``: learned variants; an entry left with no spec is
    dropped), so each row names the command that made it last."""
    out = []
    for ref in refreshes(result):
        kept = [p for p in ref["planners"] if p not in specs or ref.get("kind") != kind]
        if kept:
            out.append({**ref, "planners": kept})
    return out + [{"planners": list(specs), "command": command, **({"kind": kind} if kind else {})}]


def refresh(cfg: dict[str, Any], specs: list[str], command: str, progress: bool = True) -> dict[str, Any]:
    """Re-evaluate only the fixed planner ``specs`` (e.g. after a change that affects those planners alone) and
    splice their rows into the output folder's existing comparison: every other row, the seed groups and the
    training summary are kept as they are (no seed model is needed); targets, table, ``compare.md`` and
    ``compare.png`` are re-made. Returns ``compare.json``'s dict. ``ValueError`` when the output folder holds
    no comparison yet or a spec is not one of the config's fixed planners."""
    out = Path(cfg["output_dir"])
    src = out / "compare.json"
    if not src.is_file():
        raise ValueError(f"{src} not found: run the whole comparison first")
    unknown = [s for s in specs if s not in cfg["planners"]]
    if unknown:
        raise ValueError(f"--refresh names planners that are not in the config's planners: {', '.join(unknown)}")
    report = json.loads(src.read_text())
    items = scene_items(cfg["images"], int(cfg["scenes_per_image"]))
    names = [n for n, _ in items]
    for recipe in cfg["recipes"]:
        path = out / f"{recipe}.json"
        res = json.loads(path.read_text())
        todo = [s for s in specs if s in fixed_specs(cfg, recipe)]
        if not todo:
            continue
        new = evaluate_recipe(cfg, recipe, items, todo, progress=progress)
        res["planners"].update(new["planners"])
        order = {s: i for i, s in enumerate(res["planners"])}
        res["rows"] = sorted([r for r in res["rows"] if r["planner"] not in todo] + new["rows"],
                             key=lambda r: (names.index(r["image"]), order[r["planner"]]))
        for spec in todo:
            res["reused"].pop(spec, None)
        res["reused"].update(new["reused"])  # rows taken again from baselines_dir keep their * mark
        res["refreshed"] = add_refresh(res, todo, command)
        report["recipes"][recipe] = finish_recipe(cfg, recipe, res, out)
    report["refreshed"] = add_refresh(report, specs, command)
    write_report(out, report)
    log(f"refreshed {', '.join(specs)} in {out}/compare.json, compare.md, compare.png and the recipe JSONs")
    return report


def refresh_variants(cfg: dict[str, Any], variants: list[str], command: str, progress: bool = True) -> dict[str, Any]:
    """Re-evaluate the seed models of the learned ``variants`` (all seeds trained, e.g. retrained after a change to
    the env or the tools) and splice their rows, seed groups and training-summary entries into the output folder's
    comparison; every other row and group is kept; targets, table, ``compare.md`` and ``compare.png`` are re-made.
    Returns ``compare.json``'s dict. ``ValueError`` when there is no comparison yet, a variant is unknown or one of
    its seed models is missing."""
    out = Path(cfg["output_dir"])
    src = out / "compare.json"
    if not src.is_file():
        raise ValueError(f"{src} not found: run the whole comparison first")
    known = cfg["learned"]["variants"]
    unknown = [v for v in variants if v not in known]
    if unknown:
        raise ValueError(f"--refresh-variants names unknown variants {', '.join(unknown)}; known: {', '.join(known)}")
    sources = {known[v].get("runs_of") or v for v in variants}
    variants = [v for v in known if v in variants or (known[v].get("runs_of") or v) in sources]  # runs_of ones too
    groups: dict[str, list[str]] = {}
    for variant in variants:
        v = known[variant]
        paths = [run_dir(cfg, variant, s) / "model.zip" for s in cfg["learned"]["seeds"]]
        missing = [str(p.parent) for p in paths if not is_trained(p.parent)]
        if missing:
            raise ValueError(f"{variant}: seed models missing ({', '.join(missing)}): train them first "
                             f"(--train-only --variants {variant})")
        gate = resolve_gate(v["planner"], v.get("gate", "off"))
        groups[variant] = [f"{v['planner']}:path={p}:gate={gate}" for p in paths]
    report = json.loads(src.read_text())
    items = scene_items(cfg["images"], int(cfg["scenes_per_image"]))
    names = [n for n, _ in items]
    specs = [s for g in groups.values() for s in g]
    for recipe in cfg["recipes"]:
        path = out / f"{recipe}.json"
        res = json.loads(path.read_text())
        stale = set(specs) | {s for v in groups for s in (res["groups"].get(v) or {}).get("specs", [])}
        for spec in stale:  # the variants' old seed rows go, also those of seeds or gates the config no longer has
            res["planners"].pop(spec, None)
        new = evaluate_recipe(cfg, recipe, items, specs, progress=progress)
        res["planners"].update(new["planners"])
        order = {s: i for i, s in enumerate(res["planners"])}
        res["rows"] = sorted([r for r in res["rows"] if r["planner"] not in stale] + new["rows"],
                             key=lambda r: (names.index(r["image"]), order[r["planner"]]))
        old_groups = res["groups"]
        for variant, specs_v in groups.items():
            old_groups[variant] = group_seeds(res, variant, specs_v, known[variant].get("label", variant))
        res["groups"] = {**{v: old_groups[v] for v in known if v in old_groups},  # the config's order first
                         **{v: g for v, g in old_groups.items() if v not in known}}  # other groups kept
        res["refreshed"] = add_refresh(res, variants, command, kind="variants")
        report["recipes"][recipe] = finish_recipe(cfg, recipe, res, out)
    mine = {run_dir(cfg, v, int(sd)).name for v in groups for sd in cfg["learned"]["seeds"]}
    prefixes = tuple(f"{known[v].get('runs_of') or v}_s" for v in groups)
    kept = {k: x for k, x in report.get("training", {}).items() if not k.startswith(prefixes)}  # removed seeds too
    report["training"] = {**kept, **{k: x for k, x in training_summary(cfg).items() if k in mine}}
    report["refreshed"] = add_refresh(report, variants, command, kind="variants")  # learned variants, not specs
    write_report(out, report)
    log(f"refreshed the seed groups {', '.join(variants)} in {out}/compare.json, compare.md, compare.png and the "
        "recipe JSONs")
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: train missing seed models, then evaluate and write the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="experiments/configs/compare.yaml",
                    help="comparison YAML (default: %(default)s)")
    ap.add_argument("--train-only", action="store_true", help="train the missing seed models, do not evaluate")
    ap.add_argument("--skip-training", action="store_true", help="evaluate the seed models that exist")
    ap.add_argument("--variants", default="", help="comma-separated subset of learned.variants to train "
                    "(default: all)")
    ap.add_argument("--seeds", default="", help="comma-separated subset of learned.seeds to train (default: all)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--replot", action="store_true", help="only re-draw compare.png and re-write compare.md from the "
                    "output folder's compare.json (after a change to the plot or the report; nothing trained or "
                    "evaluated)")
    ap.add_argument("--refresh-variants", default="", help="comma-separated learned variants whose seed models "
                    "were retrained (remove runs_dir/V_s*, run --train-only --variants V first): re-evaluate them "
                    "and splice their rows and groups into the output folder's comparison (other rows kept)")
    ap.add_argument("--refresh", default="", help="comma-separated fixed planner specs, or 'all' for every one: "
                    "re-evaluate only these and splice them into the output folder's comparison (the seed-averaged "
                    "learned rows and every other row kept; nothing trained)")
    args = ap.parse_args(argv)
    modes = [f for f, on in (("--train-only", args.train_only), ("--skip-training", args.skip_training),
                             ("--replot", args.replot), ("--refresh", bool(args.refresh)),
                             ("--refresh-variants", bool(args.refresh_variants))) if on]
    if len(modes) > 1:
        print(f"error: {' and '.join(modes)} exclude each other: give one", file=sys.stderr)
        return 2
    try:
        cfg = load_compare_config(args.config)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.replot:
        src = Path(cfg["output_dir"]) / "compare.json"
        if not src.is_file():
            print(f"error: {src} not found: run the comparison first", file=sys.stderr)
            return 2
        report = json.loads(src.read_text())
        log(f"wrote {plot(report, src.with_name('compare.png'))}")
        src.with_name("compare.md").write_text(markdown(report))
        log(f"wrote {src.with_name('compare.md')}")
        return 0
    from policies.ppo.train import set_single_thread

    set_single_thread()
    if args.refresh_variants:
        variants = [v for v in args.refresh_variants.split(",") if v]
        try:
            refresh_variants(cfg, variants, "python -m experiments.compare --config "
                             f"{args.config} --refresh-variants {args.refresh_variants}", progress=not args.no_progress)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.refresh:
        specs = list(cfg["planners"]) if args.refresh == "all" else [s for s in args.refresh.split(",") if s]
        try:
            refresh(cfg, specs, f"python -m experiments.compare --config {args.config} --refresh {args.refresh}",
                    progress=not args.no_progress)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    for spec in cfg["planners"]:  # every fixed planner builds before the first (long) evaluation
        parse_planner_spec(spec, default_judge=cfg["no_reference_judge"])
    if not args.skip_training:
        variants = [v for v in args.variants.split(",") if v] or list(cfg["learned"]["variants"])
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s] or [int(s) for s in cfg["learned"]["seeds"]]
        except ValueError:
            raise ValueError(f"--seeds must be whole numbers separated by commas, got {args.seeds!r}") from None
        stray = [s for s in seeds if s not in cfg["learned"]["seeds"]]
        if stray:  # a model of another seed would be trained, then never evaluated
            raise ValueError(f"--seeds {', '.join(map(str, stray))} not in learned.seeds "
                             f"({', '.join(map(str, cfg['learned']['seeds']))}) of {args.config}")
        for variant in variants:
            if variant not in cfg["learned"]["variants"]:
                print(f"error: unknown variant {variant!r}; known: {', '.join(cfg['learned']['variants'])}",
                      file=sys.stderr)
                return 2
            if cfg["learned"]["variants"][variant].get("runs_of"):
                continue  # evaluates its source variant's models
            for seed in seeds:
                train_seed(cfg, variant, seed)
    if not args.train_only:
        compare(cfg, f"python -m experiments.compare --config {args.config}", progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
