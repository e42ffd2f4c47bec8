"""Tiled planners: the tile grid, exact replay, counting, the make_planner / spec option, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from ir_env.recipes import synthesize
from policies import make_planner
from policies.evaluation import parse_planner_spec
from policies.tiled import TiledPlanner, tile_boxes


@pytest.fixture(scope="module")
def wide_scene(photo: np.ndarray):  # noqa: ANN201
    """A 96 x 128 px spatial-mixed scene (two photos' worth of regions for 48 px tiles)."""
    return synthesize(np.ascontiguousarray(photo[:96]), recipe="spatial-mixed", seed=5)


@pytest.mark.parametrize(("h", "w", "tile"), [(96, 128, 48), (300, 451, 128), (100, 64, 64), (40, 40, 128),
                                              (513, 97, 32), (48, 200, 32), (40, 60, 32)])
def test_tile_boxes_partition_the_image_into_even_tiles(h: int, w: int, tile: int) -> None:
    boxes = tile_boxes(h, w, tile)
    cover = np.zeros((h, w), int)
    rows, cols = len({b[0] for b in boxes}), len({b[2] for b in boxes})
    for y0, y1, x0, x1 in boxes:
        cover[y0:y1, x0:x1] += 1
        for side, full, n in ((y1 - y0, h, rows), (x1 - x0, w, cols)):
            if n > 1:  # split sides: tiles within a factor 1.5 of the asked size
                assert tile / 1.5 - 1 <= side <= 1.5 * tile + 1
            else:  # one tile spans the side: it is short, or cutting it would leave tiles below 32 px
                assert side == full and (full < 1.5 * tile or full < 2 * 32)
    assert (cover == 1).all()  # every pixel in exactly one tile
    assert all(min(y1 - y0, x1 - x0) >= min(32, h, w) for y0, y1, x0, x1 in boxes)  # never below 32 px
    assert len(tile_boxes(h, w, tile)) == len(boxes) and tile_boxes(h, w, tile) == boxes  # deterministic


def test_tile_boxes_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="tile must be >= 32"):
        tile_boxes(100, 100, 16)
    with pytest.raises(ValueError, match="positive"):
        tile_boxes(0, 100, 64)


def test_tiled_result_replays_exactly_and_stays_in_its_tiles(wide_scene) -> None:  # noqa: ANN001
    inner = make_planner("fixed", max_regions=2)
    p = TiledPlanner(inner, 48)
    res = p.restore(wide_scene.degraded)
    boxes = res.info["tiles"]
    assert len(boxes) == 2 * 3  # 96 / 48 rows, 128 / 48 -> 3 columns
    assert np.array_equal(res.replay(wide_scene.degraded), res.image)  # the RestorationResult contract
    assert res.image.dtype == np.float32 and res.image.shape == wide_scene.degraded.shape
    assert len(res.trace) > len(boxes)  # the fixed pipeline acts on every tile
    for st in res.trace:  # each region lies inside one tile
        m = res.masks[st.region]
        inside = [m[y0:y1, x0:x1].sum() for y0, y1, x0, x1 in boxes]
        assert max(inside) == m.sum() > 0
        assert st.region_area == pytest.approx(m.mean())
    # fixed never undoes a step: its calls on the tiles are its steps, plus one full-frame call per step
    assert res.tool_calls == 2 * len(res.trace)
    assert res.iqa_calls == 0 and res.planner == "fixed" and res.seconds > 0


def test_one_tile_is_the_inner_planner(photo96: np.ndarray) -> None:
    scene = synthesize(photo96, recipe="spatial-mixed", seed=3)
    inner = make_planner("fixed", max_regions=3)
    plain = inner.restore(scene.degraded)
    res = make_planner("fixed", max_regions=3, tile=128).restore(scene.degraded)  # 96 px < 1.5 x 128
    assert res.info["tiles"] == [(0, 96, 0, 96)]
    assert np.array_equal(res.image, plain.image)
    assert [(s.tool, s.params) for s in res.trace] == [(s.tool, s.params) for s in plain.trace]
    assert res.tool_calls == plain.tool_calls and np.array_equal(res.masks, plain.masks)  # no replay on one tile


