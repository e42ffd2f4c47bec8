"""Experience memory: reuse tool schedules that worked on similar regions before (planner ``memory``).

:class:`ExperienceMemory` stores entries ``(region embedding -> tool schedule, judged gain)``; a schedule is
a list of ``(tool name, physical params)`` applied in order to one region. Retrieval is nearest neighbour
in embedding space (Euclidean over the embedding's features, the geometry features area / centroid /
bounding box left out by default), returning entries with *distinct* tool sequences so the few tries
differ. It persists to JSON (:meth:`ExperienceMemory.save` / :meth:`ExperienceMemory.load`) and can be
pre-filled from recorded teacher trajectories (:meth:`ExperienceMemory.add_trajectories`; command line:
``python -m policies.memory --trajectories runs/trajectories/greedy_spatial64 -o memory.json``).

:class:`MemoryPlanner` (``make_planner("memory", memory=PATH)``): for each region (largest first) it
embeds the region once, retrieves the ``tries`` nearest schedules, runs each on the region (tool calls
counted) and asks its judge (one IQA call per try) which is best; the best is kept if the judge says it
gains more than ``threshold``. With ``judge="none"`` the nearest schedule is applied without checking (no
IQA calls). With ``learn=True`` every kept schedule is added to the memory under the region's embedding,
and with ``autosave=True`` the new entries are merged into its file after each image (under a file lock, so
processes sharing one memory file keep each other's entries).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ir_env.embeddings import make_embedder
from ir_env.paths import check_takes_files, check_writable, nearest_existing
from ir_env.quality import METRICS
from ir_env.quality import gain as metric_gain
from policies.base import (
    Planner,
    RestorationResult,
    TraceStep,
    flag_option,
    number_option,
    ran_params,
    region_areas,
    whole_option,
)
from restorers import apply, get_tool

#: Version tag of the JSON file.
FORMAT = "spatial-ir-memory/1"
#: Embedding features that describe where a region is, not how it is degraded (ignored by retrieval).
GEOMETRY = ("area", "centroid_y", "centroid_x", "bbox_h", "bbox_w")
#: Embedding values are clipped like the env's observation (``ir_env.env.EMBED_BOUND``).
EMBED_BOUND = 10.0

#: The memory shipped with the package (pre-filled from the greedy-oracle trajectories), if present.
DEFAULT_MEMORY = Path(__file__).resolve().parent / "distill" / "models" / "memory_spatial.json"

Schedule = list[tuple[str, dict[str, float]]]


def check_schedule(schedule: Iterable[Any]) -> Schedule:
    """A validated copy of a schedule: non-empty ``(tool name, {param: physical value})`` pairs, tools known,
    values finite and inside the tool's ranges (``ValueError`` otherwise)."""
    out: Schedule = []
    for item in schedule:
        if isinstance(item, dict):
            name, params = item.get("tool"), item.get("params", {})
        else:
            name, params = item
        tool = get_tool(str(name))  # ValueError for an unknown tool
        params = {str(k): float(v) for k, v in dict(params).items()}
        for spec in tool.params:
            if spec.name not in params:
                raise ValueError(f"schedule step {name!r} misses parameter {spec.name!r}")
            v = params[spec.name]
            if not math.isfinite(v) or not spec.low - 1e-6 <= v <= spec.high + 1e-6:
                raise ValueError(f"schedule step {name!r}: {spec.name}={v} outside [{spec.low}, {spec.high}]")
            params[spec.name] = min(max(v, spec.low), spec.high)  # float32 storage may overshoot by an ulp
        unknown = set(params) - {s.name for s in tool.params}
        if unknown:
            raise ValueError(f"schedule step {name!r}: unknown parameter(s) {sorted(unknown)}")
        out.append((tool.name, params))
    if not out:
        raise ValueError("a schedule needs at least one step")
    return out


