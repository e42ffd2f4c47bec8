"""The on-disk trajectory dataset: one teacher decision per row, in ``.npz`` shards under a directory.

Layout of a dataset directory::

    meta.json                 teacher, env settings, tool names and the shapes K, D, T, P (see below)
    shard_00000.npz           decisions of scenes [0, E), E = meta["episodes_per_shard"]
    shard_00001.npz           decisions of scenes [E, 2E) ... (missing shards are simply not recorded yet)

``meta.json`` keys: ``format`` (= :data:`FORMAT`), ``teacher`` (planner name), ``judge`` (metric),
``env_kwargs`` (the SpatialIR env's keyword arguments), ``tool_names`` (T names, the action order),
``param_counts`` (p_t per tool), ``num_regions`` K, ``region_dim`` D, ``num_tools`` T, ``num_params`` P,
``embedding`` (embedder name), ``episodes_per_shard`` E, ``seed`` (scene s uses reset seed ``seed + s``),
``episodes`` (the scenes the latest recording run was asked for: :func:`read_dataset` refuses a directory holding
fewer, an interrupted recording; datasets recorded before this key are read as they are).

Arrays of a shard (N rows = decisions, in scene then step order; float32 unless stated):

==================  ============  =========================================================================
key                 shape         meaning
==================  ============  =========================================================================
``scene``           (N,) int64    scene index s (episode number in the dataset)
``seed``            (N,) int64    the env reset seed of that scene (``meta.seed + s``)
``step``            (N,) int32    decision index inside the episode (0 = the degraded input)
``regions``         (N, K, D)     region embeddings the student sees (zeros in padded slots)
``valid``           (N, K)        1 for a real region, 0 for a padded slot
``history``         (N, K, T)     tool-use counts per region so far (the env's observation)
``steps_left``      (N, 1)        steps left in the budget
``joint``           (N,) int32    chosen joint index ``k * T + t``, ``K * T`` = STOP
``region``          (N,) int32    chosen region k (-1 for STOP)
``tool``            (N,) int32    chosen tool index t (T for STOP)
``params_norm``     (N, P)        chosen parameters normalised to [-1, 1] (0 beyond the tool's p_t, STOP)
``params_phys``     (N, P)        the same in physical units (tool's ParamSpec units; NaN beyond p_t, STOP)
``quality_before``  (N,)          judge score before the step (metric units, e.g. dB for PSNR)
``quality_after``   (N,)          judge score after the step taken (= before for STOP; in DAgger rows the
                                  student took the step, the row's choice is still the teacher's)
``psnr_before``     (N,)          PSNR (dB) against the clean image before the step
``psnr_after``      (N,)          PSNR (dB) after the step taken
``return_to_go``    (N,)          episode's final PSNR minus ``psnr_before`` (dB, no step costs)
``gains``           (N, K*T+1)    judged gain of each joint choice with its best tried parameters
                                  (metric units, positive = better; STOP = 0; NaN: padded or not tried)
``best_params``     (N, K, T, P)  normalised parameters of that best tried candidate (NaN: not tried or
                                  beyond p_t)
==================  ============  =========================================================================

``gains`` / ``best_params`` are the dense labels of the student (every (region, tool) pair, not only the
chosen one). :func:`read_dataset` concatenates shards into a :class:`TrajectoryData`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Version tag written to ``meta.json``.
FORMAT = "spatial-ir-trajectories/1"

#: Array keys of a shard and their dtypes.
FIELDS: dict[str, type] = {
    "scene": np.int64, "seed": np.int64, "step": np.int32, "regions": np.float32, "valid": np.float32,
    "history": np.float32, "steps_left": np.float32, "joint": np.int32, "region": np.int32, "tool": np.int32,
    "params_norm": np.float32, "params_phys": np.float32, "quality_before": np.float32,
    "quality_after": np.float32, "psnr_before": np.float32, "psnr_after": np.float32,
    "return_to_go": np.float32, "gains": np.float32, "best_params": np.float32,
}

#: The keys that form the env observation (``policies.ppo.bc.OBS_KEYS`` order).
OBS_FIELDS = ("regions", "valid", "history", "steps_left")


def shard_path(folder: str | Path, index: int) -> Path:
    """``<folder>/shard_<index:05d>.npz``."""
    return Path(folder) / f"shard_{int(index):05d}.npz"


@dataclass
class TrajectoryData:
    """Decisions (rows) with the fields of :data:`FIELDS` as arrays, plus the dataset's ``meta``."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        missing = set(FIELDS) - set(self.arrays)
        if missing:
            raise ValueError(f"trajectory data is missing field(s) {sorted(missing)}")
        n = len(self.arrays["joint"])
        bad = [k for k, v in self.arrays.items() if len(v) != n]
        if bad:
            raise ValueError(f"fields {bad} do not have {n} rows like 'joint'")
        k, t, p = (int(self.meta[x]) for x in ("num_regions", "num_tools", "num_params"))
        shapes = {"regions": (k, int(self.meta["region_dim"])), "valid": (k,), "history": (k, t),
                  "gains": (k * t + 1,), "best_params": (k, t, p), "params_norm": (p,)}
        for key, shape in shapes.items():
            if self.arrays[key].shape[1:] != shape:
                raise ValueError(f"field {key!r} has row shape {self.arrays[key].shape[1:]}, meta says {shape}")

    def __len__(self) -> int:
        return int(len(self.arrays["joint"]))

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    @property
    def obs(self) -> dict[str, np.ndarray]:
        """The observation arrays (``regions``, ``valid``, ``history``, ``steps_left``)."""
        return {k: self.arrays[k] for k in OBS_FIELDS}

    def box_actions(self) -> np.ndarray:
        """(N, 1 + P) ``BoxAction`` vectors ``[joint, θ]`` of the chosen actions."""
        return np.concatenate([self.arrays["joint"][:, None].astype(np.float32), self.arrays["params_norm"]], 1)

    def subset(self, rows: np.ndarray) -> TrajectoryData:
        """The rows ``rows`` (index array or bool mask)."""
        return TrajectoryData({k: v[rows] for k, v in self.arrays.items()}, dict(self.meta))

    def concat(self, other: TrajectoryData) -> TrajectoryData:
        """Both datasets (``self`` first); their ``meta`` shapes and tools, teacher and judge (the labels' meaning),
        and env settings must agree; only where the photos come from (``corpus``, ``split``) may differ."""
        for key in ("tool_names", "num_regions", "region_dim", "num_params", "teacher", "judge"):
            if self.meta.get(key) != other.meta.get(key):
                raise ValueError(f"cannot concatenate datasets with different {key!r} ({self.meta.get(key)!r} vs "
                                 f"{other.meta.get(key)!r})")
        source = ("corpus", "split")
        mine = {k: v for k, v in (self.meta.get("env_kwargs") or {}).items() if k not in source}
        theirs = {k: v for k, v in (other.meta.get("env_kwargs") or {}).items() if k not in source}
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if differ:  # rows of another image size or step budget would be trained as if they were this env's
            raise ValueError(f"cannot concatenate datasets recorded on different envs (env_kwargs "
                             f"{', '.join(differ)} differ)")
        return TrajectoryData({k: np.concatenate([v, other.arrays[k]]) for k, v in self.arrays.items()},
                              dict(self.meta))


