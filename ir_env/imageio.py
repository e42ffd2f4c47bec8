"""Image file I/O: the only place where images leave float32 RGB in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: File extensions read from folders (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _decode_quietly(data: np.ndarray) -> np.ndarray | None:
    """``cv2.imdecode`` with OpenCV's own error log silenced: a corrupt file gets this module's one-line
    ``ValueError`` instead of an extra ``[ERROR] loadsave.cpp`` line on stderr first."""
    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    finally:
        log.setLogLevel(level)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as float32 HxWx3 RGB in [0, 1].

    Greyscale files are repeated to three channels, an alpha channel is dropped, 16-bit files are
    scaled by 65535, and an EXIF orientation tag (phone photos) is applied, so the array is the image as
    viewers show it. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file
    that is not a readable image.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {p}")
    if p.is_dir():
        raise ValueError(f"expected an image file, got a directory: {p}")
    data = np.fromfile(str(p), dtype=np.uint8)
    arr = _decode_quietly(data) if data.size else None
    if arr is None:
        raise ValueError(f"cannot decode image file (corrupt or unsupported format): {p}")
    if arr.dtype == np.uint16:
        img = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.uint8:
        img = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        img = arr.astype(np.float32)
        if not np.all(np.isfinite(img)):
            raise ValueError(f"float image file holds NaN or inf values: {p}")
        lo, hi = float(img.min()), float(img.max())
        if lo < -1e-4 or hi > 1 + 1e-4:
            raise ValueError(f"float image file values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}] "
                             f"(a 0-255 file: save it as 8-bit, or divide by 255): {p}")
        img = np.clip(img, 0.0, 1.0)
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
    # OpenCV's TIFF decoder turns the image by its orientation tag itself (checked for 8/16-bit, float, grey and
    # RGB, tags 1-8); for the other formats IMREAD_UNCHANGED ignores the EXIF tag, so it is applied here
    turn = 1 if _is_tiff(data) else exif_orientation(p)
    return np.ascontiguousarray(apply_exif_orientation(img, turn), dtype=np.float32)


def _is_tiff(data: np.ndarray) -> bool:
    """Whether the file bytes start with a TIFF header (little- or big-endian, classic or BigTIFF)."""
    head = data[:4].tobytes()
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation tag (1-8) of an image file, 1 when it has none or cannot be read. OpenCV's
    ``IMREAD_UNCHANGED`` (needed for 16-bit and alpha) ignores it; Pillow reads only the header here."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            value = int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - no EXIF, or a format Pillow does not know: no rotation
        return 1
    return value if 1 <= value <= 8 else 1


def apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` (H, W, C) turned as EXIF ``orientation`` asks (the transforms of Pillow's
    ``ImageOps.exif_transpose``): 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise,
    7 transverse, 8 rotate 90 counter-clockwise; 1 (or anything else) leaves it as it is."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}
    return ops[orientation](image) if orientation in ops else image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float image in [0, 1] -> uint8 with rounding."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _check_writable_image(image: object) -> None:
    """``ValueError`` naming what keeps ``image`` from being a float HxWx3 / HxW image in [0, 1] (any size)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image to write must be a numpy array, got {type(image).__name__}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or 0 in image.shape:
        raise ValueError(f"image to write must have shape HxWx3 (RGB) or HxW (grey), got {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image to write must be a float array in [0, 1], got dtype {image.dtype}"
                         + (" (divide uint8 images by 255)" if image.dtype == np.uint8 else ""))
    if not np.all(np.isfinite(image)):
        raise ValueError("image to write contains NaN or inf values")
    lo, hi = float(image.min()), float(image.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise ValueError(f"image to write must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]"
                         + (" (0-255 values: divide by 255)" if hi > 1.5 else ""))


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a float image in [0, 1], HxWx3 RGB (or HxW grey), as an 8-bit file in the format of the path's extension
    (PNG without one); parents are created. ``ValueError`` names the problem: an integer array (uint8 0-255: divide by
    255), another shape, NaN or inf, values outside [0, 1], an extension OpenCV cannot write."""
    p = Path(path)
    _check_writable_image(image)
    u8 = to_uint8(image)
    if u8.ndim == 3:
        u8 = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
    ext = p.suffix or ".png"
    if not cv2.haveImageWriter("x" + ext):
        raise ValueError(f"cannot write images as {ext!r} (use .png, .jpg, .bmp or .tif): {p}")
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        ok, buf = cv2.imencode(ext, u8)
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"cannot encode image as {ext!r}: {p}")
    buf.tofile(str(p))
    return p
