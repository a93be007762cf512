"""`rharm study --check` (rharm_lib.study.check) and the seed/paired statistics (study.stats)."""

import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from rharm_lib.errors import RharmInputError
from rharm_lib.study import check, stats

TABLE = (
    "method,subset,n,mse,psnr\n"
    "input composite,All,10,100.0,30.0\n"
    "ours (ci config),All,10,80.0,31.0\n"
)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    # a later mtime, as a regenerated file has
    st = path.stat()
    os.utime(path, (st.st_atime + 10, st.st_mtime + 10))


def test_identical_tables_pass(tmp_path):
    _write(tmp_path / "t.csv", TABLE)
    before = check.snapshot(tmp_path)
    _write(tmp_path / "t.csv", TABLE)
    assert check.compare(before, tmp_path, model_rtol=0.1) == []


def test_deterministic_row_is_held_to_1e6(tmp_path):
    _write(tmp_path / "t.csv", TABLE)
    before = check.snapshot(tmp_path)
    _write(tmp_path / "t.csv", TABLE.replace("100.0,30.0", "100.001,30.0"))
    drifts = check.compare(before, tmp_path, model_rtol=0.5)
    assert [(d.row, d.column) for d in drifts] == [("input composite / All", "mse")]
    assert drifts[0].rel_diff == pytest.approx(1e-5)
    # below 1e-6 relative passes
    _write(tmp_path / "t.csv", TABLE.replace("100.0,30.0", "100.00001,30.0"))
    assert check.compare(before, tmp_path, model_rtol=0.5) == []


def test_wall_clock_columns_are_not_compared(tmp_path):
    timed = "method,size,psnr,time_s@256\nReinhard,256,22.0,0.010\n"
    _write(tmp_path / "t.csv", timed)
    before = check.snapshot(tmp_path)
    _write(tmp_path / "t.csv", timed.replace("0.010", "0.900"))  # another load: not a drift
    assert check.compare(before, tmp_path, model_rtol=0.1) == []
    _write(tmp_path / "t.csv", timed.replace("22.0", "22.1"))  # a metric still is
    drifts = check.compare(before, tmp_path, model_rtol=0.1)
    assert [(d.row, d.column) for d in drifts] == [("Reinhard", "psnr")]


def test_model_row_uses_the_profile_tolerance(tmp_path):
    _write(tmp_path / "t.csv", TABLE)
    before = check.snapshot(tmp_path)
    _write(tmp_path / "t.csv", TABLE.replace("80.0,31.0", "88.0,31.0"))  # +10 %
    assert check.compare(before, tmp_path, model_rtol=0.15) == []
    drifts = check.compare(before, tmp_path, model_rtol=0.05)
    assert [(d.row, d.column) for d in drifts] == [("ours (ci config) / All", "mse")]
    table = check.drift_table(drifts)
    assert "ours (ci config) / All" in table and "mse" in table


def test_missing_and_new_tables_and_rows(tmp_path):
    _write(tmp_path / "a.csv", TABLE)
    _write(tmp_path / "b.csv", TABLE)
    _write(tmp_path / "eval" / "x" / "per_image.csv", "a\n1\n")  # never compared
    before = check.snapshot(tmp_path)
    assert set(before) == {"a.csv", "b.csv"}
    (tmp_path / "b.csv").unlink()
    _write(tmp_path / "a.csv", TABLE + "Reinhard,All,10,200.0,25.0\n")
    _write(tmp_path / "c.csv", TABLE)
    drifts = {
        (d.table, d.row, d.committed, d.regenerated) for d in check.compare(before, tmp_path, 0.1)
    }
    assert ("b.csv", "*", "table", "missing") in drifts
    assert ("c.csv", "*", "missing", "table") in drifts
    assert ("a.csv", "Reinhard / All", "missing", "row") in drifts


def test_only_rewritten_skips_untouched_tables(tmp_path):
    _write(tmp_path / "a.csv", TABLE)
    _write(tmp_path / "b.csv", TABLE)
    before = check.snapshot(tmp_path)
    _write(tmp_path / "a.csv", TABLE.replace("100.0", "101.0"))
    (tmp_path / "b.csv").write_text(TABLE.replace("100.0", "999.0"))
    os.utime(tmp_path / "b.csv", (0, before["b.csv"][1]))  # same mtime: not rewritten
    drifts = check.compare(before, tmp_path, 0.1, only_rewritten=True)
    assert {d.table for d in drifts} == {"a.csv"}


