"""Tool and parameter specifications: declared ranges and exact normalisation to [-1, 1]."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: The six degradation families a tool can target.
FAMILIES: tuple[str, ...] = ("noise", "blur", "jpeg", "haze", "rain", "dark")


@dataclass(frozen=True)
class ParamSpec:
    """One continuous tool parameter.

    ``low``/``high`` are the physical bounds (in ``unit``); ``log`` means the [-1, 1] normalisation is
    linear in log(value) (both bounds must then be > 0); ``default`` lies inside the bounds. ``integer``: the
    tool rounds the value to a whole number (iterations, a window radius, a JPEG quality); the normalised
    parameter stays continuous for the policies, its physical value (:meth:`to_physical`, :meth:`Tool.validate`)
    is that whole number.
    """

    name: str
    low: float
    high: float
    default: float
    unit: str = ""
    log: bool = False
    description: str = ""
    integer: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"parameter {self.name!r}: low ({self.low}) must be < high ({self.high})")
        if not self.low <= self.default <= self.high:
            raise ValueError(f"parameter {self.name!r}: default {self.default} outside [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"parameter {self.name!r}: log scale needs low > 0")

    def to_physical(self, theta: float) -> float:
        """Map a normalised value in [-1, 1] to the physical range (clipped to [-1, 1] first); an ``integer``
        parameter comes out as the whole number the tool uses (:meth:`whole`)."""
        t = (min(1.0, max(-1.0, float(theta))) + 1.0) / 2.0
        if t <= 0.0 or t >= 1.0:  # the range's ends exactly (exp(log(x)) is not always x)
            return float(self.low if t <= 0.0 else self.high)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return self.whole(min(self.high, max(self.low, math.exp(lo + t * (hi - lo)))))
        return self.whole(min(self.high, max(self.low, self.low + t * (self.high - self.low))))

    def whole(self, value: float) -> float:
        """``value`` as a float; for an ``integer`` parameter rounded as the tools round it (Python's ``round``), so
        recorded parameters (traces, ``info["params"]``, datasets) are the values the tool ran with."""
        return float(round(value)) if self.integer else float(value)

    def to_normalised(self, value: float) -> float:
        """Map a physical value inside [low, high] to [-1, 1] (inverse of :meth:`to_physical`)."""
        v = float(value)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            t = (math.log(v) - lo) / (hi - lo)
        else:
            t = (v - self.low) / (self.high - self.low)
        return float(2.0 * t - 1.0)

    def format(self, value: float) -> str:
        """``value`` as the tool uses it, for people: the whole number an ``integer`` parameter is rounded to
        (Python's ``round``, as the tools do), else 3 significant digits."""
        return str(int(round(float(value)))) if self.integer else f"{float(value):.3g}"

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly description of the parameter."""
        return {
            "name": self.name,
            "low": self.low,
            "high": self.high,
            "default": self.default,
            "unit": self.unit,
            "log": self.log,
            "integer": self.integer,
            "description": self.description,
        }


ToolFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Tool:
    """A restoration tool: a pure function ``fn(image, **params) -> image``.

    ``image`` is float32 HxWx3 RGB in [0, 1]; ``params`` are physical values named as in ``params``.
    ``family`` is one of :data:`FAMILIES`; ``targets`` lists the degradation kinds it is meant for
    (e.g. ``("motion",)``); ``cost`` is a relative cost (1.0 = a cheap filter) used by the step cost.
    """

    name: str
    family: str
    params: tuple[ParamSpec, ...]
    fn: ToolFn
    cost: float = 1.0
    targets: tuple[str, ...] = ()
    description: str = ""
    margin: int = 16
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a tool's name must be a non-empty string, got {self.name!r}")
        if not callable(self.fn):
            raise ValueError(f"tool {self.name!r}: fn must be callable, got {type(self.fn).__name__}")
        if self.family not in FAMILIES:
            raise ValueError(f"tool {self.name!r}: family {self.family!r} not one of {FAMILIES}")
        if not 1 <= len(self.params) <= 3:
            raise ValueError(f"tool {self.name!r}: needs 1-3 continuous parameters, got {len(self.params)}")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"tool {self.name!r}: parameter names must differ, got {names}")
        if not (isinstance(self.cost, (int, float)) and math.isfinite(self.cost) and self.cost > 0):
            raise ValueError(f"tool {self.name!r}: cost must be a finite number > 0, got {self.cost!r}")
        if not isinstance(self.margin, int) or isinstance(self.margin, bool) or self.margin < 0:
            raise ValueError(f"tool {self.name!r}: margin must be an integer >= 0 (px), got {self.margin!r}")

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the parameters, in order."""
        return tuple(p.name for p in self.params)

    def defaults(self) -> dict[str, float]:
        """Default physical parameter values."""
        return {p.name: p.default for p in self.params}

    def format_params(self, values: Mapping[str, float]) -> str:
        """``"name=value, ..."`` for people (a log line, a trace table): whole numbers for the parameters the
        tool rounds (:meth:`ParamSpec.format`); names this tool does not have are shown as given."""
        specs = {p.name: p for p in self.params}
        return ", ".join(f"{k}={specs[k].format(v)}" if k in specs else f"{k}={float(v):.3g}"
                         for k, v in values.items())

    def to_physical(self, theta: Sequence[float] | np.ndarray) -> dict[str, float]:
        """Normalised parameters in [-1, 1] (first ``len(params)`` entries are read) -> physical dict. Values
        outside [-1, 1] are clipped to it (as :meth:`ParamSpec.to_physical`); ``restorers.apply`` refuses them
        instead, naming the parameter."""
        arr = np.asarray(theta, dtype=np.float64).ravel()
        if arr.size < len(self.params):
            raise ValueError(
                f"tool {self.name!r} needs {len(self.params)} normalised parameters, got {arr.size}"
            )
        if not np.all(np.isfinite(arr[: len(self.params)])):
            raise ValueError(f"tool {self.name!r}: normalised parameters contain NaN or inf: {arr.tolist()}")
        return {p.name: p.to_physical(v) for p, v in zip(self.params, arr, strict=False)}

    def to_normalised(self, values: Mapping[str, float]) -> np.ndarray:
        """Physical parameter dict -> float64 array in [-1, 1] (validated first)."""
        phys = self.validate(values)
        return np.array([p.to_normalised(phys[p.name]) for p in self.params], dtype=np.float64)

    def validate(self, values: Mapping[str, float]) -> dict[str, float]:
        """Check a physical parameter dict: known names, finite values inside the declared ranges.

        Missing names take their default. Raises ``ValueError`` naming the offending parameter.
        """
        unknown = set(values) - set(self.param_names)
        if unknown:
            raise ValueError(
                f"tool {self.name!r}: unknown parameter(s) {sorted(unknown)}; expected {list(self.param_names)}"
            )
        out: dict[str, float] = {}
        for p in self.params:
            raw = values.get(p.name, p.default)
            try:
                if raw is None or isinstance(raw, (bool, np.bool_, str, bytes)):
                    raise TypeError
                v = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"tool {self.name!r}: parameter {p.name!r} must be a number, got {raw!r}") from None
            if not math.isfinite(v):
                raise ValueError(f"tool {self.name!r}: parameter {p.name!r} is {v}")
            tol = 1e-9 * max(1.0, abs(p.high), abs(p.low))
            if v < p.low - tol or v > p.high + tol:
                raise ValueError(
                    f"tool {self.name!r}: parameter {p.name!r}={v} outside its range "
                    f"[{p.low}, {p.high}] {p.unit}".rstrip()
                )
            out[p.name] = p.whole(min(p.high, max(p.low, v)))
        return out

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly description of the tool."""
        return {
            "name": self.name,
            "family": self.family,
            "targets": list(self.targets),
            "cost": self.cost,
            "description": self.description,
            "params": [p.as_dict() for p in self.params],
        }
