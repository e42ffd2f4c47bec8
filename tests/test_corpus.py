"""Corpus: the fixed built-in split, folder loading, crops."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from ir_env.corpus import (
    BUILTIN_SOURCES,
    BUILTIN_SPLITS,
    KODAK_SOURCES,
    builtin_path,
    center_crop,
    load_corpus,
    load_named_corpus,
    random_crop,
    resize_short,
)
from ir_env.imageio import write_image


def test_builtin_split_fixed_and_disjoint() -> None:
    train, test = BUILTIN_SPLITS["train"], BUILTIN_SPLITS["test"]
    assert train == (
        "astronaut.png",
        "coffee.png",
        "rocket.jpg",
        "ihc.png",
        "flower.jpg",
        "grace_hopper.jpg",
        "camera.png",
        "brick.png",
    )
    assert test == ("chelsea.png", "china.jpg", "motorcycle_left.png", "coins.png")
    assert not set(train) & set(test) and set(train) | set(test) == set(BUILTIN_SOURCES)
    assert len(test) >= 4 and 0.6 <= len(train) / (len(train) + len(test)) <= 0.75
    named = load_named_corpus("builtin", "test")
    assert [n for n, _ in named] == list(test)
    everything = load_named_corpus("builtin", "all")
    assert [n for n, _ in everything] == list(train + test)
    for name, img in everything:
        assert builtin_path(name).is_file()
        assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] == 3
        assert min(img.shape[:2]) >= 256 and 0 <= img.min() and img.max() <= 1 and img.std() > 0.05
    colour = [n for n, img in everything if np.abs(img[..., 0] - img[..., 2]).mean() > 0.01]
    assert len(colour) >= 9


def test_builtin_cached_copies() -> None:
    a = load_corpus("builtin", "train")
    a[0][:] = 0.0  # callers get their own copies
    b = load_corpus("builtin", "train")
    assert b[0].max() > 0 and b[0].flags.writeable and len(b) == len(BUILTIN_SPLITS["train"])
    assert all(np.array_equal(x, y) for x, y in zip(b, load_corpus("builtin"), strict=True))


def test_kodak_corpus_is_train_only() -> None:
    kodak = load_named_corpus("kodak", "train")
    assert [n for n, _ in kodak] == list(KODAK_SOURCES) and len(kodak) == 5
    for _, img in kodak:  # clean 512 x 384 colour photos
        assert img.dtype == np.float32 and img.shape == (384, 512, 3) and img.std() > 0.1
    assert [n for n, _ in load_named_corpus("kodak", "all")] == list(KODAK_SOURCES)
    with pytest.raises(ValueError, match="train-only"):
        load_named_corpus("kodak", "test")
    union = [n for n, _ in load_named_corpus("builtin+kodak", "train")]
    assert union == list(BUILTIN_SPLITS["train"]) + list(KODAK_SOURCES)
    # the test split of the union is the built-in one: the Kodak photos never reach a test set
    assert [n for n, _ in load_named_corpus("builtin+kodak", "test")] == list(BUILTIN_SPLITS["test"])
    assert not set(KODAK_SOURCES) & set(BUILTIN_SOURCES)


def _folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    write_image(tmp_path / "a_colour.png", rng.uniform(size=(40, 50, 3)).astype(np.float32))
    grey = (rng.uniform(size=(30, 20)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "b_grey.png"), grey)
    (tmp_path / "c_corrupt.jpg").write_bytes(b"not a jpeg at all")
    write_image(tmp_path / "d_photo.JPG", rng.uniform(size=(64, 64, 3)).astype(np.float32))
    write_image(tmp_path / "e_bitmap.bmp", rng.uniform(size=(16, 24, 3)).astype(np.float32))
    write_image(tmp_path / "f_tiff.tif", rng.uniform(size=(12, 12, 3)).astype(np.float32))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    write_image(tmp_path / "sub" / "ignored.png", np.zeros((8, 8, 3), np.float32))
    return tmp_path


def test_folder_corpus(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    with pytest.warns(UserWarning, match="c_corrupt.jpg"):
        everything = load_named_corpus(folder, "all")
    assert [n for n, _ in everything] == [
        "a_colour.png",
        "b_grey.png",
        "d_photo.JPG",
        "e_bitmap.bmp",
        "f_tiff.tif",
    ]
    grey = dict(everything)["b_grey.png"]
    assert grey.shape == (30, 20, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    # split by sorted index over image files (corrupt one included): 0 1 [2] 3 4 [5] -> test = 2, 5
    with pytest.warns(UserWarning, match="c_corrupt"):
        test = load_named_corpus(str(folder), "test")
    assert [n for n, _ in test] == ["f_tiff.tif"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train = load_named_corpus(folder, "train")
    assert [n for n, _ in train] == ["a_colour.png", "b_grey.png", "d_photo.JPG", "e_bitmap.bmp"]
    assert len(load_corpus(folder, "train")) == 4
    with warnings.catch_warnings():  # limit: decoding stops once that many are read (the corrupt 3rd file unread)
        warnings.simplefilter("error")
        first = load_named_corpus(folder, "all", limit=2)
    assert [n for n, _ in first] == ["a_colour.png", "b_grey.png"]
    with pytest.warns(UserWarning, match="c_corrupt"):
        assert [n for n, _ in load_named_corpus(folder, "all", limit=3)][-1] == "d_photo.JPG"  # the unreadable skipped
    assert [n for n, _ in load_named_corpus("builtin", "test", limit=1)] == [load_named_corpus("builtin", "test")[0][0]]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="limit must be a whole number >= 1"):
            load_named_corpus(folder, "all", limit=bad)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_corpus(tmp_path / "empty")
    write_image(tmp_path / "one" / "x.png", np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="split 'test'"):
        load_corpus(tmp_path / "one", "test")
    with pytest.raises(ValueError, match="got a file"):
        load_corpus(tmp_path / "one" / "x.png")
    with pytest.raises(ValueError, match="unknown split"):
        load_corpus("builtin", "validation")
    for bad in (None, "", "  "):  # '' would read the working directory
        with pytest.raises(ValueError, match="corpus must be a name .* or a folder path"):
            load_corpus(bad)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no readable images"):
        load_corpus(tmp_path / "bad", "all")
    with pytest.raises(ValueError, match="unknown built-in image"):
        builtin_path("lena.png")


def test_crops() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(size=(100, 150, 3)).astype(np.float32)
    c = random_crop(img, 64, np.random.default_rng(1))
    assert c.shape == (64, 64, 3) and c.dtype == np.float32 and c.flags.c_contiguous
    assert np.array_equal(c, random_crop(img, 64, np.random.default_rng(1)))
    # the crop is a window of the image
    hits = [(y, x) for y in range(37) for x in range(87) if np.array_equal(img[y, x], c[0, 0])]
    assert len(hits) == 1 and np.array_equal(
        img[hits[0][0] : hits[0][0] + 64, hits[0][1] : hits[0][1] + 64], c
    )
    offsets = {tuple(random_crop(img, 64, np.random.default_rng(s))[0, 0]) for s in range(10)}
    assert len(offsets) > 5
    assert random_crop(img, (32, 80), rng).shape == (32, 80, 3)
    # smaller than the crop: upscaled first, values stay in [0, 1]
    small = rng.uniform(size=(20, 30, 3)).astype(np.float32)
    up = random_crop(small, 48, rng)
    assert up.shape == (48, 48, 3) and 0 <= up.min() and up.max() <= 1
    cc = center_crop(img, 50)
    assert np.array_equal(cc, img[25:75, 50:100])
    assert center_crop(small, (40, 64)).shape == (40, 64, 3)
    assert resize_short(img, 50).shape == (50, 75, 3) and resize_short(small, 60).shape == (60, 90, 3)
    with pytest.raises(ValueError, match="positive"):
        random_crop(img, 0, rng)


def test_holdout_corpus_is_test_only_and_disjoint() -> None:
    from ir_env.corpus import HOLDOUT_SOURCES

    hold = load_named_corpus("holdout", "test")
    assert [n for n, _ in hold] == list(HOLDOUT_SOURCES) and len(hold) == 4
    for name, img in hold:  # clean photos, float32 RGB in [0, 1], at least 512 px on the short side
        assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 512
        assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.1, name
    grey = dict(hold)["aero.npz"]  # the PyWavelets arrays are greyscale, repeated to RGB
    assert np.array_equal(grey[..., 0], grey[..., 2])
    assert [n for n, _ in load_named_corpus("holdout", "all")] == list(HOLDOUT_SOURCES)
    with pytest.raises(ValueError, match="test-only"):
        load_named_corpus("holdout", "train")
    # never part of any training corpus or of the built-in test split
    assert not set(HOLDOUT_SOURCES) & (set(BUILTIN_SOURCES) | set(KODAK_SOURCES))
    for corpus in ("builtin", "kodak", "builtin+kodak"):
        names = {n for n, _ in load_named_corpus(corpus, "all")}
        assert not names & set(HOLDOUT_SOURCES)


def test_builtin_photo_of_a_missing_package_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pywt" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="'pywt'.*not installed"):
        builtin_path("aero.npz")
    assert builtin_path("astronaut.png").is_file()  # other packages unaffected


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_read_image_applies_the_exif_orientation(tmp_path, suffix: str) -> None:  # noqa: ANN001
    from PIL import Image, ImageOps

    from ir_env.imageio import read_image

    arr = np.zeros((30, 50, 3), np.uint8)
    arr[:10, :20] = [255, 0, 0]  # a red corner shows which way the photo was turned
    for orientation in range(1, 9):
        im = Image.fromarray(arr)
        exif = im.getexif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}{suffix}"
        im.save(path, exif=exif.tobytes(), **({"quality": 100} if suffix == ".jpg" else {}))
        with Image.open(path) as shown:
            want = np.asarray(ImageOps.exif_transpose(shown).convert("RGB"), np.float32) / 255.0
        got = read_image(path)
        assert got.shape == want.shape, orientation
        np.testing.assert_allclose(got, want, atol=2 / 255)  # jpeg: same decoder rounding, +-1 level


@pytest.mark.parametrize("mode", ["RGB", "L", "I;16"])
def test_read_image_turns_a_tiff_by_its_orientation_once(tmp_path, mode: str) -> None:  # noqa: ANN001
    """OpenCV's TIFF decoder applies the orientation tag itself; read_image must not turn the image again."""
    from PIL import Image

    from ir_env.imageio import read_image

    arr = np.zeros((30, 50), np.uint8)
    arr[:10, :20] = 255  # a bright corner shows which way the image was turned
    for orientation in range(1, 9):
        im = Image.fromarray(arr).convert(mode) if mode != "I;16" else Image.fromarray(arr.astype(np.uint16) * 257)
        path = tmp_path / f"o{orientation}_{mode.replace(';', '')}.tif"
        im.save(path, tiffinfo={274: orientation})
        with Image.open(path) as shown:
            assert int(shown.getexif().get(0x0112, 1)) == orientation  # the tag is in the file
        want = apply_exif_orientation_ref(arr, orientation)
        got = read_image(path)
        assert got.shape == (*want.shape, 3), orientation
        np.testing.assert_allclose(got[..., 0], want / 255.0, atol=1 / 255)


