"""Region embeddings: one fixed-length float32 vector per region mask, describing its degradations.

Interface
---------
:class:`RegionEmbedder` is the contract every embedder follows (the hand-crafted one below, and the learned
encoder ``learned``, :class:`ir_env.encoder.learned.LearnedEmbedder`): ``name``, ``dim``, ``feature_names``
(``dim`` strings) and
``embed(image, masks) -> (K, dim) float32``, where ``image`` is float32 HxWx3 RGB in [0, 1] and ``masks``
is a (K, H, W) bool array. Rows are always finite; an empty mask gives a zero row. Build embedders by name
with :func:`make_embedder` (``list_embedders()`` lists the names; :func:`register_embedder` adds one).

The ``handcrafted`` embedder
----------------------------
Local feature maps are computed ONCE per image at full resolution and pooled per mask (mean over the
mask's pixels, one matrix product for all maps and regions), so K regions cost little more than one.
A few statistics need the region's pixel distribution (medians, percentiles) and are taken per region.
Every filter has a support radius of at most 13 px (Sobel of the sigma=4 Gaussian), so a region's
embedding does not depend on pixels farther than that from its mask.

Each raw value ``r`` becomes ``clip((r - offset) / scale, -clip, clip)`` with FIXED constants chosen from
the physical range of the quantity (not fitted to data); the default clip bound is 4. ``Y`` is BT.601
luma in [0, 1], ``V`` the HSV value max(R, G, B) in [0, 1], ``S`` the HSV saturation in [0, 1].
Gradients are Sobel derivatives divided by 8 (intensity change per pixel). Features, in order:

Noise (Immerkaer's operator ``N = [[1,-2,1],[-2,4,-2],[1,-2,1]]``, which cancels planes and most of a
smooth image; sigma estimate = median(|N * I|) / (0.6745 * 6) over the region, 0-255 units; medians and
percentiles here are nearest-rank order statistics):

 1. ``noise_sigma`` -- noise sigma estimate on 255*Y, 0-255 units (i.i.d. per-channel noise of sigma s
    gives luma noise 0.67 s); scaled sigma / 25.
 2. ``noise_sigma_chroma`` -- the same estimate on the chroma images 255*(R-G) and 255*(B-G) (median of
    the mean of their absolute responses, divided by sqrt 2 so that i.i.d. per-channel noise of sigma s
    reads about s); grey textures and streaks barely raise it; sigma / 25.

Sharpness / blur (Gs = Gaussian of sigma s px):

 3. ``lap_var`` -- log10 of the variance of the 4-neighbour Laplacian of Y over the region (+1e-7);
    (value + 3) / 1.5. Falls with blur, rises with noise.
 4. ``grad_energy`` -- log10 of the mean squared Sobel gradient magnitude of Y (+1e-7); (value + 3) / 1.5.
 5. ``grad_ratio_1_2`` -- log2(mean |grad G1*Y| / mean |grad G2*Y|); contrast invariant, large for
    sharp edges (and noise), near 0 for blurred ones; (value - 0.5) / 0.5.
 6. ``grad_ratio_2_4`` -- the same between sigma 2 and 4 px (responds to strong blur, barely to noise);
    (value - 0.5) / 0.5.
 7. ``edge_ratio_1_2`` -- edge-weighted version: log2(sum |grad G1*Y| |grad G2*Y| / sum |grad G2*Y|^2),
    dominated by strong edges, so flat-area noise matters less; (value - 0.5) / 0.5.
 8. ``edge_ratio_2_4`` -- the same between sigma 2 and 4 px; (value - 0.5) / 0.5.
 9. ``hf_mf_ratio`` -- log10 of high-band energy E[(Y - G1*Y)^2] over mid-band energy
    E[(G1*Y - G3*Y)^2] (+1e-8 each); (value + 1) / 1.

Motion-blur anisotropy (structure tensor summed over the region, coherence
``sqrt((Jxx - Jyy)^2 + 4 Jxy^2) / (Jxx + Jyy)`` in [0, 1]: 0 for isotropic gradients, 1 when all
gradients share one direction, as after linear motion blur):

10. ``coherence_fine`` -- coherence of gradients of G1*Y; unit scale.
11. ``coherence_coarse`` -- coherence of gradients of G2*Y; unit scale.

JPEG (8x8 grid anchored at pixel (0, 0), the grid of a whole-image JPEG):

12. ``blockiness_h`` -- log2 of (mean |dY/dx| across 8-px block boundaries + 1/255) over (mean |dY/dx|
    inside blocks + 1/255); about 0 without JPEG, above 0.5 for strong JPEG; unit scale.
13. ``blockiness_v`` -- the same vertically; unit scale.
14. ``dct_zero_frac`` -- fraction of the 63 AC coefficients of each 8x8 block's orthonormal DCT of 255*Y
    that are below 1 in magnitude (coarse quantisation zeroes them), averaged over the region's pixels in
    whole blocks; unit scale in [0, 1].

Haze (dark channel = min over RGB, then 7x7 minimum filter):

15. ``dark_channel`` -- mean dark channel in [0, 1]; rises with haze (airlight); unit scale.
16. ``dark_to_bright`` -- mean dark channel / (mean V + 0.05), in [0, ~1]; close to 1 under thick haze
    (grey, bright, low contrast); unit scale.
17. ``haze_floor`` -- 10th percentile of the dark channel in [0, 1] (haze lifts the darkest pixels
    to at least A (1 - t)); unit scale.
18. ``value_contrast`` -- (p90 - p10) / (p90 + p10 + 0.05) of V, Michelson-like contrast in [0, 1];
    unit scale.
19. ``local_contrast`` -- mean 7x7 local standard deviation of Y, in [0, 0.5]; times 10.
20. ``rel_contrast`` -- mean of local std / (local mean + 0.1) of Y (RMS contrast); times 5.
21. ``saturation`` -- mean HSV saturation in [0, 1]; unit scale.

Rain (thin bright streaks within 30 degrees of vertical). ``R_a`` is the response of a zero-mean line
filter (11x11 support, line length up to 11 px) at angle a from vertical: mean along the line minus the
mean of the two parallel lines 3 px to each side; positive on bright lines of that direction, Y units.

22. ``rain_line`` -- mean over the region of max(0, max over a in {-24, -8, 8, 24} deg of R_a); times 50.
23. ``rain_excess`` -- ``rain_line`` minus the same quantity for the four orthogonal angles (a + 90 deg):
    near 0 for isotropic noise and texture, positive for near-vertical streaks; times 50.
24. ``streak_frac`` -- fraction of region pixels whose near-vertical response exceeds 0.03 and twice
    the orthogonal one; times 5.
25. ``ridge_v`` -- mean bright-ridge strength max(0, -lambda_min) of the Hessian of G2*Y (Y per px^2)
    where the ridge runs within 30 deg of vertical (blurred or wide streaks); times 200.
26. ``ridge_excess`` -- ``ridge_v`` minus the same for ridges within 30 deg of horizontal; times 500.

Brightness / low light:

27. ``luma_mean`` -- mean of Y in [0, 1]; unit scale.
28. ``luma_std`` -- standard deviation of Y over the region, in [0, 0.5]; times 4.
29. ``value_p10`` -- 10th percentile of V in [0, 1]; unit scale.
30. ``value_p50`` -- median of V; unit scale.
31. ``value_p90`` -- 90th percentile of V; unit scale.
32. ``dark_frac`` -- fraction of pixels with V < 0.15; unit scale.

Geometry:

33. ``area`` -- region area / image area in [0, 1]; unit scale.
34. ``centroid_y`` -- mask centroid row / (H - 1) in [0, 1]; unit scale.
35. ``centroid_x`` -- mask centroid column / (W - 1) in [0, 1]; unit scale.
36. ``bbox_h`` -- bounding-box height / H in [0, 1]; unit scale.
37. ``bbox_w`` -- bounding-box width / W in [0, 1]; unit scale.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from restorers.imagecheck import check_image

__all__ = [
    "FEATURES",
    "FeatureSpec",
    "HandcraftedEmbedder",
    "RegionEmbedder",
    "check_masks",
    "list_embedders",
    "make_embedder",
    "register_embedder",
]


def check_masks(masks: object, shape: tuple[int, int]) -> np.ndarray:
    """Validate a (K, H, W) bool mask stack against the image's (H, W); raise ``ValueError`` otherwise."""
    if not isinstance(masks, np.ndarray):
        raise ValueError(f"masks must be a numpy array, got {type(masks).__name__}")
    if masks.ndim != 3:
        hint = " (a single mask: use mask[None])" if masks.ndim == 2 else ""
        raise ValueError(f"masks must have shape (K, H, W), got shape {masks.shape}{hint}")
    if masks.shape[1:] != tuple(shape):
        raise ValueError(f"masks must match the image's H x W {tuple(shape)}, got masks of shape "
                         f"{masks.shape}")
    if masks.dtype != bool:
        raise ValueError(f"masks must have dtype bool, got {masks.dtype} (use masks.astype(bool))")
    return masks


