"""Shared fixtures: small real photos (built-in corpus) and single-threaded libraries for stable timings."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

cv2.setNumThreads(1)


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A 128 px real photo (float32 HxWx3 in [0, 1])."""
    from skimage import data

    img = data.astronaut()[100:356:2, 150:406:2].astype(np.float32) / 255.0
    return np.ascontiguousarray(img)


@pytest.fixture(scope="session")
def photo96() -> np.ndarray:
    """A 96 px real photo (coffee)."""
    from skimage import data

    img = data.coffee()[100:292:2, 200:392:2].astype(np.float32) / 255.0
    return np.ascontiguousarray(img)
