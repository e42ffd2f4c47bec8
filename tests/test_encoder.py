"""The learned degradation encoder: pooling, determinism, input checks, weight loading, training, users."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ir_env.corpus import center_crop, load_corpus
from ir_env.encoder import (
    DEFAULT_WEIGHTS,
    DegradationNet,
    EncoderWeightsError,
    LearnedEmbedder,
    cell_weights,
    mask_weights,
    pool_masks,
    receptive_field,
    save_weights,
)
from ir_env.recipes import synthesize
from restorers.spec import FAMILIES


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised encoder saved in the shipped format (independent of the trained weights)."""
    torch.manual_seed(0)
    net = DegradationNet(16, len(FAMILIES), batchnorm=True, dct=True)  # the shipped architecture
    for m in net.modules():  # non-trivial running statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    net.eval()
    d = tmp_path_factory.mktemp("enc")
    save_weights(net, d, np.zeros(16), np.ones(16), {"note": "random init for tests"})
    return d


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return center_crop(load_corpus("builtin", "test")[0], 128)


def test_pool_masks_is_the_mask_weighted_mean() -> None:
    rng = np.random.default_rng(0)
    feats = torch.from_numpy(rng.normal(size=(5, 4, 4)).astype(np.float32))
    masks = np.zeros((3, 32, 32), bool)
    masks[0, :8, :8] = True  # exactly cell (0, 0)
    masks[1, :8, :16] = True  # cells (0, 0) and (0, 1)
    w = mask_weights(torch.from_numpy(masks))
    pooled = pool_masks(feats, w).numpy()
    np.testing.assert_allclose(pooled[0], feats[:, 0, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(pooled[1], feats[:, 0, :2].mean(1).numpy(), rtol=1e-6)
    assert np.all(pooled[2] == 0)  # empty mask -> zero row
    # cell weights equal the fraction of the cell inside the mask
    m = np.zeros((1, 16, 16), bool)
    m[0, :4, :8] = True
    np.testing.assert_allclose(cell_weights(m)[0], [[0.5, 0.0], [0.0, 0.0]])


def test_block_dct_is_jpeg_s_transform_and_sees_quantisation(photo: np.ndarray) -> None:
    import cv2

    from ir_env.encoder.model import dct_basis

    b = dct_basis().reshape(64, 64).double()
    torch.testing.assert_close(b @ b.T, torch.eye(64, dtype=torch.float64), atol=1e-6, rtol=0)
    net = DegradationNet(8, len(FAMILIES), dct=True).eval()
    flat = torch.full((1, 3, 16, 16), 0.5)
    coeffs = torch.expm1(net.block_dct(flat)) / 255.0  # |c| per block
    torch.testing.assert_close(coeffs[0, 0], torch.full((2, 2), 4.0))  # DC of a constant 8x8 block = 8 * 0.5
    assert float(coeffs[0, 1:].abs().max()) < 1e-5
    ok, buf = cv2.imencode(".jpg", (photo * 255).round().astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 15])
    jpeg = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0

    def zero_share(img: np.ndarray) -> float:  # high-frequency coefficients below half a JPEG unit
        c = net.block_dct(torch.from_numpy(img.transpose(2, 0, 1).copy())[None])[0]
        return float((torch.expm1(c[32:]) < 1.0).float().mean())

    assert zero_share(jpeg) > zero_share(photo) + 0.3


def test_calibration_moves_the_decision_threshold_to_0_5(random_weights: Path) -> None:
    from experiments.train_encoder import calibrate_thresholds, make_dataset, predict_regions

    cfg = yaml.safe_load(Path("experiments/configs/encoder.yaml").read_text())
    cfg["data"].update(crop=64)
    data = make_dataset(cfg, 24, 5, "calibration scenes")
    torch.manual_seed(1)
    net = DegradationNet(8, len(FAMILIES), batchnorm=True, dct=True)
    before, _, _, _ = predict_regions(net, data)
    t = calibrate_thresholds(net, data)
    after, _, _, _ = predict_regions(net, data)
    ts = np.asarray([t[f] for f in FAMILIES])
    assert np.all((ts >= 0.05) & (ts <= 0.95))
    margin = np.abs(before - ts) > 1e-4  # ties at the threshold are rounding-sensitive
    np.testing.assert_array_equal((after >= 0.5)[margin], (before >= ts)[margin])


def test_region_embedding_ignores_pixels_outside_its_receptive_field(random_weights: Path) -> None:
    emb = LearnedEmbedder(random_weights)
    rng = np.random.default_rng(1)
    img = rng.random((256, 256, 3), dtype=np.float32)
    masks = np.zeros((2, 256, 256), bool)
    masks[0, :32, :32] = True
    masks[1] = ~masks[0]
    a = emb.embed(img, masks)
    far = 32 + receptive_field(emb.enc.net.dilations) + 8  # beyond any feature cell the mask touches
    changed = img.copy()
    changed[far:, far:] = rng.random(changed[far:, far:].shape, dtype=np.float32)
    b = emb.embed(changed, masks)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[1], b[1])  # the other region does see the change


