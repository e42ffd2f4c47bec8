"""What the scripts fitting a head on the frozen encoder share (``fit_context_head``, ``fit_segment_head``):
the config check, the copy of the encoder into the output directory, and the command line (``--config``,
``--ship``, ``--output-dir``; one ``error:`` line and exit 2 on bad input)."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ir_env.encoder.learned import EncoderWeightsError, file_sha256, ship_weights

#: The scripts that use this module (what running it as a script points to).
USED_BY = ("experiments.fit_context_head", "experiments.fit_segment_head")


def check_head_config(cfg: Any, required: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """``cfg`` if it holds every ``required[section]`` key, ``seed`` and ``output_dir``; else ``ValueError``
    naming the missing ones."""
    if not isinstance(cfg, dict):
        raise ValueError(f"config must be a YAML mapping, got {type(cfg).__name__}")
    missing = [f"{sec}.{k}" for sec, keys in required.items() for k in keys
               if not isinstance(cfg.get(sec), dict) or k not in cfg[sec]]
    missing += [k for k in ("seed", "output_dir") if k not in cfg]
    if missing:
        raise ValueError(f"config lacks {', '.join(missing)}")
    return cfg


def copy_encoder(src: Path, out: Path) -> None:
    """Copy ``encoder.pt`` + ``encoder.json`` from ``src`` into ``out`` (created): a complete weights directory."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("encoder.pt", "encoder.json"):
        shutil.copy2(src / name, out / name)


def head_main(argv: list[str] | None, description: str, default_config: str,
              check: Callable[[Any, str], dict[str, Any]], fit: Callable[[dict[str, Any]], dict[str, Any]],
              summary: Callable[[dict[str, Any], dict[str, Any]], str]) -> int:
    """The command line of a head-fitting script: read the config (:func:`experiments.configio.read_config`: one-line
    errors naming the file), take ``--output-dir`` over its ``output_dir``, ``check(cfg, config_path)`` it (keys and
    values, errors naming the file), refuse ``--ship`` without a ``ship_dir`` and an ``output_dir`` that cannot be a
    folder, ``fit``, optionally ship the output directory beside the shipped encoder (only if the head was fitted on
    it), print ``summary(meta, cfg)``. Returns the exit status."""
    from experiments.configio import read_config
    from ir_env.paths import check_writable

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--config", default=default_config, help="the YAML config (default: %(default)s)")
    ap.add_argument("--ship", action="store_true",
                    help="after the fit, copy the weights directory to the config's ship_dir (only when the head was "
                         "fitted on the encoder there) (default: off)")
    ap.add_argument("--output-dir", help="write the weights directory here (default: the config's output_dir)")
    a = ap.parse_args(argv)
    try:
        cfg = read_config(a.config)
        if a.output_dir:
            cfg["output_dir"] = a.output_dir
        cfg = check(cfg, a.config)
        if a.ship and not cfg.get("ship_dir"):
            raise ValueError(f"{a.config} has no ship_dir")
        check_writable(cfg["output_dir"], "output_dir", folder=True)  # before any scene is made
    except (OSError, ValueError) as e:  # FileNotFoundError (a missing config file) is an OSError
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg["_config_path"] = a.config
    try:
        meta = fit(cfg)
        if a.ship:
            dst = Path(cfg["ship_dir"])
            if file_sha256(dst / "encoder.pt") != meta["encoder_sha256"]:
                raise EncoderWeightsError(f"cannot ship: the head was fitted on {meta['encoder_source']}, not on "
                                          f"the encoder in {dst}")
            print(f"shipped to {ship_weights(cfg['output_dir'], dst)}")
    except (EncoderWeightsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(meta, cfg))
    return 0


if __name__ == "__main__":
    print(f"error: experiments.head_fit is a library module, not a script; run {' or '.join(USED_BY)} "
          "(python -m ... --help)", file=sys.stderr)
    raise SystemExit(2)
