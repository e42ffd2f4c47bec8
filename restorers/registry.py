"""The tool registry: built-in tools plus third-party tools from the ``spatial_ir.tools`` entry points."""

from __future__ import annotations

import difflib
import os
import threading
import warnings
from importlib.metadata import entry_points

from restorers.spec import FAMILIES, Tool

ENTRY_POINT_GROUP = "spatial_ir.tools"

_REGISTRY: dict[str, Tool] = {}
_LOADED = False  # set once the built-ins and plugins are all registered
_LOADING = False  # the loading thread's plugins registering themselves come back to _load while this is set
_LOAD_LOCK = threading.RLock()  # other threads wait for the first load instead of seeing a half-filled registry


def _fresh_lock_after_fork() -> None:
    """A child forked while another thread of the parent held the load lock would wait for it forever."""
    global _LOAD_LOCK, _LOADING
    _LOAD_LOCK, _LOADING = threading.RLock(), False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock_after_fork)


def register_tool(tool: Tool, *, replace: bool = False) -> Tool:
    """Add ``tool`` to the registry after the built-in tools; raises ``ValueError`` if the name is taken (unless
    ``replace``: the tool then takes the replaced one's place, and so its index)."""
    if not isinstance(tool, Tool):
        raise TypeError(f"register_tool expects a restorers.Tool, got {type(tool).__name__}")
    _load()  # the built-ins first, whatever the caller did before: their order defines tool indices
    if tool.name in _REGISTRY and not replace and _REGISTRY[tool.name] is not tool:
        raise ValueError(f"a tool named {tool.name!r} is already registered")
    _REGISTRY[tool.name] = tool
    return tool


def _load() -> None:
    """Register the built-in tools once (first, in their fixed order: it defines tool indices), then the entry-point
    plugins (each may return a Tool or a list). Thread-safe: a thread arriving while another loads waits for the
    whole registry. The built-ins' package is imported before the lock is taken and registers nothing itself, so a
    thread importing it never waits for this lock while holding Python's import lock."""
    global _LOADED, _LOADING
    if _LOADED:
        return
    from restorers.tools import BUILTIN_TOOLS

    with _LOAD_LOCK:
        if _LOADED or _LOADING:  # loaded meanwhile, or this thread's plugins registering themselves
            return
        _LOADING = True
        try:
            for tool in BUILTIN_TOOLS:
                _REGISTRY[tool.name] = tool
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    obj = ep.load()
                    obj = obj() if callable(obj) and not isinstance(obj, Tool) else obj
                    for tool in obj if isinstance(obj, list | tuple) else [obj]:
                        register_tool(tool)
                except Exception as exc:  # a broken plugin must not break the toolbox
                    warnings.warn(f"spatial_ir.tools plugin {ep.name!r} failed to load: {exc}", stacklevel=2)
            _LOADED = True
        finally:
            _LOADING = False


#: Tools with a relative cost above this (BM3D: about 8000) are left out of :func:`fast_tools`, the default
#: tool set of the env and the planners: one call costs seconds, not milliseconds.
FAST_COST_LIMIT = 100.0


def list_tools(family: str | None = None, max_cost: float | None = None) -> list[Tool]:
    """All registered tools in a fixed order (built-ins first, as registered), optionally one family
    and/or only those with ``cost <= max_cost``."""
    _load()
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    tools = list(_REGISTRY.values())
    return [t for t in tools if (family is None or t.family == family) and (max_cost is None or t.cost <= max_cost)]


def fast_tools() -> list[Tool]:
    """The default tool set of the env and planners: every tool with ``cost <= FAST_COST_LIMIT``."""
    return list_tools(max_cost=FAST_COST_LIMIT)


def get_tool(name: str | Tool) -> Tool:
    """Look a tool up by name; raises ``ValueError`` with close matches for an unknown name."""
    if isinstance(name, Tool):
        return name
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known tools: {', '.join(_REGISTRY)}"
        raise ValueError(f"unknown tool {name!r}{hint}") from None
