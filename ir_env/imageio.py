"""Image file I/O: the only place where images leave float32 RGB in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: File extensions read from folders (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as float32 HxWx3 RGB in [0, 1].

    Greyscale files are repeated to three channels, an alpha channel is dropped, 16-bit files are
    scaled by 65535. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file
    that is not a readable image.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {p}")
    if p.is_dir():
        raise ValueError(f"expected an image file, got a directory: {p}")
    data = np.fromfile(str(p), dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if arr is None:
        raise ValueError(f"cannot decode image file (corrupt or unsupported format): {p}")
    if arr.dtype == np.uint16:
        img = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.uint8:
        img = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        img = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported pixel type {arr.dtype} in {p}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img, dtype=np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float image in [0, 1] -> uint8 with rounding."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a float32 HxWx3 RGB image in [0, 1] (or HxW grey) as an 8-bit file; parents are created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    u8 = to_uint8(image)
    if u8.ndim == 3:
        u8 = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(p.suffix or ".png", u8)
    if not ok:
        raise ValueError(f"cannot encode image as {p.suffix!r}: {p}")
    buf.tofile(str(p))
    return p
