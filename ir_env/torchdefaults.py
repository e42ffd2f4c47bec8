"""The project's networks are float32 whatever torch default dtype the caller has set.

A pipeline that calls ``torch.set_default_dtype(torch.float64)`` before building a planner would otherwise get
float64 parameters (a module's parameters take the default dtype when it is built, and ``load_state_dict`` keeps
them), and every later call on float32 inputs fails with a dtype mismatch. The loaders build under
:func:`float32_default`. Torch's default dtype is one setting of the whole process: while a planner is being built,
other threads of a caller that set float64 create float32 tensors too (build planners before starting such threads).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def float32_default() -> Iterator[None]:
    """Within the block torch's default dtype is float32; the caller's default is restored afterwards."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
