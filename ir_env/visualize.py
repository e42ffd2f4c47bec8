"""Pictures for people: region overlays and labelled image grids (uint8 only inside, float32 out)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ir_env.imageio import to_uint8

#: Distinct colours (RGB, 0-1) for region overlays, cycled.
PALETTE = np.array(
    [[0.90, 0.10, 0.10], [0.10, 0.60, 0.95], [0.20, 0.80, 0.20], [0.95, 0.75, 0.10],
     [0.70, 0.20, 0.85], [0.10, 0.85, 0.80], [0.95, 0.45, 0.10], [0.55, 0.55, 0.55]],
    dtype=np.float32,
)


def region_colour(k: int) -> np.ndarray:
    """The overlay colour (RGB float32 in [0, 1]) of region ``k``."""
    return PALETTE[k % len(PALETTE)]


def region_masks(masks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``masks`` as (K,H,W) bool for an image of ``shape`` (H,W,...): (K,H,W) masks (bool or 0/1), or an (H,W)
    integer label map (the region index of each pixel, as ``spatial-ir degrade`` writes ``masks.png``; region k
    = pixels labelled k, negative labels belong to none). ``ValueError`` naming the problem otherwise."""
    arr = np.asarray(masks)
    h, w = int(shape[0]), int(shape[1])
    if arr.ndim == 2:
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise ValueError(f"a 2-D masks argument must be an integer label map (region index per pixel), got "
                             f"dtype {arr.dtype}")
        if arr.shape != (h, w):
            raise ValueError(f"label map is {arr.shape[0]}x{arr.shape[1]}, the image {h}x{w}")
        n = int(arr.max()) + 1 if arr.size and arr.max() >= 0 else 0
        return np.stack([arr == k for k in range(n)]) if n else np.zeros((0, h, w), bool)
    if arr.ndim != 3:
        raise ValueError(f"masks must be (K,H,W) region masks or an (H,W) label map, got shape {arr.shape}")
    if arr.shape[1:] != (h, w):
        raise ValueError(f"masks are {arr.shape[1]}x{arr.shape[2]}, the image {h}x{w}")
    return arr.astype(bool)