def test_a_model_names_its_deployment_tile(tmp_path, wide_scene) -> None:  # noqa: ANN001
    import shutil

    import yaml

    from policies.ppo.planner import MODELS_DIR

    src = MODELS_DIR / "ppo_spatial"
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy2(src / "model.zip", d / "model.zip")
    cfg = yaml.safe_load((src / "config.yml").read_text())
    for tile, tiled_as in ((48, 48), (None, None)):
        cfg["deploy"] = {"tile": tile} if tile else None
        (d / "config.yml").write_text(yaml.safe_dump(cfg))
        p = make_planner("ppo", path=str(d / "model.zip"))
        assert (p.tile if isinstance(p, TiledPlanner) else None) == tiled_as
        assert not isinstance(make_planner("ppo", path=str(d / "model.zip"), tile=0), TiledPlanner)
    cfg["deploy"] = {"tile": 48}
    (d / "config.yml").write_text(yaml.safe_dump(cfg))
    assert make_planner("ppo", path=str(d / "model.zip"), tile=64).tile == 64  # tile= wins
    res = make_planner("ppo", path=str(d / "model.zip")).restore(wide_scene.degraded)
    assert len(res.info["tiles"]) > 1 and res.iqa_calls == 0
    for bad in (16, "big", True):
        cfg["deploy"] = {"tile": bad}
        (d / "config.yml").write_text(yaml.safe_dump(cfg))
        with pytest.raises(ValueError, match="deploy.tile"):
            make_planner("ppo", path=str(d / "model.zip"))


def test_given_masks_skip_the_tiling(wide_scene) -> None:  # noqa: ANN001
    inner = make_planner("fixed")
    res = TiledPlanner(inner, 48).restore(wide_scene.degraded, masks=wide_scene.masks)
    plain = inner.restore(wide_scene.degraded, masks=wide_scene.masks)
    assert np.array_equal(res.image, plain.image) and len(res.masks) == len(wide_scene.masks)


def test_oracle_judge_reads_the_reference_tile_by_tile(wide_scene) -> None:  # noqa: ANN001
    from ir_env.quality import get_metric
    from restorers import list_tools

    cheap = [t.name for t in sorted(list_tools(), key=lambda t: t.cost)][:6]
    p, needs_ref = parse_planner_spec("greedy:oracle:tile=64:max_steps=1:max_regions=2", tools=cheap)
    assert needs_ref and isinstance(p, TiledPlanner) and p.judge.label == "oracle:psnr"
    with pytest.raises(ValueError, match="full-reference"):
        p.restore(wide_scene.degraded)
    res = p.restore(wide_scene.degraded, reference=wide_scene.clean)
    psnr = get_metric("psnr")
    assert psnr.score(res.image, wide_scene.clean) >= psnr.score(wide_scene.degraded, wide_scene.clean) - 0.05
    assert res.iqa_calls > 0 and res.judge == "oracle:psnr"


def test_make_planner_tile_option() -> None:
    assert isinstance(make_planner("fixed", tile=64), TiledPlanner)
    assert not isinstance(make_planner("fixed", tile=0), TiledPlanner)
    assert make_planner("fixed", tile=64).tile == 64
    for bad, msg in ((16, "0 \\(off\\) or >= 32"), ("big", "whole number"), (64.5, "whole number"),
                     (True, "whole number")):
        with pytest.raises(ValueError, match=msg):
            make_planner("fixed", tile=bad)
    with pytest.raises(ValueError, match="already tiled"):
        TiledPlanner(make_planner("fixed", tile=64), 64)
    with pytest.raises(TypeError, match="Planner"):
        TiledPlanner("fixed", 64)  # type: ignore[arg-type]


def test_reference_shape_mismatch_is_named(wide_scene) -> None:  # noqa: ANN001
    p = make_planner("fixed", tile=48)
    with pytest.raises(ValueError, match="reference shape"):
        p.restore(wide_scene.degraded, reference=wide_scene.clean[:64])


def test_tile_feather_blends_wider_and_replays(wide_scene) -> None:  # noqa: ANN001
    from restorers import apply
    from restorers.region import FEATHER_SIGMA

    inner = make_planner("fixed", max_regions=2)
    default = TiledPlanner(inner, 48)
    assert default.feather == 48 / 8  # tile / FEATHER_PER_TILE
    narrow, wide = TiledPlanner(inner, 48, feather=FEATHER_SIGMA), TiledPlanner(inner, 48, feather=12)
    rn, rw = narrow.restore(wide_scene.degraded), wide.restore(wide_scene.degraded)
    for res, sigma in ((rn, FEATHER_SIGMA), (rw, 12.0)):
        assert np.array_equal(res.replay(wide_scene.degraded), res.image)  # the feather is in the trace
        assert {st.feather for st in res.trace} == {sigma} and res.info["feather"] == sigma
        assert res.trace[0].as_dict()["feather"] == sigma
    # the narrow blend is the tools' own: replaying its steps with apply's default feather gives the same image
    out = wide_scene.degraded
    for st in rn.trace:
        out = apply(out, st.tool, st.params, mask=rn.masks[st.region])
    assert np.array_equal(out, rn.image)
    assert not np.array_equal(rw.image, rn.image)
    # make_planner / spec option
    assert make_planner("fixed", tile=48, tile_feather=3).feather == 3.0
    spec = parse_planner_spec("fixed:tile=48:tile_feather=3")
    assert spec is not None
    for bad in (-1, "x", float("nan"), True):
        with pytest.raises(ValueError, match="tile_feather"):
            make_planner("fixed", tile=48, tile_feather=bad)
    with pytest.raises(ValueError, match="tiled planning only"):
        make_planner("fixed", tile_feather=3)