@dataclass
class MemoryEntry:
    """One remembered schedule: ``key`` (D,) float32 region embedding before it ran, ``schedule``, the
    judged ``gain`` it achieved (judge units, positive = better) and a free-text ``source``."""

    key: np.ndarray
    schedule: Schedule
    gain: float
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (key rounded to 3 decimals, parameters to 6 significant digits)."""
        return {"key": [round(float(x), 3) for x in self.key], "gain": round(float(self.gain), 4),
                "source": self.source, "schedule": [{"tool": t, "params": {k: float(f"{v:.6g}") for k, v in p.items()}}
                                                    for t, p in self.schedule]}

    def signature(self) -> str:
        """The entry as a memory file stores it (:meth:`as_dict`, key rounded to 3 decimals), as one string: two
        entries with one signature are the same entry."""
        return json.dumps(self.as_dict(), sort_keys=True)


@dataclass
class ExperienceMemory:
    """Region embedding -> schedule entries with nearest-neighbour retrieval.

    Args:
        embedding: the embedder the keys come from (``handcrafted``; a learned one later).
        dim: key length D (default: the embedder's).
        ignore_features: feature names left out of the distance (default: :data:`GEOMETRY`).
    """

    embedding: str = "handcrafted"
    dim: int | None = None
    ignore_features: Sequence[str] = GEOMETRY
    entries: list[MemoryEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        embedder = make_embedder(self.embedding)
        if self.dim is None:
            self.dim = int(embedder.dim)
        if int(self.dim) != int(embedder.dim):
            raise ValueError(f"memory keys have dim {self.dim}, embedder {self.embedding!r} gives {embedder.dim}")
        names = list(embedder.feature_names)
        if isinstance(self.ignore_features, str):  # one feature name, not its letters
            self.ignore_features = (self.ignore_features,)
        self.ignore_features = tuple(self.ignore_features)
        if self.ignore_features == GEOMETRY:  # the default: the geometry features this embedding has (none: learned)
            self.ignore_features = tuple(n for n in GEOMETRY if n in names)
        unknown = [n for n in self.ignore_features if n not in names]
        if unknown:
            raise ValueError(f"ignore_features {unknown} are not features of the {self.embedding!r} embedding")
        self.weights = np.array([0.0 if n in self.ignore_features else 1.0 for n in names], np.float32)
        self._keys: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def _check_key(self, key: Any) -> np.ndarray:
        k = np.asarray(key, dtype=np.float32).reshape(-1)
        if k.shape != (self.dim,):
            raise ValueError(f"a memory key must have {self.dim} values, got shape {np.shape(key)}")
        if not np.all(np.isfinite(k)):
            raise ValueError("a memory key contains NaN or inf")
        return np.clip(k, -EMBED_BOUND, EMBED_BOUND)

    def add(self, key: Any, schedule: Iterable[Any], gain: float, source: str = "", unique: bool = False
            ) -> MemoryEntry:
        """Store a schedule under a region embedding; returns the new entry. With ``unique`` an entry equal to a
        stored one (same key, schedule, gain and source as :meth:`MemoryEntry.as_dict` writes them) is not stored
        again: the stored one is returned (a planner that learns and sees one image twice)."""
        if not math.isfinite(float(gain)):
            raise ValueError(f"gain must be finite, got {gain}")
        entry = MemoryEntry(self._check_key(key), check_schedule(schedule), float(gain), str(source))
        if unique and self.entries:
            sig = entry.signature()
            # only a key equal to 3 decimals (as files store them: a memory read back from its file) can be a duplicate
            for i in np.flatnonzero(np.all(np.abs(self._stacked_keys() - entry.key) <= 6e-4, axis=1)):
                if self.entries[int(i)].signature() == sig:
                    return self.entries[int(i)]
        self.entries.append(entry)
        self._keys = None
        return entry

    def distances(self, key: Any) -> np.ndarray:
        """Weighted Euclidean distance of ``key`` to every stored key (N,)."""
        k = self._check_key(key)
        if not self.entries:
            return np.zeros(0, np.float32)
        return np.sqrt((((self._stacked_keys() - k) ** 2) * self.weights).sum(axis=1))

    def _stacked_keys(self) -> np.ndarray:
        """Every stored key as one (N, D) array (kept until an entry is added); needs at least one entry."""
        if self._keys is None:
            self._keys = np.stack([e.key for e in self.entries])
        return self._keys

    def nearest(self, key: Any, n: int = 3, distinct: bool = True) -> list[tuple[float, MemoryEntry]]:
        """The ``n`` nearest entries as ``(distance, entry)``, nearest first; with ``distinct`` an entry whose
        tool sequence equals a nearer one's is skipped. Ties keep insertion order."""
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        d = self.distances(key)
        out: list[tuple[float, MemoryEntry]] = []
        seen: set[tuple[str, ...]] = set()
        for i in np.argsort(d, kind="stable"):
            e = self.entries[int(i)]
            tools = tuple(t for t, _ in e.schedule)
            if distinct and tools in seen:
                continue
            seen.add(tools)
            out.append((float(d[i]), e))
            if len(out) == int(n):
                break
        return out

    # ------------------------------------------------------------------ persistence
    @property
    def fingerprint(self) -> str | None:
        """SHA-256 of the encoder weights a learned embedding's keys come from (None for the hand-made one)."""
        from ir_env.encoder.learned import observation_fingerprint

        return observation_fingerprint({"embedding": self.embedding})

    def to_json(self) -> dict[str, Any]:
        """The JSON document :meth:`save` writes (``encoder_sha256`` only for a learned embedding)."""
        stamp = {"encoder_sha256": self.fingerprint} if self.fingerprint else {}
        return {"format": FORMAT, "embedding": self.embedding, "dim": self.dim, **stamp,
                "ignore_features": list(self.ignore_features), "entries": [e.as_dict() for e in self.entries]}

    def save(self, path: str | Path) -> Path:
        """Write the memory as JSON (atomically: a temporary file of its own in the same folder, then rename)."""
        import os
        import uuid

        p = Path(path)
        if p.is_dir():
            raise ValueError(f"memory path {p} is a directory, not a file")
        p.parent.mkdir(parents=True, exist_ok=True)
        # the temporary file is created as open() creates files (0666 less the umask; mkstemp's are private, 0600),
        # without touching the process-wide umask; a shared file that exists keeps its own permissions
        tmp = p.parent / f"{p.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.to_json(), separators=(",", ":")))
            if p.is_file():
                os.chmod(tmp, p.stat().st_mode & 0o777)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return p

    @classmethod
    def load(cls, path: str | Path) -> ExperienceMemory:
        """Read a memory written by :meth:`save`; ``FileNotFoundError`` / ``ValueError`` name the file and the
        problem (not JSON, another format, a malformed entry, keys of other encoder weights)."""
        p = Path(path)
        if p.is_dir():
            raise ValueError(f"memory path {p} is a directory, not a memory file")
        if not p.is_file():
            raise FileNotFoundError(f"no memory file at {p}")
        try:
            doc = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{p} is not a memory file (not valid JSON: {e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"{p} is not a {FORMAT} file")
        try:
            mem = cls(embedding=str(doc["embedding"]), dim=int(doc["dim"]),
                      ignore_features=tuple(doc.get("ignore_features", GEOMETRY)))
            stamp = doc.get("encoder_sha256")
            if stamp is not None and stamp != mem.fingerprint:
                raise ValueError(f"its keys were made by encoder weights {str(stamp)[:12]}, this install's are "
                                 f"{str(mem.fingerprint)[:12]}: build the memory again")
            entries = doc["entries"]
            if not isinstance(entries, list):
                raise ValueError(f"'entries' must be a list, got {type(entries).__name__}")
            for i, e in enumerate(entries):
                if not isinstance(e, dict) or not {"key", "schedule", "gain"} <= set(e):
                    raise ValueError(f"entry {i} must hold key, schedule and gain")
                try:
                    mem.add(e["key"], e["schedule"], float(e["gain"]), str(e.get("source", "")))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"entry {i}: {exc}") from None
        except KeyError as exc:
            raise ValueError(f"{p}: a malformed memory file (no {exc.args[0]!r})") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{p}: a malformed memory file ({exc})") from None
        return mem

    def merge_into_file(self, path: str | Path, new: Sequence[MemoryEntry]) -> ExperienceMemory:
        """Add the entries ``new`` to the memory in the file at ``path`` as it is NOW (created if missing) and write
        it back, under an exclusive lock on ``<path>.lock``: several processes can share one memory file without
        losing each other's entries. Returns the merged memory."""
        import fcntl

        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p.with_name(p.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                disk = ExperienceMemory.load(p) if p.is_file() else ExperienceMemory(
                    self.embedding, self.dim, self.ignore_features)
                if disk.embedding != self.embedding:
                    raise ValueError(f"{p} now holds {disk.embedding!r} keys, this memory {self.embedding!r}")
                # an entry the file holds already (the shipped entries a planner on a new file started from, written
                # by another process sharing the file) is not added twice
                have = {e.signature() for e in disk.entries}
                for e in new:
                    sig = e.signature()
                    if sig not in have:
                        disk.add(e.key, e.schedule, e.gain, e.source)
                        have.add(sig)
                disk.save(p)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return disk

    # ------------------------------------------------------------------ pre-filling
    def add_trajectories(self, data: Any, min_gain: float = 0.0) -> int:
        """Add one entry per (scene, region) of recorded teacher trajectories
        (:class:`policies.distill.dataset.TrajectoryData`): the key is the region's embedding at the
        episode's first decision, the schedule the teacher's steps on that region in order (physical
        params), the gain the sum of their judged gains. Entries gaining <= ``min_gain`` are skipped.
        Returns how many were added."""
        if data.meta.get("encoder_sha256") != self.fingerprint:
            raise ValueError(f"the trajectories were observed through encoder weights "
                             f"{str(data.meta.get('encoder_sha256'))[:12]}, this memory's keys come from "
                             f"{str(self.fingerprint)[:12]}: record them again (or use their embedding)")
        if int(data.meta["region_dim"]) != self.dim:
            raise ValueError(f"trajectories have embeddings of dim {data.meta['region_dim']}, memory {self.dim}")
        if data.meta.get("embedding", self.embedding) != self.embedding:
            raise ValueError(f"trajectories use embedding {data.meta.get('embedding')!r}, memory {self.embedding!r}")
        names, counts = list(data.meta["tool_names"]), list(data.meta["param_counts"])
        added = 0
        for scene in np.unique(data["scene"]):
            rows = np.flatnonzero(data["scene"] == scene)
            rows = rows[np.argsort(data["step"][rows], kind="stable")]
            first = rows[0]
            for k in np.flatnonzero(data["valid"][first] > 0.5):
                mine = [r for r in rows if data["region"][r] == k]
                if not mine:
                    continue
                sched = []
                for r in mine:
                    t = int(data["tool"][r])
                    spec = get_tool(names[t]).params
                    sched.append((names[t], {s.name: float(data["params_phys"][r][i]) for i, s in
                                             enumerate(spec[: counts[t]])}))
                judge = data.meta.get("judge") or "psnr"
                if judge in METRICS:  # in the judge's units, sign-corrected (lower-is-better NIQE / BRISQUE too)
                    gain = float(sum(metric_gain(judge, float(data["quality_before"][r]),
                                                 float(data["quality_after"][r])) for r in mine))
                else:
                    gain = float("nan")  # an unknown judge: its direction is unknown, keep it out
                if not math.isfinite(gain) or gain <= min_gain:
                    continue
                self.add(data["regions"][first][k], sched, gain, source=f"trajectory scene {int(scene)}")
                added += 1
        return added


class MemoryPlanner(Planner):
    """Retrieve-and-try planner over an :class:`ExperienceMemory` (see the module docstring).

    Args (besides :class:`~policies.base.Planner`'s; ``judge`` default ``npsnr``, the project's default
    no-reference judge as on the command line; ``"none"`` = no judge):
        memory: an :class:`ExperienceMemory`, a JSON path (loaded if it exists; else a copy of the shipped memory
            when its keys are of ``embedding``, otherwise an empty memory, that :meth:`save` / ``autosave`` write
            there) or ``None`` (the shipped memory ``policies/distill/models/memory_spatial.json`` if present, else
            empty). An empty memory warns: it retrieves nothing, so the planner never acts or learns.
        tries: schedules tried per region (nearest distinct ones), >= 1.
        learn: add each kept schedule to the memory.
        autosave: after every image, merge the entries added since the last save into the memory file at its path
            as the file is then (under a lock: processes sharing one file keep each other's entries; needs a path).
        embedding: embedder of the keys (must match the memory's).
        threshold: minimum judged gain for a try to be kept (judge units; default as greedy / dfs: 1.0 dB for the
            ``npsnr`` judge, whose estimates are that uncertain, 0 for the others).

    A result's ``info`` carries ``memory_size`` (entries after this image) and ``learned`` (schedules added to the
    memory by this image: 0 with ``learn=False``, and for an image it has seen before, whose schedules it holds).
    """

    name = "memory"

    def __init__(self, memory: ExperienceMemory | str | Path | None = None, tries: int = 3, learn: bool = True,
                 autosave: bool = False, embedding: str = "handcrafted", threshold: float | None = None,
                 judge: str | None = "npsnr", **kwargs: Any) -> None:
        if judge in ("none", ""):
            judge = None
        super().__init__(judge=judge, **kwargs)
        self.tries, self.learn, self.autosave = (whole_option(tries, "tries", 1), flag_option(learn, "learn"),
                                                  flag_option(autosave, "autosave"))
        if threshold is None:  # as greedy / dfs: 1.0 dB for npsnr (its error), 0 for the other judges
            threshold = self.judge.default_threshold if self.judge is not None else 0.0
        self.threshold = number_option(threshold, "threshold")
        self.path: Path | None = None
        if memory is None:
            memory = DEFAULT_MEMORY if DEFAULT_MEMORY.is_file() else ExperienceMemory(embedding)
        if isinstance(memory, str | Path):
            self.path = Path(memory)
            if str(memory) == "" or self.path.is_dir():
                raise ValueError(f"memory={str(memory)!r} must be the path of a memory JSON file, not a directory")
            if self.path.is_file():
                memory = ExperienceMemory.load(self.path)
            else:  # a new file starts from the shipped memory (an empty one retrieves nothing, so never acts)
                shipped = ExperienceMemory.load(DEFAULT_MEMORY) if DEFAULT_MEMORY.is_file() else None
                memory = shipped if shipped is not None and shipped.embedding == embedding \
                    else ExperienceMemory(embedding)
            if self.path == DEFAULT_MEMORY:
                self.path = None  # never write into the installed package unless asked through save()
        if not isinstance(memory, ExperienceMemory):
            raise ValueError(f"memory must be an ExperienceMemory or a path, got {type(memory).__name__}")
        if memory.embedding != embedding:
            raise ValueError(f"the memory holds {memory.embedding!r} keys, the planner embeds with {embedding!r}")
        if self.autosave and self.path is None:
            raise ValueError("autosave needs the memory's file path (memory=PATH)")
        if self.autosave:
            check_writable(self.path, "memory file", writable=True)  # before any restore, not after the first one
            near = nearest_existing(self.path.parent)
            check_takes_files(near, f"autosave cannot write the memory file {self.path}: the folder {near}")
        if not len(memory):
            where = f" at {self.path}" if self.path else ""
            warnings.warn(f"the memory{where} is empty: it retrieves nothing, so the planner never acts and never "
                          "learns; fill it from recorded trajectories (python -m policies.memory --trajectories DIR "
                          "-o FILE)", UserWarning, stacklevel=2)
        self.memory = memory
        self.embedder = make_embedder(embedding)
        # entries [0, _synced) are in the file at self.path (autosave merges the rest into it)
        self._synced = len(memory) if self.path is not None and self.path.is_file() else 0

    def save(self, path: str | Path | None = None) -> Path:
        """Write the memory to ``path`` (default: the path it was loaded from)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path: pass one (the memory was not loaded from a file)")
        out = self.memory.save(target)
        if target == self.path:
            self._synced = len(self.memory)
        return out

    def _plan(self, image: np.ndarray, reference: np.ndarray | None, masks: np.ndarray) -> RestorationResult:
        areas = region_areas(masks)
        keys = np.clip(np.nan_to_num(np.asarray(self.embedder.embed(image, masks), np.float32)),
                       -EMBED_BOUND, EMBED_BOUND)
        img = image
        score = self.judge.score(img, reference) if self.judge is not None else math.nan
        trace: list[TraceStep] = []
        calls = 0
        learned: list[tuple[np.ndarray, Schedule, float]] = []
        for k in sorted(range(len(masks)), key=lambda i: -areas[i]):
            left = self.max_steps - len(trace)
            if left <= 0 or not len(self.memory) or not masks[k].any():
                continue
            t0 = time.perf_counter()
            best: tuple[float, np.ndarray, float, Schedule] | None = None  # gain, image, score, schedule
            for _, entry in self.memory.nearest(keys[k], 1 if self.judge is None else self.tries):
                sched = entry.schedule[:left]
                out = img
                for tool, params in sched:
                    out = apply(out, tool, params, mask=masks[k])
                    calls += 1
                if self.judge is None:
                    best = (math.nan, out, math.nan, sched)
                    break
                try:
                    s = self.judge.score(out, reference)
                except ValueError:  # the judge is undefined on this try (brisque on a flat output): never keep it
                    continue
                g = self.judge.gain(score, s)
                if g > self.threshold and (best is None or g > best[0]):
                    best = (g, out, s, sched)
            if best is None:
                continue
            gain, out, s, sched = best
            dt = (time.perf_counter() - t0) / len(sched)
            for i, (tool, params) in enumerate(sched):
                trace.append(TraceStep(k, areas[k], tool, ran_params(tool, params), score if i == 0 else math.nan,
                                       s if i == len(sched) - 1 else math.nan, dt))
            if self.judge is not None:
                learned.append((keys[k], sched, gain))
            img, score = out, s
        added = 0
        if self.learn:
            for key, sched, gain in learned:  # a schedule it holds already (the same image again) is not stored twice
                before = len(self.memory)
                self.memory.add(key, sched, gain, source="learned", unique=True)
                added += len(self.memory) - before
        if self.autosave and self.path is not None:
            # every entry added since the last sync (learned here or added by the caller) is merged into the file as it
            # is now, so processes sharing the file keep each other's entries
            self.memory = self.memory.merge_into_file(self.path, self.memory.entries[self._synced:])
            self._synced = len(self.memory)
        return RestorationResult(img, trace, masks, tool_calls=calls, iqa_calls=0, seconds=0.0,
                                 info={"memory_size": len(self.memory),
                                       "learned": added})


def prefill(trajectory_dirs: Sequence[str | Path], out: str | Path, min_gain: float = 0.0,
            embedding: str = "handcrafted") -> ExperienceMemory:
    """Build a memory from recorded trajectories (``experiments/record_trajectories.py``) and save it to ``out``."""
    from policies.distill.dataset import read_dataset

    if not math.isfinite(float(min_gain)):
        raise ValueError(f"min_gain must be a finite number (dB), got {min_gain!r}")
    mem = ExperienceMemory(embedding)
    for folder in trajectory_dirs:  # one by one: scene numbers restart at 0 in every dataset
        mem.add_trajectories(read_dataset(folder), min_gain=min_gain)
    if not len(mem):
        raise ValueError(f"no schedule in {', '.join(map(str, trajectory_dirs))} gained more than {min_gain:g}: the "
                         "memory would be empty (lower --min-gain); nothing written")
    mem.save(out)
    return mem


def main(argv: list[str] | None = None) -> int:
    """``python -m policies.memory --trajectories DIR [DIR ...] -o memory.json [--min-gain DB]``."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="Pre-fill an experience memory from recorded teacher trajectories.")
    ap.add_argument("--trajectories", nargs="+", required=True, help="dataset directories (meta.json + shards)")
    ap.add_argument("-o", "--out", required=True, help="memory JSON to write (an existing file: --overwrite)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing memory file at --out (its entries "
                    "are lost: a memory grows by use, not by a new prefill)")
    ap.add_argument("--min-gain", type=float, default=0.0, help="skip schedules that gained at most this (dB)")
    ap.add_argument("--embedding", default=None,
                    help="embedding of the keys (default: the trajectories' own, e.g. learned for a dataset recorded "
                         "with embedding: learned); the memory planner must use the same (memory:embedding=...)")
    args = ap.parse_args(argv)
    try:
        if Path(args.out).exists() and not args.overwrite:
            raise ValueError(f"{args.out} exists: a memory there would be replaced by the prefill, losing what it "
                             "learned; pass --overwrite to replace it, or give another -o")
        if args.embedding is None:
            from policies.distill.dataset import read_meta

            args.embedding = str(read_meta(args.trajectories[0]).get("embedding", "handcrafted"))
        mem = prefill(args.trajectories, args.out, args.min_gain, embedding=args.embedding)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(mem)} entries ({mem.embedding} keys) written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
