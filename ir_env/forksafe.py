"""CPU threads of torch and OpenCV: a process-wide setting (:func:`set_threads`), and torch made usable in processes
forked after it ran (``gymnasium.vector.AsyncVectorEnv``, ``fork`` workers).

torch's CPU thread pool (OpenMP) is not fork-safe: once an env built in the parent has run a torch operation
(the learned encoder, the npsnr judge, a pyiqa metric), a forked child's first multi-threaded torch operation
hangs forever. :func:`fork_safe_torch` registers an at-fork hook that makes torch single-threaded in every
forked child, so its operations run inline (a worker process of a vector env should not spawn threads of its
own anyway). Hand-written: torch offers no switch for this.
"""

from __future__ import annotations

import os
import sys

_REGISTERED = False


def fork_safe_torch() -> None:
    """Register (once per process) the hook that sets ``torch.set_num_threads(1)`` in forked children."""
    global _REGISTERED
    if _REGISTERED or not hasattr(os, "register_at_fork"):
        return
    import torch

    os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))
    _REGISTERED = True


def set_threads(n: int) -> None:
    """``n`` CPU threads for torch (now if it is imported, else through ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``,
    which it reads when imported: a command that never needs torch does not pay for importing it) and OpenCV."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    import cv2

    cv2.setNumThreads(n)
