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
family, as the encoder's probabilities are calibrated to it). The planner perceives through the perception
the table was tuned on (:meth:`RuleTable.perception_context`): the shipped table was tuned on the encoder's
linear heads, so ``perceive`` reads those, though the encoder's own perception (``predict``) is the blend
with the context head shipped beside it (``experiments/configs/perception_split.yaml``).
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

from policies.base import Planner, RestorationResult, TraceStep, ran_params, region_areas
from policies.step_chooser import step_features
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
#: Tile side (px) :func:`policies.make_planner` runs ``perceive`` at on larger images when no ``tile=`` is given
#: (spatial mode, proposer regions; ``tile=0`` turns it off): the crop size its encoder and rule table were fitted
#: on. Adopted in stop 26 under ``experiments/configs/perceive_tile.yaml`` (holdout photos: +0.13 dB at 256 px,
#: +0.62 on whole photos over the untiled planner).
DEPLOY_TILE = 128
#: How the planner finds regions (:class:`PerceivePlanner`'s ``regions``).
REGION_MODES: tuple[str, ...] = ("proposer", "families")
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
    family_masks: dict[str, Any] = field(default_factory=dict)

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
        if self.family_masks:
            fm = self.family_masks
            for key in ("thresholds", "cell_thresholds"):
                vals = fm.get(key, {})
                if set(vals) != set(FAMILIES) or not all(0.0 <= float(v) <= 1.0 for v in vals.values()):
                    raise ValueError(f"rule table: family_masks.{key} must give every family a value in [0, 1]")
            if not 0.0 <= float(fm.get("min_area", 0.0)) < 1.0:
                raise ValueError("rule table: family_masks.min_area must lie in [0, 1)")

    def bin_of(self, severity: float) -> int:
        """Severity bin of ``severity`` (clipped to [0, 1]); ``ValueError`` for NaN."""
        s = float(severity)
        if math.isnan(s):
            raise ValueError("severity is NaN")
        return min(int(np.clip(s, 0.0, 1.0) * self.bins), self.bins - 1)

    def lookup(self, family: str, severity: float) -> tuple[str, dict[str, float]]:
        """(tool name, physical params) for ``family`` at ``severity`` in [0, 1]."""
        return self.entry(family, self.bin_of(severity))

    def entry(self, family: str, b: int) -> tuple[str, dict[str, float]]:
        """(tool name, physical params) of ``family``'s severity bin ``b`` (0 .. ``bins`` - 1)."""
        if family not in self.entries:
            raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
        row = self.entries[family][b]
        return row["tool"], {k: float(v) for k, v in row["params"].items()}

    def perception_context(self, weights: str | Path | None = None) -> bool | None:
        """Which perception of the encoder in ``weights`` (default: the shipped one) this table's thresholds were
        tuned on: True when its ``encoder_fingerprint`` is that encoder's full perception (context head included,
        or none stored), False when it is the linear heads' (``LearnedEmbedder(weights, context=False)``), None
        when it is neither (another encoder)."""
        from ir_env.encoder.learned import (
            DEFAULT_WEIGHTS,
            context_fingerprint,
            segment_fingerprint,
            weights_fingerprint,
        )

        # the two fingerprints of perception_fingerprint(d, context=True / False), each file hashed once
        d = weights if weights is not None else DEFAULT_WEIGHTS
        base, seg = weights_fingerprint(d), segment_fingerprint(d)
        fitted_for = self.meta.get("encoder_fingerprint")
        if fitted_for == base + context_fingerprint(d) + seg:
            return True
        return False if fitted_for == base + seg else None

    def fingerprint(self, family_masks: bool = False) -> str:
        """12 hex digits of the SHA-1 of what decides the planner's actions on given regions (bins, entries,
        thresholds; not the fit's metadata or report); ``family_masks=True`` also covers the settings of
        ``regions="families"``."""
        import hashlib

        parts: list[Any] = [int(self.bins), self.entries, {k: float(v) for k, v in self.thresholds.items()}]
        if family_masks:
            parts.append(self.family_masks)
        return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        """The JSON document :meth:`load` reads."""
        out = {"format": RULE_TABLE_FORMAT, "bins": int(self.bins), "order": list(RESTORE_ORDER),
               "entries": self.entries, "thresholds": {k: float(v) for k, v in self.thresholds.items()}, **self.meta}
        if self.family_masks:
            out["family_masks"] = self.family_masks
        return out

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
        missing = [k for k in ("entries", "bins") if k not in d]
        if missing:
            raise ValueError(f"rule table {p} has no {' or '.join(map(repr, missing))}: not a table written by "
                             "RuleTable.save")
        meta = {k: v for k, v in d.items()
                if k not in ("format", "bins", "order", "entries", "thresholds", "family_masks")}
        return cls(entries=d["entries"], bins=int(d["bins"]), thresholds=d.get("thresholds", {}), meta=meta,
                   family_masks=d.get("family_masks", {}))


