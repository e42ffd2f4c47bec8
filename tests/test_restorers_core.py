"""The toolbox core: parameter specs, normalisation, registry, plugins, region application."""

from __future__ import annotations

import math

import numpy as np
import pytest

import restorers
from restorers import ParamSpec, Tool, apply, get_tool, list_tools, register_tool
from restorers import registry as reg


def _identity(image: np.ndarray, strength: float = 1.0) -> np.ndarray:
    return image


def _brighten(image: np.ndarray, amount: float = 0.1) -> np.ndarray:
    return np.clip(image + amount, 0, 1)


@pytest.mark.parametrize("log", [False, True])
def test_param_normalisation_round_trip(log: bool) -> None:
    p = ParamSpec("s", 0.5, 40.0, 3.0, unit="px", log=log)
    assert p.to_physical(-1.0) == pytest.approx(0.5, abs=0)
    assert p.to_physical(1.0) == pytest.approx(40.0, rel=1e-12)
    for v in np.linspace(0.5, 40.0, 37):
        assert p.to_physical(p.to_normalised(v)) == pytest.approx(v, rel=1e-12)
    for t in np.linspace(-1, 1, 41):
        assert p.to_normalised(p.to_physical(t)) == pytest.approx(t, abs=1e-12)
    mid = p.to_physical(0.0)
    assert mid == pytest.approx(math.sqrt(0.5 * 40) if log else 20.25)


def test_param_spec_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="low"):
        ParamSpec("x", 2.0, 1.0, 1.5)
    with pytest.raises(ValueError, match="default"):
        ParamSpec("x", 0.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="log"):
        ParamSpec("x", 0.0, 1.0, 0.5, log=True)


def test_tool_validate_names_the_problem() -> None:
    t = Tool("t_test", "noise", (ParamSpec("strength", 0.0, 2.0, 1.0),), _identity)
    assert t.validate({}) == {"strength": 1.0}
    with pytest.raises(ValueError, match="strength.*outside"):
        t.validate({"strength": 3.0})
    with pytest.raises(ValueError, match="unknown parameter"):
        t.validate({"sigma": 1.0})
    with pytest.raises(ValueError, match="nan"):
        t.validate({"strength": float("nan")})
    with pytest.raises(ValueError, match="family"):
        Tool("bad", "colour", (ParamSpec("a", 0, 1, 0.5),), _identity)
    with pytest.raises(ValueError, match="1-3"):
        Tool("bad", "noise", (), _identity)


def test_registry_lists_tools_in_six_families() -> None:
    tools = list_tools()
    assert len(tools) >= 14
    assert {t.family for t in tools} == set(restorers.FAMILIES)
    names = [t.name for t in tools]
    assert len(names) == len(set(names))
    assert get_tool(names[0]) is tools[0]


def test_unknown_tool_error_suggests() -> None:
    name = list_tools()[0].name
    with pytest.raises(ValueError, match="unknown tool"):
        get_tool(name + "x")


def test_entry_point_plugin_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = Tool("plugin_brighten", "dark", (ParamSpec("amount", 0.0, 0.5, 0.1),), _brighten)

    class FakeEP:
        name = "brighten"

        def load(self):  # noqa: ANN202
            return lambda: [plugin]

    builtins = list_tools()
    monkeypatch.setattr(reg, "_REGISTRY", {t.name: t for t in builtins})
    monkeypatch.setattr(reg, "_LOADED", False)
    monkeypatch.setattr(reg, "entry_points", lambda group: [FakeEP()] if group == reg.ENTRY_POINT_GROUP else [])
    assert get_tool("plugin_brighten") is plugin
    out = apply(np.full((16, 16, 3), 0.2, np.float32), "plugin_brighten", {"amount": 0.3})
    assert np.allclose(out, 0.5)


def test_register_duplicate_name_refused() -> None:
    t = list_tools()[0]
    clone = Tool(t.name, t.family, t.params, _identity)
    with pytest.raises(ValueError, match="already registered"):
        register_tool(clone)


def test_apply_masked_region_leaves_far_pixels_untouched(photo: np.ndarray) -> None:
    t = Tool("t_bright", "dark", (ParamSpec("amount", 0.0, 0.5, 0.2),), _brighten)
    mask = np.zeros(photo.shape[:2], bool)
    mask[40:72, 40:72] = True
    out = apply(photo * 0.5, t, {"amount": 0.2}, mask=mask)
    far = np.ones_like(mask)
    far[40 - 12 : 72 + 12, 40 - 12 : 72 + 12] = False
    assert np.array_equal(out[far], (photo * 0.5)[far])
    inner = np.zeros_like(mask)
    inner[50:62, 50:62] = True
    assert np.allclose(out[inner], (photo * 0.5)[inner] + 0.2, atol=1e-5)


def test_apply_normalised_equals_physical(photo: np.ndarray) -> None:
    t = Tool("t_bright2", "dark", (ParamSpec("amount", 0.0, 0.5, 0.2),), _brighten)
    a = apply(photo * 0.5, t, np.array([0.0]))
    b = apply(photo * 0.5, t, {"amount": 0.25})
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        apply(photo, t, np.array([1.5]))
    with pytest.raises(ValueError, match="NaN"):
        apply(photo, t, np.array([np.nan]))


def test_apply_empty_mask_is_unchanged_copy(photo: np.ndarray) -> None:
    out = apply(photo, list_tools()[0], None, mask=np.zeros(photo.shape[:2], bool))
    assert np.array_equal(out, photo) and out is not photo


@pytest.mark.parametrize(
    "bad, msg",
    [
        (np.zeros((32, 32), np.float32), "HxWx3"),
        (np.zeros((32, 32, 4), np.float32), "RGBA"),
        (np.zeros((32, 32, 3), np.uint8), "dtype uint8"),
        (np.full((32, 32, 3), np.nan, np.float32), "NaN"),
        (np.full((32, 32, 3), 2.0, np.float32), r"\[0, 1\]"),
        ([[0.0]], "numpy array"),
    ],
)
def test_bad_images_rejected(bad: object, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        apply(bad, list_tools()[0])  # type: ignore[arg-type]


def test_bad_mask_rejected(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="mask must have shape"):
        apply(photo, list_tools()[0], None, mask=np.ones((10, 10), bool))
