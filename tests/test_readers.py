"""Readers: image/mask conversions, the iHarmony4 layout (root list and per-subset lists,
any subset names), DIH99 and RealHM layouts, and their bad-input errors."""

import os

import numpy as np
import pytest
from fixtures_ihd import H, W, write_dih, write_ihd, write_png16
from PIL import Image

from rharm_lib.data.ihd import IHDDataset
from rharm_lib.data.imageio import load_mask, load_rgb, save_rgb
from rharm_lib.data.real import RealCompositeDataset, RealHMDataset
from rharm_lib.errors import RharmInputError

# ---------------------------------------------------------------- imageio


def test_load_rgb_conversions(tmp_path, rng):
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.array_equal(load_rgb(tmp_path / "rgb.png"), rgb)

    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    g = load_rgb(tmp_path / "gray.png")
    assert (
        g.shape == (5, 7, 3)
        and g.dtype == np.uint8
        and all(np.array_equal(g[..., c], gray) for c in range(3))
    )

    rgba = np.concatenate([rgb, rng.integers(0, 256, (5, 7, 1), dtype=np.uint8)], -1)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert np.array_equal(load_rgb(tmp_path / "rgba.png"), rgb)  # alpha dropped, not blended

    g16 = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
    write_png16(tmp_path / "g16.png", g16)
    out = load_rgb(tmp_path / "g16.png")
    assert np.array_equal(out[..., 1], (g16 >> 8).astype(np.uint8))

    c16 = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    write_png16(tmp_path / "c16.png", c16)
    assert np.array_equal(load_rgb(tmp_path / "c16.png"), (c16 >> 8).astype(np.uint8))

    pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=8)
    pal.save(tmp_path / "pal.png")
    assert np.array_equal(load_rgb(tmp_path / "pal.png"), np.asarray(pal.convert("RGB")))


def test_load_mask_binarisation(tmp_path):
    vals = np.array([[0, 1, 127, 128, 200, 255]], np.uint8)
    Image.fromarray(vals).save(tmp_path / "m.png")
    assert load_mask(tmp_path / "m.png").tolist() == [[0, 0, 0, 1, 1, 1]]  # half of 0..255
    Image.fromarray(np.array([[0, 1, 1, 0]], np.uint8)).save(tmp_path / "m01.png")
    assert load_mask(tmp_path / "m01.png").tolist() == [[0, 1, 1, 0]]  # {0,1} taken as is
    write_png16(tmp_path / "m16.png", np.array([[0, 32767, 32768, 65535]], np.uint16))
    assert load_mask(tmp_path / "m16.png").tolist() == [[0, 0, 1, 1]]  # half of 0..65535
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 1] = 255
    Image.fromarray(rgb).save(tmp_path / "mrgb.png")
    m = load_mask(tmp_path / "mrgb.png")
    assert m.dtype == np.uint8 and m.tolist() == [[0, 1, 0]]


