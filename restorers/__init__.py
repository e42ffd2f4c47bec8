"""spatial-ir's restoration toolbox: a registry of tools with declared continuous parameters.

Public names: :func:`list_tools`, :func:`get_tool`, :func:`apply`, :func:`register_tool`,
:class:`Tool`, :class:`ParamSpec`, :data:`FAMILIES`.
"""

from restorers.imagecheck import check_image, check_mask
from restorers.region import apply, resolve_params
from restorers.registry import (
    ENTRY_POINT_GROUP,
    FAST_COST_LIMIT,
    fast_tools,
    get_tool,
    list_tools,
    register_tool,
)
from restorers.spec import FAMILIES, ParamSpec, Tool

__all__ = [
    "ENTRY_POINT_GROUP",
    "FAMILIES",
    "ParamSpec",
    "Tool",
    "apply",
    "check_image",
    "FAST_COST_LIMIT",
    "check_mask",
    "fast_tools",
    "get_tool",
    "list_tools",
    "register_tool",
    "resolve_params",
]
