"""Built-in restoration tools: contracts (every tool), restoration gains (per family), region application."""

from __future__ import annotations

import inspect
import re

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio as psnr

import restorers
from ir_env.degradations import FAMILY_OF_KIND, KINDS, degrade
from restorers import FAMILIES, Tool, apply, get_tool, list_tools

TOOLS = list_tools()
BUILTIN = [t for t in TOOLS if t.fn.__module__.startswith("restorers.tools.")]
IDS = [t.name for t in TOOLS]


def _rand(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def _photo_crop(h: int, w: int) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(
        data.chelsea()[60 : 60 + 2 * h : 2, 120 : 120 + 2 * w : 2].astype(np.float32) / 255.0
    )


# ----------------------------------------------------------------------------------------------------
# the toolbox as a whole
# ----------------------------------------------------------------------------------------------------


def test_builtin_toolbox_covers_all_families() -> None:
    assert len(BUILTIN) >= 16
    assert {t.family for t in BUILTIN} == set(FAMILIES)
    names = [t.name for t in BUILTIN]
    assert len(set(names)) == len(names)
    from restorers.tools import BUILTIN_TOOLS

    assert names == [t.name for t in BUILTIN_TOOLS]  # fixed registration order
    assert names[0] == "nlm_denoise" and names[-1] == "lime_enhance"
    covered = {k for t in BUILTIN for k in t.targets}
    assert covered == set(KINDS)


@pytest.mark.parametrize("tool", BUILTIN, ids=[t.name for t in BUILTIN])
def test_tool_declaration(tool: Tool) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9_]*", tool.name)
    assert tool.fn.__doc__ and len(tool.fn.__doc__) > 40
    assert tool.description
    assert 1 <= len(tool.params) <= 3
    assert tool.cost >= 1.0
    assert 0 <= tool.margin <= 64
    assert tool.targets and set(tool.targets) <= set(KINDS)
    assert tool.family in {FAMILY_OF_KIND[k] for k in tool.targets}
    sig = inspect.signature(tool.fn)
    for p in tool.params:
        assert p.description and p.low < p.high
        # the function's keyword default is the declared default
        assert sig.parameters[p.name].default == pytest.approx(p.default), p.name


@pytest.mark.parametrize("tool", TOOLS, ids=IDS)
def test_param_normalisation_round_trip(tool: Tool) -> None:
    assert tool.validate(tool.defaults()) == tool.defaults()
    lows = tool.to_physical(-np.ones(len(tool.params)))
    highs = tool.to_physical(np.ones(len(tool.params)))
    for p in tool.params:
        assert lows[p.name] == pytest.approx(p.low, rel=1e-12, abs=1e-12)
        assert highs[p.name] == pytest.approx(p.high, rel=1e-12, abs=1e-12)
        for v in np.linspace(p.low, p.high, 9).tolist() + [p.default]:
            theta = tool.to_normalised({p.name: v})[[q.name for q in tool.params].index(p.name)]
            assert -1.0 - 1e-12 <= theta <= 1.0 + 1e-12
            assert p.to_physical(theta) == pytest.approx(p.whole(v), rel=1e-9, abs=1e-12)
    theta = np.random.default_rng(3).uniform(-1, 1, len(tool.params))
    phys = tool.to_physical(theta)
    back = tool.to_normalised(phys)
    for i, p in enumerate(tool.params):
        if p.integer:  # the physical value is the whole number the tool runs with; it maps to itself
            assert phys[p.name] == round(phys[p.name]) and tool.to_physical(back)[p.name] == phys[p.name]
        else:
            assert back[i] == pytest.approx(theta[i], abs=1e-9)


@pytest.mark.parametrize("tool", TOOLS, ids=IDS)
def test_tool_output_contract(tool: Tool) -> None:
    """Shape, dtype, range, finiteness and determinism at the low / default / high parameter corners,
    on random and real crops of awkward sizes (down to 16x16)."""
    images = [_rand(16, 16), _rand(17, 23, seed=1), _photo_crop(40, 48), np.zeros((16, 24, 3), np.float32)]
    settings = [tool.defaults(), tool.to_physical(-np.ones(3)), tool.to_physical(np.ones(3))]
    for img in images:
        for params in settings:
            out = tool.fn(img.copy(), **params)
            assert isinstance(out, np.ndarray) and out.shape == img.shape and out.dtype == np.float32
            assert np.all(np.isfinite(out)), params
            assert out.min() >= 0.0 and out.max() <= 1.0
    img = _photo_crop(40, 48)
    before = img.copy()
    a = tool.fn(img, **tool.defaults())
    b = tool.fn(img, **tool.defaults())
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(img, before)  # pure: the input is not modified


