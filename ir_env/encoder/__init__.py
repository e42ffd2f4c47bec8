"""A learned degradation encoder: a compact CNN whose dense features, mask-pooled per region, give region
embeddings that name the degradation families present and their severity.

- :mod:`ir_env.encoder.model`: the network (:class:`DegradationNet`), mask pooling, receptive field.
- :mod:`ir_env.encoder.learned`: :class:`LearnedEmbedder` (the ``learned`` embedding of the env), weight
  loading with clear errors (:class:`EncoderWeightsError`), saving.

Trained by ``python -m experiments.train_encoder --config experiments/configs/encoder_v8.yaml --ship`` on TRAIN photos
only (the built-in train split plus the train-only ``kodak`` corpus); evaluated by ``spatial-ir encoder-eval``
/ ``experiments/eval_encoder.py``.
"""

from ir_env.encoder.learned import (
    DEFAULT_WEIGHTS,
    EncoderWeightsError,
    LearnedEmbedder,
    cell_weights,
    load_encoder,
    save_weights,
    ship_weights,
)
from ir_env.encoder.model import STRIDE, DegradationNet, mask_weights, pool_masks, receptive_field

__all__ = [
    "DEFAULT_WEIGHTS",
    "STRIDE",
    "DegradationNet",
    "EncoderWeightsError",
    "LearnedEmbedder",
    "cell_weights",
    "load_encoder",
    "mask_weights",
    "pool_masks",
    "receptive_field",
    "save_weights",
    "ship_weights",
]
