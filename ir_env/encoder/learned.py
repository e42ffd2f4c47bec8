"""The ``learned`` region embedder: a small CNN trained on our synthetic scenes (see :mod:`ir_env.encoder`).

Weights live in a directory holding ``encoder.pt`` (a torch ``state_dict``) and ``encoder.json``
(format tag; the architecture of :meth:`DegradationNet.architecture`: ``channels``, ``batchnorm``,
``dct``, ``dilations``, ``quality``; ``families``; feature
standardisation ``feature_mean`` / ``feature_std``; the training config and validation metrics; the
SHA-256 of ``encoder.pt``). The shipped pair is in
``ir_env/encoder/weights/``; ``LearnedEmbedder(weights=DIR)`` loads another. Loading is offline; a
missing file, a wrong format tag, a checksum mismatch or a ``state_dict`` that does not fit the network
raises :class:`EncoderWeightsError` naming the file.

With a context head beside the weights (``context_head.pt`` / ``.json``, :mod:`ir_env.encoder.context`),
:meth:`LearnedEmbedder.predict` -- the encoder's PERCEPTION, used by ``encoder-eval`` and the dfs perception
step -- judges each region against the rest of its image (with a ``blend`` section: the mean with the linear
heads'); the embedding below keeps the linear heads, so what the env observes of a region depends only on pixels
near it. The shipped directory holds such a blend (``experiments/configs/perception_blend.yaml``). Planners that
read a rule table's thresholds (``perceive``, the gates of the learned policies) perceive through the perception
that table was tuned on (``LearnedEmbedder(context=False)`` for the shipped table: the linear heads;
``policies.rules.RuleTable.perception_context``).

Embedding of a region (``dim = 2 F + C``, F = 6 families, C = feature channels), in order:

- ``p_<family>``: the family's probability in [0, 1] (sigmoid of the linear head on the pooled features),
- ``sev_<family>``: predicted severity in [0, 1] if the family is present (the recipes' severity scale),
- ``feat_<i>``: the mask-pooled dense features, standardised with the training set's mean / std and
  clipped to [-5, 5].
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ir_env.embeddings import RegionEmbedder, check_masks
from ir_env.encoder.context import ContextHead, load_context_head
from ir_env.encoder.model import STRIDE, DegradationNet
from ir_env.encoder.segment import SegmentHead, load_segment_head
from ir_env.torchdefaults import float32_default
from restorers.imagecheck import check_image
from restorers.spec import FAMILIES

#: Tag written into ``encoder.json``; bumped when the network or the file layout changes.
FORMAT = "spatial-ir-encoder/3"
#: Directory of the shipped weights.
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights"
#: Clip bound of the standardised features.
FEATURE_CLIP = 5.0


class EncoderWeightsError(FileNotFoundError):
    """The encoder's weights are missing, corrupt or do not match the network."""


