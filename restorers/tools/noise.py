"""Denoising tools (family ``noise``): non-local means, bilateral, total variation, wavelet, BM3D."""

from __future__ import annotations

import bm3d
import cv2
import numpy as np
from skimage.restoration import denoise_tv_chambolle, denoise_wavelet

from restorers.spec import ParamSpec, Tool
from restorers.tools._common import checked, finish, from_uint8, rgb_to_ycrcb, to_uint8, ycrcb_to_rgb


@checked
def nlm_denoise(image: np.ndarray, h: float = 10.0, h_color: float = 10.0) -> np.ndarray:
    """Non-local means (OpenCV ``fastNlMeansDenoisingColored``, 5x5 patches, 9x9 search window).

    ``h`` filters luma and ``h_color`` chroma, both in 0-255 units (about the noise sigma works well).
    The image goes through uint8, as OpenCV's colour NLM requires.
    """
    out = cv2.fastNlMeansDenoisingColored(to_uint8(image), None, float(h), float(h_color), 5, 9)
    return finish(from_uint8(out))


@checked
def bilateral_denoise(image: np.ndarray, sigma_color: float = 25.0, sigma_space: float = 2.0) -> np.ndarray:
    """Edge-preserving bilateral filter (``cv2.bilateralFilter`` on float RGB).

    ``sigma_color`` in 0-255 units (range kernel), ``sigma_space`` in px (the window radius is
    1.5 * sigma_space, as OpenCV picks it).
    """
    img = np.ascontiguousarray(image, dtype=np.float32)
    out = cv2.bilateralFilter(
        img, -1, float(sigma_color) / 255.0, float(sigma_space), borderType=cv2.BORDER_REFLECT
    )
    return finish(out)


@checked
def tv_denoise(image: np.ndarray, weight: float = 0.08) -> np.ndarray:
    """Total-variation denoising (Chambolle's algorithm, ``skimage.restoration.denoise_tv_chambolle``).

    ``weight`` (unitless, intensities in [0, 1]): larger removes more noise and flattens more texture.
    """
    out = denoise_tv_chambolle(np.asarray(image, dtype=np.float32), weight=float(weight), channel_axis=-1)
    return finish(out)


@checked
def wavelet_denoise(image: np.ndarray, sigma: float = 15.0) -> np.ndarray:
    """Wavelet soft-thresholding (``skimage.restoration.denoise_wavelet``, BayesShrink, db2, in YCbCr).

    ``sigma`` is the assumed noise standard deviation in 0-255 units.
    """
    h, w = image.shape[:2]
    levels = int(max(1, min(4, np.floor(np.log2(min(h, w))) - 3)))
    out = denoise_wavelet(
        np.asarray(image, dtype=np.float32),
        sigma=float(sigma) / 255.0,
        wavelet="db2",
        mode="soft",
        wavelet_levels=levels,
        convert2ycbcr=True,
        method="BayesShrink",
        rescale_sigma=True,
        channel_axis=-1,
    )
    return finish(out)


#: Smallest side (px) handed to ``bm3d.bm3d``; smaller luma planes are mirror-padded to it and cropped back.
BM3D_MIN_SIDE = 16


#: Standard deviation on luma (BT.601 Y) of independent RGB channel noise of standard deviation 1.
LUMA_NOISE_FACTOR = float(np.sqrt(0.299**2 + 0.587**2 + 0.114**2))


