"""The encoder's segmentation head: fit -> save -> load, dense map vs embedding, calibration, file errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from experiments.fit_segment_head import calibrate, cell_rows, cell_scores, check_config, fit
from experiments.fit_segment_head import main as fit_main
from ir_env.encoder import DegradationNet, EncoderWeightsError, LearnedEmbedder, save_weights
from ir_env.encoder.learned import perception_fingerprint, ship_weights, weights_fingerprint
from ir_env.encoder.segment import SEGMENT_JSON, SEGMENT_PT, SegmentHead
from policies.rules import dense_family_prob
from restorers.spec import FAMILIES


def _cfg(tmp: Path, src: Path) -> dict:
    cfg = yaml.safe_load(Path("experiments/configs/segment_head.yaml").read_text())
    cfg["encoder"] = str(src)
    cfg["data"].update(crop=64, scenes=24, val_scenes=12, workers=1)
    cfg["head"].update(hidden=8, dilations=[1, 2])
    cfg["train"].update(epochs=2, batch_size=8, threads=1)
    cfg["output_dir"] = str(tmp / "out")
    return cfg


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A random-init encoder (shipped architecture, 16 channels) and a head fitted on it from a tiny config."""
    tmp = tmp_path_factory.mktemp("seg")
    torch.manual_seed(0)
    net = DegradationNet(16, len(FAMILIES), batchnorm=True, dct=True, dilations=(2, 4, 8)).eval()
    src = save_weights(net, tmp / "src", np.zeros(16), np.ones(16), {"thresholds": {f: 0.5 for f in FAMILIES}})
    meta = fit(_cfg(tmp, src), progress=False)
    return src, tmp / "out", meta


def test_fit_writes_a_loadable_weights_directory(fitted: tuple[Path, Path, dict]) -> None:
    src, out, meta = fitted
    for name in ("encoder.pt", "encoder.json", SEGMENT_PT, SEGMENT_JSON):
        assert (out / name).is_file()
    assert meta["train_scenes"] == 24 and meta["validation"]["cells"] == 12 * 8 * 8
    assert set(meta["thresholds"]) == set(FAMILIES) and all(0 < t < 1 for t in meta["thresholds"].values())
    assert len(meta["epoch_loss"]) == 2 and all(np.isfinite(meta["epoch_loss"]))
    for key in ("linear_head_per_cell", "segment_head"):
        assert 0.0 <= meta["validation"][key]["macro_f1"] <= 1.0
    emb = LearnedEmbedder(out)
    assert emb.segment is not None and emb.segment.dilations == (1, 2)
    # observations are the encoder's; perception's fingerprint names the head
    assert weights_fingerprint(out) == weights_fingerprint(src)
    assert perception_fingerprint(out).startswith(weights_fingerprint(src) + "+seg")
    assert perception_fingerprint(src) == weights_fingerprint(src)


def test_dense_map_uses_the_head_and_nothing_else_changes(fitted: tuple[Path, Path, dict]) -> None:
    src, out, _ = fitted
    with_head, without, off = LearnedEmbedder(out), LearnedEmbedder(src), LearnedEmbedder(out, segment=False)
    rng = np.random.default_rng(0)
    img = rng.random((64, 72, 3), dtype=np.float32)
    masks = np.zeros((2, 64, 72), bool)
    masks[0, :, :30], masks[1, :, 30:] = True, True
    np.testing.assert_array_equal(with_head.embed(img, masks), without.embed(img, masks))
    np.testing.assert_array_equal(with_head.predict(img, masks)["family_prob"],
                                  without.predict(img, masks)["family_prob"])
    p = dense_family_prob(with_head, img)
    assert p.shape == (64, 72, len(FAMILIES)) and p.dtype == np.float32 and np.all((p >= 0) & (p <= 1))
    np.testing.assert_array_equal(dense_family_prob(off, img), dense_family_prob(without, img))
    # by hand: the head on the feature map, one value per 8x8 cell (cell centres keep it after upsampling)
    feats = torch.from_numpy(with_head.dense_features(img)).permute(2, 0, 1)[None]
    cells = with_head.segment(feats)[0].permute(1, 2, 0).detach().numpy()
    assert cells.shape == (8, 9, len(FAMILIES))
    np.testing.assert_allclose(p, _up8(cells), atol=1e-5)
    # without a head the dense map is the linear family head on every cell
    lin = torch.sigmoid(without.enc.net.heads(torch.from_numpy(without.dense_features(img)))[0]).detach().numpy()
    np.testing.assert_allclose(dense_family_prob(without, img), _up8(lin), atol=1e-5)


