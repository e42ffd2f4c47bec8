"""Planners: one ``Planner`` interface (``restore`` and SB3-style ``predict``) and its implementations.

``make_planner(name, **kwargs)`` builds one: ``random``, ``fixed``, ``greedy`` (Q-Agent-like), ``dfs``
(AgenticIR-like), ``memory`` (experience memory), ``perceive`` (encoder perception + rule table), and the learned
``ppo``, ``maskable_ppo`` and ``distilled`` (registered when stable-baselines3 is installed).
"""

from policies.base import MODES, Planner, RestorationResult, TraceStep
from policies.registry import list_planners, make_planner, register_planner

__all__ = ["MODES", "Planner", "RestorationResult", "TraceStep", "list_planners", "make_planner",
           "register_planner"]
