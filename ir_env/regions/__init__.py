"""Region proposers: split a degraded image into at most ``max_regions`` disjoint masks covering it.

Every proposer returns a bool ``(K, H, W)`` partition, ``1 <= K <= max_regions``, no empty mask, masks
ordered by area (largest first; ties by the raster index of the first pixel); same seed, same masks.

=========================  ===============================================================================
name                       regions
=========================  ===============================================================================
``whole``                  one region, the whole image (GlobalIR)
``grid``                   rows x cols near-square tiles, rows * cols <= max_regions
``slic``                   scikit-image SLIC superpixels, merged by Lab colour
``felzenszwalb``           scikit-image Felzenszwalb segments, merged by Lab colour
``degradation-clusters``   SLIC superpixels merged by Ward linkage on local degradation statistics (k-means optional)
``degradation-clusters-learned``  the same on the learned encoder's dense family / severity predictions
``sam``                    Segment Anything automatic masks (local checkpoint or built model required)
``oracle``                 the scene's ground-truth masks (needs ``scene``)
=========================  ===============================================================================

Use :func:`make_proposer` and :func:`pad_masks` (fixed-size observation slots).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ir_env.option_errors import non_number_option, repeated_keyword, unexpected_keyword
from ir_env.regions.base import (
    RegionProposer,
    apply_merges,
    check_partition,
    labels_to_masks,
    masks_to_labels,
    merge_regions,
    merges_before_stop,
    pad_masks,
)
from ir_env.regions.clusters import DegradationClustersProposer, LearnedClustersProposer
from ir_env.regions.features import FEATURE_NAMES, REGION_FEATURE_NAMES, degradation_features, region_features
from ir_env.regions.sam import SamProposer
from ir_env.regions.simple import GridProposer, OracleProposer, WholeProposer, grid_shape
from ir_env.regions.superpixel import FelzenszwalbProposer, SlicProposer

_PROPOSERS: dict[str, type[RegionProposer]] = {
    cls.name: cls
    for cls in (WholeProposer, GridProposer, SlicProposer, FelzenszwalbProposer, DegradationClustersProposer,
                LearnedClustersProposer, SamProposer, OracleProposer)
}


def list_proposers() -> list[str]:
    """Names accepted by :func:`make_proposer`, in a fixed order."""
    return list(_PROPOSERS)


def make_proposer(name: str, max_regions: int = 8, seed: int = 0, **kwargs: Any) -> RegionProposer:
    """Build the proposer ``name`` (see :func:`list_proposers`) with at most ``max_regions`` regions.

    ``kwargs`` go to the proposer's constructor (e.g. ``checkpoint=...`` for ``sam``, ``rows``/``cols`` for
    ``grid``, ``spatial_weight`` for ``degradation-clusters``). Unknown names raise ``ValueError``.
    """
    if not isinstance(name, str) or name not in _PROPOSERS:
        raise ValueError(f"unknown region proposer {name!r}; choose one of {', '.join(_PROPOSERS)}")
    for key, value in kwargs.items():  # NaN passes every < / <= check and gave one region
        if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
            raise ValueError(f"region proposer {name!r}: option {key}={value!r} must be a finite number")
    try:
        return _PROPOSERS[name](max_regions=max_regions, seed=seed, **kwargs)
    except ValueError as e:
        bad = non_number_option(e, kwargs)  # float('x') inside the constructor: name the option
        if bad:
            raise ValueError(f"region proposer {name!r}: bad option value {bad[0]}={bad[1]!r} (must be a number)"
                             ) from None
        raise
    except TypeError as e:  # Python's wording names the class's __init__, not the proposer or the option
        fixed, unknown = repeated_keyword(e), unexpected_keyword(e)
        if fixed:
            raise ValueError(f"region proposer {name!r} sets {fixed} itself; it is not an option") from None
        if unknown:
            raise ValueError(f"region proposer {name!r} has no option {unknown!r}") from None
        if kwargs:
            raise ValueError(f"region proposer {name!r}: bad option value in {kwargs} ({e})") from None
        raise


__all__ = [
    "FEATURE_NAMES",
    "REGION_FEATURE_NAMES",
    "DegradationClustersProposer",
    "FelzenszwalbProposer",
    "GridProposer",
    "OracleProposer",
    "RegionProposer",
    "SamProposer",
    "SlicProposer",
    "WholeProposer",
    "apply_merges",
    "check_partition",
    "degradation_features",
    "grid_shape",
    "labels_to_masks",
    "list_proposers",
    "make_proposer",
    "masks_to_labels",
    "merge_regions",
    "merges_before_stop",
    "pad_masks",
    "region_features",
]
