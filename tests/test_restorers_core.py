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
        (np.zeros((32, 32, 1), np.float32), r"one channel: np.repeat"),
        (np.ma.masked_array(np.zeros((32, 32, 3), np.float32), mask=True), "masked array: fill the masked pixels"),
        (np.zeros((32, 32, 3), np.uint8), "dtype uint8"),
        (np.full((32, 32, 3), np.nan, np.float32), "NaN"),
        (np.full((32, 32, 3), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((32, 32, 3), 1e39), r"values must lie in \[0, 1\], got range \[1e\+39"),  # finite, beyond float32
        ([[0.0]], "numpy array"),
    ],
)
def test_bad_images_rejected(bad: object, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        apply(bad, list_tools()[0])  # type: ignore[arg-type]


def test_memmap_input_gives_a_plain_array(photo: np.ndarray, tmp_path) -> None:  # noqa: ANN001
    from restorers.imagecheck import check_image

    m = np.memmap(tmp_path / "img.raw", dtype=np.float32, mode="w+", shape=photo.shape)
    m[:] = photo
    checked = check_image(m)
    assert type(checked) is np.ndarray and np.array_equal(checked, photo)
    out = apply(m, "gamma_correct", None)
    assert type(out) is np.ndarray and out.shape == photo.shape
    unmasked = check_image(np.ma.masked_array(photo, mask=False))  # nothing masked: accepted as its values
    assert type(unmasked) is np.ndarray and np.array_equal(unmasked, photo)


def test_bad_mask_rejected(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="mask must have shape"):
        apply(photo, list_tools()[0], None, mask=np.ones((10, 10), bool))
    h, w = photo.shape[:2]
    for dtype in ("<U1", object, complex):  # np.full(shape, 'a') is not an all-True mask
        with pytest.raises(ValueError, match="mask must be bool .* got dtype"):
            apply(photo, list_tools()[0], None, mask=np.full((h, w), 1).astype(dtype))


def test_registering_before_first_use_keeps_the_builtin_order_and_replace_keeps_the_index() -> None:
    """In a fresh interpreter: a tool registered before any lookup comes after the built-ins, and replacing a
    built-in keeps its place (tool indices are positions in this order)."""
    import subprocess
    import sys

    code = """
import numpy as np
from restorers import ParamSpec, Tool, register_tool, list_tools, get_tool
register_tool(Tool("my_denoise", "noise", (ParamSpec("s", 0.1, 1.0, 0.5),), lambda image, s=0.5: image))
from restorers.tools import BUILTIN_TOOLS
names = [t.name for t in list_tools()]
assert names[:len(BUILTIN_TOOLS)] == [t.name for t in BUILTIN_TOOLS], names
assert names[-1] == "my_denoise", names
register_tool(Tool("clahe", "dark", (ParamSpec("s", 0.1, 1.0, 0.5),), lambda image, s=0.5: image), replace=True)
after = [t.name for t in list_tools()]
assert after == names, after
assert get_tool("clahe").params[0].name == "s"
get_tool("msr_retinex"); get_tool("lime_enhance")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_list_tools_refuses_an_unknown_family() -> None:
    with pytest.raises(ValueError, match="unknown family 'blurr'"):
        list_tools(family="blurr")
    assert {t.family for t in list_tools(family="blur")} == {"blur"}


@pytest.mark.parametrize("log", [False, True])
def test_range_ends_map_exactly_to_the_declared_bounds(log: bool) -> None:
    for lo, hi in ((0.01, 0.5), (5.0, 80.0), (0.3, 7.0)):
        p = ParamSpec("s", lo, hi, lo, log=log)
        assert p.to_physical(-1.0) == lo and p.to_physical(1.0) == hi
        assert p.to_physical(-3.0) == lo and p.to_physical(2.0) == hi  # clipped first
    for tool in list_tools():
        low = tool.to_physical([-1.0] * len(tool.params))
        high = tool.to_physical([1.0] * len(tool.params))
        assert low == {p.name: p.low for p in tool.params}, tool.name
        assert high == {p.name: p.high for p in tool.params}, tool.name


def test_parameter_values_that_are_not_numbers_name_the_parameter(photo: np.ndarray) -> None:
    for bad in (None, "abc", True, "3"):
        with pytest.raises(ValueError, match=r"parameter 'gamma' must be a number"):
            apply(photo, "gamma_correct", {"gamma": bad})
    out = apply(photo, "gamma_correct", {"gamma": np.float32(1.5)})  # numpy scalars are numbers
    assert out.shape == photo.shape
    with pytest.raises(ValueError, match="margin must be an integer >= 0"):
        apply(photo, "gamma_correct", None, mask=np.eye(photo.shape[0], dtype=bool), margin=float("nan"))


def test_tool_definitions_are_checked() -> None:
    spec = (ParamSpec("s", 0.1, 1.0, 0.5),)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        Tool(3, "noise", spec, _identity)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fn must be callable"):
        Tool("t_nofn", "noise", spec, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parameter names must differ"):
        Tool("t_dup", "noise", spec + spec, _identity)
    with pytest.raises(ValueError, match="cost must be a finite number > 0"):
        Tool("t_cost", "noise", spec, _identity, cost=float("nan"))
    with pytest.raises(ValueError, match="margin must be an integer >= 0"):
        Tool("t_margin", "noise", spec, _identity, margin=-1)


def test_a_tool_that_writes_into_its_input_is_named_and_the_callers_array_is_kept(photo: np.ndarray) -> None:
    def in_place(image: np.ndarray, amount: float = 0.1) -> np.ndarray:
        image *= 0.5
        return image

    t = Tool("t_in_place", "dark", (ParamSpec("amount", 0.0, 0.5, 0.1),), in_place)
    before = photo.copy()
    with pytest.raises(ValueError, match="'t_in_place' writes into its input image"):
        apply(photo, t)
    full_width = np.zeros(photo.shape[:2], bool)
    full_width[10:20] = True  # its bounding box spans every column: the crop is a view of the caller's array
    with pytest.raises(ValueError, match="writes into its input"):
        apply(photo, t, mask=full_width)
    assert np.array_equal(photo, before)


def test_bm3d_runs_on_the_smallest_image() -> None:
    """bm3d's C code crashed the interpreter on an 8x8 plane; the tool pads it (run in a child process so a
    crash fails the test instead of ending the run)."""
    import subprocess
    import sys

    code = """