def weights_folder_problem(folder: str | Path, files: tuple[str, ...] = ("encoder.json", "encoder.pt")) -> str | None:
    """What keeps ``folder`` from being a weights folder holding ``files``: ``"is not a folder"``, ``"holds no a or
    b"`` (the missing ones), or None when every file is there; for the scripts' "checked before any scene" errors."""
    folder = Path(folder)
    if not folder.is_dir():
        return "is not a folder"
    missing = [n for n in files if not (folder / n).is_file()]
    return f"holds no {' or '.join(missing)}" if missing else None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_tagged_json(path: Path, fmt: str) -> dict[str, Any]:
    """The JSON object in ``path`` whose ``format`` is ``fmt``; :class:`EncoderWeightsError` naming the file
    when it cannot be read, is not JSON or carries another format tag."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise EncoderWeightsError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(info, dict) or info.get("format") != fmt:
        found = info.get("format") if isinstance(info, dict) else None
        raise EncoderWeightsError(f"{path} has format {found!r}, this code reads {fmt!r}")
    return info


def weights_fingerprint(directory: str | Path = DEFAULT_WEIGHTS) -> str:
    """What decides the observations of the encoder in ``directory``: the SHA-256 of ``encoder.pt``, plus
    ``+pool<p>`` when its ``encoder.json`` sets a pooling power other than 1 (a setting without weights)."""
    d = Path(directory)
    sha = file_sha256(d / "encoder.pt")
    try:
        power = float(json.loads((d / "encoder.json").read_text()).get("pool_power", 1.0))
    except (OSError, ValueError):
        power = 1.0
    return sha if power == 1.0 else f"{sha}+pool{power:g}"


def context_fingerprint(directory: str | Path = DEFAULT_WEIGHTS) -> str:
    """``+ctx<12 hex digits of its SHA-256>`` of the context head stored in ``directory``, '' when none is;
    followed by ``+blend<weight>`` when its JSON blends it with the linear heads (:func:`blend_of`)."""
    from ir_env.encoder.context import CONTEXT_JSON, CONTEXT_PT

    pt = Path(directory) / CONTEXT_PT
    if not pt.is_file():
        return ""
    try:
        info = json.loads((Path(directory) / CONTEXT_JSON).read_text())
    except (OSError, ValueError):
        info = {}
    blend = blend_of(info) if isinstance(info, dict) else None
    return f"+ctx{file_sha256(pt)[:12]}" + (f"+blend{blend[0]:g}" if blend is not None else "")


def blend_of(context_info: dict[str, Any] | None) -> tuple[float, np.ndarray] | None:
    """(weight w in [0, 1], per-family thresholds (F,) in (0, 1)) of the ``blend`` section of a context head's
    JSON, or None without one. Perception then reads :func:`blend_probabilities` of the two heads (fitted by
    ``experiments/eval_perception_blend.py``); severities are the same weighted mean.
    :class:`EncoderWeightsError` for a malformed section."""
    b = (context_info or {}).get("blend")
    if b is None:
        return None
    try:
        w = float(b["weight"])
        t = np.asarray([float(b["thresholds"][f]) for f in FAMILIES], np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise EncoderWeightsError(f"context head blend section must hold weight and thresholds for "
                                  f"{', '.join(FAMILIES)}: {e}") from None
    if not 0.0 <= w <= 1.0 or not np.all((t > 0) & (t < 1)):
        raise EncoderWeightsError(f"context head blend: weight must lie in [0, 1] and thresholds in (0, 1), "
                                  f"got {w} and {t.tolist()}")
    return w, t


def blend_probabilities(p_linear: np.ndarray, p_context: np.ndarray, weight: float,
                        thresholds: np.ndarray) -> np.ndarray:
    """The blended family probabilities (N, F) in [0, 1] of :func:`blend_of`: ``(1 - weight) * p_linear +
    weight * p_context`` (both (N, F), calibrated), re-calibrated so that 0.5 sits at ``thresholds`` (F,) in
    (0, 1) of that raw mean (probabilities clipped to [1e-6, 1 - 1e-6] before the logit)."""
    raw = np.clip((1.0 - weight) * np.asarray(p_linear, np.float64) + weight * np.asarray(p_context, np.float64),
                  1e-6, 1.0 - 1e-6)
    thr = np.asarray(thresholds, np.float64)
    return 1.0 / (1.0 + np.exp(-(np.log(raw / (1.0 - raw)) - np.log(thr / (1.0 - thr))[None])))


def segment_fingerprint(directory: str | Path = DEFAULT_WEIGHTS) -> str:
    """``+seg<12 hex digits of its SHA-256>`` of the segmentation head stored in ``directory``, '' when none is."""
    from ir_env.encoder.segment import SEGMENT_PT

    pt = Path(directory) / SEGMENT_PT
    return f"+seg{file_sha256(pt)[:12]}" if pt.is_file() else ""


def perception_fingerprint(directory: str | Path = DEFAULT_WEIGHTS, context: bool = True) -> str:
    """What decides :meth:`LearnedEmbedder.predict` and :meth:`LearnedEmbedder.dense_family_prob` for the
    encoder in ``directory``: :func:`weights_fingerprint` plus :func:`context_fingerprint` plus
    :func:`segment_fingerprint` (the last two empty without those heads, so older fingerprints stay valid).
    ``context=False``: the fingerprint of ``LearnedEmbedder(directory, context=False)``, whose perception
    ignores a stored context head (the linear heads)."""
    ctx = context_fingerprint(directory) if context else ""
    return weights_fingerprint(directory) + ctx + segment_fingerprint(directory)


def observation_fingerprint(env_kwargs: dict) -> str | None:
    """SHA-256 of the shipped encoder weights when an env built with ``env_kwargs`` observes through them
    (its ``embedding`` or ``region_proposer`` is a ``learned`` one), else None. Expert datasets,
    trajectories and models made under another fingerprint saw other observations: never reuse them."""
    if "learned" not in f"{env_kwargs.get('embedding', '')} {env_kwargs.get('region_proposer', '')}":
        return None
    return weights_fingerprint(DEFAULT_WEIGHTS)


def save_weights(net: DegradationNet, directory: str | Path, feature_mean: np.ndarray, feature_std: np.ndarray,
                 meta: dict[str, Any]) -> Path:
    """Write ``encoder.pt`` + ``encoder.json`` for ``net`` into ``directory`` (created); returns the dir."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pt = d / "encoder.pt"
    torch.save({k: v.detach().cpu().clone() for k, v in net.state_dict().items()}, pt)
    info = {"format": FORMAT, **net.architecture(), "families": list(FAMILIES), "stride": STRIDE,
            "feature_mean": [float(v) for v in feature_mean], "feature_std": [float(v) for v in feature_std],
            "sha256": file_sha256(pt), **meta}
    (d / "encoder.json").write_text(json.dumps(info, indent=1) + "\n")
    return d


