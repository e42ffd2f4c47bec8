"""Image corpora: the built-in photos shipped inside installed packages, or any folder of images.

The ``builtin`` corpus is 12 real photos found on disk inside scikit-image, scikit-learn and
matplotlib (nothing is downloaded), all at least 300 px on the short side, with a fixed split
(:data:`BUILTIN_SPLITS`): 8 train, 4 test. Synthetic images, text, textures that are already degraded
(``clock_motion``), near duplicates (``motorcycle_right``, the stereo twin of ``motorcycle_left``) and
mostly-black frames (``hubble_deep_field``, ``retina``) are left out. ``camera``, ``coins`` and ``brick``
are greyscale photos, repeated to RGB.

The ``kodak`` corpus is a TRAIN-ONLY extra: 5 Kodak reference photos (512 x 384, ``I03``, ``I04``,
``I06``, ``I08``, ``I19``: clean references of TID2013 / KADID-10k) that pyiqa's wheel installs under
``ResultsCalibra/ref_dir``. Its ``train`` and ``all`` splits are those 5; it has no ``test`` split, so
the built-in test photos stay the only test photos. ``"builtin+kodak"`` is the union of both (its
``test`` split is the built-in one).

The ``holdout`` corpus is a TEST-ONLY second set of 4 clean photos that no encoder, policy or rule table
is trained, tuned or selected on: a garden and a sunset photo that pyiqa's wheel installs under
``tests/test_efficiency_img_dir`` (``frame_4wrwr48cdk6rbcjl.jpg``, 1152 x 864; ``frame_7gzdcz9sif0ekg31.jpg``,
1067 x 800) and PyWavelets' greyscale ``aero`` and ``ascent`` (512 x 512, stored as ``.npz`` arrays under
``pywt/data``). The built-in test split has been scored by many candidates; this one checks a result on
photos nobody looked at while choosing. Its ``test`` and ``all`` splits are those 4; it has no ``train``
split.

A folder corpus is every PNG / JPEG / BMP / TIFF file directly inside the folder (not recursive), sorted
by file name, any size, greyscale allowed; split: every 3rd file (sorted index 2, 5, 8, ...) is test,
the rest train. Unreadable (corrupt) files are skipped with a ``UserWarning`` naming the file.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import warnings
from pathlib import Path

import cv2
import numpy as np

from ir_env.imageio import IMAGE_EXTENSIONS, DamagedImageWarning, read_image
from restorers.imagecheck import check_image

SPLITS: tuple[str, ...] = ("train", "test", "all")

#: Built-in image name -> (package, folder inside the package).
BUILTIN_SOURCES: dict[str, tuple[str, str]] = {
    "astronaut.png": ("skimage", "data"),
    "chelsea.png": ("skimage", "data"),
    "coffee.png": ("skimage", "data"),
    "rocket.jpg": ("skimage", "data"),
    "motorcycle_left.png": ("skimage", "data"),
    "ihc.png": ("skimage", "data"),
    "camera.png": ("skimage", "data"),
    "coins.png": ("skimage", "data"),
    "brick.png": ("skimage", "data"),
    "china.jpg": ("sklearn", "datasets/images"),
    "flower.jpg": ("sklearn", "datasets/images"),
    "grace_hopper.jpg": ("matplotlib", "mpl-data/sample_data"),
}

#: The fixed built-in split (names are file names).
BUILTIN_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "astronaut.png",
        "coffee.png",
        "rocket.jpg",
        "ihc.png",
        "flower.jpg",
        "grace_hopper.jpg",
        "camera.png",
        "brick.png",
    ),
    "test": ("chelsea.png", "china.jpg", "motorcycle_left.png", "coins.png"),
}


#: Train-only extra photos: name -> (package, folder inside the package).
KODAK_SOURCES: dict[str, tuple[str, str]] = {
    f"I{k:02d}.bmp": ("ResultsCalibra", "ref_dir") for k in (3, 4, 6, 8, 19)
}

#: Test-only held-out photos (see the module docstring): name -> (package, folder relative to the package).
HOLDOUT_SOURCES: dict[str, tuple[str, str]] = {
    "frame_4wrwr48cdk6rbcjl.jpg": ("pyiqa", "../tests/test_efficiency_img_dir"),  # garden
    "frame_7gzdcz9sif0ekg31.jpg": ("pyiqa", "../tests/test_efficiency_img_dir"),  # sunset
    "aero.npz": ("pywt", "data"),
    "ascent.npz": ("pywt", "data"),
}

#: Named corpora :func:`load_named_corpus` knows besides folders (``a+b``: the union of ``a`` and ``b``).
NAMED_CORPORA: tuple[str, ...] = ("builtin", "kodak", "builtin+kodak", "holdout")

#: Image names of each split of each single named corpus; a split a corpus lacks is absent.
_NAMED_SPLITS: dict[str, dict[str, tuple[str, ...]]] = {
    "builtin": {**BUILTIN_SPLITS, "all": BUILTIN_SPLITS["train"] + BUILTIN_SPLITS["test"]},
    "kodak": {"train": tuple(KODAK_SOURCES), "all": tuple(KODAK_SOURCES)},
    "holdout": {"test": tuple(HOLDOUT_SOURCES), "all": tuple(HOLDOUT_SOURCES)},
}


def builtin_path(name: str) -> Path:
    """Path on disk of built-in image ``name``; ``ValueError`` for an unknown name, ``FileNotFoundError``
    if the installed package does not ship the file."""
    sources = {**BUILTIN_SOURCES, **KODAK_SOURCES, **HOLDOUT_SOURCES}
    if name not in sources:
        raise ValueError(f"unknown built-in image {name!r}; known: {', '.join(sources)}")
    package, folder = sources[name]
    try:  # located, not imported (importing pyiqa would load torch)
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as err:
        raise FileNotFoundError(f"built-in image {name!r} needs the package {package!r}: {err}") from err
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"built-in image {name!r} needs the package {package!r}, which is not installed")
    path = (Path(list(spec.submodule_search_locations)[0]) / folder / name).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"built-in image {name!r} is missing from the installed {package!r}: {path}")
    return path


def _read_npz_photo(path: Path) -> np.ndarray:
    """The single uint8 greyscale array of a PyWavelets ``.npz`` photo as float32 HxWx3 RGB in [0, 1]."""
    with np.load(path) as data:
        arr = data[data.files[0]]
    if arr.dtype != np.uint8 or arr.ndim != 2:
        raise ValueError(f"expected one uint8 greyscale array in {path}, got {arr.dtype} {arr.shape}")
    return np.repeat((arr.astype(np.float32) / 255.0)[..., None], 3, axis=2)


@functools.cache
def _builtin_image(name: str) -> np.ndarray:
    path = builtin_path(name)
    img = _read_npz_photo(path) if path.suffix == ".npz" else read_image(path)
    img.flags.writeable = False
    return img


def _folder_files(folder: Path) -> list[Path]:
    names = ", ".join(repr(n) for n in NAMED_CORPORA)
    if not folder.exists():
        close = [n for n in NAMED_CORPORA if n.lower() == str(folder).lower().strip()]
        hint = f"; did you mean {close[0]!r}? (names are lower case)" if close else ""
        raise FileNotFoundError(f"corpus folder not found: {folder} (use a named corpus, {names}, or an existing "
                                f"folder){hint}")
    if not folder.is_dir():
        raise ValueError(f"corpus must be a named corpus ({names}) or a folder, got a file: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"corpus folder {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


#: What the decoders say of a file cut short (the missing part decodes as flat grey): such corpus files are skipped.
_CUT_SHORT = re.compile(r"premature end|truncated|imdecode refused|unexpected end|not enough data", re.IGNORECASE)

#: Smallest side (px) of a photo read from a corpus folder; smaller files are skipped with a warning.
MIN_PHOTO_SIDE = 8


def load_named_corpus(
    name_or_folder: str | Path = "builtin", split: str = "train", limit: int | None = None
) -> list[tuple[str, np.ndarray]]:
    """(file name, float32 HxWx3 RGB image in [0, 1]) pairs of a corpus split.

    ``name_or_folder``: ``"builtin"``, ``"kodak"`` (train-only), ``"builtin+kodak"``, ``"holdout"``
    (test-only) or a folder path;
    ``split``: ``"train"``, ``"test"`` or ``"all"``; in a folder the test split is every third file by sorted
    name (files 2, 5, 8, ...), the train split the others.
    ``limit``: at most this many images (>= 1; None: all): a folder's files are decoded only until that many
    are read, so the first few of a large photo folder come without decoding the rest.
    Returns fresh copies (callers may modify them). Raises ``ValueError`` for an unknown split, a folder
    without (readable) images or an empty split, ``FileNotFoundError`` for a missing folder.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit must be a whole number >= 1 (or None for all images), got {limit!r}")
    if not isinstance(name_or_folder, (str, Path)) or not str(name_or_folder).strip():
        raise ValueError(f"corpus must be a name (builtin, kodak, builtin+kodak, holdout) or a folder path, got "
                         f"{name_or_folder!r}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    name = str(name_or_folder)
    if name in NAMED_CORPORA:
        parts = [_NAMED_SPLITS[part] for part in name.split("+")]
        names = sum((part.get(split, ()) for part in parts), ())
        if not names:
            only = "train-only" if split == "test" else "test-only"
            raise ValueError(f"the {name!r} corpus is {only}: it has no {split!r} split (its splits: "
                             f"{', '.join(dict.fromkeys(sp for part in parts for sp in part))})")
        return [(n, _builtin_image(n).copy()) for n in names[:limit]]
    folder = Path(name_or_folder).expanduser()
    files = _folder_files(folder)
    if split != "all":
        files = [f for i, f in enumerate(files) if (i % 3 == 2) == (split == "test")]
    out: list[tuple[str, np.ndarray]] = []
    for f in files:
        if limit is not None and len(out) >= limit:
            break
        try:
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                img = read_image(f)
        except ValueError as err:
            warnings.warn(f"skipping unreadable image {f}: {err}", UserWarning, stacklevel=2)
            continue
        damaged = [str(w.message) for w in said  # the decoder's words only, not the file's path
                   if isinstance(w.message, DamagedImageWarning) and _CUT_SHORT.search(w.message.decoder_said)]
        if damaged:  # a truncated file decodes with the rest flat grey: never a clean reference
            warnings.warn(f"skipping damaged image {f}: {damaged[0]}", UserWarning, stacklevel=2)
            continue
        for w in said:  # other decoder remarks (extraneous bytes in a camera JPEG): kept, still said
            warnings.warn(w.message, w.category, stacklevel=2)
        if min(img.shape[:2]) < MIN_PHOTO_SIDE:  # a crop of it would be one flat colour, not a photo
            warnings.warn(f"skipping image {f}: {img.shape[0]}x{img.shape[1]} px is smaller than "
                          f"{MIN_PHOTO_SIDE} px a side", UserWarning, stacklevel=2)
            continue
        out.append((f.name, img))
    if not out:
        raise ValueError(
            f"corpus folder {folder} has no readable images in split {split!r} "
            f"({len(files)} file(s) tried"
            + ("; every 3rd sorted file is test, use split='all' for all)" if split != "all" else ")")
        )
    return out


def load_corpus(name_or_folder: str | Path = "builtin", split: str = "train") -> list[np.ndarray]:
    """Images (float32 HxWx3 RGB in [0, 1]) of a corpus split; see :func:`load_named_corpus`."""
    return [img for _, img in load_named_corpus(name_or_folder, split)]


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise ValueError(f"crop size must be positive, got {size!r}")
    return int(h), int(w)


def _cover(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Upscale (bicubic, aspect kept) so the image covers h x w; unchanged if it already does."""
    ih, iw = image.shape[:2]
    scale = max(h / ih, w / iw)
    if scale <= 1.0:
        return image
    size = (max(w, int(np.ceil(iw * scale))), max(h, int(np.ceil(ih * scale))))
    return np.clip(cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def random_crop(image: np.ndarray, size: int | tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A ``size`` (int or (h, w) px) crop at a position drawn from ``rng``; an image smaller than ``size``
    is first upscaled (bicubic, aspect kept) to cover it. ``image``: float32 HxWx3 in [0, 1] (checked). Returns a
    contiguous float32 copy."""
    h, w = _size_hw(size)
    img = _cover(check_image(image), h, w)
    y = int(rng.integers(0, img.shape[0] - h + 1))
    x = int(rng.integers(0, img.shape[1] - w + 1))
    return np.ascontiguousarray(img[y : y + h, x : x + w], dtype=np.float32)


def center_crop(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """The central ``size`` (int or (h, w) px) crop of a float32 HxWx3 image in [0, 1] (checked), upscaling first
    like :func:`random_crop`."""
    h, w = _size_hw(size)
    img = _cover(check_image(image), h, w)
    y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return np.ascontiguousarray(img[y : y + h, x : x + w], dtype=np.float32)


def resize_short(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a float32 HxWx3 image in [0, 1] (checked) so the short side is ``size`` px (area interpolation to
    shrink, bicubic to enlarge)."""
    image = check_image(image)
    if int(size) < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    ih, iw = image.shape[:2]
    scale = int(size) / min(ih, iw)
    new = (max(1, round(iw * scale)), max(1, round(ih * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(np.asarray(image, dtype=np.float32), new, interpolation=interp), 0.0, 1.0)


__all__ = [
    "BUILTIN_SPLITS",
    "BUILTIN_SOURCES",
    "builtin_path",
    "center_crop",
    "load_corpus",
    "load_named_corpus",
    "random_crop",
    "resize_short",
]
