"""Rule-table entries re-fitted on the steps perception actually triggers (``fit_rule_table``'s ``refit`` stage).

Stage 1 of :mod:`experiments.fit_rule_table` picks each (family, severity bin) entry on crops degraded by that
family ALONE at a TRUE severity of the bin. The planner meets neither condition: it acts on mixed scenes, on
regions its encoder flagged (rightly or not), at the encoder's severity estimate. An entry that is best in the
lab can be ruinous there (``dcp_dehaze`` with omega 0.98 took one train scene from +0 to -17 dB on a region the
encoder wrongly called hazy). This stage scores every candidate of a family on the planner's own steps instead:

for each family in the planner's order (:data:`policies.rules.RESTORE_ORDER`), on ``refit`` scenes of the TRAIN
photos, every (region, family) the perception flags (probability at or above the table's threshold) is one
sample of the bin of its PERCEIVED severity; each candidate (tool, params) of the family is applied to that
region of the image as the planner would have it at that point (the families before it already restored with
the re-fitted entries), and scored by the scene's PSNR change. A bin's entry becomes the candidate with the
largest mean change over its samples (the planner's step cap is not applied here); bins with fewer than
``min_samples`` samples keep their stage-1 entry.
Thresholds are not touched (the stage needs them given: ``tune.thresholds_from``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm import tqdm

from experiments.fit_rule_table import Perceived, candidates, psnr, scene_set
from ir_env.corpus import load_corpus
from policies.rules import RESTORE_ORDER, RuleTable, families_seen
from restorers import apply

#: Keys of the config's ``refit`` block.
REFIT_KEYS = ("recipes", "scenes_per_photo", "crop", "seed", "min_samples", "region_proposer", "max_regions")


def check_refit(block: Any) -> dict[str, Any]:
    """``block`` if it is a valid ``refit`` mapping, else ``ValueError`` naming the problem."""
    if not isinstance(block, dict):
        raise ValueError("refit must be a mapping with keys " + ", ".join(REFIT_KEYS))
    missing = [k for k in REFIT_KEYS if k not in block]
    if missing:
        raise ValueError(f"refit misses {', '.join(missing)}")
    if not block["recipes"] or not all(isinstance(r, str) for r in block["recipes"]):
        raise ValueError(f"refit.recipes must be a non-empty list of recipe names, got {block['recipes']!r}")
    for key in ("scenes_per_photo", "crop", "min_samples", "max_regions"):
        if int(block[key]) < 1:
            raise ValueError(f"refit.{key} must be >= 1, got {block[key]!r}")
    return block


def perceived_scenes(block: dict[str, Any], embedder: Any, thresholds: dict[str, float], corpus: str = "builtin",
                     weights: str | None = None) -> list[tuple[Any, np.ndarray, list[dict[str, float]]]]:
    """The refit scenes (random crops of the TRAIN photos, every recipe of ``block``), each with the proposer's
    masks and the families its perception flags per region (``{family: perceived severity}``). ``weights``: the
    encoder directory ``degradation-clusters-learned`` clusters with (None: the shipped one), as the planner does."""
    photos = [("", p) for p in load_corpus(corpus, "train")]
    scenes = [sc for r, recipe in enumerate(block["recipes"])
              for sc in scene_set(photos, recipe, int(block["scenes_per_photo"]), int(block["crop"]),
                                  int(block["seed"]) + 1000 * r, random_crops=True)]
    seen = Perceived(scenes, block["region_proposer"], int(block["max_regions"]), weights, embedder=embedder)
    return [(sc, masks, families_seen(pred, thresholds))
            for sc, masks, pred in zip(scenes, seen.masks, seen.prop, strict=True)]


def refit_entries(table: RuleTable, scenes: list[tuple[Any, np.ndarray, list[dict[str, float]]]],
                  fit_cfg: dict[str, Any], seed: int, min_samples: int, progress: bool = True
                  ) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """The re-fitted entries (a copy of ``table.entries`` with refitted bins replaced) and one report row per
    (family, bin): samples, chosen tool, its mean gain and the stage-1 entry's mean gain on the same samples (dB of
    scene PSNR per step). ``fit_cfg``: stage 1's ``fit`` block (its candidate grid); ``scenes``:
    :func:`perceived_scenes`."""
    entries = {f: [dict(e) for e in rows] for f, rows in table.entries.items()}
    state = [sc.degraded for sc, _, _ in scenes]
    rows: list[dict[str, Any]] = []
    for fam in RESTORE_ORDER:
        cands = candidates(fam, int(fit_cfg["grid"]), int(fit_cfg["random"]), float(fit_cfg["max_cost"]), seed)
        samples = [(i, k, table.bin_of(seen[k][fam])) for i, (_, masks, seen) in enumerate(scenes)
                   for k in range(len(seen)) if fam in seen[k] and masks[k].any()]
        total = np.zeros((table.bins, len(cands)))
        old = np.zeros(table.bins)
        count = np.zeros(table.bins, dtype=int)
        for i, k, b in tqdm(samples, desc=f"refit {fam}", disable=not progress):
            sc, masks, _ = scenes[i]
            before = psnr(state[i], sc.clean)
            total[b] += [psnr(apply(state[i], name, params, mask=masks[k]), sc.clean) - before
                         for name, params in cands]
            e = table.entries[fam][b]
            old[b] += psnr(apply(state[i], e["tool"], e["params"], mask=masks[k]), sc.clean) - before
            count[b] += 1
        for b in range(table.bins):
            row: dict[str, Any] = {"family": fam, "bin": b, "samples": int(count[b]),
                                   "stage1_tool": table.entries[fam][b]["tool"]}
            if count[b] >= min_samples:
                j = int(np.argmax(total[b]))
                name, params = cands[j]
                entries[fam][b] = {"tool": name, "params": {p: round(float(v), 6) for p, v in params.items()},
                                   "gain_db": round(float(total[b, j] / count[b]), 3), "n": int(count[b]),
                                   "candidates": len(cands), "fit": "perceived steps"}
                row.update(tool=name, gain_db=float(total[b, j] / count[b]), stage1_gain_db=float(old[b] / count[b]))
            else:
                row.update(tool=None, gain_db=None, stage1_gain_db=None)  # too few samples: stage 1 kept
            rows.append(row)
        for i, k, b in samples:  # the planner's image after this family, with the re-fitted entries
            e = entries[fam][b]
            state[i] = apply(state[i], e["tool"], e["params"], mask=scenes[i][1][k])
    return entries, rows


if __name__ == "__main__":
    import sys

    print("error: experiments.refit_entries is a library module, not a script; its stage runs inside "
          "experiments.fit_rule_table (a config with a refit block: python -m experiments.fit_rule_table --help)",
          file=sys.stderr)
    raise SystemExit(2)
