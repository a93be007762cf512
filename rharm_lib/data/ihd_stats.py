"""iHarmony4's input-composite statistics: the calibration targets, written once, with sources.

Two kinds of numbers:

1. **Paper-reported means** of the input composite on the iHarmony4 test set (7,404 images,
   256x256): MSE 170.25, fMSE 1376.42, PSNR 31.70 dB (as quoted by the paper's Table I and
   DoveNet, CVPR 2020), and the bands the offline benchmark's means must stay in
   (:data:`MEAN_BANDS`: MSE and fMSE within +-25 %, PSNR within +-1 dB).
2. **Per-image distributions**: the percentiles 0, 1, ..., 100 of input fMSE, MSE and the
   foreground fraction, per subset and All, computed by ``tools/ihd_percentiles.py`` from
   PCT-Net's published per-image evaluation of the input composites
   (:data:`SOURCE`; metrics at native resolution -- fMSE is nearly resolution-independent,
   the fraction exactly so, MSE slightly not: its mean there is 178.0 against the paper's
   170.25 at 256). Only these summaries are committed (``rharm_lib/assets/ihd/``).

The distribution between two stored percentiles is **piecewise log-linear**: the quantile
function ``Q(p)`` interpolates ``log(value)`` linearly in ``p`` between the neighbouring
percentiles (all values are positive). :func:`quantile` evaluates it, :func:`reference_sample`
draws the deterministic sample ``Q((i + 0.5) / n)`` used as the two-sample KS reference.
With 101 percentiles the reconstruction's KS distance to the raw 7,404 values is 0.004 (fMSE),
0.006 (MSE) and 0.003 (fraction) -- measured once against the source file with
``scipy.stats.ks_2samp(reference_sample(m), raw[m])``; the raw file is not needed at run time.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import RharmInputError

__all__ = [
    "SOURCE",
    "SUBSETS",
    "FAMILY_SUBSET",
    "METRICS",
    "REPORTED_MEANS",
    "MEAN_BANDS",
    "REPORTED_LEVELS",
    "subset_counts",
    "subset_means",
    "percentiles",
    "quantile",
    "reference_sample",
]

#: where the per-image percentiles come from (the raw file is not committed)
SOURCE = (
    "PCT-Net (Guerreiro et al., CVPR 2023), per-image evaluation of the input composites on "
    "the iHarmony4 test set: github.com/rakutentech/PCT-Net-Image-Harmonization, "
    "evaluation/evaluation_composite.csv at commit 1572176e (MPL-2.0), "
    "sha256 a6884020d9b8b6b0a80ed16fdd19a427ea9c49fbed6ac0b7458d4f7e495f5a55"
)
#: iHarmony4's test subsets, then the pooled set
SUBSETS: tuple[str, ...] = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night", "All")
#: composite family (rharm_lib.data.synth.FAMILIES) -> the iHarmony4 subset it models
FAMILY_SUBSET: dict[str, str] = {
    "transfer": "HCOCO",
    "histogram": "HFlickr",
    "retouch": "HAdobe5k",
    "relight": "Hday2night",
}
#: per-image quantities with stored percentiles: input fMSE and MSE (0..255 scale), and the
#: foreground's fraction of the image
METRICS: tuple[str, ...] = ("fmse", "mse", "fg_fraction")
#: the paper-reported means of the input composite, iHarmony4 test set "All" at 256x256
REPORTED_MEANS: dict[str, float] = {"mse": 170.25, "fmse": 1376.42, "psnr": 31.70}
#: bands for the benchmark's means: MSE and fMSE +-25 % of the reported mean, PSNR +-1 dB
MEAN_BANDS: dict[str, tuple[float, float]] = {
    "mse": (127.7, 212.8),
    "fmse": (1032.0, 1720.0),
    "psnr": (30.7, 32.7),
}
#: the quantile levels the reports print
REPORTED_LEVELS: tuple[float, ...] = (0.10, 0.25, 0.50, 0.75, 0.90)

_ASSET = "ihd_test_input_percentiles"


@lru_cache(maxsize=1)
def _table() -> dict[tuple[str, str], np.ndarray]:
    import pandas as pd

    ref = resources.files("rharm_lib") / "assets" / "ihd" / f"{_ASSET}.csv"
    with ref.open("r") as fh:
        df = pd.read_csv(fh)
    out = {}
    for (sub, metric), g in df.groupby(["subset", "metric"], sort=False):
        v = g.sort_values("percent")["value"].to_numpy(np.float64)
        v.setflags(write=False)
        out[(str(sub), str(metric))] = v
    return out


@lru_cache(maxsize=1)
def _meta() -> dict:
    ref = resources.files("rharm_lib") / "assets" / "ihd" / f"{_ASSET}.json"
    return json.loads(ref.read_text())


def _check(metric: str, subset: str) -> None:
    if metric not in METRICS:
        raise RharmInputError(f"unknown iHarmony4 statistic {metric!r}; known: {list(METRICS)}")
    if subset not in SUBSETS:
        raise RharmInputError(f"unknown iHarmony4 subset {subset!r}; known: {list(SUBSETS)}")


def subset_counts() -> dict[str, int]:
    """Images per test subset (and ``All``: 7,404) in the per-image source."""
    return {k: int(v["n"]) for k, v in _meta()["summary"].items()}


def subset_means() -> dict[str, dict[str, float]]:
    """Means of the per-image source (native resolution): ``{subset: {mse, psnr, fmse}}``."""
    return {
        k: {m: float(v[m]) for m in ("mse", "psnr", "fmse")} for k, v in _meta()["summary"].items()
    }


def percentiles(metric: str, subset: str = "All") -> np.ndarray:
    """The 101 stored percentiles (0, 1, ..., 100 %) of ``metric`` in ``subset`` (read-only)."""
    _check(metric, subset)
    return _table()[(subset, metric)]


def quantile(metric: str, p: np.ndarray | float, subset: str = "All") -> np.ndarray:
    """The quantile function ``Q(p)``, piecewise log-linear between the stored percentiles.

    Args:
        metric: one of :data:`METRICS`.
        p: probabilities in ``[0, 1]`` (any shape).
        subset: one of :data:`SUBSETS`.

    Returns:
        ``Q(p)`` as float64, the shape of ``p``.
    """
    p = np.asarray(p, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise RharmInputError("quantile probabilities must lie in [0, 1]")
    logv = np.log(percentiles(metric, subset))
    return np.exp(np.interp(p * 100.0, np.arange(101.0), logv))


def reference_sample(metric: str, subset: str = "All", n: int | None = None) -> np.ndarray:
    """The deterministic reference sample ``Q((i + 0.5) / n)``, ``i = 0..n-1``, for KS tests.

    Args:
        metric: one of :data:`METRICS`.
        subset: one of :data:`SUBSETS`.
        n: sample size; default the subset's real image count.
    """
    n = subset_counts()[subset] if n is None else int(n)
    return quantile(metric, (np.arange(n) + 0.5) / n, subset)
