"""JPEG artefact removal (family ``jpeg``): block-boundary deblocking, shifted re-compression averaging,
and YCbCr smoothing."""

from __future__ import annotations

import cv2
import numpy as np

from restorers.spec import ParamSpec, Tool
from restorers.tools._common import checked, finish, reflect_pad, rgb_to_ycrcb, to_uint8, ycrcb_to_rgb

#: JPEG block size in px; tools assume the grid starts at the crop origin (restorers.apply aligns crops).
BLOCK = 8


def _deblock_axis(x: np.ndarray, strength: float, threshold: np.ndarray, axis: int) -> np.ndarray:
    """Smooth the steps across block boundaries along ``axis`` (0 = rows, 1 = columns) of HxWxC ``x``.

    At each boundary between pixels p1 p0 | q0 q1, a step d = q0 - p0 smaller than ``threshold`` (per
    channel, [0, 1] units; larger steps are real edges) in a locally smooth neighbourhood loses its
    excess over the local gradient, which is spread over the four pixels as a linear ramp.
    Hand-written: neither OpenCV nor scikit-image ships a JPEG deblocking filter.
    """
    x = np.moveaxis(x, axis, 0)
    n = x.shape[0]
    b = np.arange(BLOCK, n - 1, BLOCK)  # index of q0; p0 = b - 1
    b = b[b >= 2]
    if b.size == 0:
        return np.moveaxis(x, 0, axis)
    p1, p0, q0, q1 = x[b - 2], x[b - 1], x[b], x[b + 1]
    d = q0 - p0
    flat = (np.abs(p1 - p0) < threshold * 0.5) & (np.abs(q1 - q0) < threshold * 0.5)
    ok = (np.abs(d) < threshold) & flat
    # weight fades out as the step approaches the threshold, so strong edges are never touched
    wgt = np.where(ok, strength * (1.0 - np.abs(d) / threshold), 0.0).astype(np.float32)
    slope = 0.5 * ((p0 - p1) + (q1 - q0))  # the step a smooth ramp would have anyway
    delta = wgt * (d - slope)
    out = x.copy()
    out[b - 2] = p1 + delta * 0.125
    out[b - 1] = p0 + delta * 0.375
    out[b] = q0 - delta * 0.375
    out[b + 1] = q1 - delta * 0.125
    return np.moveaxis(out, 0, axis)


@checked
def jpeg_deblock(image: np.ndarray, strength: float = 0.8, threshold: float = 30.0) -> np.ndarray:
    """Deblocking filter on the 8x8 grid anchored at the image origin, in YCbCr (chroma at twice the
    threshold, as 4:2:0 chroma blocks are coarser): ``strength`` in [0, 1] (fraction of each boundary
    step removed), ``threshold`` in 0-255 units (larger steps are treated as real edges and kept)."""
    ycc = rgb_to_ycrcb(image)
    thr = np.array([threshold, 2 * threshold, 2 * threshold], np.float32) / 255.0
    out = _deblock_axis(ycc, float(strength), thr, axis=1)
    out = _deblock_axis(out, float(strength), thr, axis=0)
    return finish(ycrcb_to_rgb(out))


#: 16 grid offsets (even shifts): 8 lose ~0.05 dB, all 64 gain ~0.05 dB more at 4x the cost.
_SHIFTS = tuple((dy, dx) for dy in range(0, BLOCK, 2) for dx in range(0, BLOCK, 2))


@checked
def jpeg_reapply(image: np.ndarray, quality: float = 30.0) -> np.ndarray:
    """Re-application of JPEG to shifted copies (Nosratinia, 2001): the image is shifted by 16 offsets
    in the 8x8 grid, JPEG-compressed at ``quality`` (1-100, rounded; about the original quality works
    best) with OpenCV, shifted back and averaged. Works regardless of where the block grid lies."""
    q = int(round(quality))
    h, w = image.shape[:2]
    padded = reflect_pad(np.ascontiguousarray(image, dtype=np.float32), BLOCK)
    bgr = cv2.cvtColor(to_uint8(padded), cv2.COLOR_RGB2BGR)
    acc = np.zeros((h, w, 3), np.float32)
    for dy, dx in _SHIFTS:
        crop = np.ascontiguousarray(bgr[dy:, dx:])
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:  # pragma: no cover - libjpeg does not fail on valid uint8 input
            raise RuntimeError("OpenCV failed to JPEG-encode the image")
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        acc += dec[BLOCK - dy : BLOCK - dy + h, BLOCK - dx : BLOCK - dx + w].astype(np.float32)
    out = cv2.cvtColor(acc / np.float32(len(_SHIFTS) * 255.0), cv2.COLOR_BGR2RGB)
    return finish(out)


@checked
def jpeg_ycc_smooth(image: np.ndarray, luma_sigma: float = 10.0, chroma_sigma: float = 1.5) -> np.ndarray:
    """Bilateral filter on luma (range sigma ``luma_sigma`` in 0-255 units, 2 px spatial sigma) and
    Gaussian smoothing of chroma (``chroma_sigma`` px), removing ringing and 4:2:0 colour blocks."""
    ycc = rgb_to_ycrcb(image)
    y = cv2.bilateralFilter(
        np.ascontiguousarray(ycc[..., 0]), -1, float(luma_sigma) / 255.0, 2.0, borderType=cv2.BORDER_REFLECT
    )
    c = cv2.GaussianBlur(
        np.ascontiguousarray(ycc[..., 1:]), (0, 0), float(chroma_sigma), borderType=cv2.BORDER_REFLECT
    )
    return finish(ycrcb_to_rgb(np.dstack([y, c])))


TOOLS: tuple[Tool, ...] = (
    Tool(
        name="jpeg_deblock",
        family="jpeg",
        params=(
            ParamSpec("strength", 0.1, 1.0, 0.8, "", False, "fraction of each block-boundary step removed"),
            ParamSpec("threshold", 2.0, 80.0, 30.0, "0-255", True, "steps above this are kept as edges"),
        ),
        fn=jpeg_deblock,
        cost=5.0,
        targets=("jpeg",),
        description="8x8 block-boundary deblocking filter in YCbCr (grid anchored at the crop origin).",
        margin=4,
    ),
    Tool(
        name="jpeg_reapply",
        family="jpeg",
        params=(
            ParamSpec("quality", 5.0, 90.0, 30.0, "JPEG quality", False, "re-compression quality (rounded)",
                      integer=True),
        ),
        fn=jpeg_reapply,
        cost=17.0,
        targets=("jpeg",),
        description="Average of JPEG re-compressions of 16 shifted copies (OpenCV / libjpeg).",
        margin=16,
    ),
    Tool(
        name="jpeg_ycc_smooth",
        family="jpeg",
        params=(
            ParamSpec("luma_sigma", 2.0, 50.0, 10.0, "0-255", True, "bilateral range sigma on luma"),
            ParamSpec("chroma_sigma", 0.3, 4.0, 1.5, "px", True, "Gaussian sigma on chroma"),
        ),
        fn=jpeg_ycc_smooth,
        cost=6.0,
        targets=("jpeg", "noise"),
        description="Bilateral filter on luma + Gaussian on chroma (OpenCV).",
        margin=12,
    ),
)