def test_aggregate_seeds_matches_numpy_and_t_interval():
    vals = {0: 10.0, 1: 12.0, 2: 17.0}
    table = pd.DataFrame(
        [
            {
                "method": f"m seed {s}",
                "subset": "All",
                "n": 5,
                "mse": v,
                "psnr": 30 + s,
                "fmse": v * 10,
                "ssim": 0.9,
                "fssim": 0.8,
                "params_M": 1.5,
            }
            for s, v in vals.items()
        ]
    )
    out = stats.aggregate_seeds(table, {s: f"m seed {s}" for s in vals}, "m")
    row = out.iloc[0]
    x = np.array(list(vals.values()))
    assert row["seeds"] == 3 and row["mse"] == pytest.approx(x.mean())
    assert row["mse_sd"] == pytest.approx(x.std(ddof=1))
    lo, hi = sps.t.interval(0.95, 2, loc=x.mean(), scale=sps.sem(x))
    assert (row["mse_ci_lo"], row["mse_ci_hi"]) == pytest.approx((lo, hi))
    assert row["ssim_sd"] == pytest.approx(0.0)
    one = stats.aggregate_seeds(table, {0: "m seed 0"}, "m").iloc[0]
    assert np.isnan(one["mse_sd"]) and np.isnan(one["mse_ci_lo"])
    with pytest.raises(RharmInputError):
        stats.aggregate_seeds(table, {9: "nope"}, "m")


def _per_image(values, subset="S"):
    idx = pd.MultiIndex.from_tuples(
        [(subset, f"i{k}") for k in range(len(values))], names=["subset", "name"]
    )
    v = np.asarray(values, float)
    return pd.DataFrame({"mse": v, "psnr": -v, "fmse": v, "ssim": -v, "fssim": -v}, index=idx)


def test_paired_comparison_detects_a_real_improvement():
    rng = np.random.default_rng(0)
    base = rng.uniform(100, 200, 60)
    better = base - rng.uniform(5, 15, 60)  # every image better
    res = stats.paired_comparison(_per_image(better), _per_image(base), "model", "composite")
    all_fmse = res[(res.subset == "All") & (res.metric == "fmse")].iloc[0]
    assert all_fmse["diff"] == pytest.approx((better - base).mean())
    assert all_fmse["ci_hi"] < 0 and all_fmse["a_wins"] and all_fmse["a_better"] == 1.0
    assert all_fmse["wilcoxon_p"] == pytest.approx(sps.wilcoxon(better, base).pvalue)
    psnr = res[(res.subset == "All") & (res.metric == "psnr")].iloc[0]
    assert psnr["a_wins"]  # higher-is-better handled (psnr = -v here)


def test_paired_comparison_no_difference_is_not_a_win():
    rng = np.random.default_rng(1)
    base = rng.uniform(100, 200, 60)
    noisy = base + rng.normal(0, 5, 60)
    res = stats.paired_comparison(_per_image(noisy), _per_image(base), "a", "b", metrics=("fmse",))
    row = res[res.subset == "All"].iloc[0]
    assert row["ci_lo"] < 0 < row["ci_hi"] and not row["a_wins"]
    same = stats.paired_comparison(_per_image(base), _per_image(base), "a", "b", metrics=("fmse",))
    assert np.isnan(same["wilcoxon_p"].iloc[0]) and not same["a_wins"].iloc[0]


def test_per_image_averages_seed_folders(tmp_path):
    for k, off in enumerate((0.0, 2.0)):
        d = tmp_path / f"s{k}"
        d.mkdir()
        pd.DataFrame(
            {
                "subset": ["S", "S"],
                "name": ["a", "b"],
                "mse": [1 + off, 3 + off],
                "psnr": [1, 1],
                "fmse": [1, 1],
                "ssim": [1, 1],
                "fssim": [1, 1],
            }
        ).to_csv(d / "per_image.csv", index=False)
    got = stats.per_image([tmp_path / "s0", tmp_path / "s1"])
    assert got["mse"].tolist() == [2.0, 4.0]
    with pytest.raises(RharmInputError, match="no per-image results"):
        stats.per_image([tmp_path / "missing"])


def test_model_tables_and_paired_rows_use_the_profile_tolerance(tmp_path):
    paired = "a,b,subset,diff\nours (ci config),input composite,All,-10.0\n"
    feats = "level,bg_mean_corr\n0,0.5\n"
    _write(tmp_path / "table2_3_paired_tests.csv", paired)
    _write(tmp_path / "fig10_feature_stats.csv", feats)
    _write(tmp_path / "eval" / "benchmark_model_seed0" / "summary.csv", feats)
    _write(tmp_path / "eval" / "benchmark_composite" / "summary.csv", feats)
    before = check.snapshot(tmp_path)
    _write(tmp_path / "table2_3_paired_tests.csv", paired.replace("-10.0", "-10.5"))
    _write(tmp_path / "fig10_feature_stats.csv", feats.replace("0.5", "0.51"))
    _write(
        tmp_path / "eval" / "benchmark_model_seed0" / "summary.csv", feats.replace("0.5", "0.51")
    )
    _write(tmp_path / "eval" / "benchmark_composite" / "summary.csv", feats.replace("0.5", "0.51"))
    drifts = check.compare(before, tmp_path, model_rtol=0.1)
    assert [d.table for d in drifts] == ["eval/benchmark_composite/summary.csv"]
    assert check.is_model_table("eval/highres_512_model/summary.csv")
    assert not check.is_model_table("table2_3_benchmark.csv")
