"""Perception for search planners: which degradation families a region likely holds.

With ``embedding="learned"`` the learned encoder's own family head gives the probabilities
(:meth:`ir_env.encoder.LearnedEmbedder.predict`). Otherwise a linear probe (standardised logistic
regression per family) on the region embeddings, fitted by
``python -m experiments.probe_embeddings --save`` on the built-in *train* split and shipped as
``ir_env/data/family_probe_<embedding>.json`` (plain numbers; loads offline).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from ir_env.embeddings import make_embedder

DATA_DIR = Path(__file__).resolve().parent.parent / "ir_env" / "data"


def probe_path(embedding: str) -> Path:
    """Where the shipped probe for ``embedding`` lives."""
    return DATA_DIR / f"family_probe_{embedding}.json"


@lru_cache(maxsize=8)
def load_probe(embedding: str) -> dict:
    """The probe's parameters: families, mean, scale, coef (F x D), intercept (F)."""
    p = probe_path(embedding)
    if not p.exists():
        raise FileNotFoundError(
            f"no family probe for embedding {embedding!r} at {p}; create it with "
            f"`python -m experiments.probe_embeddings --embedding {embedding} --save`"
        )
    d = json.loads(p.read_text())
    return {"families": list(d["families"]), "mean": np.asarray(d["mean"], np.float64),
            "scale": np.asarray(d["scale"], np.float64), "coef": np.asarray(d["coef"], np.float64),
            "intercept": np.asarray(d["intercept"], np.float64)}


class Perception:
    """Family probabilities per region from its embedding (the ``perceive`` step of dfs)."""

    def __init__(self, embedding: str = "handcrafted") -> None:
        self.embedder = make_embedder(embedding)
        if hasattr(self.embedder, "predict"):  # an encoder with its own family head needs no probe
            from restorers.spec import FAMILIES

            self.probe = {"families": list(FAMILIES)}
            return
        self.probe = load_probe(embedding)
        if self.probe["coef"].shape[1] != self.embedder.dim:
            raise ValueError(f"family probe for {embedding!r} expects dim {self.probe['coef'].shape[1]}, "
                             f"the embedder gives {self.embedder.dim}: refit it")

    def probabilities(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(K, F) probabilities in [0, 1], F = len(families)."""
        if "coef" not in self.probe:
            return self.embedder.predict(image, masks)["family_prob"]
        emb = np.asarray(self.embedder.embed(image, masks), np.float64)
        z = (emb - self.probe["mean"]) / self.probe["scale"]
        logits = z @ self.probe["coef"].T + self.probe["intercept"]
        return 1.0 / (1.0 + np.exp(-logits))

    def rank(self, image: np.ndarray, masks: np.ndarray) -> list[list[tuple[str, float]]]:
        """Per region, (family, probability) pairs, most likely first."""
        probs = self.probabilities(image, masks)
        fams = self.probe["families"]
        return [sorted(zip(fams, map(float, row), strict=False), key=lambda x: -x[1]) for row in probs]
