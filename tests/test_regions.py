"""Region masks: one connected component, area bounds, determinism, bad input."""

import numpy as np
import pytest
from scipy import ndimage

from rharm_lib.data.builtin import builtin_image
from rharm_lib.data.regions import region_mask
from rharm_lib.errors import RharmInputError


def _check(m, shape, lo, hi):
    assert m.shape == shape and m.dtype == np.uint8
    assert set(np.unique(m).tolist()) <= {0, 1}
    _, k = ndimage.label(m)
    assert k == 1
    assert lo - 0.01 <= m.mean() <= hi + 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_real_photo_constraints(seed):
    im = builtin_image("astronaut", 160)
    m = region_mask(im, seed)
    _check(m, (160, 160), 0.05, 0.5)


def test_non_square_and_custom_bounds():
    im = builtin_image("chelsea", 96)[:, :80]
    m = region_mask(np.ascontiguousarray(im), 3, min_area=0.1, max_area=0.2)
    _check(m, (96, 80), 0.1, 0.2)


def test_deterministic_and_seed_dependent():
    im = builtin_image("motorcycle", 128)
    a = region_mask(im, 7)
    assert np.array_equal(a, region_mask(im, 7))
    others = [region_mask(im, s) for s in range(8, 12)]
    assert any(not np.array_equal(a, o) for o in others)


def test_follows_a_coloured_object():
    # a red disc on a noisy grey background: a region seeded inside it stays mostly in it
    rng = np.random.default_rng(0)
    im = (rng.normal(128, 6, (128, 128, 3))).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:128, 0:128]
    disc = (yy - 64) ** 2 + (xx - 64) ** 2 < 30**2
    im[disc] = (200, 30, 30)
    hits = []
    for s in range(6):
        m = region_mask(im, s, min_area=0.1, max_area=0.2)
        _check(m, (128, 128), 0.1, 0.2)
        hits.append((m.astype(bool) & disc).sum() / m.sum())
    # seeds inside the disc grow within it (area 0.17 fits); outside ones stay outside
    assert all(h > 0.9 or h < 0.1 for h in hits)


def test_uniform_image_still_valid():
    im = np.full((64, 64, 3), 90, np.uint8)
    _check(region_mask(im, 0), (64, 64), 0.05, 0.5)


def test_bad_input():
    with pytest.raises(RharmInputError, match="uint8"):
        region_mask(np.zeros((32, 32), np.uint8), 0)
    with pytest.raises(RharmInputError, match="min_area"):
        region_mask(np.zeros((32, 32, 3), np.uint8), 0, min_area=0.6, max_area=0.5)
