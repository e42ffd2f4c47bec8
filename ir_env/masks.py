"""Ground-truth region partitions for synthetic scenes.

Every generator returns an int label map (HxW, labels 0..K-1, every pixel in exactly one region);
:func:`labels_to_masks` turns it into the (K, H, W) bool masks a :class:`ir_env.recipes.Scene` holds.

- :func:`blob_partition`: argmax of K smooth random fields (organic blobs).
- :func:`superpixel_partition`: SLIC superpixels of the clean image grown into K groups of similar colour
  (region borders follow image content).
- :func:`depth_partition`: K bands of a depth proxy (label K-1 = farthest), for haze.
- :func:`merge_small_regions`: merges regions below a minimum area into their longest-bordering neighbour.
"""

from __future__ import annotations

import heapq

import cv2
import numpy as np
from skimage.segmentation import slic


def relabel_consecutive(label_map: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..K-1 in order of first label value, empty labels dropped (int32 HxW)."""
    _, inverse = np.unique(label_map, return_inverse=True)
    return inverse.reshape(label_map.shape).astype(np.int32)


def labels_to_masks(label_map: np.ndarray) -> np.ndarray:
    """(K, H, W) bool masks of a label map with labels 0..K-1 (a partition of the image), mask i = label i: the
    label order carries meaning here (e.g. :func:`depth_partition`'s K-1 = farthest). Not
    :func:`ir_env.regions.base.labels_to_masks`, which orders a proposer's regions by area and drops absent ids."""
    lm = np.asarray(label_map)
    k = int(lm.max()) + 1
    return lm[None, :, :] == np.arange(k, dtype=lm.dtype)[:, None, None]


def adjacency_counts(label_map: np.ndarray) -> dict[tuple[int, int], int]:
    """Number of 4-connected pixel contacts between each pair of different labels (a < b)."""
    lm = np.asarray(label_map, dtype=np.int64)
    k = int(lm.max()) + 1
    pairs = [(lm[:, :-1], lm[:, 1:]), (lm[:-1, :], lm[1:, :])]
    codes = []
    for a, b in pairs:
        diff = a != b
        lo, hi = np.minimum(a[diff], b[diff]), np.maximum(a[diff], b[diff])
        codes.append(lo * k + hi)
    uniq, counts = np.unique(np.concatenate(codes), return_counts=True)
    return {(int(c // k), int(c % k)): int(n) for c, n in zip(uniq, counts, strict=True)}


def merge_small_regions(label_map: np.ndarray, min_fraction: float) -> np.ndarray:
    """Merge every region smaller than ``min_fraction`` of the image (smallest first) into the neighbour
    it shares the longest border with; returns a label map with labels 0..K'-1 (K' <= K)."""
    lm = relabel_consecutive(label_map)
    min_pixels = float(min_fraction) * lm.size
    while True:
        areas = np.bincount(lm.ravel())
        k = areas.size
        small = int(np.argmin(areas))
        if k <= 1 or areas[small] >= min_pixels:
            return lm
        contacts: dict[int, int] = {}
        for (a, b), n in adjacency_counts(lm).items():
            if small in (a, b):
                other = b if a == small else a
                contacts[other] = contacts.get(other, 0) + n
        target = max(contacts, key=lambda o: (contacts[o], -o)) if contacts else (small + 1) % k
        lm = relabel_consecutive(np.where(lm == small, target, lm))


def blob_partition(height: int, width: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Argmax of ``k`` smooth random fields (Gaussian noise on a coarse 3x3..5x5 grid, bicubic upsampling):
    an int label map HxW with organic region borders."""
    cells = int(rng.integers(3, 6))
    grid = rng.standard_normal((k, cells, cells)).astype(np.float32)
    fields = np.stack([cv2.resize(g, (width, height), interpolation=cv2.INTER_CUBIC) for g in grid])
    return relabel_consecutive(np.argmax(fields, axis=0))


def superpixel_partition(image: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """SLIC superpixels of ``image`` grouped into ``k`` spatially connected groups.

    Seeds: one random superpixel, then farthest-point picks by centroid. Groups grow over the
    superpixel adjacency graph, cheapest first, the cost being the RGB distance to the group's mean
    colour plus its current area fraction (keeps groups comparable in size). (Seeded growth on a region
    graph to an exact K is not offered by scikit-image, hence by hand.)
    """
    h, w = image.shape[:2]
    n_segments = int(rng.integers(30, 70))
    sp = slic(image, n_segments=n_segments, compactness=10.0, start_label=0, channel_axis=-1)
    sp = relabel_consecutive(sp)
    n = int(sp.max()) + 1
    if n <= k:
        return sp
    flat = sp.ravel()
    area = np.bincount(flat, minlength=n).astype(np.float64)
    colour = np.stack([np.bincount(flat, image[..., c].ravel(), n) for c in range(3)], 1) / area[:, None]
    yy, xx = np.mgrid[0:h, 0:w]
    cent = np.stack([np.bincount(flat, yy.ravel(), n), np.bincount(flat, xx.ravel(), n)], 1) / area[:, None]
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for a, b in adjacency_counts(sp):
        neighbours[a].add(b)
        neighbours[b].add(a)

    seeds = [int(rng.integers(n))]
    dist = np.linalg.norm(cent - cent[seeds[0]], axis=1)
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        seeds.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(cent - cent[nxt], axis=1))

    group = np.full(n, -1, np.int64)
    g_area = np.zeros(k)
    g_sum = np.zeros((k, 3))
    heap: list[tuple[float, int, int, int]] = []
    counter = 0
    for g, s in enumerate(seeds):
        heapq.heappush(heap, (0.0, counter, s, g))
        counter += 1
    total = float(h * w)
    while heap:
        _, _, s, g = heapq.heappop(heap)
        if group[s] >= 0:
            continue
        group[s] = g
        g_area[g] += area[s]
        g_sum[g] += colour[s] * area[s]
        mean = g_sum[g] / g_area[g]
        for nb in neighbours[s]:
            if group[nb] < 0:
                cost = float(np.linalg.norm(colour[nb] - mean)) + g_area[g] / total
                heapq.heappush(heap, (cost, counter, nb, g))
                counter += 1
    group[group < 0] = 0  # unreachable superpixels (not expected: SLIC segments are connected)
    return relabel_consecutive(group[sp])


def depth_partition(depth: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` bands of ``depth`` split at jittered quantiles ((i + U(-0.25, 0.25)) / k): label 0 = nearest,
    label k-1 = farthest (top of the image for the usual depth proxy)."""
    q = (np.arange(1, k) + rng.uniform(-0.25, 0.25, k - 1)) / k
    thresholds = np.quantile(depth, q)
    return relabel_consecutive(np.searchsorted(thresholds, depth, side="right"))
