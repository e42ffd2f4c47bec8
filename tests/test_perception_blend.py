"""The perception blend: its calibrated formula (predict and the candidate's scoring share it) and region extraction."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.eval_perception_blend import dataset_regions
from ir_env.encoder.learned import blend_probabilities as blend_prob
from restorers.spec import FAMILIES


def test_blend_is_calibrated_at_its_thresholds() -> None:
    rng = np.random.default_rng(0)
    p_lin, p_ctx = rng.random((50, len(FAMILIES))), rng.random((50, len(FAMILIES)))
    t = np.linspace(0.2, 0.7, len(FAMILIES))
    for w in (0.0, 0.3, 1.0):
        raw = (1 - w) * p_lin + w * p_ctx
        out = blend_prob(p_lin, p_ctx, w, t)
        assert np.all((out >= 0) & (out <= 1))
        np.testing.assert_array_equal(out >= 0.5, raw >= t[None] - 1e-9)  # 0.5 sits exactly at the threshold
    np.testing.assert_allclose(blend_prob(p_lin, p_ctx, 0.0, np.full(len(FAMILIES), 0.5)), p_lin, atol=1e-6)


class _Fixed:
    """A stand-in embedder: each region's probability is its mean pixel value (all families)."""

    def predict(self, image: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
        v = np.array([image[m].mean() for m in masks])
        return {"family_prob": np.repeat(v[:, None], len(FAMILIES), 1)}


def test_dataset_regions_follow_the_region_maps() -> None:
    x = np.zeros((2, 3, 8, 8), np.float16)
    x[0, :, :, 4:] = 1.0  # scene 0: region 1 (right half) bright
    rmap = np.zeros((2, 8, 8), np.int8)
    rmap[0, :, 4:] = 1
    fam = np.zeros((2, 8, len(FAMILIES)), bool)
    fam[0, 1, 2] = True
    data = {"x": x, "rmap": rmap, "nreg": np.array([2, 1], np.int8), "fam": fam,
            "sev": np.zeros((2, 8, len(FAMILIES)), np.float32)}
    (p,), f, s = dataset_regions([_Fixed()], data)
    assert p.shape == (3, len(FAMILIES)) and f.shape == (3, len(FAMILIES)) and s.shape == f.shape
    np.testing.assert_allclose(p[:, 0], [0.0, 1.0, 0.0])
    assert f[1, 2] and f.sum() == 1


def test_bad_config_is_one_error_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.eval_perception_blend import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("weights: x\n")
    assert main(["--config", str(cfg)]) == 2
    assert "must be a mapping with" in capsys.readouterr().err
