"""Train the ``npsnr`` no-reference judge: the encoder network with a per-cell log10-MSE head.

A search planner with a no-reference judge must rank, on one scene, the candidate images its tools make.
So the data are *groups*: a scene synthesized on a random crop of a TRAIN photo (or that scene after 1-2
steps of tools of its true families, a state a search visits), plus ``candidates`` outputs of random tools
on random ground-truth regions (or the whole image), most of them tools of a family present there. The
target of every image is known exactly: the log10 MSE against the clean crop in each 8x8 cell.

Loss: L1 on the per-cell log10 MSE + ``rank_weight`` x a logistic pairwise loss on the image-level predicted
PSNR (``-10 log10(mean of 10^cell)``) of every pair of images in a group (scale ``rank_tau`` dB).

Validation (other seeds, same photos) reports the pairwise ranking accuracy inside groups and the *pick*
score: the true PSNR gain over the group's base image of the image the judge ranks best (what one greedy
step gets), next to the gain of the truly best one.

    python -m experiments.train_npsnr --config experiments/configs/npsnr.yaml [--ship] [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402, N812
from tqdm import tqdm  # noqa: E402

from experiments.configio import number_value, whole_value  # noqa: E402
from experiments.train_encoder import (  # noqa: E402
    ARCH_KEYS,
    architecture,
    check_arch,
    check_corpus,
    check_recipes,
    load_train_config,
)
from ir_env.corpus import load_corpus, random_crop  # noqa: E402
from ir_env.degradations import FAMILY_OF_KIND  # noqa: E402
from ir_env.encoder.learned import load_encoder, save_weights, ship_weights  # noqa: E402
from ir_env.encoder.model import STRIDE, DegradationNet  # noqa: E402
from ir_env.recipes import synthesize  # noqa: E402
from restorers import apply as apply_tool  # noqa: E402
from restorers.registry import fast_tools  # noqa: E402
from restorers.spec import FAMILIES  # noqa: E402

MSE_FLOOR = 1e-5  # log10 MSE floor (50 dB)
#: Keys of the config's ``data`` section (all required).
DATA_KEYS = ("corpus", "split", "crop", "groups", "val_groups", "candidates", "p_walk", "p_true_family", "p_whole",
             "recipes")
#: The config's keys: (known, required) at the top level ("") and in each section (see
#: :func:`experiments.configio.check_sections`). ``name`` is a label kept with the weights' config; ``arch`` is read
#: without ``init_from``; ``ship_dir`` by ``--ship``; ``_config_path`` is added by ``load_train_config``.
CONFIG_SECTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "": (("name", "seed", "channels", "init_from", "arch", "data", "train", "output_dir", "ship_dir", "_config_path"),
         ("seed", "channels", "data", "train", "output_dir")),
    "arch": (ARCH_KEYS, ()),
    "data": (DATA_KEYS, DATA_KEYS),
    "train": (("epochs", "groups_per_batch", "lr", "body_lr_scale", "rank_weight", "rank_tau", "threads"),
              ("epochs", "groups_per_batch", "lr", "rank_weight", "rank_tau")),
}


def cell_log_mse(image: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """(H/8, W/8) float32 log10 of the per-cell MSE (over pixels and channels), floored at 1e-5."""
    err = ((image.astype(np.float64) - clean) ** 2).mean(-1)
    h, w = err.shape
    cells = err.reshape(h // STRIDE, STRIDE, w // STRIDE, STRIDE).mean(axis=(1, 3))
    return np.log10(cells + MSE_FLOOR).astype(np.float32)


def _random_step(img: np.ndarray, scene: Any, tools: list, rng: np.random.Generator, p_true: float,
                 p_whole: float) -> np.ndarray:
    k = int(rng.integers(len(scene.masks)))
    fams = sorted({FAMILY_OF_KIND[kind] for kind, _ in scene.labels[k]})
    pool = [t for t in tools if t.family in fams] if fams and rng.random() < p_true else tools
    tool = pool[int(rng.integers(len(pool)))]
    theta = rng.uniform(-1, 1, len(tool.params)) if rng.random() < 0.8 else np.zeros(len(tool.params))
    mask = None if rng.random() < p_whole else scene.masks[k]
    return apply_tool(img, tool, theta, mask=mask)


def make_groups(cfg: dict[str, Any], n: int, stream: int, desc: str) -> dict[str, np.ndarray]:
    """``n`` groups of ``1 + candidates`` images: x (n, G, 3, S, S) float16 and y (n, G, S/8, S/8) log10 MSE."""
    d = cfg["data"]
    size, g = int(d["crop"]), 1 + int(d["candidates"])
    names = list(d["recipes"])
    p = np.asarray([float(d["recipes"][r]) for r in names])
    p /= p.sum()
    photos = load_corpus(d["corpus"], d["split"])
    tools = fast_tools()
    rng = np.random.default_rng([int(cfg["seed"]), stream])
    x = np.zeros((n, g, 3, size, size), np.float16)
    y = np.zeros((n, g, size // STRIDE, size // STRIDE), np.float32)
    for i in tqdm(range(n), desc=desc, unit="group", leave=False):
        clean = random_crop(photos[int(rng.integers(len(photos)))], size, rng)
        scene = synthesize(clean, recipe=names[int(rng.choice(len(names), p=p))], seed=int(rng.integers(2**31 - 1)))
        base = scene.degraded
        if rng.random() < float(d["p_walk"]):
            for _ in range(int(rng.integers(1, 3))):
                base = _random_step(base, scene, tools, rng, 1.0, 0.0)
        imgs = [base] + [_random_step(base, scene, tools, rng, float(d["p_true_family"]), float(d["p_whole"]))
                         for _ in range(g - 1)]
        for j, im in enumerate(imgs):
            x[i, j] = im.transpose(2, 0, 1)
            y[i, j] = cell_log_mse(im, scene.clean)
    return {"x": x, "y": y}


def image_psnr(cell_log: torch.Tensor) -> torch.Tensor:
    """(..., h, w) log10 cell MSE -> (...) image PSNR in dB (cells weigh equally)."""
    return -10.0 * torch.log10((10.0 ** cell_log).mean((-2, -1)))


def predict_cells(net: DegradationNet, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) -> (B, S/8, S/8) predicted log10 MSE."""
    return net.log_mse(net.features(x).permute(0, 2, 3, 1))


