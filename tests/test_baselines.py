"""Classical baselines: background untouched, degenerate masks, and each one checked
against what it promises (Lab statistics matched; histograms matched)."""

import numpy as np
import pytest
from fixtures_ihd import make_pair
from skimage.color import rgb2lab

from rharm_lib.baselines import BASELINES, histmatch, reinhard
from rharm_lib.errors import RharmInputError
from rharm_lib.metrics import image_metrics


@pytest.fixture
def case(rng):
    real, mask, comp = make_pair(rng, 64, 80, shift=50)
    return real, (mask > 0).astype(np.uint8), comp


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_contract_background_untouched(case, name):
    real, mask, comp = case
    out = BASELINES[name](comp, mask)
    assert out.dtype == np.uint8 and out.shape == comp.shape
    assert np.array_equal(out[mask == 0], comp[mask == 0])
    assert out is not comp  # a new array: callers may write into it
    if name == "composite":
        assert np.array_equal(out, comp)
    else:
        assert not np.array_equal(out[mask == 1], comp[mask == 1])


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_degenerate_masks(case, name):
    _, _, comp = case
    f = BASELINES[name]
    assert np.array_equal(f(comp, np.zeros(comp.shape[:2], np.uint8)), comp)  # empty
    assert np.array_equal(f(comp, np.ones(comp.shape[:2], np.uint8)), comp)  # full
    one = np.zeros(comp.shape[:2], np.uint8)
    one[3, 4] = 1
    out = f(comp, one)
    assert np.array_equal(
        np.delete(out.reshape(-1, 3), 3 * 80 + 4, 0), np.delete(comp.reshape(-1, 3), 3 * 80 + 4, 0)
    )
    flat = np.full_like(comp, 90)
    flat[one == 0] = comp[one == 0]
    assert f(flat, one).dtype == np.uint8  # zero foreground std: no NaN, no error


def test_reinhard_matches_lab_statistics(case):
    _, mask, comp = case
    out = reinhard(comp, mask)
    fg = mask.astype(bool)
    lab_out = rgb2lab(out[fg] / 255.0)
    lab_bg = rgb2lab(comp[~fg] / 255.0)
    # quantisation to uint8 (and rare gamut clipping) limits the match to ~0.5 Lab units
    np.testing.assert_allclose(lab_out.mean(0), lab_bg.mean(0), atol=0.6)
    np.testing.assert_allclose(lab_out.std(0), lab_bg.std(0), atol=0.6)


def _cdf(values):
    return np.searchsorted(np.sort(values), np.arange(256), side="right") / len(values)


def test_histmatch_matches_channel_histograms(case):
    _, mask, comp = case
    out = histmatch(comp, mask)
    fg = mask.astype(bool)
    for c in range(3):
        # Kolmogorov-Smirnov distance of the foreground to the background, per channel:
        # 0.34-0.88 before, a few percent after (ties among uint8 values limit it)
        before = np.abs(_cdf(comp[fg][:, c]) - _cdf(comp[~fg][:, c])).max()
        after = np.abs(_cdf(out[fg][:, c]) - _cdf(comp[~fg][:, c])).max()
        assert after < 0.05 < 0.3 < before


def test_baselines_undo_a_global_colour_shift(rng):
    # a foreground drawn from the background's distribution, then shifted: both baselines
    # should get much closer to the truth than the composite
    real, mask, comp = make_pair(rng, 96, 96, shift=60)
    real = rng.integers(60, 190, real.shape).astype(np.uint8)
    fg = mask > 0
    comp = real.copy()
    comp[fg] = np.clip(real[fg].astype(int) + [60, -30, 20], 0, 255)
    m = fg.astype(np.uint8)
    base = image_metrics(comp, real, m)["fmse"]
    for name in ("reinhard", "histmatch"):
        assert image_metrics(BASELINES[name](comp, m), real, m)["fmse"] < 0.5 * base


def test_bad_input():
    with pytest.raises(RharmInputError, match=r"\(4, 4, 3\).*\(4, 5\)"):
        reinhard(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(RharmInputError, match="float64"):
        histmatch(np.zeros((4, 4, 3)), np.zeros((4, 4), np.uint8))