class RegionEmbedder(ABC):
    """Maps an image and K region masks to a (K, dim) float32 array of finite values.

    Implementations: ``handcrafted`` (:class:`HandcraftedEmbedder`) and ``learned``
    (:class:`ir_env.encoder.learned.LearnedEmbedder`). An empty
    mask must give a zero row; all rows are finite and bounded.
    """

    @property
    @abstractmethod
    def name(self) -> str:
        """Registry name of the embedder."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length D of one region's embedding."""

    @property
    @abstractmethod
    def feature_names(self) -> list[str]:
        """D strings naming the embedding's components."""

    @abstractmethod
    def embed(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Embed K regions: image float32 HxWx3 in [0, 1], masks (K, H, W) bool -> (K, D) float32."""

    def __call__(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Same as :meth:`embed`."""
        return self.embed(image, masks)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


@dataclass(frozen=True)
class FeatureSpec:
    """One hand-crafted feature: scaled value = clip((raw - offset) / scale, -clip, clip)."""

    name: str
    offset: float
    scale: float
    description: str


#: The hand-crafted features in output order (documented in detail in the module docstring).
FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("noise_sigma", 0.0, 25.0, "noise sigma estimate on luma, 0-255 units"),
    FeatureSpec("noise_sigma_chroma", 0.0, 25.0, "noise sigma estimate on chroma R-G, B-G, 0-255 units"),
    FeatureSpec("lap_var", -3.0, 1.5, "log10 variance of the Laplacian of luma"),
    FeatureSpec("grad_energy", -3.0, 1.5, "log10 mean squared gradient magnitude of luma"),
    FeatureSpec("grad_ratio_1_2", 0.5, 0.5, "log2 gradient magnitude ratio, Gaussian sigma 1 vs 2 px"),
    FeatureSpec("grad_ratio_2_4", 0.5, 0.5, "log2 gradient magnitude ratio, Gaussian sigma 2 vs 4 px"),
    FeatureSpec("edge_ratio_1_2", 0.5, 0.5, "edge-weighted log2 gradient ratio, sigma 1 vs 2 px"),
    FeatureSpec("edge_ratio_2_4", 0.5, 0.5, "edge-weighted log2 gradient ratio, sigma 2 vs 4 px"),
    FeatureSpec("hf_mf_ratio", -1.0, 1.0, "log10 high-band over mid-band energy"),
    FeatureSpec("coherence_fine", 0.0, 1.0, "structure-tensor coherence at sigma 1 px, [0, 1]"),
    FeatureSpec("coherence_coarse", 0.0, 1.0, "structure-tensor coherence at sigma 2 px, [0, 1]"),
    FeatureSpec("blockiness_h", 0.0, 1.0, "log2 ratio of |dY/dx| across vs inside 8-px blocks"),
    FeatureSpec("blockiness_v", 0.0, 1.0, "log2 ratio of |dY/dy| across vs inside 8-px blocks"),
    FeatureSpec("dct_zero_frac", 0.0, 1.0, "fraction of near-zero 8x8 DCT AC coefficients, [0, 1]"),
    FeatureSpec("dark_channel", 0.0, 1.0, "mean dark channel (7x7), [0, 1]"),
    FeatureSpec("dark_to_bright", 0.0, 1.0, "mean dark channel / (mean V + 0.05)"),
    FeatureSpec("haze_floor", 0.0, 1.0, "10th percentile of the dark channel, [0, 1]"),
    FeatureSpec("value_contrast", 0.0, 1.0, "(p90 - p10) / (p90 + p10 + 0.05) of V, [0, 1]"),
    FeatureSpec("local_contrast", 0.0, 0.1, "mean 7x7 local std of luma"),
    FeatureSpec("rel_contrast", 0.0, 0.2, "mean local std / (local mean + 0.1)"),
    FeatureSpec("saturation", 0.0, 1.0, "mean HSV saturation, [0, 1]"),
    FeatureSpec("rain_line", 0.0, 0.02, "mean positive near-vertical bright-line response"),
    FeatureSpec("rain_excess", 0.0, 0.02, "near-vertical minus near-horizontal line response"),
    FeatureSpec("streak_frac", 0.0, 0.2, "fraction of pixels on near-vertical bright streaks"),
    FeatureSpec("ridge_v", 0.0, 0.005, "mean near-vertical bright-ridge strength at sigma 2 px"),
    FeatureSpec("ridge_excess", 0.0, 0.002, "near-vertical minus near-horizontal ridge strength, sigma 2 px"),
    FeatureSpec("luma_mean", 0.0, 1.0, "mean luma, [0, 1]"),
    FeatureSpec("luma_std", 0.0, 0.25, "std of luma over the region"),
    FeatureSpec("value_p10", 0.0, 1.0, "10th percentile of HSV value"),
    FeatureSpec("value_p50", 0.0, 1.0, "median of HSV value"),
    FeatureSpec("value_p90", 0.0, 1.0, "90th percentile of HSV value"),
    FeatureSpec("dark_frac", 0.0, 1.0, "fraction of pixels with V < 0.15"),
    FeatureSpec("area", 0.0, 1.0, "region area / image area"),
    FeatureSpec("centroid_y", 0.0, 1.0, "centroid row / (H - 1)"),
    FeatureSpec("centroid_x", 0.0, 1.0, "centroid column / (W - 1)"),
    FeatureSpec("bbox_h", 0.0, 1.0, "bounding-box height / H"),
    FeatureSpec("bbox_w", 0.0, 1.0, "bounding-box width / W"),
)