def _up8(cells: np.ndarray) -> np.ndarray:
    """(h, w, F) cell values -> (8h, 8w, F) bilinear, half-pixel centres (as cv2.INTER_LINEAR)."""
    t = torch.from_numpy(np.ascontiguousarray(cells)).permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(t, scale_factor=8, mode="bilinear", align_corners=False)[0].permute(
        1, 2, 0).numpy()


def test_image_context_reaches_every_cell() -> None:
    torch.manual_seed(0)
    head = SegmentHead(4, 2, hidden=4, dilations=(1,), image_context=True).eval()
    f = torch.rand(1, 4, 6, 6)
    g = f.clone()
    g[..., 5, 5] += 3.0  # one far cell changes: the image mean moves, so cell (0, 0) changes too
    assert not torch.allclose(head(f)[..., 0, 0], head(g)[..., 0, 0])
    local = SegmentHead(4, 2, hidden=4, dilations=(1,), image_context=False).eval()
    torch.testing.assert_close(local(f)[..., 0, 0], local(g)[..., 0, 0])  # 3x3 field: (5, 5) is out of reach
    with pytest.raises(ValueError, match="features"):
        head(torch.rand(1, 3, 6, 6))
    with pytest.raises(ValueError, match="dilations"):
        SegmentHead(4, 2, dilations=())


def test_calibration_puts_half_at_the_best_f1_threshold() -> None:
    from experiments.fit_segment_head import THRESHOLD_GRID

    torch.manual_seed(0)
    head = SegmentHead(4, len(FAMILIES), hidden=4, dilations=(1,)).eval()
    with torch.no_grad():
        head.net[-1].weight.mul_(40.0)  # spread the raw probabilities over (0, 1)
    net = DegradationNet(8, len(FAMILIES))  # unused by the head's predictions
    feats = (3.0 * np.random.default_rng(0).standard_normal((20, 4, 4, 4))).astype(np.float16)
    with torch.inference_mode():
        raw = torch.sigmoid(head.logits(torch.from_numpy(feats.astype(np.float32)))).numpy()
    # per family, present where the raw score reaches the grid value nearest its median
    cut = [float(THRESHOLD_GRID[np.abs(THRESHOLD_GRID - np.median(raw[:, j])).argmin()]) for j in range(len(FAMILIES))]
    target = (raw >= np.asarray(cut)[None, :, None, None]).astype(np.float16)
    assert all(0.0 < target[:, j].mean() < 1.0 for j in range(len(FAMILIES)))
    thr = calibrate(head, net, {"feats": feats, "target": target})
    with torch.inference_mode():
        cal = head(torch.from_numpy(feats.astype(np.float32))).numpy()
    assert cell_scores(cal, target)["macro_f1"] == pytest.approx(1.0)  # 0.5 now sits at an F1-best threshold
    assert all(thr[f] <= c for f, c in zip(FAMILIES, cut, strict=True))  # the first (lowest) best one


