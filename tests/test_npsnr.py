"""The ``npsnr`` no-reference judge: scoring rules with random weights, behaviour of the shipped weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ir_env.corpus import center_crop, load_corpus
from ir_env.encoder import DegradationNet, EncoderWeightsError, cell_weights, save_weights
from ir_env.encoder.judge import DEFAULT_NPSNR_WEIGHTS, PredictedPSNR
from restorers.spec import FAMILIES


@pytest.fixture(scope="module")
def random_judge(tmp_path_factory: pytest.TempPathFactory) -> PredictedPSNR:
    torch.manual_seed(0)
    net = DegradationNet(8, len(FAMILIES), quality=True, batchnorm=True, dct=True).eval()
    d = tmp_path_factory.mktemp("npsnr")
    save_weights(net, d, np.zeros(8), np.ones(8), {"judge": "npsnr"})
    return PredictedPSNR(d)


def test_score_is_psnr_of_the_predicted_cell_mse(random_judge: PredictedPSNR) -> None:
    img = np.random.default_rng(0).random((64, 72, 3), dtype=np.float32)
    cells = random_judge.cell_log_mse(img)
    assert cells.shape == (8, 9)
    assert random_judge(img) == pytest.approx(-10 * np.log10(np.mean(10.0 ** cells)))
    mask = np.zeros((64, 72), bool)
    mask[:20, 30:] = True
    w = cell_weights(mask[None])[0]
    expect = -10 * np.log10((w * 10.0 ** cells).sum() / w.sum())
    assert random_judge(img, mask) == pytest.approx(expect)
    assert random_judge(img) == random_judge(img.copy())  # deterministic
    with pytest.raises(ValueError, match="empty"):
        random_judge(img, np.zeros((64, 72), bool))
    with pytest.raises(ValueError, match="NaN|finite"):
        bad = img.copy()
        bad[0, 0, 0] = np.nan
        random_judge(bad)


def test_weights_without_quality_head_are_refused(tmp_path: Path) -> None:
    net = DegradationNet(8, len(FAMILIES)).eval()
    save_weights(net, tmp_path, np.zeros(8), np.ones(8), {})
    with pytest.raises(EncoderWeightsError, match="quality head"):
        PredictedPSNR(tmp_path)


shipped = pytest.mark.skipif(not (DEFAULT_NPSNR_WEIGHTS / "encoder.pt").exists(), reason="no shipped npsnr weights")


@shipped
def test_shipped_npsnr_prefers_clean_images_on_test_photos() -> None:
    from ir_env.quality import get_metric
    from ir_env.recipes import synthesize

    judge = get_metric("npsnr")
    assert judge.info.higher_better and not judge.info.needs_reference
    photos = [center_crop(p, 128) for p in load_corpus("builtin", "test")]
    rng = np.random.default_rng(0)
    for clean in photos:  # strong noise always scores below the photo
        noisy = np.clip(clean + rng.normal(0, 50 / 255, clean.shape), 0, 1).astype(np.float32)
        assert judge(noisy) < judge(clean) - 0.3
    prefers = []
    for i, clean in enumerate(photos):  # a ranking judge: the clean image above its degraded scene
        for k in range(3):
            sc = synthesize(clean, "spatial-mixed", seed=100 * i + k)
            prefers.append(judge(sc.clean) > judge(sc.degraded))
    assert np.mean(prefers) >= 2 / 3, prefers