#: The ``perceive`` planner's regions when none are given: (proposer, max regions). The learned-feature clusters
#: with up to 8 regions replaced ``degradation-clusters`` with 4 in stop 23 (experiments/configs/perceive_proposer.yaml:
#: rule written before the holdout run; experiments/results/rules/proposer_learned8/).
DEFAULT_PROPOSER: tuple[str, int] = ("degradation-clusters-learned", 8)


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
        regions: ``"proposer"`` (default: the regions of ``region_proposer``, one step per perceived family
            and region; when no ``region_proposer`` is given, :data:`DEFAULT_PROPOSER`:
            ``degradation-clusters-learned`` with at most 8 regions, clustering the dense predictions of the
            encoder in ``weights``) or ``"families"``: no region proposer; per family, the
            pixels whose per-cell probability (the encoder's dense linear heads) reaches the table's
            ``family_masks.cell_thresholds`` form one mask, acted on when the mask covers at least
            ``min_area`` of the image and its pooled probability reaches ``family_masks.thresholds`` (at most
            one step per family; the result's regions are these masks, which may overlap; ``masks=`` given
            to :meth:`restore` are not used).
        choose: ``"table"`` (default: each step takes the table's entry for the perceived severity) or the path of a
            step-chooser JSON (:class:`~policies.step_chooser.StepChooser`, ``experiments/fit_step_chooser.py``): per
            step, the severity bin whose entry is predicted to restore the region best, or no step (proposer regions
            only). None is shipped: the one fitted in stop 27 lost on new photos
            (``experiments/results/step_chooser/README.md``).
        Other keyword arguments as :class:`~policies.base.Planner` (``judge`` is ignored).

    Attribute ``deploy_tile``: :data:`DEPLOY_TILE` in spatial mode with proposer regions (else None):
    :func:`policies.make_planner` then runs the planner tile by tile on images larger than that unless given
    ``tile=`` (``tile=0``: never); building the class directly never tiles.
    """

    name = "perceive"
    uses_judge = False

    def __init__(self, table: str | Path | None = None, weights: str | Path | None = None,
                 thresholds: str | float = "table", device: str = "cpu", regions: str = "proposer",
                 choose: str | Path = "table", **kwargs: Any) -> None:
        if regions not in REGION_MODES:
            raise ValueError(f"regions must be one of {', '.join(REGION_MODES)}, got {regions!r}")
        if regions == "families":
            if kwargs.get("mode", "spatial") != "spatial":
                raise ValueError("regions='families' makes its own regions: it needs mode='spatial'")
            kwargs["region_proposer"] = "whole"  # the proposer's regions are not used
        elif "region_proposer" not in kwargs:  # this planner's own default regions (DEFAULT_PROPOSER)
            kwargs["region_proposer"] = DEFAULT_PROPOSER[0]
            kwargs.setdefault("max_regions", DEFAULT_PROPOSER[1])
        super().__init__(**kwargs)
        self.regions = regions
        # make_planner tiles the default mode at the fitted crop size on larger images (perceive_tile.yaml)
        self.deploy_tile = DEPLOY_TILE if regions == "proposer" and self.mode == "spatial" else None
        if weights is not None and self.region_proposer == "degradation-clusters-learned":
            from ir_env.regions import make_proposer  # the regions from the same encoder as the perception

            self.proposer = make_proposer(self.region_proposer, max_regions=self.max_regions, seed=self.seed,
                                          weights=weights)
        from ir_env.encoder.learned import LearnedEmbedder

        self.table = RuleTable.load(table if table is not None else DEFAULT_RULE_TABLE)
        # the perception the table was tuned on (the shipped table: the linear heads, though a context head and
        # blend sit beside the shipped encoder); a table fitted for another encoder: the encoder's own
        fitted = self.table.perception_context(weights)
        self.embedder = LearnedEmbedder(weights=weights, device=device, context=fitted is not False)
        encoder_thr = dict.fromkeys(FAMILIES, ENCODER_THRESHOLD)
        if isinstance(thresholds, (int, float)) and not isinstance(thresholds, bool):
            if not 0.0 <= float(thresholds) <= 1.0:
                raise ValueError(f"thresholds must lie in [0, 1], got {thresholds}")
            self.thresholds = {f: float(thresholds) for f in FAMILIES}
        elif thresholds == "encoder":
            self.thresholds = encoder_thr
        elif thresholds == "table":
            if self.table.thresholds and fitted is not None:
                self.thresholds = {f: float(self.table.thresholds.get(f, encoder_thr[f])) for f in FAMILIES}
            else:
                if self.table.thresholds:
                    used = ("its family-mask thresholds are used as they are" if regions == "families"
                            else "using the encoder's own calibrated threshold 0.5")
                    warnings.warn("the rule table's thresholds were tuned for another encoder (weights or context "
                                  f"head); {used}", UserWarning, stacklevel=2)
                self.thresholds = encoder_thr
        else:
            raise ValueError(f"thresholds must be 'table', 'encoder' or a number in [0, 1], got {thresholds!r}")
        if regions == "families" and not self.table.family_masks:
            raise ValueError("this rule table has no family_masks settings (re-fit it with experiments.fit_rule_table)")
        self.chooser = self._load_chooser(choose, weights)

    def _load_chooser(self, choose: str | Path, weights: str | Path | None) -> Any:
        """None for ``choose="table"``, else the :class:`~policies.step_chooser.StepChooser` at that path, checked
        against the encoder and the table; errors name the problem."""
        if not isinstance(choose, (str, Path)) or str(choose) == "":
            raise ValueError(f"choose must be 'table' or the path of a step-chooser JSON, got {choose!r}")
        if str(choose) == "table":
            return None
        if self.regions != "proposer":
            raise ValueError("choose= needs regions='proposer' (the step chooser decides per region step)")
        from ir_env.encoder.learned import DEFAULT_WEIGHTS, weights_fingerprint
        from policies.step_chooser import StepChooser

        path = Path(choose)
        if not path.is_file():
            raise ValueError(f"step chooser {path} not found (make one with experiments/fit_step_chooser.py)")
        chooser = StepChooser.load(path)
        chooser.check_encoder(weights_fingerprint(weights if weights is not None else DEFAULT_WEIGHTS))
        if chooser.bins != self.table.bins:
            raise ValueError(f"step chooser {path} chooses among {chooser.bins} bins, the rule table has "
                             f"{self.table.bins}")
        return chooser

    def perceive(self, image: np.ndarray, masks: np.ndarray) -> list[dict[str, float]]:
        """Per region, {family: severity in [0, 1]} of the families whose probability reaches its threshold."""
        return families_seen(self.embedder.predict(image, masks), self.thresholds)

    def _plan(self, image: np.ndarray, reference: np.ndarray | None, masks: np.ndarray) -> RestorationResult:
        t0 = time.perf_counter()
        if self.regions == "families":
            fm = self.table.family_masks
            img, done = apply_family_masks(self.table, self.embedder, image, fm["thresholds"], fm["cell_thresholds"],
                                           float(fm.get("min_area", 0.0)), self.max_steps)
            regions = np.stack([m for _, m, _, _ in done]) if done else np.ones((1, *image.shape[:2]), bool)
            areas = region_areas(regions)
            per_step = (time.perf_counter() - t0) / max(1, len(done))
            trace = [TraceStep(k, areas[k], tool, ran_params(tool, params), float("nan"), float("nan"), per_step)
                     for k, (_, _, tool, params) in enumerate(done)]
            return RestorationResult(img, trace, regions, tool_calls=len(trace), iqa_calls=0, seconds=0.0,
                                     info={"families": [f for f, _, _, _ in done]})
        seen = self.perceive(image, masks)
        areas = region_areas(masks)
        img, steps = apply_rules(self.table, image, masks, seen, self.max_steps, self.chooser, self.embedder)
        per_step = (time.perf_counter() - t0) / max(1, len(steps))  # perception shared by the steps
        trace = [TraceStep(k, areas[k], tool, ran_params(tool, params), float("nan"), float("nan"), per_step)
                 for k, tool, params in steps]
        return RestorationResult(img, trace, masks, tool_calls=len(trace), iqa_calls=0, seconds=0.0,
                                 info={"perceived": seen})


def dense_family_prob(embedder: Any, image: np.ndarray) -> np.ndarray:
    """Per-pixel family probabilities (H, W, F) float32 in [0, 1] of the encoder ``embedder``
    (:meth:`ir_env.encoder.learned.LearnedEmbedder.dense_family_prob`: its segmentation head when it has one,
    else the linear family head on every 8x8 feature cell, each judged alone)."""
    return embedder.dense_family_prob(image)


def apply_family_masks(table: RuleTable, embedder: Any, image: np.ndarray, thresholds: dict[str, float],
                       cell_thresholds: dict[str, float], min_area: float = 0.0, max_steps: int | None = None,
                       prob: np.ndarray | None = None
                       ) -> tuple[np.ndarray, list[tuple[str, np.ndarray, str, dict[str, float]]]]:
    """The ``regions="families"`` planner: per family in :data:`RESTORE_ORDER`, the mask of pixels whose dense
    probability (:func:`dense_family_prob`, or ``prob`` when given) reaches ``cell_thresholds[family]``; when it
    covers at least ``min_area`` of the image and the encoder's pooled probability on it reaches
    ``thresholds[family]``, the table's entry for the pooled severity is applied inside it. Perception reads
    the input image only. Returns the image and the (family, mask, tool, physical params) steps."""
    p = dense_family_prob(embedder, image) if prob is None else prob
    masks = family_masks_of(p, cell_thresholds, min_area)
    return restore_in_masks(table, embedder, image, [(fam, m, True) for fam, m in masks.items()], thresholds,
                            max_steps)


def family_masks_of(prob: np.ndarray, cell_thresholds: dict[str, float], min_area: float = 0.0
                    ) -> dict[str, np.ndarray]:
    """The ``regions="families"`` planner's masks, in :data:`RESTORE_ORDER`: per family, the pixels of ``prob``
    (H, W, F dense probabilities) at or above ``cell_thresholds[family]``, kept when they cover at least
    ``min_area`` (fraction of the image) and are not empty."""
    masks = {fam: prob[..., FAMILIES.index(fam)] >= cell_thresholds[fam] for fam in RESTORE_ORDER}
    return {fam: m for fam, m in masks.items() if m.any() and m.mean() >= min_area}


def restore_in_masks(table: RuleTable, embedder: Any, image: np.ndarray, masks: list[tuple[str, np.ndarray, bool]],
                     thresholds: dict[str, float], max_steps: int | None = None
                     ) -> tuple[np.ndarray, list[tuple[str, np.ndarray, str, dict[str, float]]]]:
    """Per (family, HxW bool mask, check) in order: the table's entry for the encoder's severity pooled over the
    mask (one encoder pass on the INPUT image for every mask), applied inside it; with ``check`` only when the
    pooled probability of the family reaches ``thresholds[family]``. At most ``max_steps`` steps. Returns the
    image and the (family, mask, tool, physical params) steps."""
    out, steps = image, []
    if not masks or (max_steps is not None and max_steps <= 0):
        return out, steps
    pred = embedder.predict(image, np.stack([m for _, m, _ in masks]))
    for k, (fam, mask, check) in enumerate(masks):
        if max_steps is not None and len(steps) >= max_steps:
            break
        j = FAMILIES.index(fam)
        if check and pred["family_prob"][k, j] < thresholds[fam]:
            continue
        tool, params = table.lookup(fam, pred["severity"][k, j])
        out = apply(out, tool, params, mask=mask)
        steps.append((fam, mask, tool, params))
    return out, steps


def families_seen(pred: dict[str, np.ndarray], thresholds: dict[str, float]) -> list[dict[str, float]]:
    """Per region of an encoder prediction (``family_prob``, ``severity``: (K, F) arrays over
    :data:`FAMILIES`), {family: severity} of the families whose probability reaches ``thresholds[family]``."""
    prob, sev = np.asarray(pred["family_prob"]), np.asarray(pred["severity"])
    return [{f: float(sev[k, j]) for j, f in enumerate(FAMILIES) if prob[k, j] >= thresholds[f]}
            for k in range(len(prob))]


def apply_rules(table: RuleTable, image: np.ndarray, masks: np.ndarray, seen: list[dict[str, float]],
                max_steps: int | None = None, chooser: Any = None, embedder: Any = None
                ) -> tuple[np.ndarray, list[tuple[int, str, dict[str, float]]]]:
    """Apply ``table``'s entry for every family in ``seen[k]`` (a {family: severity} dict per region) to
    region ``k`` of ``image`` (float32 HxWx3 in [0, 1]), family by family in :data:`RESTORE_ORDER`, at
    most ``max_steps`` steps; empty regions are skipped. With a ``chooser``
    (:class:`policies.step_chooser.StepChooser`) each step's entry is the bin it picks from the region as it is at
    that step (``embedder``'s embedding of the current image plus region statistics), or the step is skipped.
    Returns the image and the (region, tool, physical params) steps in order."""
    img, steps = image, []
    emb = None  # the embedding of the current image, re-made after each step (chooser only)
    for fam in RESTORE_ORDER:
        for k, fams in enumerate(seen):
            if fam not in fams or not masks[k].any() or (max_steps is not None and len(steps) >= max_steps):
                continue
            if chooser is None:
                tool, params = table.lookup(fam, fams[fam])
            else:
                if emb is None:
                    emb = embedder.embed(img, masks)
                b = chooser.choose(fam, step_features(emb[k], img, masks[k]), table.bin_of(fams[fam]))
                if b is None:
                    continue
                tool, params = table.entry(fam, b)
            img = apply(img, tool, params, mask=masks[k])
            emb = None
            steps.append((k, tool, params))
    return img, steps
