"""The Gymnasium environment: restore an image region by region.

State: a set of per-region degradation embeddings. Action: a region, a tool and the tool's continuous
parameters (normalised to [-1, 1]), or STOP. Reward: the (sign-corrected) gain of an image-quality
metric, minus ``step_cost`` times the tool's relative cost.

Observation (a flat ``Dict`` of float32 ``Box`` spaces, no nesting):

- ``regions``  (K, D): the embedding of each region slot (zeros in padded slots),
- ``valid``    (K,):   1 where the slot holds a real region, 0 for padding,
- ``history``  (K, T): how often each tool has been applied to each region this episode,
- ``steps_left`` (1,): steps remaining in the budget.

Native action: ``Dict(region=Discrete(K), tool=Discrete(T + 1), params=Box(-1, 1, (P,)))``; tool index
``T`` is STOP and a tool reads the first ``p`` of the ``P`` parameters. See :mod:`ir_env.wrappers` for
the ``Box`` and ``MultiDiscrete`` encodings that stable-baselines3 needs.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ir_env.corpus import SPLITS, load_corpus, random_crop
from ir_env.embeddings import make_embedder
from ir_env.quality import gain as quality_gain
from ir_env.quality import get_metric
from ir_env.recipes import Scene, synthesize
from ir_env.regions import make_proposer, pad_masks
from restorers import Tool, apply, check_image, fast_tools, get_tool, resolve_params

#: Embedding values are clipped to this bound so the observation space is a finite Box.
EMBED_BOUND = 10.0


class WallSeconds(float):
    """A wall-clock duration in seconds. Two ``WallSeconds`` always compare equal: timings vary from run
    to run and are not part of the env's state, so seeded-determinism checks (Gymnasium's ``check_env``
    compares ``info`` dicts) must not see them. Otherwise it is an ordinary ``float``."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WallSeconds) or float.__eq__(self, other)  # type: ignore[arg-type]

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = float.__hash__


def tool_cost(tool: Tool) -> float:
    """The env's cost of one call of ``tool``: ``1 + log10(relative cost)`` (1 for the cheapest tools,
    about 2.9 for non-local means), so the step penalty grows with run time but stays comparable to dB gains."""
    return 1.0 + float(np.log10(max(1.0, tool.cost)))


