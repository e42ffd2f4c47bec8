"""Region proposers: partition invariants, determinism, oracle, padding, the degradation-aware proposer
separating two degradations, input errors, and SAM (missing weights, a fake generator, random init)."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from ir_env.encoder import DEFAULT_WEIGHTS
from ir_env.recipes import synthesize
from ir_env.regions import (
    REGION_FEATURE_NAMES,
    apply_merges,
    check_partition,
    grid_shape,
    list_proposers,
    make_proposer,
    masks_to_labels,
    merge_regions,
    merges_before_stop,
    pad_masks,
)
from ir_env.regions.metric import fit_metric, load_metric
from ir_env.regions.sam import SamProposer, records_to_labels

# sam needs a checkpoint; the learned variant runs only once the encoder's weights are shipped
# (tests/test_encoder.py covers it then)
FAST = [n for n in list_proposers()
        if n != "sam" and (n != "degradation-clusters-learned" or (DEFAULT_WEIGHTS / "encoder.pt").exists())]


@pytest.fixture(scope="module")
def scene(photo):
    """A spatial-mixed scene on the 128 px photo with at least 3 ground-truth regions."""
    for seed in range(50):
        sc = synthesize(photo, "spatial-mixed", seed=seed)
        if sc.masks.shape[0] >= 3:
            return sc
    raise AssertionError("no spatial-mixed scene with >= 3 regions in 50 seeds")


def assert_ordered_partition(masks: np.ndarray, shape: tuple[int, int], max_regions: int) -> None:
    check_partition(masks, shape, max_regions)
    assert masks.dtype == bool and masks.shape[0] >= 1
    areas = masks.sum(axis=(1, 2))
    firsts = [int(np.flatnonzero(m.ravel())[0]) for m in masks]
    keys = list(zip((-areas).tolist(), firsts, strict=True))
    assert keys == sorted(keys), "masks must be ordered by area (desc), ties by first raster pixel"


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("max_regions", [1, 3, 8])
def test_partition_invariants(name, max_regions, scene):
    masks = make_proposer(name, max_regions=max_regions).propose(scene.degraded, scene=scene)
    assert_ordered_partition(masks, scene.degraded.shape[:2], max_regions)
    if name == "whole" or max_regions == 1:
        assert masks.shape[0] == 1 and masks[0].all()


@pytest.mark.parametrize("name", [n for n in FAST if n not in ("oracle",)])
@pytest.mark.parametrize("shape", [(8, 8), (9, 13), (40, 72)])
def test_small_and_odd_images(name, shape):
    img = np.random.default_rng(3).random(shape + (3,)).astype(np.float32)
    masks = make_proposer(name, max_regions=5).propose(img)
    assert_ordered_partition(masks, shape, 5)


@pytest.mark.parametrize("name", FAST)
def test_deterministic(name, scene):
    a = make_proposer(name, max_regions=6, seed=7).propose(scene.degraded, scene=scene)
    p = make_proposer(name, max_regions=6, seed=7)
    b = p.propose(scene.degraded.copy(), scene=scene)
    c = p.propose(scene.degraded, scene=scene)
    assert np.array_equal(a, b) and np.array_equal(b, c)


def test_kmeans_variant_deterministic_and_valid(scene):
    a = make_proposer("degradation-clusters", method="kmeans", seed=3).propose(scene.degraded)
    b = make_proposer("degradation-clusters", method="kmeans", seed=3).propose(scene.degraded)
    assert np.array_equal(a, b)
    assert_ordered_partition(a, scene.degraded.shape[:2], 8)


def test_oracle_returns_ground_truth(scene):
    masks = make_proposer("oracle", max_regions=8).propose(scene.degraded, scene=scene)
    key = lambda m: m.tobytes()  # noqa: E731
    assert sorted(map(key, masks)) == sorted(map(key, scene.masks))


def test_oracle_merges_to_max_regions(scene):
    k = scene.masks.shape[0]
    masks = make_proposer("oracle", max_regions=k - 1).propose(scene.degraded, scene=scene)
    assert masks.shape[0] == k - 1
    for m in masks:  # each proposed region is a union of whole ground-truth regions
        inside = [bool((g & m).any()) for g in scene.masks]
        union = np.any(scene.masks[inside], axis=0)
        assert np.array_equal(union, m)


def test_oracle_needs_scene(photo):
    with pytest.raises(ValueError, match="needs the scene"):
        make_proposer("oracle").propose(photo)
    bad = synthesize(photo, "spatial-mixed", seed=0)
    bad.masks = bad.masks[:, :64]
    with pytest.raises(ValueError, match="scene.masks must have shape"):
        make_proposer("oracle").propose(photo, scene=bad)


def test_pad_masks():
    masks = np.zeros((3, 10, 12), dtype=bool)
    masks[0, :5], masks[1, 5:, :6], masks[2, 5:, 6:] = True, True, True
    padded, valid = pad_masks(masks, 8)
    assert padded.shape == (8, 10, 12) and padded.dtype == bool
    assert valid.tolist() == [True] * 3 + [False] * 5
    assert np.array_equal(padded[:3], masks) and not padded[3:].any()
    with pytest.raises(ValueError, match="do not fit"):
        pad_masks(masks, 2)
    with pytest.raises(ValueError, match="max_regions"):
        pad_masks(masks, 0)


def test_grid_shapes():
    assert grid_shape(8, 128, 128) in {(2, 4), (4, 2)}
    assert grid_shape(4, 128, 128) == (2, 2)
    assert grid_shape(5, 128, 128) == (2, 2)
    assert grid_shape(1, 64, 64) == (1, 1)
    masks = make_proposer("grid", max_regions=6, rows=2, cols=3).propose(np.zeros((12, 18, 3), np.float32))
    assert masks.shape[0] == 6 and all(m.sum() == 36 for m in masks)
    with pytest.raises(ValueError, match="rows\\*cols"):
        make_proposer("grid", max_regions=4, rows=2, cols=3)


def _halves(photo: np.ndarray) -> np.ndarray:
    """Left half: Gaussian noise sigma 25 (0-255 units); right half: Gaussian blur sigma 2.5 px."""
    rng = np.random.default_rng(0)
    h, w = photo.shape[:2]
    out = cv2.GaussianBlur(photo, (0, 0), 2.5)
    out[:, : w // 2] = np.clip(photo[:, : w // 2] + rng.normal(0, 25 / 255, (h, w // 2, 3)), 0, 1)
    return out.astype(np.float32)


@pytest.mark.parametrize("method", ["ward", "kmeans"])
def test_degradation_clusters_separates_noise_from_blur(photo, method):
    img = _halves(photo)
    left = np.zeros(img.shape[:2], dtype=bool)
    left[:, : img.shape[1] // 2] = True
    masks = make_proposer("degradation-clusters", method=method).propose(img)
    iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
    assert max(iou(m, left) for m in masks) > 0.8
    assert max(iou(m, ~left) for m in masks) > 0.8


def test_degradation_clusters_beats_colour_baselines(photo, photo96):
    """On a few spatial-mixed scenes the degradation-aware proposer has the best mean IoU."""
    scenes = [synthesize(p, "spatial-mixed", seed=s) for p in (photo, photo96) for s in range(3)]

    def miou(name):
        prop = make_proposer(name, max_regions=8)
        vals = []
        for sc in scenes:
            m = prop.propose(sc.degraded)
            inter = (sc.masks[:, None] & m[None]).sum(axis=(2, 3))
            union = (sc.masks[:, None] | m[None]).sum(axis=(2, 3))
            vals.append(np.mean(np.max(inter / union, axis=1)))
        return float(np.mean(vals))

    ours = miou("degradation-clusters")
    assert ours > max(miou("grid"), miou("slic"), miou("felzenszwalb"))


def test_bad_inputs(photo):
    p = make_proposer("grid")
    with pytest.raises(ValueError, match="float"):
        p.propose((photo * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="HxWx3"):
        p.propose(photo[..., 0])
    nan = photo.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make_proposer("degradation-clusters").propose(nan)
    with pytest.raises(ValueError, match="unknown region proposer"):
        make_proposer("nope")
    with pytest.raises(ValueError, match="max_regions"):
        make_proposer("slic", max_regions=0)
    with pytest.raises(ValueError, match="method"):
        make_proposer("degradation-clusters", method="spectral")
    with pytest.raises(ValueError, match="window"):
        make_proposer("degradation-clusters", window=4)


def test_check_partition_rejects_overlap_and_gaps():
    m = np.zeros((2, 4, 4), dtype=bool)
    m[0, :2] = True
    m[1, 1:] = True
    with pytest.raises(ValueError, match="not a partition"):
        check_partition(m)
    m[1, :2] = False
    m[1, 2:] = True
    check_partition(m)
    assert masks_to_labels(m).tolist()[0] == [0, 0, 0, 0]
    m[1] = False
    with pytest.raises(ValueError):
        check_partition(m)


def test_merge_regions_count_and_min_size():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.repeat(rng.integers(0, 20, (8, 8)), 4, 0), 4, 1)
    feats = rng.random((32, 32, 2)).astype(np.float32)
    costs: list[float] = []
    out = merge_regions(labels, feats, 3, min_size=40, history=costs)
    sizes = np.bincount(out.ravel())
    assert out.max() + 1 <= 3 and sizes.min() >= 40 and len(costs) >= 1
    one = merge_regions(labels, feats, 1)
    assert np.all(one == 0)


@pytest.mark.parametrize("seed", range(6))
def test_replayed_merges_equal_a_run_that_stops_early(seed: int) -> None:
    """A full run's recorded merges, cut where a max_regions / max_cost run stops, give that run's labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.repeat(rng.integers(0, 30, (12, 12)), 4, 0), 4, 1)
    feats = rng.random((48, 48, 3)).astype(np.float32)
    lab = merge_regions(labels, feats, labels.size, min_size=20)
    costs: list[float] = []
    merges: list[tuple[int, int]] = []
    full = merge_regions(lab, feats, 1, history=costs, merges=merges)
    assert len(merges) == len(costs) == lab.max() and np.array_equal(apply_merges(lab, merges), full)
    for target in (1, 2, 4, 8):
        for q in (0.0, 0.3, 0.7, 1.0):
            max_cost = float(np.quantile(costs, q))
            hist: list[float] = []
            ref = merge_regions(lab, feats, target, max_cost=max_cost, history=hist)
            kept = merges_before_stop(costs, int(lab.max()) + 1, target, max_cost)
            assert kept == len(hist) and hist == costs[:kept]
            assert np.array_equal(apply_merges(lab, merges[:kept]), ref)


