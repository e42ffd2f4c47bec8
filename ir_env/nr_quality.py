"""``npsnr``: a learned no-reference quality metric, the predicted PSNR (dB) of an image against its
unknown clean version.

Why: classic no-reference IQA (NIQE, BRISQUE, PIQE) models natural-scene statistics and does not follow
PSNR on our mix of haze / low light / noise / blur / JPEG / rain and the changes restoration tools make
(it can even prefer a noisier image). Because our scenes are synthetic, the clean image is known while
training, so the exact target PSNR is available; ``experiments/train_npsnr.py`` fits the model below on
crops of the built-in TRAIN split only (recipes ``spatial-mixed``, ``mixed-2/3``, ``global-*``,
``agenticir-A``) and on versions of them changed by tool calls, as a search planner produces them.

How a score is computed:

1. The image is split into a fixed grid of cells: ``max(2, round(side / 32))`` cells per axis, cell
   borders at ``round(i * side / n)`` (so cells are about 32 px and any size >= 2 px works; sizes that
   are not multiples of 32 give unequal cells).
2. :func:`cell_features` computes ``FEATURE_NAMES`` (``N_FEATURES`` values) per cell: feature maps are
   computed once on the whole image (OpenCV filters, support radius <= 13 px) and pooled per cell
   (mean / min / max with ``numpy.ufunc.reduceat``); see :data:`FEATURE_NAMES` for their meaning.
3. A small multi-layer perceptron (weights in ``ir_env/data/npsnr_mlp.json``: plain numbers, standard
   score input normalisation, ReLU hidden layers, one linear output) predicts each cell's PSNR in dB,
   clipped to [5, 50] (the training targets' range).
4. The cells are combined like PSNR combines errors: predicted MSE_c = 10^(-psnr_c / 10), image score =
   ``-10 log10(sum_c w_c MSE_c / sum_c w_c)`` with ``w_c`` the cell's pixel count (inside ``mask`` when one
   is given). Higher is better; the result lies in [5, 50] dB.

Images are float32 HxWx3 RGB in [0, 1]. Inference is NumPy/OpenCV only (a few ms at 128 px) and
deterministic (no BLAS-order dependence: float64 throughout).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from restorers.imagecheck import check_image, check_mask

#: Nominal cell side in px.
CELL = 32
#: Minimum number of cells per axis.
MIN_CELLS = 2
#: Range of predicted cell PSNR (dB), the clip of the training targets.
PSNR_RANGE = (5.0, 50.0)
#: Default weights file.
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "data" / "npsnr_mlp.json"

#: Per-cell features, in order (units; "log" = natural log of the quantity plus a small epsilon).
FEATURE_NAMES: tuple[str, ...] = (
    "luma_mean",          # mean BT.601 luma Y in [0, 1]
    "luma_std",           # std of Y in the cell
    "luma_min",           # min / max of Y in the cell
    "luma_max",
    "value_mean",         # mean HSV value V = max(R, G, B)
    "sat_mean",           # mean HSV saturation
    "chroma_rg",          # mean R - G and B - G (colour cast)
    "chroma_bg",
    "dark_mean",          # mean dark channel (min over RGB, 7x7 erosion)
    "dark_min",           # min of the dark channel in the cell (haze floor)
    "minrgb_mean",        # mean of min(R, G, B)
    "clip_high",          # fraction of pixels with V >= 0.98 (over-brightening, saturation)
    "clip_low",           # fraction of pixels with V <= 0.02 (crushed blacks)
    "dark_frac",          # fraction of pixels with V < 0.15
    "log_noise_abs",      # log mean |Immerkaer(255 Y)| (noise + texture)
    "log_noise_flat",     # log of the same weighted towards flat pixels (noise estimate)
    "log_noise_chroma",   # log mean |Immerkaer| of 255 (R - G) and 255 (B - G) (colour noise)
    "log_grad0",          # log mean Sobel gradient magnitude of Y, and of G_s * Y for s = 1, 2, 4 px
    "log_grad1",
    "log_grad2",
    "log_grad4",
    "log_lap2",           # log mean squared Laplacian of Y
    "log_hi",             # log mean (Y - G1 Y)^2, (G1 Y - G3 Y)^2, (G3 Y - G8 Y)^2 (frequency bands)
    "log_mid",
    "log_low",
    "log_lstd",           # log mean 7x7 local std of Y
    "rel_contrast",       # mean local std / (local mean + 0.1)
    "coherence",          # structure-tensor coherence of G1 Y in [0, 1] (motion blur anisotropy)
    "block_h",            # log2 (|dY/dx| across 8-px block borders + 1/255) / (inside blocks + 1/255)
    "block_v",            # the same vertically
    "dct_zero",           # fraction of near-zero 8x8 DCT AC coefficients (|c| < 1 on 0-255)
    "rain_v",             # mean positive near-vertical bright-line response (x 50)
    "rain_excess",        # near-vertical minus near-horizontal response (x 50)
    "overshoot",          # mean max(0, |Y - G2 Y| - 3 local std of G2-band) halo measure (x 100)
    "img_luma_mean",      # whole-image context: mean Y, mean dark channel, log noise (flat), log grad1,
    "img_dark_mean",      # mean saturation (greyscale photos break colour priors such as the dark channel)
    "img_log_noise_flat",
    "img_log_grad1",
    "img_sat_mean",
)
N_FEATURES = len(FEATURE_NAMES)

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
_ERODE7 = np.ones((7, 7), np.uint8)
_RAIN_ANGLES = (-20.0, 0.0, 20.0)


def _line_kernel(angle_deg: float) -> np.ndarray:
    """Zero-mean oriented bright-line filter (11x11; hand-built: no library offers this detector)."""
    t = math.radians(angle_deg)
    dy, dx = np.mgrid[-5:6, -5:6].astype(np.float64)
    along = dy * math.cos(t) + dx * math.sin(t)
    perp = -dy * math.sin(t) + dx * math.cos(t)
    inside = np.abs(along) <= 5.5
    center = np.clip(1.0 - np.abs(perp), 0.0, None) * inside
    side = np.clip(1.0 - np.abs(np.abs(perp) - 3.0), 0.0, None) * inside
    return (center / center.sum() - side / side.sum()).astype(np.float32)


_RAIN_K = tuple(_line_kernel(a) for a in _RAIN_ANGLES)
_ORTHO_K = tuple(_line_kernel(a + 90.0) for a in _RAIN_ANGLES)


def _dct8() -> np.ndarray:
    k, i = np.arange(8)[:, None], np.arange(8)[None, :]
    c = np.cos(np.pi * (2 * i + 1) * k / 16.0) * math.sqrt(2.0 / 8.0)
    c[0] /= math.sqrt(2.0)
    return c


_DCT8 = _dct8()


def _gauss(img: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(math.ceil(3.0 * sigma)))
    return cv2.GaussianBlur(img, (2 * r + 1, 2 * r + 1), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT_101)


def _grad(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT_101)
    return gx, gy


def grid_edges(h: int, w: int, cell: int = CELL) -> tuple[np.ndarray, np.ndarray]:
    """Cell borders (row edges, column edges) of the fixed grid for an ``h`` x ``w`` image: ``n + 1``
    integers from 0 to the side, ``n = max(2, round(side / cell))`` (at most ``side``)."""
    def edges(side: int) -> np.ndarray:
        n = min(side, max(MIN_CELLS, int(round(side / cell))))
        return np.round(np.arange(n + 1) * side / n).astype(np.int64)

    return edges(h), edges(w)


def _pool(maps: np.ndarray, ey: np.ndarray, ex: np.ndarray, op: np.ufunc = np.add) -> np.ndarray:
    """Reduce (M, H, W) maps over grid cells -> (M, ny, nx) with ``op`` (add / minimum / maximum)."""
    # columns first (about 2x faster than rows first); float64 accumulation
    out = op.reduceat(maps, ex[:-1], axis=2, dtype=np.float64)
    return op.reduceat(out, ey[:-1], axis=1)


def cell_features(image: np.ndarray, cell: int = CELL) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell features of ``image`` (float32 HxWx3 RGB in [0, 1], both sides >= 2 px).

    Returns ``(features, counts)``: features (ny * nx, N_FEATURES) float64 in row-major cell order, in
    the units of :data:`FEATURE_NAMES`; counts (ny, nx) int64 pixels per cell. Deterministic.
    """
    img = check_image(image)
    h, w = img.shape[:2]
    if h < MIN_CELLS or w < MIN_CELLS:
        raise ValueError(f"npsnr needs images of at least {MIN_CELLS}x{MIN_CELLS} px, got {h}x{w}")
    ey, ex = grid_edges(h, w, cell)
    counts = np.diff(ey)[:, None] * np.diff(ex)[None, :]

    r, g, b = cv2.split(img)
    y = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    v = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    sat = (v - mn) / np.maximum(v, 1e-6)
    dark = cv2.erode(mn, _ERODE7, borderType=cv2.BORDER_REFLECT_101)

    nres = np.abs(cv2.filter2D(y * 255.0, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT_101))
    c1 = np.abs(cv2.filter2D((r - g) * 255.0, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT_101))
    c2 = np.abs(cv2.filter2D((b - g) * 255.0, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT_101))

    gx, gy = _grad(y)
    gm0 = np.sqrt(gx * gx + gy * gy)
    g1, g2, g3 = _gauss(y, 1.0), _gauss(y, 2.0), _gauss(y, 3.0)
    g4, g8 = _gauss(y, 4.0), _gauss(y, 8.0)
    s1x, s1y = _grad(g1)
    gm1 = np.sqrt(s1x * s1x + s1y * s1y)
    s2x, s2y = _grad(g2)
    gm2 = np.sqrt(s2x * s2x + s2y * s2y)
    s4x, s4y = _grad(g4)
    gm4 = np.sqrt(s4x * s4x + s4y * s4y)
    flat_w = np.exp(-(gm1 * gm1) / (0.01 ** 2))  # weight of flat pixels (|grad G1 Y| << 0.01 per px)
    lap = cv2.Laplacian(y, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    hi, mid, low = y - g1, g1 - g3, g3 - g8
    lm = cv2.boxFilter(y, cv2.CV_32F, (7, 7), borderType=cv2.BORDER_REFLECT_101)
    lm2 = cv2.boxFilter(y * y, cv2.CV_32F, (7, 7), borderType=cv2.BORDER_REFLECT_101)
    lstd = np.sqrt(np.maximum(lm2 - lm * lm, 0.0))
    band = y - g2
    bstd = np.sqrt(np.maximum(cv2.boxFilter(band * band, cv2.CV_32F, (9, 9), borderType=cv2.BORDER_REFLECT_101), 0.0))
    over = np.maximum(0.0, np.abs(band) - 3.0 * _gauss(bstd, 4.0) - 0.02)

    # JPEG blockiness on the 8-px grid anchored at (0, 0)
    dh = np.zeros_like(y)
    dh[:, :-1] = np.abs(y[:, 1:] - y[:, :-1])
    dv = np.zeros_like(y)
    dv[:-1, :] = np.abs(y[1:, :] - y[:-1, :])
    col, row = np.arange(w), np.arange(h)
    bd_c = ((col % 8) == 7) & (col < w - 1)
    in_c = ((col % 8) != 7) & (col < w - 1)
    bd_r = ((row % 8) == 7) & (row < h - 1)
    in_r = ((row % 8) != 7) & (row < h - 1)
    ones = np.ones((h, w), np.float32)
    zf = np.zeros_like(y)
    h8, w8 = (h // 8) * 8, (w // 8) * 8
    if h8 and w8:
        blocks = (y[:h8, :w8].astype(np.float64) * 255.0).reshape(h8 // 8, 8, w8 // 8, 8).transpose(0, 2, 1, 3)
        coef = _DCT8 @ blocks @ _DCT8.T
        frac = (np.abs(coef) < 1.0).reshape(h8 // 8, w8 // 8, 64)[..., 1:].mean(axis=2).astype(np.float32)
        zf[:h8, :w8] = np.repeat(np.repeat(frac, 8, axis=0), 8, axis=1)
    zmask = np.zeros_like(y)
    zmask[:h8, :w8] = 1.0

    rv = ro = None
    for kv, ko in zip(_RAIN_K, _ORTHO_K, strict=True):
        a = cv2.filter2D(y, cv2.CV_32F, kv, borderType=cv2.BORDER_REFLECT_101)
        o = cv2.filter2D(y, cv2.CV_32F, ko, borderType=cv2.BORDER_REFLECT_101)
        rv = a if rv is None else np.maximum(rv, a)
        ro = o if ro is None else np.maximum(ro, o)
    rv, ro = np.maximum(rv, 0.0), np.maximum(ro, 0.0)

    jxx, jyy, jxy = s1x * s1x, s1y * s1y, s1x * s1y

    maps = [y, y * y, v, sat, r - g, b - g, dark, mn, (v >= 0.98), (v <= 0.02), (v < 0.15),
            nres, nres * flat_w, flat_w, 0.5 * (c1 + c2), gm0, gm1, gm2, gm4, lap * lap, hi * hi, mid * mid,
            low * low, lstd, lstd / (lm + 0.1), jxx, jyy, jxy,
            dh * bd_c[None, :], dh * in_c[None, :], dv * bd_r[:, None], dv * in_r[:, None],
            ones * bd_c[None, :], ones * in_c[None, :], ones * bd_r[:, None], ones * in_r[:, None],
            zf, zmask, rv, ro, over]
    stack = np.empty((len(maps), h, w), np.float32)
    for i, mp in enumerate(maps):
        stack[i] = mp
    sums = _pool(stack, ey, ex)
    n = counts.astype(np.float64)
    mean = sums / n
    mins = _pool(np.stack([y, dark]), ey, ex, np.minimum)
    ymax = _pool(y[None], ey, ex, np.maximum)[0]

    (my, my2, mv, msat, mrg, mbg, mdark, mmn, chi, clo, cdark, mnres, _, _, mchroma, mg0, mg1,
     mg2, mg4, mlap2, mhi, mmid, mlow, mlstd, mrcon, mjxx, mjyy, mjxy) = mean[:28]
    nflat_s, flat_s = sums[12], sums[13]
    bdh, inh, bdv, inv, nbdh, ninh, nbdv, ninv, zsum, zn = sums[28:38]
    mrv, mro, mover = mean[38], mean[39], mean[40]

    eps = 1e-6
    c = 1.0 / 255.0
    prior = 16.0  # pseudo-count: cells with few flat pixels shrink towards their mean |residual|
    noise_flat = (nflat_s + prior * mnres) / (flat_s + prior)
    tr = mjxx + mjyy
    coh = np.sqrt((mjxx - mjyy) ** 2 + 4.0 * mjxy ** 2) / np.maximum(tr, 1e-12) * (tr > 1e-12)
    feats = [
        my, np.sqrt(np.maximum(my2 - my * my, 0.0)), mins[0], ymax, mv, msat, mrg, mbg, mdark, mins[1], mmn,
        chi, clo, cdark, np.log(mnres + 0.05), np.log(noise_flat + 0.05), np.log(mchroma + 0.05),
        np.log(mg0 + eps), np.log(mg1 + eps), np.log(mg2 + eps), np.log(mg4 + eps), np.log(mlap2 + 1e-8),
        np.log(mhi + 1e-9), np.log(mmid + 1e-9), np.log(mlow + 1e-9), np.log(mlstd + 1e-4), mrcon, coh,
        np.log2((bdh / np.maximum(nbdh, 1) + c) / (inh / np.maximum(ninh, 1) + c)) * (nbdh > 0),
        np.log2((bdv / np.maximum(nbdv, 1) + c) / (inv / np.maximum(ninv, 1) + c)) * (nbdv > 0),
        np.where(zn > 0, zsum / np.maximum(zn, 1), 0.5),
        50.0 * mrv, 50.0 * (mrv - mro), 100.0 * mover,
    ]
    cells = np.stack([np.asarray(f, np.float64).reshape(-1) for f in feats], axis=1)
    wts = n.reshape(-1) / n.sum()
    ctx = wts @ cells[:, [0, 8, 15, 18, 5]]
    out = np.concatenate([cells, np.broadcast_to(ctx, (cells.shape[0], len(ctx)))], axis=1)
    return np.ascontiguousarray(out), counts


def combine_cells(psnr_cells: np.ndarray, weights: np.ndarray) -> float:
    """Whole-image PSNR (dB) from per-cell PSNRs: ``-10 log10(sum w 10^(-p/10) / sum w)``."""
    p = np.asarray(psnr_cells, np.float64).reshape(-1)
    wt = np.asarray(weights, np.float64).reshape(-1)
    mse = np.power(10.0, -p / 10.0)
    return float(-10.0 * np.log10((wt @ mse) / wt.sum()))


@dataclass(frozen=True)
class NPSNRModel:
    """The fitted per-cell PSNR regressor: standardisation, then ReLU MLP layers, then a linear output.

    ``mean``/``std``: (N_FEATURES,) input normalisation; ``layers``: list of (W (in, out), b (out,)).
    """

    mean: np.ndarray
    std: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    meta: dict

    @classmethod
    def from_dict(cls, d: dict) -> NPSNRModel:
        """Build from the JSON form written by :meth:`to_dict` (validates shapes)."""
        if d.get("features") != list(FEATURE_NAMES):
            raise ValueError("npsnr weights were fitted on a different feature list; retrain with "
                             "experiments/train_npsnr.py")
        mean = np.asarray(d["mean"], np.float64)
        std = np.asarray(d["std"], np.float64)
        layers = tuple((np.asarray(lw, np.float64), np.asarray(lb, np.float64)) for lw, lb in d["layers"])
        if mean.shape != (N_FEATURES,) or std.shape != (N_FEATURES,) or not layers:
            raise ValueError("npsnr weights: bad mean/std/layers shapes")
        prev = N_FEATURES
        for lw, lb in layers:
            if lw.ndim != 2 or lw.shape[0] != prev or lb.shape != (lw.shape[1],):
                raise ValueError(f"npsnr weights: layer shapes {lw.shape}, {lb.shape} do not chain from {prev}")
            prev = lw.shape[1]
        if prev != 1:
            raise ValueError("npsnr weights: the last layer must have one output")
        return cls(mean, std, layers, dict(d.get("meta", {})))

    def to_dict(self) -> dict:
        """JSON-friendly form (plain lists of floats)."""
        return {"features": list(FEATURE_NAMES), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "layers": [[lw.tolist(), lb.tolist()] for lw, lb in self.layers], "meta": self.meta}

    def predict_cells(self, features: np.ndarray) -> np.ndarray:
        """Per-cell PSNR (dB, clipped to :data:`PSNR_RANGE`) from (C, N_FEATURES) features."""
        x = (np.asarray(features, np.float64) - self.mean) / self.std
        for i, (lw, lb) in enumerate(self.layers):
            x = x @ lw + lb
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return np.clip(x[:, 0], *PSNR_RANGE)

    def score(self, image: np.ndarray, mask: np.ndarray | None = None) -> float:
        """Predicted PSNR (dB, in [5, 50]) of ``image``; with ``mask`` (HxW bool, non-empty) only the
        cells it touches count, each weighted by its number of mask pixels."""
        feats, counts = cell_features(image)
        p = self.predict_cells(feats)
        if mask is None:
            return combine_cells(p, counts)
        img = check_image(image)
        m = check_mask(mask, img.shape[:2])
        if not m.any():
            raise ValueError("mask is empty: no pixel to score")
        ey, ex = grid_edges(*m.shape)
        wts = _pool(m[None].astype(np.float64), ey, ex)[0]
        keep = wts.reshape(-1) > 0
        return combine_cells(p[keep], wts.reshape(-1)[keep])


_MODELS: dict[str, NPSNRModel] = {}
_LOCK = threading.Lock()


def load_model(path: str | Path | None = None) -> NPSNRModel:
    """The model stored at ``path`` (default :data:`DEFAULT_WEIGHTS`), cached per path.

    Raises ``FileNotFoundError`` naming the path (train with ``experiments/train_npsnr.py``) when the
    file is missing, ``ValueError`` when it does not hold valid weights.
    """
    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    key = str(p.resolve())
    with _LOCK:
        if key not in _MODELS:
            if not p.is_file():
                raise FileNotFoundError(
                    f"npsnr weights not found at {p}: create them with "
                    f"`python experiments/train_npsnr.py --out {p}`"
                )
            try:
                d = json.loads(p.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"npsnr weights file {p} is not valid JSON: {exc}") from None
            _MODELS[key] = NPSNRModel.from_dict(d)
        return _MODELS[key]


def predict_psnr(image: np.ndarray, mask: np.ndarray | None = None, path: str | Path | None = None) -> float:
    """Predicted PSNR (dB, higher is better, in [5, 50]) of ``image`` with the model at ``path``."""
    return load_model(path).score(image, mask)


__all__ = [
    "CELL",
    "DEFAULT_WEIGHTS",
    "FEATURE_NAMES",
    "N_FEATURES",
    "NPSNRModel",
    "PSNR_RANGE",
    "cell_features",
    "combine_cells",
    "grid_edges",
    "load_model",
    "predict_psnr",
]
