"""Train the learned degradation encoder (:mod:`ir_env.encoder`) from a config.

Data: random ``crop`` px crops of the built-in TRAIN photos, each degraded by a recipe drawn with the
config's weights (``agenticir-B`` / ``-C`` are never used), plus a few clean crops. A scene's ground-truth
regions give the targets: per region, the set of families present (multi-label) and, per present family,
its severity (the largest severity of its kinds, in [0, 1]). Validation scenes come from the same photos
with another seed stream (no test photo is ever seen); the epoch with the best validation macro-F1 (at
each family's best threshold) is kept.

Loss per batch: binary cross-entropy of the family logits of every ground-truth region (features pooled
over the region's mask; with ``train.balanced`` positives are weighted by the family's negatives /
positives ratio in the training regions, clipped to [1, 10]) + ``severity_weight`` x L1 of the sigmoid
severity of the present families + ``dense_weight`` x the same two terms per feature cell lying (>= 90 %)
inside one region. Random flips and 90-degree rotations augment the crops. After training, each family
head's bias is shifted so that probability 0.5 sits at the threshold with the best validation F1
(``thresholds`` in ``encoder.json``).

``train.precision: bf16`` runs the network's forward pass of each training batch under CPU bfloat16
autocast (1.6x faster per batch on the project's AVX512-BF16 CPU: runs/encoder_v9 vs runs/encoder_v8);
losses, optimiser state, validation and the saved weights stay float32; the default is ``fp32``.

    python -m experiments.train_encoder --config experiments/configs/encoder_v8.yaml [--ship] [--quick]

Writes ``<output_dir>/encoder.pt``, ``encoder.json`` (config, metrics, standardisation) and ``log.json``;
``--ship`` copies the pair to ``ship_dir`` (the shipped default weights).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402, N812
from tqdm import tqdm  # noqa: E402

from experiments.configio import flag_value, number_value, whole_value  # noqa: E402
from ir_env.corpus import load_corpus, random_crop  # noqa: E402
from ir_env.degradations import FAMILY_OF_KIND  # noqa: E402
from ir_env.encoder.learned import EncoderWeightsError, save_weights, ship_weights  # noqa: E402
from ir_env.encoder.metrics import family_metrics  # noqa: E402
from ir_env.encoder.model import STRIDE, DegradationNet  # noqa: E402
from ir_env.recipes import synthesize  # noqa: E402
from restorers.spec import FAMILIES  # noqa: E402

MAX_REGIONS = 8
UNSEEN_RECIPES = ("agenticir-B", "agenticir-C")
PRECISIONS = ("fp32", "bf16")  # train.precision: the training forward pass's arithmetic
#: Keys of ``cfg['arch']`` (:func:`architecture`).
ARCH_KEYS = ("batchnorm", "dct", "dilations", "pool_power")
#: The config's keys: (known, required) at the top level ("") and in each section (see
#: :func:`experiments.configio.check_sections`). ``name`` is a label kept with the weights' config; ``ship_dir`` is
#: read by ``--ship``; ``_config_path`` is added by :func:`load_train_config`.
CONFIG_SECTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "": (("name", "seed", "channels", "arch", "data", "train", "output_dir", "ship_dir", "_config_path"),
         ("seed", "channels", "data", "train", "output_dir")),
    "arch": (ARCH_KEYS, ()),
    "data": (("corpus", "split", "crop", "scenes", "val_scenes", "clean_frac", "clean_split", "augment", "recipes",
              "workers"), ("corpus", "split", "crop", "scenes", "val_scenes", "recipes")),
    "data.augment": (("scale", "colour"), ()),
    "train": (("epochs", "batch_size", "lr", "weight_decay", "severity_weight", "dense_weight", "balanced", "threads",
               "precision", "swa_epochs"), ("epochs", "batch_size", "lr", "weight_decay", "severity_weight",
                                            "dense_weight")),
}
#: A per-scene hook of :func:`make_dataset`: (clean, degraded, masks, labels) -> extra arrays of that scene.
SceneExtra = Callable[[np.ndarray, np.ndarray, np.ndarray, list], dict[str, np.ndarray]]


def region_targets(labels: list[list[tuple[str, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Per region: (F,) bool family presence and (F,) float32 severity (max over the family's kinds)."""
    fam = np.zeros((len(labels), len(FAMILIES)), bool)
    sev = np.zeros((len(labels), len(FAMILIES)), np.float32)
    for k, kinds in enumerate(labels):
        for kind, s in kinds:
            j = FAMILIES.index(FAMILY_OF_KIND[kind])
            fam[k, j] = True
            sev[k, j] = max(sev[k, j], float(s))
    return fam, sev