@checked
def bm3d_denoise(image: np.ndarray, sigma: float = 15.0) -> np.ndarray:
    """BM3D (``bm3d.bm3d``, both stages) on luma; chroma by non-local means (slow: the costliest tool).

    ``sigma`` is the noise standard deviation of each RGB channel in 0-255 units (as ``wavelet_denoise``'s):
    independent channel noise of sigma is :data:`LUMA_NOISE_FACTOR` x sigma on luma (and about as much on each
    chroma plane), so BM3D and the chroma NLM get that (given sigma itself they over-smoothed: 1.4 dB lost at
    sigma 25). Running BM3D on luma only keeps it about 3x faster than ``bm3d.bm3d_rgb``; chroma noise, less
    visible, goes to OpenCV's NLM. Single-threaded, so that results are bit-for-bit reproducible.
    """
    ycc = rgb_to_ycrcb(image)
    profile = bm3d.BM3DProfile()
    profile.num_threads = 1  # more threads give results that differ in the last bits from run to run
    luma = ycc[..., 0].astype(np.float64)
    h, w = luma.shape
    # bm3d's C code crashes the interpreter on an 8x8 array: run it on a reflect-padded copy (>= 16 px a side)
    ph, pw = max(0, BM3D_MIN_SIDE - h), max(0, BM3D_MIN_SIDE - w)
    if ph or pw:
        luma = np.pad(luma, ((0, ph), (0, pw)), mode="symmetric")
    plane_sigma = float(sigma) * LUMA_NOISE_FACTOR
    y = np.asarray(bm3d.bm3d(luma, plane_sigma / 255.0, profile=profile))[:h, :w]
    chroma = to_uint8(ycc[..., 1:])
    cr = cv2.fastNlMeansDenoising(np.ascontiguousarray(chroma[..., 0]), None, plane_sigma, 7, 13)
    cb = cv2.fastNlMeansDenoising(np.ascontiguousarray(chroma[..., 1]), None, plane_sigma, 7, 13)
    out = np.dstack([np.asarray(y, dtype=np.float32), from_uint8(cr), from_uint8(cb)])
    return finish(ycrcb_to_rgb(out))


TOOLS: tuple[Tool, ...] = (
    Tool(
        name="nlm_denoise",
        family="noise",
        params=(
            ParamSpec("h", 1.0, 40.0, 10.0, "0-255", True, "luma filter strength (about the noise sigma)"),
            ParamSpec("h_color", 1.0, 40.0, 10.0, "0-255", True, "chroma filter strength"),
        ),
        fn=nlm_denoise,
        cost=80.0,
        targets=("noise", "jpeg"),
        description="Non-local means denoising (OpenCV, 5x5 patches, 9x9 search).",
        margin=8,
    ),
    Tool(
        name="bilateral_denoise",
        family="noise",
        params=(
            ParamSpec("sigma_color", 2.0, 80.0, 25.0, "0-255", True, "range kernel sigma"),
            ParamSpec("sigma_space", 0.5, 6.0, 2.0, "px", True, "spatial kernel sigma"),
        ),
        fn=bilateral_denoise,
        cost=8.0,
        targets=("noise",),
        description="Edge-preserving bilateral filter (OpenCV).",
        margin=10,
    ),
    Tool(
        name="tv_denoise",
        family="noise",
        params=(ParamSpec("weight", 0.01, 0.5, 0.08, "", True, "TV weight (higher = smoother)"),),
        fn=tv_denoise,
        cost=15.0,
        targets=("noise",),
        description="Total-variation denoising (Chambolle, scikit-image).",
        margin=12,
    ),
    Tool(
        name="wavelet_denoise",
        family="noise",
        params=(ParamSpec("sigma", 1.0, 60.0, 15.0, "0-255", True, "assumed noise sigma"),),
        fn=wavelet_denoise,
        cost=18.0,
        targets=("noise",),
        description="Wavelet BayesShrink soft-thresholding in YCbCr (scikit-image).",
        margin=16,
    ),
    Tool(
        name="bm3d_denoise",
        family="noise",
        params=(ParamSpec("sigma", 1.0, 60.0, 15.0, "0-255", True, "noise sigma"),),
        fn=bm3d_denoise,
        cost=8000.0,
        targets=("noise",),
        description="BM3D on luma (bm3d package) + non-local means on chroma; slow but strongest.",
        margin=24,
    ),
)
