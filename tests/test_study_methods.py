"""The study layer that notebooks 02 and 04 call: the benchmark with an image cap, the
method tables, and output folders derived from the profile."""

from __future__ import annotations

import ast
import dataclasses
import time

import numpy as np
import pandas as pd
import pytest
import torch

from rharm_lib.checkpoint import save_checkpoint
from rharm_lib.data.ihd import IHDDataset
from rharm_lib.errors import RharmInputError
from rharm_lib.evaluate import evaluate, method_params, resolve_method
from rharm_lib.model import CONFIGS, build_model, count_params
from rharm_lib.paths import REPO_ROOT
from rharm_lib.study import exploration, methods, sources
from rharm_lib.study.outputs import ROOT_ENV, output_dirs
from rharm_lib.study.runner import PARAMETER_NAMES, discover_notebooks, load_notebook
from rharm_lib.study.session import start_session
from rharm_lib.train.config import config_to_dict, get_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    net = build_model(dataclasses.replace(CONFIGS["tiny"], copy_background=False))
    with torch.no_grad():  # an untrained residual net returns its input; make it differ
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    cfg = get_config("ci", model=net.cfg)
    save_checkpoint(
        path, {"train_config": config_to_dict(cfg), "step": 3, "model": net.state_dict()}
    )
    return path, count_params(net)


def test_notebook_02_path_with_an_image_cap(tmp_path, checkpoint):
    """What notebook 02 runs when the profile sets ``max_eval_images``."""
    full = sources.benchmark_dataset("builtin")
    bench = sources.benchmark_dataset("builtin", limit=3)
    assert type(bench) is type(full) is IHDDataset  # one type, capped or not
    want = np.linspace(0, len(full) - 1, 3).round().astype(int)
    assert [it.name for it in bench.items] == [full.items[i].name for i in want]
    assert bench[1]["name"] == full[int(want[1])]["name"] and len(bench) == 3
    picks = exploration.spread_indices([it.subset for it in bench.items], 2)
    assert len(picks) == 2

    ckpt, n_params = checkpoint
    compared = methods.study_methods(ckpt, "cpu", "ours (ci config)")
    table = methods.benchmark_table(bench, compared, tmp_path, eval_size=32)
    assert list(dict.fromkeys(table["method"])) == list(compared)
    all_rows = table[table["subset"] == "All"].set_index("method")
    assert (all_rows["n"] == 3).all()
    assert all_rows.loc["ours (ci config)", "params_M"] == pytest.approx(n_params / 1e6)
    assert (all_rows.drop(index="ours (ci config)")["params_M"] == 0).all()
    # the same numbers as evaluating one method directly
    _, direct = evaluate(bench, resolve_method("reinhard"), tmp_path / "direct", eval_size=32)
    got = table[table["method"] == "Reinhard"].drop(columns=["method", "params_M"])
    np.testing.assert_allclose(
        got[["mse", "psnr", "fmse"]].to_numpy(float),
        direct[["mse", "psnr", "fmse"]].to_numpy(float),
    )
    assert (tmp_path / "eval" / "benchmark_model" / "summary.csv").is_file()
    assert (tmp_path / "eval" / "benchmark_histmatch" / "summary.csv").is_file()
    # the model is not the identity: its row differs from the input composite's
    assert all_rows.loc["ours (ci config)", "mse"] != all_rows.loc["input composite", "mse"]


def test_seeded_benchmark_at_a_working_size(tmp_path, checkpoint):
    """Notebook 02 when the training config measures itself at a smaller size than the
    benchmark (the ci profile): each seed runs in the fast mode at the working size, the
    first seed natively too, and the fast rows equal FastMode applied directly."""
    bench = sources.benchmark_dataset("builtin", limit=3)
    ckpt, _ = checkpoint
    label = "ours (ci config)"
    table, paired, compared = methods.seeded_benchmark(
        bench, {0: ckpt, 1: ckpt}, "cpu", label, tmp_path, eval_size=48, working_size=16
    )
    rows = table[table["subset"] == "All"].set_index("method")
    assert {f"{label} seed 0", f"{label} seed 1", label, f"{label} native seed 0"} <= set(
        rows.index
    )
    assert (tmp_path / "eval" / "benchmark_model_native_seed0" / "summary.csv").is_file()
    # fast and native differ (the net runs at 16 on a 48-pixel image), seeds agree here
    assert rows.loc[f"{label} seed 0", "mse"] != rows.loc[f"{label} native seed 0", "mse"]
    assert rows.loc[label, "mse"] == pytest.approx(rows.loc[f"{label} seed 0", "mse"])
    assert isinstance(compared[label].fn, methods.FastMode)
    direct = methods.SampleMethod(
        "x",
        methods.FastMode(resolve_method("checkpoint", checkpoint=str(ckpt), device="cpu").fn, 16),
        "cpu",
        {},
    )
    _, d = evaluate(bench, direct, tmp_path / "direct", eval_size=48)
    assert rows.loc[label, "mse"] == pytest.approx(float(d[d["subset"] == "All"]["mse"].iloc[0]))
    assert set(paired["a"]) == {label}
    # at native (no working size) there is no extra row
    t2, _, _ = methods.seeded_benchmark(
        bench, {0: ckpt}, "cpu", label, tmp_path / "n", eval_size=48
    )
    assert not t2["method"].str.contains("native").any()
    with pytest.raises(RharmInputError, match="working size"):
        methods.seeded_benchmark(bench, {0: ckpt}, "cpu", label, tmp_path / "b", 48, working_size=8)