def group_loss(net: DegradationNet, x: torch.Tensor, y: torch.Tensor, cfg: dict[str, Any]) -> tuple[torch.Tensor, dict]:
    """x (B, G, 3, S, S), y (B, G, h, w) -> loss and its parts (module docstring)."""
    b, g = x.shape[:2]
    pred = predict_cells(net, x.reshape(b * g, *x.shape[2:])).reshape(b, g, *y.shape[2:])
    l1 = (pred - y).abs().mean()
    ph, th = image_psnr(pred), image_psnr(y)
    dp = ph[:, :, None] - ph[:, None, :]
    dt = th[:, :, None] - th[:, None, :]
    sign = torch.sign(dt)
    w = (dt.abs() > 0.05).float()
    rank = (F.softplus(-sign * dp / float(cfg["train"]["rank_tau"])) * w).sum() / w.sum().clamp_min(1)
    return l1 + float(cfg["train"]["rank_weight"]) * rank, {"l1": l1.item(), "rank": rank.item()}


def validate(net: DegradationNet, val: dict[str, np.ndarray]) -> dict[str, float]:
    """Pairwise accuracy in groups, pick gain (judge's best vs base, dB), oracle pick gain, image RMSE (dB)."""
    net.eval()
    accs, picks, best, errs, harmful = [], [], [], [], []
    with torch.inference_mode():
        for i in range(len(val["x"])):
            x = torch.from_numpy(val["x"][i].astype(np.float32))
            ph = image_psnr(predict_cells(net, x)).numpy()
            th = image_psnr(torch.from_numpy(val["y"][i])).numpy()
            errs.extend((ph - th).tolist())
            dt, dp = th[:, None] - th[None, :], ph[:, None] - ph[None, :]
            ok = np.abs(dt) > 0.05
            if ok.any():
                accs.append(float(np.mean(np.sign(dt[ok]) == np.sign(dp[ok]))))
            j = int(np.argmax(ph))  # 0 = keep the base (no candidate judged better)
            picks.append(float(th[j] - th[0]))
            harmful.append(float(th[j] < th[0] - 0.05))
            best.append(float(th.max() - th[0]))
    net.train()
    return {"pairwise_acc": float(np.mean(accs)), "pick_gain_db": float(np.mean(picks)),
            "oracle_pick_gain_db": float(np.mean(best)), "harmful_pick_rate": float(np.mean(harmful)),
            "image_rmse_db": float(np.sqrt(np.mean(np.square(errs))))}


