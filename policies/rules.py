"""``perceive``: restore by perception and a fitted rule table, with no trial runs and no IQA calls.

The learned encoder (issue 6) names, per region, the degradation families present (probability above a
per-family threshold) and their severities in [0, 1]. A :class:`RuleTable`, fitted offline by
``python -m experiments.fit_rule_table`` on TRAIN photos only, maps (family, severity bin) to the tool
and physical parameters that gained most on single-family degradations of that severity. The planner
applies, family by family in reverse physical order (``jpeg -> noise -> dark -> blur -> rain -> haze``:
the last degradation applied is undone first), each perceived family's table entry to each region that
shows it. It is the "perceive, then act" half of agentic restorers (AgenticIR, Q-Agent) without their
exploration: its quality rests entirely on the perception (a table applied with the true families and
severities is the upper bound the fit script reports).

The table is plain JSON (``ir_env/data/rule_table.json`` by default): ``entries[family]`` is a list of
``bins`` entries (severity bin ``b`` covers ``[b / bins, (b + 1) / bins)``), each ``{"tool", "params"
(physical units), "gain_db" (mean PSNR gain on the fit samples), "n"}``; ``thresholds[family]`` are the
family-probability thresholds tuned for restoration gain, valid for the encoder whose
:func:`~ir_env.encoder.learned.perception_fingerprint` (weights and context head) is ``encoder_fingerprint``
(other perception falls back to the encoder's own F1-calibrated threshold, with a warning: 0.5 for every
family, as the encoder's probabilities are calibrated to it).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policies.base import Planner, RestorationResult, TraceStep, params_dict, region_areas
from restorers import apply, get_tool
from restorers.spec import FAMILIES

#: Format tag of the rule-table JSON.
RULE_TABLE_FORMAT = "spatial-ir-rule-table/1"
#: The shipped table.
DEFAULT_RULE_TABLE = Path(__file__).resolve().parent.parent / "ir_env" / "data" / "rule_table.json"
#: The encoder's own decision threshold: its family probabilities are calibrated so that 0.5 is each family's
#: best-F1 threshold on validation scenes (``encoder.json``'s ``thresholds`` record where the raw head put
#: them before that shift; they do not apply to its output).
ENCODER_THRESHOLD = 0.5
#: Restoration order: the reverse of the physical order of degradation (ir_env.degradations.PHYSICAL_ORDER).
RESTORE_ORDER: tuple[str, ...] = ("jpeg", "noise", "dark", "blur", "rain", "haze")


@dataclass
class RuleTable:
    """(family, severity bin) -> (tool, physical params), plus per-family probability thresholds.

    ``entries[family][b]`` holds ``tool``, ``params`` (physical), ``gain_db`` and ``n``; severity ``s`` in
    [0, 1] falls in bin ``min(floor(s * bins), bins - 1)``. ``thresholds`` are probabilities in [0, 1].
    ``meta`` carries the fit's config, encoder fingerprint and report.
    """

    entries: dict[str, list[dict[str, Any]]]
    bins: int
    thresholds: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if int(self.bins) < 1:
            raise ValueError(f"rule table: bins must be >= 1, got {self.bins}")
        missing = [f for f in FAMILIES if f not in self.entries]
        if missing:
            raise ValueError(f"rule table has no entries for families {missing}")
        for fam, rows in self.entries.items():
            if fam not in FAMILIES:
                raise ValueError(f"rule table: unknown family {fam!r}; known: {', '.join(FAMILIES)}")
            if len(rows) != self.bins:
                raise ValueError(f"rule table: family {fam!r} has {len(rows)} entries, expected {self.bins}")
            for row in rows:
                tool = get_tool(row["tool"])  # unknown tool -> ValueError naming it
                if tool.family != fam:
                    raise ValueError(f"rule table: tool {tool.name!r} restores {tool.family!r}, not {fam!r}")
                tool.validate(row["params"])
        for fam, t in self.thresholds.items():
            if fam not in FAMILIES or not (0.0 <= float(t) <= 1.0):
                raise ValueError(f"rule table: threshold for {fam!r} must be a family with a value in [0, 1], "
                                 f"got {t!r}")

    def bin_of(self, severity: float) -> int:
        """Severity bin of ``severity`` (clipped to [0, 1]); ``ValueError`` for NaN."""
        s = float(severity)
        if math.isnan(s):
            raise ValueError("severity is NaN")
        return min(int(np.clip(s, 0.0, 1.0) * self.bins), self.bins - 1)

    def lookup(self, family: str, severity: float) -> tuple[str, dict[str, float]]:
        """(tool name, physical params) for ``family`` at ``severity`` in [0, 1]."""
        if family not in self.entries:
            raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
        row = self.entries[family][self.bin_of(severity)]
        return row["tool"], {k: float(v) for k, v in row["params"].items()}

    def fingerprint(self) -> str:
        """12 hex digits of the SHA-1 of what decides the planner's actions (bins, entries, thresholds; not
        the fit's metadata or report)."""
        import hashlib

        doc = json.dumps([int(self.bins), self.entries, {k: float(v) for k, v in self.thresholds.items()}],
                         sort_keys=True)
        return hashlib.sha1(doc.encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        """The JSON document :meth:`load` reads."""
        return {"format": RULE_TABLE_FORMAT, "bins": int(self.bins), "order": list(RESTORE_ORDER),
                "entries": self.entries, "thresholds": {k: float(v) for k, v in self.thresholds.items()},
                **self.meta}

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON; returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_json(), indent=1))
        return p

    @classmethod
    def load(cls, path: str | Path = DEFAULT_RULE_TABLE) -> RuleTable:
        """Read a table written by :meth:`save`; ``FileNotFoundError`` / ``ValueError`` name the problem."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"no rule table at {p}; fit one with `python -m experiments.fit_rule_table "
                                    "--config experiments/configs/rule_table.yaml --ship`")
        try:
            d = json.loads(p.read_text())
        except ValueError as exc:
            raise ValueError(f"rule table {p} is not valid JSON: {exc}") from None
        if not isinstance(d, dict) or d.get("format") != RULE_TABLE_FORMAT:
            raise ValueError(f"{p} is not a rule table (format {RULE_TABLE_FORMAT!r} expected)")
        meta = {k: v for k, v in d.items() if k not in ("format", "bins", "order", "entries", "thresholds")}
        return cls(entries=d["entries"], bins=int(d["bins"]), thresholds=d.get("thresholds", {}), meta=meta)


class PerceivePlanner(Planner):
    """Perceive each region with the learned encoder, then apply the rule table's tool for every family
    it shows (reverse physical order), once; never judges and never undoes a step.

    Args:
        table: path of a rule-table JSON (default: the shipped one).
        weights: encoder weights directory (default: the shipped encoder).
        thresholds: ``"table"`` (tuned for gain, default; falls back to the encoder's when the table was
            fitted for other perception), ``"encoder"`` (the encoder's F1-calibrated 0.5) or a number in
            [0, 1] used for every family.
        device: torch device of the encoder.
        Other keyword arguments as :class:`~policies.base.Planner` (``judge`` is ignored).
    """

    name = "perceive"
    uses_judge = False

    def __init__(self, table: str | Path | None = None, weights: str | Path | None = None,
                 thresholds: str | float = "table", device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from ir_env.encoder.learned import DEFAULT_WEIGHTS, LearnedEmbedder, perception_fingerprint

        self.table = RuleTable.load(table if table is not None else DEFAULT_RULE_TABLE)
        self.embedder = LearnedEmbedder(weights=weights, device=device)
        encoder_thr = dict.fromkeys(FAMILIES, ENCODER_THRESHOLD)
        if isinstance(thresholds, (int, float)) and not isinstance(thresholds, bool):
            if not 0.0 <= float(thresholds) <= 1.0:
                raise ValueError(f"thresholds must lie in [0, 1], got {thresholds}")
            self.thresholds = {f: float(thresholds) for f in FAMILIES}
        elif thresholds == "encoder":
            self.thresholds = encoder_thr
        elif thresholds == "table":
            fitted_for = self.table.meta.get("encoder_fingerprint")
            if self.table.thresholds and fitted_for == perception_fingerprint(
                    weights if weights is not None else DEFAULT_WEIGHTS):
                self.thresholds = {f: float(self.table.thresholds.get(f, encoder_thr[f])) for f in FAMILIES}
            else:
                if self.table.thresholds:
                    warnings.warn("the rule table's thresholds were tuned for another encoder (weights or context "
                                  "head); using the encoder's own calibrated threshold 0.5", UserWarning,
                                  stacklevel=2)
                self.thresholds = encoder_thr
        else:
            raise ValueError(f"thresholds must be 'table', 'encoder' or a number in [0, 1], got {thresholds!r}")

    def perceive(self, image: np.ndarray, masks: np.ndarray) -> list[dict[str, float]]:
        """Per region, {family: severity in [0, 1]} of the families whose probability reaches its threshold."""
        return families_seen(self.embedder.predict(image, masks), self.thresholds)

    def _plan(self, image: np.ndarray, reference: np.ndarray | None, masks: np.ndarray) -> RestorationResult:
        t0 = time.perf_counter()
        seen = self.perceive(image, masks)
        areas = region_areas(masks)
        img, steps = apply_rules(self.table, image, masks, seen, self.max_steps)
        per_step = (time.perf_counter() - t0) / max(1, len(steps))  # perception shared by the steps
        trace = [TraceStep(k, areas[k], tool, params_dict(params), float("nan"), float("nan"), per_step)
                 for k, tool, params in steps]
        return RestorationResult(img, trace, masks, tool_calls=len(trace), iqa_calls=0, seconds=0.0,
                                 info={"perceived": seen})


def families_seen(pred: dict[str, np.ndarray], thresholds: dict[str, float]) -> list[dict[str, float]]:
    """Per region of an encoder prediction (``family_prob``, ``severity``: (K, F) arrays over
    :data:`FAMILIES`), {family: severity} of the families whose probability reaches ``thresholds[family]``."""
    prob, sev = np.asarray(pred["family_prob"]), np.asarray(pred["severity"])
    return [{f: float(sev[k, j]) for j, f in enumerate(FAMILIES) if prob[k, j] >= thresholds[f]}
            for k in range(len(prob))]


def apply_rules(table: RuleTable, image: np.ndarray, masks: np.ndarray, seen: list[dict[str, float]],
                max_steps: int | None = None) -> tuple[np.ndarray, list[tuple[int, str, dict[str, float]]]]:
    """Apply ``table``'s entry for every family in ``seen[k]`` (a {family: severity} dict per region) to
    region ``k`` of ``image`` (float32 HxWx3 in [0, 1]), family by family in :data:`RESTORE_ORDER`, at
    most ``max_steps`` steps; empty regions are skipped. Returns the image and the (region, tool, physical
    params) steps in order."""
    img, steps = image, []
    for fam in RESTORE_ORDER:
        for k, fams in enumerate(seen):
            if fam not in fams or not masks[k].any() or (max_steps is not None and len(steps) >= max_steps):
                continue
            tool, params = table.lookup(fam, fams[fam])
            img = apply(img, tool, params, mask=masks[k])
            steps.append((k, tool, params))
    return img, steps