import numpy as np
from restorers import apply
img = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
out = apply(img, "bm3d_denoise", {"sigma": 25.0})
assert out.shape == (8, 8, 3) and out.dtype == np.float32 and np.isfinite(out).all()
assert np.abs(out - img).mean() > 0.01  # it denoised something
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr[-2000:])


def test_apply_checks_the_image_once_and_still_runs_a_user_tools_own_wrapper(monkeypatch) -> None:
    import dataclasses
    import functools

    import restorers.region as region

    calls = []
    real = region.check_image

    def counting(image, *a, **k):
        calls.append(1)
        return real(image, *a, **k)

    monkeypatch.setattr(region, "check_image", counting)
    import restorers.tools._common as common

    monkeypatch.setattr(common, "check_image", counting)
    img = np.full((16, 16, 3), 0.5, np.float32)
    apply(img, "gamma_correct", None)
    assert len(calls) == 1  # apply's check; the tool's @checked wrapper is skipped
    calls.clear()
    get_tool("gamma_correct").fn(img)
    assert len(calls) == 1  # called directly, the tool checks its image itself
    with pytest.raises(ValueError, match="got dtype uint8"):
        get_tool("gamma_correct").fn(np.zeros((8, 8, 3), np.uint8))

    # a wrapper of another kind (functools.wraps, not @checked) is never bypassed
    seen = []

    def inner(image: np.ndarray, gamma: float) -> np.ndarray:
        return image * 0.5

    @functools.wraps(inner)
    def outer(image: np.ndarray, gamma: float) -> np.ndarray:
        seen.append(1)
        return inner(image, gamma)

    tool = dataclasses.replace(get_tool("gamma_correct"), name="halve", fn=outer)
    out = region.run_tool(tool, img, {"gamma": 1.0})
    assert seen == [1] and np.allclose(out, 0.25)