@dataclass
class Step:
    """One applied step of an episode (the trace entry). ``params`` are physical values."""

    region: int
    region_area: float
    tool: str
    params: dict[str, float]
    quality_before: float
    quality_after: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``seconds`` as :class:`WallSeconds`)."""
        d = dict(self.__dict__)
        d["seconds"] = WallSeconds(self.seconds)
        return d


@dataclass
class EpisodeState:
    """Everything that changes inside one episode."""

    scene: Scene
    image: np.ndarray
    masks: np.ndarray  # (K, H, W) bool, padded
    valid: np.ndarray  # (K,) bool
    history: np.ndarray  # (K, T) float32
    embeddings: np.ndarray  # (K, D) float32
    quality: float
    quality_start: float
    psnr_start: float | None
    steps: int = 0
    tool_calls: int = 0
    trace: list[Step] = field(default_factory=list)
    last_action: str = "reset"
    ended: bool = False  # STOP or the step budget ended the episode: step() needs a reset() first


#: How the step budget ends an episode (``budget_end``): the -v1 ids terminate, the -v0 ids truncate.
BUDGET_ENDS = ("terminated", "truncated")
#: Largest ``image_size`` (px) the env accepts for its crops.
MAX_IMAGE_SIZE = 4096
#: Smallest side (px) of an image given to ``reset(options={"image": ...})``: the episode's summary scores SSIM.
MIN_EPISODE_SIDE = 11
#: Corpus scenes drawn at most per reset when the reward metric cannot score a degraded crop (a flat one).
SCENE_DRAWS = 16


def _check_episode_side(image: np.ndarray, what: str) -> None:
    """``ValueError`` when ``image`` has a side below :data:`MIN_EPISODE_SIDE` (the episode's summary scores SSIM,
    an 11 px window)."""
    if min(image.shape[:2]) < MIN_EPISODE_SIDE:
        raise ValueError(f"{what} is {image.shape[0]}x{image.shape[1]} px; an episode needs at least "
                         f"{MIN_EPISODE_SIDE} px a side")


def _whole(value: Any, name: str, low: int, high: int | None = None, unit: str = "") -> int:
    """``value`` as an int when it is a whole number in [low, high]; else ``ValueError`` naming ``name``."""
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating)) \
        and np.isfinite(value) and float(value) == int(value) and low <= int(value) <= (high or int(value))
    if not ok:
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be a whole number {span}{' ' + unit if unit else ''}, got {value!r}")
    return int(value)


class SpatialIREnv(gym.Env):
    """Region-wise image restoration as an MDP (see the module docstring for spaces).

    Args:
        recipe: degradation recipe name (``ir_env.list_recipes()``), default ``"spatial-mixed"``.
        corpus: ``"builtin"``, a folder of images, or a list of float32 HxWx3 images in [0, 1].
        split: corpus split (``"train"``, ``"test"`` or ``"all"``) of a named corpus or a folder (a folder's
            test split is every third file by sorted name, the rest is train: pass ``"all"`` to use every image);
            not used with a list of images.
        image_size: side of the square random crop, in px (>= 32).
        max_regions: K, the number of region slots.
        region_proposer: proposer name (``grid``, ``slic``, ``felzenszwalb``, ``degradation-clusters``,
            ``sam``, ``oracle``, ``whole``); ``proposer_kwargs`` go to it.
        embedding: embedder name (``handcrafted``; ``learned`` when available).
        reward_metric: IQA metric for the reward (``psnr``, ``ssim``: full-reference, the clean image is
            known in training; ``niqe``, ``piqe``, ``brisque``, ``npsnr``: no-reference), or ``"none"``: no
            quality is measured at all, the reward is the step cost alone and ``info`` carries no PSNR / SSIM
            figures (for callers that only read observations, e.g. a planner running a trained policy). A
            no-reference metric is undefined on a flat image (a tool at an extreme setting can make one): such a
            step scores the worse of the metric's typical-range end (:data:`ir_env.quality.METRICS`) and the
            score before it, so it never gains (``info["quality_undefined"]`` is True); a corpus scene whose
            degraded image it cannot score is drawn again.
        max_steps: step budget per episode, in applied tools. How reaching it ends the episode: ``budget_end``.
        budget_end: ``"terminated"`` (default; the ``-v1`` ids): reaching ``max_steps`` ends the episode with
            ``terminated=True``, ``truncated`` is always False (a Gymnasium ``TimeLimit`` truncates as usual).
            ``steps_left`` is part of the observation, so a state with no steps left is terminal; nothing more can
            happen there, and stable-baselines3 would otherwise bootstrap the last reward from a value never trained
            on such states. ``"truncated"`` (the ``-v0`` ids, kept for models trained before stop 32): the budget
            ends the episode with ``terminated=False, truncated=True``.
        step_cost: reward penalty per applied tool, scaled by :func:`tool_cost` (in the metric's units,
            e.g. dB): ``reward = gain - step_cost * tool_cost(tool)``.
        tools: tool names to offer (default: ``restorers.fast_tools()``, every registered tool with a
            relative cost <= 100, in registry order; BM3D is left out unless named).
        seed: default seed used by the first ``reset()`` when none is given. Copies made with the same ``seed``
            (``gymnasium.make_vec(..., seed=0)``) play the same scenes: seed a vector env through
            ``reset(seed=s)``, which gives copy ``i`` the seed ``s + i``.
        render_mode: ``"rgb_array"`` or ``None``.
        final_observation: ``False``: the step that ends an episode (STOP or the last budgeted step) does
            not re-embed the regions; the observation it returns repeats the previous embeddings
            (``history`` and ``steps_left`` are current). Saves one encoder pass per episode for callers
            that discard the last observation (planners); keep ``True`` for learning (stable-baselines3
            bootstraps episodes a ``TimeLimit`` truncates from that observation).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(
        self,
        recipe: str = "spatial-mixed",
        corpus: str | Sequence[np.ndarray] = "builtin",
        split: str = "train",
        image_size: int = 128,
        max_regions: int = 8,
        region_proposer: str = "degradation-clusters",
        embedding: str = "handcrafted",
        reward_metric: str = "psnr",
        max_steps: int = 6,
        budget_end: str = "terminated",
        step_cost: float = 0.02,
        tools: Sequence[str] | None = None,
        seed: int | None = None,
        render_mode: str | None = None,
        proposer_kwargs: Mapping[str, Any] | None = None,
        final_observation: bool = True,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        _whole(image_size, "image_size", 32, MAX_IMAGE_SIZE, "px")
        _whole(max_regions, "max_regions", 1)
        _whole(max_steps, "max_steps", 1)
        if budget_end not in BUDGET_ENDS:
            raise ValueError(f"budget_end must be one of {', '.join(map(repr, BUDGET_ENDS))}, got {budget_end!r}")
        if not isinstance(final_observation, (bool, np.bool_)):
            raise ValueError(f"final_observation must be True or False, got {final_observation!r}")
        if isinstance(step_cost, bool) or not isinstance(step_cost, (int, float, np.integer, np.floating)) \
                or not np.isfinite(step_cost) or step_cost < 0:
            raise ValueError(f"step_cost must be a finite number >= 0, got {step_cost!r}")
        if proposer_kwargs is not None and not isinstance(proposer_kwargs, Mapping):
            raise ValueError(f"proposer_kwargs must be a mapping of option -> value, got {proposer_kwargs!r}")
        if isinstance(tools, str):  # one tool name, not its letters
            tools = [tools]
        if tools is not None:
            tools = list(tools)  # a generator is read once
            twice = sorted({str(t) for t in tools if tools.count(t) > 1})
            if twice:  # two actions with one meaning and twin history columns
                raise ValueError(f"tools lists {', '.join(twice)} more than once; give each tool once")
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):  # checked here, not 8 frames deep in the first reset()
            raise ValueError(f"seed must be a whole number >= 0 or None, got {seed!r}")
        if split not in SPLITS:  # also with an in-memory corpus, where it is not used: a typo is still a typo
            raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        self.recipe = recipe
        synthesize(np.zeros((32, 32, 3), np.float32), recipe=recipe, seed=0)  # fail early on a bad recipe
        if isinstance(corpus, (str, os.PathLike)):
            self.images = load_corpus(str(corpus), split=split)
            self.corpus_name = str(corpus)
            small = [im.shape[:2] for im in self.images if min(im.shape[:2]) < int(image_size)]
            if small:  # their crops are bicubic blow-ups used as clean references: say so
                warnings.warn(f"{len(small)} of the {len(self.images)} corpus photos ({corpus}, split {split}) are "
                              f"smaller than image_size {int(image_size)} px (e.g. {small[0][0]}x{small[0][1]}): "
                              "their crops are upscaled (bicubic), so those clean references are soft",
                              UserWarning, stacklevel=2)
        elif not isinstance(corpus, Iterable) or isinstance(corpus, bytes):
            raise ValueError(f"corpus must be a named corpus, a folder path or a list of float32 HxWx3 images, got "
                             f"{type(corpus).__name__}")
        else:
            self.images = [check_image(im, name=f"corpus image {i}") for i, im in enumerate(corpus)]
            self.corpus_name = "custom"
        if not self.images:
            raise ValueError("the corpus holds no images")
        self.image_size = int(image_size)
        self.max_regions = int(max_regions)
        self.max_steps = int(max_steps)
        self.budget_end = str(budget_end)
        self.step_cost = float(step_cost)
        self.render_mode = render_mode
        self.tools: list[Tool] = [get_tool(n) for n in tools] if tools is not None else fast_tools()
        if not self.tools:
            raise ValueError("no tools: pass at least one tool name")
        self.proposer = make_proposer(region_proposer, max_regions=self.max_regions, **dict(proposer_kwargs or {}))
        self.region_proposer = region_proposer
        self.embedder = make_embedder(embedding)
        self.embedding = embedding
        self.metric = None if reward_metric == "none" else get_metric(reward_metric)
        self.reward_metric = reward_metric
        self.final_observation = bool(final_observation)
        self._psnr = get_metric("psnr")
        self._ssim = get_metric("ssim")
        self._default_seed = None if seed is None else int(seed)

        k, t, d = self.max_regions, len(self.tools), int(self.embedder.dim)
        self.num_tools = t
        self.stop_index = t
        self.num_params = max(len(tool.params) for tool in self.tools)
        self.observation_space = spaces.Dict(
            {
                "regions": spaces.Box(-EMBED_BOUND, EMBED_BOUND, (k, d), np.float32),
                "valid": spaces.Box(0.0, 1.0, (k,), np.float32),
                "history": spaces.Box(0.0, float(self.max_steps), (k, t), np.float32),
                "steps_left": spaces.Box(0.0, float(self.max_steps), (1,), np.float32),
            }
        )
        self.action_space = spaces.Dict(
            {
                "region": spaces.Discrete(k),
                "tool": spaces.Discrete(t + 1),
                "params": spaces.Box(-1.0, 1.0, (self.num_params,), np.float32),
            }
        )
        self.state: EpisodeState | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def tool_names(self) -> list[str]:
        """Names of the offered tools, in action-index order (STOP is index ``len(tool_names)``)."""
        return [t.name for t in self.tools]

    def _embed(self, image: np.ndarray, masks: np.ndarray, valid: np.ndarray) -> np.ndarray:
        out = np.zeros((self.max_regions, int(self.embedder.dim)), np.float32)
        idx = np.flatnonzero(valid)
        if idx.size:
            emb = np.asarray(self.embedder.embed(image, masks[idx]), dtype=np.float32)
            out[idx] = np.clip(np.nan_to_num(emb, nan=0.0, posinf=EMBED_BOUND, neginf=-EMBED_BOUND),
                               -EMBED_BOUND, EMBED_BOUND)
        return out

    def _quality(self, image: np.ndarray, clean: np.ndarray) -> float:
        if self.metric is None:  # reward_metric="none"
            return float("nan")
        try:
            return float(self.metric.score(image, reference=clean if self.metric.info.needs_reference else None))
        except ValueError as exc:  # undefined on this image (PIQE on a black output): say where it came from
            raise ValueError(f"reward metric {self.metric.name!r}: {exc}") from None

    def _step_quality(self, image: np.ndarray, clean: np.ndarray, before: float) -> tuple[float, bool]:
        """(score of a step's output, undefined?): a score the metric cannot give (a no-reference metric on a
        flat image) is the worse of its typical range's end and ``before``, so that step never gains."""
        try:
            return self._quality(image, clean), False
        except ValueError:
            if self.metric is None or self.metric.info.needs_reference:
                raise
            info = self.metric.info
            worst = min(info.range[0], before) if info.higher_better else max(info.range[1], before)
            return float(worst), True

    def _obs(self) -> dict[str, np.ndarray]:
        s = self._require_state()
        return {
            "regions": s.embeddings.copy(),
            "valid": s.valid.astype(np.float32),
            "history": s.history.copy(),
            "steps_left": np.array([self.max_steps - s.steps], dtype=np.float32),
        }

    def _require_state(self) -> EpisodeState:
        if self.state is None:
            raise RuntimeError("call reset() before step()/render()")
        return self.state

    def action_masks(self) -> np.ndarray:
        """Valid (region, tool) pairs as a flat bool vector of length K*T + 1 (STOP last, always valid).

        Index ``k * T + t`` is tool ``t`` on region ``k``; padded regions are masked out.
        """
        s = self._require_state()
        mask = np.repeat(s.valid, self.num_tools)
        return np.concatenate([mask, [True]]).astype(bool)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode: crop a corpus photo, synthesise a scene, propose regions, embed them.

        ``options`` may hold ``"scene"`` (a ready :class:`~ir_env.recipes.Scene`) or ``"image"``
        (a clean float32 HxWx3 image used instead of a corpus crop, at its own size).
        """
        if seed is None and self._default_seed is not None and self.state is None:
            seed = self._default_seed
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"scene", "image"})
        if unknown:  # a typo would otherwise silently give a random corpus scene
            raise ValueError(f"unknown reset option(s) {unknown}; known: 'scene', 'image'")
        if "scene" in options and "image" in options:
            raise ValueError("reset options 'scene' and 'image' exclude each other: pass one")
        rng = self.np_random
        if "scene" in options:
            scene = options["scene"]
            if not isinstance(scene, Scene):
                raise ValueError("options['scene'] must be an ir_env.Scene")
            _check_episode_side(scene.degraded, "options['scene'].degraded")
            q0 = self._given_quality(scene, "options['scene']")
        elif "image" in options:
            clean = check_image(options["image"], name="options['image']")
            _check_episode_side(clean, "options['image']")
            scene = synthesize(clean, recipe=self.recipe, seed=int(rng.integers(2**31 - 1)))
            q0 = self._given_quality(scene, "options['image']")
        else:
            for attempt in range(SCENE_DRAWS):
                photo = self.images[int(rng.integers(len(self.images)))]
                clean = random_crop(photo, self.image_size, rng)
                scene = synthesize(clean, recipe=self.recipe, seed=int(rng.integers(2**31 - 1)))
                try:
                    q0 = self._quality(scene.degraded, scene.clean)
                    break
                except ValueError as exc:  # a no-reference metric on a flat degraded crop: draw another scene
                    if attempt == SCENE_DRAWS - 1:
                        raise ValueError(f"{exc}; {SCENE_DRAWS} scenes drawn in a row could not be scored: the "
                                         "corpus photos are too flat at this image_size for this metric") from None
        raw = np.asarray(self.proposer.propose(scene.degraded, scene=scene), dtype=bool)
        masks, valid = pad_masks(raw, self.max_regions)
        image = scene.degraded.copy()
        psnr0 = None if self.metric is None else float(self._psnr.score(image, reference=scene.clean))
        self.state = EpisodeState(
            scene=scene, image=image, masks=masks, valid=valid,
            history=np.zeros((self.max_regions, self.num_tools), np.float32),
            embeddings=self._embed(image, masks, valid), quality=q0, quality_start=q0, psnr_start=psnr0,
        )
        info = {"psnr": psnr0, "quality": q0, "num_regions": int(valid.sum()), "recipe": scene.recipe}
        if self.metric is None:
            del info["psnr"], info["quality"]
        return self._obs(), info

    def _given_quality(self, scene: Scene, what: str) -> float:
        """The reward metric's score of a caller's scene; ``ValueError`` naming ``what`` when it is undefined."""
        try:
            return self._quality(scene.degraded, scene.clean)
        except ValueError as exc:
            raise ValueError(f"{exc}: the degraded image of {what} cannot be scored, so no step could be rewarded; "
                             "use another image or a full-reference reward_metric (psnr)") from None

    def decode_action(self, action: Mapping[str, Any]) -> tuple[int, int, np.ndarray]:
        """Validate a native action; returns (region, tool index, params). Raises ``ValueError``."""
        if not isinstance(action, Mapping):
            raise ValueError(f"action must be a dict with keys region, tool, params; got {type(action).__name__}")
        missing = {"region", "tool", "params"} - set(action)
        if missing:
            raise ValueError(f"action is missing key(s) {sorted(missing)}")
        extra = sorted(map(str, set(action) - {"region", "tool", "params"}))
        if extra:  # e.g. a 'stop' flag: STOP is tool index num_tools, an ignored key would run the tool
            raise ValueError(f"action has unknown key(s) {extra}; an action is region, tool, params "
                             f"(STOP: tool={self.num_tools})")
        raw = (action["region"], action["tool"])
        try:  # whole numbers only: 1.7, True or '1' is not an index (int() would truncate or parse it silently)
            if any(isinstance(v, (bool, np.bool_, str, bytes)) or np.ndim(v) != 0 or float(v) != int(v)
                   for v in raw):
                raise ValueError
            region, tool = int(raw[0]), int(raw[1])
        except (TypeError, ValueError):
            raise ValueError(
                f"action region/tool must be integers, got {action['region']!r}, {action['tool']!r}"
            ) from None
        try:
            params = np.asarray(action["params"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"action params must be {self.num_params} numbers in [-1, 1], "
                             f"got {action['params']!r}") from None
        shape = params.shape
        params = params.reshape(-1) if params.ndim == 0 or (params.ndim == 2 and shape[0] == 1) else params
        if not 0 <= region < self.max_regions:
            raise ValueError(f"action region {region} outside [0, {self.max_regions - 1}]")
        if not 0 <= tool <= self.num_tools:
            raise ValueError(f"action tool {tool} outside [0, {self.num_tools}] ({self.num_tools} = STOP)")
        if params.shape != (self.num_params,):
            raise ValueError(f"action params must have shape ({self.num_params},), got {shape}")
        if not np.all(np.isfinite(params)):
            raise ValueError(f"action params contain NaN or inf: {params.tolist()}")
        if np.any(np.abs(params) > 1.0 + 1e-6):
            raise ValueError(f"action params must lie in [-1, 1], got {np.round(params, 4).tolist()}")
        return region, tool, np.clip(params, -1.0, 1.0)

    def step(self, action: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one action. Returns ``(obs, reward, terminated, truncated, info)``.

        ``info``: ``tool``, ``region``, ``params`` (physical), ``tool_seconds``, ``rewards`` (the reward
        terms), ``tool_calls`` and ``steps`` so far, and (unless ``reward_metric="none"``) ``psnr``, the episode's
        ``psnr_gain`` and ``quality_gain`` so far (dB for PSNR) and ``is_success`` (PSNR improved so far): every
        step carries them, so ``Monitor(info_keywords=...)`` also works when a ``TimeLimit`` ends the episode. The
        step that ends it (STOP or ``max_steps``, see ``budget_end``) adds :meth:`episode_summary`: ``psnr_in`` /
        ``psnr_out``, ``ssim_in`` / ``ssim_out`` / ``ssim`` and ``trace``.
        """
        s = self._require_state()
        if s.ended:  # stepping on would undo STOP and run past max_steps, outside the observation space
            raise RuntimeError("the episode has ended (STOP or max_steps): call reset() before step()")
        region, tool_idx, theta = self.decode_action(action)
        info: dict[str, Any] = {"region": region, "tool": "STOP", "params": {}, "tool_seconds": WallSeconds(0.0)}
        terminated = False
        if tool_idx == self.stop_index:
            terminated = True
            rewards = {"quality_gain": 0.0, "step_cost": 0.0}
            s.last_action = "STOP"
        else:
            tool = self.tools[tool_idx]
            phys = resolve_params(tool, theta)
            info.update(tool=tool.name, params=phys)
            cost = -self.step_cost * tool_cost(tool)
            if not s.valid[region]:
                s.steps += 1
                rewards = {"quality_gain": 0.0, "step_cost": cost}
                s.last_action = f"{tool.name} on padded region {region}: no-op"
            else:
                t0 = time.perf_counter()
                new = apply(s.image, tool, phys, mask=s.masks[region])
                dt = time.perf_counter() - t0
                q, undefined = self._step_quality(new, s.scene.clean, s.quality)
                if undefined:
                    info["quality_undefined"] = True
                s.steps += 1  # the state changes only once the step has been run and scored
                s.tool_calls += 1
                g = 0.0 if self.metric is None else float(quality_gain(self.reward_metric, s.quality, q))
                s.trace.append(Step(region, float(s.masks[region].mean()), tool.name, phys, s.quality,
                                    float("nan") if undefined else q, dt))  # a stand-in score is not a measurement
                s.image, s.quality = new, q
                s.history[region, tool_idx] += 1.0
                if self.final_observation or s.steps < self.max_steps:
                    s.embeddings = self._embed(new, s.masks, s.valid)
                rewards = {"quality_gain": g, "step_cost": cost}
                info["tool_seconds"] = WallSeconds(dt)
                s.last_action = f"r{region}: {tool.name}({tool.format_params(phys)})" + (
                    "" if self.metric is None else f" {g:+.2f}")
        spent = not terminated and s.steps >= self.max_steps
        terminated = terminated or (spent and self.budget_end == "terminated")  # no steps left: terminal (observed)
        truncated = spent and self.budget_end == "truncated"  # the -v0 dynamics
        s.ended = terminated or truncated
        reward = float(sum(rewards.values()))
        info["rewards"] = rewards
        info.update(tool_calls=s.tool_calls, steps=s.steps)
        if self.metric is not None:
            same = self.reward_metric == "psnr"  # the reward already scored PSNR: do not score twice
            info["psnr"] = s.quality if same else float(self._psnr.score(s.image, reference=s.scene.clean))
            start = s.psnr_start or 0.0
            info.update(psnr_gain=info["psnr"] - start, is_success=bool(info["psnr"] > start + 1e-6),
                        quality_gain=float(quality_gain(self.reward_metric, s.quality_start, s.quality)))
        if s.ended:
            info.update(self.episode_summary())
        return self._obs(), reward, terminated, truncated, info

    def episode_summary(self) -> dict[str, Any]:
        """End-of-episode figures: PSNR/SSIM before and after, gains, success flag, trace (with
        ``reward_metric="none"`` only ``tool_calls``, ``steps`` and ``trace``: nothing is measured)."""
        s = self._require_state()
        if self.metric is None:
            return {"tool_calls": s.tool_calls, "steps": s.steps, "trace": [st.as_dict() for st in s.trace]}
        psnr_end = float(self._psnr.score(s.image, reference=s.scene.clean))
        ssim_end = float(self._ssim.score(s.image, reference=s.scene.clean))
        ssim_start = float(self._ssim.score(s.scene.degraded, reference=s.scene.clean))
        return {
            "psnr_in": s.psnr_start, "psnr_out": psnr_end, "psnr_gain": psnr_end - (s.psnr_start or 0.0),
            "ssim_in": ssim_start, "ssim_out": ssim_end, "ssim": ssim_end,
            "quality_gain": float(quality_gain(self.reward_metric, s.quality_start, s.quality)),
            "is_success": bool(psnr_end > (s.psnr_start or 0.0) + 1e-6),
            "tool_calls": s.tool_calls, "steps": s.steps,
            "trace": [st.as_dict() for st in s.trace],
        }

    @property
    def current_image(self) -> np.ndarray:
        """The image as restored so far (float32 HxWx3 in [0, 1])."""
        return self._require_state().image.copy()

    def render(self) -> np.ndarray | None:
        """RGB uint8 array: the current image (upscaled to >= 256 px) with region outlines, region
        numbers and the last action written on it."""
        if self.render_mode is None:
            return None
        from ir_env.visualize import render_state

        s = self._require_state()
        return render_state(s.image, s.masks[s.valid], s.last_action, s.steps, self.max_steps)
