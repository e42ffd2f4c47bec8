"""Synthetic scenes: named recipes that degrade a clean photo, with ground-truth region masks and labels.

``synthesize(clean, recipe, seed)`` returns a :class:`Scene`. Recipes (:data:`RECIPES`, :func:`list_recipes`):

- ``spatial-mixed`` (default): 2-4 regions (each >= 5 % of the image) from one of three generators drawn
  at random (smooth random blobs, superpixel groups of the clean image, depth bands; with depth bands
  the farthest band always holds haze). Each region gets 1-3 kinds (at most one per family, severities
  U(0, 1)); all regions get different kind sets. Each region's kinds are applied in physical order
  (haze, rain -> defocus, motion, dark, noise) to the whole image and composited with hard masks; then
  with probability 0.5 JPEG (severity U(0, 1)) is applied last to the whole image and added to every
  region's labels.
- ``global-mild`` / ``global-moderate`` / ``global-severe``: defocus -> noise -> JPEG over the whole image,
  severities U(0, 1/3) / U(1/3, 2/3) / U(2/3, 1).
- ``mixed-2`` / ``mixed-3``: 2 / 3 distinct kinds drawn from all kinds, whole image, physical order,
  severities U(0, 1).
- ``noise-15`` / ``noise-25`` / ``noise-50``: Gaussian noise of exactly that sigma (0-255), nothing else.
- ``agenticir-A`` / ``-B`` / ``-C``: the combinations (:data:`AGENTICIR_COMBOS`) and parameter ranges
  (:func:`agenticir_params`) published by AgenticIR (one
  combination drawn per scene, applied left to right); labels carry the closest severity
  (:func:`ir_env.degradations.params_to_severity`).

Whole-image recipes give one region (the full mask). Everything random is drawn from
``numpy.random.default_rng(seed)``: the same seed gives a bit-identical scene.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ir_env.degradations import (
    FAMILY_OF_KIND,
    KINDS,
    apply_kind,
    depth_proxy,
    params_to_severity,
    physical_sort,
    severity_level,
    severity_to_params,
)
from ir_env.masks import (
    blob_partition,
    depth_partition,
    labels_to_masks,
    merge_small_regions,
    superpixel_partition,
)
from restorers.imagecheck import check_image

#: Minimum area of a spatial-mixed region, as a fraction of the image.
MIN_REGION_FRACTION = 0.05
#: Probability that spatial-mixed ends with a whole-image JPEG pass.
JPEG_PROBABILITY = 0.5
#: Mask generators of spatial-mixed.
MASK_GENERATORS: tuple[str, ...] = ("blobs", "superpixels", "depth")

Label = tuple[str, float]
# A recipe body: (clean, rng, depth) -> (label map HxW int, labels per region, params per region, degraded)
RecipeFn = Callable[
    [np.ndarray, np.random.Generator, np.ndarray],
    tuple[np.ndarray, list[list[Label]], list[list[dict[str, Any]]], np.ndarray],
]


@dataclass
class Scene:
    """A synthetic degraded scene with its ground truth.

    Attributes:
        degraded: float32 HxWx3 RGB in [0, 1], the degraded image.
        clean: float32 HxWx3 RGB in [0, 1], the clean image it came from.
        masks: (K, H, W) bool, a partition of the image (every pixel in exactly one region).
        labels: per region, the list of (kind, severity in [0, 1]) in order of application. The severity is the
            drawn one; a JPEG quality is rounded to a whole number when applied, so ``params_to_severity`` of the
            applied ``params`` can differ from it by up to 1/120.
        params: per region, the list of parameter dicts ("kind", "severity" and physical values).
        recipe: recipe name.
        seed: the seed that reproduces the scene.
        depth: float32 HxW depth proxy in [0, 1] (1 = far) used by haze.
    """

    degraded: np.ndarray
    clean: np.ndarray
    masks: np.ndarray
    labels: list[list[Label]]
    params: list[list[dict[str, Any]]]
    recipe: str
    seed: int
    depth: np.ndarray = field(repr=False)

    def __repr__(self) -> str:
        """A one-line summary without pixels: recipe, seed, size and each region's area and degradations."""
        h, w = self.clean.shape[:2]
        regions = "; ".join(f"{float(m.mean()):.0%} " + ("+".join(f"{k} {s:.2f}" for k, s in lab) or "clean")
                            for m, lab in zip(self.masks, self.labels, strict=False))
        return f"Scene(recipe={self.recipe!r}, seed={self.seed}, size={h}x{w}, regions=[{regions}])"

    @property
    def num_regions(self) -> int:
        """Number of ground-truth regions K."""
        return int(self.masks.shape[0])

    def region_kinds(self) -> list[set[str]]:
        """The set of kinds present in each region."""
        return [{k for k, _ in lab} for lab in self.labels]

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable summary: recipe, seed, size, and per region its area (fraction and pixels),
        labels (with ladder level names) and physical parameters."""
        h, w = self.clean.shape[:2]
        regions = []
        for k in range(self.num_regions):
            pixels = int(self.masks[k].sum())
            regions.append(
                {
                    "index": k,
                    "area": pixels / float(h * w),
                    "pixels": pixels,
                    "labels": [
                        {"kind": kind, "severity": float(s), "level": severity_level(kind, s)}
                        for kind, s in self.labels[k]
                    ],
                    "params": [_jsonable(p) for p in self.params[k]],
                }
            )
        return {
            "recipe": self.recipe,
            "seed": int(self.seed),
            "height": int(h),
            "width": int(w),
            "num_regions": self.num_regions,
            "kinds": sorted({kind for lab in self.labels for kind, _ in lab}, key=KINDS.index),
            "regions": regions,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


@dataclass(frozen=True)
class Recipe:
    """A named scene recipe: ``fn`` builds the scene, ``kinds`` lists the kinds it may produce."""

    name: str
    description: str
    kinds: tuple[str, ...]
    fn: RecipeFn
    spatial: bool = False


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------


def _apply_chain(
    image: np.ndarray, steps: list[dict[str, Any]], rng: np.random.Generator, depth: np.ndarray
) -> np.ndarray:
    out = image
    for p in steps:
        out = apply_kind(out, p["kind"], p, rng, depth=depth)
    return out


def _from_severities(
    kinds: list[str], severities: list[float], rng: np.random.Generator
) -> tuple[list[Label], list[dict[str, Any]]]:
    params = [severity_to_params(k, s, rng) for k, s in zip(kinds, severities, strict=True)]
    return [(p["kind"], float(p["severity"])) for p in params], params


def _whole(
    clean: np.ndarray, params: list[dict[str, Any]], rng: np.random.Generator, depth: np.ndarray
) -> tuple[np.ndarray, list[list[Label]], list[list[dict[str, Any]]], np.ndarray]:
    labels = [(p["kind"], float(p["severity"])) for p in params]
    degraded = _apply_chain(clean, params, rng, depth)
    return np.zeros(clean.shape[:2], np.int32), [labels], [params], degraded


# ----------------------------------------------------------------------------------------------------
# spatial-mixed
# ----------------------------------------------------------------------------------------------------

_REGION_KINDS = tuple(k for k in KINDS if k != "jpeg")


def _draw_kind_set(rng: np.random.Generator, must: str | None) -> tuple[str, ...]:
    n = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    chosen: list[str] = [must] if must else []
    pool = [k for k in _REGION_KINDS if k not in chosen]
    for k in rng.permutation(pool):
        if len(chosen) >= n:
            break
        if all(FAMILY_OF_KIND[k] != FAMILY_OF_KIND[c] for c in chosen):
            chosen.append(str(k))
    return tuple(physical_sort(chosen))


def _spatial_label_map(
    clean: np.ndarray, rng: np.random.Generator, depth: np.ndarray
) -> tuple[np.ndarray, str]:
    h, w = clean.shape[:2]
    k = int(rng.integers(2, 5))
    generator = str(rng.choice(MASK_GENERATORS))
    if generator == "blobs":
        lm = blob_partition(h, w, k, rng)
    elif generator == "superpixels":
        lm = superpixel_partition(clean, k, rng)
    else:
        lm = depth_partition(depth, k, rng)
    lm = merge_small_regions(lm, MIN_REGION_FRACTION)
    if lm.max() < 1:  # everything merged into one region (tiny or flat image): split at the median depth
        generator = "depth"
        lm = (depth > np.median(depth)).astype(np.int32)
        if lm.min() == lm.max():
            lm = np.zeros((h, w), np.int32)
            lm[: h // 2] = 1
    return lm, generator


def _spatial_mixed(clean: np.ndarray, rng: np.random.Generator, depth: np.ndarray):
    lm, generator = _spatial_label_map(clean, rng, depth)
    masks = labels_to_masks(lm)
    k = masks.shape[0]
    far = -1
    if generator == "depth":
        far = int(np.argmax([depth[m].mean() for m in masks]))
    sets: list[tuple[str, ...]] = []
    for r in range(k):
        for _ in range(100):
            s = _draw_kind_set(rng, "haze" if r == far else None)
            if s not in sets:
                break
        sets.append(s)
    labels: list[list[Label]] = []
    params: list[list[dict[str, Any]]] = []
    degraded = clean.copy()
    for r in range(k):
        lab, par = _from_severities(list(sets[r]), [float(rng.uniform()) for _ in sets[r]], rng)
        region_img = _apply_chain(clean, par, rng, depth)
        degraded[masks[r]] = region_img[masks[r]]
        labels.append(lab)
        params.append(par)
    if rng.random() < JPEG_PROBABILITY:
        jp = severity_to_params("jpeg", float(rng.uniform()), rng)
        degraded = apply_kind(degraded, "jpeg", jp, rng)
        for r in range(k):
            labels[r].append(("jpeg", float(jp["severity"])))
            params[r].append(dict(jp))
    return lm, labels, params, degraded


# ----------------------------------------------------------------------------------------------------
# whole-image recipes
# ----------------------------------------------------------------------------------------------------


def _global(lo: float, hi: float) -> RecipeFn:
    def fn(clean: np.ndarray, rng: np.random.Generator, depth: np.ndarray):
        kinds = ["defocus", "noise", "jpeg"]
        _, params = _from_severities(kinds, [float(rng.uniform(lo, hi)) for _ in kinds], rng)
        return _whole(clean, params, rng, depth)

    return fn


def _mixed(n: int) -> RecipeFn:
    def fn(clean: np.ndarray, rng: np.random.Generator, depth: np.ndarray):
        kinds = physical_sort([str(k) for k in rng.choice(KINDS, size=n, replace=False)])
        _, params = _from_severities(kinds, [float(rng.uniform()) for _ in kinds], rng)
        return _whole(clean, params, rng, depth)

    return fn


def _noise(sigma: float) -> RecipeFn:
    def fn(clean: np.ndarray, rng: np.random.Generator, depth: np.ndarray):
        p = {"kind": "noise", "sigma": float(sigma)}
        p["severity"] = params_to_severity("noise", p)
        return _whole(clean, [p], rng, depth)

    return fn


#: Combinations of the agenticir recipes, applied left to right (AgenticIR's groups A, B, C; training uses A only,
#: B and C are the unseen-combination tests).
AGENTICIR_COMBOS: dict[str, tuple[tuple[str, ...], ...]] = {
    "A": (
        ("rain", "haze"),
        ("dark", "noise"),
        ("defocus", "jpeg"),
        ("noise", "jpeg"),
        ("motion", "dark"),
        ("defocus", "haze"),
    ),
    "B": (("motion", "jpeg"), ("haze", "noise"), ("rain", "dark")),
    "C": (("dark", "defocus", "jpeg"), ("motion", "defocus", "noise")),
}


def agenticir_params(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """Physical parameters of ``kind`` drawn from the published AgenticIR ranges (listed below), with
    "kind" and the closest "severity".

    noise sigma U[20, 50] (0-255); JPEG quality U{10..29}; dark: one of V shift -(30..50) (0-255), gamma
    V**(1/g) with g U[0.5, 0.7), or linear compression of V to [0, 100..150] (/255), no sensor noise;
    haze A U[0.7, 1.0], beta U[0.6, 1.8]; motion (radius, sigma) in {(10,3), (15,5), (15,8)} as a
    2*radius+1 px one-sided Gaussian streak, angle U(-90, 90) deg; defocus disk radius in {3, 4, 6} px;
    rain length U{20..39} px, angle U{-30..29} deg, density at a severity U(0.25, 1), intensity U(0.5, 0.8).
    """
    p: dict[str, Any] = {"kind": kind}
    if kind == "noise":
        p["sigma"] = float(rng.uniform(20.0, 50.0))
    elif kind == "jpeg":
        p["quality"] = int(rng.integers(10, 30))
    elif kind == "dark":
        mode = int(rng.integers(3))
        p.update(gamma=1.0, scale=1.0, shift=0.0, peak=None, read_sigma=0.0)
        if mode == 0:
            p["shift"] = float(rng.uniform(30.0, 50.0))
        elif mode == 1:
            p["gamma"] = float(1.0 / rng.uniform(0.5, 0.7))
        else:
            p["scale"] = float(rng.uniform(100.0, 150.0) / 255.0)
    elif kind == "haze":
        p.update(airlight=float(rng.uniform(0.7, 1.0)), beta=float(rng.uniform(0.6, 1.8)))
    elif kind == "motion":
        radius, sigma = [(10, 3), (15, 5), (15, 8)][int(rng.integers(3))]
        p.update(length=float(2 * radius + 1), sigma=float(sigma), angle=float(rng.uniform(-90.0, 90.0)))
    elif kind == "defocus":
        p["radius"] = float([3, 4, 6][int(rng.integers(3))])
    elif kind == "rain":
        s = float(rng.uniform(0.25, 1.0))
        p.update(
            density=0.0015 + 0.0065 * s,
            length=int(rng.integers(20, 40)),
            angle=float(rng.integers(-30, 30)),
            intensity=float(rng.uniform(0.5, 0.8)),
        )
    else:
        raise ValueError(f"no AgenticIR parameter range for kind {kind!r}")
    p["severity"] = params_to_severity(kind, p)
    return p


def _agenticir(group: str) -> RecipeFn:
    combos = AGENTICIR_COMBOS[group]

    def fn(clean: np.ndarray, rng: np.random.Generator, depth: np.ndarray):
        combo = combos[int(rng.integers(len(combos)))]
        params = [agenticir_params(k, rng) for k in combo]
        return _whole(clean, params, rng, depth)

    return fn


def _kinds_of(combos: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    return tuple(k for k in KINDS if any(k in c for c in combos))


RECIPES: dict[str, Recipe] = {}


def _register(recipe: Recipe) -> None:
    RECIPES[recipe.name] = recipe


_register(
    Recipe(
        "spatial-mixed",
        "2-4 regions (blobs / superpixels / depth bands), 1-3 different kinds each, optional JPEG last",
        KINDS,
        _spatial_mixed,
        spatial=True,
    )
)
for _name, _lo, _hi in (("mild", 0.0, 1 / 3), ("moderate", 1 / 3, 2 / 3), ("severe", 2 / 3, 1.0)):
    _register(
        Recipe(
            f"global-{_name}",
            f"defocus -> noise -> JPEG over the whole image, severities U({_lo:.2f}, {_hi:.2f})",
            ("noise", "defocus", "jpeg"),
            _global(_lo, _hi),
        )
    )
for _n in (2, 3):
    _register(
        Recipe(f"mixed-{_n}", f"{_n} distinct kinds over the whole image, physical order", KINDS, _mixed(_n))
    )
for _sigma in (15, 25, 50):
    _register(
        Recipe(f"noise-{_sigma}", f"Gaussian noise sigma {_sigma} (0-255) only", ("noise",), _noise(_sigma))
    )
for _group, _combos in AGENTICIR_COMBOS.items():
    _register(
        Recipe(
            f"agenticir-{_group}",
            "AgenticIR group " + _group + ": " + ", ".join("+".join(c) for c in _combos),
            _kinds_of(_combos),
            _agenticir(_group),
        )
    )


def list_recipes() -> list[str]:
    """Names of the registered recipes (``spatial-mixed`` first)."""
    return list(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The :class:`Recipe` called ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


def synthesize(clean: np.ndarray, recipe: str = "spatial-mixed", seed: int = 0) -> Scene:
    """Degrade ``clean`` (float32 HxWx3 RGB in [0, 1]) with ``recipe``; ``seed`` (int >= 0) fixes every
    random draw, so the same (image, recipe, seed) gives a bit-identical :class:`Scene`."""
    img = check_image(clean, "clean")
    rec = get_recipe(recipe)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    depth = depth_proxy(img, rng)
    label_map, labels, params, degraded = rec.fn(img, rng, depth)
    return Scene(
        degraded=np.ascontiguousarray(degraded, dtype=np.float32),
        clean=img.copy(),
        masks=labels_to_masks(label_map),
        labels=labels,
        params=[[_jsonable(p) for p in region] for region in params],
        recipe=rec.name,
        seed=int(seed),
        depth=depth,
    )


__all__ = [
    "AGENTICIR_COMBOS",
    "JPEG_PROBABILITY",
    "MIN_REGION_FRACTION",
    "RECIPES",
    "Recipe",
    "Scene",
    "agenticir_params",
    "get_recipe",
    "list_recipes",
    "synthesize",
]
