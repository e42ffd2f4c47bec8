"""Reading an experiment's YAML config with one-line errors (every ``experiments/*.py`` script reads one)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


def read_config(path: str | Path, empty_ok: bool = False) -> dict[str, Any]:
    """The mapping in the YAML file at ``path`` (:func:`ir_env.paths.find_config`: a relative
    ``experiments/configs/...`` path also works outside a checkout). ``FileNotFoundError`` for a missing file,
    ``ValueError`` naming the file for invalid YAML or a document that is not a mapping (an empty file is ``{}``
    with ``empty_ok``)."""
    from ir_env.paths import find_config

    p = find_config(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise ValueError(f"{p} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{p} is not a text file") from None
    if doc is None and empty_ok:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: expected a mapping of config keys, got {type(doc).__name__}")
    return doc


def cli_main(main: Any, argv: list[str] | None = None) -> int:
    """Run a script's ``main(argv)`` for the command line: a ``ValueError``, ``FileNotFoundError``,
    ``FileExistsError``, ``NotADirectoryError``, ``IsADirectoryError`` or ``PermissionError`` it raises (a bad config
    value, option or path) is printed as one ``error:`` line with exit status 2 instead of a traceback; ``main``'s own
    return value is the status when it is an int (a script returning its result, such as ``bench_env``, exits 0)."""
    import sys

    try:
        status = main(argv)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
            PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) and not isinstance(status, bool) else 0  # a result dict: success


def script_command(module: str, argv: list[str] | None) -> str:
    """``python -m <module> <arguments>``: how a script was run, for its results (``argv`` as given to its ``main``,
    or the process's own arguments when None)."""
    import sys

    return f"python -m {module} " + " ".join(sys.argv[1:] if argv is None else argv)


def check_keys(cfg: dict[str, Any], known: Iterable[str], where: str, required: Iterable[str] = ()) -> None:
    """``ValueError`` naming ``where`` (the config file, or ``file: section``) for a key of ``cfg`` not in ``known``
    (with the closest known key, so a misspelled key is not silently ignored) or a ``required`` key it lacks."""
    known = list(known)
    for key in cfg:
        check_choice(key, known, "config key", where)
    missing = [k for k in required if k not in cfg]
    if missing:
        raise ValueError(f"{where}: missing config key(s) {', '.join(missing)}")


def check_choice(value: Any, known: Iterable[str], what: str, where: str) -> None:
    """``ValueError`` ``"{where}: unknown {what} {value!r} (did you mean ...?); known: ..."`` when ``value`` is not
    one of ``known`` (a recipe, a region proposer), with the closest known name as the key checks give it."""
    known = list(known)
    if value not in known:
        close = difflib.get_close_matches(str(value), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{where}: unknown {what} {value!r}{hint}; known: {', '.join(known)}")


def check_sections(cfg: dict[str, Any], sections: dict[str, tuple[Iterable[str], Iterable[str]]], where: str) -> None:
    """:func:`check_keys` on ``cfg`` and on the mappings nested in it. ``sections`` maps ``""`` (the top level) and
    each section's dotted path (``"train"``, ``"data.augment"``; a parent before its sections) to its (known keys,
    required keys); errors name ``where`` and the section (``"c.yaml: train"``). A section that is absent, or None /
    False (turned off) where its parent does not require it, is not checked; any other value that is not a mapping is
    refused."""
    for path, (known, required) in sections.items():
        if not path:
            check_keys(cfg, known, where, required)
            continue
        *parents, key = path.split(".")
        parent: Any = cfg
        for name in parents:
            parent = parent.get(name) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or key not in parent:
            continue
        block = parent[key]
        if (block is None or block is False) and key not in sections.get(".".join(parents), ((), ()))[1]:
            continue  # an optional section turned off (``family_masks: false``)
        if not isinstance(block, dict):
            raise ValueError(f"{where}: {path} must be a mapping of config keys, got {block!r}")
        check_keys(block, known, f"{where}: {path}", required)


def config_int(cfg: dict[str, Any], key: str, where: str, minimum: int = 0, default: int | None = None) -> int:
    """``cfg[key]`` (``default`` when absent and not None) as an int, or ``ValueError`` naming ``where`` and ``key``
    when it is not a whole number >= ``minimum`` (a bool, a float or a string is refused)."""
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: {key} must be a whole number >= {minimum}, got {value!r}")
    return value


def config_names(cfg: dict[str, Any], key: str, where: str, what: str = "names") -> list[str]:
    """``cfg[key]`` when it is a non-empty list of strings, else ``ValueError`` naming ``where`` and ``key`` (``what``
    says what the strings are: ``"names"``, ``"planner specs"``)."""
    value = cfg[key]
    if not isinstance(value, list) or not value or not all(isinstance(x, str) for x in value):
        raise ValueError(f"{where}: {key} must be a non-empty list of {what}, got {value!r}")
    return value


def config_judge(cfg: dict[str, Any], where: str, key: str = "no_reference_judge", default: str = "brisque") -> str:
    """``cfg[key]`` (``default`` when absent, stored back) when it names a no-reference metric of
    :data:`ir_env.quality.METRICS` (brisque, niqe, piqe, npsnr), else ``ValueError`` naming ``where`` and ``key``.
    Checked even when no listed planner judges, so a misspelled judge is never carried into a results file."""
    from ir_env.quality import METRICS

    judge = cfg.setdefault(key, default)
    choices = [n for n, m in METRICS.items() if not m.needs_reference]
    if judge not in choices:
        raise ValueError(f"{where}: {key} must be a no-reference metric ({', '.join(choices)}), got {judge!r}")
    return judge


def whole_value(value: Any, name: str, where: str, minimum: int = 0) -> int:
    """``value`` when it is a whole number >= ``minimum`` (not a bool, a float or a string), else ``ValueError``
    naming ``where`` and the config key ``name`` (``"train.epochs"``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: {name} must be a whole number >= {minimum}, got {value!r}")
    return value


def number_value(value: Any, name: str, where: str, low: float | None = None, high: float | None = None,
                 above: bool = False) -> float:
    """``value`` as a float when it is a finite number (not a bool or a string) >= ``low`` (> ``low`` with
    ``above``) and <= ``high``, else ``ValueError`` naming ``where`` and the config key ``name``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or (value > low if above else value >= low)) and (high is None or value <= high)
    if not ok:
        rng = [f"{'>' if above else '>='} {low:g}" if low is not None else "", f"<= {high:g}" if high is not None
               else ""]
        text = " and ".join(r for r in rng if r)
        raise ValueError(f"{where}: {name} must be a number{' ' + text if text else ''}, got {value!r}")
    return float(value)


def flag_value(value: Any, name: str, where: str) -> bool:
    """``value`` when it is true or false, else ``ValueError`` naming ``where`` and the config key ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {name} must be true or false, got {value!r}")
    return value


def check_output(path: str | Path | None, what: str = "output") -> None:
    """``ValueError`` before any work when a result file cannot be written at ``path`` (None: nothing to check):
    it is a directory, or a parent is a file. Nothing is created."""
    if path is None or str(path) == "":
        return
    from ir_env.paths import check_writable

    check_writable(path, what)


def check_run_folder(run_dir: str | Path, overwrite: bool, outputs: Iterable[str], flag: str = "--overwrite") -> None:
    """Refuse to train into a folder that already holds a run: ``ValueError`` naming the files found (glob patterns
    ``outputs``) unless ``overwrite``, which removes them (so no stale candidate of the earlier run is left beside
    the new one). Other files in the folder are kept. Nothing is created."""
    import shutil

    from ir_env.paths import held_run, run_folder_outputs

    folder = Path(run_dir)
    found = run_folder_outputs(folder, outputs)
    if not found:
        return
    if not overwrite:
        raise ValueError(f"{held_run(folder, found)}; pick another name or output_dir, or pass {flag} to replace it")
    for p in found:
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def positive_ints(text: str, name: str) -> list[int]:
    """Comma-separated whole numbers >= 1 from a command-line option (``--sizes 64,128``); ``ValueError`` naming
    ``name`` otherwise."""
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be whole numbers >= 1 separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{name} must be whole numbers >= 1 separated by commas, got {text!r}")
    return values


if __name__ == "__main__":
    import sys

    print("error: experiments.configio is a library module (config reading for the experiment scripts), not a "
          "script: run one of them, e.g. python -m experiments.compare --help", file=sys.stderr)
    raise SystemExit(2)
