"""Statistics of the study's tables: seeds pooled into mean ± sd with an interval, and
paired per-image comparisons of two methods on the same composites.

A model row means something only if the model beats the input composite, and one training
run says little about a method: :func:`aggregate_seeds` reports every metric of a model as
the mean over its seeds, the sample standard deviation and a 95 % *t interval over seeds*
(``scipy.stats.t``; n seeds -> n-1 degrees of freedom; NaN with one seed).
:func:`paired_comparison` compares two methods image by image on the same composites
(``per_image.csv`` of :func:`rharm_lib.evaluate.evaluate`): the mean difference, a 95 %
*paired bootstrap interval over images* (``scipy.stats.bootstrap``, BCa, 2,000 resamples,
fixed seed) and the two-sided Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``). A
model trained with several seeds enters with its per-image mean over seeds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import RharmInputError

__all__ = ["METRICS", "HIGHER_IS_BETTER", "aggregate_seeds", "paired_comparison", "per_image"]

#: the metrics the study tabulates
METRICS = ("mse", "psnr", "fmse", "ssim", "fssim")
#: direction of each metric
HIGHER_IS_BETTER = {"mse": False, "psnr": True, "fmse": False, "ssim": True, "fssim": True}


def aggregate_seeds(
    table: pd.DataFrame, seed_labels: Mapping[int, str], label: str
) -> pd.DataFrame:
    """Pool a model's per-seed rows of an :func:`~rharm_lib.evaluate.evaluate_methods` table.

    Args:
        table: ``method, subset, n, mse, psnr, fmse, ssim, fssim, ...`` rows.
        seed_labels: seed -> the ``method`` label of that seed's rows.
        label: the ``method`` label of the pooled rows.

    Returns:
        one row per subset (the table's order): ``method=label, subset, n, seeds`` (count),
        then for each metric of :data:`METRICS` the mean, ``<metric>_sd`` (sample sd, NaN for
        one seed) and ``<metric>_ci_lo`` / ``<metric>_ci_hi`` (95 % t interval over seeds),
        then ``params_M``.
    """
    rows = table[table["method"].isin(list(seed_labels.values()))]
    if rows.empty:
        raise RharmInputError(f"aggregate_seeds: no rows labelled {sorted(seed_labels.values())}")
    out = []
    for subset in dict.fromkeys(rows["subset"]):
        g = rows[rows["subset"] == subset]
        k = len(g)
        rec: dict[str, object] = {"method": label, "subset": subset, "n": int(g["n"].iloc[0])}
        rec["seeds"] = k
        for m in METRICS:
            v = g[m].to_numpy(dtype=float)
            mean = float(v.mean())
            sd = float(v.std(ddof=1)) if k > 1 else float("nan")
            half = float(stats.t.ppf(0.975, k - 1) * sd / np.sqrt(k)) if k > 1 else float("nan")
            rec[m], rec[f"{m}_sd"] = mean, sd
            rec[f"{m}_ci_lo"], rec[f"{m}_ci_hi"] = mean - half, mean + half
        if "params_M" in g:
            rec["params_M"] = float(g["params_M"].iloc[0])
        out.append(rec)
    return pd.DataFrame(out)


def per_image(folders: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Per-image metrics of one method, averaged over the given result folders (seeds).

    Args:
        folders: result folders of :func:`rharm_lib.evaluate.evaluate` (each holding
            ``per_image.csv``) of the same dataset.

    Returns:
        indexed by ``(subset, name)``, the columns of :data:`METRICS` (mean over folders).
    """
    frames = []
    for f in folders:
        path = Path(f) / "per_image.csv"
        if not path.is_file():
            raise RharmInputError(f"no per-image results at {path}")
        frames.append(pd.read_csv(path).set_index(["subset", "name"])[list(METRICS)])
    base = frames[0].index
    for f, fr in zip(folders, frames, strict=True):
        if not fr.index.equals(base):
            raise RharmInputError(f"{f}: not the same images as {folders[0]}")
    return sum(frames) / len(frames)


def paired_comparison(
    a: pd.DataFrame,
    b: pd.DataFrame,
    label_a: str,
    label_b: str,
    metrics: Sequence[str] = ("fmse", "mse", "psnr"),
    subsets: Sequence[str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Method ``a`` against method ``b``, image by image on the same composites.

    Args:
        a, b: :func:`per_image` frames of the two methods (same index).
        label_a, label_b: their names in the result.
        metrics: metrics compared.
        subsets: subsets reported besides ``All`` (default: every subset present).
        resamples, seed: of the bootstrap.

    Returns:
        one row per (subset, metric): ``a, b, subset, metric, n, mean_a, mean_b, diff``
        (mean of a - b), ``ci_lo, ci_hi`` (95 % paired BCa bootstrap of the mean difference),
        ``wilcoxon_p`` (two-sided signed-rank; NaN when every difference is 0),
        ``a_better`` (share of images where ``a`` is strictly better), ``a_wins`` (``True``
        when the interval excludes 0 on ``a``'s better side).
    """
    if not a.index.equals(b.index):
        raise RharmInputError(f"paired_comparison: {label_a} and {label_b} cover different images")
    subsets = (
        list(subsets) if subsets is not None else list(dict.fromkeys(a.index.get_level_values(0)))
    )
    rng = np.random.default_rng(seed)
    rows = []
    for subset in [*subsets, "All"]:
        sel = slice(None) if subset == "All" else a.index.get_level_values(0) == subset
        for m in metrics:
            x = a.loc[sel, m].to_numpy(float)
            y = b.loc[sel, m].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)  # fMSE is NaN on an image without foreground
            x, y = x[ok], y[ok]
            d = x - y
            up = HIGHER_IS_BETTER[m]
            rec = {"a": label_a, "b": label_b, "subset": subset, "metric": m, "n": int(d.size)}
            rec.update(mean_a=float(x.mean()), mean_b=float(y.mean()), diff=float(d.mean()))
            if d.size >= 2 and np.ptp(d) > 0:
                ci = stats.bootstrap(
                    (d,), np.mean, n_resamples=resamples, method="BCa", random_state=rng
                ).confidence_interval
                lo, hi = float(ci.low), float(ci.high)
                p = float(stats.wilcoxon(x, y).pvalue)
            else:
                lo = hi = float(d.mean()) if d.size else float("nan")
                p = float("nan")
            rec.update(ci_lo=lo, ci_hi=hi, wilcoxon_p=p)
            rec["a_better"] = float(np.mean(d > 0 if up else d < 0)) if d.size else float("nan")
            rec["a_wins"] = bool(lo > 0) if up else bool(hi < 0)
            rows.append(rec)
    return pd.DataFrame(rows)
