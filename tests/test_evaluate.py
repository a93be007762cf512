"""``evaluate`` and ``rharm evaluate``: output files and columns, agreement with the metrics
computed by hand, atomic output, and every bad-input case (exit 2, message, no output)."""

import json

import numpy as np
import pandas as pd
import pytest
from fixtures_ihd import write_ihd, write_png16
from PIL import Image

from rharm_lib.baselines import BASELINES
from rharm_lib.cli import main
from rharm_lib.data.ihd import IHDDataset
from rharm_lib.errors import RharmInputError
from rharm_lib.evaluate import PER_IMAGE_COLUMNS, RESULT_FILES, evaluate, resolve_method
from rharm_lib.metrics import (
    SUMMARY_COLUMNS,
    image_metrics,
    prepare_for_eval,
    resize_image,
    resize_mask,
)
from rharm_lib.outputs import MANIFEST


@pytest.fixture
def ihd(tmp_path):
    root = tmp_path / "ihd"
    write_ihd(root)
    return root


def _cli(*args):
    return main(["evaluate", "--no-progress", *map(str, args)])


def test_cli_writes_the_contract(ihd, tmp_path, capsys):
    out = tmp_path / "res"
    assert _cli("--data", ihd, "--method", "reinhard", "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*RESULT_FILES, MANIFEST])
    per = pd.read_csv(out / "per_image.csv")
    assert tuple(per.columns) == PER_IMAGE_COLUMNS and len(per) == 5
    assert (per["height"] == 200).all() and (per["width"] == 300).all()
    summ = pd.read_csv(out / "summary.csv")
    assert list(summ.columns)[:8] == [
        "subset",
        "n",
        "mse",
        "psnr",
        "psnr_peak",
        "fmse",
        "ssim",
        "fssim",
    ]
    assert tuple(summ.columns) == SUMMARY_COLUMNS
    assert summ["subset"].tolist() == ["HCOCO", "HFlickr", "All"] and summ["n"].tolist() == [
        3,
        2,
        5,
    ]
    assert summ.iloc[-1]["mse"] == pytest.approx(per["mse"].mean())
    md = (out / "summary.md").read_text()
    assert "| All | 5 |" in md and "reinhard" in md
    prov = json.loads((out / "provenance.json").read_text())
    for key in ("git_commit", "versions", "date_utc", "device", "protocol", "method"):
        assert key in prov
    assert prov["method"] == "reinhard" and prov["protocol"]["eval_size"] == 256
    assert prov["protocol"]["method_input"] == "eval size" and prov["n_images"] == 5
    assert "| HFlickr | 2 |" in capsys.readouterr().out
    # a rerun replaces the previous result (and only it)
    assert _cli("--data", ihd, "--method", "composite", "--subsets", "HFlickr", "--out", out) == 0
    assert pd.read_csv(out / "summary.csv")["n"].tolist() == [2, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ihd", "res"]  # no temp dirs left


def test_metrics_equal_a_by_hand_computation(ihd, tmp_path):
    ds = IHDDataset(ihd, subsets=["HFlickr"])
    per, summ = evaluate(ds, resolve_method("histmatch"), tmp_path / "a", progress=False)
    s = ds[0]
    comp, mask = resize_image(s["composite"], 256), resize_mask(s["mask"], 256)
    pred = BASELINES["histmatch"](comp, mask)
    # the target at native size: prepare_for_eval resizes it (pred is already 256)
    ref = image_metrics(*prepare_for_eval(pred, s["target"], s["mask"], 256))
    assert image_metrics(pred, resize_image(s["target"], 256), mask) == ref
    row = per.iloc[0]
    assert (row["subset"], row["name"]) == ("HFlickr", "f0000_1_2")
    for k, v in ref.items():
        assert row[k] == pytest.approx(v, rel=1e-12)
    # a two-argument callable (a BASELINES entry) is accepted as well and gives the same
    per2, _ = evaluate(ds, BASELINES["histmatch"], tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(per, per2)


def test_method_input_and_native_size(ihd, tmp_path):
    ds = IHDDataset(ihd, subsets=["HFlickr"])
    seen = []

    def spy(sample):
        seen.append(sample["composite"].shape)
        assert "target" not in sample  # methods never see the ground truth
        return sample["composite"].astype(np.float32) + 0.4  # float output: rounded

    evaluate(ds, spy, tmp_path / "a", progress=False)
    evaluate(ds, spy, tmp_path / "b", progress=False, run_at_eval_size=False)
    per, _ = evaluate(ds, spy, tmp_path / "c", eval_size=None, progress=False)
    assert seen == [(256, 256, 3)] * 2 + [(200, 300, 3)] * 4
    s = ds[0]
    ref = image_metrics(s["composite"], s["target"], s["mask"])  # native: 300x200
    assert per.iloc[0]["fmse"] == pytest.approx(ref["fmse"], rel=1e-12)
    prov = json.loads((tmp_path / "c" / "provenance.json").read_text())
    assert prov["protocol"]["eval_size"] is None


def test_empty_mask_is_counted_not_crashed(ihd, tmp_path):
    Image.fromarray(np.zeros((200, 300), np.uint8)).save(ihd / "HCOCO" / "masks" / "c0001_1.png")
    per, summ = evaluate(
        IHDDataset(ihd), resolve_method("reinhard"), tmp_path / "r", progress=False
    )
    assert per["fmse"].isna().sum() == 1 and per["fssim"].isna().sum() == 1
    row = summ.set_index("subset").loc["HCOCO"]
    assert row["n"] == 3 and row["n_fg_skipped"] == 1 and np.isfinite(row["fmse"])
    assert summ.iloc[-1]["n_fg_skipped"] == 1 and np.isfinite(summ.iloc[-1]["fssim"])


def test_converted_inputs_are_accepted(ihd, tmp_path):
    # grayscale composite, RGBA real image, 16-bit mask, non-binary 8-bit mask: converted
    d = ihd / "HCOCO"
    gray = np.asarray(Image.open(d / "composite_images" / "c0000_1_2.jpg").convert("L"))
    Image.fromarray(gray).save(d / "composite_images" / "c0000_1_2.jpg")
    rgba = np.asarray(Image.open(d / "real_images" / "c0001.jpg").convert("RGBA"))
    (d / "real_images" / "c0001.jpg").unlink()
    Image.fromarray(rgba).save(d / "real_images" / "c0001.png")
    m = np.asarray(Image.open(d / "masks" / "c0002_1.png")).astype(np.uint16) * 257
    write_png16(d / "masks" / "c0002_1.png", m)
    m2 = np.asarray(Image.open(ihd / "HFlickr" / "masks" / "f0000_1.png")) // 255 * 200 + 20
    Image.fromarray(m2.astype(np.uint8)).save(ihd / "HFlickr" / "masks" / "f0000_1.png")
    out = tmp_path / "conv"
    assert _cli("--data", ihd, "--method", "composite", "--out", out) == 0
    per = pd.read_csv(out / "per_image.csv")
    assert len(per) == 5 and per[["mse", "ssim", "fmse"]].notna().all().all()
    assert per["fg_pixels"].min() > 0


# ---------------------------------------------------------------- bad input (item 8)


def _fails(capsys, out, *args, match):
    assert _cli(*args, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("rharm: error: ") and "Traceback" not in err
    assert pytest.importorskip("re").search(match, err), err
    assert not out.exists()
    assert not any(p.name.startswith(f".{out.name}") for p in out.parent.iterdir())
    return err


def test_bad_missing_file(ihd, tmp_path, capsys):
    (ihd / "HCOCO" / "composite_images" / "c0001_1_2.jpg").unlink()
    _fails(capsys, tmp_path / "o", "--data", ihd, "--method", "composite",
           match=r"c0001_1_2\.jpg: no such file \(list line 2 of .*IHD_test\.txt")  # fmt: skip


def test_bad_unreadable_file(ihd, tmp_path, capsys):
    (ihd / "HFlickr" / "real_images" / "f0001.jpg").write_bytes(b"\x00" * 10)
    _fails(capsys, tmp_path / "o", "--data", ihd, "--method", "reinhard",
           match=r"f0001\.jpg: cannot read image.*list line 5")  # fmt: skip


def test_bad_sizes_disagree(ihd, tmp_path, capsys):
    Image.fromarray(np.zeros((100, 150, 3), np.uint8)).save(
        ihd / "HCOCO" / "real_images" / "c0002.jpg"
    )
    _fails(capsys, tmp_path / "o", "--data", ihd, "--method", "composite",
           match=r"composite 300x200, mask 300x200, target 150x100.*c0002_1_2\.jpg")  # fmt: skip


def test_bad_empty_list(ihd, tmp_path, capsys):
    (ihd / "IHD_test.txt").write_text("\n")
    _fails(capsys, tmp_path / "o", "--data", ihd, "--method", "composite", match="list is empty")


def test_bad_unknown_subset_method_and_options(ihd, tmp_path, capsys):
    o = tmp_path / "o"
    _fails(capsys, o, "--data", ihd, "--subsets", "HCOCO,Hday", "--method", "composite",
           match=r"unknown subset\(s\) \['Hday'\].*available: \['HCOCO', 'HFlickr'\]")  # fmt: skip
    _fails(capsys, o, "--data", ihd, "--method", "dih", match=r"unknown method 'dih'; choose from")
    _fails(capsys, o, "--data", ihd, "--method", "checkpoint", match="needs --checkpoint")
    _fails(capsys, o, "--data", ihd, "--method", "checkpoint", "--checkpoint", tmp_path / "x.pt",
           match=r"x\.pt: no such checkpoint")  # fmt: skip
    with pytest.raises(SystemExit) as info:  # an argument error: argparse's exit, one line
        _cli("--data", ihd, "--method", "composite", "--eval-size", "big", "--out", o)
    assert info.value.code == 2 and not o.exists()
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--eval-size: expected an integer, got 'big'" in err
    _fails(
        capsys,
        o,
        "--data",
        tmp_path / "none",
        "--method",
        "composite",
        match="no such dataset directory",
    )
    _fails(
        capsys, o, "--data", ihd, "--split", "val", "--method", "composite", match="no IHD_val.txt"
    )


def test_bad_out_dir_is_left_alone(ihd, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert _cli("--data", ihd, "--method", "composite", "--out", out) == 2
    assert "holds files rharm did not write (notes.txt)" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_failure_keeps_a_previous_result(ihd, tmp_path):
    out = tmp_path / "res"
    evaluate(IHDDataset(ihd), resolve_method("composite"), out, progress=False)
    before = (out / "per_image.csv").read_text()

    def broken(sample):
        raise RharmInputError("boom")

    with pytest.raises(RharmInputError, match="boom"):
        evaluate(IHDDataset(ihd), broken, out, progress=False)
    assert (out / "per_image.csv").read_text() == before
    with pytest.raises(RharmInputError, match=r"returned shape \(2, 2, 3\)"):
        evaluate(
            IHDDataset(ihd), lambda s: np.zeros((2, 2, 3), np.uint8), tmp_path / "x", progress=False
        )
    with pytest.raises(RharmInputError, match="no target"):
        evaluate([{"composite": 0, "mask": 0, "target": None, "name": "a", "subset": "s"}],
                 BASELINES["composite"], tmp_path / "y", progress=False)  # fmt: skip
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_harmonizer_instance_is_accepted(ihd, tmp_path):
    # the training engine passes rharm_lib.inference.Harmonizer objects, h(composite, mask)
    inference = pytest.importorskip("rharm_lib.inference")
    import torch

    class Identity(torch.nn.Module):
        def forward(self, composite, mask):
            return composite

    ds = IHDDataset(ihd, subsets=["HFlickr"])
    per, _ = evaluate(ds, inference.Harmonizer(Identity()), tmp_path / "h", progress=False)
    ref, _ = evaluate(ds, BASELINES["composite"], tmp_path / "c", progress=False)
    pd.testing.assert_frame_equal(per, ref)


def test_resolve_method_working_size_runs_the_fast_mode(rng):
    from rharm_lib.evaluate import resolve_method
    from rharm_lib.weights import shipped_weights_path

    if not shipped_weights_path().is_file():
        pytest.skip("no shipped weights")
    comp = rng.integers(0, 256, (96, 80, 3), dtype=np.uint8)
    mask = np.zeros((96, 80), np.uint8)
    mask[20:70, 15:60] = 1
    native = resolve_method("shipped", device="cpu")
    fast = resolve_method("shipped", device="cpu", working_size=48)
    want = native.fn.harmonize(comp, mask, mode="fast", working_size=48)
    got = fast({"composite": comp, "mask": mask})
    assert fast.info["working_size"] == 48 and fast.info["mode"] == "fast"
    assert np.array_equal(got, want) and got.shape == comp.shape
    assert np.array_equal(got[mask == 0], comp[mask == 0])  # the background is the input's
    assert not np.array_equal(got, native({"composite": comp, "mask": mask}))
    with pytest.raises(RharmInputError, match="networks only"):
        resolve_method("reinhard", working_size=64)
    with pytest.raises(RharmInputError, match=">= 8"):
        resolve_method("shipped", device="cpu", working_size=4)
