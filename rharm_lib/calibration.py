"""The calibration report: the benchmark's input composites against iHarmony4's, image by image.

For every composite of the benchmark (made exactly as ``rharm data synth`` makes it, without
writing files) the input composite's MSE, PSNR and fMSE are computed with
:func:`rharm_lib.metrics.image_metrics` (the evaluation protocol, 256x256), with the
foreground fraction of its mask. :func:`calibration_report` compares, per family and All,

- the per-image quantiles (10/25/50/75/90 %) with iHarmony4's (the family's subset, and the
  whole test set for All; :mod:`rharm_lib.data.ihd_stats`);
- the two-sample Kolmogorov-Smirnov distance (:func:`scipy.stats.ks_2samp`) to iHarmony4's
  reference sample (the per-image distribution rebuilt from its percentiles);
- the means with the paper-reported means and their bands (All only).

Targets (:data:`KS_TARGETS`): KS <= 0.10 for input fMSE and <= 0.15 for the foreground
fraction (All); MSE has no KS target (it follows from the two: ``MSE = fMSE * fraction``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from .data import ihd_stats
from .data.benchmark import SUBSETS, make_composites
from .data.mask_rule import MaskRuleConfig
from .data.photoset import PhotoSet
from .data.synth import FAMILIES, SynthConfig
from .errors import RharmInputError
from .metrics import image_metrics

__all__ = [
    "KS_TARGETS",
    "composite_statistics",
    "dataset_statistics",
    "calibration_report",
    "mean_check",
    "calibration_markdown",
    "plot_calibration",
]

#: the issue's targets on the KS distance of "All" to iHarmony4's test set
KS_TARGETS: dict[str, float] = {"fmse": 0.10, "fg_fraction": 0.15}
_LEVEL_NAMES = [f"q{round(100 * q)}" for q in ihd_stats.REPORTED_LEVELS]


def composite_statistics(
    photos: PhotoSet,
    seed: int = 0,
    families: Sequence[str] = FAMILIES,
    cfg: SynthConfig = SynthConfig(),
    mask_cfg: MaskRuleConfig = MaskRuleConfig(),
) -> pd.DataFrame:
    """Per-image statistics of the input composites the benchmark makes from ``photos``.

    Returns:
        One row per composite: ``family, subset, name, mask_kind, mse, psnr, fmse,
        fg_fraction`` (metrics on the 0..255 scale at the photos' size).
    """
    rows = []
    real = photos.images.permute(0, 2, 3, 1).numpy()
    for fam in families:
        if fam not in FAMILIES:
            raise RharmInputError(f"unknown composite family {fam!r}; known: {list(FAMILIES)}")
        comps, _, masks = make_composites(photos, fam, seed, cfg, mask_cfg=mask_cfg)
        human = photos.masks
        comp = comps.permute(0, 2, 3, 1).numpy()
        for i, name in enumerate(photos.names):
            m = masks[i, 0].numpy()
            r = image_metrics(comp[i], real[i], m)
            rows.append(
                {
                    "family": fam,
                    "subset": SUBSETS[fam],
                    "name": name,
                    "mask_kind": "human" if bool((masks[i] == human[i]).all()) else "region",
                    "mse": r["mse"],
                    "psnr": r["psnr"],
                    "fmse": r["fmse"],
                    "fg_fraction": float(m.mean()),
                }
            )
    return pd.DataFrame(rows)


def dataset_statistics(samples: Iterable[dict]) -> pd.DataFrame:
    """Per-image statistics of an existing benchmark (e.g. the study's, read back from disk).

    Args:
        samples: reader samples (:class:`~rharm_lib.data.ihd.IHDDataset` items): ``composite``
            and ``target`` ``(H,W,3)`` uint8, ``mask`` ``(H,W)`` uint8 ``{0,1}``, ``name``,
            ``subset`` (a benchmark subset name, ``Transfer`` ...).

    Returns:
        The columns of :func:`composite_statistics` (``mask_kind`` is ``"unknown"``); samples
        of a subset that is not one of the benchmark's families are skipped.
    """
    family_of = {v: k for k, v in SUBSETS.items()}
    rows = []
    for s in samples:
        fam = family_of.get(str(s["subset"]))
        if fam is None:
            continue
        mask = np.asarray(s["mask"])
        r = image_metrics(np.asarray(s["composite"]), np.asarray(s["target"]), mask)
        rows.append(
            {
                "family": fam,
                "subset": s["subset"],
                "name": s["name"],
                "mask_kind": "unknown",
                "mse": r["mse"],
                "psnr": r["psnr"],
                "fmse": r["fmse"],
                "fg_fraction": float((mask > 0).mean()),
            }
        )
    return pd.DataFrame(rows)


def _groups(stats: pd.DataFrame) -> list[tuple[str, pd.DataFrame, str]]:
    """``(our group, its rows, the iHarmony4 subset it is compared with)``."""
    out = []
    for fam in FAMILIES:
        g = stats[stats["family"] == fam]
        if len(g):
            out.append((SUBSETS[fam], g, ihd_stats.FAMILY_SUBSET[fam]))
    out.append(("All", stats, "All"))
    return out


def calibration_report(stats: pd.DataFrame) -> pd.DataFrame:
    """Quantiles and KS distances of the composites against iHarmony4's, per family and All.

    Args:
        stats: the output of :func:`composite_statistics`.

    Returns:
        One row per (group, metric): ``group, ihd_subset, metric, n, q10..q90`` (ours),
        ``ihd_q10..ihd_q90`` (iHarmony4's), ``ks`` (two-sample KS distance to iHarmony4's
        reference sample), ``mean``, ``ihd_mean`` (of the per-image source).
    """
    if stats.empty:
        raise RharmInputError("no composites to report on")
    means = ihd_stats.subset_means()
    rows = []
    for group, g, sub in _groups(stats):
        for metric in ihd_stats.METRICS:
            x = g[metric].dropna().to_numpy(np.float64)
            ref = ihd_stats.reference_sample(metric, sub)
            row = {"group": group, "ihd_subset": sub, "metric": metric, "n": len(x)}
            row.update(
                dict(zip(_LEVEL_NAMES, np.quantile(x, ihd_stats.REPORTED_LEVELS), strict=True))
            )
            ihd_q = ihd_stats.quantile(metric, np.asarray(ihd_stats.REPORTED_LEVELS), sub)
            row.update({f"ihd_{k}": float(v) for k, v in zip(_LEVEL_NAMES, ihd_q, strict=True)})
            row["ks"] = float(ks_2samp(x, ref).statistic)
            row["mean"] = float(x.mean())
            row["ihd_mean"] = means[sub][metric] if metric in means[sub] else float(np.mean(ref))
            rows.append(row)
    return pd.DataFrame(rows)


def mean_check(stats: pd.DataFrame) -> pd.DataFrame:
    """The All means of MSE, fMSE and PSNR against the paper-reported means and bands.

    Returns:
        Rows ``metric, mean, reported, low, high, ok``.
    """
    rows = []
    for metric, (lo, hi) in ihd_stats.MEAN_BANDS.items():
        v = float(stats[metric].dropna().mean())
        rows.append(
            {
                "metric": metric,
                "mean": v,
                "reported": ihd_stats.REPORTED_MEANS[metric],
                "low": lo,
                "high": hi,
                "ok": bool(lo <= v <= hi),
            }
        )
    return pd.DataFrame(rows)


def _fmt(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 1 else f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"


def calibration_markdown(report: pd.DataFrame, means: pd.DataFrame | None = None) -> str:
    """The report as Markdown: one row per group and quantity, ours vs iHarmony4, KS."""
    qs = " / ".join(n[1:] for n in _LEVEL_NAMES)
    lines = [
        f"| group | quantity | n | ours {qs} % | iHarmony4 (subset) | KS | mean (iHarmony4) |",
        "|---|---|---:|---|---|---:|---|",
    ]
    for r in report.itertuples(index=False):
        ours = " / ".join(_fmt(getattr(r, n)) for n in _LEVEL_NAMES)
        ihd = " / ".join(_fmt(getattr(r, f"ihd_{n}")) for n in _LEVEL_NAMES)
        lines.append(
            f"| {r.group} | {r.metric} | {r.n} | {ours} | {ihd} ({r.ihd_subset}) | "
            f"{r.ks:.3f} | {_fmt(r.mean)} ({_fmt(r.ihd_mean)}) |"
        )
    if means is not None:
        lines += ["", "| All mean | ours | reported | band | in band |", "|---|---:|---:|---|---|"]
        for r in means.itertuples(index=False):
            lines.append(
                f"| {r.metric} | {r.mean:.2f} | {r.reported:.2f} | {r.low:g}-{r.high:g} | "
                f"{'yes' if r.ok else 'NO'} |"
            )
    return "\n".join(lines)


def plot_calibration(stats: pd.DataFrame, axes=None):
    """Empirical CDFs of input fMSE, MSE and foreground fraction: ours vs iHarmony4.

    One panel per quantity (log x axis): iHarmony4's test set (black), our All (thick) and
    each family (thin); the legend gives the KS distance of All.

    Args:
        stats: the output of :func:`composite_statistics`.
        axes: three matplotlib axes to draw on (default: a new 1x3 figure).

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    else:
        fig = axes[0].figure
    labels = {"fmse": "input fMSE", "mse": "input MSE", "fg_fraction": "foreground fraction"}
    for ax, metric in zip(axes, ihd_stats.METRICS, strict=True):
        ref = ihd_stats.reference_sample(metric, "All")
        ax.plot(ref, (np.arange(len(ref)) + 0.5) / len(ref), color="k", lw=2, label="iHarmony4")
        for group, g, _ in _groups(stats):
            x = np.sort(g[metric].dropna().to_numpy(np.float64))
            if not len(x):
                continue
            lab = group
            if group == "All":
                lab = f"ours All (KS {ks_2samp(x, ref).statistic:.3f})"
            ax.plot(
                x,
                (np.arange(len(x)) + 0.5) / len(x),
                lw=2 if group == "All" else 0.9,
                alpha=1 if group == "All" else 0.7,
                label=lab,
            )
        ax.set_xscale("log")
        ax.set_xlabel(labels[metric])
        ax.set_ylabel("fraction of composites")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Input composites per image: benchmark vs iHarmony4 test set")
    fig.tight_layout()
    return fig
