"""The context head: a region's degradation families and severities judged against the rest of its image.

The encoder's linear heads read a region's pooled features alone. Smooth content looks like blur or
haze and fine texture like rain, when seen alone; next to the rest of the same photo the difference
shows. :class:`ContextHead` is a small ensemble of MLPs on the region's pooled features ``r`` and those
of the rest of the image ``q`` (both from the frozen encoder), fitted by
``python -m experiments.fit_context_head --config experiments/configs/context_head.yaml``.

It is used for PERCEPTION only (:meth:`ir_env.encoder.learned.LearnedEmbedder.predict`: the ``perceive``
planner, the dfs perception step, ``spatial-ir encoder-eval``). The region EMBEDDING the env observes is
unchanged (linear heads, mask-pooled features), so it still depends only on the pixels near its region.

Stored next to the encoder's weights as ``context_head.pt`` (a ``state_dict``) and ``context_head.json``
(format tag, options, the SHA-256 of the ``.pt`` and of the encoder weights it was fitted on, calibrated
thresholds, the fit's config and metrics). A head fitted on other encoder weights is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ir_env.encoder.headfiles import HeadFiles

#: Format tag of ``context_head.json``.
CONTEXT_FORMAT = "spatial-ir-context-head/1"
#: File names inside an encoder weights directory.
CONTEXT_PT, CONTEXT_JSON = "context_head.pt", "context_head.json"


class ContextHead(nn.Module):
    """Region family / severity from the region's pooled features and the rest of the image's.

    Input per region (standardised by the buffers ``mean`` / ``std``, the encoder's feature statistics):
    ``[z(r), has_rest * (z(r) - z(q)), has_rest]``, ``has_rest`` 0 for a region covering the whole image.
    ``members`` MLPs of ``layers`` x (Linear ``hidden``, ReLU, Dropout) end in ``2 F`` linear outputs
    (family logits, severity logits). Probabilities and severities are the members' means; the family
    probability is then calibrated by the buffer ``threshold_logit``, ``sigmoid(logit(p) - threshold_logit)``,
    so that 0.5 is each family's best-F1 threshold on validation scenes (as for the linear heads).

    Args:
        channels: encoder feature width C (>= 1).
        families: number of families F (>= 1).
        hidden: MLP width (>= 1).
        layers: hidden layers per member (>= 1).
        members: ensemble size (>= 1).
        dropout: dropout probability while training, in [0, 1).
    """

    def __init__(self, channels: int, families: int, hidden: int = 128, layers: int = 1, members: int = 1,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if min(int(channels), int(families), int(hidden), int(layers), int(members)) < 1 \
                or not 0.0 <= float(dropout) < 1.0:
            raise ValueError("context head: channels, families, hidden, layers and members must be >= 1 and "
                             f"dropout in [0, 1); got {channels}, {families}, {hidden}, {layers}, {members}, "
                             f"{dropout}")
        self.channels, self.families = int(channels), int(families)
        self.hidden, self.layers, self.members, self.dropout = int(hidden), int(layers), int(members), float(dropout)
        self.nets = nn.ModuleList([self._member() for _ in range(self.members)])
        self.register_buffer("mean", torch.zeros(self.channels))
        self.register_buffer("std", torch.ones(self.channels))
        self.register_buffer("threshold_logit", torch.zeros(self.families))

    def _member(self) -> nn.Module:
        mods: list[nn.Module] = []
        d = 2 * self.channels + 1
        for _ in range(self.layers):
            mods += [nn.Linear(d, self.hidden), nn.ReLU(), nn.Dropout(self.dropout)]
            d = self.hidden
        mods.append(nn.Linear(d, 2 * self.families))
        return nn.Sequential(*mods)

    def options(self) -> dict[str, Any]:
        """The constructor's arguments (saved with the weights)."""
        return {"channels": self.channels, "families": self.families, "hidden": self.hidden,
                "layers": self.layers, "members": self.members, "dropout": self.dropout}

    def inputs(self, region: torch.Tensor, rest: torch.Tensor, has_rest: torch.Tensor) -> torch.Tensor:
        """(..., C) pooled region and rest-of-image features and (...) 0/1 ``has_rest`` -> (..., 2C + 1)."""
        zr = (region - self.mean) / self.std
        zq = (rest - self.mean) / self.std
        h = has_rest.to(region.dtype)[..., None]
        return torch.cat([zr, h * (zr - zq), h], dim=-1)

    def member_logits(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per member, (family logits, severity logits), each (..., F), of head inputs ``x`` (for training)."""
        out = []
        for net in self.nets:
            y = net(x)
            out.append((y[..., : self.families], y[..., self.families:]))
        return out

    def uncalibrated(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Members' mean family probability (before calibration) and severity of head inputs ``x``."""
        outs = self.member_logits(x)
        p = torch.stack([torch.sigmoid(lf) for lf, _ in outs]).mean(0)
        return p, torch.stack([torch.sigmoid(ls) for _, ls in outs]).mean(0)

    def forward(self, region: torch.Tensor, rest: torch.Tensor, has_rest: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated family probabilities and severities, each (..., F) in [0, 1]."""
        p, s = self.uncalibrated(self.inputs(region, rest, has_rest))
        p = p.clamp(1e-6, 1.0 - 1e-6)
        return torch.sigmoid(torch.logit(p) - self.threshold_logit), s


#: How the pair of files is written and checked (:class:`ir_env.encoder.headfiles.HeadFiles`).
CONTEXT_FILES = HeadFiles(
    label="context head", pt=CONTEXT_PT, json=CONTEXT_JSON, fmt=CONTEXT_FORMAT,
    factory=ContextHead,
    options=("channels", "families", "hidden", "layers", "members", "dropout"),
    fallback="the linear heads", refit="experiments.fit_context_head")


def save_context_head(head: ContextHead, directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``context_head.pt`` + ``context_head.json`` into ``directory`` (created); ``meta`` must hold
    ``encoder_sha256`` (the encoder weights the head was fitted on). Returns the directory."""
    return CONTEXT_FILES.save(head, directory, meta)


def load_context_head(directory: str | Path, encoder_sha256: str) -> tuple[ContextHead, dict[str, Any]] | None:
    """The context head stored in ``directory`` (eval mode) and its JSON, or None when there is none.

    Raises :class:`~ir_env.encoder.learned.EncoderWeightsError` naming the file when it is half present,
    corrupt, of another format, or fitted on encoder weights other than ``encoder_sha256``."""
    return CONTEXT_FILES.load(directory, encoder_sha256)
