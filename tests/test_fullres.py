"""Full-resolution modes (issue 11): fast (working size + colour-map lift), tiled, the
Harmonizer API, ``rharm harmonize --mode``, ``rharm bench infer`` and the quality table."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from rharm_lib import fullres as fr
from rharm_lib.bench_infer import (
    SHIPPED,
    _errors,
    check_bars,
    parse_size,
    quality_table,
    resolve_network,
    run_one,
    summarize_quality,
    synthetic_pair,
)
from rharm_lib.checkpoint import save_checkpoint
from rharm_lib.errors import RharmInputError
from rharm_lib.inference import Harmonizer
from rharm_lib.metrics import image_metrics
from rharm_lib.model import CONFIGS, build_model
from rharm_lib.train.config import config_to_dict, get_config
from rharm_lib.weights import shipped_weights_path

REPO = Path(__file__).resolve().parents[1]


def _net(seed=0):
    """The ``tiny`` network with a random head, so that it changes the foreground."""
    torch.manual_seed(seed)
    net = build_model(dataclasses.replace(CONFIGS["tiny"], copy_background=False))
    for p in net.parameters():
        if p.ndim == 4 and p.shape[0] == 3:
            torch.nn.init.normal_(p, std=0.05)
    return net.eval()


def _smooth_image(h, w, seed=0):
    """A smooth photo-like uint8 image with mild noise and a rectangle mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack(
        [
            128 + 60 * np.sin(xx / (0.15 * w)),
            128 + 60 * np.cos(yy / (0.2 * h)),
            110 + 50 * np.sin((xx + yy) / (0.25 * (h + w))),
        ],
        -1,
    )
    img = (img + rng.normal(0, 4, img.shape)).clip(0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 5 : (4 * h) // 5, w // 4 : (2 * w) // 3] = 1
    return img, mask


def _smooth_predictor(c, m):
    """A resolution-independent 'network': a colour map varying slowly over the image."""
    _, _, h, w = c.shape
    v = torch.linspace(0, 1, h)[:, None].expand(h, w)
    u = torch.linspace(0, 1, w)[None, :].expand(h, w)
    gain = torch.stack([0.7 + 0.3 * u, 1.25 - 0.15 * v, 0.8 + 0.0 * u])
    bias = torch.stack([0.08 * v, -0.06 + 0.0 * u, 0.06 * u])
    mixed = c[0] * gain + bias + 0.05 * c[0].flip(0)  # a little cross-channel mixing
    return torch.where(m > 0.5, mixed[None].clamp(0, 1), c)


# --- building blocks ------------------------------------------------------------------


@pytest.mark.parametrize("n_out, n_in", [(50, 7), (9, 9), (5, 13), (1, 4), (4, 1)])
def test_linear_weights_equal_torch_bilinear(n_out, n_in):
    g = torch.rand(2, n_in, 3)
    i0, i1, lw = fr.linear_weights(n_out, n_in)
    lw = torch.from_numpy(lw)[:, None]
    ours = g[:, i0] * (1 - lw) + g[:, i1] * lw
    ref = F.interpolate(g[None], size=(n_out, 3), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


def test_box_sum_against_naive_loop():
    x = np.random.default_rng(0).random((2, 7, 9))
    r = 2
    ours = fr._box_sum(x, r)
    ref = np.zeros_like(x)
    for i in range(7):
        for j in range(9):
            ref[:, i, j] = x[:, max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1].sum((1, 2))
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


def test_global_affine_fit_matches_least_squares():
    rng = np.random.default_rng(1)
    c = torch.from_numpy(rng.random((3, 20, 30)))
    w = torch.from_numpy((rng.random((20, 30)) > 0.4).astype(np.float64))
    p = c.clone()
    p[0] = 0.7 * c[0] + 0.2 * c[2] + 0.1
    p[1] = 1.1 * c[1] - 0.05
    p[2] = 0.3 * c[0] + 0.6 * c[2] + 0.02 * torch.from_numpy(rng.standard_normal((20, 30)))
    coef = fr.fit_transform(c, p, w, "global_affine", eps=1e-12).double()[:, 0, 0]
    # independent reference: ordinary least squares of the residual on [c, 1] over the fg
    m = w.numpy() > 0
    design = np.concatenate([c.numpy()[:, m].T, np.ones((m.sum(), 1))], 1)
    sol, *_ = np.linalg.lstsq(design, (p - c).numpy()[:, m].T, rcond=None)
    np.testing.assert_allclose(coef[:9].reshape(3, 3).numpy(), sol[:3].T, atol=1e-5)
    np.testing.assert_allclose(coef[9:].numpy(), sol[3], atol=1e-5)


@pytest.mark.parametrize("lift", fr.LIFTS)
def test_fit_is_finite_without_foreground_and_identity_when_unchanged(lift):
    c = torch.rand(3, 12, 10)
    zero = fr.fit_transform(c, c.clone(), torch.zeros(12, 10), lift)
    assert torch.isfinite(zero).all() and zero.abs().max() == 0
    w = torch.zeros(12, 10)
    w[3:6, 2:5] = 1
    same = fr.fit_transform(c, c.clone(), w, lift)
    assert same.abs().max() < 1e-6
    assert same.shape[0] == (3 if lift == "offset" else 12)


def test_boundary_band_against_scipy_erosion():
    _, mask = _smooth_image(40, 50)
    mask[5:9, 40:48] = 1
    band = fr.boundary_band(mask, 3)
    # pixels within chessboard distance 3 of the background, image border not counting
    padded = np.pad(mask > 0, 3, mode="edge")
    er = ndimage.binary_erosion(padded, np.ones((7, 7), bool), border_value=1)[3:-3, 3:-3]
    np.testing.assert_array_equal(band, (mask > 0) & ~er)


def test_apply_transform_bands_and_columns_equal_one_pass():
    img, mask = _smooth_image(61, 47)
    coef = torch.randn(12, 5, 4) * 0.05
    one = fr.apply_transform(img, mask > 0, coef, band_pixels=10**9)
    many = fr.apply_transform(img, mask > 0, coef, band_pixels=50)
    np.testing.assert_array_equal(one, many)
    # independent reference: F.interpolate the maps, apply in float64
    g = F.interpolate(coef[None], size=(61, 47), mode="bilinear", align_corners=False)[0]
    c = torch.from_numpy(img).permute(2, 0, 1).double() / 255
    a = g[:9].double().reshape(3, 3, 61, 47)
    ref = c + torch.einsum("ijhw,jhw->ihw", a, c) + g[9:].double()
    ref = (ref.clamp(0, 1) * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)
    fg = mask > 0
    assert np.abs(one[fg].astype(int) - ref[fg].astype(int)).max() <= 1
    np.testing.assert_array_equal(one[~fg], img[~fg])


# --- fast mode --------------------------------------------------------------------------


@pytest.mark.parametrize("lift", fr.LIFTS)
def test_fast_close_to_native_on_a_smooth_case(lift):
    img, mask = _smooth_image(300, 420)
    native = fr._native(_smooth_predictor, img, mask > 0)
    cfg = fr.FullResConfig(working_size=96, lift=lift)
    fast = fr.harmonize_fast(_smooth_predictor, img, mask, cfg)
    np.testing.assert_array_equal(fast[mask == 0], img[mask == 0])
    d = np.abs(fast.astype(int) - native.astype(int))[mask > 0]
    composite_gap = np.abs(img.astype(int) - native.astype(int))[mask > 0].mean()
    assert composite_gap > 10  # the change is large ...
    # ... and fast mode reproduces it: the local maps closely, the global one roughly
    assert d.mean() < (1.0 if lift != "global_affine" else 3.0), d.mean()
    if lift != "global_affine":  # (a global map errs most at the region's extremes anyway)
        band = fr.boundary_band(mask, 3)
        halo = np.abs(fast.astype(int) - native.astype(int))[band].mean()
        assert halo < max(1.5, 1.5 * d.mean())  # no halo: the edge is no worse than the rest


@pytest.mark.parametrize("h, w", [(1001, 667), (1, 1), (2, 700), (37, 3)])
def test_fast_mode_sizes_and_background_bit_identical(h, w):
    rng = np.random.default_rng(h + w)
    comp = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = (rng.random((h, w)) > 0.5).astype(np.uint8)
    hz = Harmonizer(_net())
    out = hz.harmonize(comp, mask, mode="fast", working_size=64)
    assert out.shape == comp.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[mask == 0], comp[mask == 0])
    if max(h, w) <= 64:  # no larger than the working size: exactly native
        np.testing.assert_array_equal(out, hz(comp, mask))
    else:
        assert not np.array_equal(out[mask == 1], comp[mask == 1])


def test_fast_mode_degenerate_masks():
    hz = Harmonizer(_net())
    comp, _ = _smooth_image(200, 150)
    empty = np.zeros((200, 150), np.uint8)
    np.testing.assert_array_equal(hz.harmonize(comp, empty, working_size=32), comp)
    full = np.ones((200, 150), np.uint8)
    assert hz.harmonize(comp, full, working_size=32).shape == comp.shape
    speck = empty.copy()
    speck[100, 70] = 1  # vanishes at the working size: the pixel stays as it was
    out = hz.harmonize(comp, speck, working_size=32)
    np.testing.assert_array_equal(out, comp)


def test_fast_mode_memory_at_6000x4000_in_a_capped_subprocess():
    """6000x4000 in fast mode: right size, background exact, peak RSS well under 1.5 GB."""
    code = (
        "import resource, numpy as np, torch; torch.set_num_threads(1)\n"
        "from tests.test_fullres import _net\n"
        "from rharm_lib.bench_infer import synthetic_pair\n"
        "from rharm_lib.inference import Harmonizer\n"
        "c, m = synthetic_pair(4000, 6000)\n"
        "rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "o = Harmonizer(_net()).harmonize(c, m, mode='fast', working_size=128)\n"
        "bg = m == 0\n"
        "ok = o.shape == c.shape and np.array_equal(o[::7][bg[::7]], c[::7][bg[::7]])\n"
        "changed = not np.array_equal(o[::7][~bg[::7]], c[::7][~bg[::7]])\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(ok, changed, rss0 // 1024, peak // 1024)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    # the address-space cap makes an unbounded full-resolution float buffer fail loudly
    pre = "import resource; resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))\n"
    proc = subprocess.run(
        [sys.executable, "-c", pre + code], capture_output=True, text=True, env=env, cwd=REPO,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    ok, changed, rss0, peak = proc.stdout.split()
    assert ok == "True" and changed == "True"
    image_mb = 6000 * 4000 * 3 / 2**20  # 68.7 MB
    assert int(peak) < 1536
    assert int(peak) - int(rss0) < 5 * image_mb  # output + mask + bands, not float images


# --- tiled mode -------------------------------------------------------------------------


def test_tiled_equals_native_when_the_image_fits_one_tile():
    hz = Harmonizer(_net())
    comp, mask = _smooth_image(90, 120)
    np.testing.assert_array_equal(
        hz.harmonize(comp, mask, mode="tiled", tile=128), hz.harmonize(comp, mask, mode="native")
    )


def test_frozen_statistics_replay_reproduces_the_forward_and_changes_a_crop():
    net = _net()
    comp, mask = _smooth_image(64, 80)
    c = torch.from_numpy(comp).permute(2, 0, 1)[None].float() / 255
    m = torch.from_numpy(mask)[None, None].float()
    with torch.no_grad():
        ref = net(c, m)
        tape = fr._StatsTape()
        with fr.frozen_statistics(net, tape):
            rec = net(c, m)
        tape.recording = False
        with fr.frozen_statistics(net, tape):
            rep = net(c, m)
            tape.pos = 0
            crop_replayed = net(c[..., :32, :48], m[..., :32, :48])
        crop_own = net(c[..., :32, :48], m[..., :32, :48])
    assert len(tape.items) > 0
    torch.testing.assert_close(rec, ref, atol=0, rtol=0)
    torch.testing.assert_close(rep, ref, atol=0, rtol=0)
    assert (crop_replayed - crop_own).abs().max() > 1e-4  # the statistics really are replayed
    assert "forward" not in vars(net.s2am["1"].att_bg)  # patches undone
    from rharm_lib.model import fusion

    assert fusion.masked_mean_std.__module__ == "rharm_lib.model.masks"


def test_tiled_global_statistics_beat_per_tile_statistics():
    hz = Harmonizer(_net())
    comp, mask = _smooth_image(150, 200)
    native = hz.harmonize(comp, mask, mode="native").astype(int)
    fg = mask > 0
    errs = {}
    for stats in ("global", "tile"):
        out = hz.harmonize(
            comp, mask, mode="tiled", tile=96, overlap=32, stats=stats, working_size=256
        )  # fmt: skip (stats pass at full size)
        np.testing.assert_array_equal(out[~fg], comp[~fg])
        errs[stats] = np.abs(out.astype(int) - native)[fg].mean()
    assert errs["global"] < errs["tile"], errs


# --- API, CLI, bench, quality ---------------------------------------------------------


def test_harmonize_api_pil_inputs_and_errors():
    hz = Harmonizer(_net())
    comp, mask = _smooth_image(70, 90)
    a = hz.harmonize(comp, mask, working_size=32)
    b = hz.harmonize(Image.fromarray(comp), Image.fromarray(mask * 255), working_size=32)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(RharmInputError, match="unknown mode"):
        hz.harmonize(comp, mask, mode="fastest")
    with pytest.raises(RharmInputError, match="bad full-resolution option"):
        hz.harmonize(comp, mask, radius_px=3)
    with pytest.raises(RharmInputError, match=r"expected mask \(H,W\)"):
        hz.harmonize(comp, mask[:5])
    with pytest.raises(RharmInputError, match="keeps the background"):
        Harmonizer(_net(), keep_background=False).harmonize(comp, mask)
    with pytest.raises(RharmInputError, match="lift"):
        hz.harmonize(comp, mask, lift="spline")


def test_cli_mode_as_a_subprocess(tmp_path):
    net = _net()
    ck = tmp_path / "last.pt"
    cfg = get_config("ci", model=net.cfg)
    save_checkpoint(ck, {"train_config": config_to_dict(cfg), "step": 1, "model": net.state_dict()})
    comp, mask = _smooth_image(101, 67)
    Image.fromarray(comp).save(tmp_path / "c.png")
    Image.fromarray(mask * 255).save(tmp_path / "m.png")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    hz = Harmonizer(net)
    for mode in ("fast", "tiled"):
        out = tmp_path / f"{mode}.png"
        cmd = [sys.executable, "-m", "rharm_lib.cli", "harmonize", str(tmp_path / "c.png"),
               str(tmp_path / "m.png"), "-o", str(out), "--checkpoint", str(ck), "--mode", mode,
               "--working-size", "48", "--tile", "64", "--report-memory", "--threads", "1"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stderr.strip().splitlines()[-1])["mode"] == mode
        got = np.asarray(Image.open(out))
        expect = hz.harmonize(comp, mask, mode=mode, working_size=48, tile=64)
        np.testing.assert_array_equal(got, expect)
        np.testing.assert_array_equal(got[mask == 0], comp[mask == 0])
    cmd[cmd.index("--mode") + 1] = "fastest"
    assert subprocess.run(cmd, capture_output=True, env=env, timeout=120).returncode == 2


def test_bench_infer_rows_from_fresh_subprocesses(capsys):
    """``rharm bench infer --json``: one fresh child per measured (size, mode)."""
    from rharm_lib.cli import main as cli_main

    rc = cli_main(["bench", "infer", "--config", "tiny", "--size", "40x30", "64", "--mode",
                   "fast", "native", "--repeats", "2", "--device", "cpu", "--threads", "1",
                   "--working-size", "32", "--max-native-pixels", "0", "--json"])  # fmt: skip
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["size"], r["mode"]) for r in rows] == [
        ("40x30", "fast"), ("40x30", "native"), ("64x64", "fast"), ("64x64", "native"),
    ]  # fmt: skip
    assert all("skipped" in rows[i] and "median_ms" not in rows[i] for i in (1, 3))
    for r in (rows[0], rows[2]):
        assert r["median_ms"] >= r["min_ms"] > 0 and r["runs"] == 2
        assert r["peak_rss_mb"] >= r["rss_before_mb"] > 50  # a real process with torch
    assert parse_size("6000x4000") == (4000, 6000) and parse_size(7) == (7, 7)
    with pytest.raises(RharmInputError, match="bad size"):
        parse_size("12xx")


def test_bench_infer_defaults_to_the_shipped_weights(tmp_path):
    path = str(shipped_weights_path())
    assert resolve_network() == (None, path, SHIPPED)
    assert resolve_network(checkpoint="shipped") == (None, path, SHIPPED)
    assert resolve_network("ci") == ("ci", None, "config")
    assert resolve_network("ci", path) == (None, path, "checkpoint")  # a checkpoint wins
    with pytest.raises(RharmInputError, match="no such checkpoint"):
        resolve_network(checkpoint=str(tmp_path / "nope.pt"))
    # what a child runs: the shipped network (the cpu config's 1.68 M parameters)
    row = run_one(None, (24, 40), "fast", checkpoint=path, repeats=1, warmup=0)
    assert row["size"] == "40x24" and row["runs"] == 1 and row["median_ms"] > 0
    bars = check_bars([{"size": "6000x4000", "mode": "fast", "median_ms": 9000.0,
                        "peak_rss_mb": 1600.0}, {"size": "2048x2048", "mode": "native",
                        "median_ms": 1.0}])  # fmt: skip
    assert [(b["field"], b["met"]) for b in bars] == [("median_ms", True), ("peak_rss_mb", False)]


def test_quality_table_and_errors():
    hz = Harmonizer(_net())
    samples = []
    for i in range(2):
        comp, mask = _smooth_image(80, 96, seed=i)
        samples.append({"composite": comp, "mask": mask, "target": comp[::-1].copy(),
                        "name": f"s{i}"})  # fmt: skip
    per = quality_table(samples, hz, {"fast@32": {"working_size": 32},
                                      "fast@128": {"working_size": 128}})  # fmt: skip
    assert len(per) == 8
    comp_rows = per[per["variant"] == "composite"]
    assert (comp_rows["psnr_vs_native"] < 100).all() and (comp_rows["seconds"] == 0).all()
    nat = per[per["variant"] == "native"]
    assert (nat["psnr_vs_native"] == 100).all() and (nat["fmse_vs_native"] == 0).all()
    big = per[per["variant"] == "fast@128"]  # working size >= image: exactly native
    assert (big["psnr_vs_native"] == 100).all()
    small = per[per["variant"] == "fast@32"]
    assert (small["psnr_vs_native"] < 100).all()
    summ = summarize_quality(per)
    assert list(summ["variant"]) == ["composite", "native", "fast@32", "fast@128"]
    assert summ.loc[1, "dpsnr"] == 0 and summ.loc[3, "fmse_ratio"] == pytest.approx(1.0)
    # _errors follows rharm_lib.metrics (independent implementation there)
    s = samples[0]
    out = hz.harmonize(s["composite"], s["mask"], working_size=32)
    e = _errors(out, s["target"], s["mask"], fr.boundary_band(s["mask"]))
    ref = image_metrics(out, s["target"], s["mask"])
    for k in ("mse", "psnr", "fmse"):
        assert e[k] == pytest.approx(ref[k], rel=1e-12)


def test_synthetic_pair_shapes():
    c, m = synthetic_pair(30, 50)
    assert c.shape == (30, 50, 3) and c.dtype == np.uint8 and m.shape == (30, 50)
    assert 0.15 < m.mean() < 0.4
