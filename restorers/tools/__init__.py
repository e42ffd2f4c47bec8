"""Built-in restoration tools (the registry imports this package on first use and registers :data:`BUILTIN_TOOLS`).

One module per family: :mod:`~restorers.tools.noise`, :mod:`~restorers.tools.blur`,
:mod:`~restorers.tools.jpeg`, :mod:`~restorers.tools.haze`, :mod:`~restorers.tools.rain`,
:mod:`~restorers.tools.dark`. Every tool is a pure ``fn(image float32 HxWx3 in [0, 1], **params) -> image``
with 1-3 continuous parameters. The registration order below is fixed: it defines tool indices.

A tool's ``cost`` is its median single-threaded run time on a 256 px image relative to the cheapest tool
(``airlight_dehaze``), measured with ``experiments/bench_tools.py`` and rounded; ``margin`` is the context
(px) its output at a pixel depends on (0 for pointwise tools).
"""

from __future__ import annotations

from restorers.spec import Tool
from restorers.tools import blur, dark, haze, jpeg, noise, rain

#: All built-in tools in their fixed order (family by family, as in restorers.FAMILIES); the registry registers them
#: first, in this order, on its first use (importing this package registers nothing: see restorers.registry._load).
BUILTIN_TOOLS: tuple[Tool, ...] = noise.TOOLS + blur.TOOLS + jpeg.TOOLS + haze.TOOLS + rain.TOOLS + dark.TOOLS

__all__ = ["BUILTIN_TOOLS"]