def test_apply_merges_rejects_bad_records() -> None:
    lab = np.repeat(np.arange(4), 4).reshape(4, 4)
    assert np.array_equal(apply_merges(lab, [(3, 2), (1, 0)]), np.repeat([0, 0, 1, 1], 4).reshape(4, 4))
    with pytest.raises(ValueError, match="distinct region ids"):
        apply_merges(lab, [(0, 4)])
    with pytest.raises(ValueError, match="merged already"):
        apply_merges(lab, [(1, 0), (1, 2)])


def test_metric_shipped_and_fit(scene):
    t = load_metric()
    c = len(REGION_FEATURE_NAMES)
    assert t.shape == (c, c) and np.all(np.isfinite(t))
    fitted = fit_metric([scene], subsample=8)
    assert fitted.shape == (c, c) and np.all(np.isfinite(fitted))
    assert np.array_equal(fitted, fit_metric([scene], subsample=8))


# ---------------------------------------------------------------------------------------------------- SAM


def test_sam_missing_checkpoint(tmp_path):
    missing = tmp_path / "sam_vit_b_01ec64.pth"
    with pytest.raises(FileNotFoundError) as err:
        make_proposer("sam", checkpoint=str(missing))
    assert str(missing) in str(err.value) and "cannot be downloaded" in str(err.value)
    with pytest.raises(ValueError, match="cannot be downloaded"):
        make_proposer("sam")
    with pytest.raises(ValueError, match="model_type"):
        make_proposer("sam", checkpoint=str(missing), model_type="vit_x")