def test_apply_feather_widths() -> None:
    from restorers import apply

    img = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    mask = np.zeros((64, 64), bool)
    mask[:, :32] = True
    hard = apply(img, "tv_denoise", None, mask=mask, feather=0)
    assert np.array_equal(hard[:, 32:], img[:, 32:])  # a hard edge: nothing outside changes
    d2 = np.abs(apply(img, "tv_denoise", None, mask=mask) - img).mean(axis=(0, 2))
    d8 = np.abs(apply(img, "tv_denoise", None, mask=mask, feather=8) - img).mean(axis=(0, 2))
    assert d2[40] == 0 and d8[40] > 0  # 8 px past the edge: only the wide blend reaches
    assert np.array_equal(apply(img, "tv_denoise", None, mask=mask, feather=2.0),
                          apply(img, "tv_denoise", None, mask=mask))
    with pytest.raises(ValueError, match="feather"):
        apply(img, "tv_denoise", None, mask=mask, feather=-1)


def test_a_gate_around_a_tiled_planner_replays_exactly(wide_scene) -> None:  # noqa: ANN001
    from policies.gate import PerceptionGate

    gate = PerceptionGate(make_planner("fixed", tile=48, max_regions=2), "encoder")
    res = gate.restore(wide_scene.degraded)
    assert res.trace and {st.feather for st in res.trace} == {6.0}  # the kept steps keep the tile blend
    assert np.array_equal(res.replay(wide_scene.degraded), res.image)


def test_a_tiled_gated_planner_reports_every_tiles_vetoes(wide_scene) -> None:  # noqa: ANN001
    """The gate runs inside each tile; the tiled result merges the tiles' reports with full-frame regions."""
    res = make_planner("fixed", gate="table", tile=48, max_regions=2).restore(wide_scene.degraded)
    per_tile = [v for info in res.info["per_tile"] for v in info["gate"]["vetoed"]]
    gate = res.info["gate"]
    assert per_tile and len(gate["vetoed"]) == len(per_tile)  # the fixed pipeline runs tools for absent families
    assert gate["kept"] == len(res.trace) and gate["gate"] == "table"
    for v in gate["vetoed"]:
        y0, y1, x0, x1 = res.info["tiles"][v["tile"]]
        mask = res.masks[v["region"]]  # a full-frame region of the result, inside its tile
        assert mask.any() and not mask[:y0].any() and not mask[y1:].any()
        assert not mask[:, :x0].any() and not mask[:, x1:].any()
    assert np.array_equal(res.replay(wide_scene.degraded), res.image)


def test_a_planner_names_its_smallest_image() -> None:
    """The env-driven learned planners need 11 px a side (their episode scores SSIM); the message names the
    planner and the whole image's size, also when tiled."""
    img = np.full((9, 300, 3), 0.5, np.float32)
    for spec in ("ppo", "distilled", "ppo:tile=0"):
        planner, _ = parse_planner_spec(spec)
        assert planner.min_side == 11
        name = "ppo" if spec.startswith("ppo") else "distilled"
        with pytest.raises(ValueError, match=rf"planner '{name}' needs images of at least 11 px a side, got 300x9 px "
                                             r"\(width x height\)"):
            planner.restore(img)
    assert make_planner("fixed").restore(img[:8, :8]).image.shape == (8, 8, 3)  # the others: 8 px


class _Bar:
    """A tqdm stand-in that records what a planner reports."""

    def __init__(self) -> None:
        self.n, self.postfix = 0, []

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, s: str) -> None:
        self.postfix.append(s)


def test_progress_counts_tool_calls_and_names_tiles(wide_scene) -> None:  # noqa: ANN001
    import pickle

    from policies.base import show_progress

    search = make_planner("greedy", judge="psnr", max_steps=2)
    bar = _Bar()
    show_progress(search, bar)
    res = search.restore(wide_scene.degraded, reference=wide_scene.clean)
    assert bar.n == res.tool_calls > 0 and bar.postfix == []  # one tick per candidate tried
    assert pickle.loads(pickle.dumps(search)).progress is None  # a copy is silent
    tiled_gated = make_planner("fixed", gate="table", tile=48, max_regions=2)
    bar = _Bar()
    show_progress(tiled_gated, bar)
    res = tiled_gated.restore(wide_scene.degraded)
    n = len(res.info["tiles"])
    assert bar.postfix == [f"tile {i + 1}/{n}" for i in range(n)] and bar.n == len(res.trace)
    show_progress(tiled_gated, None)
    assert tiled_gated.progress is None and tiled_gated.inner.progress is None
