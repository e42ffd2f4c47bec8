"""spatial-ir's environment package: degradations, corpus, regions, embeddings, IQA and the Gymnasium env.

Importing it registers the environments (idempotent): ``SpatialIR-v1``, ``GlobalIR-v1`` (one region =
the whole image) and ``SpatialIR-Lite-v1`` (a cheap preset: 64 px, 4 grid regions, PSNR reward, for tests
and smoke training). In ``SubprocVecEnv`` children started by forkserver/spawn use the module-qualified
id ``"ir_env:SpatialIR-v1"`` so Gymnasium imports this package (and registers) inside the child.

Versions: ``-v1`` (since stop 32) ends an episode whose step budget is spent with ``terminated=True``; ``-v0``
ends it with ``truncated=True`` (``budget_end="truncated"``), the dynamics the models shipped before stop 32
were trained on. Everything else is the same.
"""

from __future__ import annotations

from typing import Any

import gymnasium

from ir_env.corpus import load_corpus, load_named_corpus
from ir_env.degradations import FAMILY_OF_KIND, KINDS, apply_kind, degrade
from ir_env.recipes import RECIPES, Scene, list_recipes, synthesize

_GLOBAL = {"region_proposer": "whole", "max_regions": 1}
_LITE = {"image_size": 64, "max_regions": 4, "region_proposer": "grid", "reward_metric": "psnr", "max_steps": 4}
_V0 = {"budget_end": "truncated"}  # v0 -> v1: a spent step budget is terminal, not truncated
#: id -> default kwargs (entry point :data:`ENTRY_POINT`). Bump the suffix when dynamics or reward change.
ENV_SPECS: dict[str, dict[str, Any]] = {
    "SpatialIR-v1": {},
    "GlobalIR-v1": dict(_GLOBAL),
    "SpatialIR-Lite-v1": dict(_LITE),
    "SpatialIR-v0": dict(_V0),
    "GlobalIR-v0": {**_GLOBAL, **_V0},
    "SpatialIR-Lite-v0": {**_LITE, **_V0},
}
#: The current id of each env family (what configs and examples should name).
LATEST_ENV_IDS = ("SpatialIR-v1", "GlobalIR-v1", "SpatialIR-Lite-v1")
ENTRY_POINT = "ir_env.env:SpatialIREnv"


def latest_env_id(env_id: str) -> str:
    """The current id of ``env_id``'s family: ``"SpatialIR-v0"`` or ``"SpatialIR"`` -> ``"SpatialIR-v1"``; a module
    prefix is kept (``"ir_env:GlobalIR-v0"`` -> ``"ir_env:GlobalIR-v1"``). ``ValueError`` for an id this package does
    not register. An older id's dynamics are the latest id's with that id's kwargs (:data:`ENV_SPECS`), so
    ``gym.make(latest_env_id(i), **ENV_SPECS[i])`` builds the same env as ``gym.make(i)``, without Gymnasium's
    out-of-date warning."""
    prefix, _, name = str(env_id).rpartition(":")
    family = name.rsplit("-v", 1)[0] if name in ENV_SPECS else name
    latest = next((i for i in LATEST_ENV_IDS if i.rsplit("-v", 1)[0] == family), None)
    if latest is None:
        raise ValueError(f"unknown env id {env_id!r}; known: {', '.join(ENV_SPECS)}")
    return f"{prefix}:{latest}" if prefix else latest


def register_envs() -> None:
    """Register every id in :data:`ENV_SPECS` with Gymnasium; calling it again does nothing."""
    for env_id, kwargs in ENV_SPECS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=ENTRY_POINT, kwargs=dict(kwargs))


register_envs()

__all__ = [
    "ENV_SPECS", "FAMILY_OF_KIND", "KINDS", "LATEST_ENV_IDS", "RECIPES", "Scene", "apply_kind", "degrade",
    "latest_env_id", "list_recipes", "load_corpus", "load_named_corpus", "register_envs", "synthesize",
]