# ----------------------------------------------------------------------------------------------------
# restoration gains: degrade a 128 px photo crop, restore with the family's tools at sensible parameters
# ----------------------------------------------------------------------------------------------------


def _case_params(tool: str, p: dict) -> dict[str, float]:
    """Sensible physical parameters for ``tool`` given the degradation's true parameters ``p``."""
    return {
        "wavelet_denoise": lambda: {"sigma": p["sigma"]},
        "tv_denoise": lambda: {"weight": p["sigma"] / 255.0},
        "bilateral_denoise": lambda: {"sigma_color": 2 * p["sigma"], "sigma_space": 1.5},
        "nlm_denoise": lambda: {"h": 0.8 * p["sigma"], "h_color": 0.8 * p["sigma"]},
        "rl_defocus": lambda: {"radius": p["radius"], "iterations": 25},
        "wiener_defocus": lambda: {"radius": p["radius"], "balance": 0.01},
        "unsharp_mask": lambda: {"radius": 2.0, "amount": 0.7},
        "rl_motion": lambda: {"length": p["length"], "angle": p["angle"], "iterations": 20},
        "wiener_motion": lambda: {"length": p["length"], "angle": p["angle"], "balance": 0.03},
        "jpeg_reapply": lambda: {"quality": p["quality"] + 5},
        "jpeg_deblock": lambda: {"strength": 1.0, "threshold": 60.0},
        "jpeg_ycc_smooth": lambda: {"luma_sigma": 15.0, "chroma_sigma": 1.5},
        "dcp_dehaze": lambda: {"omega": 0.9, "t0": 0.1, "radius": 5},
        "airlight_dehaze": lambda: {"transmission": 0.75, "airlight": p["airlight"]},
        "rain_streak_removal": lambda: {"angle": p["angle"], "length": 0.4 * p["length"], "threshold": 0.05},
        "rain_median_removal": lambda: {"radius": 2, "threshold": 0.08},
        "gamma_correct": lambda: {"gamma": p["gamma"], "gain": 1.0 / p["scale"]},
        "lime_enhance": lambda: {"gamma": 0.5, "radius": 8},
        "msr_retinex": lambda: {"sigma": 100.0, "strength": 0.5},
        "clahe": lambda: {"clip_limit": 2.0, "tiles": 4},
    }[tool]()


# (kind, severity, tool, minimum PSNR gain in dB); the family's best tool first. Gains are measured on
# the conftest photo; the minimum is set well below the measured gain (printed with -s).
GAIN_CASES = [
    ("noise", 0.5, "wavelet_denoise", 3.0),
    ("noise", 0.5, "tv_denoise", 2.0),
    ("noise", 0.5, "nlm_denoise", 1.0),
    ("noise", 0.5, "bilateral_denoise", 1.0),
    ("defocus", 0.5, "rl_defocus", 1.5),
    ("defocus", 0.5, "wiener_defocus", 1.0),
    ("defocus", 0.5, "unsharp_mask", 0.3),
    ("motion", 0.5, "rl_motion", 1.5),
    ("motion", 0.5, "wiener_motion", 0.5),
    ("jpeg", 0.8, "jpeg_reapply", 0.1),
    ("jpeg", 0.8, "jpeg_deblock", 0.05),
    ("jpeg", 0.8, "jpeg_ycc_smooth", 0.1),
    ("haze", 0.5, "dcp_dehaze", 3.0),
    ("haze", 0.5, "airlight_dehaze", 1.0),
    ("rain", 0.5, "rain_streak_removal", 1.5),
    ("rain", 0.5, "rain_median_removal", 0.5),
    ("dark", 0.5, "gamma_correct", 8.0),
    ("dark", 0.5, "lime_enhance", 4.0),
    ("dark", 0.5, "msr_retinex", 3.0),
    ("dark", 0.5, "clahe", 2.0),
]


