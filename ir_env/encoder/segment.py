"""The segmentation head: where each degradation family is, cell by cell, from the frozen encoder's features.

The encoder's linear family head can be read on every 8x8 feature cell (``perceive:regions=families`` does),
but each cell is then judged by its own features: smooth sky reads as haze or blur, and the per-cell masks
of those families overlap the true regions poorly (stop 20: per-cell IoU with the true family masks 0.34 for
haze, 0.36 for blur on the 32 test scenes of spatial-mixed). :class:`SegmentHead` is a small convolutional
network on the frozen encoder's dense features, their neighbours (dilated 3x3 convolutions) and the image's
mean feature (the context every cell is compared with), trained with per-cell targets: the fraction of each
cell that lies in a region degraded by each family (``python -m experiments.fit_segment_head``).

It changes only the DENSE family map (:meth:`ir_env.encoder.learned.LearnedEmbedder.dense_family_prob`, used by
``perceive:regions=families``); region embeddings and region predictions keep the linear heads (or the
context head), so observations and every trained policy are untouched.

Stored next to the encoder's weights as ``segment_head.pt`` (a ``state_dict``) and ``segment_head.json``
(format tag, options, the SHA-256 of the ``.pt`` and of the encoder weights it was fitted on, calibrated
per-cell thresholds, the fit's config and metrics). A head fitted on other encoder weights is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ir_env.encoder.headfiles import HeadFiles

#: Format tag of ``segment_head.json``.
SEGMENT_FORMAT = "spatial-ir-segment-head/1"
#: File names inside an encoder weights directory.
SEGMENT_PT, SEGMENT_JSON = "segment_head.pt", "segment_head.json"
#: Clip bound of the standardised features (as the learned embedding's).
FEATURE_CLIP = 5.0


class SegmentHead(nn.Module):
    """Per-cell family logits from a (B, C, h, w) encoder feature map.

    Input per cell: the standardised features ``z`` (buffers ``mean`` / ``std``: the encoder's feature
    statistics, clipped to [-5, 5]) and, with ``image_context``, the image's mean ``z`` broadcast to every
    cell (2C channels). Then one 3x3 convolution per entry of ``dilations`` (``hidden`` channels, ReLU,
    replicate padding so that image borders look like image, not like zero features) and a 1x1 convolution
    to ``families`` logits. Calibration: ``forward`` returns ``sigmoid(logit - threshold_logit)``, so that
    0.5 is each family's best per-cell F1 threshold on validation scenes.

    Args:
        channels: encoder feature width C (>= 1).
        families: number of families F (>= 1).
        hidden: convolution width (>= 1).
        dilations: dilation of each 3x3 convolution (each >= 1; at least one).
        image_context: append the image's mean feature to every cell.
    """

    def __init__(self, channels: int, families: int, hidden: int = 64,
                 dilations: tuple[int, ...] | list[int] = (1, 2, 4), image_context: bool = True) -> None:
        super().__init__()
        dil = tuple(int(d) for d in dilations)
        if min(int(channels), int(families), int(hidden)) < 1 or not dil or min(dil) < 1:
            raise ValueError("segment head: channels, families and hidden must be >= 1 and dilations one or more "
                             f"integers >= 1; got {channels}, {families}, {hidden}, {list(dilations)}")
        self.channels, self.families, self.hidden = int(channels), int(families), int(hidden)
        self.dilations, self.image_context = dil, bool(image_context)
        layers: list[nn.Module] = []
        cin = 2 * self.channels if self.image_context else self.channels
        for d in dil:
            layers += [nn.Conv2d(cin, self.hidden, 3, padding=d, dilation=d, padding_mode="replicate"),
                       nn.ReLU(inplace=True)]
            cin = self.hidden
        layers.append(nn.Conv2d(cin, self.families, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("mean", torch.zeros(self.channels))
        self.register_buffer("std", torch.ones(self.channels))
        self.register_buffer("threshold_logit", torch.zeros(self.families))

    def options(self) -> dict[str, Any]:
        """The constructor's arguments (saved with the weights)."""
        return {"channels": self.channels, "families": self.families, "hidden": self.hidden,
                "dilations": list(self.dilations), "image_context": self.image_context}

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) raw encoder features -> (B, F, h, w) uncalibrated family logits."""
        if feats.dim() != 4 or feats.shape[1] != self.channels:
            raise ValueError(f"segment head expects (B, {self.channels}, h, w) features, got {tuple(feats.shape)}")
        z = ((feats - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)).clamp(-FEATURE_CLIP, FEATURE_CLIP)
        if self.image_context:
            z = torch.cat([z, z.mean((2, 3), keepdim=True).expand_as(z)], dim=1)
        return self.net(z)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) raw encoder features -> (B, F, h, w) calibrated family probabilities in [0, 1]."""
        return torch.sigmoid(self.logits(feats) - self.threshold_logit.view(1, -1, 1, 1))


#: How the pair of files is written and checked (:class:`ir_env.encoder.headfiles.HeadFiles`).
SEGMENT_FILES = HeadFiles(
    label="segment head", pt=SEGMENT_PT, json=SEGMENT_JSON, fmt=SEGMENT_FORMAT,
    factory=SegmentHead,
    options=("channels", "families", "hidden", "dilations", "image_context"),
    fallback="the linear heads' dense map", refit="experiments.fit_segment_head")


def save_segment_head(head: SegmentHead, directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``segment_head.pt`` + ``segment_head.json`` into ``directory`` (created); ``meta`` must hold
    ``encoder_sha256`` (the encoder weights the head was fitted on). Returns the directory."""
    return SEGMENT_FILES.save(head, directory, meta)


def load_segment_head(directory: str | Path, encoder_sha256: str) -> tuple[SegmentHead, dict[str, Any]] | None:
    """The segment head stored in ``directory`` (eval mode) and its JSON, or None when there is none.

    Raises :class:`~ir_env.encoder.learned.EncoderWeightsError` naming the file when it is half present,
    corrupt, of another format, or fitted on encoder weights other than ``encoder_sha256``."""
    return SEGMENT_FILES.load(directory, encoder_sha256)
