"""Image file I/O: the only place where images leave float32 RGB in [0, 1]."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

#: File extensions read from folders and written by :func:`write_image` (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Extensions :func:`write_image` can write with 16 bits per sample.
SIXTEEN_BIT_EXTENSIONS: tuple[str, ...] = (".png", ".tif", ".tiff")


@contextlib.contextmanager
def _c_stderr_captured() -> Iterator[list[str]]:
    """Send what C libraries (libpng, libjpeg) print on file descriptor 2 to a buffer while the block runs; the
    yielded list then holds that text. Hand-written: neither OpenCV nor the codecs offer a way to get their
    messages. Where fd 2 cannot be redirected, nothing is captured."""
    said: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield said
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            said.append(tmp.read().decode("utf-8", "replace").strip())


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """OpenCV's own log silenced while the block runs (its ``[ERROR] loadsave.cpp`` lines)."""
    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        log.setLogLevel(level)


class DamagedImageWarning(UserWarning):
    """A file the decoder read but reported damaged; ``decoder_said`` holds the decoder's own words (e.g. "Premature
    end of JPEG file" for a file cut short, whose missing part decodes as flat grey)."""

    def __init__(self, message: str, decoder_said: str) -> None:
        super().__init__(message)
        self.decoder_said = decoder_said


