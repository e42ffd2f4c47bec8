"""Scenes and recipes: determinism, partitions, declared kinds, published ranges, JPEG last, speed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ir_env.corpus import center_crop, load_named_corpus, resize_short
from ir_env.degradations import FAMILY_OF_KIND, PHYSICAL_ORDER, apply_kind
from ir_env.masks import (
    adjacency_counts,
    blob_partition,
    depth_partition,
    labels_to_masks,
    merge_small_regions,
    superpixel_partition,
)
from ir_env.recipes import AGENTICIR_COMBOS, MIN_REGION_FRACTION, RECIPES, Scene, list_recipes, synthesize


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Four 96 px and one 96x128 crops of built-in photos."""
    named = load_named_corpus("builtin", "train")
    crops = [center_crop(resize_short(img, 128), 96) for _, img in named[:4]]
    return crops + [center_crop(resize_short(named[4][1], 128), (96, 128))]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12)))


def assert_partition(scene: Scene) -> None:
    h, w = scene.clean.shape[:2]
    assert scene.masks.dtype == bool and scene.masks.shape == (scene.num_regions, h, w)
    assert np.all(scene.masks.sum(axis=0) == 1)


def test_recipe_names() -> None:
    names = list_recipes()
    assert names[0] == "spatial-mixed"
    for n in (
        "global-mild",
        "global-moderate",
        "global-severe",
        "mixed-2",
        "mixed-3",
        "noise-15",
        "noise-25",
        "noise-50",
        "agenticir-A",
        "agenticir-B",
        "agenticir-C",
    ):
        assert n in names and n in RECIPES


def test_same_seed_identical_other_seed_different(images: list[np.ndarray]) -> None:
    for recipe in ("spatial-mixed", "mixed-3", "agenticir-A"):
        a, b = synthesize(images[0], recipe, seed=7), synthesize(images[0], recipe, seed=7)
        assert np.array_equal(a.degraded, b.degraded) and np.array_equal(a.masks, b.masks)
        assert np.array_equal(a.depth, b.depth)
        assert a.labels == b.labels and a.params == b.params and a.seed == 7 and a.recipe == recipe
        c = synthesize(images[0], recipe, seed=8)
        assert not np.array_equal(a.degraded, c.degraded)
    assert np.array_equal(
        synthesize(images[0], "spatial-mixed", seed=np.int64(3)).degraded,
        synthesize(images[0], "spatial-mixed", seed=3).degraded,
    )


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_recipe(recipe: str, images: list[np.ndarray]) -> None:
    declared = set(RECIPES[recipe].kinds)
    for seed in range(3):
        img = images[seed % len(images)] if seed < 2 else images[-1]
        sc = synthesize(img, recipe, seed)
        assert sc.degraded.dtype == np.float32 and sc.degraded.shape == img.shape
        assert 0 <= sc.degraded.min() and sc.degraded.max() <= 1
        assert np.array_equal(sc.clean, img)
        assert sc.depth.shape == img.shape[:2] and 0 <= sc.depth.min() and sc.depth.max() <= 1
        assert_partition(sc)
        assert len(sc.labels) == len(sc.params) == sc.num_regions
        for lab, par in zip(sc.labels, sc.params, strict=True):
            assert 1 <= len(lab) and [k for k, _ in lab] == [p["kind"] for p in par]
            assert [s for _, s in lab] == [p["severity"] for p in par]
            assert all(k in declared and 0.0 <= s <= 1.0 for k, s in lab)
        assert psnr(sc.degraded, img) < 40
        summary = json.loads(json.dumps(sc.to_json()))
        assert summary["num_regions"] == sc.num_regions and summary["recipe"] == recipe
        assert sum(r["area"] for r in summary["regions"]) == pytest.approx(1.0)
        if not RECIPES[recipe].spatial:
            assert sc.num_regions == 1


def test_whole_image_recipes(images: list[np.ndarray]) -> None:
    img = images[1]
    for sigma in (15, 25, 50):
        sc = synthesize(img, f"noise-{sigma}", 0)
        assert [p["kind"] for p in sc.params[0]] == ["noise"] and sc.params[0][0]["sigma"] == sigma
        resid = (sc.degraded - img)[(img > 0.2) & (img < 0.8)]  # away from clipping
        assert float(resid.std()) * 255 == pytest.approx(sigma, rel=0.1)
    for name, lo, hi in (("mild", 0, 1 / 3), ("moderate", 1 / 3, 2 / 3), ("severe", 2 / 3, 1)):
        sc = synthesize(img, f"global-{name}", 1)
        assert [k for k, _ in sc.labels[0]] == ["defocus", "noise", "jpeg"]
        assert all(lo <= s <= hi for _, s in sc.labels[0])
    for n in (2, 3):
        for seed in range(5):
            kinds = [k for k, _ in synthesize(img, f"mixed-{n}", seed).labels[0]]
            assert len(set(kinds)) == n and kinds == sorted(kinds, key=PHYSICAL_ORDER.index)
    psnrs = [
        np.mean([psnr(synthesize(im, f"global-{g}", s).degraded, im) for s, im in enumerate(images)])
        for g in ("mild", "moderate", "severe")
    ]
    assert psnrs[0] > psnrs[1] > psnrs[2]


