"""The methods the study compares and the evaluations the notebooks tabulate.

Notebooks 02 (Tables II/III analogue) and 04 (Table IV analogue) evaluate the same four
methods -- the input composite, Reinhard, histogram matching and the trained network -- with
:func:`rharm_lib.evaluate.evaluate_methods`; this module builds the method registry and
the tables, so that the notebooks only call and plot. Notebook 04 adds the network in the
fast full-resolution mode (:func:`rharm_lib.fullres.harmonize_fast`, issue 11) at one or
more working sizes, and times every method per image.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import RharmInputError
from ..evaluate import SampleMethod, evaluate_methods, resolve_method
from ..inference import Harmonizer
from . import stats
from .check import TIMING_PREFIX
from .sources import highres_composites

__all__ = [
    "BASELINE_LABELS",
    "TIME_COLUMN",
    "FastMode",
    "TimedMethod",
    "fast_label",
    "study_methods",
    "benchmark_table",
    "seeded_benchmark",
    "highres_evaluation",
    "fast_vs_native",
]

#: table label -> registry name of the classical baselines, in table order
BASELINE_LABELS = {
    "input composite": "composite",
    "Reinhard": "reinhard",
    "histogram matching": "histmatch",
}


#: the wall-clock column of the Table IV analogue (``time_s@<size>`` in the wide table):
#: seconds per image, machine- and load-dependent, so ``rharm study --check`` skips it
TIME_COLUMN = TIMING_PREFIX


class FastMode:
    """A :class:`~rharm_lib.inference.Harmonizer` in the fast full-resolution mode, as a
    two-argument method: ``m(composite (H,W,3) uint8, mask (H,W) uint8) -> (H,W,3) uint8``
    = ``harmonizer.harmonize(composite, mask, mode="fast", working_size=working_size)``.

    The network runs at ``working_size`` (long side) and its colour change is lifted to
    the image's own resolution (:func:`rharm_lib.fullres.harmonize_fast`); an image no larger
    than ``working_size`` runs natively (fast = native exactly). ``net`` is the harmonizer's
    network (so :func:`rharm_lib.evaluate.method_params` counts it).
    """

    def __init__(self, harmonizer: Harmonizer, working_size: int) -> None:
        self.harmonizer, self.working_size = harmonizer, int(working_size)
        self.net = harmonizer.net

    def __call__(self, composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.harmonizer.harmonize(
            composite, mask, mode="fast", working_size=self.working_size
        )


class TimedMethod(SampleMethod):
    """A :class:`~rharm_lib.evaluate.SampleMethod` that records the wall-clock seconds of
    each call in ``seconds`` (the method only: no metric, no file I/O).

    Args:
        method: a :class:`~rharm_lib.evaluate.SampleMethod`, or a two-argument callable
            ``(composite, mask) -> pred`` (a :data:`rharm_lib.baselines.BASELINES` entry, a
            :class:`~rharm_lib.inference.Harmonizer`).
    """

    def __init__(self, method: SampleMethod | Any) -> None:
        if not isinstance(method, SampleMethod):
            if not callable(method):
                raise RharmInputError(f"a method must be callable, got {type(method).__name__}")
            name = getattr(method, "__name__", None) or type(method).__name__
            method = SampleMethod(name, method)
        super().__init__(method.name, method.fn, method.device, method.info)
        self.seconds: list[float] = []

    def __call__(self, sample: Mapping[str, Any]) -> np.ndarray:
        t = time.perf_counter()
        out = super().__call__(sample)
        self.seconds.append(time.perf_counter() - t)
        return out


def fast_label(model_label: str, working_size: int) -> str:
    """The table label of the network in fast mode: ``"<model_label> (fast@<ws>)"``, with
    a ``" (native)"`` suffix of ``model_label`` dropped first."""
    base = model_label.removesuffix(" (native)")
    return f"{base} (fast@{int(working_size)})"


def study_methods(
    checkpoint: str | os.PathLike,
    device: str,
    model_label: str = "ours",
    fast_working_sizes: Sequence[int] = (),
) -> dict[str, SampleMethod]:
    """The compared methods, label -> :class:`~rharm_lib.evaluate.SampleMethod`: the
    baselines of :data:`BASELINE_LABELS`, then the network of ``checkpoint`` as
    ``model_label`` (fp32 on ``device``, at the image's own resolution), then, for each of
    ``fast_working_sizes``, the same network in the fast full-resolution mode
    (:class:`FastMode`) as :func:`fast_label` (result folder ``model_fast<ws>``)."""
    methods = {label: resolve_method(name) for label, name in BASELINE_LABELS.items()}
    model = resolve_method("checkpoint", checkpoint=str(checkpoint), device=device)
    methods[model_label] = model
    for ws in fast_working_sizes:
        methods[fast_label(model_label, ws)] = _fast_method(model, ws, f"model_fast{int(ws)}")
    return methods


def _fast_method(model: SampleMethod, working_size: int, name: str) -> SampleMethod:
    """``model`` (a checkpoint method) in the fast full-resolution mode at ``working_size``."""
    if int(working_size) < 16:
        raise RharmInputError(f"fast-mode working size must be >= 16, got {working_size}")
    info = {**model.info, "mode": "fast", "working_size": int(working_size)}
    return SampleMethod(name, FastMode(model.fn, working_size), model.device, info)


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
    working_size: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, SampleMethod]]:
    """The Tables II/III analogue with a model trained with several seeds.

    ``working_size``: when set, each seed's network runs in the fast mode at that long
    side (:class:`FastMode`, its colour change lifted to the ``eval_size`` image; metrics at
    ``eval_size`` as for every method), and the first seed is also evaluated natively as
    ``"<model_label> native seed <s>"`` (folder ``benchmark_model_native_seed<s>``) so that
    the table shows both.

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
    native = {
        s: resolve_method("checkpoint", checkpoint=str(ck), device=device)
        for s, ck in checkpoints.items()
    }
    folders = {seed_labels[s]: f"model_seed{s}" for s in checkpoints}
    extra = {}
    if working_size is None:
        nets = {seed_labels[s]: m for s, m in native.items()}
    else:
        nets = {
            seed_labels[s]: _fast_method(m, working_size, f"model_seed{s}")
            for s, m in native.items()
        }
        s0 = next(iter(checkpoints))
        extra = {f"{model_label} native seed {s0}": native[s0]}
        folders[f"{model_label} native seed {s0}"] = f"model_native_seed{s0}"
    eval_dir = Path(results_dir) / "eval"
    table = evaluate_methods(
        dataset,
        {**base, **nets, **extra},
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
    :func:`~rharm_lib.study.sources.highres_composites`; methods get the composite at that
    size (the network in native mode runs on it whole; in fast mode, :class:`FastMode`, at
    its working size with the change lifted back) and metrics are computed at that size (no
    resizing to 256). Each method's call is timed (:class:`TimedMethod`; the same process,
    one image after the other, the first call of a size included). Result folders:
    ``<results_dir>/eval/highres_<size>_<folder>`` (``model`` for the checkpoint,
    ``model_fast<ws>`` for its fast mode).

    Args:
        photos: ``[(name, image (H,W,3) uint8, mask (h,w) uint8)]``
            (:func:`~rharm_lib.study.sources.highres_photos`).
        sizes: long sides (pixels).
        methods: label -> method (:func:`study_methods`), in table order.
        results_dir: the parent of ``eval/``.
        seed: the composites' seed.

    Returns:
        ``(long, table, examples)``: ``long`` has one row per (method, size) with ``method,
        size, n, psnr, fmse, mse`` (the ``All`` rows) and ``time_s`` (median wall-clock
        seconds per image of the method); ``table`` has one row per method (in the order of
        ``methods``) with ``PSNR@<size>``, then ``fMSE@<size>``, then ``time_s@<size>``
        columns; ``examples`` maps each size to its first composite sample.
    """
    frames, examples = [], {}
    for size in sizes:
        samples = highres_composites(photos, size, seed=seed)
        examples[size] = samples[0]
        timed = {label: TimedMethod(m) for label, m in methods.items()}
        t = evaluate_methods(
            samples,
            timed,
            Path(results_dir) / "eval",
            prefix=f"highres_{size}_",
            eval_size=None,
            run_at_eval_size=False,
        )
        t = t[t["subset"] == "All"].assign(size=size)
        t[TIME_COLUMN] = [statistics.median(timed[label].seconds) for label in t["method"]]
        frames.append(t[["method", "size", "n", "psnr", "fmse", "mse", TIME_COLUMN]])
    long = pd.concat(frames, ignore_index=True)
    order = list(methods)
    parts = []
    for metric, name in (("psnr", "PSNR"), ("fmse", "fMSE"), (TIME_COLUMN, TIME_COLUMN)):
        wide = long.pivot(index="method", columns="size", values=metric).reindex(order)
        wide.columns = [f"{name}@{c}" for c in wide.columns]
        parts.append(wide)
    table = pd.concat(parts, axis=1).reset_index()
    return long, table, examples


def fast_vs_native(
    long: pd.DataFrame,
    native: str = "ours (native)",
    psnr_tolerance_db: float = 0.3,
    fmse_tolerance: float = 0.05,
) -> pd.DataFrame:
    """Issue 11's quality bar of the fast mode, per fast row and size: the fast mode is
    within ``psnr_tolerance_db`` dB PSNR and ``fmse_tolerance`` (relative) fMSE of native
    mode on the same composites, or better.

    Args:
        long: the ``long`` frame of :func:`highres_evaluation` (``method, size, n, psnr,
            fmse``; means over the photos).
        native: the label of the native-mode row.

    Returns:
        one row per (fast method, size): ``method, size, n, psnr_native, psnr_fast,
        psnr_diff_db`` (fast - native), ``fmse_native, fmse_fast, fmse_ratio`` (fast /
        native), ``meets_psnr, meets_fmse, meets_bar``.
    """
    if native not in set(long["method"]):
        raise RharmInputError(f"no {native!r} row in the high-resolution table")
    base = long[long["method"] == native].set_index("size")
    rows = []
    for _, r in long[long["method"].str.contains("fast@", regex=False)].iterrows():
        b = base.loc[r["size"]]
        d_psnr = float(r["psnr"] - b["psnr"])
        ratio = float(r["fmse"] / b["fmse"]) if b["fmse"] > 0 else float("nan")
        rows.append(
            {
                "method": r["method"],
                "size": int(r["size"]),
                "n": int(r["n"]),
                "psnr_native": float(b["psnr"]),
                "psnr_fast": float(r["psnr"]),
                "psnr_diff_db": d_psnr,
                "fmse_native": float(b["fmse"]),
                "fmse_fast": float(r["fmse"]),
                "fmse_ratio": ratio,
                "meets_psnr": d_psnr >= -psnr_tolerance_db,
                "meets_fmse": ratio <= 1.0 + fmse_tolerance,
            }
        )
    out = pd.DataFrame(rows)
    if not out.empty:
        out["meets_bar"] = out["meets_psnr"] & out["meets_fmse"]
    return out
