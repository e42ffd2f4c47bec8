"""The learned degradation encoder's network and its mask pooling (torch).

:class:`DegradationNet` maps an image (float32 RGB in [0, 1]) to a dense feature map at 1/8 of the input
resolution. Layers (``C`` = ``channels``):

0. fixed input channels: ``x - 0.5``, the detail ``d = 8 (x - box3x3(x))`` and ``|d|`` (9 channels; the
   amplified detail is where noise, JPEG blocks and rain streaks live, and a plain first layer learned it
   much more slowly: measured macro-F1 0.50 vs 0.46 after the same short run, noise F1 0.89 vs 0.47),
1. pixel-unshuffle by 2 (lossless: every pixel's fine detail reaches the first convolution), then 3x3 conv
   36 -> C/2 at 1/2 resolution,
2. 3x3 conv stride 2 -> 3C/4 at 1/4, then 3x3 conv stride 2 -> C at 1/8,
3. (``dct=True``) the fixed 8x8 block DCT of the luminance, aligned with the image origin like JPEG's grid:
   ``log1p(255 |c|)`` of its 64 coefficients per cell is concatenated to the 1/8 features (JPEG zeroes
   high-frequency coefficients; without it the first full run reached JPEG F1 0.67, where the hand-made
   DCT statistic gives 0.99),
4. 3x3 convs with dilations ``dilations`` (default 2 and 4) at 1/8 (context for haze, low light and long
   motion blur).

ReLU after every conv; with ``batchnorm=True`` a BatchNorm before each ReLU (training converges faster; in
eval mode it is a fixed per-channel affine map, so a feature cell still depends only on the pixels in its
receptive field). The receptive field is :func:`receptive_field` px; a feature cell never sees pixels
farther than that.

Heads are LINEAR on the features, so the logits of a region (features mean-pooled over its mask) equal the
mask-weighted mean of the per-cell logits: the same heads give dense per-cell predictions.

- ``family``: one logit per degradation family (multi-label; sigmoid),
- ``severity``: per family, the severity in [0, 1] (sigmoid; trained only where the family is present).
- ``quality`` (only when built with ``quality=True``, the ``npsnr`` judge's network): per cell, the
  predicted log10 of the mean squared error against the unknown clean image.

:func:`pool_masks` pools a feature map over full-resolution masks: each mask is area-averaged onto the
feature grid (cell weight = fraction of the cell's pixels inside the mask), so features outside a mask's
cells never enter its embedding. With ``pool_power`` p > 1 the weights are raised to p first: cells wholly
inside a region count fully, cells it shares with a neighbour less (the shipped encoder uses p = 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ir_env.forksafe import fork_safe_torch

fork_safe_torch()  # forked vector-env workers must not hang on their first torch op

#: Down-sampling factor of the feature map.
STRIDE = 8


def dct_basis(n: int = STRIDE) -> torch.Tensor:
    """(n*n, 1, n, n) orthonormal 2-D DCT-II basis filters (JPEG's block transform for ``n = 8``)."""
    k = torch.arange(n, dtype=torch.float64)
    a = torch.full((n,), (2.0 / n) ** 0.5, dtype=torch.float64)
    a[0] = (1.0 / n) ** 0.5
    c = a[:, None] * torch.cos((2 * k[None, :] + 1) * k[:, None] * torch.pi / (2 * n))  # (u, x)
    return torch.einsum("ux,vy->uvxy", c, c).reshape(n * n, 1, n, n).float()


#: JPEG's luminance weights (ITU-R BT.601), applied before the block DCT.
LUMA = (0.299, 0.587, 0.114)


class SpaceToDepth(nn.Module):
    """``nn.PixelUnshuffle(2)`` by view + permute: the same values in the same channel order, about 5x
    faster on a CPU (torch's pixel-unshuffle kernel is slow there); kept as a module so that the layer
    indices of saved weights do not move."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def box3(x: torch.Tensor) -> torch.Tensor:
    """3x3 mean of (B, C, H, W) with replicated borders, as two 1-D sums (``F.avg_pool2d`` with stride 1 is
    about 10x slower on a CPU; results agree to float rounding)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    r = p[..., :-2] + p[..., 1:-1] + p[..., 2:]
    return (r[..., :-2, :] + r[..., 1:-1, :] + r[..., 2:, :]) / 9.0


def _block(cin: int, cout: int, batchnorm: bool, **conv: int) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, bias=not batchnorm, **conv)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return layers