def architecture(cfg: dict[str, Any]) -> dict[str, Any]:
    """The network options of ``cfg['arch']``: ``batchnorm``, ``dct`` (default False), ``dilations``
    (default [2, 4]), ``pool_power`` (default 1: the plain mask-weighted mean)."""
    arch = dict(cfg.get("arch") or {})
    unknown = set(arch) - set(ARCH_KEYS)
    if unknown:
        raise ValueError(f"unknown arch options {sorted(unknown)}; known: {', '.join(ARCH_KEYS)}")
    check_arch(arch, "config")  # arch.dilations: 2 (not a list) is named, not a TypeError traceback
    out: dict[str, Any] = {k: bool(arch.get(k, False)) for k in ("batchnorm", "dct")}
    out["dilations"] = tuple(int(d) for d in arch.get("dilations", (2, 4)))
    out["pool_power"] = float(arch.get("pool_power", 1.0))
    return out


def check_arch(arch: Any, where: str) -> None:
    """``ValueError`` naming ``where`` and the key for an ``arch`` value the network cannot take: ``batchnorm`` /
    ``dct`` not true/false, ``dilations`` not a non-empty list of whole numbers >= 1, ``pool_power`` not in [1, 16]."""
    if arch is None:
        return
    if not isinstance(arch, dict):
        raise ValueError(f"{where}: arch must be a mapping of config keys, got {arch!r}")
    for key in ("batchnorm", "dct"):
        if key in arch:
            flag_value(arch[key], f"arch.{key}", where)
    if "dilations" in arch:
        d = arch["dilations"]
        if (not isinstance(d, (list, tuple)) or not d
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in d)):
            raise ValueError(f"{where}: arch.dilations must be a non-empty list of whole numbers >= 1 (e.g. [2, 4]), "
                             f"got {d!r}")
    if "pool_power" in arch:
        number_value(arch["pool_power"], "arch.pool_power", where, 1.0, 16.0)


def check_recipes(recipes: Any, name: str, where: str) -> None:
    """``ValueError`` naming ``where`` and ``name`` unless ``recipes`` maps known recipe names (not the held-out
    ``agenticir-B`` / ``-C``) to sampling weights >= 0, at least one of them > 0."""
    from ir_env.recipes import list_recipes

    if not isinstance(recipes, dict) or not recipes:
        raise ValueError(f"{where}: {name} must map recipe names to sampling weights, got {recipes!r}")
    known = [r for r in list_recipes() if r not in UNSEEN_RECIPES]
    for r, w in recipes.items():
        if r in UNSEEN_RECIPES:
            raise ValueError(f"{where}: {name}: {r} is held out for unseen-combination tests (agenticir-B / -C)")
        if r not in known:
            raise ValueError(f"{where}: {name}: unknown recipe {r!r}; known: {', '.join(known)}")
        number_value(w, f"{name}.{r}", where, 0.0)
    if not sum(float(w) for w in recipes.values()) > 0:
        raise ValueError(f"{where}: {name}: the sampling weights sum to 0")


def check_corpus(data: dict[str, Any], where: str, section: str = "data") -> None:
    """``ValueError`` naming ``where`` and ``section.corpus`` / ``section.split`` for a corpus that is neither a
    named corpus nor a folder, or a split that is not train, test or all (nothing is read)."""
    from ir_env.corpus import NAMED_CORPORA, SPLITS

    corpus = data.get("corpus")
    if corpus is not None:
        if not isinstance(corpus, str) or not corpus.strip():
            raise ValueError(f"{where}: {section}.corpus must name a corpus ({', '.join(NAMED_CORPORA)}) or a "
                             f"folder, got {corpus!r}")
        if corpus not in NAMED_CORPORA and not Path(corpus).expanduser().is_dir():
            raise ValueError(f"{where}: {section}.corpus {corpus!r} is neither a named corpus "
                             f"({', '.join(NAMED_CORPORA)}) nor a folder")
    if "split" in data and data["split"] not in SPLITS:
        raise ValueError(f"{where}: {section}.split must be one of {', '.join(SPLITS)}, got {data['split']!r}")


def check_data(data: dict[str, Any], where: str) -> None:
    """``ValueError`` naming ``where`` and ``data.<key>`` for a value of :func:`make_dataset`'s ``data`` section it
    cannot use (checked before any scene is made): corpus / split, ``crop`` a multiple of 8, scene counts >= 1,
    shares in [0, 1], ``workers`` >= 1, ``augment``, ``recipes``. Shared with ``fit_context_head``."""
    check_corpus(data, where)
    if "crop" in data:
        crop = whole_value(data["crop"], "data.crop", where, STRIDE)
        if crop % STRIDE:
            raise ValueError(f"{where}: data.crop must be a multiple of {STRIDE}, got {crop}")
    for key in ("scenes", "val_scenes"):
        if key in data:
            whole_value(data[key], f"data.{key}", where, 1)
    for key in ("clean_frac", "clean_split"):
        if key in data:
            number_value(data[key], f"data.{key}", where, 0.0, 1.0)
    if "workers" in data:
        whole_value(data["workers"], "data.workers", where, 1)
    aug = data.get("augment")
    if isinstance(aug, dict):
        if aug.get("scale") is not None:
            sc = aug["scale"]
            if (not isinstance(sc, (list, tuple)) or len(sc) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in sc)
                    or not 0 < sc[0] <= sc[1]):
                raise ValueError(f"{where}: data.augment.scale must be [lo, hi] with 0 < lo <= hi, got {sc!r}")
        if "colour" in aug:
            flag_value(aug["colour"], "data.augment.colour", where)
    if "recipes" in data:
        check_recipes(data["recipes"], "data.recipes", where)


