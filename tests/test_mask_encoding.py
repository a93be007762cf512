"""A mask PNG holding {0,1} (saved without scaling) reads as the same foreground as the
{0,255} PNG through every reader: imageio, iHarmony4, real composites, lalonde photos, packs
and the built-in photos' committed masks."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from fixtures_ihd import write_dih, write_ihd
from PIL import Image

from rharm_lib.data import builtin
from rharm_lib.data.ihd import IHDDataset
from rharm_lib.data.imageio import decode_mask, load_mask
from rharm_lib.data.pack import read_pack, write_pack
from rharm_lib.data.photos import load_photos
from rharm_lib.data.real import RealCompositeDataset, RealHMDataset


def _to_01(folder: Path) -> int:
    """Rewrite every ``{0,255}`` mask PNG under ``folder`` as ``{0,1}``; returns how many."""
    n = 0
    for p in sorted(folder.rglob("*.png")):
        a = np.asarray(Image.open(p))
        if a.ndim == 2 and set(np.unique(a).tolist()) <= {0, 255}:
            Image.fromarray((a // 255).astype(np.uint8)).save(p)
            n += 1
    return n


def _masks(ds) -> list[np.ndarray]:
    return [ds[i]["mask"] for i in range(len(ds))]


def _assert_same_nonempty(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert x.dtype == np.uint8 and x.max() == 1 and x.sum() > 0
        np.testing.assert_array_equal(x, y)


def test_imageio_reads_01_masks_as_foreground(tmp_path):
    m = np.zeros((6, 9), np.uint8)
    m[1:4, 2:7] = 1
    Image.fromarray(m).save(tmp_path / "m01.png")
    Image.fromarray(m * 255).save(tmp_path / "m255.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "m01.png"), m)
    np.testing.assert_array_equal(load_mask(tmp_path / "m255.png"), m)
    np.testing.assert_array_equal(decode_mask((tmp_path / "m01.png").read_bytes(), "m01"), m)


def test_ihd_and_real_readers_read_01_masks(tmp_path):
    ihd, dih, hm = tmp_path / "ihd", tmp_path / "dih", tmp_path / "hm"
    write_ihd(ihd, ext=".png")
    write_dih(dih)
    write_dih(hm, with_target=True)
    before = [
        _masks(IHDDataset(ihd, "test")),
        _masks(RealCompositeDataset(dih)),
        _masks(RealHMDataset(hm)),
    ]
    assert _to_01(ihd / "HCOCO" / "masks") and _to_01(dih / "masks") and _to_01(hm / "masks")
    assert _to_01(ihd / "HFlickr" / "masks")
    after = [
        _masks(IHDDataset(ihd, "test")),
        _masks(RealCompositeDataset(dih)),
        _masks(RealHMDataset(hm)),
    ]
    for a, b in zip(after, before, strict=True):
        _assert_same_nonempty(a, b)


def _lalonde(root: Path, n: int = 3, size: int = 24) -> None:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    ids = [f"p{i}" for i in range(n)]
    for i, name in enumerate(ids):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(
            root / "images" / f"{name}.jpg", quality=95
        )
        m = np.zeros((size, size), np.uint8)
        m[3 + i : 15 + i, 4:18] = 255
        Image.fromarray(m).save(root / "masks" / f"{name}.png")
    for split in ("train", "test"):
        (root / f"{split}.txt").write_text("\n".join(ids) + "\n")


def test_lalonde_photos_and_packs_read_01_masks(tmp_path):
    root = tmp_path / "lalonde"
    _lalonde(root)
    ref = load_photos(root, "train", size=24)
    assert _to_01(root / "masks") == 3
    got = load_photos(root, "train", size=24)
    _assert_same_nonempty(list(got.masks[:, 0].numpy()), list(ref.masks[:, 0].numpy()))
    # resized (area rule) and through a pack
    small = load_photos(root, "train", size=12)
    assert small.masks.sum() > 0
    pack = write_pack(small, tmp_path / "p.rhpack", split="train")
    back = read_pack(pack, split="train")
    np.testing.assert_array_equal(back.masks.numpy(), small.masks.numpy())


def test_builtin_masks_read_01_pngs(tmp_path, monkeypatch):
    name = next(iter(builtin.BUILTIN_PHOTOS))
    ref = builtin._builtin_mask(name, 1)
    assets = tmp_path / "assets" / "builtin"
    assets.mkdir(parents=True)
    Image.fromarray(ref).save(assets / f"{name}_1.png")  # {0,1}, not scaled to 255

    class _Resources:  # stands in for importlib.resources, pointing at tmp_path
        @staticmethod
        def files(package: str) -> Path:
            return tmp_path

        as_file = staticmethod(contextlib.nullcontext)

    monkeypatch.setattr(builtin, "resources", _Resources)
    _assert_same_nonempty([builtin._builtin_mask(name, 1)], [ref])
