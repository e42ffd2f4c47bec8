"""Degradation kinds: parameter mapping, application, kernels, depth proxy, ladder names."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ir_env.corpus import center_crop, load_named_corpus, resize_short
from ir_env.degradations import (
    FAMILY_OF_KIND,
    KINDS,
    LADDER_SEVERITY,
    PHYSICAL_ORDER,
    apply_kind,
    degrade,
    depth_proxy,
    disk_kernel,
    motion_effective_length,
    motion_kernel,
    params_to_severity,
    physical_sort,
    severity_level,
    severity_to_params,
    vertical_depth,
)
from restorers.spec import FAMILIES


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Four 96 px crops of built-in photos."""
    return [center_crop(resize_short(img, 128), 96) for _, img in load_named_corpus("builtin", "train")[:4]]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12)))


def test_kinds_and_families() -> None:
    assert KINDS == ("noise", "defocus", "motion", "jpeg", "haze", "rain", "dark")
    assert set(FAMILY_OF_KIND) == set(KINDS)
    assert FAMILY_OF_KIND["defocus"] == FAMILY_OF_KIND["motion"] == "blur"
    assert set(FAMILY_OF_KIND.values()) <= set(FAMILIES)
    assert sorted(PHYSICAL_ORDER) == sorted(KINDS)
    assert physical_sort(["jpeg", "noise", "haze", "defocus"]) == ["haze", "defocus", "noise", "jpeg"]


def test_severity_endpoints() -> None:
    rng = np.random.default_rng(0)
    lo = {k: severity_to_params(k, 0.0, rng) for k in KINDS}
    hi = {k: severity_to_params(k, 1.0, rng) for k in KINDS}
    assert (lo["noise"]["sigma"], hi["noise"]["sigma"]) == (5.0, 50.0)
    assert (lo["defocus"]["radius"], hi["defocus"]["radius"]) == (1.0, 6.0)
    assert (lo["motion"]["length"], hi["motion"]["length"]) == (5.0, 25.0)
    assert (lo["jpeg"]["quality"], hi["jpeg"]["quality"]) == (70, 10)
    assert lo["haze"]["beta"] == pytest.approx(0.4) and hi["haze"]["beta"] == pytest.approx(1.8)
    assert lo["rain"]["density"] < hi["rain"]["density"]
    assert lo["dark"]["gamma"] < hi["dark"]["gamma"] and lo["dark"]["scale"] > hi["dark"]["scale"]
    for _ in range(50):
        p = severity_to_params("rain", float(rng.uniform()), rng)
        assert 10 <= p["length"] <= 39 and -30 <= p["angle"] <= 30
        h = severity_to_params("haze", float(rng.uniform()), rng)
        assert 0.7 <= h["airlight"] <= 1.0
        m = severity_to_params("motion", float(rng.uniform()), rng)
        assert -90 <= m["angle"] <= 90
    for k in KINDS:  # JSON-friendly, with kind and severity
        assert json.loads(json.dumps(hi[k]))["kind"] == k and hi[k]["severity"] == 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_params_to_severity_inverts(kind: str) -> None:
    rng = np.random.default_rng(1)
    for s in np.linspace(0, 1, 9):
        p = severity_to_params(kind, float(s), rng)
        tol = 1 / 120 + 1e-9 if kind == "jpeg" else 2e-3  # quality is rounded to an integer
        assert params_to_severity(kind, p) == pytest.approx(float(s), abs=tol)