def rows_to_arrays(rows: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Stack per-decision dicts (keys of :data:`FIELDS`) into typed arrays."""
    rows = list(rows)
    if not rows:
        raise ValueError("no decisions to stack")
    return {k: np.stack([np.asarray(r[k], dtype=dt) for r in rows]) for k, dt in FIELDS.items()}


#: ``meta.json`` keys a later recording into the same directory may change: ``episodes`` (it may record more scenes).
UPDATABLE_META = ("episodes",)


def write_meta(folder: str | Path, meta: Mapping[str, Any], must_match: tuple[str, ...] = ()) -> Path:
    """Write ``meta.json``; an existing one must describe the same dataset (``ValueError`` otherwise). Keys an
    existing file lacks are accepted (it predates them), except those in ``must_match``."""
    p = Path(folder) / "meta.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, **meta}
    if p.is_file():
        old = _read_json(p)
        diff = [k for k in meta if k not in UPDATABLE_META and (k in old or k in must_match)
                and old.get(k) != json.loads(json.dumps(meta[k]))]
        if diff:
            raise ValueError(f"{p} was recorded with other settings ({', '.join(diff)}): use a new directory")
    p.write_text(json.dumps(meta, indent=1))
    return p


def _read_json(path: Path) -> Any:
    """The JSON in ``path``; ``ValueError`` naming the file when it is not JSON."""
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}): a damaged dataset; record it again") from None


def read_meta(folder: str | Path) -> dict[str, Any]:
    """Read ``meta.json`` of a dataset directory (clear errors for a missing or foreign file)."""
    p = Path(folder) / "meta.json"
    if not p.is_file():
        raise FileNotFoundError(f"no trajectory dataset at {folder} (missing {p.name})")
    meta = _read_json(p)
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != FORMAT:
        raise ValueError(f"{p} is not a {FORMAT} dataset (format {fmt!r})")
    return meta


def write_shard(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write one shard atomically (temporary file, then rename), so an interrupted run leaves no half shard."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.stem + ".tmp.npz")
    np.savez_compressed(tmp, **{k: np.asarray(arrays[k], dtype=dt) for k, dt in FIELDS.items()})
    os.replace(tmp, p)
    return p


def read_shard(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of one shard (``ValueError`` naming the file when it is damaged or a field is missing)."""
    import zipfile

    try:
        z = np.load(Path(path))
        if not isinstance(z, np.lib.npyio.NpzFile):  # a .npy array saved under a shard's name
            raise ValueError(f"a single {type(z).__name__}, not an .npz archive of arrays")
        with z:
            missing = set(FIELDS) - set(z.files)
            if missing:
                raise ValueError(f"{path} is not a trajectory shard: missing {sorted(missing)}")
            return {k: z[k] for k in FIELDS}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError) or str(exc).startswith(f"{path} is not a trajectory shard"):
            raise
        raise ValueError(f"trajectory shard {path} is damaged ({' '.join(str(exc).split()) or type(exc).__name__}): "
                         "record the dataset again (record_trajectories re-records damaged shards)") from None