def overlay_masks(image: np.ndarray, masks: np.ndarray, alpha: float = 0.35, outline: bool = True,
                  texts: Sequence[str] | None = None) -> np.ndarray:
    """Tint each region of ``masks`` (K,H,W bool, or an (H,W) label map: :func:`region_masks`) in its colour
    over ``image``, draw outlines and, when given, write ``texts[k]`` inside region ``k`` (away from the labels
    already written, so overlapping regions keep readable labels)."""
    masks = region_masks(masks, image.shape)
    out = image.astype(np.float32).copy()
    for k, m in enumerate(masks):
        if not m.any():
            continue
        c = region_colour(k)
        out[m] = (1 - alpha) * out[m] + alpha * c
    if outline:
        out = draw_outlines(out, masks)
    if texts:
        u8 = np.ascontiguousarray(to_uint8(out))
        scale = max(0.3, min(u8.shape[:2]) / 400)
        taken = np.zeros(u8.shape[:2], bool)  # where labels already are (with a margin)
        for m, text in zip(masks, texts, strict=False):
            if m.any() and text:
                x, y = label_anchor(m, avoid=taken)
                put_outlined_text(u8, text, (x, y), scale)
                (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
                taken[max(0, y - th * 2):y + th * 2, max(0, x - tw):x + tw] = True
        out = u8.astype(np.float32) / 255.0
    return out


def label_anchor(mask: np.ndarray, avoid: np.ndarray | None = None) -> tuple[int, int]:
    """(x, y) of the pixel of ``mask`` farthest from its boundary: inside the region even when it is not convex
    (a centroid can fall in a neighbouring region). ``avoid`` (H,W bool, e.g. where other labels are) is left out
    of the region first when some of the region lies outside it."""
    m = mask.astype(bool)
    if avoid is not None and (m & ~avoid).any():
        m = m & ~avoid
    dist = cv2.distanceTransform(np.pad(m, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def put_outlined_text(u8: np.ndarray, text: str, centre: tuple[int, int], scale: float) -> None:
    """Write ``text`` white with a one-pixel black rim, centred on ``centre`` (x, y) and kept inside the image,
    in place on the uint8 HxWx3 ``u8``. The rim is the dilated glyph mask, so it lines up with the glyphs
    (drawing the text twice at two thicknesses shifts letters: OpenCV spaces thicker text wider)."""
    h, w = u8.shape[:2]
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = int(np.clip(centre[0] - tw // 2, 1, max(1, w - tw - 1)))
    y = int(np.clip(centre[1] + th // 2, th + 1, max(th + 1, h - base - 1)))
    glyphs = np.zeros((h, w), np.uint8)
    cv2.putText(glyphs, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 1 if scale < 0.8 else 2, cv2.LINE_AA)
    rim = cv2.dilate(glyphs, np.ones((3, 3), np.uint8))
    a_rim = (rim.astype(np.float32) / 255.0)[..., None]
    a_txt = (glyphs.astype(np.float32) / 255.0)[..., None]
    base_img = u8.astype(np.float32) * (1 - a_rim)  # black rim
    u8[...] = np.clip(base_img * (1 - a_txt) + 255.0 * a_txt + 0.5, 0, 255).astype(np.uint8)


def draw_outlines(image: np.ndarray, masks: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Draw each region's contour in its colour (``masks``: (K,H,W) or an (H,W) label map, see
    :func:`region_masks`); returns float32 HxWx3."""
    u8 = np.ascontiguousarray(to_uint8(image))
    for k, m in enumerate(region_masks(masks, image.shape)):
        if not m.any():
            continue
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        colour = tuple(int(v * 255) for v in region_colour(k))
        cv2.drawContours(u8, contours, -1, colour, thickness)
    return u8.astype(np.float32) / 255.0


def _wrap(text: str, width: int, scale: float) -> list[str]:
    """``text`` broken at spaces into lines at most ``width`` px wide in OpenCV's simplex font at ``scale`` (a
    word wider than that on its own is cut, with its end dropped, to fit)."""
    def fits(s: str) -> bool:
        return cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= width

    lines: list[str] = []
    for word in text.split(" "):
        if lines and fits(f"{lines[-1]} {word}"):
            lines[-1] = f"{lines[-1]} {word}"
            continue
        while len(word) > 1 and not fits(word):
            word = word[:-1]
        lines.append(word)
    return lines or [""]


def put_label(image: np.ndarray, text: str, scale: float = 0.35) -> np.ndarray:
    """Write ``text`` on a dark band at the top of ``image`` (float32 HxWx3 in [0, 1]); text wider than the
    image is wrapped onto more lines (the band grows) rather than cut at the edge."""
    u8 = np.ascontiguousarray(to_uint8(image))
    line = max(10, int(22 * scale / 0.35 * 0.6))
    lines = _wrap(text, max(1, u8.shape[1] - 4), scale)[: max(1, u8.shape[0] // line)]
    h = line * len(lines)
    u8[:h] = (u8[:h] * 0.35).astype(np.uint8)
    for i, s in enumerate(lines):
        cv2.putText(u8, s, (2, line * (i + 1) - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return u8.astype(np.float32) / 255.0


def image_grid(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[Sequence[str]] | None = None,
               gap: int = 2) -> np.ndarray:
    """Tile images into a grid (rows of columns), optional label on each tile. Tiles of different sizes
    (e.g. whole photos) are padded with white at the bottom / right to their row's height and the widest
    row's width."""
    if labels is not None:
        shape = [len(r) for r in rows]
        if [len(r) for r in labels] != shape:
            raise ValueError(f"labels must match the images row by row ({shape} per row), got "
                             f"{[len(r) for r in labels]}")
    tiles = []
    for r, row in enumerate(rows):
        row_tiles = []
        for c, img in enumerate(row):
            t = img if labels is None else put_label(img, labels[r][c])
            row_tiles.append(np.pad(t, ((gap, gap), (gap, gap), (0, 0)), constant_values=1.0))
        height = max(t.shape[0] for t in row_tiles)
        row_tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0)), constant_values=1.0) for t in row_tiles]
        tiles.append(np.concatenate(row_tiles, axis=1))
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0)), constant_values=1.0) for t in tiles]
    return np.concatenate(tiles, axis=0).astype(np.float32)


def render_state(image: np.ndarray, masks: np.ndarray, text: str, step: int, max_steps: int,
                 min_side: int = 256) -> np.ndarray:
    """The env's ``render()`` frame: uint8 HxWx3, upscaled by a whole factor towards ``min_side`` px on the short
    side (but never beyond 4 x ``min_side`` on the long side: a 12 x 300 strip is not blown up to 6600 px), outlines,
    region numbers at each region's centroid and ``text`` (the last action) at the top."""
    h, w = image.shape[:2]
    masks = region_masks(masks, image.shape)
    scale = max(1, min(int(np.ceil(min_side / min(h, w))), (4 * min_side) // max(h, w)))
    big = cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    bmasks = np.stack([cv2.resize(m.astype(np.uint8), (w * scale, h * scale),
                                  interpolation=cv2.INTER_NEAREST) > 0 for m in masks]) if len(masks) else masks
    frame = put_label(draw_outlines(big, bmasks, thickness=2), f"step {step}/{max_steps}: {text}", scale=0.45)
    u8 = np.ascontiguousarray(to_uint8(frame))
    for k, m in enumerate(bmasks):
        ys, xs = np.nonzero(m)
        if ys.size:
            c = tuple(int(v * 255) for v in region_colour(k))
            cv2.putText(u8, str(k), (int(xs.mean()) - 5, int(ys.mean()) + 5), cv2.FONT_HERSHEY_SIMPLEX,
                        0.6, c, 2, cv2.LINE_AA)
    return u8
