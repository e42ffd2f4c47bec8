"""The encoder's context head: fit -> save -> load, perception vs embedding, calibration, file errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from experiments.fit_context_head import calibrate, check_config, fit
from experiments.fit_context_head import main as fit_main
from ir_env.encoder import DegradationNet, EncoderWeightsError, LearnedEmbedder, save_weights
from ir_env.encoder.context import CONTEXT_JSON, CONTEXT_PT, ContextHead
from ir_env.encoder.learned import perception_fingerprint, ship_weights, weights_fingerprint
from restorers.spec import FAMILIES


def _cfg(tmp: Path, src: Path) -> dict:
    cfg = yaml.safe_load(Path("experiments/configs/context_head.yaml").read_text())
    cfg["encoder"] = str(src)
    cfg["data"].update(crop=64, scenes=40, val_scenes=16, workers=1)
    cfg["head"].update(hidden=16, members=2)
    cfg["train"].update(epochs=2, batch_size=16, threads=1)
    cfg["output_dir"] = str(tmp / "out")
    return cfg


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A random-init encoder (shipped architecture) and a context head fitted on it from a tiny config."""
    tmp = tmp_path_factory.mktemp("ctx")
    torch.manual_seed(0)
    net = DegradationNet(16, len(FAMILIES), batchnorm=True, dct=True, dilations=(2, 4, 8)).eval()
    src = save_weights(net, tmp / "src", np.zeros(16), np.ones(16), {"thresholds": {f: 0.5 for f in FAMILIES}})
    meta = fit(_cfg(tmp, src), progress=False)
    return src, tmp / "out", meta


def test_fit_writes_a_loadable_weights_directory(fitted: tuple[Path, Path, dict]) -> None:
    src, out, meta = fitted
    for name in ("encoder.pt", "encoder.json", CONTEXT_PT, CONTEXT_JSON):
        assert (out / name).is_file()
    assert meta["train_regions"] > 40 and meta["validation"]["regions"] > 16  # one row per region, not per scene
    assert set(meta["thresholds"]) == set(FAMILIES) and all(0 < t < 1 for t in meta["thresholds"].values())
    emb = LearnedEmbedder(out)
    assert emb.context is not None and emb.context.members == 2
    # the observation fingerprint is the encoder's (observations unchanged); perception's names the head too
    assert weights_fingerprint(out) == weights_fingerprint(src)
    assert perception_fingerprint(out).startswith(weights_fingerprint(src) + "+ctx")
    assert perception_fingerprint(src) == weights_fingerprint(src)


def test_embedding_ignores_the_head_but_perception_sees_the_rest(fitted: tuple[Path, Path, dict]) -> None:
    src, out, _ = fitted
    with_head, without = LearnedEmbedder(out), LearnedEmbedder(src)
    rng = np.random.default_rng(0)
    img = rng.random((64, 64, 3), dtype=np.float32)
    masks = np.zeros((2, 64, 64), bool)
    masks[0, :, :32], masks[1, :, 32:] = True, True
    np.testing.assert_array_equal(with_head.embed(img, masks), without.embed(img, masks))
    a = with_head.predict(img, masks)
    assert a["family_prob"].shape == (2, len(FAMILIES)) and np.all((a["severity"] >= 0) & (a["severity"] <= 1))
    # the head's input for region 0, computed by hand from the pooled features
    pooled = with_head.pooled(img, masks)
    h = with_head.context
    x = h.inputs(torch.tensor(pooled[:1]).float(), torch.tensor(pooled[1:]).float(), torch.ones(1))
    p, s = h(torch.tensor(pooled[:1]).float(), torch.tensor(pooled[1:]).float(), torch.ones(1))
    np.testing.assert_allclose(a["family_prob"][0], p[0].detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x[0, 16:32].detach().numpy(),
                               ((pooled[0] - pooled[1]) / h.std.numpy()).astype(np.float32), rtol=1e-4, atol=1e-5)
    # a region's perception changes with the rest of the image (pixels beyond its receptive field)
    changed = img.copy()
    changed[:, 56:] = rng.random((64, 8, 3), dtype=np.float32)
    b = with_head.predict(changed, masks)
    assert not np.array_equal(a["family_prob"][0], b["family_prob"][0])
    # the whole image has no rest: its input's context half is zero
    whole = h.inputs(torch.ones(1, 16), torch.zeros(1, 16), torch.zeros(1))
    assert torch.all(whole[0, 16:] == 0)
    # switching the head off gives the linear heads
    off = LearnedEmbedder(out, context=False).predict(img, masks)
    np.testing.assert_allclose(off["family_prob"], without.predict(img, masks)["family_prob"])


