"""ir_env.quality: values against pyiqa / scikit-image / scikit-video, masks, directions, offline use."""

from __future__ import annotations

import socket
import warnings

import numpy as np
import pytest

from ir_env import quality as Q

FR = ["psnr", "psnr_y", "ssim", "ssim_rgb", "ms_ssim"]
NR = ["niqe", "piqe", "brisque"]


def _noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0.0, sigma, img.shape), 0.0, 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def photo192() -> np.ndarray:
    """A 192 px real photo (coffee), large enough for every metric (ms_ssim needs 161 px)."""
    from skimage import data

    return np.ascontiguousarray(data.coffee()[:384:2, 100:484:2].astype(np.float32) / 255.0)


def _tensor(img: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def _pyiqa(name: str, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyiqa
    return pyiqa.create_metric(name, device="cpu", **kw)


def test_registry_directions_and_references():
    assert Q.list_metrics() == list(Q.METRICS)
    assert set(FR + NR) <= set(Q.list_metrics())
    for name in FR:
        info = Q.metric_info(name)
        assert info.higher_better and info.needs_reference
    for name in NR:
        info = Q.metric_info(name)
        assert not info.higher_better and not info.needs_reference
    assert Q.METRICS["ms_ssim"].min_size == 161


def test_unknown_metric_lists_known_names():
    with pytest.raises(ValueError, match="unknown metric 'lpips'.*psnr.*brisque"):
        Q.get_metric("lpips")
    with pytest.raises(ValueError, match="known metrics"):
        Q.gain("nope", 1.0, 2.0)


def test_gain_sign():
    assert Q.gain("psnr", 20.0, 25.0) == pytest.approx(5.0)
    assert Q.gain("ssim", 0.9, 0.8) == pytest.approx(-0.1)
    assert Q.gain("niqe", 8.0, 5.0) == pytest.approx(3.0)
    assert Q.gain("brisque", 30.0, 40.0) == pytest.approx(-10.0)
    assert Q.get_metric("piqe").gain(50.0, 20.0) == pytest.approx(30.0)


def test_input_errors(photo):
    m = Q.get_metric("psnr")
    with pytest.raises(ValueError, match="full-reference.*reference="):
        m.score(photo)
    with pytest.raises(ValueError, match="differs from image shape"):
        m.score(photo, photo[:64])
    with pytest.raises(ValueError, match="uint8"):
        m.score((photo * 255).astype(np.uint8), photo)
    with pytest.raises(ValueError, match="mask is empty"):
        m.score(photo, photo, mask=np.zeros(photo.shape[:2], bool))
    with pytest.raises(ValueError, match="mask must have shape"):
        m.score(photo, photo, mask=np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="at least 161x161.*ssim"):
        Q.score("ms_ssim", photo, photo)
    with pytest.raises(ValueError, match="device"):
        Q.get_metric("psnr", device="tpu")


def test_cache_returns_same_object():
    a = Q.get_metric("psnr")
    assert Q.get_metric("psnr", device="cpu") is a
    assert Q.get_metric("ssim") is not a
    Q.clear_cache()
    assert Q.get_metric("psnr") is not a


def _with_eps(psnr_db: float) -> float:
    """skimage's PSNR with pyiqa's epsilon added to the MSE (it matters above ~40 dB)."""
    return 10 * np.log10(1.0 / (10 ** (-psnr_db / 10) + Q.PSNR_EPS))


def test_psnr_matches_pyiqa_and_skimage(photo):
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio

    ref = photo
    for sigma in (0.01, 0.05, 0.2):
        x = _noisy(ref, sigma)
        ours = Q.score("psnr", x, ref)
        assert ours == pytest.approx(_pyiqa("psnr")(_tensor(x), _tensor(ref)).item(), abs=1e-3)
        assert ours == pytest.approx(_with_eps(peak_signal_noise_ratio(ref, x, data_range=1.0)), abs=1e-3)
        ours_y = Q.score("psnr_y", x, ref)
        py_y = _pyiqa("psnr", test_y_channel=True, color_space="ycbcr")(_tensor(x), _tensor(ref)).item()
        assert ours_y == pytest.approx(py_y, abs=1e-3)
        sk_y = peak_signal_noise_ratio(rgb2ycbcr(ref)[..., 0], rgb2ycbcr(x)[..., 0], data_range=255)
        assert ours_y == pytest.approx(_with_eps(sk_y), abs=1e-3)
    assert Q.score("psnr", ref, ref) == pytest.approx(80.0)  # pyiqa's eps caps identical images


def test_ssim_matches_pyiqa_and_skimage(photo):
    from skimage.metrics import structural_similarity

    for sigma in (0.02, 0.1):
        x = _noisy(photo, sigma)
        ours = Q.score("ssim", x, photo)
        assert ours == pytest.approx(_pyiqa("ssim")(_tensor(x), _tensor(photo)).item(), abs=1e-5)
        sk = structural_similarity(
            Q._yiq_y255(photo),
            Q._yiq_y255(x),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
        assert ours == pytest.approx(sk, abs=1e-6)
        ours_rgb = Q.score("ssim_rgb", x, photo)
        assert ours_rgb == pytest.approx(_pyiqa("ssimc")(_tensor(x), _tensor(photo)).item(), abs=1e-5)


def test_ms_ssim_matches_pyiqa(photo192):
    x = _noisy(photo192, 0.05)
    ref = _pyiqa("ms_ssim")(_tensor(x), _tensor(photo192)).item()
    assert Q.score("ms_ssim", x, photo192) == pytest.approx(ref, abs=1e-6)
    assert Q.score("ms_ssim", photo192[:161, :161], photo192[:161, :161]) == pytest.approx(1.0)


def test_masked_psnr_is_psnr_of_masked_pixels(photo):
    rng = np.random.default_rng(3)
    x = _noisy(photo, 0.05)
    x[:40] = photo[:40]  # top rows untouched
    mask = rng.random(photo.shape[:2]) < 0.3
    expected = 10 * np.log10(1.0 / (np.mean((x.astype(np.float64) - photo)[mask] ** 2) + Q.PSNR_EPS))
    assert Q.score("psnr", x, photo, mask=mask) == pytest.approx(expected, abs=1e-9)
    full = np.ones(photo.shape[:2], bool)
    assert Q.score("psnr", x, photo, mask=full) == pytest.approx(Q.score("psnr", x, photo), abs=1e-9)
    assert Q.score("psnr_y", x, photo, mask=full) == pytest.approx(Q.score("psnr_y", x, photo), abs=1e-9)
    top = np.zeros(photo.shape[:2], bool)
    top[:40] = True
    assert Q.score("psnr", x, photo, mask=top) == pytest.approx(80.0)  # untouched region
    assert Q.score("psnr", x, photo, mask=~top) < Q.score("psnr", x, photo)


def test_masked_ssim(photo):
    x = _noisy(photo, 0.05)
    h, w = photo.shape[:2]
    full = np.ones((h, w), bool)
    # a full mask counts every pixel (the border band mirrored); the unmasked score is the valid-window mean
    k = Q._SSIM_HALF
    mirrored = Q._ssim_map(*(np.pad(Q._yiq_y255(a), k, mode="symmetric") for a in (x, photo)))
    assert Q.score("ssim", x, photo, mask=full) == pytest.approx(mirrored.mean(), abs=1e-10)
    assert Q.score("ssim", x, photo, mask=full) == pytest.approx(Q.score("ssim", x, photo), abs=0.02)
    # mean of the full SSIM map over the mask, whatever crop the implementation takes
    ssim_map = Q._ssim_map(Q._yiq_y255(x), Q._yiq_y255(photo))
    mask = np.zeros((h, w), bool)
    mask[30:70, 20:90] = True
    assert Q.score("ssim", x, photo, mask=mask) == pytest.approx(ssim_map[25:65, 15:85].mean(), abs=1e-10)
    corner = np.zeros((h, w), bool)
    corner[:3, -3:] = True  # inside the 5 px border the map does not cover
    assert Q.score("ssim", photo, photo, mask=corner) == pytest.approx(1.0)
    assert 0.0 < Q.score("ssim", x, photo, mask=corner) < 1.0
    assert Q.score("ssim", photo, photo) == pytest.approx(1.0)
    assert Q.score("ssim", photo, photo, mask=mask) == pytest.approx(1.0)
    # masked pixels in the border band count even when other masked pixels lie inside it
    y = photo.copy()
    y[:3] = np.clip(y[:3] + np.random.default_rng(0).normal(0, 0.2, y[:3].shape), 0, 1).astype(np.float32)
    band = np.zeros((h, w), bool)
    band[:3] = True
    alone = Q.score("ssim", y, photo, mask=band)
    band[h // 2, w // 2] = True  # one clean interior pixel more: the score barely moves (it was 1.0)
    assert alone < 0.7 and Q.score("ssim", y, photo, mask=band) == pytest.approx(alone, abs=0.01)


def test_noisier_scores_worse_on_every_metric(photo192):
    noisy = _noisy(photo192, 0.1)
    for name in Q.list_metrics():
        clean_s = Q.score(name, photo192, reference=photo192)
        noisy_s = Q.score(name, noisy, reference=photo192)
        assert np.isfinite(clean_s) and np.isfinite(noisy_s)
        assert Q.gain(name, noisy_s, clean_s) > 0, (name, clean_s, noisy_s)
        assert Q.gain(name, clean_s, noisy_s) < 0, name
    # and on a region: noise only inside the mask is seen by the masked score
    mask = np.zeros(photo192.shape[:2], bool)
    mask[40:140, 30:150] = True
    half = np.where(mask[..., None], noisy, photo192)
    for name in ("psnr", "ssim", "brisque", "piqe"):
        inside = Q.score(name, half, photo192, mask=mask)
        clean_inside = Q.score(name, photo192, photo192, mask=mask)
        assert Q.gain(name, inside, clean_inside) > 0, name


def test_no_reference_window_and_padding(photo192):
    m = Q.get_metric("brisque")
    mask = np.zeros(photo192.shape[:2], bool)
    mask[50:60, 70:75] = True  # 10x5 px: grown around its centre to the 32 px minimum
    expected = m.score(np.ascontiguousarray(photo192[39:71, 56:88]))
    assert m.score(photo192, mask=mask) == pytest.approx(expected, abs=1e-9)
    # big regions are scored on their own bounding box; the reference is ignored by NR metrics
    mask[:] = False
    mask[20:120, 10:150] = True
    assert m.score(photo192, reference=photo192, mask=mask) == pytest.approx(
        m.score(np.ascontiguousarray(photo192[20:120, 10:150])), abs=1e-9
    )
    # images smaller than the minimum size are padded, not refused
    small = np.ascontiguousarray(photo192[:64, :64])
    assert np.isfinite(Q.score("niqe", small))
    assert np.isfinite(Q.score("brisque", small[:20, :20]))
    with pytest.raises(ValueError, match="constant"):
        m.score(np.full((64, 64, 3), 0.5, np.float32))


def test_niqe_equals_scikit_video_with_stride_96(monkeypatch):
    """skvideo.measure.niqe needs np.int and scipy.misc.imresize (gone); shim them to run it once."""
    import scipy.misc
    from PIL import Image
    from skimage import data

    from ir_env.niqe_params import _LUMA, niqe_luma

    def imresize(arr, size, interp="bicubic", mode=None):
        im = Image.fromarray(np.asarray(arr, dtype=np.float32))
        return np.asarray(im.resize((int(arr.shape[1] * size), int(arr.shape[0] * size)), Image.BICUBIC))

    monkeypatch.setattr(np, "int", int, raising=False)
    monkeypatch.setattr(scipy.misc, "imresize", imresize, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import skvideo.measure

    img = data.astronaut()[:300, :260].astype(np.float32) / 255.0
    luma = (img @ _LUMA) * np.float32(255.0)
    expected = float(skvideo.measure.niqe(luma)[0])
    assert niqe_luma(luma, stride=96) == pytest.approx(expected, rel=1e-5)


def test_offline_creation_and_scoring(monkeypatch, photo192):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    Q.clear_cache()
    for name in ("niqe", "brisque", "piqe", "ms_ssim"):
        m = Q.get_metric(name)
        assert np.isfinite(m.score(photo192, reference=photo192))


@pytest.mark.skipif("__import__('torch').cuda.is_available()")
def test_cuda_refused_without_gpu():
    with pytest.raises(ValueError, match="CUDA is not available"):
        Q.get_metric("piqe", device="cuda")


def test_a_metric_undefined_on_the_image_is_an_error_not_a_nan() -> None:
    black = np.zeros((64, 64, 3), np.float32)
    with pytest.raises(ValueError, match="piqe is undefined on this image"):
        Q.score("piqe", black)
    part = np.full((64, 64, 3), 0.5, np.float32)
    part[:, 32:] = np.random.default_rng(0).random((64, 32, 3))
    part[:40, :40] = 0.0
    mask = np.zeros((64, 64), bool)
    mask[:30, :30] = True
    with pytest.raises(ValueError, match="undefined on this image region"):
        Q.score("piqe", part, mask=mask)
    assert np.isfinite(Q.score("piqe", part))


def test_niqe_refuses_a_constant_image_like_brisque() -> None:
    from ir_env.quality import get_metric

    with pytest.raises(ValueError, match="niqe is undefined on a constant image"):
        get_metric("niqe").score(np.zeros((128, 128, 3), np.float32))


def test_normalise_device_accepts_strings_and_torch_devices_and_names_bad_ones():
    import torch

    assert Q.normalise_device("cpu") == "cpu" and Q.normalise_device(torch.device("cpu")) == "cpu"
    for bad, msg in ((None, "got None"), ("gpu", "got 'gpu'"), ("cuda:x", "got 'cuda:x'"),
                     ("mps", "device must be 'cpu' or 'cuda"), (torch.device("meta"), "unsupported")):
        with pytest.raises(ValueError, match=msg):
            Q.normalise_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            Q.normalise_device("cuda:1")
    else:
        assert Q.normalise_device("cuda") == "cuda:0"
        with pytest.raises(ValueError, match="CUDA device"):
            Q.normalise_device(f"cuda:{torch.cuda.device_count()}")