def augment_clean(photo: np.ndarray, size: int, rng: np.random.Generator, aug: dict[str, Any]) -> np.ndarray:
    """A random ``size`` px crop of ``photo`` with the config's ``data.augment`` applied BEFORE degradation:
    ``scale: [lo, hi]`` resizes the photo by a factor drawn in that range (never below the crop; test photos
    are smaller than train ones, so a crop holds more of the scene), ``colour: true`` draws a channel
    permutation (half of the time), a saturation factor in [0.6, 1.3] and a gamma in [0.8, 1.25] (8 train photos: more
    colours and tones without new content). Output float32 in [0, 1]."""
    img = photo
    if aug.get("scale"):
        lo, hi = (float(v) for v in aug["scale"])
        f = max(float(rng.uniform(lo, hi)), size / min(img.shape[:2]))
        if f < 0.999:
            img = cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_AREA)
    crop = random_crop(img, size, rng)
    if aug.get("colour"):
        if rng.random() < 0.5:
            crop = crop[..., rng.permutation(3)]
        luma = crop.mean(-1, keepdims=True)
        crop = luma + float(rng.uniform(0.6, 1.3)) * (crop - luma)
        crop = np.clip(crop, 0.0, 1.0) ** float(rng.uniform(0.8, 1.25))
    return np.ascontiguousarray(np.clip(crop, 0.0, 1.0), dtype=np.float32)


def make_dataset(cfg: dict[str, Any], n: int, seed_stream: int, desc: str, extra: SceneExtra | None = None
                 ) -> dict[str, np.ndarray]:
    """``n`` scenes: images (n, 3, S, S) float16, region index maps (n, S, S) int8, targets (n, 8, F).

    ``extra`` (a picklable function) is called on every scene's float32 (clean, degraded, masks (K, S, S),
    labels) after it is made; each array it returns is stacked over the scenes under its key. It draws
    nothing from the scene stream, so the scenes are the same with or without it.

    With ``data.workers`` > 1 the scenes are made in that many processes, chunk ``k`` from the seed
    ``[seed, seed_stream, k]`` (another, equally reproducible scene stream than one process makes)."""
    d = cfg["data"]
    size = int(d["crop"])
    if size % STRIDE:
        raise ValueError(f"data.crop must be a multiple of {STRIDE}, got {size}")
    bad = [r for r in d["recipes"] if r in UNSEEN_RECIPES]
    if bad:
        raise ValueError(f"recipes {bad} are held out for unseen-combination tests (agenticir-B / -C)")
    workers = int(d.get("workers", 1))
    if workers < 1:
        raise ValueError(f"data.workers must be >= 1, got {workers}")
    if workers == 1 or n < 2 * workers:
        return _make_scenes(cfg, n, [int(cfg["seed"]), seed_stream], desc, extra)
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    sizes = [n // workers + (k < n % workers) for k in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        parts = list(pool.map(_make_scenes, [cfg] * workers, sizes,
                              [[int(cfg["seed"]), seed_stream, k] for k in range(workers)],
                              [f"{desc} ({k + 1}/{workers})" for k in range(workers)], [extra] * workers))
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _make_scenes(cfg: dict[str, Any], n: int, seed: list[int], desc: str, extra: SceneExtra | None = None
                 ) -> dict[str, np.ndarray]:
    d = cfg["data"]
    size = int(d["crop"])
    recipes = {r: float(w) for r, w in d["recipes"].items()}
    names = list(recipes)
    p = np.asarray([recipes[r] for r in names], np.float64)
    p /= p.sum()
    photos = load_corpus(d["corpus"], d["split"])
    aug = dict(d.get("augment") or {})
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 3, size, size), np.float16)
    rmap = np.zeros((n, size, size), np.int8)
    fam = np.zeros((n, MAX_REGIONS, len(FAMILIES)), bool)
    sev = np.zeros((n, MAX_REGIONS, len(FAMILIES)), np.float32)
    nreg = np.zeros(n, np.int8)
    more: dict[str, list[np.ndarray]] = {}
    for i in tqdm(range(n), desc=desc, unit="scene", leave=False):
        photo = photos[int(rng.integers(len(photos)))]
        clean = augment_clean(photo, size, rng, aug) if aug else random_crop(photo, size, rng)
        if rng.random() < float(d.get("clean_frac", 0.0)):
            img, masks, labels = clean, np.ones((1, size, size), bool), [[]]
        else:
            scene = synthesize(clean, recipe=names[int(rng.choice(len(names), p=p))],
                               seed=int(rng.integers(2**31 - 1)))
            img, masks, labels = scene.degraded, scene.masks[:MAX_REGIONS], scene.labels[:MAX_REGIONS]
        x[i] = img.transpose(2, 0, 1)
        rmap[i] = np.argmax(masks, axis=0)
        f, s = region_targets(labels)
        fam[i, : len(f)], sev[i, : len(s)], nreg[i] = f, s, len(f)
        if extra is not None:
            for key, value in extra(clean, img, masks, labels).items():
                more.setdefault(key, []).append(value)
    return {"x": x, "rmap": rmap, "fam": fam, "sev": sev, "nreg": nreg,
            **{key: np.stack(v) for key, v in more.items()}}


