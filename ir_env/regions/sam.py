"""Segment Anything (``segment_anything.SamAutomaticMaskGenerator``) turned into a partition.

SAM weights cannot be downloaded here: give a local checkpoint path (``sam_vit_b_01ec64.pth`` etc.), or
pass a built ``sam_model`` (e.g. ``segment_anything.build_sam_vit_b(checkpoint=None)``, randomly
initialised, for tests), or any ``mask_generator`` object with SAM's ``generate(uint8 HxWx3)`` method.

Overlapping SAM masks become a partition by painting them largest area first, so smaller (nested)
masks stay on top; pixels no mask covers form one leftover region; then fragments below
``min_area_frac`` and the cheapest adjacent pairs (Ward cost on mean Lab colour) are merged down to
``max_regions``. No masks at all -> one region (the whole image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ir_env.regions.base import RegionProposer

#: SAM backbones accepted as ``model_type``.
SAM_MODEL_TYPES: tuple[str, ...] = ("vit_b", "vit_l", "vit_h")


def records_to_labels(records: list[dict[str, Any]], shape: tuple[int, int]) -> np.ndarray:
    """Label map ``(H, W)`` from SAM records (``"segmentation"`` HxW bool, optional ``"area"``,
    ``"predicted_iou"``): masks painted in descending area (ties: higher predicted IoU, then list order),
    so smaller masks overwrite larger ones; uncovered pixels get one extra label."""
    h, w = shape
    keyed = []
    for i, r in enumerate(records):
        seg = np.asarray(r["segmentation"], dtype=bool)
        if seg.shape != (h, w):
            raise ValueError(f"SAM mask {i} has shape {seg.shape}, image is {(h, w)}")
        area = int(r.get("area", seg.sum()))
        keyed.append((-area, -float(r.get("predicted_iou", 0.0)), i, seg))
    keyed.sort(key=lambda t: t[:3])
    labels = np.full((h, w), -1, dtype=np.int32)
    for j, (_, _, _, seg) in enumerate(keyed):
        labels[seg] = j
    labels[labels < 0] = len(keyed)
    return labels


class SamProposer(RegionProposer):
    """SAM automatic masks merged into at most ``max_regions`` regions.

    Args:
        checkpoint: path to a local SAM checkpoint (``.pth``) for ``model_type``.
        model_type: ``vit_b``, ``vit_l`` or ``vit_h``.
        device: torch device string (``"cpu"``, ``"cuda"``).
        sam_model: a pre-built ``segment_anything.modeling.Sam`` (instead of ``checkpoint``).
        mask_generator: any object with ``generate(uint8 HxWx3) -> list[dict]`` (instead of both).
        points_per_side: SAM's prompt grid side (>= 1); 16 keeps CPU time moderate.
        pred_iou_thresh, stability_score_thresh: SAM's mask filters, in [0, 1].
        min_area_frac: fragments smaller than this fraction of the image are merged.
    """

    name = "sam"

    def __init__(self, max_regions: int = 8, seed: int = 0, checkpoint: str | Path | None = None,
                 model_type: str = "vit_b", device: str = "cpu", sam_model: Any = None,
                 mask_generator: Any = None, points_per_side: int = 16, pred_iou_thresh: float = 0.88,
                 stability_score_thresh: float = 0.95, min_area_frac: float = 0.01, **kwargs: Any) -> None:
        super().__init__(max_regions, seed, min_area_frac=min_area_frac, **kwargs)
        if model_type not in SAM_MODEL_TYPES:
            raise ValueError(f"unknown SAM model_type {model_type!r}; "
                             f"choose one of {', '.join(SAM_MODEL_TYPES)}")
        if points_per_side < 1:
            raise ValueError(f"points_per_side must be >= 1, got {points_per_side}")
        for opt, value in (("pred_iou_thresh", pred_iou_thresh), ("stability_score_thresh", stability_score_thresh)):
            if not 0.0 <= float(value) <= 1.0:  # also NaN
                raise ValueError(f"{opt} must lie in [0, 1], got {value!r}")
        from ir_env.quality import normalise_device

        device = normalise_device(device)  # before a multi-GB checkpoint is read
        if mask_generator is not None:
            if not callable(getattr(mask_generator, "generate", None)):
                raise ValueError("mask_generator must have a generate(image) method")
            self.generator = mask_generator
            return
        if sam_model is None:
            if checkpoint is None:
                raise ValueError(
                    "the sam proposer needs SAM weights: pass checkpoint='path/to/sam_vit_b_01ec64.pth' "
                    "(with model_type), or a built sam_model; SAM weights cannot be downloaded here")
            path = Path(checkpoint).expanduser()
            if not path.is_file():
                raise FileNotFoundError(
                    f"SAM checkpoint not found: {path} (model_type={model_type}). SAM weights cannot be "
                    f"downloaded here; place the official {model_type} checkpoint at that path")
            from segment_anything import sam_model_registry

            try:
                sam_model = sam_model_registry[model_type](checkpoint=str(path))
            except Exception as e:  # noqa: BLE001 - unpickling, empty file or state-dict mismatch: the file does not fit
                reason = " ".join(str(e).split())[:200] or type(e).__name__
                raise ValueError(f"{path} is not a SAM {model_type} checkpoint (corrupt or empty file, or weights of "
                                 f"another model_type?): {reason}") from None
        sam_model.to(device)
        sam_model.eval()
        from segment_anything import SamAutomaticMaskGenerator

        self.generator = SamAutomaticMaskGenerator(
            sam_model, points_per_side=int(points_per_side), pred_iou_thresh=float(pred_iou_thresh),
            stability_score_thresh=float(stability_score_thresh), output_mode="binary_mask")

    def _labels(self, image: np.ndarray, scene: Any) -> np.ndarray:
        u8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
        records = list(self.generator.generate(u8))
        return records_to_labels(records, image.shape[:2])