@pytest.mark.parametrize(
    ("kind", "severity", "tool", "min_gain"), GAIN_CASES, ids=[f"{c[0]}-{c[2]}" for c in GAIN_CASES]
)
def test_tool_restores_its_degradation(
    photo: np.ndarray, kind: str, severity: float, tool: str, min_gain: float, record_property
) -> None:
    clean = photo
    degraded, p = degrade(clean, kind, severity, np.random.default_rng(7))
    t = get_tool(tool)
    assert kind in t.targets
    params = t.validate(_case_params(tool, p))
    restored = apply(degraded, t, params)
    before = psnr(clean, degraded, data_range=1.0)
    after = psnr(clean, restored, data_range=1.0)
    gain = after - before
    print(f"{kind:8s} {tool:20s} PSNR {before:6.2f} -> {after:6.2f} dB (gain {gain:+.2f})")
    record_property(f"psnr_gain_{kind}_{tool}", round(float(gain), 3))
    assert gain > min_gain


@pytest.mark.slow
def test_bm3d_restores_noise(photo: np.ndarray, record_property) -> None:
    degraded, p = degrade(photo, "noise", 0.5, np.random.default_rng(7))
    restored = apply(degraded, "bm3d_denoise", {"sigma": p["sigma"]})
    gain = psnr(photo, restored, data_range=1.0) - psnr(photo, degraded, data_range=1.0)
    wavelet = apply(degraded, "wavelet_denoise", {"sigma": p["sigma"]})
    print(f"bm3d gain {gain:+.2f} dB")
    record_property("psnr_gain_noise_bm3d_denoise", round(float(gain), 3))
    assert gain > 4.0
    assert psnr(photo, restored, data_range=1.0) > psnr(photo, wavelet, data_range=1.0)


def test_wrong_tool_parameters_restore_less(photo: np.ndarray) -> None:
    """Parameters matter: the motion tool at the wrong angle and the rain tool at the wrong angle do
    worse than at the true one (so a planner has something to learn)."""
    degraded, p = degrade(photo, "motion", 0.5, np.random.default_rng(7))
    good = apply(degraded, "rl_motion", {"length": p["length"], "angle": p["angle"], "iterations": 20})
    wrong = ((p["angle"] + 90 + 90) % 180) - 90
    bad = apply(degraded, "rl_motion", {"length": p["length"], "angle": wrong, "iterations": 20})
    assert psnr(photo, good, data_range=1) > psnr(photo, bad, data_range=1) + 1.0
    degraded, p = degrade(photo, "rain", 0.5, np.random.default_rng(7))
    good = apply(degraded, "rain_streak_removal", {"angle": p["angle"], "length": 0.4 * p["length"]})
    bad = apply(
        degraded,
        "rain_streak_removal",
        {"angle": -40.0 if p["angle"] > 0 else 40.0, "length": 0.4 * p["length"]},
    )
    assert psnr(photo, good, data_range=1) > psnr(photo, bad, data_range=1) + 0.5


def test_jpeg_deblock_grid_is_anchored_at_origin() -> None:
    """Flat 8-px-wide stripes with small steps (a block pattern varying along x only) are smoothed only
    next to the columns at multiples of 8, and the steps shrink."""
    levels = np.random.default_rng(0).uniform(0.4, 0.45, 6).astype(np.float32)
    row = np.repeat(levels, 8)
    img = np.ascontiguousarray(np.broadcast_to(row[None, :, None], (48, 48, 3)), dtype=np.float32)
    out = get_tool("jpeg_deblock").fn(img, strength=1.0, threshold=40.0)
    changed_cols = np.flatnonzero(np.abs(out - img).max(axis=(0, 2)) > 1e-5)
    assert changed_cols.size > 0
    assert set((changed_cols % 8).tolist()) <= {6, 7, 0, 1}
    step_before = np.abs(np.diff(img[..., 0], axis=1))[:, 7::8].mean()
    step_after = np.abs(np.diff(out[..., 0], axis=1))[:, 7::8].mean()
    assert step_after < 0.5 * step_before


