"""spatial-ir's environment package: degradations, corpus, regions, embeddings, IQA and the Gymnasium env.

Importing it registers the environments (idempotent): ``SpatialIR-v0``, ``GlobalIR-v0`` (one region =
the whole image) and ``SpatialIR-Lite-v0`` (a cheap preset: 64 px, 4 grid regions, PSNR reward, for tests
and smoke training). In ``SubprocVecEnv`` children started by forkserver/spawn use the module-qualified
id ``"ir_env:SpatialIR-v0"`` so Gymnasium imports this package (and registers) inside the child.
"""

from __future__ import annotations

from typing import Any

import gymnasium

from ir_env.corpus import load_corpus, load_named_corpus
from ir_env.degradations import FAMILY_OF_KIND, KINDS, apply_kind, degrade
from ir_env.recipes import RECIPES, Scene, list_recipes, synthesize

#: id -> (entry point, default kwargs). Bump the suffix when dynamics or reward change.
ENV_SPECS: dict[str, dict[str, Any]] = {
    "SpatialIR-v0": {},
    "GlobalIR-v0": {"region_proposer": "whole", "max_regions": 1},
    "SpatialIR-Lite-v0": {"image_size": 64, "max_regions": 4, "region_proposer": "grid",
                          "reward_metric": "psnr", "max_steps": 4},
}
ENTRY_POINT = "ir_env.env:SpatialIREnv"


def register_envs() -> None:
    """Register every id in :data:`ENV_SPECS` with Gymnasium; calling it again does nothing."""
    for env_id, kwargs in ENV_SPECS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=ENTRY_POINT, kwargs=dict(kwargs))


register_envs()

__all__ = [
    "ENV_SPECS", "FAMILY_OF_KIND", "KINDS", "RECIPES", "Scene", "apply_kind", "degrade", "list_recipes",
    "load_corpus", "load_named_corpus", "register_envs", "synthesize",
]