def test_calibration_puts_half_at_the_best_f1_threshold() -> None:
    torch.manual_seed(0)
    head = ContextHead(4, len(FAMILIES), hidden=8, members=3).eval()
    rng = np.random.default_rng(1)
    rows = {"region": rng.normal(size=(300, 4)), "rest": rng.normal(size=(300, 4)), "has_rest": np.ones(300),
            "fam": rng.random((300, len(FAMILIES))) < 0.4}
    ts = calibrate(head, rows)
    t = lambda k: torch.tensor(rows[k]).float()  # noqa: E731
    with torch.inference_mode():
        raw, _ = head.uncalibrated(head.inputs(t("region"), t("rest"), t("has_rest")))
        cal, _ = head(t("region"), t("rest"), t("has_rest"))
    thr = np.array([ts[f] for f in FAMILIES])
    margin = np.abs(raw.numpy() - thr) > 1e-4
    np.testing.assert_array_equal((cal.numpy() >= 0.5)[margin], (raw.numpy() >= thr)[margin])


def test_head_files_are_checked(fitted: tuple[Path, Path, dict], tmp_path: Path) -> None:
    _, out, _ = fitted
    d = tmp_path / "w"
    shutil.copytree(out, d)
    (d / CONTEXT_PT).write_bytes((d / CONTEXT_PT).read_bytes()[:-8] + b"xxxxxxxx")
    with pytest.raises(EncoderWeightsError, match="checksum"):
        LearnedEmbedder(d)
    shutil.rmtree(d)
    shutil.copytree(out, d)
    info = json.loads((d / CONTEXT_JSON).read_text())
    (d / CONTEXT_JSON).write_text(json.dumps({**info, "encoder_sha256": "0" * 64}))
    with pytest.raises(EncoderWeightsError, match="fitted on encoder weights 000000000000"):
        LearnedEmbedder(d)
    (d / CONTEXT_JSON).unlink()
    with pytest.raises(EncoderWeightsError, match="goes together"):
        LearnedEmbedder(d)
    with pytest.raises(ValueError, match="members"):
        ContextHead(16, 6, members=0)


def test_ship_copies_the_head_and_removes_a_stale_one(fitted: tuple[Path, Path, dict], tmp_path: Path) -> None:
    src, out, _ = fitted
    dst = ship_weights(out, tmp_path / "ship")
    assert (dst / CONTEXT_PT).is_file() and LearnedEmbedder(dst).context is not None
    ship_weights(src, dst)  # an encoder without a head: the old head must not stay beside it
    assert not (dst / CONTEXT_PT).exists() and not (dst / CONTEXT_JSON).exists()


def test_config_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="head.members"):
        check_config({"seed": 0, "output_dir": "x", "data": {}, "head": {}, "train": {}})
    p = tmp_path / "c.yaml"
    p.write_text("seed: 0\n")
    assert fit_main(["--config", str(p)]) == 2
    assert capsys.readouterr().err.startswith("error: config lacks data.corpus")


