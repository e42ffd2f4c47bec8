"""Deblurring tools (family ``blur``): Wiener and Richardson-Lucy deconvolution with Gaussian, disk
(defocus) and linear-motion PSFs, and unsharp masking."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import fft as sfft

from restorers.spec import ParamSpec, Tool
from restorers.tools._common import checked, disk_psf, finish, gaussian_psf, line_kernel


def psf_to_otf(psf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Real-FFT transfer function (complex64, ``shape[0]`` x ``shape[1]//2+1``) of a centred ``psf``."""
    k = np.zeros(shape, np.float32)
    kh, kw = psf.shape
    k[:kh, :kw] = psf
    k = np.roll(k, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return sfft.rfft2(k)


def _wiener_rgb(image: np.ndarray, psf: np.ndarray, balance: float) -> np.ndarray:
    """Wiener deconvolution with a constant noise-to-signal ratio ``balance``:
    X = (1 + balance) conj(H) Y / (|H|^2 + balance), i.e. ``skimage.restoration.wiener`` with an identity regulariser
    (which beat its default Laplacian one by 1-4 dB on motion PSFs), scaled to unit gain at zero frequency so a
    flat image stays as bright as it was. Written with scipy.fft because
    skimage's version filters one channel per call and rebuilds H every time (~10x slower at 256 px).
    The image is mirror-padded so that the FFT's circular boundary does not ring into the picture."""
    h, w = image.shape[:2]
    pad = max(psf.shape) + 8
    fh = sfft.next_fast_len(h + 2 * pad, real=True)
    fw = sfft.next_fast_len(w + 2 * pad, real=True)
    img = np.asarray(image, dtype=np.float32)
    padded = np.pad(img, ((pad, fh - h - pad), (pad, fw - w - pad), (0, 0)), mode="symmetric")
    otf = psf_to_otf(psf, (fh, fw))
    # divided by its zero-frequency gain 1 / (1 + balance) (|H(0)| = 1: the PSF sums to 1), so the filter keeps the
    # image's mean brightness; without it every Wiener step dimmed the image by that factor (balance 1 halved it)
    filt = (np.conj(otf) * np.float32(1.0 + balance) / (np.abs(otf) ** 2 + np.float32(balance))).astype(np.complex64)
    spectrum = sfft.rfft2(padded, axes=(0, 1)) * filt[..., None]
    out = sfft.irfft2(spectrum, s=(fh, fw), axes=(0, 1))
    return finish(out[pad : pad + h, pad : pad + w])


def _richardson_lucy(image: np.ndarray, psf: np.ndarray, iterations: float) -> np.ndarray:
    """Richardson-Lucy deconvolution of an RGB image, ``round(iterations)`` steps.

    Written with cv2.filter2D (all three channels per call, mirrored borders) because
    skimage.restoration.richardson_lucy filters one channel at a time with FFTs (~8x slower at 256 px).
    """
    n = max(1, int(round(iterations)))
    img = np.ascontiguousarray(image, dtype=np.float32)
    k = np.ascontiguousarray(psf[::-1, ::-1], dtype=np.float32)  # filter2D correlates: flip for convolution
    k_adj = np.ascontiguousarray(psf, dtype=np.float32)
    est = img.copy()
    eps = np.float32(1e-3)
    for _ in range(n):
        blurred = cv2.filter2D(est, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)
        ratio = img / np.maximum(blurred, eps)
        est = est * cv2.filter2D(ratio, cv2.CV_32F, k_adj, borderType=cv2.BORDER_REFLECT)
        np.clip(est, 0.0, 1.0, out=est)
    return finish(est)


@checked
def wiener_gaussian(image: np.ndarray, sigma: float = 1.5, balance: float = 0.02) -> np.ndarray:
    """Wiener deconvolution with an isotropic Gaussian PSF of ``sigma`` px; ``balance`` (log-scaled,
    unitless) trades sharpness for noise/ringing suppression."""
    return _wiener_rgb(image, gaussian_psf(sigma), balance)


@checked
def wiener_defocus(image: np.ndarray, radius: float = 3.0, balance: float = 0.02) -> np.ndarray:
    """Wiener deconvolution with a uniform disk (defocus) PSF of ``radius`` px; ``balance`` as in
    :func:`wiener_gaussian`."""
    return _wiener_rgb(image, disk_psf(radius), balance)


@checked
def rl_defocus(image: np.ndarray, radius: float = 3.0, iterations: float = 15.0) -> np.ndarray:
    """Richardson-Lucy deconvolution with a uniform disk PSF of ``radius`` px; ``iterations`` is
    rounded to an integer (more = sharper but noisier)."""
    return _richardson_lucy(image, disk_psf(radius), iterations)


@checked
def wiener_motion(
    image: np.ndarray, length: float = 10.0, angle: float = 0.0, balance: float = 0.02
) -> np.ndarray:
    """Wiener deconvolution with a centred linear-motion PSF: ``length`` px, ``angle`` in degrees
    counter-clockwise from horizontal (as seen on screen), ``balance`` as in :func:`wiener_gaussian`."""
    return _wiener_rgb(image, line_kernel(length, angle), balance)


@checked
def rl_motion(
    image: np.ndarray, length: float = 10.0, angle: float = 0.0, iterations: float = 15.0
) -> np.ndarray:
    """Richardson-Lucy deconvolution with a centred linear-motion PSF (``length`` px, ``angle`` degrees
    counter-clockwise from horizontal); ``iterations`` is rounded to an integer."""
    return _richardson_lucy(image, line_kernel(length, angle), iterations)


@checked
def unsharp_mask(image: np.ndarray, radius: float = 1.5, amount: float = 0.8) -> np.ndarray:
    """Unsharp masking: ``image + amount * (image - GaussianBlur(image, radius))``; ``radius`` is the
    Gaussian sigma in px, ``amount`` the (unitless) gain of the high-pass detail."""
    img = np.ascontiguousarray(image, dtype=np.float32)
    blurred = cv2.GaussianBlur(img, (0, 0), float(radius), borderType=cv2.BORDER_REFLECT)
    return finish(cv2.addWeighted(img, 1.0 + float(amount), blurred, -float(amount), 0.0))


_BALANCE = ParamSpec(
    "balance", 1e-3, 1.0, 0.02, "", True, "noise-to-signal ratio (higher = smoother, less ringing)"
)

TOOLS: tuple[Tool, ...] = (
    Tool(
        name="wiener_gaussian",
        family="blur",
        params=(ParamSpec("sigma", 0.5, 4.0, 1.5, "px", True, "Gaussian PSF sigma"), _BALANCE),
        fn=wiener_gaussian,
        cost=6.0,
        targets=("defocus",),
        description="Wiener deconvolution, Gaussian PSF (SciPy FFT).",
        margin=16,
    ),
    Tool(
        name="wiener_defocus",
        family="blur",
        params=(ParamSpec("radius", 1.0, 8.0, 3.0, "px", False, "disk PSF radius"), _BALANCE),
        fn=wiener_defocus,
        cost=5.0,
        targets=("defocus",),
        description="Wiener deconvolution, uniform-disk (defocus) PSF (SciPy FFT).",
        margin=16,
    ),
    Tool(
        name="rl_defocus",
        family="blur",
        params=(
            ParamSpec("radius", 1.0, 8.0, 3.0, "px", False, "disk PSF radius"),
            ParamSpec("iterations", 3.0, 40.0, 15.0, "steps", True, "Richardson-Lucy iterations (rounded)",
                      integer=True),
        ),
        fn=rl_defocus,
        cost=25.0,
        targets=("defocus",),
        description="Richardson-Lucy deconvolution, uniform-disk (defocus) PSF.",
        margin=16,
    ),
    Tool(
        name="wiener_motion",
        family="blur",
        params=(
            ParamSpec("length", 3.0, 40.0, 10.0, "px", True, "motion PSF length"),
            ParamSpec(
                "angle", -90.0, 90.0, 0.0, "deg", False, "motion direction, counter-clockwise from horizontal"
            ),
            _BALANCE,
        ),
        fn=wiener_motion,
        cost=7.0,
        targets=("motion",),
        description="Wiener deconvolution, centred linear-motion PSF (SciPy FFT).",
        margin=32,
    ),
    Tool(
        name="rl_motion",
        family="blur",
        params=(
            ParamSpec("length", 3.0, 40.0, 10.0, "px", True, "motion PSF length"),
            ParamSpec(
                "angle", -90.0, 90.0, 0.0, "deg", False, "motion direction, counter-clockwise from horizontal"
            ),
            ParamSpec("iterations", 3.0, 40.0, 15.0, "steps", True, "Richardson-Lucy iterations (rounded)",
                      integer=True),
        ),
        fn=rl_motion,
        cost=18.0,
        targets=("motion",),
        description="Richardson-Lucy deconvolution, centred linear-motion PSF.",
        margin=24,
    ),
    Tool(
        name="unsharp_mask",
        family="blur",
        params=(
            ParamSpec("radius", 0.5, 5.0, 1.5, "px", True, "Gaussian sigma of the low-pass"),
            ParamSpec("amount", 0.1, 3.0, 0.8, "", True, "gain of the detail layer"),
        ),
        fn=unsharp_mask,
        cost=1.5,
        targets=("defocus", "motion"),
        description="Unsharp masking (OpenCV Gaussian blur + weighted add).",
        margin=16,
    ),
)
