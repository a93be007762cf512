"""The ablation families (rharm_lib.study.ablations), their statistics and `rharm ablate`."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from rharm_lib.errors import RharmInputError
from rharm_lib.losses import READINGS, LossConfig
from rharm_lib.outputs import RunLock, RunLockedError
from rharm_lib.study import ablations as A
from rharm_lib.study.outputs import ROOT_ENV
from rharm_lib.study.profiles import PROFILES
from rharm_lib.train import config_to_dict

CI, CPU = PROFILES["ci"], PROFILES["cpu"]


def _diff(a, b) -> set[str]:
    da, db = config_to_dict(a), config_to_dict(b)
    out = set()
    for k in set(da) | set(db):
        if isinstance(da.get(k), dict):
            out |= {f"{k}.{s}" for s in da[k] if da[k][s] != db[k].get(s)}
        elif da.get(k) != db.get(k):
            out.add(k)
    return out


def test_table6_rows_change_one_component_at_a_time():
    rows = {v.key: A.variant_config(CPU, v, 0) for v in A.FAMILIES["table6"]}
    assert _diff(rows["row1"], rows["row2"]) == {"loss.w_pixel"}
    assert _diff(rows["row2"], rows["row3"]) == {"model.fusion"}
    assert _diff(rows["row3"], rows["row4"]) == {"loss.w_hcl"}
    full = rows["row4"]
    assert full.model.fusion == "sf" and full.model.use_s2am and full.loss.w_hcl == 0.1
    assert rows["row1"].loss.w_pixel == 0 and rows["row1"].loss.w_l1 == LossConfig().w_l1
    # the ablation scale, not the profile's training recipe
    sc = CPU.ablation
    assert (full.steps, full.crop_size, full.photo_size) == (sc.steps, sc.crop_size, sc.photo_size)
    assert full.eval_max_images == sc.eval_images and full.compile is sc.compile
    assert _diff(A.variant_config(CPU, A.FAMILIES["table6"][3], 1), full) == {"seed"}


def test_shared_runs_and_every_reading():
    fam = {f: {v.key: v for v in vs} for f, vs in A.FAMILIES.items()}
    run = lambda f, k: A.ablation_run_dir(CPU, fam[f][k], 0)  # noqa: E731
    assert run("fusion", "none") == run("table6", "row2")
    assert run("fusion", "sf") == run("table6", "row3") == run("readings", "no_hcl")
    assert (
        run("readings", LossConfig().reading_name)
        == run("table6", "row4")
        == run("patches", "k256")
    )
    assert run("readings", "pred_negatives") != run("table6", "row4")
    readings = {A.variant_config(CPU, v, 0).loss.reading_name for v in A.FAMILIES["readings"][1:]}
    assert readings == set(READINGS)
    assert [A.variant_config(CPU, v, 0).loss.k for v in A.FAMILIES["patches"]] == [
        64,
        128,
        256,
        512,
        1024,
    ]
    fusions = [A.variant_config(CPU, v, 0).model.fusion for v in A.FAMILIES["fusion"]]
    assert fusions == ["none", "adain", "rain", "sf", "sf_literal"]
    assert all(A.variant_config(CPU, v, 0).loss.w_hcl == 0 for v in A.FAMILIES["fusion"])
    assert A.family_seeds(CPU.ablation, "patches") == CPU.ablation.k_seeds
    assert len(CPU.ablation.seeds) >= 3 and len(CPU.ablation.k_seeds) >= 2
    assert run("table6", "row4").name.startswith("ablate-cpu-")
    with pytest.raises(RharmInputError, match="unknown ablation family"):
        A.find_runs(CPU, "table8")
    with pytest.raises(RharmInputError, match="no ablation scale"):
        A.find_runs(dataclasses.replace(CPU, ablation=None), "table6")


def _fake_run(run: Path, per_image: pd.DataFrame, curve: list[tuple[int, float]]) -> None:
    """A finished run folder as the engine leaves it (what the statistics read)."""
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    (run / "summary.json").write_text('{"result": {"wall_s": 120.0}}')
    for folder, scale in (("composite", 2.0), ("step_0000010", 1.0)):
        (run / "eval" / folder).mkdir(parents=True)
        df = per_image.copy()
        for m in ("mse", "fmse"):
            df[m] = df[m] * scale
        df.to_csv(run / "eval" / folder / "per_image.csv", index=False)
    rows = [{"step": 0, "method": "composite", "psnr": 30.0, "mse": 100.0}]
    rows += [{"step": s, "method": "model", "psnr": p, "mse": 50.0} for s, p in curve]
    pd.DataFrame(rows).to_csv(run / "eval.csv", index=False)


def _per_image(rng, shift: float) -> pd.DataFrame:
    n = 24
    return pd.DataFrame(
        {
            "subset": ["Relight"] * 12 + ["Transfer"] * 12,
            "name": [f"im{i}" for i in range(n)],
            "mse": rng.uniform(10, 50, n) + shift,
            "psnr": rng.uniform(28, 36, n) - shift / 10,
            "fmse": rng.uniform(100, 500, n) + 10 * shift,
            "ssim": rng.uniform(0.9, 1, n),
            "fssim": rng.uniform(0.7, 0.9, n),
        }
    )


@pytest.fixture
def fake_suite(tmp_path, monkeypatch, rng):
    """Finished table6 runs for seeds 0 and 1 (row1 worst ... row4 best) under tmp_path."""
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))  # runs_root() = tmp_path/runs
    frames = {}
    for seed in (0, 1):
        for i, v in enumerate(A.FAMILIES["table6"]):
            df = _per_image(np.random.default_rng(seed * 10 + i), shift=8.0 * (3 - i))
            frames[v.key, seed] = df
            _fake_run(A.ablation_run_dir(CI, v, seed), df, [(5, 31.0 + i + seed), (10, 32.0 + i)])
    return frames


def test_family_table_against_pandas(fake_suite):
    table = A.family_table(CI, "table6", seeds=(0, 1))
    allrow = table[table["subset"] == "All"].set_index("variant")
    assert list(allrow.index) == ["composite", "row1", "row2", "row3", "row4"]
    for key in ("row1", "row4"):
        per_seed = [fake_suite[key, s]["fmse"].mean() for s in (0, 1)]  # final eval = scale 1
        assert allrow.loc[key, "fmse"] == pytest.approx(np.mean(per_seed))
        assert allrow.loc[key, "fmse_sd"] == pytest.approx(np.std(per_seed, ddof=1))
        half = sps.t.ppf(0.975, 1) * np.std(per_seed, ddof=1) / np.sqrt(2)
        assert allrow.loc[key, "fmse_ci_hi"] == pytest.approx(np.mean(per_seed) + half)
        assert allrow.loc[key, "seeds"] == 2
    # the composite row comes from the run's composite folder (fMSE doubled in the fake)
    assert allrow.loc["composite", "fmse"] == pytest.approx(
        2 * fake_suite["row1", 0]["fmse"].mean()
    )
    relight = table[(table["subset"] == "Relight") & (table["variant"] == "row2")]
    want = np.mean(
        [fake_suite["row2", s].query("subset == 'Relight'")["mse"].mean() for s in (0, 1)]
    )
    assert relight["mse"].iloc[0] == pytest.approx(want)
    # a missing seed is reported as fewer seeds, not as an error
    assert (
        A.family_table(CI, "table6", seeds=(0, 1, 2)).query("subset == 'All'")["seeds"].tolist()[1:]
        == [2] * 4
    )


def test_family_tests_holm_and_verdicts(fake_suite):
    tests = A.family_tests(CI, "table6", seeds=(0, 1))
    fm = tests[tests["metric"] == "fmse"]
    assert [(a, b) for a, b in zip(fm["key_a"], fm["key_b"], strict=True)] == [
        ("row2", "row1"),
        ("row3", "row2"),
        ("row4", "row3"),
    ]
    a = (fake_suite["row4", 0]["fmse"] + fake_suite["row4", 1]["fmse"]) / 2
    b = (fake_suite["row3", 0]["fmse"] + fake_suite["row3", 1]["fmse"]) / 2
    last = fm.iloc[-1]
    assert last["diff"] == pytest.approx((a - b).mean())
    assert last["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a, b).pvalue)
    assert np.allclose(fm["p_holm"], multipletests(fm["wilcoxon_p"], method="holm")[1])
    v = A.verdicts(tests)
    assert set(v["verdict"]) <= {"supported", "contradicted", "inconclusive"}
    for _, r in v.iterrows():
        if r["verdict"] == "supported":
            assert r["ci_hi"] < 0 and r["p_holm"] < 0.05
    assert "Holm-adjusted Wilcoxon p" in v["sentence"].iloc[0]


def test_curves_and_status(fake_suite):
    curves = A.family_curves(CI, "table6", seeds=(0, 1))
    model = curves[curves["method"] == "model"]
    assert len(model) == 4 * 2 * 2 and set(model["step"]) == {5, 10}
    # each row names the run folder it was read from
    for _, r in curves.iterrows():
        run = A.ablation_run_dir(
            CI, {v.key: v for v in A.FAMILIES["table6"]}[r["variant"]], r["seed"]
        )
        assert r["run"] == run.name
    assert list(curves.columns[:4]) == ["variant", "label", "seed", "run"]
    every = A.all_curves(CI, seeds=(0, 1))
    assert every.columns[0] == "family" and set(every["family"]) <= set(A.FAMILIES)
    t6 = every[every["family"] == "table6"].drop(columns="family").reset_index(drop=True)
    pd.testing.assert_frame_equal(t6, curves)
    st = A.suite_status(CI)
    row4 = st[st["families"].str.contains("table6:row4")]
    assert "patches:k256" in row4["families"].iloc[0]
    assert row4["finished"].tolist() == [True] and row4["training_min"].iloc[0] == 2.0  # ci: seed 0


def test_run_family_skips_a_run_held_by_another_process(tmp_path, monkeypatch):
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))  # runs_root() = tmp_path/runs
    held = A.ablation_run_dir(CI, A.FAMILIES["table6"][1], 0)
    calls = []

    def fake_train(cfg, source, out, **kw):
        calls.append(Path(out))
        with RunLock(out):  # the engine's lock
            return types.SimpleNamespace(reused=False)

    monkeypatch.setattr(A, "train", fake_train)
    with RunLock(held):
        table = A.run_family(CI, "table6", seeds=[0], log=lambda m: None)
    assert table["status"].tolist() == ["trained", "busy", "trained", "trained"]
    assert len(calls) == 4 and calls[1] == held
    with pytest.raises(RunLockedError), RunLock(held), RunLock(held):
        pass


def test_cli(tmp_path):
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "rharm_lib.cli", "ablate", *a],
        capture_output=True,
        text=True,
        timeout=120,
    )
    bad = run("table8")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    bad = run("table6", "--seeds", "a,b")
    assert (
        bad.returncode == 2
        and "--seeds" in bad.stderr
        and len(bad.stderr.strip().splitlines()) == 1
    )
    ok = run("patches", "--profile", "cpu", "--seeds", "0,1", "--list")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("K = ") == 10 and "ablate-cpu-" in ok.stdout


def test_cli_scale_overrides_make_separate_runs():
    run = lambda *a: subprocess.run(  # noqa: E731
        [
            sys.executable,
            "-m",
            "rharm_lib.cli",
            "ablate",
            "table6",
            "--profile",
            "cpu",
            "--seeds",
            "0",
            *a,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    base, short = run("--list"), run("--list", "--steps", "400")
    assert base.returncode == 0 and short.returncode == 0, short.stderr
    names = lambda out: set(re.findall(r"ablate-cpu-[0-9a-f]{12}", out))  # noqa: E731
    assert len(names(base.stdout)) == 4 and not names(base.stdout) & names(short.stdout)
    bad = run("--steps", "0")
    assert bad.returncode == 2 and "--steps" in bad.stderr


def test_compact_view(fake_suite):
    table = A.family_table(CI, "table6", seeds=(0, 1))
    view = A.compact(table)
    assert list(view["variant"]) == ["composite", "row1", "row2", "row3", "row4"]
    r = table[(table["subset"] == "All") & (table["variant"] == "row4")].iloc[0]
    cell = view.set_index("variant").loc["row4", "fmse"]
    assert (
        cell
        == f"{r['fmse']:.2f} ± {r['fmse_sd']:.2f} [{r['fmse_ci_lo']:.2f}, {r['fmse_ci_hi']:.2f}]"
    )
    assert (
        "±" not in view.set_index("variant").loc["composite", "fmse"]
    )  # no seeds: the value alone