def load_or_make(cfg: dict[str, Any], n: int, nv: int, quick: bool = False) -> tuple[dict, dict]:
    """Train / validation groups, cached in ``<output_dir>/groups.npz`` (reused when the data config matches)."""
    cache = Path(cfg["output_dir"]) / "groups.npz"
    key = json.dumps({"data": cfg["data"], "seed": cfg["seed"], "n": n, "nv": nv}, sort_keys=True)
    if not quick and cache.exists():
        z = np.load(cache)
        if str(z["key"]) == key:
            return {"x": z["x"], "y": z["y"]}, {"x": z["vx"], "y": z["vy"]}
    data = make_groups(cfg, n, 1, "train groups")
    val = make_groups(cfg, nv, 2, "val groups")
    if not quick:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, x=data["x"], y=data["y"], vx=val["x"], vy=val["y"], key=np.asarray(key))
    return data, val


def train(cfg: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Train per ``cfg``; returns the log (also written next to the weights)."""
    t0 = time.perf_counter()
    tc = cfg["train"]
    torch.set_num_threads(int(tc.get("threads", 1)))
    torch.manual_seed(int(cfg["seed"]))
    n, nv = int(cfg["data"]["groups"]), int(cfg["data"]["val_groups"])
    if quick:
        n, nv = min(n, 48), min(nv, 16)
    data, val = load_or_make(cfg, n, nv, quick)
    log: dict[str, Any] = {"config": cfg, "data_seconds": round(time.perf_counter() - t0, 1), "epochs": []}
    src = load_encoder(cfg["init_from"], fuse=False).net if cfg.get("init_from") else None
    arch = (src.architecture() if src is not None
            else {"channels": int(cfg["channels"]), "families": len(FAMILIES), **architecture(cfg)})
    net = DegradationNet.from_architecture({**arch, "quality": True})
    if src is not None:  # the body (and the family / severity heads) start from the trained encoder
        if src.channels != int(cfg["channels"]):
            raise ValueError(f"init_from has {src.channels} channels, the config asks for {cfg['channels']}")
        res = net.load_state_dict(src.state_dict(), strict=False)  # only the new quality head is missing
        if res.unexpected_keys or any(not k.startswith("quality_head.") for k in res.missing_keys):
            raise ValueError(f"init_from {cfg['init_from']} does not fit: missing {res.missing_keys}, "
                             f"unexpected {res.unexpected_keys}")
    body_params = [p for n_, p in net.named_parameters() if n_.startswith(("stem.", "context."))]
    head_params = [p for n_, p in net.named_parameters() if not n_.startswith(("stem.", "context."))]
    lr = float(tc["lr"])
    opt = torch.optim.Adam([{"params": body_params, "lr": lr * float(tc.get("body_lr_scale", 1.0))},
                            {"params": head_params, "lr": lr}])
    bs = int(tc["groups_per_batch"])
    epochs = 1 if quick else int(tc["epochs"])
    steps = epochs * ((n + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=0.05 * lr)
    rng = np.random.default_rng([int(cfg["seed"]), 3])
    log["epochs"].append({"epoch": 0, **validate(net, val)})
    best, best_state = -1e9, None
    bar = tqdm(total=steps, desc="train npsnr", unit="batch")
    for ep in range(epochs):
        parts = []
        order = rng.permutation(n)
        for i in range(0, n, bs):
            idx = np.sort(order[i:i + bs])
            x = torch.from_numpy(data["x"][idx].astype(np.float32))
            y = torch.from_numpy(data["y"][idx])
            k = int(rng.integers(4))
            if k:
                x, y = torch.rot90(x, k, (3, 4)), torch.rot90(y, k, (2, 3))
            loss, part = group_loss(net, x, y, cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            parts.append(part)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        m = validate(net, val)
        row = {"epoch": ep + 1, "l1": float(np.mean([p["l1"] for p in parts])),
               "rank": float(np.mean([p["rank"] for p in parts])), **m,
               "seconds": round(time.perf_counter() - t0, 1)}
        log["epochs"].append(row)
        tqdm.write(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}))
        if m["pick_gain_db"] > best:
            best, best_state = m["pick_gain_db"], {k: v.clone() for k, v in net.state_dict().items()}
            log["best"] = row
    bar.close()
    net.load_state_dict(best_state)
    net.eval()
    log["seconds"] = round(time.perf_counter() - t0, 1)
    c = net.channels
    save_weights(net, cfg["output_dir"], np.zeros(c), np.ones(c),
                 {"config": cfg, "validation": log["best"], "train_seconds": log["seconds"], "judge": "npsnr",
                  "command": "python -m experiments.train_npsnr --config " + str(cfg.get("_config_path", "?"))})
    Path(cfg["output_dir"], "log.json").write_text(json.dumps(log, indent=1) + "\n")
    return log


def check_config(cfg: dict[str, Any], where: str, data_only: bool = False) -> None:
    """``ValueError`` naming ``where`` and the section for a key of ``cfg`` this script does not read (with the
    closest known one: a misspelt key is not silently ignored) or a key it needs that is missing (``--data-only``
    needs no ``channels`` or ``train``); run before any group is made."""
    from experiments.configio import check_sections

    sections = dict(CONFIG_SECTIONS)
    if data_only:
        sections[""] = (sections[""][0], ("seed", "data", "output_dir"))
        sections["train"] = (sections["train"][0], ())
    check_sections(cfg, sections, where)
    check_values(cfg, where)


def check_values(cfg: dict[str, Any], where: str) -> None:
    """``ValueError`` naming ``where`` and the key for a value of a key-checked config (:func:`check_config`) that
    the groups or the training could not use, before any group is made: counts that are not whole numbers in range,
    probabilities outside [0, 1], rates / weights that are not numbers in range, an unknown recipe or split, an
    ``init_from`` that is not a folder name, an ``output_dir`` that is a file."""
    from ir_env.paths import check_writable

    whole_value(cfg["seed"], "seed", where, 0)
    if "channels" in cfg:
        channels = whole_value(cfg["channels"], "channels", where, 8)
        if channels % 4:
            raise ValueError(f"{where}: channels must be a multiple of 4 and >= 8, got {channels}")
    init = cfg.get("init_from")
    if init is not None and (not isinstance(init, str) or not init.strip()):
        raise ValueError(f"{where}: init_from must name an encoder weights folder, got {init!r}")
    check_arch(cfg.get("arch"), where)
    d = cfg["data"]
    check_corpus(d, where)
    crop = whole_value(d["crop"], "data.crop", where, STRIDE)
    if crop % STRIDE:
        raise ValueError(f"{where}: data.crop must be a multiple of {STRIDE}, got {crop}")
    for key in ("groups", "val_groups", "candidates"):
        whole_value(d[key], f"data.{key}", where, 1)
    for key in ("p_walk", "p_true_family", "p_whole"):
        number_value(d[key], f"data.{key}", where, 0.0, 1.0)
    check_recipes(d["recipes"], "data.recipes", where)
    tc = cfg.get("train") or {}
    for key in ("epochs", "groups_per_batch", "threads"):
        if key in tc:
            whole_value(tc[key], f"train.{key}", where, 1)
    for key in ("lr", "rank_tau"):
        if key in tc:
            number_value(tc[key], f"train.{key}", where, 0.0, above=True)
    for key in ("body_lr_scale", "rank_weight"):
        if key in tc:
            number_value(tc[key], f"train.{key}", where, 0.0)
    if not isinstance(cfg["output_dir"], str) or not cfg["output_dir"].strip():
        raise ValueError(f"{where}: output_dir must name a folder, got {cfg['output_dir']!r}")
    check_writable(cfg["output_dir"], "output_dir", folder=True)


def check_init_from(cfg: dict[str, Any], where: str) -> None:
    """``ValueError`` naming ``where`` and ``init_from`` when the config starts from an encoder (``init_from``) that
    is not a loadable weights folder (``encoder.pt`` + ``encoder.json``) or has other ``channels`` than the config
    asks for; run before any group is made (the groups take minutes, training reads the encoder only after)."""
    from ir_env.encoder.learned import EncoderWeightsError, weights_folder_problem

    init = cfg.get("init_from")
    if not init:
        return
    folder = Path(init)
    what = weights_folder_problem(folder)
    if what:
        raise ValueError(f"{where}: init_from {init} {what} (an encoder weights folder with encoder.pt and "
                         "encoder.json, as experiments.train_encoder writes into its output_dir)")
    try:
        src = load_encoder(folder, fuse=False).net
    except EncoderWeightsError as e:
        raise ValueError(f"{where}: init_from {init} cannot be loaded: {e}") from None
    if "channels" in cfg and src.channels != cfg["channels"]:
        raise ValueError(f"{where}: init_from {init} has {src.channels} channels, the config asks for "
                         f"channels {cfg['channels']}")


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m experiments.train_npsnr`` (options: ``--help``); returns the exit status
    (2 for bad input)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="experiments/configs/npsnr.yaml",
                    help="training config YAML (default: %(default)s)")
    ap.add_argument("--ship", action="store_true",
                    help="copy the trained weights to the config's ship_dir (the shipped npsnr judge); not with "
                         "--quick")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run (at most 48 + 16 groups, not cached; 1 epoch); it still writes its weights into "
                         "the config's output_dir (pass --output-dir to keep a real run there)")
    ap.add_argument("--output-dir", help="write the weights (and the groups cache) here instead of the config's "
                                         "output_dir (default: the config's)")
    ap.add_argument("--data-only", action="store_true",
                    help="only build (and cache) the groups, no training (default: build or reuse them, then train)")
    a = ap.parse_args(argv)
    try:
        if a.quick and a.ship:  # a smoke model must never replace the shipped judge
            raise ValueError("--quick makes a smoke model: it is never shipped (drop --ship or --quick)")
        if a.data_only and a.ship:
            raise ValueError("--data-only trains nothing, so there is nothing to ship (drop --ship or --data-only)")
        cfg = load_train_config(a.config, ship=a.ship)
        if a.output_dir:
            cfg["output_dir"] = a.output_dir
        check_config(cfg, a.config, data_only=a.data_only)
        if not a.data_only:
            check_init_from(cfg, a.config)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.data_only:
        load_or_make(cfg, int(cfg["data"]["groups"]), int(cfg["data"]["val_groups"]))
        return 0
    log = train(cfg, quick=a.quick)
    print(f"best epoch {log['best']['epoch']}: pick gain {log['best']['pick_gain_db']:.3f} dB "
          f"(oracle {log['best']['oracle_pick_gain_db']:.3f}), pairwise acc {log['best']['pairwise_acc']:.3f}")
    if a.ship:
        print(f"shipped to {ship_weights(cfg['output_dir'], cfg['ship_dir'])}")
    return 0


if __name__ == "__main__":
    from experiments.configio import cli_main

    raise SystemExit(cli_main(main))
