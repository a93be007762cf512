"""The benchmark writer: iHarmony4 layout, byte-identical reruns, atomic writes, cache."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from rharm_lib.cli import main
from rharm_lib.data import benchmark
from rharm_lib.data.benchmark import SUBSETS, ensure_builtin_benchmark, tree_sha256, write_benchmark
from rharm_lib.data.builtin import load_builtin
from rharm_lib.data.photos import PhotoSet
from rharm_lib.errors import RharmInputError


@pytest.fixture(scope="module")
def photos():
    return load_builtin("test", size=48)


def test_layout_and_background(tmp_path, photos):
    out = write_benchmark(photos, tmp_path / "b", seed=0)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # not the 0700 of mkdtemp
    lines = (out / "IHD_test.txt").read_text().split()
    assert len(lines) == len(photos) * len(SUBSETS)
    for fam, sub in SUBSETS.items():
        names = (out / sub / f"{sub}_test.txt").read_text().split()
        assert len(names) == len(photos)
        for n in names:
            assert f"{sub}/composite_images/{n}" in lines
            real, maskid, compid = n[: -len(".png")].rsplit("_", 2)
            assert "_" not in real and (maskid, compid) == ("1", "1")
            comp = np.asarray(Image.open(out / sub / "composite_images" / n))
            mask = np.asarray(Image.open(out / sub / "masks" / f"{real}_1.png"))
            target = np.asarray(Image.open(out / sub / "real_images" / f"{real}.png"))
            assert set(np.unique(mask)) <= {0, 255}
            bg = mask == 0
            assert np.array_equal(comp[bg], target[bg])
            assert not np.array_equal(comp[~bg], target[~bg]), (fam, n)
    # the photos themselves are written losslessly
    first = np.asarray(Image.open(out / "Transfer" / "real_images" / "coffee-1.png"))
    assert np.array_equal(first, photos.images[0].permute(1, 2, 0).numpy())


def test_byte_identical_reruns_and_seed(tmp_path, photos):
    a = write_benchmark(photos, tmp_path / "a", seed=0)
    b = write_benchmark(photos, tmp_path / "b", seed=0)
    c = write_benchmark(photos, tmp_path / "c", seed=1)
    assert tree_sha256(a) == tree_sha256(b)
    assert tree_sha256(a) != tree_sha256(c)


def test_references_are_other_photos(photos):
    _, ref, _ = benchmark.make_composites(photos, "transfer", seed=0)
    assert sorted(ref) == list(range(len(photos)))
    assert all(r != i for i, r in enumerate(ref))


def test_manifest_names_sampler_and_masks_per_family(tmp_path, photos):
    import json

    from rharm_lib.data.mask_rule import MaskRuleConfig, select_masks
    from rharm_lib.data.synth import FAMILIES, SAMPLER_VERSION

    out = write_benchmark(photos, tmp_path / "b", seed=0)
    rec = json.loads((out / "benchmark.json").read_text())
    assert rec["benchmark_version"] == benchmark.BENCHMARK_VERSION == 3
    assert rec["sampler_version"] == SAMPLER_VERSION == 2
    assert rec["mask_rule"] == {**MaskRuleConfig().__dict__}
    # each subset's masks are the mask rule's choice for that family
    for k, fam in enumerate(FAMILIES):
        sel = select_masks(photos, fam, 0, family_index=k)
        for i, name in enumerate(photos.names):
            real = benchmark.real_name(name)
            m = np.asarray(Image.open(out / SUBSETS[fam] / "masks" / f"{real}_1.png")) // 255
            assert np.array_equal(m, sel.masks[i, 0].numpy())
    # the human masks only, as sampler version 1 did, is a different benchmark
    off = write_benchmark(photos, tmp_path / "h", seed=0, mask_cfg=MaskRuleConfig(enabled=False))
    assert tree_sha256(off) != tree_sha256(out)


def test_atomic_on_failure(tmp_path, photos, monkeypatch):
    calls = {"n": 0}
    real = benchmark.make_composites

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(*a, **k)

    monkeypatch.setattr(benchmark, "make_composites", failing)
    with pytest.raises(RuntimeError):
        write_benchmark(photos, tmp_path / "x")
    assert os.listdir(tmp_path) == []


def test_existing_out_and_bad_family(tmp_path, photos):
    write_benchmark(photos, tmp_path / "b", families=["retouch"])
    with pytest.raises(RharmInputError, match="already exists"):
        write_benchmark(photos, tmp_path / "b")
    write_benchmark(photos, tmp_path / "b", overwrite=True)
    assert (tmp_path / "b" / "Relight").is_dir()
    with pytest.raises(RharmInputError, match="unknown"):
        write_benchmark(photos, tmp_path / "c", families=["sepia"])
    empty = PhotoSet(
        torch.zeros(0, 3, 8, 8, dtype=torch.uint8), torch.zeros(0, 1, 8, 8, dtype=torch.uint8), []
    )
    with pytest.raises(RharmInputError, match="no photos"):
        write_benchmark(empty, tmp_path / "d")


def test_readable_by_ihd_reader(tmp_path, photos):
    ihd = pytest.importorskip("rharm_lib.data.ihd")
    out = write_benchmark(photos, tmp_path / "b")
    ds = ihd.IHDDataset(out, "test")
    assert len(ds) == len(photos) * 4
    s = ds[0]
    assert s["composite"].shape == (48, 48, 3) and s["mask"].max() == 1


def test_ensure_builtin_benchmark_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RHARM_CACHE", str(tmp_path))
    p1 = ensure_builtin_benchmark()
    assert (p1 / "IHD_test.txt").is_file()
    stamp = (p1 / "IHD_test.txt").stat().st_mtime_ns
    p2 = ensure_builtin_benchmark()
    assert p2 == p1 and (p2 / "IHD_test.txt").stat().st_mtime_ns == stamp
    assert len((p1 / "IHD_test.txt").read_text().split()) == len(load_builtin("test")) * 4


def test_cli_synth_and_errors(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["data", "synth", "--photos", "builtin", "--size", "32", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert tree_sha256(out) in text
    assert main(["data", "checksum", str(out)]) == 0
    assert tree_sha256(out) in capsys.readouterr().out
    assert (
        main(["data", "synth", "--photos", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err


def _lalonde_dir(root, n=3, size=40):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    ids = [f"image_{100000 + i}" for i in range(n)]
    for i, pid in enumerate(ids):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            root / "images" / f"{pid}.jpg", quality=95
        )
        m = np.zeros((size, size), np.uint8)
        m[5 : 20 + i, 8:30] = 255
        Image.fromarray(m).save(root / "masks" / f"{pid}.png")
    (root / "train.txt").write_text("\n".join(ids[:2]) + "\n")
    (root / "test.txt").write_text(ids[2] + "\n")
    return ids


def test_lalonde_dir_photos_and_errors(tmp_path):
    from rharm_lib.data.photos import load_photos

    root = tmp_path / "lal"
    ids = _lalonde_dir(root)
    ps = load_photos(root, "train", size=32)
    assert ps.names == ids[:2] and ps.images.shape == (2, 3, 32, 32)
    assert set(ps.masks.unique().tolist()) == {0, 1}
    out = write_benchmark(load_photos(root, "test", size=40), tmp_path / "b")
    assert (out / "Relight" / "real_images" / "image-100002.png").is_file()
    with pytest.raises(RharmInputError, match="unknown split"):
        load_photos(root, "val")
    (root / "masks" / f"{ids[1]}.png").unlink()
    with pytest.raises(RharmInputError, match=r"train.txt:2: .*image_100001.png does not exist"):
        load_photos(root, "train")
    with pytest.raises(RharmInputError, match="neither"):
        load_photos(tmp_path / "nothing", "train")


_ISA_SCRIPT = """
import hashlib, torch
from rharm_lib.data.benchmark import make_composites
from rharm_lib.data.builtin import load_builtin
from rharm_lib.data.synth import FAMILIES
torch.set_num_threads(1)
photos = load_builtin("test", 256)
h = hashlib.sha256()
for fam in FAMILIES:
    comp, _, masks = make_composites(photos, fam, seed=0)
    h.update(comp.numpy().tobytes())
    h.update(masks.numpy().tobytes())
print(h.hexdigest())
"""


def test_benchmark_pixels_do_not_depend_on_the_cpu_kernels():
    """The written composites are the same with AVX-512/AVX2 and with scalar kernels.

    In float32 one value of the built-in benchmark flipped by 1 under
    ATEN_CPU_CAPABILITY=default (why the input-composite row moved between machines); the
    synthesis of the written benchmark runs in float64.
    """
    import os
    import subprocess
    import sys

    def run(capability):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if capability:
            env["ATEN_CPU_CAPABILITY"] = capability
        else:
            env.pop("ATEN_CPU_CAPABILITY", None)
        out = subprocess.run(
            [sys.executable, "-c", _ISA_SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    assert run(None) == run("default")