def read_dataset(folders: str | Path | Iterable[str | Path], allow_partial: bool = False) -> TrajectoryData:
    """All shards of one or more dataset directories (same tools and shapes), concatenated in order. A directory whose
    ``meta.json`` names the ``episodes`` its recording was asked for must hold every one of those scenes (an
    interrupted recording is ``ValueError`` saying how to finish it) unless ``allow_partial``."""
    folders = [folders] if isinstance(folders, str | Path) else list(folders)
    out: TrajectoryData | None = None
    for folder in folders:
        meta = read_meta(folder)
        shards = sorted(Path(folder).glob("shard_[0-9][0-9][0-9][0-9][0-9].npz"))
        if not shards:
            raise FileNotFoundError(f"{folder} holds no shards yet")
        parts = [read_shard(s) for s in shards]
        data = TrajectoryData({k: np.concatenate([p[k] for p in parts]) for k in FIELDS}, meta)
        want = meta.get("episodes")
        if want is not None and not allow_partial:
            have = len(np.unique(data["scene"]))
            if have < int(want):
                raise ValueError(f"{folder} holds {have} of the {want} scenes its recording was asked for (it was "
                                 "interrupted): run python -m experiments.record_trajectories again with the same "
                                 "config to finish it (recorded shards are kept), or pass allow_partial=True")
        out = data if out is None else out.concat(data)
    if out is None:
        raise ValueError("no dataset directories given")
    return out
