"""``make_planner(name, **kwargs)``: build a planner by name."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from ir_env.option_errors import non_number_option, unexpected_keyword
from policies.base import Planner

_FACTORIES: dict[str, Callable[..., Planner]] = {}


def register_planner(name: str, factory: Callable[..., Planner]) -> None:
    """Add a planner factory under ``name`` (replaces an existing one)."""
    _FACTORIES[name] = factory


def _builtin() -> None:
    if _FACTORIES:
        return
    from policies.baselines import FixedPlanner, RandomPlanner
    from policies.dfs import DFSPlanner
    from policies.greedy import GreedyPlanner
    from policies.memory import MemoryPlanner
    from policies.rules import PerceivePlanner

    for cls in (RandomPlanner, FixedPlanner, GreedyPlanner, DFSPlanner, MemoryPlanner, PerceivePlanner):
        register_planner(cls.name, cls)
    try:  # learned planners: the classes load their model only when built (a missing zip fails there)
        from policies.ppo.planner import MaskablePPOPlanner, PPOPlanner
    except ImportError:  # stable-baselines3 / sb3-contrib not installed: the other planners still work
        return
    from policies.distill.planner import DistilledPlanner

    for cls in (PPOPlanner, MaskablePPOPlanner, DistilledPlanner):
        register_planner(cls.name, cls)


def list_planners() -> list[str]:
    """Names accepted by :func:`make_planner`."""
    _builtin()
    return list(_FACTORIES)


def make_planner(name: str, **kwargs: Any) -> Planner:
    """Build planner ``name`` (``random``, ``fixed``, ``greedy``, ``dfs``, ``memory``, ``perceive``, ``ppo``,
    ``maskable_ppo``, ``distilled``) with
    keyword options (``mode``, ``judge``, ``region_proposer``, ``max_regions``, ``max_steps``, ``seed``, and the
    planner's own; ``ppo``/``maskable_ppo`` take ``path=`` to a trained model). ``gate=`` ``"policy"``,
    ``"table"``, ``"encoder"`` or ``"off"`` keeps only the steps whose tool family the encoder sees in the region
    (:class:`policies.gate.PerceptionGate`; on by default: ``"policy"`` for ``ppo``, ``"table"`` for
    ``maskable_ppo`` and ``distilled``). ``tile=N`` (px, >= 32) runs it tile by tile
    (:class:`policies.tiled.TiledPlanner`); without ``tile=``, a planner with a ``deploy_tile`` (a PPO model whose
    ``config.yml`` says ``deploy: {tile: N}``: the shipped ``ppo``; ``perceive`` in its default spatial, proposer
    mode: 128) runs tile by tile at that size, ``tile=0`` not at all. ``tile_feather=SIGMA`` (px) sets how a tiled
    planner blends its kept steps (default ``tile / 8``; :class:`policies.tiled.TiledPlanner`). ``device=``
    (planners with a network: ``perceive``, ``ppo``, ``maskable_ppo``, ``distilled``) is the torch device of the
    planner's own network (the encoder of ``perceive``, the policy of the learned planners; their perception gate
    and observation encoder stay on the CPU); ``"cuda"`` without a CUDA device is an error.

    A ``judge`` given to a planner that never judges (``random``, ``fixed``, ``perceive``, the learned ones) is
    ignored with a ``UserWarning``.

    One planner object runs one :meth:`~policies.base.Planner.restore` at a time (a lock); build one per thread
    for parallel work. Command-line specs (``"perceive:regions=families"``) are parsed by
    :func:`policies.evaluation.parse_planner_spec`, not here."""
    from policies.gate import gated, resolve_gate
    from policies.tiled import feather_option, tile_option, tiled

    _builtin()
    if not isinstance(name, str):
        raise ValueError(f"planner name must be a string (one of {', '.join(_FACTORIES)}), got {name!r}")
    try:
        factory = _FACTORIES[name]
    except KeyError:
        if isinstance(name, str) and ":" in name and name.split(":", 1)[0] in _FACTORIES:
            raise ValueError(f"{name!r} is a planner spec (command-line form): in Python write make_planner("
                             f"{name.split(':', 1)[0]!r}, key=value, ...) or use "
                             "policies.evaluation.parse_planner_spec(spec)") from None
        same = [k for k in _FACTORIES if k.lower() == name.strip().lower()]  # "PPO", " dfs": names are lower case
        close = same or difflib.get_close_matches(name, list(_FACTORIES), n=2)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown planner {name!r}; known: {', '.join(_FACTORIES)}{hint}") from None
    if kwargs.get("device") is not None:
        from ir_env.quality import normalise_device

        normalise_device(kwargs["device"])  # ValueError naming a bad or unavailable device before any model loads
    tile = tile_option(kwargs)
    feather = feather_option(kwargs)
    gate = resolve_gate(name, kwargs.pop("gate", None))
    try:
        planner = factory(**kwargs)
    except TypeError as e:  # an option the planner does not take, or a value of the wrong type
        bad = unexpected_keyword(e)
        if bad:
            raise ValueError(f"planner {name!r} has no option {bad!r}") from None
        raise ValueError(f"planner {name!r}: an option has the wrong type ({e})") from None
    except ValueError as e:
        msg = str(e)
        named = non_number_option(e, kwargs)
        if named:  # a text where a number belongs: name the option, not Python's conversion
            raise ValueError(f"planner {name!r}: option {named[0]}={named[1]!r} must be a number") from None
        raise ValueError(msg if name in msg else f"planner {name!r}: {msg}") from None
    judge = kwargs.get("judge")
    if isinstance(judge, str) and judge not in ("", "none") and not planner.uses_judge:
        import warnings

        warnings.warn(f"planner {name!r} never judges a candidate: judge={judge!r} is ignored", UserWarning,
                      stacklevel=2)
    if tile is None:  # the planner's own deployment tile (the crop size it was trained on), if it names one
        tile = getattr(planner, "deploy_tile", None)
    return tiled(gated(planner, gate), tile, feather)


def planner_judges(name: str) -> bool:
    """Whether the planner registered as ``name`` judges candidates (its class's ``uses_judge``; True for a
    factory that does not say), without building it."""
    _builtin()
    return bool(getattr(_FACTORIES.get(name), "uses_judge", True))
