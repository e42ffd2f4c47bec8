"""Files of the optional heads stored beside an encoder's weights (context head, segmentation head).

Each head is a pair ``<name>.pt`` (a torch ``state_dict``) + ``<name>.json`` (format tag, the head's
constructor options, the SHA-256 of the ``.pt`` and of the encoder weights it was fitted on, and the fit's
metadata). :class:`HeadFiles` describes one kind of head; :meth:`HeadFiles.save` / :meth:`HeadFiles.load`
write and check the pair the same way for every kind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ir_env.torchdefaults import float32_default


@dataclass(frozen=True)
class HeadFiles:
    """One kind of head stored beside encoder weights.

    Args:
        label: name in messages ("context head").
        pt, json: file names inside the weights directory.
        fmt: format tag of the JSON.
        factory: builds the head from its options.
        options: the option keys ``factory`` takes (read back from the JSON).
        fallback: what is used without the head ("the linear heads"), for the half-present message.
        refit: the module that fits it ("experiments.fit_context_head").
    """

    label: str
    pt: str
    json: str
    fmt: str
    factory: Any
    options: tuple[str, ...]
    fallback: str
    refit: str

    def save(self, head: nn.Module, directory: str | Path, meta: dict[str, Any]) -> Path:
        """Write the pair for ``head`` (which has ``options()``) into ``directory`` (created); ``meta`` must hold
        ``encoder_sha256`` (the encoder weights the head was fitted on). Returns the directory."""
        from ir_env.encoder.learned import file_sha256

        if "encoder_sha256" not in meta:
            raise ValueError(f"{self.label} meta must name the encoder weights it was fitted on (encoder_sha256)")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        pt = d / self.pt
        torch.save({k: v.detach().cpu().clone() for k, v in head.state_dict().items()}, pt)
        info = {"format": self.fmt, **head.options(), "sha256": file_sha256(pt), **meta}
        (d / self.json).write_text(json.dumps(info, indent=1) + "\n")
        return d

    def load(self, directory: str | Path, encoder_sha256: str) -> tuple[Any, dict[str, Any]] | None:
        """The head stored in ``directory`` (eval mode) and its JSON, or None when there is none.

        Raises :class:`~ir_env.encoder.learned.EncoderWeightsError` naming the file when it is half present,
        corrupt, of another format, or fitted on encoder weights other than ``encoder_sha256``."""
        from ir_env.encoder.learned import EncoderWeightsError, file_sha256, read_tagged_json

        d = Path(directory)
        js, pt = d / self.json, d / self.pt
        if not js.exists() and not pt.exists():
            return None
        for f in (js, pt):
            if not f.is_file():
                raise EncoderWeightsError(f"{self.label} file {f} not found (the pair {self.json} + {self.pt} "
                                          f"goes together; remove both to use {self.fallback})")
        info = read_tagged_json(js, self.fmt)
        if info.get("encoder_sha256") != encoder_sha256:
            raise EncoderWeightsError(f"{js} was fitted on encoder weights {str(info.get('encoder_sha256'))[:12]}, "
                                      f"not on the {encoder_sha256[:12]} beside it: re-fit it with "
                                      f"`python -m {self.refit}`")
        if info.get("sha256") != file_sha256(pt):
            raise EncoderWeightsError(f"{pt} does not match the checksum in {js} (corrupt or replaced file)")
        try:
            with float32_default():  # float32 parameters whatever the caller's default dtype
                head = self.factory(**{k: info[k] for k in self.options})
            head.load_state_dict(torch.load(pt, map_location="cpu", weights_only=True))
        except Exception as e:  # noqa: BLE001 - a missing key, shape or unpickling error: the file does not fit
            raise EncoderWeightsError(f"{pt} does not fit the {self.label} described in {js}: {e}") from None
        return head.eval(), info
