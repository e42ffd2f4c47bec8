"""Region-proposer interface and partition utilities shared by every proposer.

A *partition* here is a bool array ``(K, H, W)``: every pixel belongs to exactly one mask, no mask is
empty, ``K <= max_regions``. Masks are ordered by area, largest first; equal areas are ordered by the
raster index (row-major) of their first pixel. That order is deterministic for a given label map.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import numpy as np

from restorers.imagecheck import check_image


def whole_option(where: str, name: str, value: Any) -> int:
    """``value`` as an int when it is a whole number (an int, or a float such as 9.0), else ``ValueError``
    naming ``where`` and option ``name`` (a proposer would otherwise truncate 2.5 to 2 without a word)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)) or (
            isinstance(value, (float, np.floating)) and not float(value).is_integer()):
        raise ValueError(f"{where}: {name} must be a whole number, got {value!r}")
    return int(value)


class RegionProposer:
    """Split an image into at most ``max_regions`` disjoint masks that cover it.

    Subclasses implement :meth:`_labels` (an ``H x W`` integer label map, any non-negative ids) and
    optionally :meth:`_merge_features`, or both at once in :meth:`_segment`. :meth:`propose` validates
    the image (``restorers.check_image``), folds fragments smaller than ``min_area_frac`` of the image
    into their most similar neighbour, merges the label map down to ``max_regions`` regions
    (:func:`merge_regions`, Ward cost on the merge features) and returns the ordered partition.

    Args:
        max_regions: upper bound K on the number of masks returned (>= 1).
        seed: seed for any randomness (k-means initialisation); same seed, same masks.
        min_area_frac: fragments smaller than this fraction of the image (in [0, 0.5)) are merged.
    """

    #: registry name, e.g. ``"grid"``.
    name: str = ""
    #: whether :meth:`propose` needs the ``scene`` argument.
    needs_scene: bool = False

    def __init__(self, max_regions: int = 8, seed: int = 0, min_area_frac: float = 0.01) -> None:
        if isinstance(max_regions, bool) or not isinstance(max_regions, (int, np.integer)) or max_regions < 1:
            raise ValueError(f"max_regions must be an integer >= 1, got {max_regions!r}")
        if not 0.0 <= float(min_area_frac) < 0.5:
            raise ValueError(f"min_area_frac must lie in [0, 0.5), got {min_area_frac!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {type(seed).__name__}")
        self.max_regions = int(max_regions)
        self.seed = int(seed)
        self.min_area_frac = float(min_area_frac)

    def propose(self, image: np.ndarray, scene: Any = None) -> np.ndarray:
        """Masks ``(K, H, W)`` bool, a partition of ``image`` (float32 HxWx3 in [0, 1]).

        ``K <= max_regions``, no empty mask, largest area first (ties: raster order of first pixel).
        ``scene`` (an ``ir_env.recipes.Scene``) is only read by proposers with ``needs_scene``.
        """
        img = check_image(image)
        labels, features = self._segment(img, scene)
        labels = np.asarray(labels)
        if labels.shape != img.shape[:2]:
            raise RuntimeError(f"{self.name}: label map has shape {labels.shape}, image is {img.shape[:2]}")
        min_size = int(np.ceil(self.min_area_frac * labels.size))
        labels = merge_regions(labels, features, self.max_regions, min_size)
        return labels_to_masks(labels)

    __call__ = propose

    def _segment(self, image: np.ndarray, scene: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """(label map ``(H, W)``, per-pixel merge features ``(H, W, C)``) for a validated image; the
        default pairs :meth:`_labels` with :meth:`_merge_features`."""
        labels = self._labels(image, scene)
        return labels, self._merge_features(image, scene)

    def _labels(self, image: np.ndarray, scene: Any) -> np.ndarray:
        """Integer label map ``(H, W)`` for a validated image; may hold more than ``max_regions`` ids.
        Subclasses override this or :meth:`_segment`."""
        raise NotImplementedError(f"{type(self).__name__} must implement _labels or _segment")

    def _merge_features(self, image: np.ndarray, scene: Any) -> np.ndarray | None:
        """Per-pixel features ``(H, W, C)`` whose region means decide which regions merge (default:
        CIE Lab colour scaled to roughly unit range; ``None`` merges by size only)."""
        return lab_features(image)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_regions={self.max_regions}, seed={self.seed})"


