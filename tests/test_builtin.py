"""Built-in photos: offline, masks committed and reproducible, fixed split."""

import importlib.util

import numpy as np
import pytest

from rharm_lib.data.builtin import BUILTIN_PHOTOS, MASK_SIZE, _builtin_mask, load_builtin
from rharm_lib.data.photos import load_photos
from rharm_lib.errors import RharmInputError
from rharm_lib.paths import REPO_ROOT


def test_split_disjoint_and_shapes():
    tr = load_builtin("train", size=64)
    te = load_builtin("test", size=64)
    assert tr.images.shape == (len(tr), 3, 64, 64) and te.masks.shape == (len(te), 1, 64, 64)
    photos_tr = {n.rsplit("_", 1)[0] for n in tr.names}
    photos_te = {n.rsplit("_", 1)[0] for n in te.names}
    assert photos_tr.isdisjoint(photos_te)
    assert photos_te == {"coffee", "grace_hopper"}
    assert len(tr) + len(te) == sum(p.n_masks for p in BUILTIN_PHOTOS.values())
    for ps in (tr, te):
        area = ps.masks.float().mean(dim=(1, 2, 3))
        assert set(ps.masks.unique().tolist()) <= {0, 1}
        assert (area > 0.01).all() and (area < 0.7).all()


def test_load_photos_builtin_same():
    a = load_photos("builtin", "test", 32)
    b = load_builtin("test", 32)
    assert a.names == b.names and bool((a.images == b.images).all())
    with pytest.raises(RharmInputError):
        load_builtin("val")


def test_committed_masks_match_the_script():
    spec = importlib.util.spec_from_file_location(
        "make_builtin_masks", REPO_ROOT / "tools" / "make_builtin_masks.py"
    )
    if spec is None or not (REPO_ROOT / "tools" / "make_builtin_masks.py").is_file():
        pytest.skip("tools/ not present (installed package)")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, shapes in mod.SHAPES.items():
        assert len(shapes) == BUILTIN_PHOTOS[name].n_masks
        for k, shape in enumerate(shapes, start=1):
            committed = _builtin_mask(name, k)
            assert committed.shape == (MASK_SIZE, MASK_SIZE)
            assert np.array_equal(committed, mod.rasterize(shape)), (name, k)
