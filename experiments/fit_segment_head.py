"""Fit the encoder's segmentation head (:mod:`ir_env.encoder.segment`) on the frozen encoder's features.

Scenes: as ``experiments/train_encoder.py`` makes them from the config's ``data`` section (TRAIN photos
only; train scenes from seed stream 1, validation scenes from stream 2). Each scene gives the frozen
encoder's (C, h, w) feature map and, per 8x8 cell and family, the target: the fraction of the cell's
pixels lying in a ground-truth region degraded by that family (soft labels; a clean crop is 0 everywhere).
Loss: binary cross-entropy with those soft targets (with ``train.balanced`` positives weighted by the
family's negative / positive cell mass, clipped to [1, 10]). Then each family's threshold is set to its best
per-cell F1 on the validation cells (target >= 0.5 counts as present) and stored as the head's calibration.

With ``targets: benefit`` (section ``benefit``) the head learns instead WHERE THE PLANNER'S TOOL HELPS: per
scene, following :data:`policies.rules.RESTORE_ORDER`, each family's rule-table tool is applied to the image
(in every true region at that region's severity of the family, elsewhere at ``benefit.absent_severity``) and
the per-cell benefit is the drop of the squared error against the clean image (mean over the cell's pixels
and channels; then the image goes on restored on the family's true regions, as the planner with true masks
would). Target: benefit > 0; each cell's cross-entropy is weighted by ``floor + |benefit| / scale`` (scale:
the family's mean |benefit| over the training cells; clipped to 20), so cells where the tool would help or
harm a lot count most, and subtle degradations that the tool cannot improve count as "leave alone".
Calibration then uses those targets.

With ``data.more_crops`` (``{size: [train scenes, validation scenes]}``, sizes in px, multiples of 8) the
head also learns from scenes of other crop sizes (each size its own seed streams ``10 * size + 1`` / ``+ 2``;
batches hold one size each), so that what it learned of region shapes and of the image's mean feature is not
tied to one image size; calibration and the validation scores pool the cells of every size.

Reported on the validation cells, for the head and for the encoder's linear family head read per cell
(the dense map ``perceive:regions=families`` used before): per-family F1 and IoU of the thresholded maps
against the family targets (and, with ``targets: benefit``, against the benefit targets).

Writes a complete weights directory to ``output_dir`` (a copy of the encoder's ``encoder.pt`` /
``encoder.json`` plus ``segment_head.pt`` / ``segment_head.json``); ``--ship`` copies it to ``ship_dir``
(the shipped encoder must be the one it was fitted on).

    python -m experiments.fit_segment_head --config experiments/configs/segment_head.yaml [--ship]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402, N812
from tqdm import tqdm  # noqa: E402

from experiments.head_fit import check_head_config, copy_encoder, head_main  # noqa: E402
from ir_env.encoder.learned import file_sha256, load_encoder  # noqa: E402
from ir_env.encoder.model import STRIDE  # noqa: E402
from ir_env.encoder.segment import SegmentHead, save_segment_head  # noqa: E402
from policies.rules import RESTORE_ORDER, RuleTable  # noqa: E402
from restorers import apply  # noqa: E402
from restorers.spec import FAMILIES  # noqa: E402

#: Keys every config section must hold.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "data": ("corpus", "split", "crop", "scenes", "val_scenes", "recipes"),
    "head": ("hidden", "dilations", "image_context"),
    "train": ("epochs", "batch_size", "lr", "weight_decay"),
}
#: What the head learns (``targets``): the families present per cell, or where each family's tool helps.
TARGETS = ("families", "benefit")
#: Every key this script reads, per section (known keys, required keys: the required ones are
#: :data:`REQUIRED_KEYS`, checked by :func:`check_config`), as :func:`experiments.configio.check_sections` takes
#: them: a misspelt key is refused instead of silently ignored. ``name`` is a label kept with the head's config;
#: ``ship_dir`` is read by ``--ship``; ``_config_path`` is added by the command line.
CONFIG_SECTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "": (("name", "seed", "encoder", "targets", "benefit", "data", "head", "train", "output_dir", "ship_dir",
          "_config_path"), ()),
    "data": (("corpus", "split", "crop", "scenes", "val_scenes", "more_crops", "clean_frac", "workers", "augment",
              "recipes"), ()),
    "data.augment": (("scale", "colour"), ()),
    "benefit": (("table", "absent_severity", "floor"), ()),
    "head": (REQUIRED_KEYS["head"], ()),
    "train": (REQUIRED_KEYS["train"] + ("balanced", "threads"), ()),
}
#: Clip of a cell's loss weight with ``targets: benefit``.
MAX_BENEFIT_WEIGHT = 20.0
#: Per-cell thresholds searched by the calibration.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


def cell_rows(net: Any, data: dict[str, np.ndarray], batch: int = 64, progress: bool = True
              ) -> dict[str, np.ndarray]:
    """The frozen encoder's features ``feats`` (N, C, h, w) float16 and soft per-cell family targets
    ``target`` (N, F, h, w) float16 (fraction of each cell inside regions degraded by the family) of the
    scenes in ``data`` (from ``train_encoder.make_dataset``)."""
    from experiments.train_encoder import MAX_REGIONS

    feats, targets = [], []
    extra = {"benefit": data["benefit"]} if "benefit" in data else {}
    with torch.inference_mode():
        for i in tqdm(range(0, len(data["x"]), batch), desc="encoder features", unit="batch", leave=False,
                      disable=not progress):
            x = torch.from_numpy(data["x"][i:i + batch].astype(np.float32))
            feats.append(net.features(x).to(torch.float16).numpy())
            onehot = F.one_hot(torch.from_numpy(data["rmap"][i:i + batch]).long(), MAX_REGIONS)
            cells = F.avg_pool2d(onehot.permute(0, 3, 1, 2).float(), STRIDE)  # (B, 8, h, w) fraction inside
            fam = torch.from_numpy(data["fam"][i:i + batch].astype(np.float32))  # (B, 8, F)
            targets.append(torch.einsum("bkhw,bkf->bfhw", cells, fam).clamp(0, 1).to(torch.float16).numpy())
    target = np.concatenate(targets)
    return {"feats": np.concatenate(feats), "target": target, "family_target": target, **extra}


def cell_benefit(table: RuleTable, absent_severity: float, clean: np.ndarray, degraded: np.ndarray,
                 masks: np.ndarray, labels: list) -> dict[str, np.ndarray]:
    """``{"benefit": (F, h, w) float16}``: per 8x8 cell and family, the drop of the squared error (0-1 units,
    mean over the cell's pixels and channels) when the planner applies the family's rule-table tool there
    (module docstring). Images float32 HxWx3 in [0, 1], H and W multiples of 8; ``masks`` (K, H, W) bool
    partition; ``labels`` the regions' (kind, severity) lists."""
    from experiments.train_encoder import region_targets

    h, w = clean.shape[0] // STRIDE, clean.shape[1] // STRIDE

    def cells(e: np.ndarray) -> np.ndarray:
        return e.reshape(h, STRIDE, w, STRIDE).mean((1, 3))

    fam, sev = region_targets(labels)
    img = degraded
    err = ((img - clean) ** 2).mean(-1)
    out = np.zeros((len(FAMILIES), h, w), np.float32)
    for f in RESTORE_ORDER:
        j = FAMILIES.index(f)
        level = np.where(fam[:, j], sev[:, j], float(absent_severity))
        cand = np.empty_like(img)
        for s in np.unique(level):
            sel = masks[level == s].any(0)
            cand[sel] = apply(img, *table.lookup(f, float(s)))[sel]
        err_c = ((cand - clean) ** 2).mean(-1)
        out[j] = cells(err - err_c)
        true = masks[fam[:, j]].any(0)
        if true.any():
            img = np.where(true[..., None], cand, img)
            err = np.where(true, err_c, err)
    return {"benefit": out.astype(np.float16)}


def benefit_scale(groups: list[dict[str, np.ndarray]]) -> np.ndarray:
    """(F,) each family's mean |benefit| over every cell of ``groups`` (rows of one or more crop sizes, each
    holding ``benefit`` (N, F, h, w)), floored at 1e-8: the loss weights' scale."""
    means = [np.abs(g["benefit"].astype(np.float32)).mean((0, 2, 3)) for g in groups]
    cells = [g["benefit"].shape[0] * g["benefit"].shape[2] * g["benefit"].shape[3] for g in groups]
    pooled = sum(m.astype(np.float64) * c for m, c in zip(means, cells, strict=True)) / sum(cells)
    return np.maximum(pooled.astype(np.float32), 1e-8)


def benefit_rows(rows: dict[str, np.ndarray], scale: np.ndarray | None, floor: float) -> np.ndarray:
    """Turn ``rows`` (from :func:`cell_rows` on scenes with ``benefit``) into benefit rows in place:
    ``target`` = benefit > 0, ``weight`` = ``floor + |benefit| / scale`` (clipped); ``scale`` (F,) defaults to
    :func:`benefit_scale` of these rows (pass the training rows' to the validation rows). Returns ``scale``."""
    if scale is None:
        scale = benefit_scale([rows])
    b = rows.pop("benefit").astype(np.float32)
    rows["target"] = (b > 0).astype(np.float16)
    rows["weight"] = np.minimum(float(floor) + np.abs(b) / scale.reshape(1, -1, 1, 1),
                                MAX_BENEFIT_WEIGHT).astype(np.float16)
    return scale


def train_head(head: SegmentHead, rows: dict[str, np.ndarray] | list[dict[str, np.ndarray]], cfg: dict[str, Any],
               seed: int, progress: bool = True) -> list[float]:
    """Train ``head`` on ``rows`` (module docstring; a list: one group of rows per crop size, every batch from
    one group); returns the mean loss of every epoch."""
    tc = cfg["train"]
    groups = rows if isinstance(rows, list) else [rows]
    bs, epochs = int(tc["batch_size"]), int(tc["epochs"])
    sizes = [len(g["feats"]) for g in groups]
    steps = sum(n // bs for n in sizes)  # full batches per epoch
    if steps < 1:
        raise ValueError(f"{sum(sizes)} training scenes make no full batch of {bs} (per crop size); make more scenes")
    weighted = "weight" in groups[0]
    pos_weight = None
    if not weighted and tc.get("balanced", True):
        pos = torch.from_numpy(sum(g["target"].astype(np.float32).sum((0, 2, 3)) for g in groups))
        total = float(sum(np.prod(g["target"].shape) / g["target"].shape[1] for g in groups))
        pos_weight = ((total - pos) / pos.clamp_min(1.0)).clamp(1.0, 10.0).view(1, -1, 1, 1)
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.AdamW(head.parameters(), lr=float(tc["lr"]), weight_decay=float(tc["weight_decay"]))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps)
    head.train()
    history = []
    for _ in tqdm(range(epochs), desc="fit segment head", unit="epoch", disable=not progress):
        batches = []
        for k, n in enumerate(sizes):
            perm = torch.randperm(n, generator=gen).numpy()
            batches += [(k, np.sort(perm[i:i + bs])) for i in range(0, n - bs + 1, bs)]
        # one size: its batches in order (as before more_crops existed: same seed, same head)
        order = torch.randperm(len(batches), generator=gen).numpy() if len(groups) > 1 else range(len(batches))
        total_loss = 0.0
        for b in order:
            k, idx = batches[b]
            g = groups[k]
            f = torch.from_numpy(g["feats"][idx].astype(np.float32))
            y = torch.from_numpy(g["target"][idx].astype(np.float32))
            wt = torch.from_numpy(g["weight"][idx].astype(np.float32)) if weighted else None
            loss = F.binary_cross_entropy_with_logits(head.logits(f), y, weight=wt, pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach())
        history.append(total_loss / len(batches))
    head.eval()
    return history


def predict_cells(head: SegmentHead | None, net: Any, feats: np.ndarray, batch: int = 256,
                  calibrated: bool = True) -> np.ndarray:
    """(N, F, h, w) per-cell family probabilities of ``feats``: the head's (uncalibrated with
    ``calibrated=False``), or the encoder's linear family head per cell with ``head=None``."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(feats), batch):
            f = torch.from_numpy(feats[i:i + batch].astype(np.float32))
            if head is None:
                p = torch.sigmoid(net.heads(f.permute(0, 2, 3, 1))[0]).permute(0, 3, 1, 2)
            elif calibrated:
                p = head(f)
            else:
                p = torch.sigmoid(head.logits(f))
            out.append(p.numpy())
    return np.concatenate(out)


def cell_scores(prob: np.ndarray, target: np.ndarray, threshold: float | np.ndarray = 0.5) -> dict[str, Any]:
    """Per family, F1 and IoU of ``prob >= threshold`` against ``target >= 0.5`` over all cells; ``macro_f1``
    and ``mean_iou`` over the families."""
    thr = np.broadcast_to(np.asarray(threshold, np.float64), (prob.shape[1],))
    per: dict[str, dict[str, float]] = {}
    for j, fam in enumerate(FAMILIES):
        p, t = prob[:, j] >= thr[j], target[:, j].astype(np.float32) >= 0.5
        tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
        per[fam] = {"f1": 2 * tp / max(1, 2 * tp + fp + fn), "iou": tp / max(1, tp + fp + fn),
                    "positives": int(t.sum())}
    return {"families": per, "macro_f1": float(np.mean([v["f1"] for v in per.values()])),
            "mean_iou": float(np.mean([v["iou"] for v in per.values()]))}


def flat_cells(maps: list[np.ndarray]) -> np.ndarray:
    """Per-cell maps (N, F, h, w) of one or more crop sizes -> (cells, F): every cell of every map, one row each."""
    return np.concatenate([m.transpose(0, 2, 3, 1).reshape(-1, m.shape[1]) for m in maps])


def calibrate(head: SegmentHead, net: Any, rows: dict[str, np.ndarray] | list[dict[str, np.ndarray]]
              ) -> dict[str, float]:
    """Set ``head.threshold_logit`` to each family's best per-cell F1 threshold on ``rows`` (a list: the cells
    of every group pooled); returns {family: threshold}."""
    groups = rows if isinstance(rows, list) else [rows]
    prob = flat_cells([predict_cells(head, net, g["feats"], calibrated=False) for g in groups])
    truth = flat_cells([g["target"] for g in groups]).astype(np.float32) >= 0.5
    ts = []
    for j in range(prob.shape[1]):
        p, t = prob[:, j], truth[:, j]
        f1 = [2 * (q & t).sum() / max(1, q.sum() + t.sum()) for q in (p[:, None] >= THRESHOLD_GRID).T]
        ts.append(float(THRESHOLD_GRID[int(np.argmax(f1))]))
    t = np.asarray(ts)
    head.threshold_logit.copy_(torch.from_numpy(np.log(t / (1 - t))).float())
    return {f: float(v) for f, v in zip(FAMILIES, ts, strict=True)}


def size_groups(cfg: dict[str, Any]) -> list[tuple[int, int, int, int, int]]:
    """(crop px, train scenes, validation scenes, train seed stream, validation seed stream) per crop size:
    ``data.crop`` with ``data.scenes`` / ``data.val_scenes`` (streams 1 / 2), then each ``data.more_crops``
    entry ``size: [train, validation]`` (streams ``10 * size + 1`` / ``+ 2``). ``ValueError`` naming a bad entry."""
    d = cfg["data"]
    out = [(int(d["crop"]), int(d["scenes"]), int(d["val_scenes"]), 1, 2)]
    for size, counts in (d.get("more_crops") or {}).items():
        ok = isinstance(counts, (list, tuple)) and len(counts) == 2 and all(
            isinstance(c, int) and c >= 0 for c in counts)
        if not ok or int(size) % STRIDE or int(size) < STRIDE or int(size) in [g[0] for g in out]:
            raise ValueError(f"data.more_crops: each entry must be a new size (px, a multiple of {STRIDE}) -> "
                             f"[train scenes, validation scenes] (integers >= 0), got {size}: {counts}")
        out.append((int(size), int(counts[0]), int(counts[1]), 10 * int(size) + 1, 10 * int(size) + 2))
    return out


def fit(cfg: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Make the scenes, fit and calibrate the head, write ``output_dir``; returns the head's JSON metadata."""
    from experiments.train_encoder import make_dataset

    t0 = time.perf_counter()
    torch.set_num_threads(int(cfg["train"].get("threads", 1)))
    src = Path(cfg.get("encoder") or "ir_env/encoder/weights")
    enc = load_encoder(src)
    mode, extra, b = targets_of(cfg)
    train_rows, val_rows, val_crops = [], [], []
    for crop, n, nv, s_train, s_val in size_groups(cfg):
        data_cfg = {"seed": int(cfg["seed"]), "data": {**cfg["data"], "crop": crop}}
        if n:
            train_rows.append(cell_rows(enc.net, make_dataset(data_cfg, n, s_train, f"train scenes {crop} px", extra),
                                        progress=progress))
        if nv:
            val_rows.append(cell_rows(enc.net, make_dataset(data_cfg, nv, s_val, f"val scenes {crop} px", extra),
                                      progress=progress))
            val_crops.append(crop)
    if not val_rows:
        raise ValueError("no validation scenes: data.val_scenes (or a more_crops entry) must be >= 1")
    if mode == "benefit":
        floor = float(b.get("floor", 0.2))
        scale = benefit_scale(train_rows)
        for r in train_rows + val_rows:
            benefit_rows(r, scale, floor)
    t_data = time.perf_counter() - t0
    torch.manual_seed(int(cfg["seed"]))
    h = cfg["head"]
    head = SegmentHead(enc.net.channels, len(FAMILIES), hidden=int(h["hidden"]), dilations=tuple(h["dilations"]),
                       image_context=bool(h["image_context"]))
    head.mean.copy_(torch.from_numpy(enc.mean).float())
    head.std.copy_(torch.from_numpy(enc.std).float())
    history = train_head(head, train_rows, cfg, int(cfg["seed"]), progress)
    thresholds = calibrate(head, enc.net, val_rows)
    lin_maps = [predict_cells(None, enc.net, r["feats"]) for r in val_rows]  # per crop size, computed once
    seg_maps = [predict_cells(head, enc.net, r["feats"]) for r in val_rows]
    lin_prob, seg_prob = flat_cells(lin_maps), flat_cells(seg_maps)
    fam_target = flat_cells([r["family_target"] for r in val_rows])
    validation = {"scenes": int(sum(len(r["feats"]) for r in val_rows)), "cells": int(len(fam_target)),
                  "linear_head_per_cell": cell_scores(lin_prob, fam_target),
                  "segment_head": cell_scores(seg_prob, fam_target)}
    if len(val_rows) > 1:  # each crop size alone as well
        validation["per_size"] = {}
        for crop, r, lp, sp in zip(val_crops, val_rows, lin_maps, seg_maps, strict=True):
            t = flat_cells([r["family_target"]])
            validation["per_size"][str(crop)] = {"scenes": len(r["feats"]),
                                                 "linear_head_per_cell": cell_scores(flat_cells([lp]), t),
                                                 "segment_head": cell_scores(flat_cells([sp]), t)}
    if mode == "benefit":
        ben_target = flat_cells([r["target"] for r in val_rows])
        validation["benefit_targets"] = {"positive_share": {f: float(ben_target[:, j].astype(np.float32).mean())
                                                            for j, f in enumerate(FAMILIES)},
                                         "linear_head_per_cell": cell_scores(lin_prob, ben_target),
                                         "segment_head": cell_scores(seg_prob, ben_target)}
    out = Path(cfg["output_dir"])
    copy_encoder(src, out)
    meta = {"encoder_sha256": file_sha256(src / "encoder.pt"), "encoder_source": str(src), "thresholds": thresholds,
            "validation": validation,
            "train_scenes": int(sum(len(r["feats"]) for r in train_rows)), "epoch_loss": history,
            "seconds": {"data": round(t_data, 1), "total": round(time.perf_counter() - t0, 1)},
            "config": {k: v for k, v in cfg.items() if not k.startswith("_")},
            "command": "python -m experiments.fit_segment_head --config " + str(cfg.get("_config_path", ""))}
    save_segment_head(head, out, meta)
    return meta


