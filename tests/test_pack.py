"""Photo packs: round trip, exact masks, deterministic bytes, split check, bad files."""

import hashlib
import os

import pytest
import torch

from rharm_lib.cli import main
from rharm_lib.data.builtin import load_builtin
from rharm_lib.data.pack import is_pack, read_pack, write_pack
from rharm_lib.data.photos import load_photos
from rharm_lib.errors import RharmInputError


@pytest.fixture(scope="module")
def photos():
    return load_builtin("train", size=64)


def test_round_trip(tmp_path, photos):
    p = write_pack(photos, tmp_path / "t.rhpack", split="train", quality=85)
    assert is_pack(p)
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not the 0600 of a temporary file
    back = read_pack(p, split="train")
    assert back.names == photos.names
    assert torch.equal(back.masks, photos.masks)  # masks are exact
    err = (back.images.float() - photos.images.float()).abs().mean()
    # JPEG q85: lossy but close (64x64 downscales are detail-dense, hence the loose bound)
    assert 0 < err < 8.0
    same = load_photos(p, "train", 64)
    assert torch.equal(same.images, back.images)
    small = load_photos(p, "train", 32)
    assert small.images.shape[-1] == 32 and set(small.masks.unique().tolist()) <= {0, 1}


def test_deterministic_bytes(tmp_path, photos):
    a = write_pack(photos, tmp_path / "a.rhpack", split="train")
    b = write_pack(photos, tmp_path / "b.rhpack", split="train")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_errors(tmp_path, photos):
    p = write_pack(photos, tmp_path / "t.rhpack", split="train")
    with pytest.raises(RharmInputError, match="'train' split"):
        read_pack(p, split="test")
    bad = tmp_path / "bad.rhpack"
    bad.write_bytes(b"not a zip")
    assert not is_pack(bad)
    with pytest.raises(RharmInputError, match="cannot read pack"):
        read_pack(bad)
    trunc = tmp_path / "trunc.rhpack"
    trunc.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(RharmInputError):
        read_pack(trunc)
    with pytest.raises(RharmInputError, match="quality"):
        write_pack(photos, tmp_path / "q.rhpack", split="train", quality=0)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bad.rhpack", "t.rhpack", "trunc.rhpack"]


def test_cli_pack(tmp_path, capsys):
    out = tmp_path / "b.rhpack"
    assert (
        main(
            [
                "data",
                "pack",
                "--photos",
                "builtin",
                "--split",
                "test",
                "--size",
                "32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "MB, loads in" in capsys.readouterr().out
    assert len(read_pack(out)) == len(load_builtin("test"))