def ship_weights(source: str | Path, destination: str | Path) -> Path:
    """Copy ``encoder.pt`` + ``encoder.json`` from ``source`` to ``destination`` (created); returns it."""
    src, dst = Path(source), Path(destination)
    dst.mkdir(parents=True, exist_ok=True)
    from ir_env.encoder.context import CONTEXT_JSON, CONTEXT_PT
    from ir_env.encoder.segment import SEGMENT_JSON, SEGMENT_PT

    for name in ("encoder.pt", "encoder.json"):
        if not (src / name).is_file():
            raise EncoderWeightsError(f"cannot ship: {src / name} not found")
        shutil.copy2(src / name, dst / name)
    for name in (CONTEXT_PT, CONTEXT_JSON, SEGMENT_PT, SEGMENT_JSON):  # heads travel with their encoder, or not at all
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
        elif (dst / name).exists():
            (dst / name).unlink()
    return dst


@dataclass
class LoadedEncoder:
    """A network with its standardisation constants and metadata, ready for inference (eval mode), and the
    context and segmentation heads stored beside it (None when there are none)."""

    net: DegradationNet
    mean: np.ndarray
    std: np.ndarray
    info: dict[str, Any]
    context: ContextHead | None = None
    context_info: dict[str, Any] | None = None
    segment: SegmentHead | None = None
    segment_info: dict[str, Any] | None = None


_CACHE: dict[str, LoadedEncoder] = {}
_LOCK = threading.Lock()


