"""Metrics: cross-checks against scikit-image and a float64 NumPy/SciPy re-computation,
degenerate masks, the resizing protocol and the pooling into subsets and All."""

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from rharm_lib.errors import RharmInputError
from rharm_lib.metrics import (
    METRICS,
    PSNR_CAP,
    SUMMARY_COLUMNS,
    image_metrics,
    prepare_for_eval,
    resize_mask,
    summarize,
    summary_markdown,
    to_uint8,
)


def _ssim_map64(x, y):
    """Wang et al. 2004 SSIM map per channel in float64 with SciPy: Gaussian sigma 1.5
    truncated at 3.5 sigma (11x11), reflect padding, population statistics."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = np.empty(x.shape)
    for c in range(3):
        a, b = x[..., c].astype(np.float64), y[..., c].astype(np.float64)
        f = lambda z: gaussian_filter(z, 1.5, truncate=3.5, mode="reflect")  # noqa: E731
        ma, mb = f(a), f(b)
        va, vb, cov = f(a * a) - ma**2, f(b * b) - mb**2, f(a * b) - ma * mb
        out[..., c] = ((2 * ma * mb + c1) * (2 * cov + c2)) / (
            (ma**2 + mb**2 + c1) * (va + vb + c2)
        )
    return out


def _random_case(rng, h, w, p_fg=0.3):
    t = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    noise = rng.integers(-30, 31, (h, w, 3))
    p = np.clip(t.astype(int) + noise, 0, 255).astype(np.uint8)
    m = (rng.random((h, w)) < p_fg).astype(np.uint8)
    return p, t, m


@pytest.mark.parametrize("shape", [(32, 32), (40, 57), (64, 48)])
def test_mse_psnr_against_skimage(rng, shape):
    p, t, m = _random_case(rng, *shape)
    r = image_metrics(p, t, m)
    assert r["mse"] == pytest.approx(mean_squared_error(t, p), rel=1e-12)
    assert r["psnr"] == pytest.approx(peak_signal_noise_ratio(t, p, data_range=255), rel=1e-12)


@pytest.mark.parametrize("shape", [(32, 32), (40, 57)])
def test_ssim_against_skimage_and_float64(rng, shape):
    p, t, m = _random_case(rng, *shape)
    r = image_metrics(p, t, m)
    ref = structural_similarity(
        t,
        p,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )
    assert r["ssim"] == pytest.approx(ref, abs=1e-12)
    smap = _ssim_map64(t, p)
    # SSIM: mean over the "valid" region (5-pixel border cropped), per channel then averaged
    assert r["ssim"] == pytest.approx(smap[5:-5, 5:-5].mean(), abs=1e-9)
    # fSSIM: mean of the full map over the foreground pixels (and channels)
    fg = m.astype(bool)
    assert r["fssim"] == pytest.approx(smap[fg].mean(), abs=1e-9)


def test_mse_fmse_against_naive_loops(rng):
    p, t, m = _random_case(rng, 23, 31)
    r = image_metrics(p, t, m)
    se_all, se_fg, n_fg = 0.0, 0.0, 0
    for y in range(23):
        for x in range(31):
            e = sum((float(p[y, x, c]) - float(t[y, x, c])) ** 2 for c in range(3))
            se_all += e
            if m[y, x]:
                se_fg += e
                n_fg += 1
    assert r["mse"] == pytest.approx(se_all / (23 * 31 * 3), rel=1e-12)
    assert r["fmse"] == pytest.approx(se_fg / (3 * n_fg), rel=1e-12)


def test_psnr_cap_and_peak_convention(rng):
    t = rng.integers(0, 200, (16, 16, 3), dtype=np.uint8)
    r = image_metrics(t, t, np.ones((16, 16), np.uint8))
    assert r["mse"] == 0 and r["psnr"] == PSNR_CAP and r["fmse"] == 0
    assert r["ssim"] == pytest.approx(1.0) and r["fssim"] == pytest.approx(1.0)
    p = t.copy()
    p[0, 0, 0] += 10
    r = image_metrics(p, t, np.ones((16, 16), np.uint8))
    mse = 100 / (16 * 16 * 3)
    # saic-vul's PSNRMetric: the target's own maximum as the peak, epsilon 1e-6
    assert r["psnr_peak"] == pytest.approx(10 * math.log10(float(t.max()) ** 2 / (mse + 1e-6)))
    assert r["psnr"] == pytest.approx(10 * math.log10(255**2 / mse))
    assert r["psnr_peak"] < r["psnr"]  # max(t) < 255 here


def test_black_target_peak_stays_finite():
    t = np.zeros((16, 16, 3), np.uint8)
    p = t + 3
    r = image_metrics(p, t, np.ones((16, 16), np.uint8))
    assert all(np.isfinite(r[k]) for k in METRICS)


def test_degenerate_masks(rng):
    p, t, _ = _random_case(rng, 24, 24)
    empty = image_metrics(p, t, np.zeros((24, 24), np.uint8))
    assert math.isnan(empty["fmse"]) and math.isnan(empty["fssim"])
    assert all(np.isfinite(empty[k]) for k in ("mse", "psnr", "psnr_peak", "ssim"))

    full = image_metrics(p, t, np.ones((24, 24), np.uint8))
    assert full["fmse"] == pytest.approx(full["mse"], rel=1e-12)
    assert full["fssim"] == pytest.approx(_ssim_map64(t, p).mean(), abs=1e-9)

    one = np.zeros((24, 24), np.uint8)
    one[0, 23] = 1  # a corner pixel: still counted in fSSIM (full map)
    r = image_metrics(p, t, one)
    d = p[0, 23].astype(float) - t[0, 23].astype(float)
    assert r["fmse"] == pytest.approx((d**2).sum() / 3)
    assert r["fssim"] == pytest.approx(_ssim_map64(t, p)[0, 23].mean(), abs=1e-9)


def test_constant_images_no_nan():
    t = np.full((16, 16, 3), 7, np.uint8)
    p = np.full((16, 16, 3), 9, np.uint8)
    m = np.zeros((16, 16), np.uint8)
    m[3:5, 3:5] = 1
    r = image_metrics(p, t, m)
    assert all(np.isfinite(r[k]) for k in METRICS)
    assert r["fmse"] == pytest.approx(4.0)


def test_bad_shapes_are_quoted():
    t = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(RharmInputError, match=r"\(16, 17, 3\) and \(16, 16, 3\)"):
        image_metrics(np.zeros((16, 17, 3), np.uint8), t, np.zeros((16, 16), np.uint8))
    with pytest.raises(RharmInputError, match=r"mask shape \(15, 16\)"):
        image_metrics(t, t, np.zeros((15, 16), np.uint8))
    with pytest.raises(RharmInputError, match="uint8"):
        image_metrics(t.astype(np.float32), t, np.zeros((16, 16), np.uint8))
    with pytest.raises(RharmInputError, match="11x11"):
        image_metrics(t[:8], t[:8], np.zeros((8, 16), np.uint8))


def test_prepare_for_eval_protocol(rng):
    h, w = 200, 300
    t = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pred = t.astype(np.float64) + rng.normal(0, 40, (h, w, 3))  # float, out of range
    m = np.zeros((h, w), np.uint8)
    m[40:90, 100:180] = 255
    p2, t2, m2 = prepare_for_eval(pred, t, m, 256)
    assert p2.shape == t2.shape == (256, 256, 3) and m2.shape == (256, 256)
    assert p2.dtype == t2.dtype == m2.dtype == np.uint8 and set(np.unique(m2)) <= {0, 1}
    # clamp + round first, then PIL bilinear
    q = np.rint(np.clip(pred, 0, 255)).astype(np.uint8)
    assert np.array_equal(p2, np.asarray(Image.fromarray(q).resize((256, 256), Image.BILINEAR)))
    assert np.array_equal(t2, np.asarray(Image.fromarray(t).resize((256, 256), Image.BILINEAR)))
    # nearest on the mask: the same as PIL nearest on the 0/255 image, binarised
    ref = np.asarray(Image.fromarray(m).resize((256, 256), Image.NEAREST)) >= 128
    assert np.array_equal(m2.astype(bool), ref)
    # native resolution: nothing resized
    p3, t3, m3 = prepare_for_eval(q, t, m, None)
    assert (
        p3.shape == (h, w, 3)
        and np.array_equal(t3, t)
        and np.array_equal(m3, (m > 0).astype(np.uint8))
    )
    with pytest.raises(RharmInputError, match=r"\(200, 10\).*\(200, 300, 3\)"):
        prepare_for_eval(q, t, m[:, :10], 256)
    with pytest.raises(
        RharmInputError, match=r"\(256, 256, 3\) differs from target shape \(200, 300, 3\)"
    ):
        prepare_for_eval(p2, t, m, None)


def test_to_uint8_and_resize_mask():
    x = np.array([[[-5.0, 0.4, 0.6], [254.5, 255.7, np.nan]]])
    assert to_uint8(x).tolist() == [[[0, 0, 1], [254, 255, 0]]]
    soft = np.array([[0.2, 0.5], [0.7, 1.0]], np.float32)
    assert resize_mask(soft, None).tolist() == [[0, 1], [1, 1]]
    assert resize_mask(np.array([[0, 1], [1, 0]], np.uint8), 4).sum() == 8


def _frame(rows):
    return pd.DataFrame(rows, columns=["subset", "name", *METRICS])


def test_summarize_image_weighted_and_nan_skipping():
    nan = float("nan")
    rows = [
        ["A", "a1", 1.0, 30.0, 31.0, 10.0, 0.9, 0.8],
        ["A", "a2", 3.0, 32.0, 33.0, nan, 0.7, nan],  # no foreground
        ["B", "b1", 5.0, 40.0, 41.0, 20.0, 0.5, 0.6],
        ["B", "b2", 7.0, 20.0, 21.0, 40.0, 0.3, 0.2],
        ["B", "b3", 9.0, 10.0, 11.0, 60.0, 0.1, 0.1],
    ]
    s = summarize(_frame(rows))
    assert tuple(s.columns) == SUMMARY_COLUMNS
    assert s["subset"].tolist() == ["A", "B", "All"]
    a, b, al = (s.iloc[i] for i in range(3))
    assert (a["n"], a["n_fg_skipped"], b["n_fg_skipped"], al["n"], al["n_fg_skipped"]) == (
        2,
        1,
        0,
        5,
        1,
    )
    assert a["mse"] == pytest.approx(2.0) and a["fmse"] == pytest.approx(10.0)
    assert b["fssim"] == pytest.approx(0.3)
    # All is image-weighted (mean over 5 images), not the mean of the subset means
    assert al["mse"] == pytest.approx(5.0) and al["mse"] != pytest.approx((2.0 + 7.0) / 2)
    assert al["fmse"] == pytest.approx((10 + 20 + 40 + 60) / 4)
    md = summary_markdown(s, "title")
    assert md.startswith("title\n") and "| All | 5 | 5.00 |" in md


def test_summarize_all_without_foreground_and_errors():
    nan = float("nan")
    s = summarize(_frame([["A", "x", 1.0, 1.0, 1.0, nan, 1.0, nan]]))
    assert math.isnan(s.iloc[-1]["fmse"]) and s.iloc[-1]["n_fg_skipped"] == 1
    with pytest.raises(RharmInputError, match="no images"):
        summarize(_frame([]))
    with pytest.raises(RharmInputError, match="fssim"):
        summarize(_frame([["A", "x", 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]).drop(columns=["fssim"]))