@pytest.mark.parametrize("group", ["A", "B", "C"])
def test_agenticir_published_ranges(group: str, images: list[np.ndarray]) -> None:
    seen = set()
    for seed in range(12):
        sc = synthesize(images[seed % 4], f"agenticir-{group}", seed)
        combo = tuple(p["kind"] for p in sc.params[0])
        assert combo in AGENTICIR_COMBOS[group]  # applied left to right as published
        seen.add(combo)
        for p in sc.params[0]:
            k = p["kind"]
            if k == "noise":
                assert 20 <= p["sigma"] <= 50
            elif k == "jpeg":
                assert 10 <= p["quality"] <= 29 and isinstance(p["quality"], int)
            elif k == "haze":
                assert 0.7 <= p["airlight"] <= 1.0 and 0.6 <= p["beta"] <= 1.8
            elif k == "motion":
                assert ((p["length"] - 1) / 2, p["sigma"]) in {(10, 3), (15, 5), (15, 8)}
                assert -90 <= p["angle"] <= 90
            elif k == "defocus":
                assert p["radius"] in (3, 4, 6)
            elif k == "rain":
                assert 20 <= p["length"] <= 39 and -30 <= p["angle"] <= 29
            elif k == "dark":
                assert p["peak"] is None
                shift, gamma, scale = p["shift"], p["gamma"], p["scale"]
                assert (30 <= shift <= 50) or (1 / 0.7 < gamma <= 2.0) or (100 / 255 <= scale <= 150 / 255)
    assert len(seen) >= 2


def test_spatial_mixed_structure(images: list[np.ndarray]) -> None:
    n_jpeg = 0
    for seed in range(16):
        img = images[seed % len(images)]
        sc = synthesize(img, "spatial-mixed", seed)
        assert 2 <= sc.num_regions <= 4
        assert sc.masks.mean(axis=(1, 2)).min() >= MIN_REGION_FRACTION
        kinds = [tuple(k for k, _ in lab) for lab in sc.labels]
        assert len(set(kinds)) == len(kinds)  # every region has its own combination
        has_jpeg = ["jpeg" in k for k in kinds]
        assert all(has_jpeg) or not any(has_jpeg)
        for k in kinds:
            body = [x for x in k if x != "jpeg"]
            assert 1 <= len(body) <= 3 and list(body) == sorted(body, key=PHYSICAL_ORDER.index)
            assert len({FAMILY_OF_KIND[x] for x in body}) == len(body)
            if "jpeg" in k:
                assert k[-1] == "jpeg"
        if any(has_jpeg):
            n_jpeg += 1
            # one whole-image JPEG: the same parameters in every region
            assert len({json.dumps(par[-1], sort_keys=True) for par in sc.params}) == 1
        else:
            for m in sc.masks:  # every region is degraded
                assert np.abs(sc.degraded[m] - img[m]).mean() > 0.003
    assert 3 <= n_jpeg <= 13


def test_jpeg_is_applied_last(images: list[np.ndarray]) -> None:
    # Re-encoding a JPEG-decoded image at its quality is nearly idempotent; anything applied after JPEG
    # (noise, blur, compositing of differently degraded regions) breaks that.
    checked = 0
    for seed in range(16):
        sc = synthesize(images[seed % 4], "spatial-mixed", seed)
        q = sc.params[0][-1]["quality"] if sc.labels[0][-1][0] == "jpeg" else 30
        again = apply_kind(sc.degraded, "jpeg", {"quality": q}, None)
        if sc.labels[0][-1][0] == "jpeg":
            assert psnr(again, sc.degraded) > 42
            checked += 1
        else:
            assert psnr(again, sc.degraded) < 38
    assert checked >= 3
    for seed in range(4):  # global recipes end with JPEG too: 8x8 block edges are visible
        sc = synthesize(images[seed], "global-severe", seed)
        q = sc.params[0][-1]["quality"]
        assert psnr(apply_kind(sc.degraded, "jpeg", {"quality": q}, None), sc.degraded) > 42
        g = sc.degraded.mean(axis=2)
        dx = np.abs(np.diff(g, axis=1))
        assert dx[:, 7::8].mean() > 1.2 * np.delete(dx, np.s_[7::8], axis=1).mean()


def test_mask_generators(images: list[np.ndarray]) -> None:
    img = images[0]
    rng = np.random.default_rng(0)
    for k in (2, 3, 4):
        for lm in (
            blob_partition(96, 80, k, rng),
            superpixel_partition(img, k, rng),
            depth_partition(np.linspace(0, 1, 96 * 96).reshape(96, 96), k, rng),
        ):
            masks = labels_to_masks(lm)
            assert 1 <= masks.shape[0] <= k and np.all(masks.sum(0) == 1)
    depth = np.tile(np.linspace(1, 0, 96)[:, None], (1, 96))
    lm = depth_partition(depth, 3, rng)
    means = [depth[lm == i].mean() for i in range(3)]
    assert means == sorted(means)  # label k-1 = farthest
    # merging: a 2 % sliver joins the neighbour it borders most
    lm = np.zeros((50, 50), int)
    lm[:, 25:] = 1
    lm[:1, :25] = 2
    merged = merge_small_regions(lm, 0.05)
    assert merged.max() == 1 and merged[0, 0] == merged[10, 0] != merged[10, 40]
    assert adjacency_counts(np.array([[0, 1], [0, 1]])) == {(0, 1): 2}


def test_errors(images: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="unknown recipe 'nope'.*spatial-mixed"):
        synthesize(images[0], "nope")
    with pytest.raises(ValueError, match="seed"):
        synthesize(images[0], "spatial-mixed", seed=-1)
    with pytest.raises(ValueError, match="seed"):
        synthesize(images[0], "spatial-mixed", seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        synthesize((images[0] * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="HxWx3"):
        synthesize(images[0][..., 0])


def test_public_names() -> None:
    import ir_env
    from ir_env import degradations

    assert degradations.synthesize is synthesize and degradations.Scene is Scene
    assert ir_env.synthesize is synthesize and ir_env.list_recipes() == list_recipes()