def load_encoder(weights: str | Path | None = None, fuse: bool = True) -> LoadedEncoder:
    """Load (and cache per directory) the encoder in ``weights`` (default: the shipped one). ``fuse``: fold
    BatchNorm into the convolutions for inference; ``fuse=False`` keeps the training layout (to fine-tune)."""
    d = Path(weights) if weights is not None else DEFAULT_WEIGHTS

    def stamp(f: Path) -> str:  # a file replaced after the first load must not be served from the cache
        return f"{f.stat().st_mtime_ns}:{f.stat().st_size}" if f.is_file() else "-"

    key = f"{d.resolve()}|fuse={bool(fuse)}|" + "|".join(stamp(d / n) for n in ("encoder.json", "encoder.pt"))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        js, pt = d / "encoder.json", d / "encoder.pt"
        for f in (js, pt):
            if not f.is_file():
                raise EncoderWeightsError(
                    f"encoder weights file {f} not found: weights=DIR must be a folder holding encoder.pt and "
                    "encoder.json, as the script that made it writes them (experiments.train_encoder for an "
                    "encoder, experiments.fit_context_head or fit_segment_head for an encoder with a head); "
                    "without weights= the shipped encoder is used")
        info = read_tagged_json(js, FORMAT)
        if list(info.get("families", [])) != list(FAMILIES):
            raise EncoderWeightsError(f"{js} was trained for families {info.get('families')}, not {list(FAMILIES)}")
        sha = file_sha256(pt)
        if not info.get("sha256"):
            raise EncoderWeightsError(f"{js} holds no sha256 of {pt.name}: the weights cannot be checked")
        if info["sha256"] != sha:
            raise EncoderWeightsError(f"{pt} does not match the checksum in {js} (corrupt or replaced file)")
        try:
            with float32_default():  # float32 parameters whatever the caller's default dtype
                net = DegradationNet.from_architecture({**info, "families": len(FAMILIES)})
            mean = np.asarray(info["feature_mean"], np.float64)
            std = np.asarray(info["feature_std"], np.float64)
        except (KeyError, ValueError, TypeError) as e:
            raise EncoderWeightsError(f"{js} is malformed ({type(e).__name__}: {e})") from None
        try:
            state = torch.load(pt, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - any unpickling / shape error means the file does not fit
            raise EncoderWeightsError(f"{pt} does not fit the encoder network described in {js} "
                                      f"({net.architecture()}): {e}") from None
        net.eval()
        if fuse:
            net.fuse_for_inference()  # BatchNorm folded into the convolutions: same outputs, faster
        if mean.shape != (net.channels,) or std.shape != (net.channels,) or not np.all(std > 0):
            raise EncoderWeightsError(f"{js}: feature_mean / feature_std must hold {net.channels} values (std > 0)")
        loaded = load_context_head(d, sha)
        seg = load_segment_head(d, sha)
        enc = LoadedEncoder(net, mean, std, info, *(loaded if loaded is not None else (None, None)),
                            *(seg if seg is not None else (None, None)))
        _CACHE[key] = enc
        return enc


def _pad8(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    ph, pw = (-h) % STRIDE, (-w) % STRIDE
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > STRIDE else "edge")
    return image


def cell_weights(masks: np.ndarray) -> np.ndarray:
    """(K, H, W) bool masks -> (K, ceil(H/8), ceil(W/8)) float64 fraction of each 8x8 cell inside the mask."""
    k, h, w = masks.shape
    m = np.zeros((k, h + (-h) % STRIDE, w + (-w) % STRIDE), np.float64)
    m[:, :h, :w] = masks
    return m.reshape(k, m.shape[1] // STRIDE, STRIDE, m.shape[2] // STRIDE, STRIDE).mean(axis=(2, 4))


def _weighted_mean(w: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """(K, h, w) cell weights and (h, w, C) features -> (K, C) weighted means (zero rows for zero weight)."""
    total = w.sum(axis=(1, 2))
    pooled = np.einsum("khw,hwc->kc", w, feats)  # einsum loops: order-stable, no BLAS
    return np.where(total[:, None] > 0, pooled / np.maximum(total, 1e-12)[:, None], 0.0)


class LearnedEmbedder(RegionEmbedder):
    """Region embeddings from the learned degradation encoder (layout in the module docstring).

    Args:
        weights: directory with ``encoder.pt`` and ``encoder.json`` (default: shipped weights).
        device: torch device for the network (``"cpu"``; ``"cuda"`` when available).
        context: let :meth:`predict` use the context head stored with the weights (when there is one);
            False: the linear heads, as :meth:`embed`.
        segment: let :meth:`dense_family_prob` use the segmentation head stored with the weights (when there
            is one); False: the linear family head on every cell.

    Attribute ``blend``: (weight, thresholds) of the context head's blend with the linear heads used by
    :meth:`predict` (:func:`blend_of`), or None.
    """

    def __init__(self, weights: str | Path | None = None, device: str = "cpu", context: bool = True,
                 segment: bool = True) -> None:
        from ir_env.quality import normalise_device

        self.device = torch.device(normalise_device(device))
        self.enc = load_encoder(weights)
        if self.device.type != "cpu":  # a private copy on the device; the cached CPU network stays shared
            def moved(m: torch.nn.Module | None) -> Any:
                return copy.deepcopy(m).to(self.device).eval() if m is not None else None

            self.enc = LoadedEncoder(moved(self.enc.net), self.enc.mean, self.enc.std, self.enc.info,
                                     moved(self.enc.context), self.enc.context_info,
                                     moved(self.enc.segment), self.enc.segment_info)
        self.context = self.enc.context if context else None
        self.blend = blend_of(self.enc.context_info) if self.context is not None else None
        self.segment = self.enc.segment if segment else None
        c = self.enc.net.channels
        self._names = ([f"p_{f}" for f in FAMILIES] + [f"sev_{f}" for f in FAMILIES]
                       + [f"feat_{i}" for i in range(c)])

    @property
    def name(self) -> str:
        return "learned"

    @property
    def dim(self) -> int:
        return len(self._names)

    @property
    def feature_names(self) -> list[str]:
        return list(self._names)

    def dense_features(self, image: np.ndarray) -> np.ndarray:
        """Raw feature map of ``image`` (float32 HxWx3 in [0, 1], >= 8 px a side): (ceil(H/8), ceil(W/8), C)
        float32; image sides that are not multiples of 8 are reflect-padded first."""
        img = check_image(image, "image")
        if min(img.shape[:2]) < STRIDE:
            raise ValueError(f"image must be at least {STRIDE} px a side for the learned encoder, got {img.shape}")
        x = torch.from_numpy(np.ascontiguousarray(_pad8(img).transpose(2, 0, 1)))[None].to(self.device)
        with torch.inference_mode():
            f = self.enc.net.features(x)[0]
        return f.permute(1, 2, 0).cpu().numpy().astype(np.float32)

    def dense_family_prob(self, image: np.ndarray) -> np.ndarray:
        """Per-pixel family probabilities (H, W, F) float32 in [0, 1] of ``image`` (float32 HxWx3 in [0, 1]):
        per 8x8 feature cell, the segmentation head's calibrated output when there is one (and ``segment``),
        else the linear family head on the cell's features alone; bilinearly upsampled to the image."""
        import cv2

        img = check_image(image, "image")
        dense = self.dense_features(img)
        with torch.inference_mode():
            f = torch.from_numpy(dense).to(self.device)
            if self.segment is not None:
                prob = self.segment(f.permute(2, 0, 1)[None])[0].permute(1, 2, 0)
            else:
                prob = torch.sigmoid(self.enc.net.heads(f)[0])
        p = prob.cpu().numpy().astype(np.float32)
        h, w = img.shape[:2]
        return cv2.resize(p, (p.shape[1] * STRIDE, p.shape[0] * STRIDE), interpolation=cv2.INTER_LINEAR)[:h, :w]

    def _heads(self, pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            lf, ls = self.enc.net.heads(torch.from_numpy(pooled.astype(np.float32)).to(self.device))
        return torch.sigmoid(lf).cpu().numpy(), torch.sigmoid(ls).cpu().numpy()

    def pooled(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(K, C) float64 mask-pooled raw features (zeros for an empty mask)."""
        return self._pool(image, masks, rest=False)[0]

    def _pool(self, image: np.ndarray, masks: np.ndarray, rest: bool
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Pooled features of each region and, with ``rest``, of the rest of the image (zero rows where
        nothing is left) with 1.0 where the rest holds any weight, else 0.0."""
        img = check_image(image, "image")
        m = check_masks(masks, img.shape[:2])
        feats = self.dense_features(img).astype(np.float64)
        cells = cell_weights(m)
        pooled = _weighted_mean(self.enc.net.region_weights(cells), feats)
        if not rest:
            return pooled, None, None
        inside = cell_weights(np.ones((1, *m.shape[1:]), bool))  # < 1 in cells padded to a multiple of 8
        w_rest = self.enc.net.region_weights(np.clip(inside - cells, 0.0, 1.0))
        return pooled, _weighted_mean(w_rest, feats), (w_rest.sum(axis=(1, 2)) > 1e-9).astype(np.float64)

    def predict(self, image: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
        """Per region: ``family_prob`` (K, F) in [0, 1] and ``severity`` (K, F) in [0, 1]; F = FAMILIES.
        Probabilities are calibrated: 0.5 is each family's best-F1 threshold on validation scenes. With a
        context head each region is judged against the rest of the image (module docstring), and with a blend
        section in its JSON the result is its mean with the linear heads' (:func:`blend_of`)."""
        from ir_env.embeddings import check_masks
        from restorers import check_image

        masks = check_masks(masks, check_image(image).shape[:2])  # named errors, not numpy's AxisError
        empty = ~np.asarray(masks, bool).any(axis=(1, 2))
        if self.context is None:
            prob, sev = self._heads(self.pooled(image, masks))
        else:
            pooled, rest, has_rest = self._pool(image, masks, rest=True)

            def t(a: np.ndarray) -> torch.Tensor:
                return torch.from_numpy(np.asarray(a, np.float32)).to(self.device)

            with torch.inference_mode():
                p, s = self.context(t(pooled), t(rest), t(has_rest))
            prob, sev = p.cpu().numpy().astype(np.float64), s.cpu().numpy().astype(np.float64)
            if self.blend is not None:  # the mean with the linear heads, re-calibrated (blend_of)
                w, thr = self.blend
                p_lin, s_lin = self._heads(pooled)
                prob = blend_probabilities(p_lin, prob, w, thr)
                sev = (1.0 - w) * s_lin + w * sev
        prob, sev = np.array(prob, np.float64), np.array(sev, np.float64)
        prob[empty], sev[empty] = 0.0, 0.0  # an empty (padded) mask perceives nothing, with or without context
        return {"family_prob": prob, "severity": sev}

    def embed(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(K, dim) float32 embeddings; an empty mask gives a zero row."""
        pooled = self.pooled(image, masks)
        prob, sev = self._heads(pooled)
        z = np.clip((pooled - self.enc.mean) / self.enc.std, -FEATURE_CLIP, FEATURE_CLIP)
        out = np.concatenate([prob, sev, z], axis=1).astype(np.float32)
        out[~np.asarray(masks, bool).any(axis=(1, 2))] = 0.0
        return out