# ----------------------------------------------------------------------------------------------------
# restorers.apply with masks
# ----------------------------------------------------------------------------------------------------


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) of every pixel to the nearest True pixel of ``mask``."""
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)


@pytest.mark.parametrize("tool", TOOLS, ids=IDS)
def test_apply_mask_leaves_far_pixels_identical(tool: Tool) -> None:
    img = np.clip(_photo_crop(96, 112) + _rand(96, 112, seed=2) * 0.1 - 0.05, 0, 1).astype(np.float32)
    mask = np.zeros(img.shape[:2], bool)
    cv2.circle(mask.view(np.uint8), (40, 44), 14, 1, -1)
    out = apply(img, tool, tool.defaults(), mask=mask)
    assert out.shape == img.shape and out.dtype == np.float32
    # region.apply pads by at least ceil(3 * FEATHER_SIGMA) + 2 px whatever the tool's margin (pointwise
    # tools declare 0), so "far" starts 10 px beyond the effective pad
    pad = max(tool.margin, int(np.ceil(3 * restorers.region.FEATHER_SIGMA)) + 2)
    far = _distance_to(mask) > pad + 10
    assert far.sum() > 1000
    np.testing.assert_array_equal(out[far], img[far])


@pytest.mark.parametrize("tool", [t for t in TOOLS if t.name != "bm3d_denoise"], ids=lambda t: t.name)
def test_apply_quarter_region_changes_only_near_it(tool: Tool) -> None:
    img = np.clip(_photo_crop(96, 96) * 0.8 + _rand(96, 96, seed=4) * 0.15, 0, 1).astype(np.float32)
    mask = np.zeros(img.shape[:2], bool)
    mask[24:72, 24:72] = True  # 25 % of the area, centred
    full = apply(img, tool, tool.defaults())
    out = apply(img, tool, tool.defaults(), mask=mask)
    changed = np.abs(out - img).max(axis=2) > 0
    # the feather (a separable Gaussian of FEATHER_SIGMA px) reaches at most ~4 sigma, in chessboard distance
    reach = int(4 * restorers.region.FEATHER_SIGMA) + 1
    near = cv2.dilate(mask.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0
    assert not np.any(changed & ~near)
    if np.any(np.abs(full - img)[mask] > 1e-3):  # the tool does something here: so must the region call
        assert np.any(changed & mask)


# Tools whose output at a pixel depends only on a neighbourhood within their declared margin.
LOCAL_TOOLS = [
    "nlm_denoise", "bilateral_denoise", "tv_denoise", "wiener_gaussian", "wiener_defocus", "rl_defocus",
    "rl_motion", "unsharp_mask", "jpeg_deblock", "jpeg_ycc_smooth", "airlight_dehaze",
    "rain_streak_removal", "rain_median_removal", "gamma_correct", "lime_enhance",
]  # fmt: skip


@pytest.mark.parametrize("name", LOCAL_TOOLS)
def test_apply_region_matches_full_image_inside(photo: np.ndarray, name: str) -> None:
    """For a local tool, deep inside the region (feather weight 1) the masked call agrees with the
    full-image call: the declared margin gives the tool enough context."""
    t = get_tool(name)
    degraded, _ = degrade(photo, t.targets[0], 0.5, np.random.default_rng(1))
    mask = np.zeros(photo.shape[:2], bool)
    mask[32:96, 40:104] = True
    full = apply(degraded, t)
    part = apply(degraded, t, mask=mask)
    inner = _distance_to(~mask) > 10
    agreement = (
        psnr(full[inner], part[inner], data_range=1.0) if np.any(full[inner] != part[inner]) else np.inf
    )
    assert agreement > 60.0, f"{name}: masked vs full-image PSNR {agreement:.1f} dB inside the region"


def test_apply_empty_mask_returns_unchanged_copy(photo: np.ndarray) -> None:
    for name in ("nlm_denoise", "dcp_dehaze"):
        out = apply(photo, name, None, mask=np.zeros(photo.shape[:2], bool))
        assert out is not photo
        np.testing.assert_array_equal(out, photo)


def test_apply_normalised_params(photo: np.ndarray) -> None:
    t = get_tool("wiener_motion")
    theta = np.array([0.2, -0.5, 0.1])
    np.testing.assert_array_equal(apply(photo, t, theta), apply(photo, t, t.to_physical(theta)))


def test_apply_bad_input_errors(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="nlm_denoize"):
        apply(photo, "nlm_denoize")
    with pytest.raises(ValueError, match="'sigma'.*outside"):
        apply(photo, "wavelet_denoise", {"sigma": 500.0})
    with pytest.raises(ValueError, match="'omega'.*nan"):
        apply(photo, "dcp_dehaze", {"omega": float("nan")})
    with pytest.raises(ValueError, match="NaN"):
        apply(photo, "dcp_dehaze", np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        apply(photo, "dcp_dehaze", np.array([2.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="unknown parameter"):
        apply(photo, "clahe", {"clip": 2.0})
    with pytest.raises(ValueError, match="shape HxWx3"):
        apply(photo[..., 0], "clahe")
    with pytest.raises(ValueError, match="shape HxWx3"):
        apply(np.dstack([photo, photo[..., :1]]), "clahe")
    nan_img = photo.copy()
    nan_img[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        apply(nan_img, "clahe")
    with pytest.raises(ValueError, match="uint8"):
        apply((photo * 255).astype(np.uint8), "clahe")


def test_bench_tools_script_smoke(tmp_path) -> None:
    """experiments/bench_tools.py runs end to end on a tiny setting and writes the documented JSON keys."""
    import json

    from experiments import bench_tools

    out = tmp_path / "bench.json"
    rc = bench_tools.main(
        ["--sizes", "32", "48", "--repeats", "1", "--tools", "gamma_correct", "clahe", "--json", str(out)]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["sizes"] == [32, 48] and set(data["tools"]) == {"gamma_correct", "clahe"}
    for entry in data["tools"].values():
        assert set(entry["ms"]) == {"32", "48"} and all(v > 0 for v in entry["ms"].values())
        assert all(0 < f <= 1 for f in entry["crop_fraction"].values())
    assert data["ratio_median"] > 0
    assert bench_tools.main(["--tools", "no_such_tool", "--json", str(out)]) == 2


@pytest.mark.parametrize("tool", ["wiener_gaussian", "wiener_defocus", "wiener_motion"])
@pytest.mark.parametrize("theta", [-1.0, 0.0, 1.0])
def test_wiener_keeps_the_mean_brightness(tool: str, theta: float) -> None:
    # the filter's zero-frequency gain was 1 / (1 + balance): balance 1 halved a flat image
    flat = np.full((48, 40, 3), 0.6, np.float32)
    t = get_tool(tool)
    out = apply(flat, tool, t.to_physical(np.full(len(t.param_names), theta)))
    assert abs(float(out.mean()) - 0.6) < 2e-3


@pytest.mark.parametrize("balance", [0.01, 0.1, 0.3])
def test_wiener_defocus_helps_at_a_high_balance_too(photo: np.ndarray, balance: float) -> None:
    from ir_env.degradations import apply_kind

    blurred = apply_kind(photo, "defocus", {"radius": 3.0}, None)
    out = apply(blurred, "wiener_defocus", {"radius": 3.0, "balance": balance})
    assert psnr(photo, out, data_range=1.0) > psnr(photo, blurred, data_range=1.0) + 0.2


def test_msr_retinex_on_a_flat_crop_goes_mid_grey_without_blowing_up_noise() -> None:
    flat = np.full((32, 32, 3), 0.2, np.float32)
    assert apply(flat, "msr_retinex", {"sigma": 60.0, "strength": 1.0}).mean() == pytest.approx(0.5, abs=0.01)
    noisy = flat + 0.0005 * np.random.default_rng(0).standard_normal(flat.shape).astype(np.float32)
    assert apply(noisy, "msr_retinex", {"sigma": 60.0, "strength": 1.0}).std() < 0.1  # was stretched to [0, 1]


def test_tool_functions_called_directly_refuse_uint8_images() -> None:
    from restorers.tools.dark import gamma_correct
    from restorers.tools.haze import airlight_dehaze

    u8 = np.full((16, 16, 3), 100, np.uint8)
    for fn in (gamma_correct, airlight_dehaze):  # both returned an all-white image
        with pytest.raises(ValueError, match="divide uint8 images by 255"):
            fn(u8)
    assert inspect.signature(gamma_correct).parameters["gamma"].default == 1.6  # the wrapper keeps the signature


def test_bm3d_sigma_is_the_rgb_noise_sigma(photo: np.ndarray) -> None:
    """bm3d_denoise's sigma means what wavelet_denoise's does (each RGB channel's noise sigma): the true sigma
    beats two-thirds and one and a half of it (it was run on luma as is, so two-thirds won by 1.4 dB)."""
    from ir_env.corpus import center_crop
    from ir_env.degradations import apply_kind

    clean = center_crop(photo, 64)
    noisy = apply_kind(clean, "noise", {"sigma": 25.0}, np.random.default_rng(3))
    gains = {f: psnr(clean, apply(noisy, "bm3d_denoise", {"sigma": 25.0 * f}), data_range=1.0) for f in (0.67, 1, 1.5)}
    assert gains[1] > max(gains[0.67], gains[1.5]), gains
