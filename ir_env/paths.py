"""Checking, before any work, that a result can be written at a path (nothing is created)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path


def check_writable(path: str | Path, what: str = "output", folder: bool = False, writable: bool = False) -> Path:
    """``path`` as a ``Path``, or ``ValueError`` naming ``what`` when a result cannot be written there: a file target
    (``folder=False``) that is an existing directory, an existing file where a folder is needed (the target itself
    when ``folder=True``, or any parent), and with ``writable`` a nearest existing folder that is not writable. Only
    the nearest existing path is looked at: above a folder there is no file."""
    p = Path(path)
    if not folder and p.is_dir():
        raise ValueError(f"{what} {p} is a directory; give a file name")
    for q in ((p,) if folder else ()) + tuple(p.parents):
        if q.exists():
            if not q.is_dir():
                raise ValueError(f"cannot write {what} {p}: {q} is a file, not a folder")
            if writable and not os.access(q, os.W_OK | os.X_OK):
                raise ValueError(f"cannot write {what} {p}: folder {q} is not writable")
            break
    return p


def find_config(path: str | Path) -> Path:
    """The config file ``path``; a relative path that is not a file here is also looked up below the folder that
    holds the installed packages, so the documented ``experiments/configs/<name>.yaml`` works from any directory
    after a (non-editable) ``pip install``. ``FileNotFoundError`` naming ``path`` when neither exists."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_absolute():
        shipped = Path(__file__).resolve().parent.parent / p
        if shipped.is_file():
            return shipped
    if p.is_dir():
        raise FileNotFoundError(f"config file not found: {p} is a directory")
    raise FileNotFoundError(f"config file not found: {p}")


def run_folder_outputs(folder: str | Path, patterns: Iterable[str]) -> list[Path]:
    """The files and folders in ``folder`` that match any glob pattern of ``patterns`` (a run's outputs: model
    zips, summaries, ``tb_*`` logs), sorted, each once; ``[]`` when ``folder`` is not a directory. Shared by the
    trainers' "this folder already holds a run" refusals (``spatial-ir train``, train_bc, train_distill)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted({p for pattern in patterns for p in folder.glob(pattern)})


def held_run(folder: str | Path, found: Sequence[Path], limit: int = 6) -> str:
    """``"run folder F already holds a run (a, b/, ...)"``: the start of those refusals (folders end in ``/``)."""
    names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in found[:limit])
    return f"run folder {folder} already holds a run ({names}{', ...' if len(found) > limit else ''})"


def check_takes_files(folder: str | Path, what: str) -> None:
    """``ValueError`` starting with ``what`` when the existing ``folder`` does not take a new file: a real file is
    tried and removed at once (``os.access`` says yes to root everywhere, /proc included)."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".spatial-ir-write-check-"):
            pass
    except OSError as e:
        raise ValueError(f"{what} does not take new files ({e.strerror or e})") from None


def nearest_existing(path: str | Path) -> Path:
    """``path`` (absolute) or its nearest ancestor that exists: the folder a new file or folder there would go into."""
    near = Path(path).absolute()
    while not near.exists() and near != near.parent:
        near = near.parent
    return near