class DegradationNet(nn.Module):
    """Dense degradation features (stride :data:`STRIDE`) plus linear family and severity heads.

    Args:
        channels: width ``C`` of the feature map (>= 8, a multiple of 4).
        families: number of degradation families (heads' output size).
        quality: also build the per-cell log10-MSE head (a small MLP: C -> C/2 -> 1).
        batchnorm: BatchNorm before every ReLU (module docstring).
        dct: concatenate the fixed 8x8 block-DCT stream at 1/8 resolution (module docstring).
        dilations: dilation of each context convolution at 1/8 resolution (one conv per entry).
        pool_power: a region pools the feature cells with weights ``fraction_inside ** pool_power``
            (1: the plain mask-weighted mean; larger values favour cells wholly inside the region over
            cells it shares with a neighbour). No parameters: it can change after training.
    """

    def __init__(self, channels: int = 64, families: int = 6, quality: bool = False, batchnorm: bool = False,
                 dct: bool = False, dilations: tuple[int, ...] | list[int] = (2, 4), pool_power: float = 1.0) -> None:
        super().__init__()
        if channels < 8 or channels % 4:
            raise ValueError(f"channels must be a multiple of 4 and >= 8, got {channels}")
        c2, c3 = channels // 2, 3 * channels // 4
        self.channels, self.families = int(channels), int(families)
        self.batchnorm, self.dct = bool(batchnorm), bool(dct)
        if not 1.0 <= float(pool_power) <= 16.0:
            raise ValueError(f"pool_power must be in [1, 16], got {pool_power}")
        self.pool_power = float(pool_power)
        self.fused = False
        bn = self.batchnorm
        self.stem = nn.Sequential(
            SpaceToDepth(),
            *_block(36, c2, bn, padding=1),
            *_block(c2, c3, bn, stride=2, padding=1),
            *_block(c3, channels, bn, stride=2, padding=1),
        )
        extra = STRIDE * STRIDE if self.dct else 0
        self.dilations = tuple(int(d) for d in dilations)
        if not self.dilations or min(self.dilations) < 1:
            raise ValueError(f"dilations must be one or more integers >= 1, got {dilations}")
        layers: list[nn.Module] = []
        for i, d in enumerate(self.dilations):
            layers += _block(channels + (extra if i == 0 else 0), channels, bn, padding=d, dilation=d)
        self.context = nn.Sequential(*layers)
        self.register_buffer("dct_filters", dct_basis(), persistent=False)
        self.family_head = nn.Linear(channels, families)
        self.severity_head = nn.Linear(channels, families)
        self.quality_head = (nn.Sequential(nn.Linear(channels, c2), nn.ReLU(inplace=True), nn.Linear(c2, 1))
                             if quality else None)

    def fuse_for_inference(self) -> DegradationNet:
        """Fold every BatchNorm into the convolution before it (eval-mode arithmetic, about 10% faster on a
        CPU); the network is put in eval mode and can no longer be trained or saved as a training
        ``state_dict``. Returns ``self``."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        self.eval()
        for seq in (self.stem, self.context):
            mods = list(seq)
            for i in range(len(mods) - 1):
                if isinstance(mods[i], nn.Conv2d) and isinstance(mods[i + 1], nn.BatchNorm2d):
                    seq[i] = fuse_conv_bn_eval(mods[i], mods[i + 1])
                    seq[i + 1] = nn.Identity()
        self.fused = True
        return self

    def region_weights(self, w: Any) -> Any:
        """Cell weights (fraction of each cell inside a region; numpy or torch) -> pooling weights
        ``w ** pool_power`` (``w`` itself for the plain mean)."""
        return w if self.pool_power == 1.0 else w ** self.pool_power

    def architecture(self) -> dict[str, Any]:
        """The constructor arguments (saved next to the weights)."""
        return {"channels": self.channels, "families": self.families, "quality": self.quality_head is not None,
                "batchnorm": self.batchnorm, "dct": self.dct, "dilations": list(self.dilations),
                "pool_power": self.pool_power}

    @classmethod
    def from_architecture(cls, arch: dict) -> DegradationNet:
        """A new network from :meth:`architecture`'s keys (``channels`` and ``families`` required; the
        others default to the constructor's defaults, as in files written before they existed)."""
        return cls(int(arch["channels"]), int(arch["families"]), quality=bool(arch.get("quality", False)),
                   batchnorm=bool(arch.get("batchnorm", False)), dct=bool(arch.get("dct", False)),
                   dilations=tuple(arch.get("dilations", (2, 4))), pool_power=float(arch.get("pool_power", 1.0)))

    def block_dct(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 64, H/8, W/8) ``log1p(255 |c|)`` of the luminance's 8x8 DCT."""
        luma = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        y = (x * luma).sum(1, keepdim=True)
        return torch.log1p(255.0 * F.conv2d(y, self.dct_filters.to(x.dtype), stride=STRIDE).abs())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], H and W multiples of 8 -> (B, C, H/8, W/8) features (>= 0)."""
        d = 8.0 * (x - box3(x))
        f = self.stem(torch.cat([x - 0.5, d, d.abs()], dim=1))
        if self.dct:
            f = torch.cat([f, self.block_dct(x)], dim=1)
        return self.context(f)

    def heads(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., C) pooled features -> (family logits, severity logits), each (..., families)."""
        return self.family_head(feats), self.severity_head(feats)

    def log_mse(self, feats: torch.Tensor) -> torch.Tensor:
        """(..., C) features -> (...) predicted log10 MSE per cell (needs ``quality=True``)."""
        if self.quality_head is None:
            raise ValueError("this network has no quality head (built with quality=False)")
        return self.quality_head(feats).squeeze(-1)


def receptive_field(dilations: tuple[int, ...] | list[int] = (2, 4)) -> int:
    """Side of the receptive field of one feature cell, in input pixels, for context convolutions with these
    ``dilations`` (from the layer list above; the DCT stream's 8x8 block is inside it)."""
    rf, jump = 4, 2  # 3x3 detail filter, then pixel-unshuffle: one unshuffled pixel covers 2x2 input pixels
    for k, s, d in ((3, 1, 1), (3, 2, 1), (3, 2, 1), *((3, 1, int(d)) for d in dilations)):
        rf += (k - 1) * d * jump
        jump *= s
    return rf


def mask_weights(masks: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """(K, H, W) bool/float masks -> (K, H/stride, W/stride) cell weights = fraction of the cell inside."""
    return F.avg_pool2d(masks.float().unsqueeze(1), stride).squeeze(1)


def pool_masks(feats: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mask-weighted mean of a (C, h, w) feature map for (K, h, w) cell weights -> (K, C).

    A region with zero total weight gets a zero row.
    """
    k = weights.shape[0]
    w = weights.reshape(k, -1).to(feats.dtype)
    total = w.sum(1, keepdim=True)
    pooled = w @ feats.reshape(feats.shape[0], -1).T
    return torch.where(total > 0, pooled / total.clamp_min(1e-12), torch.zeros_like(pooled))
