"""The methods the study compares and the evaluations the notebooks tabulate.

Notebooks 02 (Tables II/III analogue) and 04 (Table IV analogue) evaluate the same four
methods -- the input composite, Reinhard, histogram matching and the trained network -- with
:func:`rharm_lib.evaluate.evaluate_methods`; this module builds the method registry and
the tables, so that the notebooks only call and plot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..evaluate import SampleMethod, evaluate_methods, resolve_method
from . import stats
from .sources import highres_composites

__all__ = [
    "BASELINE_LABELS",
    "study_methods",
    "benchmark_table",
    "seeded_benchmark",
    "highres_evaluation",
]

#: table label -> registry name of the classical baselines, in table order
BASELINE_LABELS = {
    "input composite": "composite",
    "Reinhard": "reinhard",
    "histogram matching": "histmatch",
}


def study_methods(
    checkpoint: str | os.PathLike, device: str, model_label: str = "ours"
) -> dict[str, SampleMethod]:
    """The compared methods, label -> :class:`~rharm_lib.evaluate.SampleMethod`: the
    baselines of :data:`BASELINE_LABELS`, then the network of ``checkpoint`` as
    ``model_label`` (fp32 on ``device``)."""
    methods = {label: resolve_method(name) for label, name in BASELINE_LABELS.items()}
    methods[model_label] = resolve_method("checkpoint", checkpoint=str(checkpoint), device=device)
    return methods


def benchmark_table(
    dataset: Sequence[Mapping[str, Any]],
    methods: Mapping[str, Any],
    results_dir: str | os.PathLike,
    eval_size: int | None,
) -> pd.DataFrame:
    """The Tables II/III analogue: every method on the benchmark, per subset and ``All``.

    Result folders: ``<results_dir>/eval/benchmark_<method>``.

    Returns:
        :func:`~rharm_lib.evaluate.evaluate_methods`'s table: ``method``, ``subset``, ``n``,
        ``mse``, ``psnr``, ``psnr_peak``, ``fmse``, ``ssim``, ``fssim``, ``n_fg_skipped``,
        ``params_M`` (learned parameters in millions, 0 for the classical baselines).
    """
    return evaluate_methods(
        dataset, methods, Path(results_dir) / "eval", prefix="benchmark_", eval_size=eval_size
    )


def seeded_benchmark(
    dataset: Sequence[Mapping[str, Any]],
    checkpoints: Mapping[int, str | os.PathLike],
    device: str,
    model_label: str,
    results_dir: str | os.PathLike,
    eval_size: int | None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, SampleMethod]]:
    """The Tables II/III analogue with a model trained with several seeds.

    Every baseline of :data:`BASELINE_LABELS` and each seed's network are evaluated on
    ``dataset`` (folders ``<results_dir>/eval/benchmark_<name>``, the seeds'
    ``benchmark_model_seed<s>``); the seeds are pooled by
    :func:`rharm_lib.study.stats.aggregate_seeds` (mean, sd, 95 % t interval over seeds),
    and the model (its per-image mean over seeds) is compared with each baseline image by
    image (:func:`rharm_lib.study.stats.paired_comparison`).

    Returns:
        ``(table, paired, methods)``: ``table`` holds the baselines' rows, one row set per
        seed (``"<model_label> seed <s>"``) and the pooled rows (``model_label``, with
        ``*_sd``/``*_ci_lo``/``*_ci_hi`` columns); ``paired`` the per-image comparisons;
        ``methods`` label -> method (baselines, then the first seed's network as
        ``model_label``) for figures.
    """
    base = {label: resolve_method(name) for label, name in BASELINE_LABELS.items()}
    seed_labels = {s: f"{model_label} seed {s}" for s in checkpoints}
    nets = {
        seed_labels[s]: resolve_method("checkpoint", checkpoint=str(ck), device=device)
        for s, ck in checkpoints.items()
    }
    folders = {seed_labels[s]: f"model_seed{s}" for s in checkpoints}
    eval_dir = Path(results_dir) / "eval"
    table = evaluate_methods(
        dataset,
        {**base, **nets},
        eval_dir,
        prefix="benchmark_",
        folders=folders,
        eval_size=eval_size,
    )
    pooled = stats.aggregate_seeds(table, seed_labels, model_label)
    table = pd.concat([table, pooled], ignore_index=True)
    model = stats.per_image([eval_dir / f"benchmark_{f}" for f in folders.values()])
    paired = pd.concat(
        [
            stats.paired_comparison(
                model, stats.per_image([eval_dir / f"benchmark_{name}"]), model_label, label
            )
            for label, name in BASELINE_LABELS.items()
        ],
        ignore_index=True,
    )
    first = next(iter(nets.values()))
    return table, paired, {**base, model_label: first}


def highres_evaluation(
    photos: Sequence[tuple[str, np.ndarray, np.ndarray]],
    sizes: Sequence[int],
    methods: Mapping[str, Any],
    results_dir: str | os.PathLike,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, dict[str, Any]]]:
    """The Table IV analogue: every method at each long side, at native resolution.

    The composites of ``photos`` are made at each size with
    :func:`~rharm_lib.study.sources.highres_composites`; methods run at the image's own
    resolution and metrics are computed there (no resizing to 256). Result folders:
    ``<results_dir>/eval/highres_<size>_<method>``.

    Returns:
        ``(long, table, examples)``: ``long`` has one row per (method, size) with ``method,
        size, n, psnr, fmse, mse`` (the ``All`` rows); ``table`` has one row per method
        (in the order of ``methods``) with ``PSNR@<size>`` then ``fMSE@<size>`` columns;
        ``examples`` maps each size to its first composite sample.
    """
    frames, examples = [], {}
    for size in sizes:
        samples = highres_composites(photos, size, seed=seed)
        examples[size] = samples[0]
        t = evaluate_methods(
            samples,
            methods,
            Path(results_dir) / "eval",
            prefix=f"highres_{size}_",
            eval_size=None,
            run_at_eval_size=False,
        )
        t = t[t["subset"] == "All"].assign(size=size)
        frames.append(t[["method", "size", "n", "psnr", "fmse", "mse"]])
    long = pd.concat(frames, ignore_index=True)
    order = list(methods)
    parts = []
    for metric, name in (("psnr", "PSNR"), ("fmse", "fMSE")):
        wide = long.pivot(index="method", columns="size", values=metric).reindex(order)
        wide.columns = [f"{name}@{c}" for c in wide.columns]
        parts.append(wide)
    table = pd.concat(parts, axis=1).reset_index()
    return long, table, examples
