"""The seven degradation kinds: severity -> physical parameters, and their application to an image.

Every kind has a *severity* in [0, 1] that :func:`severity_to_params` maps to physical parameters
(units in the table below); :func:`apply_kind` applies explicit physical parameters, :func:`degrade`
does both. :func:`params_to_severity` is the inverse (used to label recipes drawn from published
parameter ranges), :func:`severity_level` names the level on the four-level severity ladder of the agentic-
restoration literature (``_LADDER_PARAMS``: noise sigma 4/15/30/45, JPEG quality 50/30/20/10, ...).

=========  ==========================================================================================
kind       severity s in [0, 1] -> parameters
=========  ==========================================================================================
noise      additive white Gaussian noise, ``sigma`` = 5 + 45 s  (0-255 units, per RGB channel)
defocus    uniform disk kernel (anti-aliased edge), ``radius`` = 1 + 5 s  (px)
motion     line kernel, ``length`` = 5 + 20 s (px), ``angle`` ~ U(-90, 90) (deg, counter-clockwise
           from the x axis), ``sigma`` = None (uniform weights; a number gives one-sided Gaussian
           weights along the line, ImageMagick style, in px)
jpeg       JPEG (OpenCV / libjpeg, 4:2:0), ``quality`` = round(70 - 60 s)  (integer 10-70)
haze       atmospheric scattering I = J t + A (1 - t), t = exp(-beta d), d a depth proxy in [0, 1]
           (1 = far): ``beta`` = 0.4 + 1.4 s (per unit depth), ``airlight`` A = 0.7 + 0.3 s
           +- 0.05 jitter, clipped to [0.7, 1.0]
rain       sparse bright streaks added to the image: ``density`` = 0.0015 + 0.0065 s (streak starts
           per pixel), ``length`` ~ U{10..39} (px), ``angle`` ~ U(-30, 30) (deg from vertical),
           ``intensity`` ~ U(0.5, 0.8) (peak streak brightness added, [0, 1] units)
dark       HSV value curve V' = clip(scale * V**gamma - shift/255, 0, 1) (hue and saturation kept),
           then Poisson-Gaussian sensor noise: ``gamma`` = 1.2 + 0.8 s, ``scale`` = 0.85 - 0.45 s,
           ``shift`` = 0 (0-255 units), ``peak`` = 10**(3.3 - 0.8 s) photons at V = 1 (None: no
           shot noise), ``read_sigma`` = 1 + 2 s (0-255 units)
=========  ==========================================================================================

All functions take and return float32 HxWx3 RGB images in [0, 1]; randomness comes only from the
``numpy.random.Generator`` passed in. ``Scene``, ``synthesize``, ``RECIPES`` and ``list_recipes`` live
in :mod:`ir_env.recipes` and are also reachable from here (``from ir_env.degradations import synthesize``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from restorers.imagecheck import check_image

KINDS: tuple[str, ...] = ("noise", "defocus", "motion", "jpeg", "haze", "rain", "dark")

#: Restoration family (``restorers.FAMILIES``) that undoes each kind.
FAMILY_OF_KIND: dict[str, str] = {
    "noise": "noise",
    "defocus": "blur",
    "motion": "blur",
    "jpeg": "jpeg",
    "haze": "haze",
    "rain": "rain",
    "dark": "dark",
}

#: Physical order of application: scene (haze, rain) -> optics / sensor -> compression.
PHYSICAL_ORDER: tuple[str, ...] = ("haze", "rain", "defocus", "motion", "dark", "noise", "jpeg")

#: Names of the severity ladder, weakest first ("very low" = below the published "low" level).
LEVELS: tuple[str, ...] = ("very low", "low", "medium", "high", "very high")

# Keys every kind's parameter dict must hold (extra keys such as "kind"/"severity" are ignored).
_REQUIRED: dict[str, tuple[str, ...]] = {
    "noise": ("sigma",),
    "defocus": ("radius",),
    "motion": ("length", "angle"),
    "jpeg": ("quality",),
    "haze": ("beta", "airlight"),
    "rain": ("density", "length", "angle", "intensity"),
    "dark": ("gamma", "scale"),
}


def check_kind(kind: object) -> str:
    """Return ``kind`` if it is one of :data:`KINDS`, else raise ``ValueError`` listing them."""
    if kind not in KINDS:
        raise ValueError(f"unknown degradation kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return str(kind)


def _check_severity(severity: object) -> float:
    try:
        s = float(severity)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"severity must be a number in [0, 1], got {severity!r}") from None
    if not math.isfinite(s) or s < 0.0 or s > 1.0:
        raise ValueError(f"severity must lie in [0, 1], got {severity!r}")
    return s


def physical_sort(kinds: list[str] | tuple[str, ...]) -> list[str]:
    """``kinds`` sorted in :data:`PHYSICAL_ORDER` (scene -> imaging -> compression)."""
    return sorted(kinds, key=PHYSICAL_ORDER.index)


def _check_params(kind: str, params: Mapping[str, Any]) -> None:
    if not isinstance(params, Mapping):
        raise ValueError(f"params for {kind!r} must be a dict, got {type(params).__name__}")
    if "kind" in params and params["kind"] != kind:
        raise ValueError(f"params are for kind {params['kind']!r}, not {kind!r}")
    missing = [k for k in _REQUIRED[kind] if k not in params]
    if missing:
        raise ValueError(f"params for {kind!r} miss {missing}; required: {list(_REQUIRED[kind])}")
    for key in _REQUIRED[kind]:
        v = params[key]
        if not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(float(v)):
            raise ValueError(f"{kind} parameter {key!r} must be a finite number, got {v!r}")


def _require(cond: bool, kind: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{kind}: {msg}")


def _check_ranges(kind: str, params: Mapping[str, Any]) -> None:
    """``ValueError`` naming ``kind`` and the parameter for a value outside what :func:`apply_kind` applies (the
    module table's ranges); shared by :func:`apply_kind` and :func:`params_to_severity`."""
    if kind == "noise":
        sigma = float(params["sigma"])
        _require(sigma >= 0, kind, f"sigma must be >= 0 (0-255 units), got {sigma}")
    elif kind == "defocus":
        radius = float(params["radius"])
        _require(0 <= radius <= 64, kind, f"radius must lie in [0, 64] px, got {radius}")
    elif kind == "motion":
        length, sigma = float(params["length"]), params.get("sigma")
        _require(0 <= length <= 128, kind, f"length must lie in [0, 128] px, got {length}")
        _require(sigma is None or float(sigma) > 0, kind, f"sigma must be None or > 0 px, got {sigma}")
    elif kind == "jpeg":
        q = float(params["quality"])
        _require(1 <= q <= 100 and q == int(q), kind, f"quality must be an integer in [1, 100], got {q}")
    elif kind == "haze":
        beta, airlight = float(params["beta"]), float(params["airlight"])
        _require(beta >= 0, kind, f"beta must be >= 0, got {beta}")
        _require(0 <= airlight <= 1, kind, f"airlight must lie in [0, 1], got {airlight}")
    elif kind == "rain":
        density, length = float(params["density"]), float(params["length"])
        intensity = float(params["intensity"])
        _require(0 <= density <= 0.1, "rain", f"density must lie in [0, 0.1] streaks per pixel, got {density}")
        _require(1 <= length <= 128, "rain", f"length must lie in [1, 128] px, got {length}")
        _require(0 <= intensity <= 1, "rain", f"intensity must lie in [0, 1], got {intensity}")


# ----------------------------------------------------------------------------------------------------
# severity <-> physical parameters
# ----------------------------------------------------------------------------------------------------


def _dark_curve(severity: float) -> tuple[float, float]:
    """(gamma, scale) of the dark kind at ``severity``."""
    return 1.2 + 0.8 * severity, 0.85 - 0.45 * severity


def severity_to_params(kind: str, severity: float, rng: np.random.Generator) -> dict[str, Any]:
    """Physical parameters of ``kind`` at ``severity`` in [0, 1] (see the module table for units).

    Random parts (angles, airlight jitter, rain streak length and brightness) are drawn from ``rng``.
    The dict also holds ``"kind"`` and ``"severity"``; all values are JSON-friendly Python scalars.
    """
    kind = check_kind(kind)
    s = _check_severity(severity)
    if kind in ("motion", "haze", "rain"):  # these draw angles, airlight jitter or streaks
        _rng(rng, kind)
    p: dict[str, Any] = {"kind": kind, "severity": s}
    if kind == "noise":
        p["sigma"] = 5.0 + 45.0 * s
    elif kind == "defocus":
        p["radius"] = 1.0 + 5.0 * s
    elif kind == "motion":
        p.update(length=5.0 + 20.0 * s, angle=float(rng.uniform(-90.0, 90.0)), sigma=None)
    elif kind == "jpeg":
        p["quality"] = int(round(70.0 - 60.0 * s))
    elif kind == "haze":
        airlight = float(np.clip(0.7 + 0.3 * s + rng.uniform(-0.05, 0.05), 0.7, 1.0))
        p.update(beta=0.4 + 1.4 * s, airlight=airlight)
    elif kind == "rain":
        p.update(
            density=0.0015 + 0.0065 * s,
            length=int(rng.integers(10, 40)),
            angle=float(rng.uniform(-30.0, 30.0)),
            intensity=float(rng.uniform(0.5, 0.8)),
        )
    else:  # dark
        gamma, scale = _dark_curve(s)
        p.update(
            gamma=gamma, scale=scale, shift=0.0, peak=float(10.0 ** (3.3 - 0.8 * s)), read_sigma=1.0 + 2.0 * s
        )
    return p


def _motion_samples(length: float, sigma: float | None, step: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Positions t in [0, length] (px) along a motion streak and their weights."""
    n = max(1, int(math.ceil(length / step)))
    t = (np.arange(n) + 0.5) * (length / n)
    if sigma is None:
        w = np.ones(n)
    else:  # shifted by the largest log-weight: a tiny sigma gave all-zero weights and a NaN kernel
        logw = -0.5 * (t / float(sigma)) ** 2
        w = np.exp(logw - logw.max())
    return t, w / w.sum()


def motion_effective_length(length: float, sigma: float | None = None) -> float:
    """Length (px) of the uniform streak with the same spread: sqrt(12) x the std of the weights
    along the streak (equals ``length`` for uniform weights)."""
    t, w = _motion_samples(length, sigma)
    mean = float((t * w).sum())
    return float(math.sqrt(12.0 * float((w * (t - mean) ** 2).sum())))


def _dark_strength(gamma: float, scale: float, shift: float = 0.0) -> float:
    """Darkening of mid-grey: 1 - V'(0.5) / 0.5 (0 = unchanged, 1 = black)."""
    return 1.0 - max(0.0, scale * 0.5**gamma - shift / 255.0) / 0.5


_DARK_GRID = np.linspace(0.0, 1.0, 1001)
_DARK_STRENGTH = np.array([_dark_strength(*_dark_curve(float(s))) for s in _DARK_GRID])


def params_to_severity(kind: str, params: Mapping[str, Any]) -> float:
    """Severity in [0, 1] (clipped) closest to explicit physical ``params`` of ``kind``.

    The inverse of :func:`severity_to_params` on the parameter that drives severity: noise sigma,
    defocus radius, motion effective length (:func:`motion_effective_length`), JPEG quality, haze beta,
    rain density, and for dark the darkening of mid-grey (gamma, scale and shift together).
    """
    kind = check_kind(kind)
    _check_params(kind, params)
    _check_ranges(kind, params)  # what apply_kind refuses has no severity (a motion sigma of 0 gave NaN)
    if kind == "noise":
        s = (float(params["sigma"]) - 5.0) / 45.0
    elif kind == "defocus":
        s = (float(params["radius"]) - 1.0) / 5.0
    elif kind == "motion":
        s = (motion_effective_length(float(params["length"]), params.get("sigma")) - 5.0) / 20.0
    elif kind == "jpeg":
        s = (70.0 - float(params["quality"])) / 60.0
    elif kind == "haze":
        s = (float(params["beta"]) - 0.4) / 1.4
    elif kind == "rain":
        s = (float(params["density"]) - 0.0015) / 0.0065
    else:
        strength = _dark_strength(
            float(params["gamma"]), float(params["scale"]), float(params.get("shift", 0.0))
        )
        s = float(np.interp(strength, _DARK_STRENGTH, _DARK_GRID))
    return float(np.clip(s, 0.0, 1.0))


# The published severity ladder of agentic restoration (AgenticIR, MAIR): the physical parameters of low / medium /
# high / very high.
_LADDER_PARAMS: dict[str, list[dict[str, Any]]] = {
    "noise": [{"sigma": v} for v in (4.0, 15.0, 30.0, 45.0)],
    "jpeg": [{"quality": q} for q in (50, 30, 20, 10)],
    "defocus": [{"radius": r} for r in (2.0, 3.0, 4.0, 6.0)],
    "motion": [
        {"length": 2 * r + 1, "angle": 0.0, "sigma": sg} for r, sg in ((5, 2), (10, 3), (15, 5), (15, 8))
    ],
    "haze": [{"beta": b, "airlight": a} for a, b in ((0.6, 0.4), (0.7, 0.6), (0.8, 1.2), (1.0, 1.8))],
}
#: Severity of each ladder level (low, medium, high, very high) per kind; rain and dark have no
#: published ladder and use equal quarters.
LADDER_SEVERITY: dict[str, tuple[float, ...]] = {
    k: tuple(params_to_severity(k, p) for p in _LADDER_PARAMS[k])
    if k in _LADDER_PARAMS
    else (0.125, 0.375, 0.625, 0.875)
    for k in KINDS
}


def severity_level(kind: str, severity: float | None) -> str:
    """Ladder name of ``severity`` for ``kind``: the nearest of low / medium / high / very high (the
    published ladder ``_LADDER_PARAMS``, mapped to severities by :func:`params_to_severity`), or "very low"
    when the kind is absent (``None``) or weaker than "low" by more than half the low-medium gap."""
    kind = check_kind(kind)
    if severity is None:
        return LEVELS[0]
    s = _check_severity(severity)
    ladder = LADDER_SEVERITY[kind]
    points = (ladder[0] - (ladder[1] - ladder[0]),) + ladder
    return LEVELS[int(np.argmin([abs(s - p) for p in points]))]


# ----------------------------------------------------------------------------------------------------
# kernels and helpers
# ----------------------------------------------------------------------------------------------------


def disk_kernel(radius: float) -> np.ndarray:
    """Normalised defocus kernel: a disk of ``radius`` px (>= 0) with a 1-px linear anti-aliased edge."""
    r = float(radius)
    if not math.isfinite(r) or r < 0:
        raise ValueError(f"disk_kernel radius must be a finite number of px >= 0, got {radius!r}")
    half = int(math.ceil(r + 0.5))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    k = np.clip(r + 0.5 - np.hypot(yy, xx), 0.0, 1.0).astype(np.float32)
    return k / k.sum()


def motion_kernel(length: float, angle: float, sigma: float | None = None) -> np.ndarray:
    """Normalised motion-blur kernel: a streak of ``length`` px at ``angle`` degrees (counter-clockwise from
    the x axis), uniform or with one-sided Gaussian weights of ``sigma`` px, centred on its centre of mass
    so the blur does not shift the image. (OpenCV has no motion kernel: sub-pixel splatting by hand.)"""
    t, w = _motion_samples(float(length), sigma)
    t = t - float((t * w).sum())
    a = math.radians(float(angle))
    x, y = t * math.cos(a), -t * math.sin(a)
    half = int(math.ceil(np.abs(t).max())) + 1
    size = 2 * half + 1
    k = np.zeros((size, size), np.float64)
    x, y = x + half, y + half
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dy, dx, wt in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        np.add.at(k, (y0 + dy, x0 + dx), w * wt)
    return (k / k.sum()).astype(np.float32)


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def vertical_depth(height: int, width: int) -> np.ndarray:
    """Simplest depth proxy: 1 at the top row, 0 at the bottom (float32 HxW)."""
    col = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None]
    return np.ascontiguousarray(np.broadcast_to(col, (height, width)))


def depth_proxy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth pseudo-depth (float32 HxW in [0, 1], 1 = far) for haze: a vertical ramp (far at the top) with
    a random curvature and tilt, a low-frequency random field, and a blurred inverted gradient cue
    (flat areas such as sky read as far), mixed with random weights and normalised to [0, 1]."""
    img = check_image(image)
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yn, xn = yy / max(h - 1, 1), xx / max(w - 1, 1) - 0.5
    tilt = rng.uniform(-0.3, 0.3)
    ramp = np.clip(1.0 - yn + tilt * xn, 0.0, None) ** rng.uniform(0.7, 1.6)
    grid = rng.standard_normal((3, 3)).astype(np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
    sig = max(h, w) / 16.0
    grad = cv2.GaussianBlur(grad, (0, 0), sig, borderType=cv2.BORDER_REFLECT_101)
    flat = 1.0 - grad / (grad.max() + 1e-6)
    a, b = rng.uniform(0.1, 0.25), rng.uniform(0.1, 0.25)
    d = (1.0 - a - b) * ramp / (ramp.max() + 1e-6) + a * 0.5 * (1.0 + np.tanh(field)) + b * flat
    d = d - d.min()
    return (d / (d.max() + 1e-6)).astype(np.float32)


def _rng(rng: np.random.Generator | None, kind: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{kind} needs a numpy.random.Generator, got {type(rng).__name__}")
    return rng


# ----------------------------------------------------------------------------------------------------
# application
# ----------------------------------------------------------------------------------------------------


def apply_kind(
    image: np.ndarray,
    kind: str,
    params: Mapping[str, Any],
    rng: np.random.Generator | None,
    depth: np.ndarray | None = None,
) -> np.ndarray:
    """Apply degradation ``kind`` with explicit physical ``params`` (module table) to ``image``.

    ``rng`` supplies the noise / rain streak positions (noise, rain and dark need it; the others are
    deterministic and accept ``None``). ``depth`` (HxW in [0, 1], 1 = far) is used by haze; by default
    a vertical ramp (far at the top). Returns a new float32 HxWx3 image in [0, 1].
    """
    img = check_image(image)
    kind = check_kind(kind)
    _check_params(kind, params)
    _check_ranges(kind, params)
    h, w = img.shape[:2]
    if kind == "noise":
        sigma = float(params["sigma"])
        noise = _rng(rng, kind).standard_normal(img.shape, dtype=np.float32) * np.float32(sigma / 255.0)
        out = img + noise
    elif kind == "defocus":
        radius = float(params["radius"])
        out = img.copy() if radius < 0.5 else _filter(img, disk_kernel(radius))
    elif kind == "motion":
        length, sigma = float(params["length"]), params.get("sigma")
        out = img.copy() if length < 1 else _filter(img, motion_kernel(length, float(params["angle"]), sigma))
    elif kind == "jpeg":
        q = float(params["quality"])
        bgr = cv2.cvtColor((img * 255.0 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
        _require(bool(ok), kind, "OpenCV failed to encode the image")
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        out = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    elif kind == "haze":
        beta, airlight = float(params["beta"]), float(params["airlight"])
        d = vertical_depth(h, w) if depth is None else np.asarray(depth, dtype=np.float32)
        _require(d.shape == (h, w), kind, f"depth must have shape {(h, w)}, got {d.shape}")
        _require(bool(np.all(np.isfinite(d))), kind, "depth contains NaN or inf")
        _require(float(d.min()) >= 0.0 and float(d.max()) <= 1.0, kind,
                 f"depth must lie in [0, 1] (1 = far), got [{float(d.min()):.3g}, {float(d.max()):.3g}]")
        t = np.exp(-beta * d)[..., None]
        out = img * t + np.float32(airlight) * (1.0 - t)
    elif kind == "rain":
        out = img + _rain_layer(h, w, params, _rng(rng, kind))[..., None]
    else:
        out = _darken(img, params, rng)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def _rain_layer(h: int, w: int, params: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Additive rain streak layer (HxW float32): sparse random starts smeared along the streak direction."""
    density, length = float(params["density"]), float(params["length"])
    intensity, angle = float(params["intensity"]), float(params["angle"])
    starts = rng.random((h, w), dtype=np.float32) < density
    drops = np.zeros((h, w), np.float32)
    drops[starts] = rng.uniform(0.6, 1.0, int(starts.sum()))
    # kernel summed to ~length so that a streak keeps the drop's brightness along its length
    kernel = motion_kernel(length, 90.0 + angle) * np.float32(length)
    streaks = _filter(drops, kernel)
    streaks = cv2.GaussianBlur(streaks, (0, 0), 0.6, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(streaks, 0.0, 1.0) * np.float32(intensity)


def _darken(img: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator | None) -> np.ndarray:
    """Low light: HSV value curve (RGB scaled by V'/V keeps hue and saturation), then sensor noise."""
    gamma, scale = float(params["gamma"]), float(params["scale"])
    shift = float(params.get("shift", 0.0) or 0.0)
    peak, read_sigma = params.get("peak"), float(params.get("read_sigma", 0.0) or 0.0)
    _require(0.1 <= gamma <= 10, "dark", f"gamma must lie in [0.1, 10], got {gamma}")
    _require(0 <= scale <= 1, "dark", f"scale must lie in [0, 1], got {scale}")
    _require(0 <= shift <= 255, "dark", f"shift must lie in [0, 255] (0-255 units), got {shift}")
    _require(peak is None or 0 < float(peak) <= 1e12, "dark",
             f"peak must be None or a number of photons in (0, 1e12], got {peak}")
    _require(0 <= read_sigma < math.inf, "dark", f"read_sigma must be a finite number >= 0 (0-255 units), "
             f"got {read_sigma}")
    v = img.max(axis=2)
    v_new = np.clip(np.float32(scale) * np.power(v, np.float32(gamma)) - np.float32(shift / 255.0), 0.0, 1.0)
    ratio = np.where(v > 1e-6, v_new / np.maximum(v, 1e-6), 0.0).astype(np.float32)
    out = img * ratio[..., None]
    if peak is not None:
        p = float(peak)
        out = _rng(rng, "dark").poisson(np.clip(out, 0.0, 1.0) * p).astype(np.float32) / np.float32(p)
    if read_sigma > 0:
        out = out + _rng(rng, "dark").standard_normal(out.shape, dtype=np.float32) * np.float32(
            read_sigma / 255.0
        )
    return out


def degrade(
    image: np.ndarray,
    kind: str,
    severity: float,
    rng: np.random.Generator,
    depth: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Degrade ``image`` by ``kind`` at ``severity`` in [0, 1]: returns (float32 HxWx3 image, params),
    params being :func:`severity_to_params`'s dict (with "kind" and "severity")."""
    params = severity_to_params(kind, severity, rng)
    return apply_kind(image, kind, params, rng, depth=depth), params


_RECIPE_NAMES = ("Scene", "Recipe", "RECIPES", "list_recipes", "synthesize")


def __getattr__(name: str) -> Any:
    # Scene / synthesize live in ir_env.recipes (which imports this module); re-export them lazily.
    if name in _RECIPE_NAMES:
        from ir_env import recipes

        return getattr(recipes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FAMILY_OF_KIND",
    "KINDS",
    "LADDER_SEVERITY",
    "LEVELS",
    "PHYSICAL_ORDER",
    "apply_kind",
    "check_kind",
    "degrade",
    "depth_proxy",
    "disk_kernel",
    "motion_effective_length",
    "motion_kernel",
    "params_to_severity",
    "physical_sort",
    "severity_level",
    "severity_to_params",
    "vertical_depth",
]