def test_integer_parameters_are_shown_as_the_whole_numbers_the_tools_use() -> None:
    """A trace line used to say ``rl_motion(iterations=14.7)`` though the tool runs 15 iterations."""
    from restorers import get_tool, list_tools

    rl = get_tool("rl_motion")
    assert rl.format_params({"length": 12.345, "angle": -3.21, "iterations": 14.7}) == (
        "length=12.3, angle=-3.21, iterations=15")
    assert [p.integer for p in rl.params] == [False, False, True]
    assert get_tool("jpeg_reapply").format_params({"quality": 30.5}) == "quality=30"  # Python round, as the tool
    rounded = {(t.name, p.name) for t in list_tools() for p in t.params if p.integer}
    assert rounded == {("rl_defocus", "iterations"), ("rl_motion", "iterations"), ("jpeg_reapply", "quality"),
                       ("dcp_dehaze", "radius"), ("rain_median_removal", "radius"), ("clahe", "tiles"),
                       ("lime_enhance", "radius"), ("rain_streak_removal", "length")}
    for name, param in rounded:  # the rounding really is the tool's: a value and its rounding give one output
        tool = get_tool(name)
        img = np.random.default_rng(0).random((48, 48, 3), dtype=np.float32)
        spec = next(p for p in tool.params if p.name == param)
        v = spec.low + 0.37 * (spec.high - spec.low)
        assert round(v) != v
        np.testing.assert_array_equal(tool.fn(img, **{**tool.defaults(), param: v}),
                                      tool.fn(img, **{**tool.defaults(), param: float(round(v))}))
    assert get_tool("clahe").params[1].as_dict()["integer"] is True


def test_a_bare_number_or_pairs_as_params_are_refused_not_guessed() -> None:
    """``apply(img, 'tv_denoise', 0.2)`` used to run with weight 0.1046 (0.2 read as a normalised value)."""
    img = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="got the single value 0.2"):
        apply(img, "tv_denoise", 0.2)
    with pytest.raises(ValueError, match="sequence of numbers normalised"):
        apply(img, "tv_denoise", (("weight", 0.1),))
    np.testing.assert_array_equal(apply(img, "tv_denoise", {"weight": 0.1}),
                                  apply(img, "tv_denoise", [get_tool("tv_denoise").to_normalised({"weight": 0.1})[0]]))


def test_first_use_of_the_registry_from_several_threads_sees_every_tool() -> None:
    """The first registry use in a process may come from several threads at once (one planner per thread): none may
    see a half-filled registry. Run in a fresh interpreter, where nothing has loaded it yet."""
    import subprocess
    import sys

    code = """
import threading
from restorers import list_tools, get_tool
bar, seen, errors = threading.Barrier(6), [], []
def use():
    bar.wait()
    try:
        seen.append(len(list_tools())); get_tool("jpeg_deblock")
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=use) for _ in range(6)]
[t.start() for t in threads]; [t.join() for t in threads]
print(sorted(set(seen)), errors, len(list_tools()))
"""
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        total = out.stdout.split()[-1]  # every thread saw the whole registry and no error
        assert out.stdout.strip() == f"[{total}] [] {total}", out.stdout
    # one thread importing the built-ins' package while another uses the registry first: no deadlock between
    # Python's import lock and the registry's
    importing = """
import threading, time
from restorers import list_tools
threading.Thread(target=lambda: __import__("restorers.tools"), daemon=True).start()
time.sleep(0.005)
user = threading.Thread(target=lambda: print(len(list_tools())), daemon=True)
user.start(); user.join(30)
print("hung" if user.is_alive() else "ok")
"""
    out = subprocess.run([sys.executable, "-c", importing], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split()[-1] == "ok" and int(out.stdout.split()[0]) >= 22, out.stdout
