"""Apply a tool to one region: run it on the mask's bounding box plus a margin, blend with a feathered mask."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from restorers.imagecheck import check_image, check_mask
from restorers.registry import get_tool
from restorers.spec import Tool

#: Gaussian feather (pixels) of the blend weight at a region's border.
FEATHER_SIGMA = 2.0


def resolve_params(tool: Tool, params: Mapping[str, float] | Sequence[float] | np.ndarray | None) -> dict[str, float]:
    """Physical parameter dict for ``tool`` from a dict of physical values, an array normalised to
    [-1, 1] (its first ``len(tool.params)`` entries are read), or ``None`` (defaults).

    Raises ``ValueError`` for unknown names, NaN, or values outside the declared / [-1, 1] range.
    """
    if params is None:
        return tool.defaults()
    if isinstance(params, Mapping):
        return tool.validate(params)
    if np.ndim(params) == 0:  # a bare number is ambiguous (physical or normalised?): refused, never guessed
        names = ", ".join(q.name for q in tool.params) or "none"
        raise ValueError(f"tool {tool.name!r}: params must be a dict of physical values ({{'name': value}}; "
                         f"parameters: {names}) or a sequence normalised to [-1, 1], got the single value "
                         f"{params!r}")
    try:
        arr = np.asarray(params, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"tool {tool.name!r}: params must be a dict of physical values or a sequence of numbers "
                         f"normalised to [-1, 1], got {params!r}") from None
    p = len(tool.params)
    if arr.size < p:
        raise ValueError(f"tool {tool.name!r} needs {p} normalised parameters, got {arr.size}")
    head = arr[:p]
    if not np.all(np.isfinite(head)):
        raise ValueError(f"tool {tool.name!r}: normalised parameters contain NaN or inf: {head.tolist()}")
    if np.any(np.abs(head) > 1 + 1e-6):
        raise ValueError(
            f"tool {tool.name!r}: normalised parameters must lie in [-1, 1], got {np.round(head, 4).tolist()}"
        )
    return tool.to_physical(head)


def bounding_box(mask: np.ndarray, margin: int, align: int = 16) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of ``mask`` grown by ``margin`` px, start aligned down to ``align`` px (16: the
    JPEG grid of luma (8 px) and of subsampled chroma (16 px) stays in place), clipped to the image;
    ``None`` for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    y0 = max(0, rows[0] - margin) // align * align
    x0 = max(0, cols[0] - margin) // align * align
    y1 = min(h, rows[-1] + 1 + margin)
    x1 = min(w, cols[-1] + 1 + margin)
    return int(y0), int(y1), int(x0), int(x1)


def feather_weight(mask: np.ndarray, sigma: float = FEATHER_SIGMA) -> np.ndarray:
    """Blend weight in [0, 1] (float32 HxW): 1 deep inside ``mask``, 0 far outside, smooth at the edge.

    Weights within 1e-6 of 0 or 1 are snapped to exactly 0 or 1, so pixels farther than about
    ``4 * sigma`` px (OpenCV's kernel radius) from the mask's edge are bit-identical to the input."""
    m = mask.astype(np.float32)
    if sigma <= 0:
        return m
    w = cv2.GaussianBlur(m, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    w[w < 1e-6] = 0.0
    w[w > 1.0 - 1e-6] = 1.0
    return w


def run_tool(tool: Tool, image: np.ndarray, params: Mapping[str, float]) -> np.ndarray:
    """Call ``tool.fn`` on a read-only view of ``image`` and check its output (same shape, finite); returns float32
    clipped to [0, 1]. A tool that writes into its input (tools must be pure) gets a ``ValueError`` saying so, and the
    caller's array is never changed. ``image`` must already be valid (:func:`apply` checks it once): a tool
    wrapped by :func:`restorers.tools._common.checked` is called past that wrapper's second check."""
    view = image.view()
    view.flags.writeable = False
    fn = getattr(tool.fn, "unchecked", tool.fn)  # only @checked sets it: any other wrapper of a user's tool still runs
    try:
        out = fn(view, **params)
    except ValueError as exc:
        if "read-only" in str(exc):
            raise ValueError(f"tool {tool.name!r} writes into its input image; a tool must return a new array "
                             f"(copy first: image = image.copy()): {exc}") from None
        raise
    out = np.asarray(out)
    if out.shape != image.shape:
        raise RuntimeError(f"tool {tool.name!r} returned shape {out.shape}, expected {image.shape}")
    out = out.astype(np.float32, copy=False)
    if not np.all(np.isfinite(out)):
        raise RuntimeError(f"tool {tool.name!r} produced NaN or inf values with params {dict(params)}")
    return np.clip(out, 0.0, 1.0)


def apply(
    image: np.ndarray,
    tool: str | Tool,
    params: Mapping[str, float] | Sequence[float] | np.ndarray | None = None,
    mask: np.ndarray | None = None,
    margin: int | None = None,
    feather: float | None = None,
) -> np.ndarray:
    """Apply ``tool`` to ``image`` (float32 HxWx3 RGB in [0, 1]) and return a new image.

    ``params`` is a dict of physical values, an array normalised to [-1, 1], or ``None`` for defaults.
    With a ``mask`` (bool HxW), the tool runs only on the mask's bounding box plus ``margin`` pixels
    (default: the tool's own margin; never less than ``ceil(3 * feather) + 2`` px, the blend's reach) and the result
    is blended in with a feathered mask, so pixels far from the region are untouched and no seam shows. An empty
    mask returns an unchanged copy. ``feather``: the blend's Gaussian sigma in px (default :data:`FEATHER_SIGMA`;
    0: a hard edge). The feather is centred on the mask's edge: the blend weight is about 0.5 there, reaches 1
    about 2-3 sigma inside and 0 about 3-4 sigma outside, so a mask narrower than about 4 sigma (8 px by default)
    gets only part of the tool's effect (a 3x3 mask about a quarter, one pixel a few percent): use ``feather=0``
    for such masks. A non-bool mask is read as ``mask > 0.5`` (floats) or ``mask != 0`` (integers).
    """
    img = check_image(image)
    t = get_tool(tool)
    phys = resolve_params(t, params)
    sigma = FEATHER_SIGMA if feather is None else float(feather)
    if not (np.isfinite(sigma) and sigma >= 0):  # checked with or without a mask: a bad value is never ignored
        raise ValueError(f"feather must be a finite sigma >= 0 px, got {feather!r}")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0):
        raise ValueError(f"margin must be an integer >= 0 (px), got {margin!r}")
    if mask is None:
        return run_tool(t, img, phys)
    m = check_mask(mask, img.shape[:2])
    if m.all():
        return run_tool(t, img, phys)
    pad = int(t.margin if margin is None else margin)
    pad = max(pad, int(np.ceil(3 * sigma)) + 2)
    box = bounding_box(m, pad)
    if box is None:
        return img.copy()
    y0, y1, x0, x1 = box
    crop = img[y0:y1, x0:x1]
    restored = run_tool(t, np.ascontiguousarray(crop), phys)
    w = feather_weight(m[y0:y1, x0:x1], sigma)[..., None]
    # crop + w * (restored - crop): exact where w == 0 (far pixels stay bit-identical), a convex
    # combination elsewhere, so the result stays in [0, 1] up to rounding (clipped below)
    blended = np.clip(crop + w * (restored - crop), 0.0, 1.0)
    out = img.copy()
    out[y0:y1, x0:x1] = blended
    return out
