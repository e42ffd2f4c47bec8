"""``dfs`` (AgenticIR-like): perceive, schedule, execute, reflect, roll back, recurse; keep the best leaf.

Per region (spatial mode) or for the whole image (global mode):

1. *Perceive*: rank the degradation families of the region from its embedding
   (:class:`policies.perception.Perception`); families with probability >= ``min_prob`` are "likely".
2. *Schedule*: at each node, try every tool of the likely families (cheapest first) with its default
   parameters and with the first parameter moved by each of ``offsets``; the other families are tried
   only when no likely one helped.
3. *Execute* each candidate on the region and *reflect*: judge the whole image. Candidates whose judged
   gain exceeds ``threshold`` succeed, the rest are rolled back. The best ``branch`` successes are refined
   by a short 1-D parameter search and the search *recurses* from each (depth + 1, up to ``max_depth``);
   from depth 2 on only the best success is followed, so the tree stays within budget.
4. The best-judged node of the whole tree (a leaf, or the region's start when nothing helped) is kept.
5. *Rounds*: after every region was searched, perception runs again on the result and another round
   starts (up to ``rounds``), while the previous round kept a step and the step budget is not spent.

``budget`` bounds the tool calls per image, shared evenly by the regions (it bounds the exponential
worst case); ``result.info["budget_bound"]`` counts the regions where their share was hit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from policies.base import RestorationResult, TraceStep, number_option, params_dict, region_areas, whole_option
from policies.perception import Perception
from policies.search import SearchPlanner, as_offsets, candidate_thetas
from restorers import Tool


@dataclass
class _Node:
    image: np.ndarray
    score: float
    steps: list[tuple[Tool, np.ndarray, float, float]] = field(default_factory=list)  # tool, theta, before, after


class DFSPlanner(SearchPlanner):
    """Depth-first search over tool sequences per region, with rollback (see the module docstring).

    Args (besides :class:`SearchPlanner`'s): ``max_depth`` (tools per region and round, default 3),
    ``budget`` (tool calls per image, default 2400, shared evenly by rounds and regions), ``branch``
    (successful children explored near the root, default 2), ``rounds`` (perceive-search rounds, default 3),
    ``offsets`` (default (-0.5, 0.5)), ``min_prob`` (perception cut, default 0.3), ``embedding``
    (embedder the perception reads, default ``handcrafted``).
    """

    name = "dfs"

    def __init__(self, *, max_depth: int | None = None, budget: int = 2400, branch: int = 2, rounds: int = 3,
                 offsets: Sequence[float] = (-0.5, 0.5), min_prob: float = 0.3,
                 embedding: str = "handcrafted", **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.depth_limit = None if max_depth is None else whole_option(max_depth, "max_depth", 1)
        self.budget, self.branch = whole_option(budget, "budget", 1), whole_option(branch, "branch", 1)
        self.max_depth = 3
        self.rounds = whole_option(rounds, "rounds", 1)
        self.offsets = as_offsets(offsets)
        self.min_prob = number_option(min_prob, "min_prob", 0.0, 1.0)
        self.perception = Perception(embedding)
        by_family: dict[str, list[Tool]] = {}
        for t in sorted(self.tools, key=lambda t: t.cost):
            by_family.setdefault(t.family, []).append(t)
        self.by_family = by_family

    def _plan(self, image: np.ndarray, reference: np.ndarray | None, masks: np.ndarray) -> RestorationResult:
        assert self.judge is not None
        self.tool_calls = 0
        areas = region_areas(masks)
        img = image
        score = self.judge.score(img, reference)
        trace: list[TraceStep] = []
        bound = rounds = 0
        per_region = max(1, self.budget // (self.rounds * len(masks)))
        improved = True
        while improved and rounds < self.rounds and len(trace) < self.max_steps:
            # one round: perceive every region again, then search each region in turn
            improved, rounds = False, rounds + 1
            ranking = self.perception.rank(img, masks)
            for k in range(len(masks)):
                left = self.max_steps - len(trace)
                if left <= 0:
                    break
                self.max_depth = min(left, self.depth_limit or 3)
                t0 = time.perf_counter()
                ranked = [f for f, _ in ranking[k] if f in self.by_family]
                likely = [f for f, p in ranking[k] if p >= self.min_prob and f in self.by_family] or ranked[:1]
                others = [f for f in ranked if f not in likely]
                self._calls_left, self._bound = per_region, False
                self._best = _Node(img, score)
                self._search(self._best, likely, others, k, masks, reference, depth=0)
                bound += int(self._bound)
                leaf = self._best
                dt = (time.perf_counter() - t0) / max(1, len(leaf.steps))
                for tool, theta, before, after in leaf.steps:
                    trace.append(TraceStep(k, areas[k], tool.name, params_dict(tool.to_physical(theta)), before,
                                           after, dt))
                improved = improved or bool(leaf.steps)
                img, score = leaf.image, leaf.score
        result = RestorationResult(img, trace, masks, tool_calls=self.tool_calls, iqa_calls=0, seconds=0.0)
        result.info["budget_bound"] = bound
        result.info["rounds"] = rounds
        return result

    def _search(self, node: _Node, likely: list[str], others: list[str], k: int, masks: np.ndarray,
                reference: np.ndarray | None, depth: int) -> None:
        assert self.judge is not None
        if self.judge.gain(self._best.score, node.score) > 0:
            self._best = node
        if depth >= self.max_depth:
            return
        successes: list = []
        for group in (likely, others):  # the unlikely families only when every likely one failed
            for fam in group:
                for tool in self.by_family[fam]:
                    for th in candidate_thetas(tool, self.offsets):
                        if self._calls_left <= 0:
                            self._bound = True
                            break
                        self._calls_left -= 1
                        c = self._try(node.image, masks, k, tool, th, reference, node.score)
                        if c.gain > self.threshold:  # reflect: a success; failures are rolled back
                            successes.append(c)
            if successes:
                break
        width = self.branch if depth < 2 else 1  # branch near the root, then follow the best child
        for c in sorted(successes, key=lambda c: -c.gain)[:width]:
            if self._calls_left >= 4:
                self._calls_left -= 4
                c = self._refine(node.image, masks, c, reference, node.score)
            child = _Node(c.image, c.score, node.steps + [(c.tool, c.theta, node.score, c.score)])
            self._search(child, likely, others, k, masks, reference, depth + 1)
