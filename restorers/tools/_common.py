"""Small helpers shared by the built-in tools: dtype conversion, colour spaces, PSFs, guided filter."""

from __future__ import annotations

import functools
from collections.abc import Callable

import cv2
import numpy as np

from restorers.imagecheck import check_image


def checked(tool_fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """A tool function that validates its image first (float32 HxWx3 in [0, 1], named error otherwise): called
    directly, a uint8 or 0-255 image gave a white or garbage result (``restorers.apply`` checks it too)."""

    @functools.wraps(tool_fn)
    def run(image: np.ndarray, *args: float, **kwargs: float) -> np.ndarray:
        return tool_fn(check_image(image), *args, **kwargs)

    run.unchecked = tool_fn  # type: ignore[attr-defined]  # restorers.region.run_tool: the image is checked there
    return run


def finish(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as a new contiguous float32 array clipped to [0, 1]; NaN becomes 0 (fmax/fmin
    ignore NaN), +inf 1 and -inf 0."""
    out = np.fmax(np.asarray(image, dtype=np.float32), np.float32(0.0), order="C")
    return np.fmin(out, np.float32(1.0), out=out)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 0-255 (rounded)."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def from_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 0-255 -> float32 [0, 1]."""
    return image.astype(np.float32) * np.float32(1.0 / 255.0)


def channel_max(image: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over the 3 channels (HxW float32); 5-10x faster than ``image.max(axis=2)``."""
    return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])


def channel_min(image: np.ndarray) -> np.ndarray:
    """Per-pixel minimum over the 3 channels (HxW float32); 5-10x faster than ``image.min(axis=2)``."""
    return np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2])


def odd(n: float, minimum: int = 1) -> int:
    """Nearest odd integer >= ``minimum`` to ``n``."""
    k = max(int(minimum), int(round(n)))
    return k if k % 2 == 1 else k + 1


def rgb_to_ycrcb(image: np.ndarray) -> np.ndarray:
    """float32 RGB [0, 1] -> YCrCb (Y in [0, 1], Cr/Cb centred on 0.5), OpenCV's BT.601 matrix."""
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2YCrCb)


def ycrcb_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycrcb` (not clipped)."""
    return cv2.cvtColor(np.ascontiguousarray(ycc, dtype=np.float32), cv2.COLOR_YCrCb2RGB)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Grey-guide guided filter (He et al., 2010) of ``src`` (HxW or HxWxC float32) by ``guide`` (HxW).

    ``radius`` in px (box window 2r+1), ``eps`` the regulariser in squared intensity units.
    Written with cv2.boxFilter because cv2.ximgproc (opencv-contrib) is absent from headless OpenCV.
    """
    ksize = (2 * int(radius) + 1, 2 * int(radius) + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, ksize, borderType=cv2.BORDER_REFLECT)

    g = np.ascontiguousarray(guide, dtype=np.float32)
    p = np.ascontiguousarray(src, dtype=np.float32)
    gg = g[..., None] if p.ndim == 3 else g
    mean_g = box(g)
    var_g = box(g * g) - mean_g * mean_g
    mean_p = box(p)
    cov = box(gg * p) - (mean_g[..., None] if p.ndim == 3 else mean_g) * mean_p
    denom = var_g + np.float32(eps)
    a = cov / (denom[..., None] if p.ndim == 3 else denom)
    b = mean_p - a * (mean_g[..., None] if p.ndim == 3 else mean_g)
    return box(a) * gg + box(b)


def gaussian_psf(sigma: float) -> np.ndarray:
    """Normalised isotropic Gaussian PSF (float32, odd size 2*ceil(3 sigma)+1); ``sigma`` in px."""
    r = max(1, int(np.ceil(3.0 * sigma)))
    k = cv2.getGaussianKernel(2 * r + 1, float(sigma), cv2.CV_32F)
    psf = k @ k.T
    return (psf / psf.sum()).astype(np.float32)


def disk_psf(radius: float, supersample: int = 8) -> np.ndarray:
    """Normalised anti-aliased uniform disk PSF (defocus) of ``radius`` px (float32, odd size). Deliberately not
    :func:`ir_env.degradations.disk_kernel` (the simulated camera's blur): a deconvolution tool models the blur
    it inverts on its own, as it would for a real photo; sharing one kernel would flatter the tools."""
    r = max(0.5, float(radius))
    half = int(np.ceil(r))
    n = (2 * half + 1) * supersample
    c = (n - 1) / 2.0
    yy, xx = np.mgrid[0:n, 0:n]
    inside = ((yy - c) ** 2 + (xx - c) ** 2 <= (r * supersample) ** 2).astype(np.float32)
    psf = inside.reshape(2 * half + 1, supersample, 2 * half + 1, supersample).mean(axis=(1, 3))
    return (psf / psf.sum()).astype(np.float32)


def line_kernel(length: float, angle_deg: float, supersample: int = 8) -> np.ndarray:
    """Normalised anti-aliased centred line segment of ``length`` px at ``angle_deg`` (the tools' own motion
    model, deliberately not :func:`ir_env.degradations.motion_kernel`, as for :func:`disk_psf`; counter-clockwise
    from the +x axis, as seen on screen with y pointing down); float32, odd height and width, trimmed
    to the segment's extent."""
    length = max(1.0, float(length))
    half = int(np.ceil(length / 2.0)) + 1
    size = 2 * half + 1
    n = size * supersample
    canvas = np.zeros((n, n), np.float32)
    c = (n - 1) / 2.0
    a = np.deg2rad(angle_deg)
    dx, dy = np.cos(a) * (length - 1) / 2.0 * supersample, -np.sin(a) * (length - 1) / 2.0 * supersample
    shift = 4  # fixed-point sub-pixel coordinates for cv2.line
    scale = 1 << shift
    p0 = (int(round((c - dx) * scale)), int(round((c - dy) * scale)))
    p1 = (int(round((c + dx) * scale)), int(round((c + dy) * scale)))
    cv2.line(canvas, p0, p1, 1.0, thickness=supersample, lineType=cv2.LINE_AA, shift=shift)
    k = canvas.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    s = float(k.sum())
    if s <= 0:
        k = np.zeros((size, size), np.float32)
        k[half, half] = 1.0
        return k
    return trim_kernel((k / s).astype(np.float32))


def trim_kernel(kernel: np.ndarray) -> np.ndarray:
    """Drop all-zero outer rows / columns of a centred kernel, symmetrically so the centre stays put
    (small kernels keep cv2.filter2D on its fast direct path)."""
    rows = np.flatnonzero(kernel.any(axis=1))
    cols = np.flatnonzero(kernel.any(axis=0))
    h, w = kernel.shape
    cut_r = min(int(rows[0]), h - 1 - int(rows[-1]))
    cut_c = min(int(cols[0]), w - 1 - int(cols[-1]))
    return np.ascontiguousarray(kernel[cut_r : h - cut_r, cut_c : w - cut_c])


def line_element(length: float, angle_deg: float) -> np.ndarray:
    """Binary (uint8) line structuring element for morphology: ``length`` px at ``angle_deg``
    (counter-clockwise from +x, y down), centred in an odd square."""
    length = max(1, int(round(length)))
    half = max(1, int(np.ceil((length - 1) / 2.0)))
    size = 2 * half + 1
    se = np.zeros((size, size), np.uint8)
    a = np.deg2rad(angle_deg)
    ts = np.linspace(-(length - 1) / 2.0, (length - 1) / 2.0, max(2, 2 * length))
    xs = np.clip(np.round(half + ts * np.cos(a)).astype(int), 0, size - 1)
    ys = np.clip(np.round(half - ts * np.sin(a)).astype(int), 0, size - 1)
    se[ys, xs] = 1
    return se


def reflect_pad(image: np.ndarray, pad: int) -> np.ndarray:
    """Pad HxW(xC) ``image`` by ``pad`` px on every side by mirror reflection (edge pixel repeated, as
    in ``np.pad(mode="symmetric")``, which also handles pads larger than the image)."""
    if pad <= 0:
        return image
    widths = ((pad, pad), (pad, pad)) + (((0, 0),) if image.ndim == 3 else ())
    return np.pad(image, widths, mode="symmetric")
