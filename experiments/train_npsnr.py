"""Train the ``npsnr`` no-reference metric (``ir_env/nr_quality.py``): a per-cell PSNR regressor.

Data (all synthetic, exact targets because the clean image is known):

* clean crops (``--min-size``..``--max-size`` px) of the built-in TRAIN split only, degraded with the
  recipes ``spatial-mixed`` (half of the scenes), ``mixed-2``, ``mixed-3``, ``global-mild/moderate/severe``
  and ``agenticir-A`` (never ``-B``/``-C``, never the test split);
* search states, as a search planner visits them: starting from the degraded scene (or from the clean
  crop, so that "touching a clean region hurts" is seen), each state is expanded into one GROUP: the state
  itself (the parent) and its candidates, one tool call each (every fast tool on every region, with one
  of the greedy planner's candidate parameter vectors or a random one) on regions of the
  ``degradation-clusters`` proposer, the ground-truth masks or the whole image; the next state is the
  true-best candidate, a random one, or (from round 2 on) the candidate the current model likes best
  (the mistakes a judge makes are what it must learn); 1-4 states per scene.

Model: per cell, features :func:`ir_env.nr_quality.cell_features` -> standardise -> MLP (ReLU) -> PSNR
(dB). Loss: Huber on the cell PSNR (clipped to [5, 50]) plus ``--pair-weight`` x Huber on the
difference of the predicted whole-image PSNR of each candidate and its parent against the true
difference (what a judge's decisions depend on). Trained with torch (1 thread); the weights are written as
JSON and inference runs in NumPy.

Held-out metrics (written to ``--results``) are measured on scenes made from the TEST split images
(random crops, the same generator with a model-free policy): Pearson / Spearman of predicted vs true
whole-image PSNR, cell-level RMSE, pairwise ranking accuracy within groups (parent vs candidate, and
candidate vs candidate, for pairs whose true PSNR differs by more than 0.1 dB), and the true gain of the
candidate the model would pick (greedy's decision) compared with the oracle's pick.

Usage: ``python experiments/train_npsnr.py [--seed 0] [--out ir_env/data/npsnr_mlp.json]``
(about 8 minutes on one core with the defaults; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ir_env.corpus import load_named_corpus, random_crop
from ir_env.nr_quality import (
    DEFAULT_WEIGHTS,
    FEATURE_NAMES,
    N_FEATURES,
    PSNR_RANGE,
    NPSNRModel,
    _pool,
    cell_features,
    grid_edges,
)
from ir_env.recipes import synthesize
from ir_env.regions import make_proposer
from restorers import apply, fast_tools

TRAIN_RECIPES = ("spatial-mixed", "mixed-2", "mixed-3", "global-mild", "global-moderate", "global-severe",
                 "agenticir-A")
RECIPE_P = np.array([0.5] + [0.5 / 6] * 6)
GREEDY_OFFSETS = (0.0, -0.5, 0.5)


# ----------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------
@dataclass
class Dataset:
    """Cells of many images, images grouped by search state (the first image of a group is its parent)."""

    feats: list[np.ndarray] = field(default_factory=list)      # per image (C, F)
    cell_psnr: list[np.ndarray] = field(default_factory=list)  # per image (C,)
    cell_w: list[np.ndarray] = field(default_factory=list)     # per image (C,) pixel counts
    img_psnr: list[float] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)              # per image: "parent" or the tool's name
    groups: list[list[int]] = field(default_factory=list)
    photo: list[int] = field(default_factory=list)             # per group: index of the source photo

    def add_group(self, items: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]], tags: list[str],
                  photo: int = -1) -> None:
        start = len(self.feats)
        for (f, p, w, t), tag in zip(items, tags, strict=True):
            self.feats.append(f)
            self.cell_psnr.append(p)
            self.cell_w.append(w)
            self.img_psnr.append(t)
            self.tags.append(tag)
        self.groups.append(list(range(start, len(self.feats))))
        self.photo.append(int(photo))

    def extend(self, other: Dataset) -> None:
        off = len(self.feats)
        self.feats += other.feats
        self.cell_psnr += other.cell_psnr
        self.cell_w += other.cell_w
        self.img_psnr += other.img_psnr
        self.tags += other.tags
        self.groups += [[i + off for i in g] for g in other.groups]
        self.photo += other.photo

    @property
    def n_images(self) -> int:
        return len(self.feats)


def targets(image: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-cell PSNR (dB, clipped to PSNR_RANGE), cell pixel counts, whole-image PSNR (dB, clipped)."""
    h, w = image.shape[:2]
    ey, ex = grid_edges(h, w)
    err = ((image.astype(np.float64) - clean.astype(np.float64)) ** 2).mean(axis=2)
    counts = (np.diff(ey)[:, None] * np.diff(ex)[None, :]).reshape(-1).astype(np.float64)
    mse = _pool(err[None], ey, ex)[0].reshape(-1) / counts
    cell = np.clip(-10.0 * np.log10(mse + 1e-10), *PSNR_RANGE)
    whole = float(np.clip(-10.0 * np.log10(err.mean() + 1e-10), *PSNR_RANGE))
    return cell, counts, whole