def test_inference_is_deterministic_and_shaped(random_weights: Path, photo: np.ndarray) -> None:
    emb = LearnedEmbedder(random_weights)
    masks = np.zeros((3, 128, 128), bool)
    masks[0, :64], masks[1, 64:], masks[2] = True, True, False
    a = emb.embed(photo, masks)
    b = emb.embed(np.ascontiguousarray(photo.copy()), masks.copy())
    assert a.shape == (3, emb.dim) and a.dtype == np.float32
    assert emb.dim == 2 * len(FAMILIES) + 16 and len(emb.feature_names) == emb.dim
    np.testing.assert_array_equal(a, b)
    assert np.all(a[2] == 0) and np.all(np.isfinite(a))
    p = emb.predict(photo, masks[:2])
    assert p["family_prob"].shape == (2, len(FAMILIES)) and np.all((p["severity"] >= 0) & (p["severity"] <= 1))
    # sides that are not multiples of 8 are padded, not refused
    odd = photo[:100, :75]
    assert emb.embed(odd, np.ones((1, 100, 75), bool)).shape == (1, emb.dim)


def test_bad_input_is_refused_clearly(random_weights: Path, photo: np.ndarray) -> None:
    emb = LearnedEmbedder(random_weights)
    full = np.ones((1, 128, 128), bool)
    bad = photo.copy()
    bad[3, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN|finite"):
        emb.embed(bad, full)
    with pytest.raises(ValueError):
        emb.embed(photo[..., 0], full)
    with pytest.raises(ValueError, match="mask"):
        emb.embed(photo, np.ones((1, 64, 64), bool))
    with pytest.raises(ValueError, match="too small|at least 8"):
        emb.embed(photo[:6, :6], np.ones((1, 6, 6), bool))


def test_missing_or_mismatched_weights_give_clear_errors(random_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(EncoderWeightsError, match="encoder.json not found"):
        LearnedEmbedder(tmp_path / "nowhere")
    # a state_dict of another width does not fit the network named in encoder.json
    d = tmp_path / "mismatch"
    d.mkdir()
    (d / "encoder.pt").write_bytes((random_weights / "encoder.pt").read_bytes())
    info = json.loads((random_weights / "encoder.json").read_text())
    info["channels"] = 32
    info["feature_mean"], info["feature_std"] = [0.0] * 32, [1.0] * 32
    (d / "encoder.json").write_text(json.dumps(info))
    with pytest.raises(EncoderWeightsError, match="does not fit"):
        LearnedEmbedder(d)
    # no checksum: refused (before, the check was skipped)
    (d / "encoder.json").write_text(json.dumps({**info, "sha256": ""}))
    with pytest.raises(EncoderWeightsError, match="holds no sha256 of encoder.pt"):
        LearnedEmbedder(d)
    # a malformed encoder.json names the file, not a bare KeyError
    good = json.loads((random_weights / "encoder.json").read_text())
    for broken in ({k: v for k, v in good.items() if k != "feature_std"}, {**good, "channels": "sixty"}):
        (d / "encoder.json").write_text(json.dumps(broken))
        (d / "encoder.pt").write_bytes((random_weights / "encoder.pt").read_bytes())
        with pytest.raises(EncoderWeightsError, match=r"encoder.json is malformed"):
            LearnedEmbedder(d)
    # a replaced weights file fails the checksum
    c = tmp_path / "corrupt"
    c.mkdir()
    (c / "encoder.json").write_text((random_weights / "encoder.json").read_text())
    (c / "encoder.pt").write_bytes(b"not a torch file")
    with pytest.raises(EncoderWeightsError, match="checksum"):
        LearnedEmbedder(c)


def test_training_writes_weights_that_load(tmp_path: Path) -> None:
    from experiments.train_encoder import train

    cfg = yaml.safe_load(Path("experiments/configs/encoder.yaml").read_text())
    cfg["data"].update(crop=64, scenes=48, val_scenes=16)
    cfg["train"].update(epochs=1, batch_size=16)
    cfg["channels"] = 8
    cfg["output_dir"] = str(tmp_path / "run")
    log = train(cfg)
    assert len(log["epochs"]) == 1 and 0.0 <= log["best"]["val"]["macro_f1"] <= 1.0
    assert log["best"]["val_calibrated"]["macro_f1"] >= log["best"]["val"]["macro_f1"] - 1e-9
    emb = LearnedEmbedder(tmp_path / "run")
    assert emb.dim == 2 * len(FAMILIES) + 8
    info = json.loads((tmp_path / "run" / "encoder.json").read_text())
    assert info["config"]["data"]["scenes"] == 48 and "validation" in info
    assert set(info["thresholds"]) == set(FAMILIES) and info["batchnorm"] and info["dct"]



def test_training_can_split_clean_crops_into_several_regions(tmp_path: Path) -> None:
    from experiments.train_encoder import train

    cfg = yaml.safe_load(Path("experiments/configs/encoder.yaml").read_text())
    cfg["data"].update(crop=64, scenes=32, val_scenes=16, clean_frac=1.0)  # every crop clean
    cfg["train"].update(epochs=1, batch_size=16)
    cfg["channels"] = 8
    regions = {}
    for split in (0.0, 1.0):
        cfg["data"]["clean_split"] = split
        cfg["output_dir"] = str(tmp_path / f"run{split}")
        regions[split] = train(cfg)["best"]["val"]["regions"]
    assert regions[0.0] == 16  # one whole-image region per clean crop
    assert 2 * 16 <= regions[1.0] <= 4 * 16  # each split into 2-4 clean regions
    cfg["data"]["clean_split"] = 1.5
    with pytest.raises(ValueError, match="clean_split must be in"):
        train(cfg)

shipped = pytest.mark.skipif(not (DEFAULT_WEIGHTS / "encoder.pt").exists(), reason="no shipped encoder weights")


@shipped
def test_shipped_encoder_names_obvious_degradations() -> None:
    emb = LearnedEmbedder()
    clean = center_crop(load_corpus("builtin", "test")[1], 128)
    full = np.ones((1, 128, 128), bool)
    noisy = synthesize(clean, "noise-50", seed=3).degraded
    p = emb.predict(noisy, full)["family_prob"][0]
    assert p[FAMILIES.index("noise")] > 0.5, dict(zip(FAMILIES, p.round(2), strict=True))
    info = json.loads((DEFAULT_WEIGHTS / "encoder.json").read_text())
    assert info["validation"]["val_calibrated"]["macro_f1"] >= 0.8


@shipped
def test_env_and_planners_use_the_learned_embedding() -> None:
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import ir_env  # noqa: F401
    from policies import make_planner
    from policies.perception import Perception

    env = gym.make("SpatialIR-Lite-v1", embedding="learned")
    obs, _ = env.reset(seed=0)
    emb = LearnedEmbedder()
    assert obs["regions"].shape[1] == emb.dim
    check_env(env.unwrapped, skip_render_check=True)
    scene = synthesize(center_crop(load_corpus("builtin", "test")[0], 64), "spatial-mixed", seed=1)
    probs = Perception("learned").probabilities(scene.degraded, scene.masks)
    assert probs.shape == (len(scene.masks), len(FAMILIES)) and np.all((probs >= 0) & (probs <= 1))
    planner = make_planner("greedy", perceive=0.5, embedding="learned", judge="psnr", max_steps=1)
    res = planner.restore(scene.degraded, reference=scene.clean)
    assert res.image.shape == scene.degraded.shape


@shipped
def test_learned_clusters_proposer_partitions_deterministically() -> None:
    from ir_env.regions import check_partition, make_proposer

    scene = synthesize(center_crop(load_corpus("builtin", "test")[2], 96), "spatial-mixed", seed=2)
    prop = make_proposer("degradation-clusters-learned", max_regions=4)
    a, b = prop.propose(scene.degraded), prop.propose(scene.degraded)
    check_partition(a, scene.degraded.shape[:2], 4)
    np.testing.assert_array_equal(a, b)


@shipped
def test_encoder_eval_cli_writes_json(tmp_path: Path) -> None:
    from ir_env.cli import main

    out = tmp_path / "e.json"
    assert main(["encoder-eval", "--crops", "1", "--train-crops", "8", "--size", "64", "--no-proposers",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["learned"]["families"]) == set(FAMILIES) and "macro_f1" in res["handcrafted_probe"]
    from ir_env.corpus import BUILTIN_SPLITS

    for who in ("learned", "handcrafted_probe"):  # one entry per test photo, each a macro-F1 in [0, 1]
        per = res[who]["per_image_macro_f1"]
        assert set(per) == set(BUILTIN_SPLITS["test"]) and all(0.0 <= v <= 1.0 for v in per.values())
    for c in res["learned"]["clean_photo"].values():  # FPs also flagged on the clean photo are a subset
        assert 0.0 <= c["flag_rate"] <= 1.0 and 0 <= c["fp_flagged_on_clean"] <= c["false_positives"]
    assert main(["encoder-eval", "--weights", str(tmp_path / "none"), "--crops", "1", "--train-crops", "8"]) == 2


def test_clean_crop_augmentation_is_seeded_and_in_range() -> None:
    from experiments.train_encoder import augment_clean

    photo = load_corpus("builtin", "train")[0]
    aug = {"scale": [0.5, 1.0], "colour": True}
    a = [augment_clean(photo, 64, np.random.default_rng(s), aug) for s in (3, 3, 4)]
    np.testing.assert_array_equal(a[0], a[1])
    assert not np.array_equal(a[0], a[2])
    for x in a:
        assert x.shape == (64, 64, 3) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    # a scale of 0.5 puts twice the scene into the same crop: stronger gradients per pixel on average

    def grad(scale: float) -> float:
        rng = np.random.default_rng(0)
        crops = [augment_clean(photo, 64, rng, {"scale": [scale, scale]}) for _ in range(16)]
        return float(np.mean([np.abs(np.diff(c, axis=1)).mean() for c in crops]))

    assert grad(0.5) > 1.2 * grad(1.0)


def test_inference_folds_batchnorm_without_changing_features(random_weights: Path, photo: np.ndarray) -> None:
    from ir_env.encoder import load_encoder

    fused, raw = load_encoder(random_weights).net, load_encoder(random_weights, fuse=False).net
    assert fused.fused and not raw.fused
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.from_numpy(photo.transpose(2, 0, 1).copy())[None]
    with torch.inference_mode():
        torch.testing.assert_close(fused.features(x), raw.features(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("script", ["experiments.train_encoder", "experiments.train_npsnr"])
def test_training_scripts_reject_bad_configs_before_training(script: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    main = importlib.import_module(script).main
    empty, listed, no_ship = tmp_path / "empty.yaml", tmp_path / "list.yaml", tmp_path / "noship.yaml"
    empty.write_text("")
    listed.write_text("- a\n- b\n")
    no_ship.write_text("seed: 0\n")  # training would fail on it: the ship_dir check must come first
    for cfg, extra, msg in ((tmp_path / "missing.yaml", [], "config file not found"),
                            (empty, [], "expected a mapping of config keys, got NoneType"),
                            (listed, [], "expected a mapping of config keys, got list"),
                            (no_ship, ["--ship"], "has no ship_dir")):
        assert main(["--config", str(cfg), *extra]) == 2
        assert msg in capsys.readouterr().err


#: Every committed config of the two training scripts (their ``# Run:`` lines).
TRAINING_CONFIGS = [("train_encoder", f"experiments/configs/{c.name}")
                    for c in sorted((Path(__file__).parent.parent / "experiments/configs").glob("encoder*.yaml"))]
TRAINING_CONFIGS += [("train_npsnr", "experiments/configs/npsnr.yaml")]


@pytest.mark.parametrize(("script", "config"), TRAINING_CONFIGS)
def test_committed_training_configs_pass_the_key_check(script: str, config: str) -> None:
    import importlib

    from experiments.train_encoder import load_train_config

    assert len(TRAINING_CONFIGS) >= 16  # 15 encoder configs and npsnr.yaml
    module = importlib.import_module(f"experiments.{script}")
    cfg = load_train_config(config)  # with the _config_path it adds
    module.check_config(cfg, config)
    mode = {"train_encoder": "recalibrate", "train_npsnr": "data_only"}[script]
    module.check_config(cfg, config, **{mode: True})


@pytest.mark.parametrize(("script", "config", "change", "message"), [
    ("train_encoder", "encoder_v8.yaml", lambda c: c.update(chanels=c.pop("channels")),
     r"c.yaml: unknown config key 'chanels' \(did you mean 'channels'\?\)"),
    ("train_encoder", "encoder_v8.yaml", lambda c: c["train"].update(severity_wieght=c["train"].pop("severity_weight")),
     r"c.yaml: train: unknown config key 'severity_wieght' \(did you mean 'severity_weight'\?\)"),
    ("train_encoder", "encoder_v8.yaml", lambda c: c["data"]["augment"].update(color=True),
     r"c.yaml: data.augment: unknown config key 'color' \(did you mean 'colour'\?\)"),
    ("train_encoder", "encoder_v8.yaml", lambda c: c["arch"].update(dilation=[2, 4]),
     r"c.yaml: arch: unknown config key 'dilation' \(did you mean 'dilations'\?\)"),
    ("train_encoder", "encoder_v8.yaml", lambda c: c["train"].pop("dense_weight"),
     r"c.yaml: train: missing config key\(s\) dense_weight"),
    ("train_encoder", "encoder_v8.yaml", lambda c: c.update(data=None), r"c.yaml: data must be a mapping"),
    ("train_npsnr", "npsnr.yaml", lambda c: c.update(init_frm=c.pop("init_from")),
     r"c.yaml: unknown config key 'init_frm' \(did you mean 'init_from'\?\)"),
    ("train_npsnr", "npsnr.yaml", lambda c: c["data"].update(p_wlak=c["data"].pop("p_walk")),
     r"c.yaml: data: unknown config key 'p_wlak' \(did you mean 'p_walk'\?\)"),
    ("train_npsnr", "npsnr.yaml", lambda c: c["train"].pop("rank_tau"),
     r"c.yaml: train: missing config key\(s\) rank_tau"),
])
def test_training_scripts_refuse_unknown_and_missing_config_keys_before_work(
        script: str, config: str, change: Callable[[dict], object], message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    module = importlib.import_module(f"experiments.{script}")

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the config was checked")

    for name in ("train", "recalibrate", "load_or_make"):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, no_work)
    cfg = yaml.safe_load(Path("experiments/configs", config).read_text())
    change(cfg)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match=message):
        module.check_config({**cfg, "_config_path": str(path)}, str(path))
    out = tmp_path / "out"
    assert module.main(["--config", str(path), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not out.exists()  # nothing made or written


def test_recalibration_needs_arch_but_no_optimiser_keys() -> None:
    from experiments.train_encoder import check_config

    cfg = yaml.safe_load(Path("experiments/configs/encoder_v8.yaml").read_text())
    for key in ("epochs", "batch_size", "lr", "weight_decay", "severity_weight", "dense_weight"):
        del cfg["train"][key]
    check_config(cfg, "c.yaml", recalibrate=True)
    with pytest.raises(ValueError, match=r"c.yaml: train: missing config key\(s\) epochs, batch_size"):
        check_config(cfg, "c.yaml")
    del cfg["arch"]
    with pytest.raises(ValueError, match=r"c.yaml: missing config key\(s\) arch"):
        check_config(cfg, "c.yaml", recalibrate=True)


def test_make_dataset_with_workers_is_reproducible_and_complete() -> None:
    from experiments.train_encoder import make_dataset

    cfg = yaml.safe_load(Path("experiments/configs/encoder.yaml").read_text())
    cfg["data"].update(crop=64, workers=2)
    a = make_dataset(cfg, 9, 5, "scenes")
    b = make_dataset(cfg, 9, 5, "scenes")
    assert a["x"].shape == (9, 3, 64, 64) and a["fam"].shape[0] == 9
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["x"][:4], a["x"][5:])  # the two chunks are different scene streams
    assert np.all(a["nreg"] >= 1)
    cfg["data"].update(workers=0)
    with pytest.raises(ValueError, match="workers"):
        make_dataset(cfg, 4, 5, "scenes")


def test_fast_input_ops_match_torch_reference_ops() -> None:
    from torch.nn import functional as F  # noqa: N812

    from ir_env.encoder.model import SpaceToDepth, box3

    x = torch.rand(2, 9, 16, 24, generator=torch.Generator().manual_seed(0))
    assert torch.equal(SpaceToDepth()(x), F.pixel_unshuffle(x, 2))  # same values, same channel order
    ref = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert box3(x).shape == x.shape
    torch.testing.assert_close(box3(x), ref, atol=1e-6, rtol=0)


def test_select_encoder_scores_candidates_on_one_common_validation_set(tmp_path: Path) -> None:
    from experiments.select_encoder import select

    cfg = yaml.safe_load(Path("experiments/configs/encoder.yaml").read_text())
    cfg["data"].update(crop=64)
    dirs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = DegradationNet(8, len(FAMILIES), batchnorm=True, dct=True).eval()
        d = tmp_path / f"cand{seed}"
        save_weights(net, d, np.zeros(8), np.ones(8), {"config": cfg})
        dirs.append(str(d))
    res = select(dirs, scenes=6, seed=3)
    assert set(res["candidates"]) == set(dirs) and res["best"] in dirs
    for r in res["candidates"].values():
        assert 0.0 <= r["macro_f1"] <= 1.0 and set(r["f1"]) == set(FAMILIES)
    assert select(dirs, scenes=6, seed=3)["candidates"] == res["candidates"]  # same seed, same scores
    bare = tmp_path / "bare"
    save_weights(DegradationNet(8, len(FAMILIES)).eval(), bare, np.zeros(8), np.ones(8), {})
    with pytest.raises(ValueError, match="no training config"):
        select([str(bare)], scenes=6)


def test_pool_power_weighs_interior_cells_and_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = DegradationNet(8, len(FAMILIES), batchnorm=True, dct=True, pool_power=2.0).eval()
    d = save_weights(net, tmp_path / "p2", np.zeros(8), np.ones(8), {})
    emb = LearnedEmbedder(d)
    assert emb.enc.net.pool_power == 2.0
    img = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    masks = np.zeros((1, 64, 64), bool)
    masks[0, :, :20] = True  # columns 0-19: cells 0-1 wholly inside, cell 2 half inside
    feats = emb.dense_features(img).astype(np.float64)  # (8, 8, C)
    w = np.zeros((8, 8))
    w[:, :2], w[:, 2] = 1.0, 0.5
    expected = (feats * (w**2)[..., None]).sum((0, 1)) / (w**2).sum()
    np.testing.assert_allclose(emb.pooled(img, masks)[0], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="pool_power"):
        DegradationNet(8, len(FAMILIES), pool_power=0.5)


def test_recalibrate_refits_thresholds_for_a_new_pool_power(tmp_path: Path) -> None:
    from experiments.train_encoder import recalibrate

    cfg = yaml.safe_load(Path("experiments/configs/encoder_v8.yaml").read_text())
    cfg["data"].update(crop=64, scenes=8, val_scenes=8)
    torch.manual_seed(0)
    src = save_weights(DegradationNet(8, len(FAMILIES), batchnorm=True, dct=True, dilations=(2, 4, 8)).eval(),
                       tmp_path / "src", np.zeros(8), np.ones(8), {"thresholds": {f: 0.5 for f in FAMILIES}})
    cfg["arch"]["pool_power"] = 2
    cfg["output_dir"] = str(tmp_path / "out")
    meta = recalibrate(cfg, src)
    info = json.loads((tmp_path / "out" / "encoder.json").read_text())
    assert info["pool_power"] == 2.0 and info["recalibrated_from"]["weights"] == str(src)
    assert set(meta["thresholds"]) == set(FAMILIES)
    assert all(0.0 < t < 1.0 for t in meta["thresholds"].values())
    assert LearnedEmbedder(tmp_path / "out").enc.net.pool_power == 2.0
    cfg["arch"]["dilations"] = [2, 4]
    with pytest.raises(ValueError, match="architecture"):
        recalibrate(cfg, src)


def test_macro_f1_bootstrap_spread() -> None:
    from ir_env.encoder.metrics import macro_f1_bootstrap

    rng = np.random.default_rng(0)
    fam = rng.random((60, len(FAMILIES))) < 0.4
    perfect = macro_f1_bootstrap(fam.astype(float), fam, groups=np.repeat(np.arange(20), 3))
    assert perfect["se"] == 0.0 and perfect["ci95_low"] == perfect["ci95_high"] == 1.0
    noisy = np.where(rng.random(fam.shape) < 0.2, ~fam, fam).astype(float)
    a = macro_f1_bootstrap(noisy, fam, n=500, seed=1)
    assert a == macro_f1_bootstrap(noisy, fam, n=500, seed=1)  # seeded
    assert 0.0 < a["se"] < 0.2 and a["ci95_low"] < a["ci95_high"] and a["unit"] == "row"
    with pytest.raises(ValueError, match="groups"):
        macro_f1_bootstrap(noisy, fam, groups=np.arange(5))
    with pytest.raises(ValueError, match="shape"):
        macro_f1_bootstrap(noisy[:, :3], fam)


def test_refresh_batchnorm_estimates_the_data_statistics() -> None:
    from experiments.train_encoder import refresh_batchnorm

    torch.manual_seed(0)
    net = DegradationNet(8, len(FAMILIES), batchnorm=True, dct=True)
    x = np.random.default_rng(0).random((10, 3, 32, 32)).astype(np.float16)
    refresh_batchnorm(net, {"x": x}, scenes=10, batch=4)
    bn = net.stem[2]
    assert isinstance(bn, torch.nn.BatchNorm2d) and bn.momentum == 0.1  # momentum restored
    with torch.no_grad():  # the first BatchNorm's input over all 10 scenes
        xt = torch.from_numpy(x.astype(np.float32))
        from ir_env.encoder.model import box3

        d = 8.0 * (xt - box3(xt))
        h = net.stem[1](net.stem[0](torch.cat([xt - 0.5, d, d.abs()], 1)))
    # cumulative average of the per-batch means (batches of 4, 4, 2 scenes)
    means = [h[i:i + 4].mean((0, 2, 3)) for i in (0, 4, 8)]
    torch.testing.assert_close(bn.running_mean, sum(means) / 3, atol=1e-5, rtol=1e-4)


def test_weights_fingerprint_covers_the_pooling_power(tmp_path: Path) -> None:
    from ir_env.encoder.learned import file_sha256, weights_fingerprint

    torch.manual_seed(0)
    d1 = save_weights(DegradationNet(8, len(FAMILIES)).eval(), tmp_path / "p1", np.zeros(8), np.ones(8), {})
    assert weights_fingerprint(d1) == file_sha256(d1 / "encoder.pt")  # unchanged for the plain mean
    info = json.loads((d1 / "encoder.json").read_text())
    (d1 / "encoder.json").write_text(json.dumps({**info, "pool_power": 2.0}))
    assert weights_fingerprint(d1) == file_sha256(d1 / "encoder.pt") + "+pool2"


def test_bad_swa_epochs_fail_before_any_scene_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import train_encoder

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("scenes were made before the config was checked")

    monkeypatch.setattr(train_encoder, "make_dataset", no_data)
    cfg = yaml.safe_load(Path("experiments/configs/encoder_v8.yaml").read_text())
    cfg["train"]["swa_epochs"] = cfg["train"]["epochs"] + 1
    with pytest.raises(ValueError, match="swa_epochs"):
        train_encoder.train(cfg)


def test_bad_precision_fails_before_any_scene_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import train_encoder

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("scenes were made before the config was checked")

    monkeypatch.setattr(train_encoder, "make_dataset", no_data)
    cfg = yaml.safe_load(Path("experiments/configs/encoder_v9.yaml").read_text())
    cfg["train"]["precision"] = "fp16"
    with pytest.raises(ValueError, match="precision.*fp16"):
        train_encoder.train(cfg)


def test_bf16_forward_pass_matches_fp32_closely() -> None:
    """The bf16 training path computes the same pooled features as fp32 up to bfloat16 rounding, and its
    gradients reach every parameter in float32."""
    from experiments.train_encoder import batch_outputs, losses

    cfg = yaml.safe_load(Path("experiments/configs/encoder_v9.yaml").read_text())
    torch.manual_seed(0)
    net = DegradationNet(16, len(FAMILIES), batchnorm=True, dct=True, dilations=(2, 4)).eval()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((2, 3, 64, 64), dtype=np.float32))
    r = torch.from_numpy(np.repeat(np.repeat(rng.integers(0, 3, (2, 8, 8)), 8, 1), 8, 2).astype(np.uint8))
    ref = batch_outputs(net, x, r)["pooled"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = batch_outputs(net, x, r)
    out = {k: v.float() for k, v in out.items()}
    assert out["pooled"].dtype == torch.float32
    scale = ref.abs().max().item()
    assert (out["pooled"] - ref).abs().max().item() < 0.05 * scale
    fam = torch.from_numpy(rng.random((2, 8, len(FAMILIES))) < 0.3)
    loss, _ = losses(net, out, fam, torch.rand(2, 8, len(FAMILIES)), torch.tensor([3, 3]), cfg)
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_bf16_training_is_deterministic_and_loadable(tmp_path: Path) -> None:
    """Same seed, same weights (bit for bit) with the bf16 forward pass; the result loads as float32 weights."""
    from experiments import train_encoder
    from ir_env.encoder import load_encoder

    cfg = yaml.safe_load(Path("experiments/configs/encoder_v9.yaml").read_text())
    cfg["channels"] = 8
    cfg["data"].update(scenes=16, val_scenes=8, crop=64)
    cfg["train"].update(epochs=1, batch_size=8, threads=1)
    digests = []
    for run in ("a", "b"):
        cfg["output_dir"] = str(tmp_path / run)
        train_encoder.train(cfg)
        digests.append((tmp_path / run / "encoder.pt").read_bytes())
    assert digests[0] == digests[1]
    enc = load_encoder(tmp_path / "a")
    assert all(p.dtype == torch.float32 for p in enc.net.parameters())


def test_predict_gives_zero_for_empty_masks_and_takes_no_regions(random_weights: Path) -> None:
    img = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    masks = np.zeros((2, 64, 64), bool)
    masks[0] = True
    for context in (False, True):
        emb = LearnedEmbedder(random_weights, context=context)
        out = emb.predict(img, masks)
        assert not out["family_prob"][1].any() and not out["severity"][1].any()  # linear heads said JPEG 0.96
        none = emb.predict(img, np.zeros((0, 64, 64), bool))
        assert none["family_prob"].shape == (0, len(FAMILIES))
    assert LearnedEmbedder(random_weights).embed(img, np.zeros((0, 64, 64), bool)).shape == (0, emb.dim)


def test_a_weights_file_replaced_after_loading_is_checked_again(random_weights: Path, tmp_path: Path) -> None:
    import shutil
    import time

    d = Path(shutil.copytree(random_weights, tmp_path / "w"))
    LearnedEmbedder(d)
    time.sleep(0.01)
    (d / "encoder.pt").write_bytes(b"replaced")
    with pytest.raises(EncoderWeightsError, match="checksum"):
        LearnedEmbedder(d)


@pytest.mark.parametrize("device", ["gpu", "CPU", None, "meta"])
def test_a_bad_device_is_named(random_weights: Path, device: object) -> None:
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda"):
        LearnedEmbedder(random_weights, device=device)  # type: ignore[arg-type]


def test_family_metrics_by_hand() -> None:
    from ir_env.encoder.metrics import family_metrics

    # 4 regions, 6 families: noise has tp=1, fp=1, fn=1; blur never present nor predicted; the rest perfect
    fam, prob = np.zeros((4, 6)), np.zeros((4, 6))
    fam[[0, 1], 0] = 1
    prob[[0, 2], 0] = 0.9
    fam[:, 2:] = prob[:, 2:] = np.eye(4)
    sev, tsev = np.full((4, 6), 0.5), np.full((4, 6), 0.25)
    m = family_metrics(prob, sev, fam, tsev)
    noise = m["families"]["noise"]
    assert noise["precision"] == noise["recall"] == noise["f1"] == 0.5 and noise["positives"] == 2
    assert noise["severity_mae"] == 0.25
    blur = m["families"]["blur"]
    assert blur["f1"] == 0.0 and blur["positives"] == 0 and np.isnan(blur["severity_mae"])
    assert all(m["families"][f]["f1"] == 1.0 for f in ("jpeg", "haze", "rain", "dark"))
    assert m["regions"] == 4 and m["macro_f1"] == pytest.approx((0.5 + 0 + 4) / 6)