def test_benchmark_cap_validation():
    ds = sources.benchmark_dataset("builtin")
    with pytest.raises(Exception, match="indices must be in"):
        ds.select([len(ds)])


def _photos(h=40, w=60):
    rng = np.random.default_rng(0)
    photos = []
    for k in range(2):
        img = rng.integers(0, 256, (h, w, 3), np.uint8)
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4 : 3 * h // 4, w // 4 + 5 * k : 3 * w // 4] = 1
        photos.append((f"p{k}", img, mask))
    return photos


def test_highres_table(tmp_path, checkpoint):
    photos = _photos()
    compared = methods.study_methods(checkpoint[0], "cpu")
    long, table, examples = methods.highres_evaluation(photos, (24, 48), compared, tmp_path)
    assert len(long) == 4 * 2 and set(long["size"]) == {24, 48}
    assert list(table["method"]) == list(compared)
    assert list(table.columns) == ["method", "PSNR@24", "PSNR@48", "fMSE@24", "fMSE@48",
                                   "time_s@24", "time_s@48"]  # fmt: skip
    row = long[(long["method"] == "Reinhard") & (long["size"] == 48)].iloc[0]
    assert table.set_index("method").loc["Reinhard", "PSNR@48"] == row["psnr"]
    assert table.set_index("method").loc["Reinhard", "time_s@48"] == row["time_s"]
    assert (long["time_s"] > 0).all() and (long["time_s"] < 60).all()
    assert examples[48]["composite"].shape == (32, 48, 3)
    assert (tmp_path / "eval" / "highres_24_model" / "summary.csv").is_file()


def test_highres_table_with_the_fast_mode(tmp_path, checkpoint):
    """Notebook 04's fast-mode rows: the network at a working size, lifted to the image."""
    photos = _photos(32, 64)
    compared = methods.study_methods(
        checkpoint[0], "cpu", "ours (native)", fast_working_sizes=(32,)
    )
    assert list(compared)[-2:] == ["ours (native)", "ours (fast@32)"]
    fast = compared["ours (fast@32)"]
    assert fast.info["mode"] == "fast" and fast.info["working_size"] == 32
    nets = {k: compared[k] for k in ("ours (native)", "ours (fast@32)")}
    long, table, _ = methods.highres_evaluation(photos, (32, 64), nets, tmp_path)
    t = table.set_index("method")
    # no larger than the working size: fast mode is native mode, exactly
    assert t.loc["ours (fast@32)", "PSNR@32"] == t.loc["ours (native)", "PSNR@32"]
    assert t.loc["ours (fast@32)", "fMSE@32"] == t.loc["ours (native)", "fMSE@32"]
    # larger: the network ran at 32 px and was lifted -- a different, nearby answer
    assert t.loc["ours (fast@32)", "fMSE@64"] != t.loc["ours (native)", "fMSE@64"]
    assert abs(t.loc["ours (fast@32)", "PSNR@64"] - t.loc["ours (native)", "PSNR@64"]) < 3.0
    # the evaluated rows are the fast mode's outputs, and its background is the input's
    s = sources.highres_composites(photos, 64)[0]
    h = compared["ours (native)"].fn
    want = h.harmonize(s["composite"], s["mask"], mode="fast", working_size=32)
    got = fast(s)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[s["mask"] == 0], s["composite"][s["mask"] == 0])
    assert not np.array_equal(got, h(s["composite"], s["mask"]))
    per = pd.read_csv(tmp_path / "eval" / "highres_64_model_fast32" / "per_image.csv")
    assert len(per) == 2 and (tmp_path / "eval" / "highres_64_model" / "summary.csv").is_file()
    assert method_params(fast) == checkpoint[1]  # the network is counted
    with pytest.raises(RharmInputError, match="working size"):
        methods.study_methods(checkpoint[0], "cpu", fast_working_sizes=(8,))


def test_timed_method_records_each_call():
    calls = []

    def slow(composite, mask):
        calls.append(1)
        time.sleep(0.02)
        return composite

    m = methods.TimedMethod(slow)
    img = np.zeros((4, 5, 3), np.uint8)
    for _ in range(3):
        assert m({"composite": img, "mask": np.ones((4, 5), np.uint8)}) is img
    assert len(calls) == 3 and len(m.seconds) == 3 and min(m.seconds) >= 0.02
    assert m.name == "slow"
    with pytest.raises(RharmInputError, match="callable"):
        methods.TimedMethod(3)


def test_output_dirs_follow_the_profile_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv(ROOT_ENV, raising=False)
    assert output_dirs("gpu") == (REPO_ROOT / "figures" / "gpu", REPO_ROOT / "results" / "gpu")
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "root"))
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # as a kernel started from notebooks/
    ctx = start_session("ci", 0, "cpu", notebook="t")
    assert ctx.figures_dir == tmp_path / "root" / "figures" / "ci" and ctx.figures_dir.is_dir()
    assert ctx.results_dir == tmp_path / "root" / "results" / "ci"
    assert not (tmp_path / "notebooks" / "figures").exists()


def test_parameters_cells_hold_no_output_paths():
    for path in discover_notebooks(REPO_ROOT / "notebooks"):
        nb = load_notebook(path)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        declared = {
            t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
            for t in node.targets
        }  # fmt: skip
        assert declared == set(PARAMETER_NAMES), (path.name, declared)