def apply_exif_orientation_ref(a: np.ndarray, orientation: int) -> np.ndarray:
    """Pillow's ImageOps.exif_transpose of a 2-D array, written out by hand for the test."""
    from PIL import Image, ImageOps

    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    return np.asarray(ImageOps.exif_transpose(im))


def test_read_image_refuses_float_files_outside_the_unit_range(tmp_path) -> None:  # noqa: ANN001
    from ir_env.imageio import read_image

    bad = tmp_path / "f255.tif"
    ok, buf = cv2.imencode(".tif", np.full((16, 16, 3), 200.0, np.float32))
    assert ok
    buf.tofile(str(bad))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*divide by 255"):
        read_image(bad)
    good = tmp_path / "f.tif"
    cv2.imencode(".tif", np.full((16, 16, 3), 0.25, np.float32))[1].tofile(str(good))
    np.testing.assert_allclose(read_image(good), 0.25)


def test_write_image_refuses_what_it_would_write_wrongly(tmp_path) -> None:  # noqa: ANN001
    from ir_env.imageio import read_image

    rgb = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="divide uint8 images by 255"):
        write_image(tmp_path / "u8.png", (rgb * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="divide by 255"):
        write_image(tmp_path / "f255.png", rgb * 255)
    with pytest.raises(ValueError, match="NaN or inf"):
        write_image(tmp_path / "nan.png", np.full((8, 8, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        write_image(tmp_path / "rgba.png", np.zeros((8, 8, 4), np.float32))
    with pytest.raises(ValueError, match="cannot write images as '.xyz'"):
        write_image(tmp_path / "x.xyz", rgb)
    assert not list(tmp_path.iterdir())  # nothing written, no folder made for a refused image
    np.testing.assert_allclose(read_image(write_image(tmp_path / "ok.png", rgb)), rgb, atol=0.5 / 255 + 1e-6)
    grey = write_image(tmp_path / "grey.png", rgb[..., 0])
    np.testing.assert_allclose(read_image(grey)[..., 1], rgb[..., 0], atol=0.5 / 255 + 1e-6)


def test_crop_helpers_refuse_uint8_images() -> None:
    import pytest

    from ir_env.corpus import center_crop, random_crop, resize_short

    u8 = np.full((40, 40, 3), 200, np.uint8)  # came back as float32 with values up to 200
    for call in (lambda: center_crop(u8, 16), lambda: random_crop(u8, 16, np.random.default_rng(0)),
                 lambda: resize_short(u8, 16)):
        with pytest.raises(ValueError, match="divide uint8 images by 255"):
            call()


@pytest.mark.parametrize("extrasample", ["unassalpha", "assocalpha"])
def test_read_image_keeps_the_stored_colour_of_an_rgba_tiff(tmp_path, extrasample: str) -> None:  # noqa: ANN001
    """OpenCV's 8-bit TIFF decoder multiplies colour by alpha; read_image gives the colour as a PNG would."""
    import tifffile
    from PIL import Image

    from ir_env.imageio import read_image

    rgba = np.zeros((8, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 40, 128
    rgba[:, :6, 3] = 255
    stored = rgba.copy()
    if extrasample == "assocalpha":  # the file stores colour already multiplied by alpha
        stored[..., :3] = np.round(rgba[..., :3].astype(np.float64) * rgba[..., 3:] / 255.0).astype(np.uint8)
    tif = tmp_path / "a.tif"
    tifffile.imwrite(tif, stored, photometric="rgb", extrasamples=[extrasample])
    png = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(png)
    got, want = read_image(tif), read_image(png)
    np.testing.assert_allclose(got, want, atol=1.01 / 255)  # associated alpha: un-multiplied, +-1 level
    if extrasample == "unassalpha":
        np.testing.assert_array_equal(got, want)


def test_read_image_fallback_un_multiplies_alpha_when_pillow_cannot_read(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import tifffile
    from PIL import Image

    from ir_env.imageio import read_image

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (200, 100, 40), 128
    tif = tmp_path / "a.tif"
    tifffile.imwrite(tif, rgba, photometric="rgb", extrasamples=["unassalpha"])
    monkeypatch.setattr(Image, "open", lambda *a, **k: (_ for _ in ()).throw(OSError("no")))
    np.testing.assert_allclose(read_image(tif)[0, 0], np.array([200, 100, 40]) / 255.0, atol=1.01 / 255)


def test_read_image_names_damage_the_decoder_reports(tmp_path) -> None:  # noqa: ANN001
    from ir_env.imageio import read_image

    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    data = bytearray(cv2.imencode(".jpg", img)[1].tobytes())
    n = len(data)
    data[n // 2: n // 2 + 50] = bytes(50)  # zeroed bytes in the scan: libjpeg decodes and complains
    bad = tmp_path / "damaged.jpg"
    bad.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="may be damaged, the decoder said: .*Corrupt JPEG data"):
        out = read_image(bad)
    assert out.shape == (64, 64, 3)
    cut = tmp_path / "truncated.jpg"  # the last third missing: OpenCV's imdecode refuses it, imread reads it
    cut.write_bytes(bytes(cv2.imencode(".jpg", img)[1].tobytes())[: n * 2 // 3])
    with pytest.warns(UserWarning, match="truncated.jpg may be damaged, the decoder said: Premature end of JPEG"):
        out = read_image(cut)
    full = cv2.imdecode(np.frombuffer(cv2.imencode(".jpg", img)[1], np.uint8), cv2.IMREAD_COLOR)[..., ::-1] / 255.0
    assert out.shape == (64, 64, 3) and np.abs(out[:16] - full[:16]).max() < 1e-6  # the top is decoded as usual
    png = bytearray(cv2.imencode(".png", img)[1].tobytes())
    i = png.index(b"IDAT") + 40
    png[i: i + 20] = bytes(20)
    broken = tmp_path / "broken.png"
    broken.write_bytes(bytes(png))
    with pytest.raises(ValueError, match="cannot decode image file .*decoder: libpng error"):
        read_image(broken)
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), img)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(good)  # a sound file: no warning


def test_sixteen_bit_round_trip_and_write_checks(tmp_path) -> None:  # noqa: ANN001
    from ir_env.imageio import read_image_with_depth

    rgb = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    for ext in (".png", ".tif"):
        got, depth = read_image_with_depth(write_image(tmp_path / f"w16{ext}", rgb, bits=16))
        assert depth == 16 and np.abs(got - rgb).max() <= 0.5 / 65535 + 1e-7
    got, depth = read_image_with_depth(write_image(tmp_path / "w8.png", rgb))
    assert depth == 8 and np.abs(got - rgb).max() > 1e-4
    with pytest.raises(ValueError, match=r"\.jpg holds 8 bits per sample"):
        write_image(tmp_path / "x.jpg", rgb, bits=16)
    with pytest.raises(ValueError, match="bits must be 8 or 16"):
        write_image(tmp_path / "x.png", rgb, bits=12)
    for ext in (".gif", ".ppm", ".webp"):  # OpenCV writes some of these, but not as the project's formats
        with pytest.raises(ValueError, match=f"cannot write images as '{ext}'"):
            write_image(tmp_path / f"x{ext}", rgb)
    assert write_image(tmp_path / "UPPER.PNG", rgb).is_file()


def test_exif_orientation_is_read_past_pillows_pixel_limit(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from PIL import Image

    from ir_env.imageio import exif_orientation

    im = Image.fromarray(np.zeros((20, 30, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6
    path = tmp_path / "big.jpg"
    im.save(path, exif=exif.tobytes())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # this photo now counts as a "decompression bomb"
    assert exif_orientation(path) == 6
    assert Image.MAX_IMAGE_PIXELS == 200  # the limit is restored


def test_a_corpus_folder_skips_a_file_cut_short_and_keeps_other_decoder_remarks(tmp_path) -> None:  # noqa: ANN001
    """A truncated JPEG decodes with its missing part flat grey: never a clean reference (it was kept). A JPEG with
    zeroed bytes mid-scan ("Corrupt JPEG data") still decodes whole: kept, with the decoder's remark passed on."""
    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    data = bytes(cv2.imencode(".jpg", img)[1].tobytes())
    folder = tmp_path / "truncated_photos"  # a folder name the decoder's words are matched on would skip them all
    folder.mkdir()
    (folder / "a_cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    noisy = bytearray(data)
    noisy[len(data) // 2: len(data) // 2 + 50] = bytes(50)
    (folder / "b_noisy.jpg").write_bytes(bytes(noisy))
    cv2.imwrite(str(folder / "c_good.png"), img)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        got = load_named_corpus(folder, split="all")
    assert [n for n, _ in got] == ["b_noisy.jpg", "c_good.png"]
    text = " ".join(str(w.message) for w in said)
    assert "skipping damaged image" in text and "a_cut.jpg" in text and "Premature end" in text
    assert "b_noisy.jpg may be damaged" in text


def test_env_corpus_mistakes_and_small_photos_are_named(tmp_path) -> None:  # noqa: ANN001
    import gymnasium as gym

    import ir_env  # noqa: F401  (registers the ids)

    with pytest.raises(ValueError, match="corpus must be a named corpus, a folder path or a list .* got int"):
        gym.make("SpatialIR-Lite-v1", corpus=123)
    with pytest.raises(FileNotFoundError, match="did you mean 'builtin'"):
        gym.make("SpatialIR-Lite-v1", corpus="Builtin")
    folder = tmp_path / "small"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), (np.random.default_rng(i).random((20, 30, 3)) * 255).astype(np.uint8))
    with pytest.warns(UserWarning, match=r"3 of the 3 corpus photos .* smaller than image_size 64 px .*upscaled"):
        gym.make("SpatialIR-Lite-v1", corpus=str(folder), split="all", image_size=64)
