"""``npsnr``: a no-reference judge that predicts PSNR (dB) from the degraded image alone.

The network is the learned encoder's (:class:`~ir_env.encoder.model.DegradationNet`, started from the
trained encoder) with a quality head that predicts, per 8x8 cell, the log10 of the mean squared error
against the unknown clean image. It is trained by ``experiments/train_npsnr.py`` on TRAIN-split scenes
*and on the outputs of restoration tools run on them* (the images a search planner judges), with a
pairwise ranking loss inside groups of candidates, so that it ranks a search's candidates the way PSNR
would. The score of an image (or of a masked region) is ``-10 log10(mean of the predicted cell MSEs)``,
cells weighted by the fraction of their pixels inside the mask.

It sees only what the synthetic degradations and our tools produce; on other photographic defects it
is no better than its training data. Weights: ``ir_env/encoder/npsnr_weights/`` (``encoder.json`` +
``encoder.pt``, same format and errors as the encoder's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ir_env.encoder.learned import EncoderWeightsError, LearnedEmbedder, cell_weights

#: Directory of the shipped npsnr weights.
DEFAULT_NPSNR_WEIGHTS = Path(__file__).resolve().parent / "npsnr_weights"


class PredictedPSNR:
    """Callable ``(image, mask=None) -> float``: predicted PSNR in dB (higher is better), no reference.

    Args:
        weights: directory with the npsnr network's ``encoder.pt`` / ``encoder.json`` (default: shipped).
        device: torch device (``"cpu"``; ``"cuda"`` when available).
    """

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        self.embedder = LearnedEmbedder(weights if weights is not None else DEFAULT_NPSNR_WEIGHTS, device=device)
        if self.embedder.enc.net.quality_head is None:
            raise EncoderWeightsError(f"{weights or DEFAULT_NPSNR_WEIGHTS}: these encoder weights have no "
                                      "quality head (train them with experiments/train_npsnr.py)")

    def cell_log_mse(self, image: np.ndarray) -> np.ndarray:
        """(ceil(H/8), ceil(W/8)) float64 predicted log10 MSE per 8x8 cell of ``image`` (float32 RGB [0, 1])."""
        dense = self.embedder.dense_features(image)
        with torch.inference_mode():
            out = self.embedder.enc.net.log_mse(torch.from_numpy(dense).to(self.embedder.device))
        return out.cpu().numpy().astype(np.float64)

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> float:
        mse = 10.0 ** self.cell_log_mse(image)
        if mask is None:
            return float(-10.0 * np.log10(mse.mean()))
        w = cell_weights(np.asarray(mask, bool)[None])[0]
        if w.sum() <= 0:
            raise ValueError("mask is empty: no pixel to score")
        return float(-10.0 * np.log10((w * mse).sum() / w.sum()))