def _decode_quietly(data: np.ndarray | Path) -> tuple[np.ndarray | None, str]:
    """``cv2.imdecode`` of ``data`` (or ``cv2.imread`` of a path) and what the decoder said (OpenCV's log silenced,
    the C codecs' stderr lines captured): a corrupt file gets this module's one-line ``ValueError`` or warning
    instead of stray lines."""
    with _opencv_quiet(), _c_stderr_captured() as said:
        arr = (cv2.imread(str(data), cv2.IMREAD_UNCHANGED) if isinstance(data, Path)
               else cv2.imdecode(data, cv2.IMREAD_UNCHANGED))
    msg = " ".join(" ".join(said).split())
    return arr, (msg[:300] + "...") if len(msg) > 300 else msg


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as float32 HxWx3 RGB in [0, 1].

    Greyscale files are repeated to three channels, an alpha channel is dropped (the colour kept as stored, not
    blended: also for TIFF files, whose 8-bit decoder would multiply it by alpha), 16-bit files are scaled by
    65535, and an EXIF orientation tag (phone photos) is applied, so the array is the image as viewers show it.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not a readable image;
    a file the decoder reads but reports damaged (e.g. "Corrupt JPEG data") gives a ``UserWarning`` saying so.
    :func:`read_image_with_depth` also returns the file's bits per sample.
    """
    return read_image_with_depth(path)[0]


def read_image_with_depth(path: str | Path) -> tuple[np.ndarray, int]:
    """(:func:`read_image` of ``path``, the file's bits per sample: 8, 16, or 32 for a float file), e.g. to write
    the result with as many bits (:func:`write_image`'s ``bits``)."""
    img, depth, _ = read_image_file(path)
    return img, depth


def read_image_file(path: str | Path) -> tuple[np.ndarray, int, int]:
    """(:func:`read_image` of ``path``, its bits per sample as :func:`read_image_with_depth` says, its number of
    channels as decoded: 1 grey, 3 colour, 4 with alpha (OpenCV decodes a grey + alpha PNG as 4; 2 is possible
    for other decoders)), e.g. to tell a user that the RGB result
    of a greyscale file, or of one with transparency, is written without them."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {p}")
    if p.is_dir():
        raise ValueError(f"expected an image file, got a directory: {p}")
    data = np.fromfile(str(p), dtype=np.uint8)
    arr, said = _decode_quietly(data) if data.size else (None, "")
    if arr is None and data.size:  # imdecode refuses a truncated JPEG that imread decodes (the rest left grey)
        arr, said = _decode_quietly(p)
        if arr is not None:
            said = said or "the file is damaged (imdecode refused it)"
    if arr is None:
        raise ValueError(f"cannot decode image file (corrupt or unsupported format): {p}"
                         + (f" (decoder: {said})" if said else ""))
    if said:
        warnings.warn(DamagedImageWarning(f"image file {p} may be damaged, the decoder said: {said}", said),
                      stacklevel=2)
    channels = 1 if arr.ndim == 2 else int(arr.shape[2])
    straight = None
    if _is_tiff(data) and arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 4:
        straight = _tiff_straight_rgb(p, arr)  # OpenCV's 8-bit TIFF path returns colour multiplied by alpha
    if arr.dtype == np.uint16:
        depth, img = 16, arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.uint8:
        depth, img = 8, arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        depth, img = 32, arr.astype(np.float32)
        if not np.all(np.isfinite(img)):
            raise ValueError(f"float image file holds NaN or inf values: {p}")
        lo, hi = float(img.min()), float(img.max())
        if lo < -1e-4 or hi > 1 + 1e-4:
            raise ValueError(f"float image file values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}] "
                             f"(a 0-255 file: save it as 8-bit, or divide by 255): {p}")
        img = np.clip(img, 0.0, 1.0)
    else:
        raise ValueError(f"unsupported pixel type {arr.dtype} in {p}")
    if straight is not None:
        img = straight
    elif img.ndim == 2:
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
    return np.ascontiguousarray(apply_exif_orientation(img, turn), dtype=np.float32), depth, channels


def _tiff_straight_rgb(path: Path, decoded: np.ndarray) -> np.ndarray:
    """Float32 RGB in [0, 1] of an 8-bit RGBA TIFF with its colour as stored (not multiplied by alpha), turned by
    its orientation tag as OpenCV turns ``decoded`` (its BGRA, colour times alpha). Read with Pillow, which keeps
    straight alpha and un-multiplies associated alpha; where Pillow cannot read the file, ``decoded`` divided by
    its alpha (colour under alpha 0 is lost there)."""
    try:
        from PIL import Image, ImageOps

        with Image.open(path) as im:
            im.seek(0)
            rgba = np.asarray(ImageOps.exif_transpose(im.convert("RGBA")))
        if rgba.shape[:2] == decoded.shape[:2]:
            return rgba[..., :3].astype(np.float32) / np.float32(255.0)
    except Exception:  # noqa: BLE001 - a TIFF Pillow does not read: fall back to undoing the multiplication
        pass
    bgr = decoded[..., :3].astype(np.float32)
    alpha = decoded[..., 3:].astype(np.float32)
    straight = np.where(alpha > 0, np.minimum(bgr * 255.0 / np.maximum(alpha, 1.0), 255.0), 0.0)
    return cv2.cvtColor(straight / np.float32(255.0), cv2.COLOR_BGR2RGB).astype(np.float32)


def _is_tiff(data: np.ndarray) -> bool:
    """Whether the file bytes start with a TIFF header (little- or big-endian, classic or BigTIFF)."""
    head = data[:4].tobytes()
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation tag (1-8) of an image file, 1 when it has none or cannot be read. OpenCV's
    ``IMREAD_UNCHANGED`` (needed for 16-bit and alpha) ignores it; Pillow reads only the header here."""
    try:
        from PIL import Image

        with warnings.catch_warnings():  # only the header is read: Pillow's pixel-count guard does not apply
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(path) as im:
                    value = int(im.getexif().get(0x0112, 1))
            finally:
                Image.MAX_IMAGE_PIXELS = limit
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


def write_image(path: str | Path, image: np.ndarray, bits: int = 8) -> Path:
    """Write a float image in [0, 1], HxWx3 RGB (or HxW grey), in the format of the path's extension (one of
    :data:`IMAGE_EXTENSIONS`; PNG without one) with ``bits`` = 8 or 16 bits per sample (16: .png / .tif only);
    parents are created. ``ValueError`` names the problem: an integer array (uint8 0-255: divide by 255), another
    shape, NaN or inf, values outside [0, 1], another extension, 16 bits in a format without them, an image the
    format cannot hold (e.g. a JPEG over 65500 px a side)."""
    p = Path(path)
    _check_writable_image(image)
    ext = p.suffix.lower() or ".png"
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"cannot write images as {p.suffix!r} (use one of {', '.join(IMAGE_EXTENSIONS)}): {p}")
    if bits not in (8, 16) or isinstance(bits, bool):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    if bits == 16 and ext not in SIXTEEN_BIT_EXTENSIONS:
        raise ValueError(f"{ext} holds 8 bits per sample; write 16 bits as {' or '.join(SIXTEEN_BIT_EXTENSIONS)}: {p}")
    if bits == 16:
        out = (np.clip(image, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
    else:
        out = to_uint8(image)
    if out.ndim == 3:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _opencv_quiet():
            ok, buf = cv2.imencode(ext, out)
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"cannot encode a {image.shape[1]}x{image.shape[0]} image as {ext!r}: {p}")
    buf.tofile(str(p))
    return p