_FEATURE_INDEX = {f.name: i for i, f in enumerate(FEATURES)}
_OFFSETS = np.array([f.offset for f in FEATURES], dtype=np.float64)
_SCALES = np.array([f.scale for f in FEATURES], dtype=np.float64)

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
_MAD_TO_SIGMA = 1.0 / (0.6745 * 6.0)  # median |N(0, 6 sigma)| = 0.6745 * 6 sigma
_RAIN_ANGLES = (-24.0, -8.0, 8.0, 24.0)  # degrees from vertical; rain streaks lie within +-30
_LINE_LENGTH = 11.0
_LINE_OFFSET = 3.0


def _gauss(img: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(math.ceil(3.0 * sigma)))
    return cv2.GaussianBlur(img, (2 * r + 1, 2 * r + 1), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT_101)


def _grad(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT_101)
    return gx, gy


def _magnitude(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sqrt(a^2 + b^2). Not cv2.magnitude: its SIMD path rounds differently with memory alignment,
    which broke bit-for-bit reproducibility; numpy's sqrt is correctly rounded."""
    return np.sqrt(a * a + b * b)


def _line_kernel(angle_deg: float) -> np.ndarray:
    """Zero-mean oriented line filter (hand-built: no library offers this exact bright-line detector)."""
    t = math.radians(angle_deg)
    r = 5  # 11x11: larger kernels switch OpenCV to a 5x slower DFT path
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    along = dy * math.cos(t) + dx * math.sin(t)
    perp = -dy * math.sin(t) + dx * math.cos(t)
    inside = np.abs(along) <= _LINE_LENGTH / 2.0
    center = np.clip(1.0 - np.abs(perp), 0.0, None) * inside
    side = np.clip(1.0 - np.abs(np.abs(perp) - _LINE_OFFSET), 0.0, None) * inside
    k = center / center.sum() - side / side.sum()
    return k.astype(np.float32)


_RAIN_KERNELS = tuple(_line_kernel(a) for a in _RAIN_ANGLES)
_ORTHO_KERNELS = tuple(_line_kernel(a + 90.0) for a in _RAIN_ANGLES)


def _dct_matrix(n: int = 8) -> np.ndarray:
    """The orthonormal DCT-II basis (n x n): one matrix product transforms every 8x8 block at once, which
    scipy.fft.dctn on a (blocks, 8, 8) stack also does, but this keeps the embedding's float32 path explicit."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c.astype(np.float32)


_DCT8 = _dct_matrix(8)


def _coherence(jxx: np.ndarray, jyy: np.ndarray, jxy: np.ndarray) -> np.ndarray:
    tr = jxx + jyy
    return np.sqrt((jxx - jyy) ** 2 + 4.0 * jxy**2) / np.maximum(tr, 1e-12) * (tr > 1e-12)


class HandcraftedEmbedder(RegionEmbedder):
    """Hand-crafted degradation features (37 per region; see the module docstring for each one).

    ``clip`` bounds every scaled feature to [-clip, clip] (default 4).
    """

    def __init__(self, clip: float = 4.0) -> None:
        clip = float(clip)
        if not math.isfinite(clip) or clip <= 0:
            raise ValueError(f"clip must be a positive finite number, got {clip}")
        self.clip = clip

    @property
    def name(self) -> str:
        return "handcrafted"

    @property
    def dim(self) -> int:
        return len(FEATURES)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in FEATURES]

    def raw_features(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Unscaled features (K, D) float64 in their physical units; rows of empty masks are NaN."""
        img = check_image(image)
        masks = check_masks(masks, img.shape[:2])
        return _raw_features(img, masks)

    def embed(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(K, 37) float32 scaled features, each in [-clip, clip]; empty masks give zero rows."""
        raw = self.raw_features(image, masks)
        out = (raw - _OFFSETS) / _SCALES
        out = np.nan_to_num(out, nan=0.0, posinf=self.clip, neginf=-self.clip)
        out = np.clip(out, -self.clip, self.clip)
        out[np.isnan(raw).all(axis=1)] = 0.0  # empty masks
        return out.astype(np.float32)


def _order_stats(values: np.ndarray, n: int) -> np.ndarray:
    """Per-column 10th / 50th / 90th percentiles (nearest rank) of ``values`` (n, C) -> (3, C)."""
    ks = sorted({int(round(q * (n - 1))) for q in (0.1, 0.5, 0.9)})
    part = np.partition(values, ks, axis=0)
    return part[[int(round(q * (n - 1))) for q in (0.1, 0.5, 0.9)]]


def _raw_features(img: np.ndarray, masks: np.ndarray) -> np.ndarray:
    k_regions = masks.shape[0]
    h, w = img.shape[:2]
    raw = np.full((k_regions, len(FEATURES)), np.nan, dtype=np.float64)
    if k_regions == 0:
        return raw
    flat = masks.reshape(k_regions, h * w)
    rowcount = np.count_nonzero(masks, axis=2).astype(np.float64)  # (K, H) mask pixels per row
    colcount = np.count_nonzero(masks, axis=1).astype(np.float64)  # (K, W) mask pixels per column
    area = rowcount.sum(axis=1)
    nonempty = area > 0
    if not nonempty.any():
        return raw

    r, g, b = cv2.split(img)
    y = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)  # BT.601 luma
    v = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    sat = (v - mn) / np.maximum(v, 1e-6)

    maps: dict[str, np.ndarray] = {}

    # sharpness
    lap = cv2.Laplacian(y, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    maps["lap"] = lap
    maps["lap2"] = lap * lap
    gx, gy = _grad(y)
    maps["g0sq"] = gx * gx + gy * gy
    g1 = _gauss(y, 1.0)
    g2 = _gauss(y, 2.0)
    g3 = _gauss(y, 3.0)
    g4 = _gauss(y, 4.0)
    gm = {}
    for s, gs in ((1, g1), (2, g2), (4, g4)):
        sx, sy = _grad(gs)
        gm[s] = _magnitude(sx, sy)
        maps[f"gm{s}"] = gm[s]
        if s in (1, 2):  # structure tensor entries
            maps[f"jxx{s}"], maps[f"jyy{s}"], maps[f"jxy{s}"] = sx * sx, sy * sy, sx * sy
    maps["g12"] = gm[1] * gm[2]
    maps["g22"] = gm[2] * gm[2]
    maps["g24"] = gm[2] * gm[4]
    maps["g44"] = gm[4] * gm[4]
    hi = y - g1
    mid = g1 - g3
    maps["hi2"] = hi * hi
    maps["mid2"] = mid * mid

    # JPEG blockiness on the 8-px grid anchored at (0, 0)
    col = np.arange(w)
    row = np.arange(h)
    bd_c = (((col % 8) == 7) & (col < w - 1)).astype(np.float32)
    in_c = (((col % 8) != 7) & (col < w - 1)).astype(np.float32)
    bd_r = (((row % 8) == 7) & (row < h - 1)).astype(np.float32)
    in_r = (((row % 8) != 7) & (row < h - 1)).astype(np.float32)
    dh = np.zeros_like(y)
    dh[:, :-1] = np.abs(y[:, 1:] - y[:, :-1])
    dv = np.zeros_like(y)
    dv[:-1, :] = np.abs(y[1:, :] - y[:-1, :])
    maps["bdh"] = dh * bd_c[None, :]
    maps["inh"] = dh * in_c[None, :]
    maps["bdv"] = dv * bd_r[:, None]
    maps["inv"] = dv * in_r[:, None]

    # DCT zero fraction per 8x8 block (blocks fully inside the image; pixels outside them count 0)
    zf = np.zeros_like(y)
    h8, w8 = (h // 8) * 8, (w // 8) * 8
    if h8 and w8:
        blocks = (y[:h8, :w8] * 255.0).reshape(h8 // 8, 8, w8 // 8, 8).transpose(0, 2, 1, 3)
        coef = np.einsum("ij,abjk,lk->abil", _DCT8, blocks, _DCT8, optimize=True)
        small = (np.abs(coef) < 1.0).reshape(h8 // 8, w8 // 8, 64)
        frac = (small[..., 1:].sum(axis=2) / 63.0).astype(np.float32)
        zf[:h8, :w8] = np.repeat(np.repeat(frac, 8, axis=0), 8, axis=1)
    maps["zf"] = zf

    # haze
    dark = cv2.erode(mn, np.ones((7, 7), np.uint8), borderType=cv2.BORDER_REFLECT_101)
    maps["dark"] = dark
    maps["v"] = v
    lm = cv2.boxFilter(y, cv2.CV_32F, (7, 7), borderType=cv2.BORDER_REFLECT_101)
    lm2 = cv2.boxFilter(y * y, cv2.CV_32F, (7, 7), borderType=cv2.BORDER_REFLECT_101)
    lstd = np.sqrt(np.maximum(lm2 - lm * lm, 0.0))
    maps["lstd"] = lstd
    maps["rcon"] = lstd / (lm + 0.1)
    maps["sat"] = sat

    # rain: oriented bright-line responses (max over the four near-vertical / near-horizontal angles)
    rv = cv2.filter2D(y, cv2.CV_32F, _RAIN_KERNELS[0], borderType=cv2.BORDER_REFLECT_101)
    ro = cv2.filter2D(y, cv2.CV_32F, _ORTHO_KERNELS[0], borderType=cv2.BORDER_REFLECT_101)
    for kv, ko in zip(_RAIN_KERNELS[1:], _ORTHO_KERNELS[1:], strict=True):
        np.maximum(rv, cv2.filter2D(y, cv2.CV_32F, kv, borderType=cv2.BORDER_REFLECT_101), out=rv)
        np.maximum(ro, cv2.filter2D(y, cv2.CV_32F, ko, borderType=cv2.BORDER_REFLECT_101), out=ro)
    np.maximum(rv, 0.0, out=rv)
    np.maximum(ro, 0.0, out=ro)
    maps["rv"] = rv
    maps["ro"] = ro
    maps["streak"] = ((rv > 0.03) & (rv > 2.0 * ro)).astype(np.float32)

    # coarse bright ridges (Hessian of G2*Y): lambda_min < 0 across a bright line; the line runs along
    # the other eigenvector, within 30 deg of vertical iff cos(2 theta) <= -0.5
    hxx = cv2.Sobel(g2, cv2.CV_32F, 2, 0, ksize=3, scale=0.25, borderType=cv2.BORDER_REFLECT_101)
    hyy = cv2.Sobel(g2, cv2.CV_32F, 0, 2, ksize=3, scale=0.25, borderType=cv2.BORDER_REFLECT_101)
    hxy = cv2.Sobel(g2, cv2.CV_32F, 1, 1, ksize=3, scale=0.25, borderType=cv2.BORDER_REFLECT_101)
    diff = hxx - hyy
    root = _magnitude(diff, 2.0 * hxy)
    ridge = np.maximum(0.0, 0.5 * (root - hxx - hyy))
    cos2 = diff / np.maximum(root, 1e-12)
    maps["ridge_v"] = ridge * (cos2 <= -0.5)
    maps["ridge_h"] = ridge * (cos2 >= 0.5)

    # brightness
    maps["y"] = y
    maps["y2"] = y * y
    maps["darkpix"] = (v < 0.15).astype(np.float32)

    # mean of every map over every mask. Not a BLAS product: float32 GEMM rounds differently with memory
    # alignment, and the embedding must be bit-for-bit reproducible (seeded envs); numpy's own
    # reductions are.
    names = list(maps)
    stack = np.empty((len(names), h * w), np.float32)
    for i, n in enumerate(names):
        stack[i] = maps[n].reshape(-1)
    sums = np.zeros((flat.shape[0], len(names)), np.float64)  # (K, n_maps)
    for k in np.flatnonzero(nonempty):
        sums[k] = stack[:, flat[k].astype(bool)].sum(axis=1, dtype=np.float64)
    safe_area = np.where(nonempty, area, 1.0)
    m = {n: sums[:, i] / safe_area for i, n in enumerate(names)}

    # pixel counts on / inside the block grid, from the per-row / per-column mask counts
    n_bdh, n_inh = colcount @ bd_c, colcount @ in_c
    n_bdv, n_inv = rowcount @ bd_r, rowcount @ in_r
    n_dct = np.count_nonzero(masks[:, :h8, :w8], axis=(1, 2)).astype(np.float64) if h8 and w8 else area * 0

    def per_pixel(key: str, count: np.ndarray) -> np.ndarray:
        """Mean of map ``key`` over the ``count`` mask pixels it covers (NaN where count is 0)."""
        return np.where(count > 0, m[key] * safe_area / np.maximum(count, 1.0), np.nan)

    # per-region order statistics (medians / percentiles need the pixel distribution)
    nres = np.abs(cv2.filter2D(y * 255.0, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT_101))
    c1 = np.abs(cv2.filter2D((r - g) * 255.0, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT_101))
    c2 = np.abs(cv2.filter2D((b - g) * 255.0, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT_101))
    table = np.stack([nres, 0.5 * (c1 + c2), v, dark], axis=-1).reshape(h * w, 4)
    stats = np.full((k_regions, 6), np.nan)
    for k in np.flatnonzero(nonempty):
        q = _order_stats(table[flat[k]], int(area[k]))  # rows: p10, p50, p90
        noise, chroma = q[1, 0] * _MAD_TO_SIGMA, q[1, 1] * _MAD_TO_SIGMA / math.sqrt(2.0)
        stats[k] = (noise, chroma, q[0, 2], q[1, 2], q[2, 2], q[0, 3])

    # geometry from the per-row / per-column counts
    rows_idx = np.arange(h, dtype=np.float64)
    cols_idx = np.arange(w, dtype=np.float64)
    bbox = np.full((k_regions, 2), np.nan)
    for k in np.flatnonzero(nonempty):
        rr = np.flatnonzero(rowcount[k])
        cc = np.flatnonzero(colcount[k])
        bbox[k] = ((rr[-1] - rr[0] + 1) / h, (cc[-1] - cc[0] + 1) / w)

    fi = _FEATURE_INDEX
    eps = 1e-7
    raw[:, fi["noise_sigma"]] = stats[:, 0]
    raw[:, fi["noise_sigma_chroma"]] = stats[:, 1]
    raw[:, fi["lap_var"]] = np.log10(np.maximum(m["lap2"] - m["lap"] ** 2, 0.0) + eps)
    raw[:, fi["grad_energy"]] = np.log10(m["g0sq"] + eps)
    raw[:, fi["grad_ratio_1_2"]] = np.log2((m["gm1"] + 1e-6) / (m["gm2"] + 1e-6))
    raw[:, fi["grad_ratio_2_4"]] = np.log2((m["gm2"] + 1e-6) / (m["gm4"] + 1e-6))
    raw[:, fi["edge_ratio_1_2"]] = np.log2((m["g12"] + 1e-12) / (m["g22"] + 1e-12))
    raw[:, fi["edge_ratio_2_4"]] = np.log2((m["g24"] + 1e-12) / (m["g44"] + 1e-12))
    raw[:, fi["hf_mf_ratio"]] = np.log10((m["hi2"] + 1e-8) / (m["mid2"] + 1e-8))
    raw[:, fi["coherence_fine"]] = _coherence(m["jxx1"], m["jyy1"], m["jxy1"])
    raw[:, fi["coherence_coarse"]] = _coherence(m["jxx2"], m["jyy2"], m["jxy2"])
    c = 1.0 / 255.0
    raw[:, fi["blockiness_h"]] = np.log2((per_pixel("bdh", n_bdh) + c) / (per_pixel("inh", n_inh) + c))
    raw[:, fi["blockiness_v"]] = np.log2((per_pixel("bdv", n_bdv) + c) / (per_pixel("inv", n_inv) + c))
    raw[:, fi["dct_zero_frac"]] = per_pixel("zf", n_dct)
    raw[:, fi["dark_channel"]] = m["dark"]
    raw[:, fi["dark_to_bright"]] = m["dark"] / (m["v"] + 0.05)
    raw[:, fi["haze_floor"]] = stats[:, 5]
    raw[:, fi["value_contrast"]] = (stats[:, 4] - stats[:, 2]) / (stats[:, 4] + stats[:, 2] + 0.05)
    raw[:, fi["local_contrast"]] = m["lstd"]
    raw[:, fi["rel_contrast"]] = m["rcon"]
    raw[:, fi["saturation"]] = m["sat"]
    raw[:, fi["rain_line"]] = m["rv"]
    raw[:, fi["rain_excess"]] = m["rv"] - m["ro"]
    raw[:, fi["streak_frac"]] = m["streak"]
    raw[:, fi["ridge_v"]] = m["ridge_v"]
    raw[:, fi["ridge_excess"]] = m["ridge_v"] - m["ridge_h"]
    raw[:, fi["luma_mean"]] = m["y"]
    raw[:, fi["luma_std"]] = np.sqrt(np.maximum(m["y2"] - m["y"] ** 2, 0.0))
    raw[:, fi["value_p10"]] = stats[:, 2]
    raw[:, fi["value_p50"]] = stats[:, 3]
    raw[:, fi["value_p90"]] = stats[:, 4]
    raw[:, fi["dark_frac"]] = m["darkpix"]
    raw[:, fi["area"]] = area / float(h * w)
    raw[:, fi["centroid_y"]] = (rowcount @ rows_idx) / safe_area / max(h - 1, 1)
    raw[:, fi["centroid_x"]] = (colcount @ cols_idx) / safe_area / max(w - 1, 1)
    raw[:, fi["bbox_h"]] = bbox[:, 0]
    raw[:, fi["bbox_w"]] = bbox[:, 1]
    raw[~nonempty] = np.nan
    return raw


def _learned(**kw: object) -> RegionEmbedder:
    """The learned CNN encoder (imported lazily: torch loads only when it is asked for)."""
    from ir_env.encoder.learned import LearnedEmbedder

    return LearnedEmbedder(**kw)  # type: ignore[arg-type]


_EMBEDDERS: dict[str, Callable[..., RegionEmbedder]] = {"handcrafted": HandcraftedEmbedder, "learned": _learned}


def register_embedder(name: str, factory: Callable[..., RegionEmbedder], overwrite: bool = False) -> None:
    """Register ``factory(**kw) -> RegionEmbedder`` under ``name`` (e.g. a learned encoder)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"embedder name must be a non-empty string, got {name!r}")
    if name in _EMBEDDERS and not overwrite:
        raise ValueError(f"embedder {name!r} is already registered (pass overwrite=True to replace it)")
    _EMBEDDERS[name] = factory


def list_embedders() -> list[str]:
    """Names accepted by :func:`make_embedder`, sorted."""
    return sorted(_EMBEDDERS)


def make_embedder(name: str = "handcrafted", **kw: object) -> RegionEmbedder:
    """Build a region embedder by name; keyword arguments go to its constructor."""
    if name not in _EMBEDDERS:
        raise ValueError(f"unknown embedder {name!r}; available: {', '.join(list_embedders())}")
    from ir_env.option_errors import non_number_option, unexpected_keyword

    try:
        emb = _EMBEDDERS[name](**kw)
    except TypeError as e:  # Python's wording names the class's __init__, not the embedder or the option
        unknown = unexpected_keyword(e)
        if unknown:
            raise ValueError(f"embedder {name!r} has no option {unknown!r}") from None
        raise
    except ValueError as e:
        bad = non_number_option(e, dict(kw))  # float('x') inside the constructor: name the option
        if bad:
            raise ValueError(f"embedder {name!r}: bad option value {bad[0]}={bad[1]!r} (must be a number)") from None
        raise
    if not isinstance(emb, RegionEmbedder):
        raise ValueError(f"embedder factory {name!r} returned {type(emb).__name__}, not a RegionEmbedder")
    return emb