def record(image: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    f, _ = cell_features(image)
    p, w, t = targets(image, clean)
    return f, p, w, t


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """More content from few photos: flips / 90-degree turns, channel permutation, mild tone changes."""
    out = np.rot90(img, int(rng.integers(4)))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.3:
        out = out[..., rng.permutation(3)]
    if rng.random() < 0.15:  # greyscale photo
        out = np.repeat(out @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(out.shape)
    if rng.random() < 0.5:
        gamma = float(np.exp(rng.uniform(-0.4, 0.4)))
        gain = float(rng.uniform(0.8, 1.1))
        out = np.clip(gain * np.power(out, gamma), 0.0, 1.0)
    return np.ascontiguousarray(out, dtype=np.float32)


def augmented_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of ``photo`` scaled by 0.5-1 first (half the time): textures at other scales."""
    if rng.random() < 0.5:
        f = float(rng.uniform(0.5, 1.0))
        h, w = photo.shape[:2]
        nh, nw = max(size, int(round(h * f))), max(size, int(round(w * f)))
        photo = cv2.resize(photo, (nw, nh), interpolation=cv2.INTER_AREA)
    return augment(random_crop(photo, size, rng), rng)


def region_sets(scene, rng: np.random.Generator, proposer) -> np.ndarray:
    """Masks a search would act on: the proposer's (mostly), the ground truth, or the whole image."""
    u = rng.random()
    if u < 0.7:
        return proposer.propose(scene.degraded)
    if u < 0.9:
        return scene.masks
    return np.ones((1, *scene.degraded.shape[:2]), bool)


def candidate_theta(tool, rng: np.random.Generator) -> np.ndarray:
    base = tool.to_normalised(tool.defaults())
    th = base.copy()
    u = rng.random()
    if u < 0.6:  # greedy's candidates
        th[0] = np.clip(th[0] + GREEDY_OFFSETS[rng.integers(3)], -1, 1)
    elif u < 0.85:  # greedy's refinement around them
        th[0] = np.clip(th[0] + rng.choice([-0.75, -0.625, -0.375, -0.25, 0.25, 0.375, 0.625, 0.75]), -1, 1)
    else:  # anything
        th = rng.uniform(-1, 1, size=th.shape)
    return th


def generate(images: list[np.ndarray], n_scenes: int, rng: np.random.Generator, args: argparse.Namespace,
             model: NPSNRModel | None = None, p_model: float = 0.0) -> Dataset:
    """Groups from ``n_scenes`` scenes (see the module docstring)."""
    tools = fast_tools()
    ds = Dataset()
    for _ in range(n_scenes):
        pid = int(rng.integers(len(images)))
        photo = images[pid]
        size = int(rng.integers(args.min_size, args.max_size + 1))
        clean = augmented_crop(photo, size, rng) if args.augment else random_crop(photo, size, rng)
        recipe = TRAIN_RECIPES[rng.choice(len(TRAIN_RECIPES), p=RECIPE_P)]
        scene = synthesize(clean, recipe=recipe, seed=int(rng.integers(2**31)))
        proposer = make_proposer("degradation-clusters", max_regions=4, seed=int(rng.integers(2**31)))
        masks = region_sets(scene, rng, proposer)
        state = clean if rng.random() < args.p_clean else scene.degraded
        n_states = int(rng.integers(1, args.max_states + 1))
        for _s in range(n_states):
            parent = record(state, clean)
            items, images_out, tags = [parent], [state], ["parent"]
            for k in range(len(masks)):
                for tool in tools:
                    if rng.random() > args.p_candidate:
                        continue
                    out = apply(state, tool, candidate_theta(tool, rng), mask=masks[k])
                    items.append(record(out, clean))
                    images_out.append(out)
                    tags.append(tool.name)
            ds.add_group(items, tags, pid)
            if len(items) < 2:
                break
            u = rng.random()
            true = np.array([it[3] for it in items[1:]])
            if model is not None and u < p_model:
                pred = np.array([_img_pred(model, it) for it in items[1:]])
                nxt = int(np.argmax(pred))
            elif u < p_model + (1 - p_model) * 0.6:
                nxt = int(np.argmax(true))
            else:
                nxt = int(rng.integers(len(true)))
            state = images_out[1 + nxt]
    return ds


def _img_pred(model: NPSNRModel, item) -> float:
    from ir_env.nr_quality import combine_cells

    return combine_cells(model.predict_cells(item[0]), item[2])


# ----------------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------------
def fit(ds: Dataset, args: argparse.Namespace, seed: int) -> NPSNRModel:
    """Train the MLP on ``ds`` (torch, 1 thread) and return it as an :class:`NPSNRModel`."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_all = np.concatenate(ds.feats)
    mean = x_all.mean(axis=0)
    std = x_all.std(axis=0) + 1e-6
    X = torch.tensor((x_all - mean) / std, dtype=torch.float32)
    Y = torch.tensor(np.concatenate(ds.cell_psnr), dtype=torch.float32)
    W = torch.tensor(np.concatenate(ds.cell_w), dtype=torch.float32)
    ncell = np.array([len(f) for f in ds.feats])
    start = np.concatenate([[0], np.cumsum(ncell)])
    T = torch.tensor(ds.img_psnr, dtype=torch.float32)

    sizes = [N_FEATURES, *args.hidden, 1]
    layers: list[torch.nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    with torch.no_grad():
        net[-1].bias.fill_(float(Y.mean()))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    n_groups = len(ds.groups)
    steps = args.epochs * max(1, n_groups // args.batch_groups)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    huber = torch.nn.HuberLoss(delta=2.0)
    for _step in range(steps):
        gids = rng.choice(n_groups, size=min(args.batch_groups, n_groups), replace=False)
        imgs = np.concatenate([ds.groups[g] for g in gids])
        parent_of = np.concatenate([[ds.groups[g][0]] * len(ds.groups[g]) for g in gids])
        cell_idx = np.concatenate([np.arange(start[i], start[i + 1]) for i in imgs])
        img_of_cell = np.repeat(np.arange(len(imgs)), ncell[imgs])
        ci = torch.from_numpy(cell_idx)
        pred = net(X[ci])[:, 0]
        loss = args.abs_weight * huber(pred, Y[ci])
        if args.pair_weight > 0:
            w = W[ci]
            mse = torch.pow(10.0, -pred / 10.0) * w
            tot = torch.zeros(len(imgs)).index_add_(0, torch.from_numpy(img_of_cell), mse)
            wsum = torch.zeros(len(imgs)).index_add_(0, torch.from_numpy(img_of_cell), w)
            p_img = -10.0 * torch.log10(tot / wsum)
            pos = {int(i): j for j, i in enumerate(imgs)}
            par = torch.tensor([pos[int(p)] for p in parent_of])
            d_pred = p_img - p_img[par]
            d_true = T[torch.from_numpy(imgs)] - T[torch.from_numpy(parent_of)]
            keep = torch.from_numpy(imgs != parent_of)
            loss = loss + args.pair_weight * huber(d_pred[keep], d_true[keep])
            if args.list_weight > 0:  # listwise: the top of each group matters most (greedy's argmax)
                t_img = T[torch.from_numpy(imgs)]
                o = 0
                for g in gids:
                    n_g = len(ds.groups[g])
                    lp = torch.log_softmax(p_img[o:o + n_g] / args.tau, 0)
                    q = torch.softmax(t_img[o:o + n_g] / args.tau, 0)
                    loss = loss - args.list_weight * (q * lp).sum() / len(gids)
                    o += n_g
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    layers_np = tuple((m.weight.detach().double().numpy().T.copy(), m.bias.detach().double().numpy().copy())
                      for m in lin)
    return NPSNRModel(mean, std, layers_np, {})


# ----------------------------------------------------------------------------------------------------
# held-out evaluation
# ----------------------------------------------------------------------------------------------------
def _rank(a: np.ndarray) -> np.ndarray:
    r = np.empty(len(a))
    r[np.argsort(a, kind="stable")] = np.arange(len(a))
    return r


def evaluate_model(model: NPSNRModel, ds: Dataset, min_diff: float = 0.1) -> dict[str, float]:
    """Held-out metrics of ``model`` on ``ds`` (see the module docstring)."""
    from ir_env.nr_quality import combine_cells

    cell_pred = [model.predict_cells(f) for f in ds.feats]
    pred = np.array([combine_cells(p, w) for p, w in zip(cell_pred, ds.cell_w, strict=True)])
    true = np.array(ds.img_psnr)
    cp, ct = np.concatenate(cell_pred), np.concatenate(ds.cell_psnr)
    pc_ok = pc_n = pp_ok = pp_n = 0
    pick_gain, best_gain, pos_pick, n_states, judged_pos_true_neg = [], [], 0, 0, 0
    for g in ds.groups:
        if len(g) < 2:
            continue
        par, kids = g[0], np.array(g[1:])
        d_t, d_p = true[kids] - true[par], pred[kids] - pred[par]
        sel = np.abs(d_t) > min_diff
        pc_ok += int(np.sum(np.sign(d_t[sel]) == np.sign(d_p[sel])))
        pc_n += int(sel.sum())
        tt, pp = true[kids], pred[kids]
        dt = tt[:, None] - tt[None, :]
        dp = pp[:, None] - pp[None, :]
        m = np.triu(np.abs(dt) > min_diff, 1)
        pp_ok += int(np.sum(np.sign(dt[m]) == np.sign(dp[m])))
        pp_n += int(m.sum())
        j = int(np.argmax(d_p))
        n_states += 1
        if d_p[j] > 0:  # greedy would take this step
            pick_gain.append(d_t[j])
            pos_pick += int(d_t[j] > 0)
            judged_pos_true_neg += int(d_t[j] <= 0)
        else:
            pick_gain.append(0.0)
        best_gain.append(max(0.0, float(d_t.max())))
    return {
        "images": int(len(true)), "groups": int(len(ds.groups)),
        "pearson_image": float(np.corrcoef(pred, true)[0, 1]),
        "spearman_image": float(np.corrcoef(_rank(pred), _rank(true))[0, 1]),
        "rmse_image_db": float(np.sqrt(np.mean((pred - true) ** 2))),
        "rmse_cell_db": float(np.sqrt(np.mean((cp - ct) ** 2))),
        "pearson_cell": float(np.corrcoef(cp, ct)[0, 1]),
        "pairwise_acc_parent_vs_candidate": pc_ok / max(pc_n, 1), "pairs_parent_vs_candidate": pc_n,
        "pairwise_acc_candidates": pp_ok / max(pp_n, 1), "pairs_candidates": pp_n,
        "greedy_pick_true_gain_db": float(np.mean(pick_gain)),
        "oracle_pick_true_gain_db": float(np.mean(best_gain)),
        "greedy_pick_harmful_rate": judged_pos_true_neg / max(n_states, 1),
    }


# ----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(DEFAULT_WEIGHTS), help="weights JSON to write")
    ap.add_argument("--results", default="experiments/results/npsnr_train.json")
    ap.add_argument("--scenes", type=int, nargs="+", default=[110, 70],
                    help="scenes per round (round 2+ also follows the current model's picks)")
    ap.add_argument("--val-scenes", type=int, default=40)
    ap.add_argument("--max-states", type=int, default=3, help="search states per scene (1..N)")
    ap.add_argument("--p-candidate", type=float, default=0.5, help="share of (region, tool) candidates tried")
    ap.add_argument("--p-clean", type=float, default=0.1, help="share of scenes whose search starts clean")
    ap.add_argument("--p-model", type=float, default=0.6, help="share of steps following the model (round 2+)")
    ap.add_argument("--min-size", type=int, default=96)
    ap.add_argument("--max-size", type=int, default=160)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch-groups", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-5)
    ap.add_argument("--abs-weight", type=float, default=1.0, help="weight of the cell PSNR loss")
    ap.add_argument("--pair-weight", type=float, default=2.0, help="weight of the candidate-parent loss")
    ap.add_argument("--no-augment", dest="augment", action="store_false", help="plain crops only")
    ap.add_argument("--list-weight", type=float, default=0.0, help="weight of the listwise (top-1) loss")
    ap.add_argument("--tau", type=float, default=0.5, help="temperature (dB) of the listwise loss")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (does not write --out unless given)")
    ap.add_argument("--save-data", default="", help="also save the generated data (npz) here")
    args = ap.parse_args(argv)
    if args.quick:
        args.scenes, args.val_scenes, args.epochs = [6, 4], 4, 3
    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    train_imgs = [img for _, img in load_named_corpus("builtin", "train")]
    test_imgs = [img for _, img in load_named_corpus("builtin", "test")]

    timings: dict[str, float] = {}
    ta = time.perf_counter()
    val_args = argparse.Namespace(**{**vars(args), "augment": False})
    val = generate(test_imgs, args.val_scenes, np.random.default_rng(args.seed + 1000), val_args)
    timings["generate_val_s"] = time.perf_counter() - ta
    data, model, rounds = Dataset(), None, []
    for r, n in enumerate(args.scenes):
        ta = time.perf_counter()
        data.extend(generate(train_imgs, n, rng, args, model=model, p_model=args.p_model if r else 0.0))
        timings[f"generate_round{r}_s"] = time.perf_counter() - ta
        ta = time.perf_counter()
        model = fit(data, args, seed=args.seed + r)
        timings[f"fit_round{r}_s"] = time.perf_counter() - ta
        m = evaluate_model(model, val)
        rounds.append({"round": r, "train_images": data.n_images, "train_groups": len(data.groups), **m})
        print(f"round {r}: {data.n_images} train images, {len(data.groups)} groups; held-out "
              f"spearman {m['spearman_image']:.3f}, pair acc {m['pairwise_acc_parent_vs_candidate']:.3f}"
              f"/{m['pairwise_acc_candidates']:.3f}, greedy pick gain {m['greedy_pick_true_gain_db']:+.2f} dB "
              f"(oracle {m['oracle_pick_true_gain_db']:+.2f})", flush=True)
    assert model is not None
    total = time.perf_counter() - t0
    # inference speed at 128 px
    probe = random_crop(test_imgs[0], 128, np.random.default_rng(0))
    model.score(probe)
    ta = time.perf_counter()
    for _ in range(50):
        model.score(probe)
    ms = (time.perf_counter() - ta) / 50 * 1e3
    meta = {"seed": args.seed, "train_split": "builtin/train", "recipes": list(TRAIN_RECIPES),
            "hidden": args.hidden, "train_images": data.n_images, "train_groups": len(data.groups),
            "heldout": rounds[-1]}
    model = NPSNRModel(model.mean, model.std, model.layers, meta)
    result = {"config": {k: v for k, v in vars(args).items()}, "features": list(FEATURE_NAMES),
              "rounds": rounds, "heldout": rounds[-1], "timings_s": {**timings, "total": total},
              "score_ms_128px": ms}
    if not args.quick or "--out" in (argv or []):
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(model.to_dict(), separators=(",", ":")))
        print(f"wrote {args.out}")
    if args.results and not args.quick:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.results}")
    if args.save_data:
        _save(args.save_data, data, val)
    print(f"total {total:.0f} s, score {ms:.2f} ms at 128 px")
    return 0


def _save(path: str, data: Dataset, val: Dataset) -> None:
    out = {}
    for name, ds in (("train", data), ("val", val)):
        out[f"{name}_feats"] = np.concatenate(ds.feats)
        out[f"{name}_cell_psnr"] = np.concatenate(ds.cell_psnr)
        out[f"{name}_cell_w"] = np.concatenate(ds.cell_w)
        out[f"{name}_ncell"] = np.array([len(f) for f in ds.feats])
        out[f"{name}_img_psnr"] = np.array(ds.img_psnr)
        out[f"{name}_group"] = np.concatenate([[gi] * len(g) for gi, g in enumerate(ds.groups)])
        out[f"{name}_tags"] = np.array(ds.tags)
        out[f"{name}_photo"] = np.array(ds.photo)
    np.savez_compressed(path, **out)


if __name__ == "__main__":
    raise SystemExit(main())
