"""Validation of images at public boundaries: float HxWx3 RGB in [0, 1], finite."""

from __future__ import annotations

import numpy as np


def check_image(image: object, name: str = "image") -> np.ndarray:
    """Return ``image`` as a float32 HxWx3 array in [0, 1], or raise ``ValueError`` naming the problem.

    Accepts float16/32/64 arrays; integer arrays (e.g. uint8 0-255) are refused with a hint, as are
    2-D (greyscale), 1- or 4-channel arrays, masked arrays with masked pixels (those have no value to restore), images
    under 8 x 8 px, NaN/inf and values outside [0, 1] (beyond a 1e-4 tolerance, which is clipped away). The result
    is a plain ``numpy.ndarray`` (also for a ``np.memmap`` or other ndarray subclass input).
    """
    if isinstance(image, np.ma.MaskedArray) and not np.ma.getmaskarray(image).any():
        image = image.data  # nothing masked: its values are the image
    if isinstance(image, np.ma.MaskedArray):
        raise ValueError(f"{name} is a masked array: fill the masked pixels first (e.g. img.filled(0.0)) or pass "
                         "img.data to restore every pixel")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(image).__name__}")
    image = np.asarray(image)  # a subclass (np.memmap, np.matrix) as a plain array
    if image.ndim != 3 or image.shape[2] != 3:
        hint = ""
        if image.ndim == 2:
            hint = " (greyscale: stack it, e.g. np.repeat(img[..., None], 3, axis=2))"
        elif image.ndim == 3 and image.shape[2] == 1:
            hint = " (one channel: np.repeat(img, 3, axis=2))"
        elif image.ndim == 3 and image.shape[2] == 4:
            hint = " (RGBA: drop the alpha channel, img[..., :3])"
        raise ValueError(f"{name} must have shape HxWx3 (RGB), got shape {image.shape}{hint}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"{name} is too small: {image.shape[:2]}, need at least 8x8 pixels")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(
            f"{name} must be a float array in [0, 1], got dtype {image.dtype}"
            + (" (divide uint8 images by 255)" if image.dtype == np.uint8 else "")
        )
    if not np.all(np.isfinite(image)):  # checked before the cast: a float64 1e39 would become inf
        raise ValueError(f"{name} contains NaN or inf values")
    lo, hi = float(image.min()), float(image.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise ValueError(f"{name} values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]")
    img = image.astype(np.float32, copy=False)
    if lo < 0 or hi > 1:
        img = np.clip(img, 0.0, 1.0)
    return img


def check_mask(mask: object, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """Return ``mask`` as a bool HxW array matching ``shape``, or raise ``ValueError``. A float mask is read as
    ``mask > 0.5`` (a soft mask is binarised: :func:`restorers.apply` feathers the edge itself), an integer one
    as ``mask != 0``."""
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(mask).__name__}")
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (the image's HxW), got {mask.shape}")
    if mask.dtype != bool:
        if not (np.issubdtype(mask.dtype, np.floating) or np.issubdtype(mask.dtype, np.integer)):
            raise ValueError(f"{name} must be bool (or a float / integer array read as bool), got dtype {mask.dtype}")
        if np.issubdtype(mask.dtype, np.floating) and not np.all(np.isfinite(mask)):
            raise ValueError(f"{name} contains NaN or inf values")
        mask = mask > 0.5 if np.issubdtype(mask.dtype, np.floating) else mask != 0
    return mask