def test_split_clean_splits_only_clean_crops() -> None:
    from experiments.fit_context_head import split_clean

    n, size = 6, 32
    fam = np.zeros((n, 8, len(FAMILIES)), bool)
    fam[:3, 0, 0] = True  # three degraded one-region scenes; the other three are clean crops
    data = {"rmap": np.zeros((n, size, size), np.int8), "nreg": np.ones(n, np.int8), "fam": fam}
    out = split_clean({k: v.copy() for k, v in data.items()}, 1.0, [0, 1])
    assert np.all(out["nreg"][:3] == 1) and np.all(out["rmap"][:3] == 0)  # degraded scenes untouched
    for i in range(3, n):
        k = int(out["nreg"][i])
        assert 2 <= k <= 4 and set(np.unique(out["rmap"][i])) == set(range(k))  # a partition into k regions
    assert not out["fam"][3:].any()  # every new region is clean
    again = split_clean({k: v.copy() for k, v in data.items()}, 1.0, [0, 1])
    np.testing.assert_array_equal(out["rmap"], again["rmap"])  # seeded
    assert np.all(split_clean({k: v.copy() for k, v in data.items()}, 0.0, [0, 1])["nreg"] == 1)
    with pytest.raises(ValueError, match="clean_split"):
        split_clean(data, 1.5, [0])


def test_rest_of_the_image_excludes_padding(fitted: tuple[Path, Path, dict]) -> None:
    """On a side that is not a multiple of 8 the padded pixels belong to no region and to no rest."""
    _, out, _ = fitted
    emb = LearnedEmbedder(out)
    img = np.random.default_rng(2).random((60, 64, 3), dtype=np.float32)
    masks = np.zeros((2, 60, 64), bool)
    masks[0, :, :32], masks[1, :, 32:] = True, True
    pooled, rest, has_rest = emb._pool(img, masks, rest=True)
    np.testing.assert_allclose(rest[0], pooled[1], rtol=1e-9)  # the rest of region 0 is exactly region 1
    assert np.all(has_rest == 1.0)
    _, _, whole = emb._pool(img, np.ones((1, 60, 64), bool), rest=True)
    assert whole[0] == 0.0


def test_blend_with_the_linear_heads(fitted: tuple[Path, Path, dict], tmp_path: Path) -> None:
    from ir_env.encoder.learned import blend_of, context_fingerprint

    _, out, _ = fitted
    d = tmp_path / "blend"
    shutil.copytree(out, d)
    thr = dict(zip(FAMILIES, np.linspace(0.3, 0.6, len(FAMILIES)), strict=True))
    info = json.loads((d / CONTEXT_JSON).read_text())
    info["blend"] = {"weight": 0.25, "thresholds": thr}
    (d / CONTEXT_JSON).write_text(json.dumps(info))
    rng = np.random.default_rng(1)
    img = rng.random((64, 64, 3), dtype=np.float32)
    masks = np.zeros((3, 64, 64), bool)
    masks[0, :, :20], masks[1, :, 20:] = True, True
    masks[1, :5, 20:25], masks[2, :5, 20:25] = False, True  # a small third region
    lin, ctx, both = (LearnedEmbedder(out, context=False).predict(img, masks), LearnedEmbedder(out).predict(img, masks),
                      LearnedEmbedder(d).predict(img, masks))
    raw = 0.75 * lin["family_prob"] + 0.25 * ctx["family_prob"]
    t = np.asarray([thr[f] for f in FAMILIES])
    np.testing.assert_array_equal(both["family_prob"] >= 0.5, raw >= t[None])  # 0.5 at the blend's thresholds
    np.testing.assert_allclose(both["severity"], 0.75 * lin["severity"] + 0.25 * ctx["severity"], atol=1e-6)
    assert np.all((both["family_prob"] >= 0) & (both["family_prob"] <= 1))
    assert context_fingerprint(d) == context_fingerprint(out) + "+blend0.25"  # planners fitted without it notice
    assert blend_of(info)[0] == 0.25 and blend_of({}) is None
    for bad in ({"weight": 1.5, "thresholds": thr}, {"weight": 0.5},
                {"weight": 0.5, "thresholds": {**thr, "haze": 1.0}}):
        with pytest.raises(EncoderWeightsError, match="blend"):
            blend_of({"blend": bad})