def test_cell_scores_by_hand() -> None:
    prob = np.zeros((1, len(FAMILIES), 2, 2))
    target = np.zeros_like(prob)
    prob[0, 0] = [[0.9, 0.9], [0.1, 0.1]]
    target[0, 0] = [[1.0, 0.0], [1.0, 0.4]]  # 0.4 < 0.5: absent
    s = cell_scores(prob, target)["families"]["noise"]
    assert s["f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1)) and s["iou"] == pytest.approx(1 / 3)
    assert s["positives"] == 2


def test_soft_targets_are_the_fraction_of_each_cell_in_a_familys_regions() -> None:
    net = DegradationNet(8, len(FAMILIES)).eval()
    rmap = np.zeros((1, 16, 16), np.int8)
    rmap[0, :, 4:] = 1  # region 1 covers 3/4 of the left cells' columns, all of the right ones
    fam = np.zeros((1, 8, len(FAMILIES)), bool)
    fam[0, 1, FAMILIES.index("haze")] = True
    fam[0, :2, FAMILIES.index("jpeg")] = True
    rows = cell_rows(net, {"x": np.zeros((1, 3, 16, 16), np.float16), "rmap": rmap, "fam": fam}, progress=False)
    assert rows["feats"].shape == (1, 8, 2, 2) and rows["target"].shape == (1, len(FAMILIES), 2, 2)
    np.testing.assert_allclose(rows["target"][0, FAMILIES.index("haze")], [[0.5, 1.0], [0.5, 1.0]])
    np.testing.assert_allclose(rows["target"][0, FAMILIES.index("jpeg")], 1.0)
    assert not rows["target"][0, FAMILIES.index("noise")].any()


def test_head_files_are_checked(fitted: tuple[Path, Path, dict], tmp_path: Path) -> None:
    import shutil

    _, out, _ = fitted
    d = tmp_path / "w"
    shutil.copytree(out, d)
    (d / SEGMENT_PT).write_bytes((d / SEGMENT_PT).read_bytes()[:-8] + b"xxxxxxxx")
    with pytest.raises(EncoderWeightsError, match="checksum"):
        LearnedEmbedder(d)
    shutil.copy2(out / SEGMENT_PT, d / SEGMENT_PT)
    info = json.loads((d / SEGMENT_JSON).read_text())
    (d / SEGMENT_JSON).write_text(json.dumps({**info, "encoder_sha256": "0" * 64}))
    with pytest.raises(EncoderWeightsError, match="fitted on encoder weights"):
        LearnedEmbedder(d)
    (d / SEGMENT_JSON).unlink()
    with pytest.raises(EncoderWeightsError, match="goes together"):
        LearnedEmbedder(d)


def test_ship_copies_the_head_and_removes_a_stale_one(fitted: tuple[Path, Path, dict], tmp_path: Path) -> None:
    src, out, _ = fitted
    dst = ship_weights(out, tmp_path / "ship")
    assert (dst / SEGMENT_PT).is_file() and LearnedEmbedder(dst).segment is not None
    ship_weights(src, dst)
    assert not (dst / SEGMENT_PT).exists() and not (dst / SEGMENT_JSON).exists()


def test_config_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 0\noutput_dir: x\ndata: {corpus: builtin}\n")
    assert fit_main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config lacks") and "head.hidden" in err and len(err.splitlines()) == 1
    with pytest.raises(ValueError, match="YAML mapping"):
        check_config([1, 2])


def test_benefit_targets_say_where_the_tables_tool_helps() -> None:
    from experiments.fit_segment_head import cell_benefit
    from ir_env.degradations import apply_kind, severity_to_params
    from policies.rules import RuleTable

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    clean = np.stack([0.3 + 0.4 * xx, 0.3 + 0.4 * yy, 0.5 + 0.2 * xx * yy], -1).astype(np.float32)
    masks = np.zeros((2, 32, 32), bool)
    masks[0, :, :16], masks[1, :, 16:] = True, True
    dark = apply_kind(clean, "dark", severity_to_params("dark", 0.8, rng), rng)
    degraded = np.where(masks[0][..., None], dark, clean).astype(np.float32)
    b = cell_benefit(RuleTable.load(), 0.5, clean, degraded, masks, [[("dark", 0.8)], []])["benefit"]
    assert b.shape == (len(FAMILIES), 4, 4) and b.dtype == np.float16
    d = b[FAMILIES.index("dark")].astype(np.float32)
    assert (d[:, :2] > 0).all()  # brightening the darkened half helps
    assert (d[:, 2:] < 0).all()  # brightening the clean half (at the absent severity) harms
    # the same scene with nothing degraded: every tool can only harm or do nothing
    b0 = cell_benefit(RuleTable.load(), 0.5, clean, clean, masks, [[], []])["benefit"].astype(np.float32)
    assert (b0 <= 1e-6).all()


def test_benefit_rows_and_the_scene_hook() -> None:
    import functools

    from experiments.fit_segment_head import benefit_rows, cell_benefit
    from experiments.train_encoder import make_dataset
    from policies.rules import RuleTable

    rows = {"benefit": np.array([[[[0.02, -0.01]], [[0.0, 0.0]]]], np.float16)}  # (1, 2 families, 1, 2)
    scale = benefit_rows(rows, None, 0.2)
    np.testing.assert_allclose(scale, [0.015, 1e-8], rtol=1e-3)
    np.testing.assert_array_equal(rows["target"][0, :, 0], [[1, 0], [0, 0]])
    np.testing.assert_allclose(rows["weight"][0, 0, 0], [0.2 + 0.02 / 0.015, 0.2 + 0.01 / 0.015], rtol=1e-2)
    np.testing.assert_allclose(rows["weight"][0, 1, 0], 0.2, rtol=1e-3)
    assert "benefit" not in rows
    cfg = yaml.safe_load(Path("experiments/configs/segment_head_benefit.yaml").read_text())
    cfg["data"].update(crop=32, workers=1)
    plain = make_dataset(cfg, 3, 1, "scenes")
    hooked = make_dataset(cfg, 3, 1, "scenes", functools.partial(cell_benefit, RuleTable.load(), 0.5))
    np.testing.assert_array_equal(plain["x"], hooked["x"])  # the hook draws nothing from the scene stream
    assert hooked["benefit"].shape == (3, len(FAMILIES), 4, 4) and "benefit" not in plain


def test_fit_with_benefit_targets(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = DegradationNet(16, len(FAMILIES), batchnorm=True, dct=True, dilations=(2, 4, 8)).eval()
    src = save_weights(net, tmp_path / "src", np.zeros(16), np.ones(16), {"thresholds": {f: 0.5 for f in FAMILIES}})
    cfg = _cfg(tmp_path, src)
    cfg["targets"] = "benefit"
    cfg["benefit"] = {"absent_severity": 0.5, "floor": 0.2}
    meta = fit(cfg, progress=False)
    v = meta["validation"]["benefit_targets"]
    assert set(v["positive_share"]) == set(FAMILIES) and 0 <= v["segment_head"]["macro_f1"] <= 1
    assert 0 <= meta["validation"]["segment_head"]["macro_f1"] <= 1 and np.isfinite(meta["epoch_loss"]).all()
    assert LearnedEmbedder(tmp_path / "out").segment is not None
    cfg["targets"] = "where"
    with pytest.raises(ValueError, match="targets must be one of families, benefit"):
        fit(cfg, progress=False)


def test_fit_on_several_crop_sizes(tmp_path: Path) -> None:
    from experiments.fit_segment_head import size_groups

    torch.manual_seed(0)
    net = DegradationNet(16, len(FAMILIES), batchnorm=True, dct=True, dilations=(2, 4, 8)).eval()
    src = save_weights(net, tmp_path / "src", np.zeros(16), np.ones(16), {"thresholds": {f: 0.5 for f in FAMILIES}})
    cfg = _cfg(tmp_path, src)
    cfg["data"]["more_crops"] = {96: [16, 6]}
    assert size_groups(cfg) == [(64, 24, 12, 1, 2), (96, 16, 6, 961, 962)]
    meta = fit(cfg, progress=False)
    v = meta["validation"]
    assert meta["train_scenes"] == 24 + 16 and v["scenes"] == 18
    assert v["cells"] == 12 * 8 * 8 + 6 * 12 * 12  # every cell of both sizes, pooled
    assert set(v["per_size"]) == {"64", "96"} and v["per_size"]["96"]["scenes"] == 6
    assert len(meta["epoch_loss"]) == 2 and np.isfinite(meta["epoch_loss"]).all()
    emb = LearnedEmbedder(tmp_path / "out")
    p = dense_family_prob(emb, np.random.default_rng(0).random((96, 96, 3), dtype=np.float32))
    assert p.shape == (96, 96, len(FAMILIES)) and np.all((p >= 0) & (p <= 1))
    for bad in ({100: [4, 2]}, {64: [4, 2]}, {96: [4]}, {96: [4, -1]}):
        cfg["data"]["more_crops"] = bad
        with pytest.raises(ValueError, match="more_crops"):
            fit(cfg, progress=False)
