"""Fit the encoder's context head (:mod:`ir_env.encoder.context`) on the frozen encoder's features.

Scenes: as ``experiments/train_encoder.py`` makes them from the config's ``data`` section (TRAIN photos
only; train scenes from seed stream 1, validation scenes from stream 2), with ``data.clean_split`` of the
clean crops split into 2-4 clean regions (:func:`split_clean`). Each ground-truth region gives
one row: the frozen encoder's features pooled over the region and over the rest of the image. The head's
``members`` MLPs (each seeded ``[seed, member]``) are trained with the encoder's loss: binary
cross-entropy of the family logits (positives weighted by negatives / positives per family, clipped to
[1, 10], with ``train.balanced``) + ``severity_weight`` x L1 of the sigmoid severity of present families.
Then each family's threshold on the members' mean probability is set to its best-F1 value on the
validation regions (the calibration the linear heads get).

Writes a complete weights directory to ``output_dir`` (a copy of the encoder's ``encoder.pt`` /
``encoder.json`` plus ``context_head.pt`` / ``context_head.json`` with the config and validation macro-F1
of the linear heads and of the head); ``--ship`` copies it to ``ship_dir`` (the shipped encoder must be
the one it was fitted on).

    python -m experiments.fit_context_head --config experiments/configs/context_head.yaml [--ship]
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
from experiments.train_encoder import split_clean  # noqa: E402 (its home is the scene maker now)
from ir_env.encoder.context import ContextHead, save_context_head  # noqa: E402
from ir_env.encoder.learned import file_sha256, load_encoder  # noqa: E402
from ir_env.encoder.metrics import family_metrics  # noqa: E402
from ir_env.encoder.model import STRIDE  # noqa: E402
from restorers.spec import FAMILIES  # noqa: E402

#: Keys every config section must hold.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "data": ("corpus", "split", "crop", "scenes", "val_scenes", "recipes"),
    "head": ("hidden", "layers", "members", "dropout"),
    "train": ("epochs", "batch_size", "lr", "weight_decay", "severity_weight"),
}


def region_rows(net: Any, data: dict[str, np.ndarray], batch: int = 64) -> dict[str, np.ndarray]:
    """Per ground-truth region of ``data`` (from ``train_encoder.make_dataset``): pooled ``region`` and
    ``rest`` features (N, C), ``has_rest`` (N,), targets ``fam`` (N, F) bool and ``sev`` (N, F)."""
    from experiments.train_encoder import MAX_REGIONS

    rows: dict[str, list[np.ndarray]] = {"region": [], "rest": [], "has_rest": [], "fam": [], "sev": []}
    with torch.inference_mode():
        for i in range(0, len(data["x"]), batch):
            x = torch.from_numpy(data["x"][i:i + batch].astype(np.float32))
            feats = net.features(x)
            onehot = F.one_hot(torch.from_numpy(data["rmap"][i:i + batch]).long(), MAX_REGIONS)
            cells = F.avg_pool2d(onehot.permute(0, 3, 1, 2).double(), STRIDE)  # (B, 8, h, w) fraction inside
            f64 = feats.double()
            w_in, w_out = net.region_weights(cells), net.region_weights(1.0 - cells)
            t_in, t_out = w_in.sum((2, 3)), w_out.sum((2, 3))
            pooled = torch.einsum("bkhw,bchw->bkc", w_in, f64) / t_in.clamp_min(1e-12)[..., None]
            rest = torch.einsum("bkhw,bchw->bkc", w_out, f64) / t_out.clamp_min(1e-12)[..., None]
            for b in range(len(x)):
                for k in range(int(data["nreg"][i + b])):
                    if float(t_in[b, k]) <= 0:
                        continue
                    has = float(t_out[b, k]) > 1e-9
                    rows["region"].append(pooled[b, k].numpy())
                    rows["rest"].append(rest[b, k].numpy() if has else np.zeros(feats.shape[1]))
                    rows["has_rest"].append(np.float64(has))
                    rows["fam"].append(data["fam"][i + b, k])
                    rows["sev"].append(data["sev"][i + b, k])
    return {k: np.asarray(v) for k, v in rows.items()}


def _tensors(rows: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(torch.from_numpy(np.asarray(rows[k], np.float32)) for k in ("region", "rest", "has_rest"))


def train_head(head: ContextHead, rows: dict[str, np.ndarray], cfg: dict[str, Any], seed: int,
               progress: bool = True) -> list[float]:
    """Train every member of ``head`` on ``rows`` (module docstring); returns each member's last-epoch loss."""
    tc = cfg["train"]
    x = head.inputs(*_tensors(rows))
    y = torch.from_numpy(rows["fam"].astype(np.float32))
    s = torch.from_numpy(rows["sev"].astype(np.float32))
    pos_weight = None
    if tc.get("balanced", True):
        pos = y.sum(0).clamp_min(1)
        pos_weight = ((len(y) - pos) / pos).clamp(1.0, 10.0)
    bs, epochs = int(tc["batch_size"]), int(tc["epochs"])
    n = len(x)
    if n < bs:
        raise ValueError(f"{n} training regions are fewer than one batch ({bs}); make more scenes")
    losses = []
    bar = tqdm(total=head.members * epochs, desc="fit context head", unit="epoch", disable=not progress)
    for m, net in enumerate(head.nets):
        gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, m]).integers(2**31)))
        for p in net.parameters():  # each member its own initialisation
            if p.dim() > 1:
                torch.nn.init.kaiming_uniform_(p, a=5**0.5, generator=gen)
            else:
                torch.nn.init.uniform_(p, -0.05, 0.05, generator=gen)
        opt = torch.optim.AdamW(net.parameters(), lr=float(tc["lr"]), weight_decay=float(tc["weight_decay"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * (n // bs))
        net.train()
        for _ in range(epochs):
            perm, total = torch.randperm(n, generator=gen), 0.0
            for i in range(0, n - bs + 1, bs):
                idx = perm[i:i + bs]
                out = net(x[idx])
                lf, ls = out[:, : head.families], out[:, head.families:]
                bce = F.binary_cross_entropy_with_logits(lf, y[idx], pos_weight=pos_weight)
                l1 = ((torch.sigmoid(ls) - s[idx]).abs() * y[idx]).sum(-1) / y[idx].sum(-1).clamp_min(1)
                loss = bce + float(tc["severity_weight"]) * l1.mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            bar.update()
        net.eval()
        losses.append(total / (n // bs * bs))
    bar.close()
    return losses


def calibrate(head: ContextHead, rows: dict[str, np.ndarray]) -> dict[str, float]:
    """Set ``head.threshold_logit`` to each family's best-F1 threshold on ``rows``; returns {family: t}."""
    from experiments.train_encoder import best_thresholds

    with torch.inference_mode():
        p, _ = head.uncalibrated(head.inputs(*_tensors(rows)))
    ts, _ = best_thresholds(p.numpy(), rows["fam"].astype(bool))
    head.threshold_logit.copy_(torch.from_numpy(np.log(ts / (1 - ts))).float())
    return {f: float(t) for f, t in zip(FAMILIES, ts, strict=True)}


def scores(head: ContextHead | None, net: Any, rows: dict[str, np.ndarray]) -> dict[str, Any]:
    """:func:`family_metrics` (threshold 0.5) of the head's calibrated predictions, or of the encoder's
    linear heads with ``head=None``."""
    region, rest, has = _tensors(rows)
    with torch.inference_mode():
        if head is None:
            lf, ls = net.heads(region)
            p, s = torch.sigmoid(lf), torch.sigmoid(ls)
        else:
            p, s = head(region, rest, has)
    return family_metrics(p.numpy(), s.numpy(), rows["fam"], rows["sev"])


def fit(cfg: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Make the scenes, fit and calibrate the head, write ``output_dir``; returns the head's JSON metadata."""
    from experiments.train_encoder import make_dataset

    t0 = time.perf_counter()
    torch.set_num_threads(int(cfg["train"].get("threads", 1)))
    src = Path(cfg.get("encoder") or "ir_env/encoder/weights")
    enc = load_encoder(src)
    data_cfg = {"seed": int(cfg["seed"]), "data": cfg["data"]}
    split = float(cfg["data"].get("clean_split", 0.0))
    train_rows = region_rows(enc.net, split_clean(make_dataset(data_cfg, int(cfg["data"]["scenes"]), 1, "train scenes"),
                                                  split, [int(cfg["seed"]), 1]))
    val_rows = region_rows(enc.net, split_clean(make_dataset(data_cfg, int(cfg["data"]["val_scenes"]), 2, "val scenes"),
                                                split, [int(cfg["seed"]), 2]))
    t_data = time.perf_counter() - t0
    torch.manual_seed(int(cfg["seed"]))
    head = ContextHead(enc.net.channels, len(FAMILIES), **{k: cfg["head"][k] for k in REQUIRED_KEYS["head"]})
    head.mean.copy_(torch.from_numpy(enc.mean).float())
    head.std.copy_(torch.from_numpy(enc.std).float())
    member_loss = train_head(head, train_rows, cfg, int(cfg["seed"]), progress)
    thresholds = calibrate(head, val_rows)
    linear, ctx = scores(None, enc.net, val_rows), scores(head, enc.net, val_rows)
    out = Path(cfg["output_dir"])
    copy_encoder(src, out)
    meta = {"encoder_sha256": file_sha256(src / "encoder.pt"), "encoder_source": str(src), "thresholds": thresholds,
            "validation": {"regions": int(len(val_rows["fam"])), "linear_heads": linear, "context_head": ctx},
            "train_regions": int(len(train_rows["fam"])), "member_loss": member_loss,
            "seconds": {"data": round(t_data, 1), "total": round(time.perf_counter() - t0, 1)},
            "config": {k: v for k, v in cfg.items() if not k.startswith("_")},
            "command": "python -m experiments.fit_context_head --config " + str(cfg.get("_config_path", ""))}
    save_context_head(head, out, meta)
    return meta


#: Every key this script reads: (known, required) at the top level ("") and in each section (see
#: :func:`experiments.configio.check_sections`). ``name`` is a label kept with the head's config; ``ship_dir`` is
#: read by ``--ship``; ``_config_path`` is added by :func:`main`; ``data`` is what ``train_encoder.make_dataset``
#: reads.
CONFIG_SECTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "": (("name", "seed", "encoder", "data", "head", "train", "output_dir", "ship_dir", "_config_path"),
         ("seed", "data", "head", "train", "output_dir")),
    "data": (("corpus", "split", "crop", "scenes", "val_scenes", "clean_frac", "clean_split", "augment", "recipes",
              "workers"), REQUIRED_KEYS["data"]),
    "data.augment": (("scale", "colour"), ()),
    "head": (REQUIRED_KEYS["head"], REQUIRED_KEYS["head"]),
    "train": ((*REQUIRED_KEYS["train"], "balanced", "threads"), REQUIRED_KEYS["train"]),
}


def check_config(cfg: Any, where: str = "config") -> dict[str, Any]:
    """``cfg`` if it holds every :data:`REQUIRED_KEYS` key, ``seed`` and ``output_dir`` (else ``ValueError`` naming
    the missing ones), no key this script does not read (:data:`CONFIG_SECTIONS`: a misspelt key is named with the
    closest known one, not silently ignored) and values it can use (``head.hidden: wide`` is named before any scene
    is made); errors name ``where`` (the config file)."""
    from experiments.configio import check_sections, flag_value, number_value, whole_value
    from experiments.train_encoder import check_data
    from ir_env.paths import check_writable

    check_head_config(cfg, REQUIRED_KEYS)
    check_sections(cfg, CONFIG_SECTIONS, where)
    whole_value(cfg["seed"], "seed", where, 0)
    enc = cfg.get("encoder")
    if enc is not None and (not isinstance(enc, str) or not enc.strip()):
        raise ValueError(f"{where}: encoder must name an encoder weights folder, got {enc!r}")
    check_data(cfg["data"], where)
    head = cfg["head"]
    for key in ("hidden", "layers", "members"):
        whole_value(head[key], f"head.{key}", where, 1)
    number_value(head["dropout"], "head.dropout", where, 0.0, 0.999)
    tc = cfg["train"]
    for key in ("epochs", "batch_size", "threads"):
        if key in tc:
            whole_value(tc[key], f"train.{key}", where, 1)
    number_value(tc["lr"], "train.lr", where, 0.0, above=True)
    for key in ("weight_decay", "severity_weight"):
        number_value(tc[key], f"train.{key}", where, 0.0)
    if "balanced" in tc:
        flag_value(tc["balanced"], "train.balanced", where)
    for key in ("output_dir", "ship_dir"):
        if key in cfg and (not isinstance(cfg[key], str) or not cfg[key].strip()):
            raise ValueError(f"{where}: {key} must name a folder, got {cfg[key]!r}")
    check_writable(cfg["output_dir"], "output_dir", folder=True)
    return cfg


def check_encoder(cfg: dict[str, Any], where: str) -> Path:
    """The frozen encoder's folder (``encoder``, default the shipped one), or ``ValueError`` naming ``where`` and
    ``encoder`` when it holds no encoder weights (read before any scene is made)."""
    from ir_env.encoder.learned import weights_folder_problem

    src = Path(cfg.get("encoder") or "ir_env/encoder/weights")
    what = weights_folder_problem(src)
    if what:
        raise ValueError(f"{where}: encoder {src} {what} (an encoder weights folder: the shipped "
                         "ir_env/encoder/weights or a train_encoder output_dir)")
    return src


def summary(meta: dict[str, Any], cfg: dict[str, Any]) -> str:
    """The line printed after a fit."""
    v = meta["validation"]
    return (f"validation macro-F1 ({v['regions']} regions): linear heads {v['linear_heads']['macro_f1']:.3f}, "
            f"context head {v['context_head']['macro_f1']:.3f}; {meta['seconds']['total']:.0f} s; "
            f"weights in {cfg['output_dir']}")


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.fit_context_head`` (options: ``--help``); returns the exit status
    (2 for bad input): :func:`experiments.head_fit.head_main`, the config and its encoder folder checked before any
    scene."""

    def check(cfg: Any, where: str) -> dict[str, Any]:
        check_config(cfg, where)
        check_encoder(cfg, where)
        return cfg

    return head_main(argv, __doc__.split("\n\n")[0], "experiments/configs/context_head.yaml", check, fit, summary)

if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