def targets_of(cfg: dict[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    """(``targets`` mode, the scene hook for :func:`experiments.train_encoder.make_dataset` or None, the
    ``benefit`` section) of ``cfg``; ``ValueError`` for an unknown mode or a missing rule table."""
    import functools

    mode = str(cfg.get("targets", "families"))
    if mode not in TARGETS:
        raise ValueError(f"targets must be one of {', '.join(TARGETS)}, got {mode!r}")
    if mode == "families":
        return mode, None, {}
    b = dict(cfg.get("benefit") or {})
    table = RuleTable.load(b["table"]) if b.get("table") else RuleTable.load()
    absent = float(b.get("absent_severity", 0.5))
    if not 0.0 <= absent <= 1.0:
        raise ValueError(f"benefit.absent_severity must lie in [0, 1], got {absent}")
    return mode, functools.partial(cell_benefit, table, absent), b


def check_config(cfg: Any, where: str = "config") -> dict[str, Any]:
    """``cfg`` if it holds every :data:`REQUIRED_KEYS` key, ``seed`` and ``output_dir``, no key this script does
    not read (:data:`CONFIG_SECTIONS`), a known ``targets`` and true / false switches; else ``ValueError`` naming
    ``where`` (the config file) and the key."""
    from experiments.configio import check_sections

    check_head_config(cfg, REQUIRED_KEYS)
    check_sections(cfg, CONFIG_SECTIONS, where)
    if cfg.get("targets", "families") not in TARGETS:
        raise ValueError(f"{where}: targets must be one of {', '.join(TARGETS)}, got {cfg['targets']!r}")
    for section, key in (("head", "image_context"), ("train", "balanced")):
        if key in cfg[section] and not isinstance(cfg[section][key], bool):
            raise ValueError(f"{where}: {section}.{key} must be true or false, got {cfg[section][key]!r}")
    return cfg


def summary(meta: dict[str, Any], cfg: dict[str, Any]) -> str:
    """The line printed after a fit."""
    v = meta["validation"]
    lin, seg = v["linear_head_per_cell"], v["segment_head"]
    more = ""
    if "benefit_targets" in v:
        bl, bs = v["benefit_targets"]["linear_head_per_cell"], v["benefit_targets"]["segment_head"]
        more = f"; against the benefit targets: linear {bl['macro_f1']:.3f}, segment head {bs['macro_f1']:.3f}"
    return (f"validation cells ({v['scenes']} scenes): per-cell macro-F1 / mean IoU: linear head "
            f"{lin['macro_f1']:.3f} / {lin['mean_iou']:.3f}, segment head {seg['macro_f1']:.3f} / "
            f"{seg['mean_iou']:.3f}{more}; {meta['seconds']['total']:.0f} s; weights in {cfg['output_dir']}")


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.fit_segment_head`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    return head_main(argv, __doc__.split("\n\n")[0], "experiments/configs/segment_head.yaml", check_config, fit,
                     summary)


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