def test_shipping_a_blend_writes_the_copy_only(fitted: tuple[Path, Path, dict], tmp_path: Path) -> None:
    from experiments.eval_perception_blend import ship

    _, out, _ = fitted
    before = (out / CONTEXT_JSON).read_text()
    thr = {f: 0.4 for f in FAMILIES}
    res = {"rule": {"passed": True}, "thresholds": thr, "config": {"blend": 0.5, "out": "x/blend"}}
    dst = ship(res, out, tmp_path / "cand")
    assert (out / CONTEXT_JSON).read_text() == before  # the source stays the plain context head
    assert LearnedEmbedder(dst).blend[0] == 0.5 and LearnedEmbedder(out).blend is None
    with pytest.raises(ValueError, match="failed its rule"):
        ship({**res, "rule": {"passed": False}}, out, tmp_path / "other")


def _table_for(fingerprint: str | None) -> object:
    from policies.rules import RuleTable

    t = RuleTable.load()
    return RuleTable(t.entries, t.bins, dict(t.thresholds), {"encoder_fingerprint": fingerprint}, t.family_masks)


def test_a_rule_table_names_the_perception_it_was_tuned_on(fitted: tuple[Path, Path, dict], tmp_path: Path) -> None:
    src, out, _ = fitted
    assert perception_fingerprint(out, context=False) == weights_fingerprint(src)
    assert perception_fingerprint(out, context=True) != perception_fingerprint(out, context=False)
    assert _table_for(perception_fingerprint(out)).perception_context(out) is True
    assert _table_for(weights_fingerprint(src)).perception_context(out) is False  # tuned on the linear heads
    assert _table_for(weights_fingerprint(src)).perception_context(src) is True  # no head stored: one perception
    assert _table_for("another encoder").perception_context(out) is None
    assert _table_for(None).perception_context(out) is None


def test_planners_read_the_perception_their_table_was_tuned_on(fitted: tuple[Path, Path, dict],
                                                                tmp_path: Path) -> None:
    import warnings

    from policies.baselines import RandomPlanner
    from policies.gate import PerceptionGate
    from policies.rules import PerceivePlanner

    src, out, _ = fitted
    for fp, reads_head in ((weights_fingerprint(src), False), (perception_fingerprint(out), True)):
        path = tmp_path / f"table_{reads_head}.json"
        _table_for(fp).save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the table's thresholds apply: no fallback warning
            planner = PerceivePlanner(weights=out, table=path, region_proposer="grid", max_regions=4)
        assert (planner.embedder.context is not None) is reads_head
        assert planner.thresholds == {f: float(v) for f, v in _table_for(fp).thresholds.items()}
        gate = PerceptionGate(RandomPlanner(), gate="table", weights=out, table=path)
        assert (gate.embedder.context is not None) is reads_head
    # the "encoder" gate reads the encoder's own perception (its context head)
    assert PerceptionGate(RandomPlanner(), gate="encoder", weights=out).embedder.context is not None
    # a table for another encoder: the encoder's own perception with its calibrated 0.5, and a warning
    path = tmp_path / "other.json"
    _table_for("another").save(path)
    with pytest.warns(UserWarning, match="another encoder"):
        planner = PerceivePlanner(weights=out, table=path, region_proposer="grid", max_regions=4)
    assert planner.embedder.context is not None and set(planner.thresholds.values()) == {0.5}


def test_shipped_perception_is_the_blend_and_the_shipped_planners_read_the_linear_heads() -> None:
    from ir_env.encoder.learned import DEFAULT_WEIGHTS
    from policies.baselines import RandomPlanner
    from policies.gate import PerceptionGate
    from policies.rules import PerceivePlanner, RuleTable

    assert LearnedEmbedder().blend is not None  # encoder-eval / predict: the blend with the context head
    assert RuleTable.load().perception_context() is False
    assert RuleTable.load().meta["encoder_fingerprint"] == perception_fingerprint(DEFAULT_WEIGHTS, context=False)
    assert PerceivePlanner().embedder.context is None
    assert PerceptionGate(RandomPlanner()).embedder.context is None