@pytest.mark.parametrize("kind", KINDS)
def test_degrade_contract_and_reduces_psnr(kind: str, images: list[np.ndarray]) -> None:
    img = images[0]
    out, params = degrade(img, kind, 0.5, np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == img.shape
    assert out.min() >= 0 and out.max() <= 1
    assert params["kind"] == kind and params["severity"] == 0.5
    assert psnr(out, img) < 33.0
    again, params2 = degrade(img, kind, 0.5, np.random.default_rng(0))
    assert np.array_equal(out, again) and params == params2
    other, _ = degrade(img, kind, 0.5, np.random.default_rng(1))
    if kind in ("noise", "rain", "dark", "motion", "haze"):  # these draw random values
        assert not np.array_equal(out, other)


@pytest.mark.parametrize("kind", ["noise", "defocus", "jpeg", "motion", "haze", "dark", "rain"])
def test_psnr_decreases_with_severity(kind: str, images: list[np.ndarray]) -> None:
    means = []
    for s in (0.0, 0.5, 1.0):
        vals = [psnr(degrade(im, kind, s, np.random.default_rng(i))[0], im) for i, im in enumerate(images)]
        means.append(np.mean(vals))
    assert means[0] > means[1] > means[2], means


def test_apply_kind_specifics(images: list[np.ndarray]) -> None:
    img = images[1]
    # zero-strength parameters leave the image unchanged
    assert np.array_equal(apply_kind(img, "defocus", {"radius": 0.0}, None), img)
    assert np.array_equal(apply_kind(img, "haze", {"beta": 0.0, "airlight": 0.9}, None), img)
    # haze follows I = J t + A (1 - t): depth 0 = untouched, large depth tends to the airlight
    d = np.zeros(img.shape[:2], np.float32)
    d[:48] = 1.0
    hz = apply_kind(img, "haze", {"beta": 1.0, "airlight": 0.9}, None, depth=d)
    assert np.array_equal(hz[48:], img[48:])
    t = math.exp(-1.0)
    assert np.allclose(hz[:48], img[:48] * t + 0.9 * (1 - t), atol=1e-5)
    # dark without sensor noise scales RGB by V'/V: hue/saturation (channel ratios) kept, darker
    dk = apply_kind(
        img, "dark", {"gamma": 1.5, "scale": 0.6, "shift": 0.0, "peak": None, "read_sigma": 0.0}, None
    )
    v, v2 = img.max(2), dk.max(2)
    assert np.allclose(v2, 0.6 * v**1.5, atol=1e-5)
    sel = v > 0.2
    assert np.allclose(dk[sel] / v2[sel, None], img[sel] / v[sel, None], atol=1e-3)
    # rain only adds light; noise is zero-mean
    rn = apply_kind(
        img,
        "rain",
        {"density": 0.01, "length": 20, "angle": 10.0, "intensity": 0.7},
        np.random.default_rng(0),
    )
    assert np.all(rn >= img - 1e-6) and (rn > img + 0.05).mean() > 0.02
    grey = np.full((64, 64, 3), 0.5, np.float32)
    nz = apply_kind(grey, "noise", {"sigma": 20.0}, np.random.default_rng(0))
    assert abs(float(nz.mean()) - 0.5) < 0.005 and float(nz.std()) * 255 == pytest.approx(20.0, rel=0.05)
    # JPEG is deterministic and re-encoding at the same quality changes almost nothing
    j1 = apply_kind(img, "jpeg", {"quality": 20}, None)
    assert np.array_equal(j1, apply_kind(img, "jpeg", {"quality": 20}, None))
    assert psnr(apply_kind(j1, "jpeg", {"quality": 20}, None), j1) > 40


def test_kernels() -> None:
    k = disk_kernel(3.0)
    assert k.sum() == pytest.approx(1.0, abs=1e-5) and np.allclose(k, k.T) and np.allclose(k, k[::-1])
    assert k.shape == (9, 9) and k[4, 4] > 0 and k[0, 0] == 0
    for angle in (0.0, 37.0, 90.0):
        m = motion_kernel(15, angle)
        assert m.sum() == pytest.approx(1.0, abs=1e-5)
        yy, xx = np.mgrid[: m.shape[0], : m.shape[1]]
        c = (m.shape[0] - 1) / 2
        assert float((m * yy).sum()) == pytest.approx(c, abs=1e-3)  # centred: no image shift
        assert float((m * xx).sum()) == pytest.approx(c, abs=1e-3)
    horiz = motion_kernel(15, 0.0)
    assert horiz.sum(axis=1).max() > 0.95  # all weight on the centre row(s)
    assert motion_kernel(15, 90.0).sum(axis=0).max() > 0.95
    # ImageMagick-style (radius 15, sigma 8): 31 px one-sided Gaussian, spread ~ sqrt(12) * 0.6 * sigma
    assert motion_effective_length(25.0) == pytest.approx(25.0, rel=1e-3)
    assert motion_effective_length(31.0, 8.0) == pytest.approx(math.sqrt(12) * 0.603 * 8, rel=0.03)


def test_severity_levels() -> None:
    assert severity_level("noise", None) == "very low"
    assert severity_level("noise", 1.0) == "very high"
    assert severity_level("noise", params_to_severity("noise", {"sigma": 15.0})) == "medium"
    assert severity_level("defocus", 0.0) == "very low"  # radius 1 px, below the published "low" (2 px)
    assert severity_level("defocus", 0.4) == "medium"  # radius 3 px
    assert severity_level("jpeg", params_to_severity("jpeg", {"quality": 20})) == "high"
    assert severity_level("jpeg", params_to_severity("jpeg", {"quality": 70})) == "very low"
    assert severity_level("rain", 0.1) == "low" and severity_level("dark", 0.9) == "very high"
    for k in KINDS:
        assert list(LADDER_SEVERITY[k]) == sorted(LADDER_SEVERITY[k])


def test_depth_proxy(images: list[np.ndarray]) -> None:
    img = images[2]
    d = depth_proxy(img, np.random.default_rng(3))
    assert d.dtype == np.float32 and d.shape == img.shape[:2]
    assert d.min() == pytest.approx(0.0, abs=1e-6) and d.max() == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(d, depth_proxy(img, np.random.default_rng(3)))
    tops = [depth_proxy(img, np.random.default_rng(s)) for s in range(8)]
    assert all(t[:24].mean() > t[-24:].mean() for t in tops)  # far at the top
    v = vertical_depth(10, 4)
    assert v[0, 0] == 1.0 and v[-1, 3] == 0.0


def test_errors(images: list[np.ndarray]) -> None:
    img = images[0]
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown degradation kind 'blurry'.*noise"):
        degrade(img, "blurry", 0.5, rng)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        degrade(img, "noise", 1.5, rng)
    with pytest.raises(ValueError, match="severity"):
        severity_to_params("noise", float("nan"), rng)
    with pytest.raises(ValueError, match="miss.*sigma"):
        apply_kind(img, "noise", {}, rng)
    with pytest.raises(ValueError, match="quality"):
        apply_kind(img, "jpeg", {"quality": 0}, rng)
    with pytest.raises(ValueError, match="quality"):
        apply_kind(img, "jpeg", {"quality": 20.5}, rng)
    with pytest.raises(ValueError, match="not 'noise'"):
        apply_kind(img, "noise", {"kind": "jpeg", "sigma": 3.0}, rng)
    with pytest.raises(ValueError, match="depth must have shape"):
        apply_kind(img, "haze", {"beta": 1.0, "airlight": 0.8}, rng, depth=np.zeros((5, 5)))
    with pytest.raises(ValueError, match="Generator"):
        apply_kind(img, "noise", {"sigma": 5.0}, None)
    with pytest.raises(ValueError, match="uint8"):
        degrade((img * 255).astype(np.uint8), "noise", 0.5, rng)
    with pytest.raises(ValueError, match="finite"):
        apply_kind(img, "defocus", {"radius": float("nan")}, rng)


@pytest.mark.parametrize("kind", ["motion", "haze", "rain", "noise", "dark"])
def test_kinds_that_draw_random_numbers_refuse_a_missing_generator(kind: str) -> None:
    img = np.full((32, 32, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match=f"{kind} needs a numpy.random.Generator, got NoneType"):
        degrade(img, kind, 0.5, None)


def test_a_tiny_motion_sigma_is_a_sharp_point_not_nan() -> None:
    from ir_env.degradations import apply_kind

    img = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    out = apply_kind(img, "motion", {"length": 21, "angle": 0, "sigma": 1e-3}, None)
    assert np.allclose(out, img, atol=1e-5)  # all weight at the streak's start: no blur
    assert 0.0 <= params_to_severity("motion", {"length": 21, "angle": 0, "sigma": 1e-3}) <= 1.0


def test_haze_depth_outside_unit_range_is_refused() -> None:
    from ir_env.degradations import apply_kind

    img = np.full((16, 16, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"depth must lie in \[0, 1\]"):
        apply_kind(img, "haze", {"beta": 1.0, "airlight": 0.9}, None, depth=np.full((16, 16), -50.0))


def test_dark_refuses_infinite_photon_peak_and_read_noise() -> None:
    """peak=inf reached numpy's 'lam value too large'; read_sigma=inf returned a saturated image."""
    img = np.full((16, 16, 3), 0.5, np.float32)
    for extra, message in (({"peak": float("inf")}, "dark: peak must be None or a number of photons"),
                           ({"peak": float("nan")}, "dark: peak must be None"),
                           ({"read_sigma": float("inf")}, "dark: read_sigma must be a finite number")):
        with pytest.raises(ValueError, match=message):
            apply_kind(img, "dark", {"gamma": 1.5, "scale": 0.5, **extra}, np.random.default_rng(0))