def split_clean(data: dict[str, np.ndarray], share: float, seed: list[int]) -> dict[str, np.ndarray]:
    """``data`` with a ``share`` of its clean crops (one region, no family present) split into 2-4 random
    blob regions (:func:`ir_env.masks.blob_partition`), all clean: the recipes never put a clean region next
    to others, and without such rows the head learns that any region differing from the rest is degraded.
    Modifies ``rmap`` / ``nreg`` in place; returns ``data``."""
    from ir_env.masks import blob_partition

    if not 0.0 <= share <= 1.0:
        raise ValueError(f"data.clean_split must be in [0, 1], got {share}")
    rng = np.random.default_rng(seed)
    size = data["rmap"].shape[1]
    for i in np.flatnonzero((data["nreg"] == 1) & ~data["fam"][:, 0].any(axis=1)):
        if rng.random() < share:
            lab = blob_partition(size, size, int(rng.integers(2, 5)), rng)
            data["rmap"][i], data["nreg"][i] = lab, int(lab.max()) + 1
    return data


def _augment(x: torch.Tensor, r: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k = int(rng.integers(4))
    if k:
        x, r = torch.rot90(x, k, (2, 3)), torch.rot90(r, k, (1, 2))
    if rng.random() < 0.5:
        x, r = torch.flip(x, (3,)), torch.flip(r, (2,))
    return x, r


def batch_outputs(net: DegradationNet, x: torch.Tensor, rmap: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pooled region features (B, 8, C), region weights' totals (B, 8), cell features and cell weights."""
    feats = net.features(x)  # (B, C, h, w)
    onehot = F.one_hot(rmap.long(), MAX_REGIONS).permute(0, 3, 1, 2).float()  # (B, 8, S, S)
    w = F.avg_pool2d(onehot, STRIDE)  # (B, 8, h, w)
    wp = net.region_weights(w)
    total = wp.sum((2, 3))
    pooled = torch.einsum("bkhw,bchw->bkc", wp, feats) / total.clamp_min(1e-6)[..., None]
    return {"feats": feats, "w": w, "total": total, "pooled": pooled}


def losses(net: DegradationNet, out: dict[str, torch.Tensor], fam: torch.Tensor, sev: torch.Tensor,
           nreg: torch.Tensor, cfg: dict[str, Any], pos_weight: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss (module docstring) and its parts; ``pos_weight`` (F,) weighs positive labels."""
    valid = (torch.arange(MAX_REGIONS)[None] < nreg[:, None].long()) & (out["total"] > 0)
    lf, ls = net.heads(out["pooled"])
    famf = fam.float()
    bce = F.binary_cross_entropy_with_logits(lf, famf, reduction="none", pos_weight=pos_weight).mean(-1)
    l1 = ((torch.sigmoid(ls) - sev).abs() * famf).sum(-1) / famf.sum(-1).clamp_min(1)
    region = (bce + cfg["train"]["severity_weight"] * l1)[valid].mean()
    # dense: cells >= 90 % inside one region take that region's targets
    wmax, kmax = out["w"].max(1)  # (B, h, w)
    pure = wmax >= 0.9
    cf = out["feats"].permute(0, 2, 3, 1)[pure]  # (N, C)
    bidx = torch.nonzero(pure)[:, 0]
    tf, ts = famf[bidx, kmax[pure]], sev[bidx, kmax[pure]]
    clf, cls_ = net.heads(cf)
    cbce = F.binary_cross_entropy_with_logits(clf, tf, reduction="none", pos_weight=pos_weight).mean(-1)
    cl1 = ((torch.sigmoid(cls_) - ts).abs() * tf).sum(-1) / tf.sum(-1).clamp_min(1)
    dense = (cbce + cfg["train"]["severity_weight"] * cl1).mean()
    loss = region + cfg["train"]["dense_weight"] * dense
    return loss, {"region": region.item(), "dense": dense.item()}


def predict_regions(net: DegradationNet, data: dict[str, np.ndarray], batch: int = 64) -> tuple[np.ndarray, ...]:
    """Per ground-truth region of ``data``: (probabilities, severities, true families, true severities)."""
    net.eval()
    probs, sevs, fams, tsev = [], [], [], []
    with torch.inference_mode():
        for i in range(0, len(data["x"]), batch):
            x = torch.from_numpy(data["x"][i:i + batch].astype(np.float32))
            r = torch.from_numpy(data["rmap"][i:i + batch])
            out = batch_outputs(net, x, r)
            lf, ls = net.heads(out["pooled"])
            nreg = data["nreg"][i:i + batch]
            for b in range(len(x)):
                for k in range(int(nreg[b])):
                    if float(out["total"][b, k]) <= 0:
                        continue
                    probs.append(torch.sigmoid(lf[b, k]).numpy())
                    sevs.append(torch.sigmoid(ls[b, k]).numpy())
                    fams.append(data["fam"][i + b, k])
                    tsev.append(data["sev"][i + b, k])
    net.train()
    return np.asarray(probs), np.asarray(sevs), np.asarray(fams), np.asarray(tsev)


def evaluate(net: DegradationNet, data: dict[str, np.ndarray], batch: int = 64) -> dict[str, Any]:
    """Region-level macro-F1 (threshold 0.5), per-family F1 and severity MAE on present families, and
    ``macro_f1_calibrated``: the macro-F1 with each family's best threshold (picks the epoch)."""
    pred = predict_regions(net, data, batch)
    out = family_metrics(*pred)
    out["macro_f1_calibrated"] = float(best_thresholds(pred[0], pred[2])[1].mean())
    return out


THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


def best_thresholds(prob: np.ndarray, fam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per family (columns), the threshold of :data:`THRESHOLD_GRID` with the best F1 and that F1."""
    ts, f1s = [], []
    for j in range(prob.shape[1]):
        true = fam[:, j].astype(bool)
        pred = prob[:, j, None] >= THRESHOLD_GRID  # (N, G)
        f1 = 2 * (pred & true[:, None]).sum(0) / np.maximum(1, pred.sum(0) + true.sum())
        k = int(np.argmax(f1))
        ts.append(float(THRESHOLD_GRID[k]))
        f1s.append(float(f1[k]))
    return np.asarray(ts), np.asarray(f1s)


def calibrate_thresholds(net: DegradationNet, data: dict[str, np.ndarray]) -> dict[str, float]:
    """Per family, the probability threshold in [0.05, 0.95] with the best F1 on ``data``; each family
    logit's bias is shifted by ``-logit(t)`` so that 0.5 becomes that threshold. Returns {family: t}."""
    prob, _, fam, _ = predict_regions(net, data)
    ts, _ = best_thresholds(prob, fam)
    with torch.no_grad():
        net.family_head.bias -= torch.from_numpy(np.log(ts / (1 - ts))).to(net.family_head.bias.dtype)
    return {f: float(t) for f, t in zip(FAMILIES, ts, strict=True)}


def refresh_batchnorm(net: DegradationNet, data: dict[str, np.ndarray], scenes: int = 2000, batch: int = 64) -> None:
    """Re-estimate every BatchNorm's running mean / variance as the plain average over the first ``scenes``
    training scenes (needed after averaging weights: the averaged network's activations differ)."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    with torch.no_grad():
        for i in range(0, min(scenes, len(data["x"])), batch):
            net.features(torch.from_numpy(data["x"][i:i + batch].astype(np.float32)))
    for m, mom in zip(bns, momenta, strict=True):
        m.momentum = mom


def feature_stats(net: DegradationNet, data: dict[str, np.ndarray], batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Mean / std (floored at 1e-3) of the region-pooled features over ``data``'s regions."""
    rows = []
    with torch.inference_mode():
        for i in range(0, len(data["x"]), batch):
            out = batch_outputs(net, torch.from_numpy(data["x"][i:i + batch].astype(np.float32)),
                                torch.from_numpy(data["rmap"][i:i + batch]))
            ok = out["total"] > 0
            rows.append(out["pooled"][ok].numpy().astype(np.float64))
    z = np.concatenate(rows)
    return z.mean(0), np.maximum(z.std(0), 1e-3)


def train(cfg: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Train per ``cfg`` (see experiments/configs/encoder_v8.yaml, the shipped one); returns the log (also
    written to disk)."""
    t0 = time.perf_counter()
    tc = cfg["train"]
    torch.set_num_threads(int(tc.get("threads", 1)))
    torch.manual_seed(int(cfg["seed"]))
    n, nv = int(cfg["data"]["scenes"]), int(cfg["data"]["val_scenes"])
    epochs = 2 if quick else int(tc["epochs"])
    swa_epochs = int(tc.get("swa_epochs", 0))  # average the weights of the last N epochs (a candidate)
    precision = str(tc.get("precision", "fp32"))
    if precision not in PRECISIONS:  # checked before the scenes are made (minutes)
        raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if quick:
        n, nv = min(n, 256), min(nv, 64)
        swa_epochs = min(swa_epochs, epochs)
    if not 0 <= swa_epochs <= epochs:  # checked before the scenes are made (minutes)
        raise ValueError(f"train.swa_epochs must be in [0, epochs], got {swa_epochs}")
    split = float(cfg["data"].get("clean_split", 0.0))  # checked before the scenes are made (minutes)
    if not 0.0 <= split <= 1.0:
        raise ValueError(f"data.clean_split must be in [0, 1], got {split}")
    data = split_clean(make_dataset(cfg, n, 1, "train scenes"), split, [int(cfg["seed"]), 1])
    val = split_clean(make_dataset(cfg, nv, 2, "val scenes"), split, [int(cfg["seed"]), 2])
    t_data = time.perf_counter() - t0
    net = DegradationNet(int(cfg["channels"]), len(FAMILIES), **architecture(cfg))
    pos_weight = None
    if tc.get("balanced", False):  # weigh each family's positives by its negatives / positives ratio
        present = np.concatenate([data["fam"][i, : data["nreg"][i]] for i in range(n)])
        pos = present.sum(0).clip(1)
        pos_weight = torch.tensor(np.clip((len(present) - pos) / pos, 1.0, 10.0), dtype=torch.float32)
    bs = int(tc["batch_size"])
    steps = epochs * ((n + bs - 1) // bs)
    opt = torch.optim.Adam(net.parameters(), lr=float(tc["lr"]), weight_decay=float(tc["weight_decay"]))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=0.05 * float(tc["lr"]))
    rng = np.random.default_rng([int(cfg["seed"]), 3])
    out_dir = Path(cfg["output_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    log: dict[str, Any] = {"config": cfg, "epochs": [], "data_seconds": round(t_data, 1),
                           "pos_weight": None if pos_weight is None else
                           {f: round(float(w), 3) for f, w in zip(FAMILIES, pos_weight, strict=True)}}
    best, best_state = -1.0, None
    swa_sum: dict[str, torch.Tensor] | None = None
    bar = tqdm(total=steps, desc="train encoder", unit="batch")
    for ep in range(epochs):
        order = rng.permutation(n)
        parts: list[dict[str, float]] = []
        for i in range(0, n, bs):
            idx = np.sort(order[i:i + bs])
            x = torch.from_numpy(data["x"][idx].astype(np.float32))
            r = torch.from_numpy(data["rmap"][idx])
            x, r = _augment(x, r, rng)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                out = batch_outputs(net, x, r)
            out = {k: v.float() for k, v in out.items()}
            loss, part = losses(net, out, torch.from_numpy(data["fam"][idx]), torch.from_numpy(data["sev"][idx]),
                                torch.from_numpy(data["nreg"][idx]), cfg, pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            parts.append(part)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        m = evaluate(net, val)
        row = {"epoch": ep + 1, "region_loss": float(np.mean([p["region"] for p in parts])),
               "dense_loss": float(np.mean([p["dense"] for p in parts])), "val_macro_f1": m["macro_f1"],
               "val_macro_f1_calibrated": m["macro_f1_calibrated"],
               "val_severity_mae": {f: v["severity_mae"] for f, v in m["families"].items()},
               "seconds": round(time.perf_counter() - t0, 1)}
        log["epochs"].append(row)
        tqdm.write(f"epoch {ep + 1}: loss {row['region_loss']:.3f}/{row['dense_loss']:.3f} "
                   f"val macro-F1 {m['macro_f1']:.3f} (best thresholds {m['macro_f1_calibrated']:.3f})")
        if m["macro_f1_calibrated"] > best:
            best, best_state = m["macro_f1_calibrated"], {k: v.clone() for k, v in net.state_dict().items()}
            log["best"] = {"epoch": ep + 1, "val": m}
        if swa_epochs and ep >= epochs - swa_epochs:
            params = {k: v.detach().clone() for k, v in net.named_parameters()}
            swa_sum = params if swa_sum is None else {k: swa_sum[k] + params[k] for k in params}
    bar.close()
    if swa_sum is not None:  # weight averaging (SWA): mean parameters, BatchNorm statistics re-estimated
        swa = copy.deepcopy(net)
        with torch.no_grad():
            for k, p in swa.named_parameters():
                p.copy_(swa_sum[k] / swa_epochs)
        refresh_batchnorm(swa, data)
        m = evaluate(swa, val)
        log["swa"] = {"epochs": swa_epochs, "val": m}
        tqdm.write(f"weight average of the last {swa_epochs} epochs: val macro-F1 {m['macro_f1']:.3f} "
                   f"(best thresholds {m['macro_f1_calibrated']:.3f})")
        if m["macro_f1_calibrated"] > best:
            best, best_state = m["macro_f1_calibrated"], {k: v.clone() for k, v in swa.state_dict().items()}
            log["best"] = {"epoch": f"swa{swa_epochs}", "val": m}
    net.load_state_dict(best_state)
    log["thresholds"] = calibrate_thresholds(net, val)
    log["best"]["val_calibrated"] = evaluate(net, val)
    tqdm.write(f"calibrated thresholds {log['thresholds']}: val macro-F1 "
               f"{log['best']['val_calibrated']['macro_f1']:.3f}")
    net.eval()
    mean, std = feature_stats(net, data if n <= 4000 else {k: v[:4000] for k, v in data.items()})
    log["seconds"] = round(time.perf_counter() - t0, 1)
    meta = {"config": cfg, "validation": log["best"], "thresholds": log["thresholds"], "train_seconds": log["seconds"],
            "threads": int(tc.get("threads", 1)),
            "command": "python -m experiments.train_encoder --config " + str(cfg.get("_config_path", "?"))}
    save_weights(net, out_dir, mean, std, meta)
    (out_dir / "log.json").write_text(json.dumps(log, indent=1) + "\n")
    return log


def recalibrate(cfg: dict[str, Any], source: str | Path) -> dict[str, Any]:
    """Re-fit a trained encoder to ``cfg['arch']['pool_power']`` without training: load ``source``'s network,
    set its pooling power, re-calibrate the family thresholds on the config's validation scenes (the same
    seed stream as training) and the feature standardisation on the first 4000 training scenes (as
    :func:`train`), and write ``cfg['output_dir']``. The thresholds saved are the composed ones (in the
    probability space of the uncalibrated head). Returns the metadata written."""
    from ir_env.encoder.learned import load_encoder

    t0 = time.perf_counter()
    tc = cfg["train"]
    torch.set_num_threads(int(tc.get("threads", 1)))
    src, arch = load_encoder(source, fuse=False), architecture(cfg)
    if src.net.architecture()["dilations"] != list(arch["dilations"]):
        raise ValueError(f"{source} was trained with another architecture than the config's")
    net = copy.deepcopy(src.net)
    net.pool_power = arch["pool_power"]
    val = make_dataset(cfg, int(cfg["data"]["val_scenes"]), 2, "val scenes")
    before = evaluate(net, val)
    new = calibrate_thresholds(net, val)
    old = src.info.get("thresholds") or {f: 0.5 for f in FAMILIES}

    def logit(p: float) -> float:
        return float(np.log(p / (1 - p)))

    composed = {f: float(1 / (1 + np.exp(-(logit(old[f]) + logit(new[f]))))) for f in FAMILIES}
    after = evaluate(net, val)
    net.eval()
    mean, std = feature_stats(net, make_dataset(cfg, min(4000, int(cfg["data"]["scenes"])), 1, "train scenes"))
    seconds = round(time.perf_counter() - t0, 1)
    meta = {"config": cfg, "validation": {"epoch": src.info.get("validation", {}).get("epoch"),
                                          "val_before_recalibration": before, "val_calibrated": after},
            "thresholds": composed, "recalibrated_from": {"weights": str(source), "sha256": src.info.get("sha256"),
                                                          "thresholds": old, "seconds": seconds},
            "train_seconds": float(src.info.get("train_seconds", 0.0)) + seconds, "threads": int(tc.get("threads", 1)),
            "command": f"python -m experiments.train_encoder --config {cfg.get('_config_path', '?')} "
                       f"--recalibrate-from {source}"}
    save_weights(net, cfg["output_dir"], mean, std, meta)
    return meta


def load_train_config(path: str, ship: bool = False) -> dict[str, Any]:
    """The YAML training config at ``path`` (``_config_path`` added); ``ValueError`` naming the problem when
    it cannot be read, is not a mapping, or ``ship`` is asked of a config without ``ship_dir`` (checked
    before any training). Shared by this script and ``experiments/train_npsnr.py``."""
    from experiments.configio import read_config

    cfg = read_config(path)  # also experiments/configs/... of an installed package; one-line YAML errors
    if ship and not cfg.get("ship_dir"):
        raise ValueError(f"{path} has no ship_dir: these weights are not meant to be shipped")
    return {**cfg, "_config_path": path}


def check_config(cfg: dict[str, Any], where: str, recalibrate: bool = False) -> None:
    """``ValueError`` naming ``where`` and the section for a key of ``cfg`` this script does not read (with the
    closest known one: a misspelt key is not silently ignored) or a key it needs that is missing (for
    :func:`recalibrate`: no optimiser keys, but ``arch``); run before any scene is made."""
    from experiments.configio import check_sections

    sections = dict(CONFIG_SECTIONS)
    if recalibrate:
        sections[""] = (sections[""][0], ("seed", "arch", "data", "train", "output_dir"))
        sections["train"] = (sections["train"][0], ())
    check_sections(cfg, sections, where)
    check_values(cfg, where)


def check_values(cfg: dict[str, Any], where: str) -> None:
    """``ValueError`` naming ``where`` and the key (``channels``, ``arch.dilations``, ``train.lr``) for a value of
    a key-checked config (:func:`check_config`) that training could not use, before any scene is made: a count that
    is not a whole number in range, a rate or weight that is not a number in range, a flag that is not
    true/false, an unknown recipe, precision or split, an ``output_dir`` that is a file."""
    from ir_env.paths import check_writable

    whole_value(cfg["seed"], "seed", where, 0)
    if "channels" in cfg:
        channels = whole_value(cfg["channels"], "channels", where, 8)
        if channels % 4:
            raise ValueError(f"{where}: channels must be a multiple of 4 and >= 8, got {channels}")
    check_arch(cfg.get("arch"), where)
    check_data(cfg["data"], where)
    tc = cfg["train"]
    for key in ("epochs", "batch_size", "threads"):
        if key in tc:
            whole_value(tc[key], f"train.{key}", where, 1)
    if "lr" in tc:
        number_value(tc["lr"], "train.lr", where, 0.0, above=True)
    for key in ("weight_decay", "severity_weight", "dense_weight"):
        if key in tc:
            number_value(tc[key], f"train.{key}", where, 0.0)
    if "balanced" in tc:
        flag_value(tc["balanced"], "train.balanced", where)
    if "precision" in tc and tc["precision"] not in PRECISIONS:
        raise ValueError(f"{where}: train.precision must be one of {', '.join(PRECISIONS)}, got {tc['precision']!r}")
    if "swa_epochs" in tc:
        swa = whole_value(tc["swa_epochs"], "train.swa_epochs", where, 0)
        if "epochs" in tc and swa > tc["epochs"]:
            raise ValueError(f"{where}: train.swa_epochs must be in [0, epochs], got {swa}")
    if not isinstance(cfg["output_dir"], str) or not cfg["output_dir"].strip():
        raise ValueError(f"{where}: output_dir must name a folder, got {cfg['output_dir']!r}")
    check_writable(cfg["output_dir"], "output_dir", folder=True)


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.train_encoder`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="experiments/configs/encoder_v8.yaml",
                    help="training config YAML (default: %(default)s, the shipped encoder's)")
    ap.add_argument("--ship", action="store_true",
                    help="copy the trained weights to the config's ship_dir (the shipped default weights); "
                         "not with --quick")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run (at most 256 + 64 scenes, 2 epochs) to check the pipeline; it still writes its "
                         "weights into the config's output_dir (pass --output-dir to keep a real run there)")
    ap.add_argument("--output-dir", help="write the weights here instead of the config's output_dir "
                                         "(default: the config's)")
    ap.add_argument("--recalibrate-from", metavar="DIR",
                    help="no training: re-fit DIR's trained encoder to the config's arch.pool_power (recalibrate()) "
                         "(default: train)")
    a = ap.parse_args(argv)
    try:
        if a.quick and a.ship:  # a smoke model must never replace the shipped encoder
            raise ValueError("--quick makes a smoke model: it is never shipped (drop --ship or --quick)")
        cfg = load_train_config(a.config, ship=a.ship)
        if a.output_dir:
            cfg["output_dir"] = a.output_dir
        check_config(cfg, a.config, recalibrate=bool(a.recalibrate_from))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.recalibrate_from:
        try:
            meta = recalibrate(cfg, a.recalibrate_from)
        except (EncoderWeightsError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        v = meta["validation"]
        print(f"re-calibrated {a.recalibrate_from} for pool_power {cfg['arch'].get('pool_power', 1)}: val macro-F1 "
              f"{v['val_before_recalibration']['macro_f1']:.3f} -> {v['val_calibrated']['macro_f1']:.3f}; "
              f"weights in {cfg['output_dir']}")
        if a.ship:
            print(f"shipped to {ship_weights(cfg['output_dir'], cfg['ship_dir'])}")
        return 0
    log = train(cfg, quick=a.quick)
    print(f"best epoch {log['best']['epoch']}: val macro-F1 {log['best']['val_calibrated']['macro_f1']:.3f} "
          "(calibrated thresholds); "
          f"{log['seconds']:.0f} s; weights in {cfg['output_dir']}")
    if a.ship:
        print(f"shipped to {ship_weights(cfg['output_dir'], cfg['ship_dir'])}")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