def test_imageio_errors_name_the_file(tmp_path):
    with pytest.raises(RharmInputError, match="nope.png: no such file"):
        load_rgb(tmp_path / "nope.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(RharmInputError, match="bad.jpg: cannot read image"):
        load_rgb(tmp_path / "bad.jpg")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "trunc.png")
    data = (tmp_path / "trunc.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(RharmInputError, match="trunc.png"):
        load_mask(tmp_path / "trunc.png")


def test_save_rgb_atomic_roundtrip(tmp_path, rng):
    img = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    save_rgb(tmp_path / "sub" / "x.png", img)
    assert np.array_equal(load_rgb(tmp_path / "sub" / "x.png"), img)
    assert os.listdir(tmp_path / "sub") == ["x.png"]  # no temporary file left
    with pytest.raises(RharmInputError, match=r"float32 \(9, 11, 3\)"):
        save_rgb(tmp_path / "y.png", img.astype(np.float32))
    with pytest.raises(RharmInputError, match="suffix"):
        save_rgb(tmp_path / "y.txt", img)
    assert not (tmp_path / "y.png").exists()


# ---------------------------------------------------------------- iHarmony4 layout


@pytest.fixture
def ihd(tmp_path):
    root = tmp_path / "ihd"
    write_ihd(root)
    return root


def _key(s):
    return (s["subset"], s["name"])


def test_ihd_root_list_and_subset_lists_agree(ihd, tmp_path):
    a = IHDDataset(ihd, "test")
    assert len(a) == 5 and a.subsets == ["HCOCO", "HFlickr"] and a.available == ["HCOCO", "HFlickr"]
    s = a[0]
    assert set(s) == {"composite", "mask", "target", "name", "subset"}
    assert (
        s["composite"].shape == (H, W, 3)
        and s["target"].shape == (H, W, 3)
        and s["mask"].shape == (H, W)
    )
    assert s["composite"].dtype == s["mask"].dtype == np.uint8 and set(np.unique(s["mask"])) == {
        0,
        1,
    }
    assert (s["subset"], s["name"]) == ("HCOCO", "c0000_1_2")

    (ihd / "IHD_test.txt").unlink()
    b = IHDDataset(ihd, "test")  # per-subset lists
    assert [_key(b[i]) for i in range(len(b))] == [_key(a[i]) for i in range(len(a))]
    for i in range(len(a)):
        for k in ("composite", "mask", "target"):
            assert np.array_equal(a[i][k], b[i][k])
    comp, mask, real = b.paths[0]
    assert (comp.name, mask.name, real.name) == ("c0000_1_2.jpg", "c0000_1.png", "c0000.jpg")


def test_ihd_any_subset_names_and_filter(tmp_path):
    root = tmp_path / "bench"
    write_ihd(root, {"transfer": 2, "histogram": 1, "retouch": 1}, ext=".png")
    ds = IHDDataset(root)
    assert ds.available == ["histogram", "retouch", "transfer"] and len(ds) == 4
    f = IHDDataset(root, subsets=["retouch", "transfer"])
    assert f.subsets == ["transfer", "retouch"] and len(f) == 3  # list order kept
    assert IHDDataset(root, subsets="retouch,transfer").paths == f.paths
    with pytest.raises(RharmInputError, match=r"unknown subset.*'HCOCO'.*available: \['histogram'"):
        IHDDataset(root, subsets=["HCOCO"])


def test_ihd_real_names_with_underscores_and_single_subset_root(tmp_path):
    d = tmp_path / "HAdobe5k"
    write_ihd(tmp_path, {"HAdobe5k": 1}, root_list=False)
    # rename to a real-image stem that contains '_' (the two last fields are the ids)
    (d / "real_images" / "a0000.jpg").rename(d / "real_images" / "my_photo.jpg")
    (d / "masks" / "a0000_1.png").rename(d / "masks" / "my_photo_1.png")
    (d / "composite_images" / "a0000_1_2.jpg").rename(d / "composite_images" / "my_photo_1_2.jpg")
    (d / "HAdobe5k_test.txt").write_text("# comment\n\nmy_photo_1_2.jpg\r\n")
    ds = IHDDataset(d)  # the subset directory itself as the root
    assert len(ds) == 1 and ds[0]["name"] == "my_photo_1_2" and ds[0]["subset"] == "HAdobe5k"
    assert ds.paths[0][2].name == "my_photo.jpg"


def test_ihd_missing_file_names_file_and_line(ihd):
    (ihd / "HFlickr" / "masks" / "f0001_1.png").unlink()
    with pytest.raises(
        RharmInputError, match=r"f0001_1\.png: no such file \(list line 5 of .*IHD_test\.txt"
    ):
        IHDDataset(ihd)
    (ihd / "HCOCO" / "real_images" / "c0002.jpg").unlink()
    with pytest.raises(RharmInputError, match=r"c0002\.jpg: no such file \(list line 3 of"):
        IHDDataset(ihd, subsets=["HCOCO"])


def test_ihd_bad_name_empty_list_missing_root(ihd, tmp_path):
    (ihd / "IHD_test.txt").write_text("HCOCO/composite_images/broken.jpg\n")
    with pytest.raises(RharmInputError, match=r"list line 1 .*<real>_<maskid>_<compid>"):
        IHDDataset(ihd)
    (ihd / "IHD_test.txt").write_text("\n# nothing\n")
    with pytest.raises(RharmInputError, match="'test' list is empty"):
        IHDDataset(ihd)
    with pytest.raises(RharmInputError, match="no such dataset directory"):
        IHDDataset(tmp_path / "nowhere")
    with pytest.raises(RharmInputError, match="no IHD_train.txt"):
        IHDDataset(ihd, "train")


def test_ihd_lazy_and_read_errors(ihd):
    ds = IHDDataset(ihd)  # nothing read yet: a corrupt file only fails when its sample is read
    (ihd / "HCOCO" / "real_images" / "c0001.jpg").write_bytes(b"garbage")
    assert ds[0]["name"] == "c0000_1_2"
    with pytest.raises(RharmInputError, match=r"c0001\.jpg: cannot read image.*list line 2 of"):
        ds[1]
    Image.fromarray(np.zeros((50, 60), np.uint8)).save(ihd / "HCOCO" / "masks" / "c0002_1.png")
    with pytest.raises(
        RharmInputError, match=r"sizes disagree.*composite 300x200, mask 60x50, target 300x200"
    ):
        ds[2]


# ---------------------------------------------------------------- DIH99 / RealHM


def test_dih99_reader(tmp_path):
    names = write_dih(tmp_path / "dih")
    ds = RealCompositeDataset(tmp_path / "dih")
    assert len(ds) == 3 and [ds[i]["name"] for i in range(3)] == names
    s = ds[1]
    assert (
        s["target"] is None and s["composite"].shape == (72, 96, 3) and s["mask"].shape == (72, 96)
    )
    assert s["subset"] == "dih" and set(np.unique(s["mask"])) == {0, 1}
    (tmp_path / "dih" / "list.txt").unlink()  # no list: the directory listing, in name order
    assert len(RealCompositeDataset(tmp_path / "dih", subset="x")) == 3
    (tmp_path / "dih" / "list.txt").write_text("dih_test0\ndih_test9\n")
    with pytest.raises(RharmInputError, match=r"dih_test9\.jpg: no such file \(line 2 of"):
        RealCompositeDataset(tmp_path / "dih")


def test_realhm_reader(tmp_path):
    write_dih(tmp_path / "rhm", n=2, with_target=True, list_file=False)
    ds = RealHMDataset(tmp_path / "rhm")
    s = ds[0]
    assert s["target"].shape == s["composite"].shape == (64, 96, 3)
    assert ds.paths[0][2].name == "dih_test0.png"
    (tmp_path / "rhm" / "real_images" / "dih_test1.png").unlink()
    with pytest.raises(RharmInputError, match=r"real_images/dih_test1\.jpg: no such file"):
        RealHMDataset(tmp_path / "rhm")


@pytest.mark.skipif(
    not os.path.isdir(
        os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "real_composites")
    ),
    reason="shared real composites not available",
)
def test_shared_real_composites():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "real_composites")
    ds = RealCompositeDataset(root)
    assert len(ds) == 347
    s = ds[len(ds) - 1]
    assert s["composite"].shape[:2] == s["mask"].shape and s["mask"].max() == 1
