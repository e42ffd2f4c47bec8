"""Region embeddings: interface, shapes, finiteness on edge cases, locality of pooling, monotone responses."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ir_env import embeddings
from ir_env.embeddings import FEATURES, HandcraftedEmbedder, RegionEmbedder, list_embedders, make_embedder


@pytest.fixture(scope="module")
def emb() -> RegionEmbedder:
    return make_embedder("handcrafted")


def _grid_masks(h: int, w: int, n: int = 2) -> np.ndarray:
    masks = np.zeros((n * n, h, w), bool)
    for i in range(n):
        for j in range(n):
            masks[i * n + j, i * h // n:(i + 1) * h // n, j * w // n:(j + 1) * w // n] = True
    return masks


def _full(h: int, w: int) -> np.ndarray:
    return np.ones((1, h, w), bool)


def _feat(emb: RegionEmbedder, img: np.ndarray, name: str, masks: np.ndarray | None = None) -> float:
    masks = _full(*img.shape[:2]) if masks is None else masks
    return float(emb.embed(img, masks)[0, emb.feature_names.index(name)])


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    u8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, q])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0


# ---------------------------------------------------------------------------------------------- interface


def test_factory_and_registry():
    assert "handcrafted" in list_embedders()
    e = make_embedder()
    assert isinstance(e, RegionEmbedder) and isinstance(e, HandcraftedEmbedder)
    assert e.name == "handcrafted"
    assert e.dim == len(e.feature_names) == len(FEATURES)
    assert 24 <= e.dim <= 40
    assert len(set(e.feature_names)) == e.dim
    with pytest.raises(ValueError, match="unknown embedder"):
        make_embedder("no-such-embedder")
    with pytest.raises(ValueError, match="clip"):
        make_embedder("handcrafted", clip=-1.0)


def test_every_feature_documented_in_module_docstring():
    doc = embeddings.__doc__
    for f in FEATURES:
        assert f"``{f.name}``" in doc, f.name
        assert f.scale > 0


def test_register_custom_embedder():
    class Const(RegionEmbedder):
        name = "const-test"
        dim = 2
        feature_names = ["a", "b"]

        def embed(self, image, masks):
            return np.ones((masks.shape[0], 2), np.float32)

    embeddings.register_embedder("const-test", Const, overwrite=True)
    try:
        assert "const-test" in list_embedders()
        e = make_embedder("const-test")
        assert e(np.zeros((8, 8, 3), np.float32), np.ones((3, 8, 8), bool)).shape == (3, 2)
        with pytest.raises(ValueError, match="already registered"):
            embeddings.register_embedder("const-test", Const)
    finally:
        embeddings._EMBEDDERS.pop("const-test", None)


# ---------------------------------------------------------------------------------------------- shapes


def test_shape_dtype_and_bounds(emb, photo):
    masks = _grid_masks(*photo.shape[:2], n=3)
    out = emb.embed(photo, masks)
    assert out.shape == (9, emb.dim) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert np.all(np.abs(out) <= emb.clip)
    assert emb.embed(photo, masks[:0]).shape == (0, emb.dim)


def test_deterministic(emb, photo):
    masks = _grid_masks(*photo.shape[:2])
    a = emb.embed(photo, masks)
    b = make_embedder().embed(photo.copy(), masks.copy())
    np.testing.assert_array_equal(a, b)


def test_rows_independent_of_other_masks(emb, photo):
    masks = _grid_masks(*photo.shape[:2])
    all_rows = emb.embed(photo, masks)
    for k in range(masks.shape[0]):
        np.testing.assert_allclose(emb.embed(photo, masks[k:k + 1])[0], all_rows[k], rtol=1e-5, atol=1e-5)


def test_empty_mask_gives_zero_row(emb, photo):
    masks = _grid_masks(*photo.shape[:2])
    masks[1] = False
    out = emb.embed(photo, masks)
    np.testing.assert_array_equal(out[1], 0.0)
    assert np.any(out[0] != 0)


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5])
def test_constant_images_are_finite(emb, value):
    img = np.full((40, 40, 3), value, np.float32)
    masks = np.concatenate([_grid_masks(40, 40), _full(40, 40)])
    out = emb.embed(img, masks)
    assert np.all(np.isfinite(out))
    name = emb.feature_names
    assert out[0, name.index("noise_sigma")] == 0.0
    assert out[0, name.index("luma_mean")] == pytest.approx(value, abs=1e-6)


def test_tiny_regions_are_finite(emb, photo):
    h, w = photo.shape[:2]
    masks = np.zeros((4, h, w), bool)
    masks[0, 5, 7] = True  # one pixel
    masks[1, 0, 0] = True  # one corner pixel
    masks[2, h - 1, w - 3:] = True  # a 1x3 strip at the border
    masks[3, 60:63, 60:63] = True  # 3x3
    out = emb.embed(photo, masks)
    assert np.all(np.isfinite(out)) and not np.any(np.all(out == 0, axis=1))
    names = emb.feature_names
    assert out[0, names.index("area")] == pytest.approx(1.0 / (h * w), abs=1e-6)
    assert out[0, names.index("centroid_y")] == pytest.approx(5 / (h - 1), abs=1e-6)
    assert out[0, names.index("centroid_x")] == pytest.approx(7 / (w - 1), abs=1e-6)
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 0.5, photo.shape), 0, 1).astype(np.float32)
    assert np.all(np.isfinite(emb.embed(noisy, masks)))


def test_geometry_features(emb):
    img = np.full((50, 100, 3), 0.3, np.float32)
    mask = np.zeros((1, 50, 100), bool)
    mask[0, 10:20, 30:70] = True
    row = dict(zip(emb.feature_names, emb.embed(img, mask)[0], strict=True))
    assert row["area"] == pytest.approx(400 / 5000, abs=1e-6)
    assert row["bbox_h"] == pytest.approx(10 / 50, abs=1e-6)
    assert row["bbox_w"] == pytest.approx(40 / 100, abs=1e-6)
    assert row["centroid_y"] == pytest.approx(14.5 / 49, abs=1e-6)
    assert row["centroid_x"] == pytest.approx(49.5 / 99, abs=1e-6)


def test_pooling_respects_masks(emb, photo):
    h, w = photo.shape[:2]
    mask = np.zeros((1, h, w), bool)
    mask[0, 10:50, 10:50] = True
    before = emb.embed(photo, mask)
    changed = photo.copy()
    changed[70:, :] = np.random.default_rng(1).random((h - 70, w, 3), dtype=np.float32)  # >= 20 px away
    changed[:, 70:] = 1.0
    after = emb.embed(changed, mask)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5)
    # a change inside the region does change it
    inside = photo.copy()
    inside[20:40, 20:40] = 0.0
    assert np.abs(emb.embed(inside, mask) - before).max() > 0.1


# ------------------------------------------------------------------------------------------ monotone sanity


def test_noise_feature_increases_with_sigma(emb, photo):
    rng = np.random.default_rng(0)
    base = rng.standard_normal(photo.shape).astype(np.float32)
    vals, chroma = [], []
    for sigma in (0, 10, 25, 50):
        img = np.clip(photo + base * sigma / 255.0, 0, 1).astype(np.float32)
        vals.append(_feat(emb, img, "noise_sigma"))
        chroma.append(_feat(emb, img, "noise_sigma_chroma"))
    assert all(b > a for a, b in zip(vals, vals[1:], strict=False)), vals
    assert all(b > a for a, b in zip(chroma, chroma[1:], strict=False)), chroma
    # 0-255 units / 25: luma noise is 0.67 sigma for i.i.d. channels (25 -> 16.7); chroma reads about sigma
    assert 0.5 < vals[2] < 0.9, vals
    assert 0.8 < chroma[2] < 1.2, chroma


def test_blur_features_respond_to_gaussian_blur(emb, photo):
    sharp = {n: _feat(emb, photo, n) for n in ("lap_var", "grad_ratio_1_2", "hf_mf_ratio")}
    blurred = cv2.GaussianBlur(photo, (0, 0), 2.0)
    blur = {n: _feat(emb, blurred, n) for n in sharp}
    for n in sharp:
        assert blur[n] < sharp[n] - 0.3, (n, sharp[n], blur[n])


def test_motion_blur_raises_coherence(emb, photo96):
    k = np.zeros((15, 15), np.float32)
    k[7, :] = 1.0 / 15  # horizontal motion
    moved = cv2.filter2D(photo96, -1, k, borderType=cv2.BORDER_REFLECT_101)
    assert _feat(emb, moved, "coherence_coarse") > _feat(emb, photo96, "coherence_coarse") + 0.2


def test_blockiness_responds_to_jpeg(emb, photo):
    before = [_feat(emb, photo, n) for n in ("blockiness_h", "blockiness_v", "dct_zero_frac")]
    comp = _jpeg(photo, 10)
    after = [_feat(emb, comp, n) for n in ("blockiness_h", "blockiness_v", "dct_zero_frac")]
    assert after[0] > before[0] + 0.3 and after[1] > before[1] + 0.3, (before, after)
    assert after[2] > before[2] + 0.2, (before, after)


def test_dark_channel_rises_with_haze(emb, photo):
    vals = []
    for t in (1.0, 0.7, 0.4):
        hazy = (photo * t + 0.9 * (1 - t)).astype(np.float32)
        vals.append([_feat(emb, hazy, n) for n in ("dark_channel", "dark_to_bright", "saturation")])
    dc = [v[0] for v in vals]
    ratio = [v[1] for v in vals]
    sat = [v[2] for v in vals]
    assert dc[0] < dc[1] < dc[2] and ratio[0] < ratio[1] < ratio[2] and sat[0] > sat[1] > sat[2], vals


def test_brightness_falls_in_low_light(emb, photo):
    names = ("luma_mean", "value_p50", "value_p90", "dark_frac")
    bright = [_feat(emb, photo, n) for n in names]
    dark_img = (0.5 * photo**1.8).astype(np.float32)
    dark = [_feat(emb, dark_img, n) for n in names]
    assert dark[0] < bright[0] - 0.1 and dark[1] < bright[1] and dark[2] < bright[2]
    assert dark[3] > bright[3] + 0.1


def test_rain_streaks_raise_rain_features(emb, photo):
    rng = np.random.default_rng(3)
    h, w = photo.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for _ in range(40):  # thin near-vertical bright lines, 20 px long
        x0, y0 = int(rng.integers(5, w - 15)), int(rng.integers(0, h - 20))
        cv2.line(layer, (x0, y0), (x0 + int(rng.integers(-5, 6)), y0 + 20), 0.6, 1, cv2.LINE_AA)
    rainy = np.clip(photo + layer[..., None], 0, 1).astype(np.float32)
    for n in ("rain_line", "rain_excess", "streak_frac"):
        assert _feat(emb, rainy, n) > _feat(emb, photo, n) + 0.3, n
    # isotropic noise does not look like rain
    noisy = np.clip(photo + rng.normal(0, 25 / 255, photo.shape), 0, 1).astype(np.float32)
    assert _feat(emb, noisy, "rain_excess") < _feat(emb, rainy, "rain_excess") - 0.3


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_inputs(emb, photo):
    h, w = photo.shape[:2]
    with pytest.raises(ValueError, match="H x W"):
        emb.embed(photo, np.ones((2, h - 1, w), bool))
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        emb.embed(photo, np.ones((h, w), bool))
    with pytest.raises(ValueError, match="dtype bool"):
        emb.embed(photo, np.ones((2, h, w), np.uint8))
    with pytest.raises(ValueError, match="numpy array"):
        emb.embed(photo, [[True]])
    with pytest.raises(ValueError, match="dtype"):
        emb.embed((photo * 255).astype(np.uint8), np.ones((1, h, w), bool))
    with pytest.raises(ValueError, match="NaN"):
        bad = photo.copy()
        bad[0, 0, 0] = np.nan
        emb.embed(bad, np.ones((1, h, w), bool))
    with pytest.raises(ValueError, match="HxWx3"):
        emb.embed(photo[..., 0], np.ones((1, h, w), bool))


# ------------------------------------------------------------------------------------------ probe script


def test_probe_script_smoke(tmp_path):
    import json

    from experiments.probe_embeddings import main

    out_json, out_md = tmp_path / "probe.json", tmp_path / "probe.md"
    out_probe = tmp_path / "family_probe.json"
    rc = main(["--recipe", "spatial-mixed", "--crops", "6", "--test-crops", "4", "--size", "64",
               "--json", str(out_json), "--markdown", str(out_md), "--save", str(out_probe)])
    assert rc == 0
    saved = json.loads(out_probe.read_text())
    assert saved["families"] == ["noise", "blur", "jpeg", "haze", "rain", "dark"]
    assert np.asarray(saved["coef"]).shape == (6, len(FEATURES)) and len(saved["intercept"]) == 6
    assert len(saved["mean"]) == len(saved["scale"]) == len(FEATURES) and min(saved["scale"]) > 0
    res = json.loads(out_json.read_text())
    assert res["dim"] == len(res["feature_names"]) == len(FEATURES)
    sm = res["recipes"]["spatial-mixed"]
    assert 0.0 <= sm["macro_f1"] <= 1.0 and sm["test_regions"] >= 8
    assert set(sm["families"]) == {"noise", "blur", "jpeg", "haze", "rain", "dark"}
    assert res["timing"]["ms_128px_8regions"] > 0
    assert "macro-F1" in out_md.read_text()
    assert main(["--recipe", "no-such-recipe", "--crops", "2"]) == 2


def test_embedder_and_degradation_mistakes_are_named() -> None:
    from ir_env.degradations import disk_kernel, params_to_severity
    from ir_env.embeddings import make_embedder
    from ir_env.encoder.learned import LearnedEmbedder

    with pytest.raises(ValueError, match="embedder 'handcrafted' has no option 'foo'"):
        make_embedder("handcrafted", foo=1)
    with pytest.raises(ValueError, match="embedder 'handcrafted': bad option value"):
        make_embedder("handcrafted", clip="x")
    img = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"a single mask: use mask\[None\]"):
        LearnedEmbedder().predict(img, np.ones((64, 64), bool))
    with pytest.raises(ValueError, match="motion: sigma must be None or > 0"):  # it was NaN
        params_to_severity("motion", {"length": 10, "angle": 0, "sigma": 0})
    with pytest.raises(ValueError, match="radius must be a finite number of px >= 0"):  # it was an all-NaN kernel
        disk_kernel(-1)
    assert 0.0 <= params_to_severity("motion", {"length": 10, "angle": 0, "sigma": 2.0}) <= 1.0