def lab_features(image: np.ndarray) -> np.ndarray:
    """CIE Lab of an RGB image in [0, 1], divided by 100 (L in [0, 1], a/b roughly [-1, 1]); float32."""
    from skimage.color import rgb2lab

    return (rgb2lab(image) / 100.0).astype(np.float32)


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Map arbitrary integer ids to 0..n-1 in raster order of first appearance (int32)."""
    flat = np.asarray(labels).ravel()
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    # rank ids by the raster position of their first pixel
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse].reshape(labels.shape).astype(np.int32)


def _unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """The distinct rows of a (E, 2) array of non-negative int pairs, in lexicographic order, as int64: the
    result of ``np.unique(pairs, axis=0)``, computed on one int64 key per row (several times faster)."""
    if pairs.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    p = pairs.astype(np.int64, copy=False)
    base = int(p.max()) + 1
    keys = np.unique(p[:, 0] * base + p[:, 1])
    return np.stack([keys // base, keys % base], axis=1)


def _adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    """Unique unordered pairs (a < b) of labels that touch horizontally or vertically, shape (E, 2)."""
    pairs = [
        np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], axis=1),
        np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], axis=1),
    ]
    p = np.concatenate(pairs)
    p = p[p[:, 0] != p[:, 1]]
    return _unique_pairs(np.sort(p, axis=1))


def merge_regions(
    labels: np.ndarray, features: np.ndarray | None, max_regions: int, min_size: int = 0,
    max_cost: float | None = None, adjacent_only: bool = True, history: list[float] | None = None,
    merges: list[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Merge regions of a label map until at most ``max_regions`` remain, none smaller than ``min_size``.

    Hand-written because skimage's RAG merging stops at a distance threshold, not at a region count.
    Step 1: while some region is smaller than ``min_size`` pixels, the smallest one joins its adjacent
    neighbour with the closest mean feature. Step 2: while more than ``max_regions`` regions remain,
    the adjacent pair with the smallest Ward cost ``|f_a - f_b|^2 * n_a n_b / (n_a + n_b)`` merges.
    Regions with no neighbour (only possible when a label is disconnected from all others — never in
    a 4-connected image with >1 label) may merge with any region. Ties break on the lowest ids.

    Args:
        labels: ``(H, W)`` integer label map.
        features: ``(H, W, C)`` per-pixel features (``None``: merge by size only).
        max_regions: target upper bound on the region count (>= 1).
        min_size: minimum region size in pixels (regions are never merged below one region).
        max_cost: if given, step 2 also continues below ``max_regions`` while the cheapest Ward cost,
            divided by the image's pixel count, is at most this (a dissimilarity threshold).
        adjacent_only: if False, step 2 considers every pair of regions, not only touching ones, so
            similar but separate regions join into one (disconnected) region.
        history: if a list is given, the per-pixel Ward cost of every step-2 merge is appended to it.
        merges: if a list is given, every step-2 merge is appended to it as ``(src, dst)`` (``src`` joins
            ``dst``; ids of ``relabel_sequential(labels)`` after step 1). With ``min_size=0``,
            :func:`apply_merges` on a prefix of this list gives what a call stopping earlier returns.

    Returns:
        ``(H, W)`` int32 labels 0..K-1 (raster order of first pixel).
    """
    lab = relabel_sequential(labels)
    n = int(lab.max()) + 1
    h, w = lab.shape
    if features is None:
        feats = np.zeros((h * w, 1), dtype=np.float64)
    else:
        feats = np.asarray(features, dtype=np.float64).reshape(h * w, -1)
    flat = lab.ravel()
    size = np.bincount(flat, minlength=n).astype(np.float64)
    if max_cost is None and n <= max(1, max_regions) and (n == 1 or size.min() >= min_size):
        return lab  # nothing to merge (what the steps below would return, without computing feature sums)
    sums = np.stack([np.bincount(flat, weights=feats[:, c], minlength=n) for c in range(feats.shape[1])], 1)
    if adjacent_only:
        edges = _adjacent_pairs(lab).astype(np.int64)
    else:
        edges = np.array(np.triu_indices(n, 1), dtype=np.int64).T.reshape(-1, 2)
    parent = np.arange(n)
    alive = np.ones(n, dtype=bool)
    adj: dict[int, set[int]] = {i: set() for i in range(n)}
    for ea, eb in edges.tolist():
        adj[ea].add(eb)
        adj[eb].add(ea)

    def absorb(src: int, dst: int) -> None:
        """Region ``src`` joins ``dst``: sizes, feature sums, parents and adjacency."""
        size[dst] += size[src]
        sums[dst] += sums[src]
        alive[src] = False
        parent[src] = dst
        for x in adj.pop(src):
            adj[x].discard(src)
            if x != dst:
                adj[x].add(dst)
                adj[dst].add(x)
        adj[dst].discard(src)

    # step 1: fold the smallest fragment below min_size (ties: lowest id) into its most similar neighbour
    # (ties: lowest id). A heap of (size, id); an entry is stale once its region died or grew. Merges only
    # grow regions, so once none is small, none becomes small again.
    small_heap = [(float(size[i]), int(i)) for i in np.flatnonzero(size < min_size)]
    heapq.heapify(small_heap)
    count = n
    while count > 1 and small_heap:
        sz, s = heapq.heappop(small_heap)
        if not alive[s] or size[s] != sz:
            continue
        nb = np.array(sorted(adj[s]), dtype=np.int64)
        if nb.size == 0:  # isolated (cannot happen in a 4-connected map with >1 region): any region
            nb = np.flatnonzero(alive)
            nb = nb[nb != s]
        dist = np.sum((sums[nb] / size[nb, None] - sums[s] / size[s]) ** 2, axis=1)
        t = int(nb[np.argmin(dist)])
        absorb(s, t)
        count -= 1
        if size[t] < min_size:
            heapq.heappush(small_heap, (float(size[t]), t))

    # step 2: Ward-style agglomeration of the cheapest adjacent pair. A heap of (cost, a, b) with a < b
    # pops pairs in the order np.argmin over the sorted edge list would pick them (ties: lowest ids);
    # only the merged region's pairs are re-costed, with the same vectorised expression.
    def ward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ma, mb = sums[a] / size[a, None], sums[b] / size[b, None]
        return np.sum((ma - mb) ** 2, axis=1) * size[a] * size[b] / (size[a] + size[b])

    version = np.zeros(n, dtype=np.int64)

    def entries(a: np.ndarray, b: np.ndarray) -> list[tuple[float, int, int, int, int]]:
        if a.size == 0:
            return []
        c = ward(a, b).tolist()
        return [(ci, ai, bi, int(version[ai]), int(version[bi])) for ci, ai, bi in zip(c, a.tolist(), b.tolist(),
                                                                                        strict=True)]

    pairs = np.array([(a, b) for a, nbs in adj.items() for b in nbs if a < b], dtype=np.int64).reshape(-1, 2)
    heap = entries(pairs[:, 0], pairs[:, 1])
    heapq.heapify(heap)
    target = max(1, max_regions)
    while count > 1:
        if count <= target and max_cost is None:
            break
        best = None
        while heap:
            c, ea, eb, va, vb = heap[0]
            if alive[ea] and alive[eb] and version[ea] == va and version[eb] == vb:
                best = (c, ea, eb)
                break
            heapq.heappop(heap)
        if best is None:  # no touching pair left (disconnected labels): the two lowest ids
            ids = np.flatnonzero(alive)
            ea, eb = int(ids[0]), int(ids[1])
            best = (float(ward(np.array([ea]), np.array([eb]))[0]), ea, eb)
        cost, ea, eb = best
        if count <= target and cost / (h * w) > max_cost:
            break
        if history is not None:
            history.append(float(cost / (h * w)))
        src, dst = (ea, eb) if size[ea] < size[eb] or (size[ea] == size[eb] and ea > eb) else (eb, ea)
        if merges is not None:
            merges.append((int(src), int(dst)))
        absorb(src, dst)
        version[dst] += 1
        nb = np.fromiter(adj[dst], dtype=np.int64, count=len(adj[dst]))  # the heap orders them
        lo, hi = np.minimum(nb, dst), np.maximum(nb, dst)
        for entry in entries(lo, hi):
            heapq.heappush(heap, entry)
        count -= 1
    return _resolve(lab, parent)