class _FakeGenerator:
    """Stands in for SamAutomaticMaskGenerator: fixed overlapping masks, some pixels uncovered."""

    def __init__(self, records_fn):
        self.records_fn = records_fn
        self.seen: list[np.ndarray] = []

    def generate(self, image):
        self.seen.append(image)
        return self.records_fn(image.shape[:2])


def _overlapping(shape):
    h, w = shape
    big = np.zeros(shape, bool)
    big[: h * 3 // 4] = True
    small = np.zeros(shape, bool)
    small[h // 4 : h // 2, w // 4 : w // 2] = True
    tiny = np.zeros(shape, bool)
    tiny[0, 0] = True
    return [{"segmentation": small, "area": int(small.sum()), "predicted_iou": 0.9},
            {"segmentation": big, "area": int(big.sum()), "predicted_iou": 0.8},
            {"segmentation": tiny, "area": 1, "predicted_iou": 0.5}]


def test_sam_postprocessing_with_fake_generator(photo):
    gen = _FakeGenerator(_overlapping)
    masks = make_proposer("sam", mask_generator=gen, max_regions=8).propose(photo)
    assert gen.seen[0].dtype == np.uint8 and gen.seen[0].shape == photo.shape
    assert_ordered_partition(masks, photo.shape[:2], 8)
    assert masks.shape[0] == 3  # big minus small, small (on top), uncovered bottom rows; tiny folded away
    h, w = photo.shape[:2]
    small = np.zeros((h, w), bool)
    small[h // 4 : h // 2, w // 4 : w // 2] = True
    assert any(np.array_equal(m, small) for m in masks)
    lab = records_to_labels(_overlapping((h, w)), (h, w))
    assert lab[h // 3, w // 3] != lab[0, w - 1] and lab[h - 1, 0] == 3
    two = make_proposer("sam", mask_generator=gen, max_regions=2).propose(photo)
    assert_ordered_partition(two, photo.shape[:2], 2)


def test_sam_no_masks_gives_whole_image(photo):
    masks = make_proposer("sam", mask_generator=_FakeGenerator(lambda shape: [])).propose(photo)
    assert masks.shape == (1,) + photo.shape[:2] and masks.all()


@pytest.mark.slow
def test_sam_random_init_model(photo):
    """segment_anything's real generator on a randomly initialised ViT-B (about 20-40 s on CPU)."""
    torch = pytest.importorskip("torch")
    from segment_anything import build_sam_vit_b

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_sam_vit_b(checkpoint=None)
    prop = SamProposer(max_regions=4, sam_model=model, points_per_side=4, pred_iou_thresh=0.0,
                       stability_score_thresh=0.0)
    img = np.ascontiguousarray(photo[::2, ::2])
    masks = prop.propose(img)
    assert_ordered_partition(masks, img.shape[:2], 4)


@pytest.mark.weights
def test_sam_with_a_real_checkpoint(photo):
    """The `sam` proposer on official weights, as a user runs it: ``pytest -m weights`` with
    SPATIAL_IR_SAM_CHECKPOINT=/path/to/sam_vit_b_01ec64.pth (SPATIAL_IR_SAM_MODEL_TYPE: vit_b by default). The weights
    cannot be downloaded here, so CI never runs it; the mask generation runs on a random ViT-B above (given as
    sam_model), and the checkpoint loading was checked by hand with a saved random ViT-B (which then fails only the
    two-region assertion)."""
    import os

    checkpoint = os.environ.get("SPATIAL_IR_SAM_CHECKPOINT")
    if not checkpoint:
        pytest.skip("set SPATIAL_IR_SAM_CHECKPOINT to a segment-anything checkpoint to run this test")
    model_type = os.environ.get("SPATIAL_IR_SAM_MODEL_TYPE", "vit_b")
    prop = make_proposer("sam", checkpoint=checkpoint, model_type=model_type, max_regions=4, points_per_side=8)
    img = np.ascontiguousarray(photo[::2, ::2])
    masks = prop.propose(img)
    assert_ordered_partition(masks, img.shape[:2], 4)
    assert len(masks) >= 2  # trained SAM finds more than one object in a photo
    assert np.array_equal(masks, prop.propose(img))  # deterministic


def test_unique_pairs_matches_numpy_unique_rows() -> None:
    from ir_env.regions.base import _unique_pairs

    rng = np.random.default_rng(0)
    for n in (1, 5, 300):
        pairs = np.sort(rng.integers(0, n + 1, (400, 2)), axis=1)
        got = _unique_pairs(pairs)
        assert got.dtype == np.int64 and np.array_equal(got, np.unique(pairs, axis=0))
    assert _unique_pairs(np.zeros((0, 2), np.int32)).shape == (0, 2)


@pytest.mark.parametrize("shape,size,chunk", [((64, 64), 9, 64), ((37, 53), 9, 8), ((20, 31), 3, 7), ((5, 6), 9, 2),
                                              ((70, 40), 1, 64)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_filter_equals_scipy_reflect(shape: tuple[int, int], size: int, chunk: int, dtype: type) -> None:
    from scipy import ndimage

    from ir_env.regions.features import median_filter

    x = np.abs(np.random.default_rng(size + chunk).normal(size=shape)).astype(dtype)
    x[::7, ::5] = x[0, 0]  # ties
    got = median_filter(x, size, rows_per_chunk=chunk)
    assert got.dtype == x.dtype and got.shape == x.shape
    assert np.array_equal(got, ndimage.median_filter(x, size=size, mode="reflect"))


def test_median_filter_rejects_even_size() -> None:
    from ir_env.regions.features import median_filter

    with pytest.raises(ValueError, match="odd integer"):
        median_filter(np.zeros((8, 8), np.float32), 4)


def _naive_merge(labels: np.ndarray, feats: np.ndarray, max_regions: int, min_size: int,
                 max_cost: float | None, adjacent_only: bool) -> tuple[np.ndarray, list[float]]:
    """Reference: merge_regions' rules re-evaluated from scratch before every merge (slow, obvious)."""
    from ir_env.regions.base import relabel_sequential

    lab = relabel_sequential(labels).copy()
    h, w = lab.shape
    hist: list[float] = []
    f = feats.reshape(h * w, -1).astype(np.float64)
    while True:
        ids = np.unique(lab)
        if ids.size <= 1:
            break
        size = {int(i): float((lab == i).sum()) for i in ids}
        mean = {int(i): f[(lab == i).ravel()].sum(axis=0) / size[int(i)] for i in ids}
        pairs = set()
        for a, b in ((lab[:, :-1], lab[:, 1:]), (lab[:-1, :], lab[1:, :])):
            m = a != b
            pairs |= {(min(x, y), max(x, y)) for x, y in zip(a[m].tolist(), b[m].tolist(), strict=True)}
        small = [i for i in map(int, ids) if size[i] < min_size]
        if small:
            s = min(small, key=lambda i: (size[i], i))
            nb = sorted({b for a, b in pairs if a == s} | {a for a, b in pairs if b == s})
            t = min(nb, key=lambda j: (float(np.sum((mean[j] - mean[s]) ** 2)), j))
            lab[lab == s] = t
            continue
        if ids.size <= max(1, max_regions) and max_cost is None:
            break
        cand = sorted(pairs) if adjacent_only else [(int(a), int(b)) for k, a in enumerate(ids) for b in ids[k + 1:]]
        cost = {p: float(np.sum((mean[p[0]] - mean[p[1]]) ** 2)) * size[p[0]] * size[p[1]] / (size[p[0]] + size[p[1]])
                for p in cand}
        a, b = min(cand, key=lambda p: (cost[p], p))
        if ids.size <= max(1, max_regions) and cost[(a, b)] / (h * w) > max_cost:
            break
        hist.append(cost[(a, b)] / (h * w))
        src, dst = (a, b) if size[a] < size[b] or (size[a] == size[b] and a > b) else (b, a)
        lab[lab == src] = dst
    return relabel_sequential(lab), hist


@pytest.mark.parametrize("seed", range(6))
def test_merge_regions_matches_a_naive_reference(seed: int) -> None:
    from skimage.segmentation import slic

    rng = np.random.default_rng(seed)
    img = rng.uniform(0, 1, (40, 48, 3)).astype(np.float32)
    img[:, 24:] *= 0.3  # two halves that differ
    init = slic(img, n_segments=40, compactness=5, start_label=0, channel_axis=-1)
    feats = np.concatenate([img, rng.normal(size=(40, 48, 2)).astype(np.float32)], axis=2)
    for kw in ({"max_regions": 4, "min_size": 30, "max_cost": None, "adjacent_only": True},
               {"max_regions": 1, "min_size": 0, "max_cost": None, "adjacent_only": True},
               {"max_regions": 3, "min_size": 10, "max_cost": 0.05, "adjacent_only": True},
               {"max_regions": 2, "min_size": 0, "max_cost": 0.02, "adjacent_only": False}):
        hist: list[float] = []
        got = merge_regions(init, feats, kw["max_regions"], kw["min_size"], max_cost=kw["max_cost"],
                            adjacent_only=kw["adjacent_only"], history=hist)
        ref, ref_hist = _naive_merge(init, feats, **kw)
        assert np.array_equal(got, ref), kw
        np.testing.assert_allclose(hist, ref_hist, rtol=1e-9, atol=1e-12)


def test_sam_checkpoint_that_does_not_fit_is_named(tmp_path):
    corrupt, empty = tmp_path / "corrupt.pth", tmp_path / "empty.pth"
    corrupt.write_bytes(b"not a checkpoint" * 10)
    empty.write_bytes(b"")
    for path in (corrupt, empty):  # before: a torch UnpicklingError / an EOFError with no message
        with pytest.raises(ValueError, match=rf"{path.name} is not a SAM vit_b checkpoint"):
            make_proposer("sam", checkpoint=str(path))
    with pytest.raises(ValueError, match="pred_iou_thresh must lie in"):
        make_proposer("sam", checkpoint=str(corrupt), pred_iou_thresh=5)
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda"):
        make_proposer("sam", checkpoint=str(corrupt), device="gpu")  # named before the checkpoint is read


@pytest.mark.parametrize("name, kwargs, msg", [
    ("slic", {"compactness": float("nan")}, "option compactness=nan must be a finite number"),
    ("degradation-clusters", {"merge_cost": float("nan")}, "must be a finite number"),
    ("grid", {"min_area_frac": 0.1}, "'grid' sets min_area_frac itself"),
    ("slic", {"colour": 1}, "'slic' has no option 'colour'"),
])
def test_bad_proposer_options_are_named(name, kwargs, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        make_proposer(name, **kwargs)


@pytest.mark.parametrize(("name", "options", "message"), [
    ("degradation-clusters", {"window": 9.5}, "degradation-clusters: window must be a whole number, got 9.5"),
    ("degradation-clusters", {"window": 8.5}, "window must be a whole number, got 8.5"),  # was named as 8, late
    ("degradation-clusters", {"n_segments": 2.5}, "n_segments must be a whole number"),
    ("degradation-clusters", {"kmeans_k": 2.5}, "kmeans_k must be a whole number"),
    ("degradation-clusters", {"block": 2.5}, "block must be a whole number"),
    ("degradation-clusters", {"n_init": 1.5}, "n_init must be a whole number"),
    ("slic", {"n_segments": 2.5}, "slic: n_segments must be a whole number"),
])
def test_proposer_whole_number_options_are_not_truncated(name: str, options: dict, message: str) -> None:
    from ir_env.regions import make_proposer

    with pytest.raises(ValueError, match=message):
        make_proposer(name, **options)
    assert make_proposer("degradation-clusters", window=9.0).window == 9  # a whole float is fine


def test_the_region_metric_is_read_again_when_its_file_changes_and_is_never_shared_writable(tmp_path) -> None:  # noqa: ANN001
    import os
    import shutil

    from ir_env.regions import make_proposer
    from ir_env.regions.metric import METRIC_PATH, load_metric, save_metric

    path = tmp_path / "m.json"
    shutil.copy(METRIC_PATH, path)
    p1 = make_proposer("degradation-clusters", metric=str(path))
    with pytest.raises(ValueError):  # read-only: one proposer cannot change another's metric
        p1.transform[0, 0] = 123.0
    c = load_metric(path).shape[0]
    save_metric(str(path), np.eye(c) * 3, {})
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a visibly newer file
    p2 = make_proposer("degradation-clusters", metric=str(path))
    np.testing.assert_allclose(p2.transform, np.eye(c) * 3, rtol=1e-6)  # the re-fitted matrix, not the cached one
    bad = tmp_path / "bad.json"
    bad.write_text("{bad")
    with pytest.raises(ValueError, match=r"region metric .*bad.json is not a metric JSON file"):
        make_proposer("degradation-clusters", metric=str(bad))
