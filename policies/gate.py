"""A perception gate: keep only the steps whose tool family the encoder sees in the step's region.

The learned policies (``ppo``, ``maskable_ppo``, ``distilled``) were trained on scenes where every region is
degraded, so they always act -- on a photo whose flaws the simulator never makes (pyiqa's KADID-10k pairs:
colour shifts, quantisation) they lose 6-7 dB (``experiments/results/scale/``). :class:`PerceptionGate` runs
the wrapped planner, asks the learned encoder once which degradation families each of the result's regions
shows in the INPUT image, and keeps a step only when its tool's family is among them (probability at least
the family's threshold); the kept steps are replayed in order on the input. No IQA call, one encoder pass
(about 5 ms at 128 px). The three learned policies use it by default (``gate="off"``: the raw policy):
``ppo`` with ``gate="policy"`` -- the thresholds fitted for that policy (``experiments/fit_gate.py``), stored in
its model's ``config.yml`` (``deploy: {gate: {thresholds: ...}}``), or the rule table's when the model has none --,
``maskable_ppo`` and ``distilled`` with ``gate="table"``: the thresholds the rule table tuned for the
``perceive`` planner. With ``gate="table"`` or ``"policy"`` the encoder perceives as the table's ``perceive``
planner does, through the perception the table was tuned on (:meth:`policies.rules.RuleTable.perception_context`;
the shipped table: the linear heads); ``gate="encoder"`` reads the encoder's own perception (``predict``: the
blend shipped beside it).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from policies.base import Planner, PlannerWrapper, RestorationResult, TraceStep, fresh_image
from restorers import apply, check_image, get_tool
from restorers.spec import FAMILIES

#: Accepted ``gate`` values: the thresholds fitted for the wrapped policy (its ``deploy_gate``; the table's when it
#: has none), the rule table's thresholds (tuned for ``perceive`` on validation scenes), the encoder's calibrated
#: 0.5, or no gate.
GATES: tuple[str, ...] = ("policy", "table", "encoder", "off")
#: Planners gated by default (trained on degraded scenes only: they never learned to leave content alone).
DEFAULT_GATES: dict[str, str] = {"ppo": "policy", "maskable_ppo": "table", "distilled": "table"}


def check_thresholds(thresholds: Any) -> dict[str, float]:
    """``thresholds`` as a {family: float} dict naming every family once, each a probability in [0, 1];
    ``ValueError`` naming the problem otherwise."""
    if not isinstance(thresholds, dict):
        raise ValueError(f"gate thresholds must be a dict family -> probability, got {type(thresholds).__name__}")
    missing = [f for f in FAMILIES if f not in thresholds]
    unknown = [f for f in thresholds if f not in FAMILIES]
    if missing or unknown:
        raise ValueError(f"gate thresholds must name exactly the families {list(FAMILIES)}; missing {missing}, "
                         f"unknown {unknown}")
    out = {}
    for f in FAMILIES:
        v = thresholds[f]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"gate threshold for {f} must be a probability in [0, 1], got {v!r}")
        out[f] = float(v)
    return out


def gate_thresholds(gate: str, table: Any = None) -> dict[str, float]:
    """Per-family probability thresholds of ``gate`` (``"table"``: the rule table at ``table`` -- a path or a
    loaded :class:`~policies.rules.RuleTable` -- default the shipped one; ``"encoder"``: 0.5, the encoder's
    calibrated best-F1 point)."""
    from policies.rules import ENCODER_THRESHOLD, RuleTable

    if gate == "encoder":
        return dict.fromkeys(FAMILIES, ENCODER_THRESHOLD)
    if gate == "table":
        if isinstance(table, RuleTable):
            thr = table
        else:
            thr = RuleTable.load(table) if table is not None else RuleTable.load()
        missing = [f for f in FAMILIES if f not in thr.thresholds]
        if missing:
            raise ValueError(f"rule table has no thresholds for {missing}")
        return {f: float(thr.thresholds[f]) for f in FAMILIES}
    raise ValueError(f"gate must be one of {GATES}, got {gate!r}")


class PerceptionGate(PlannerWrapper):
    """``inner`` with the perception gate of the module docstring.

    Args:
        inner: any planner.
        gate: ``"policy"``, ``"table"`` or ``"encoder"`` (:func:`gate_thresholds`; ``"policy"``: the inner
            planner's ``deploy_gate`` thresholds when it has them, else the table's, through the table's
            perception either way).
        weights: encoder weights directory (default: the shipped encoder).
        table: rule-table JSON for ``gate="table"`` / ``"policy"`` (default: the shipped one).
        thresholds: per-family thresholds in [0, 1] replacing the gate's own (e.g. while fitting them), read
            through the gate's perception.

    ``tool_calls`` = the inner planner's calls plus one per kept step when a step was vetoed (the kept steps
    are replayed); nothing is re-run when every step passes. ``info["gate"]``: the gate, ``thresholds_from``
    (``"policy"``, ``"table"``, ``"encoder"`` or ``"given"``), ``kept`` and the ``vetoed`` steps (tool, family,
    region, probability and the family's threshold it fell below).
    """

    def __init__(self, inner: Planner, gate: str = "table", weights: str | Path | None = None,
                 table: str | Path | None = None, thresholds: dict[str, float] | None = None) -> None:
        from ir_env.encoder.learned import LearnedEmbedder

        super().__init__(inner)
        if gate not in GATES or gate == "off":
            raise ValueError(f"PerceptionGate gate must be one of {[g for g in GATES if g != 'off']}, got {gate!r}")
        context = True
        self.source = gate
        if gate in ("table", "policy"):  # the table loaded once: its thresholds, and the perception they were tuned on
            from policies.rules import RuleTable

            table = RuleTable.load(table) if table is not None else RuleTable.load()
            context = table.perception_context(weights) is not False
        own = getattr(inner, "deploy_gate", None) if gate == "policy" else None
        if thresholds is not None:
            self.thresholds, self.source = check_thresholds(thresholds), "given"
        elif own is not None:
            self.thresholds = check_thresholds(own)
        else:
            self.thresholds = gate_thresholds("encoder" if gate == "encoder" else "table", table)
            if gate == "policy":
                self.source = "table"
        self.gate = gate
        self.embedder = LearnedEmbedder(weights, context=context)

    def _restore(self, degraded: np.ndarray, reference: np.ndarray | None = None,
                masks: np.ndarray | None = None) -> RestorationResult:
        """The inner planner's result with the steps the encoder does not support removed."""
        t0 = time.perf_counter()
        img = check_image(degraded, name="degraded")
        res = self.inner.restore(img, reference, masks)
        vetoed: list[dict[str, Any]] = []
        keep: list[TraceStep] = []
        if res.trace:
            prob = self.embedder.predict(img, res.masks)["family_prob"]
            for st in res.trace:
                fam = get_tool(st.tool).family
                p = float(prob[st.region, FAMILIES.index(fam)])
                if p >= self.thresholds[fam]:
                    keep.append(st)
                else:
                    vetoed.append({"tool": st.tool, "family": fam, "region": int(st.region), "prob": p,
                                   "threshold": float(self.thresholds[fam])})
        out, calls = res.image, int(res.tool_calls)
        if vetoed:
            # the kept steps run on other images than in the inner run: its judge's scores no longer apply
            keep = [dataclasses.replace(st, quality_before=math.nan, quality_after=math.nan) for st in keep]
            out = img
            for st in keep:
                out = apply(out, st.tool, st.params, mask=res.masks[st.region], feather=st.feather)
            calls += len(keep)
        info = {**res.info, "gate": {"gate": self.gate, "thresholds_from": self.source, "kept": len(keep),
                                     "vetoed": vetoed}}
        return RestorationResult(fresh_image(out, degraded), keep, res.masks, tool_calls=calls, iqa_calls=res.iqa_calls,
                                 seconds=time.perf_counter() - t0, planner=res.planner, judge=res.judge, info=info)

    def __repr__(self) -> str:
        return f"PerceptionGate({self.inner!r}, gate={self.gate!r})"


def resolve_gate(name: str, gate: Any = None) -> str:
    """The gate planner ``name`` gets: ``gate`` when given (``"policy"``, ``"table"``, ``"encoder"``, ``"off"``, in any
    case; also ``False``/``0``/``"none"`` for off), else :data:`DEFAULT_GATES`' entry (``"off"`` for other planners)."""
    if gate is None:
        return DEFAULT_GATES.get(name, "off")
    if gate is False or (isinstance(gate, (int, float)) and not isinstance(gate, bool) and gate == 0) \
            or (isinstance(gate, str) and gate.lower() in ("off", "none", "false", "0")):
        return "off"
    if isinstance(gate, str) and gate.strip().lower() in ("policy", "table", "encoder"):
        return gate.strip().lower()  # names read case-insensitively, as the off-words are
    raise ValueError(f"gate must be one of {GATES}, got {gate!r}")


def gate_of_spec(spec: str) -> str:
    """The gate a planner spec string (``name[:opt...]``, :func:`policies.evaluation.parse_planner_spec`)
    builds: its ``gate=`` option, else the planner's default."""
    parts = [p for p in spec.strip().split(":") if p]
    opts = [p.split("=", 1)[1] for p in parts[1:] if p.startswith("gate=")]
    return resolve_gate(parts[0] if parts else "", opts[-1] if opts else None)


def gated(planner: Planner, gate: str) -> Planner:
    """``planner`` behind a :class:`PerceptionGate` (``gate`` from :func:`resolve_gate`; ``"off"``: as is)."""
    return planner if gate == "off" else PerceptionGate(planner, gate)