def _resolve(lab: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Follow merge chains (``parent[i]``: the region ``i`` joined) to their surviving root; relabel."""
    root = parent.copy()
    for _ in range(len(root)):
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return relabel_sequential(root[lab])


def merges_before_stop(history: Sequence[float], count: int, max_regions: int, max_cost: float) -> int:
    """How many of a full run's step-2 merges (per-pixel costs ``history``, from ``count`` regions down to one)
    a :func:`merge_regions` run with ``min_size=0``, this ``max_regions`` and ``max_cost`` makes before it
    stops: it merges while more than ``max_regions`` regions remain, then while the cost is <= ``max_cost``."""
    for i, cost in enumerate(history):
        if count - i <= max(1, max_regions) and cost > max_cost:
            return i
    return len(history)


def apply_merges(labels: np.ndarray, merges: Sequence[tuple[int, int]]) -> np.ndarray:
    """Replay recorded merges (``(src, dst)`` pairs from :func:`merge_regions`'s ``merges``, in order) on
    ``labels``; returns ``(H, W)`` int32 labels 0..K-1 in raster order of first pixel, exactly what
    :func:`merge_regions` returns after those merges. Raises ``ValueError`` on an id outside the map or a
    region merged twice."""
    lab = relabel_sequential(labels)
    n = int(lab.max()) + 1
    parent = np.arange(n)
    for src, dst in merges:
        if not (0 <= src < n and 0 <= dst < n) or src == dst:
            raise ValueError(f"merge ({src}, {dst}) is not a pair of distinct region ids in [0, {n - 1}]")
        if parent[src] != src or parent[dst] != dst:
            raise ValueError(f"merge ({src}, {dst}): region {src if parent[src] != src else dst} was merged "
                             "already (merges must come from one merge_regions run, in order)")
        parent[src] = dst
    return _resolve(lab, parent)


def labels_to_masks(labels: np.ndarray) -> np.ndarray:
    """Label map ``(H, W)`` -> ordered partition ``(K, H, W)`` bool: area descending, ties by the raster
    index of each region's first pixel. Labels absent from the map produce no mask. (For ground-truth scene
    partitions, whose label order matters, :func:`ir_env.masks.labels_to_masks` keeps mask i = label i.)"""
    lab = relabel_sequential(labels)  # ids now in raster order of first pixel
    n = int(lab.max()) + 1
    area = np.bincount(lab.ravel(), minlength=n)
    order = sorted(range(n), key=lambda i: (-int(area[i]), i))
    return np.stack([lab == i for i in order]).astype(bool)


def masks_to_labels(masks: np.ndarray) -> np.ndarray:
    """Partition ``(K, H, W)`` -> label map ``(H, W)`` int32 (index of the mask holding each pixel).

    Raises ``ValueError`` when ``masks`` is not a partition (see :func:`check_partition`)."""
    m = check_partition(masks)
    return np.argmax(m, axis=0).astype(np.int32)


def check_partition(
    masks: object, shape: tuple[int, int] | None = None, max_regions: int | None = None
) -> np.ndarray:
    """Validate that ``masks`` is a bool ``(K, H, W)`` partition: every pixel in exactly one mask, no
    empty mask, optionally ``(H, W) == shape`` and ``K <= max_regions``. Returns it; else ``ValueError``."""
    if not isinstance(masks, np.ndarray):
        raise ValueError(f"masks must be a numpy array, got {type(masks).__name__}")
    if masks.ndim != 3 or masks.shape[0] < 1:
        raise ValueError(f"masks must have shape (K, H, W) with K >= 1, got {masks.shape}")
    if masks.dtype != bool:
        raise ValueError(f"masks must be bool, got dtype {masks.dtype}")
    if shape is not None and masks.shape[1:] != tuple(shape):
        raise ValueError(f"masks cover {masks.shape[1:]}, expected {tuple(shape)}")
    if max_regions is not None and masks.shape[0] > max_regions:
        raise ValueError(f"{masks.shape[0]} masks exceed max_regions={max_regions}")
    count = masks.sum(axis=0)
    if np.any(count != 1):
        bad = int(np.sum(count != 1))
        counts = sorted(set(np.unique(count).tolist()) - {1})
        raise ValueError(f"masks are not a partition: {bad} pixels are covered {counts} times, not once")
    empty = np.flatnonzero(~masks.any(axis=(1, 2)))
    if empty.size:
        raise ValueError(f"masks {empty.tolist()} are empty")
    return masks


def pad_masks(masks: np.ndarray, max_regions: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad a ``(K, H, W)`` bool mask stack to ``(max_regions, H, W)`` for a fixed-size observation.

    Returns ``(padded, valid)``: ``padded[:K] = masks``, the rest all-False; ``valid`` is a
    ``(max_regions,)`` bool vector, True for the first K slots. ``ValueError`` if K > max_regions.
    """
    if not isinstance(masks, np.ndarray) or masks.ndim != 3:
        got = getattr(masks, "shape", type(masks).__name__)
        raise ValueError(f"masks must be a (K, H, W) array, got {got}")
    if isinstance(max_regions, bool) or not isinstance(max_regions, (int, np.integer)) or max_regions < 1:
        raise ValueError(f"max_regions must be an integer >= 1, got {max_regions!r}")
    k, h, w = masks.shape
    if k > max_regions:
        raise ValueError(f"{k} masks do not fit max_regions={max_regions}")
    padded = np.zeros((max_regions, h, w), dtype=bool)
    padded[:k] = masks.astype(bool)
    valid = np.zeros(max_regions, dtype=bool)
    valid[:k] = True
    return padded, valid
