"""Does a regenerated study agree with the committed one? (``rharm study --check``).

Before the notebooks run, :func:`snapshot` reads every committed table
(``results/<profile>/**/*.csv`` except per-image files and executed notebooks); after the
run, :func:`compare` reads them again and lists every cell that moved by more than its
tolerance:

- **Deterministic rows** (benchmark statistics, the input composite, the classical
  baselines, the paper's reported numbers: every row whose ``method`` does not name our
  model) must agree to a relative :data:`DETERMINISTIC_RTOL` (1e-6). They involve no
  training: a drift there means the data or a metric changed.
- **Trained-model rows** (a ``method`` that starts with ``ours``; every row of a table
  computed from the trained network, :func:`is_model_table`) must agree within the
  profile's ``check_rtol`` (relative), derived from the measured seed-to-seed spread of that
  profile (see ``docs/study.md``): training is not bit-reproducible across machines
  (different SIMD kernels round differently), so a fresh run moves these rows by about one
  seed's spread, not by zero.

Rows are matched by their text columns (e.g. ``method`` and ``subset``); a row or a table
that exists on one side only is a drift too. Wall-clock columns (names starting with
:data:`TIMING_PREFIX`, e.g. the Table IV analogue's ``time_s@1024``) are not compared: they
measure the machine and its load, not the study.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .tables import to_markdown

__all__ = [
    "DETERMINISTIC_RTOL",
    "TIMING_PREFIX",
    "Drift",
    "snapshot",
    "compare",
    "drift_table",
    "is_model_row",
    "is_model_table",
]

#: relative tolerance of every row that involves no training
DETERMINISTIC_RTOL = 1e-6
#: columns whose name starts with this hold wall-clock seconds and are not compared
TIMING_PREFIX = "time_s"
#: absolute floor under which two numbers count as equal (e.g. 0 vs 1e-17)
ATOL = 1e-9
#: tables whose every row depends on a trained network or an optimisation (checked with the
#: profile's tolerance): Fig. 10's feature statistics of the trained model and the L_HCL
#: diagnosis (Adam on pixels and an MLP)
MODEL_TABLES = frozenset(
    {
        "fig10_feature_stats",
        "hcl_loss_diagnosis",
        "table6_ablation",
        "table6_paired_tests",
        "fig8_9_fusion",
        "table7_patches",
        "ablation_verdicts",
        "table4_fast_vs_native",
        "ablation_curves",
    }
)


@dataclass(frozen=True)
class Drift:
    """One cell (or row, or table) that moved: what the check prints."""

    table: str
    row: str
    column: str
    committed: float | str
    regenerated: float | str
    rel_diff: float
    tolerance: float


def _tables(results_dir: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(results_dir.rglob("*.csv")):
        rel = p.relative_to(results_dir).as_posix()
        if rel.startswith("executed/") or p.name == "per_image.csv":
            continue
        out[rel] = p
    return out


def snapshot(results_dir: str | Path) -> dict[str, tuple[str, float]]:
    """The committed tables of a results folder: ``{relative path: (csv text, mtime)}``."""
    return {
        rel: (p.read_text(encoding="utf-8"), p.stat().st_mtime)
        for rel, p in _tables(Path(results_dir)).items()
    }


def is_model_row(row: pd.Series) -> bool:
    """A row of a trained model of ours: a text cell (``method``, or ``a`` of a paired
    comparison) starting with ``ours`` (the paper's reported ``ours (paper)`` excluded)."""
    for v in row.values:
        if isinstance(v, str) and v.lower().startswith("ours") and "paper" not in v.lower():
            return True
    return False


def is_model_table(rel: str) -> bool:
    """A table computed from a trained network throughout: :data:`MODEL_TABLES`, and the
    evaluation folders of a model (``eval/benchmark_model_seed0``, ``eval/highres_512_model``)."""
    p = Path(rel)
    return p.stem in MODEL_TABLES or "model" in p.parent.name


def _keyed(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    text = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if text:  # missing text cells (NaN, also under pandas' string dtype) become ""
        key = df[text].apply(lambda r: " / ".join("" if pd.isna(v) else str(v) for v in r), axis=1)
    else:
        key = pd.Series(df.index.astype(str), index=df.index)
    df = df.assign(_key=list(key))
    # repeated keys (e.g. a table without text columns) are told apart by their order
    df["_key"] = df["_key"] + df.groupby("_key").cumcount().map(lambda i: f" #{i}" if i else "")
    return df.set_index("_key"), text


def compare(
    before: dict[str, tuple[str, float]],
    results_dir: str | Path,
    model_rtol: float,
    only_rewritten: bool = False,
) -> list[Drift]:
    """Every drift between the snapshot ``before`` and the tables now in ``results_dir``.

    Args:
        before: :func:`snapshot` taken before the study ran.
        results_dir: the same folder after the run.
        model_rtol: relative tolerance of trained-model rows (the profile's ``check_rtol``).
        only_rewritten: compare only tables the run rewrote (``rharm study --only``); a
            committed table left untouched is then not a drift.

    Returns:
        the drifts (empty: the study reproduced the committed tables).
    """
    after = _tables(Path(results_dir))
    drifts: list[Drift] = []
    for rel, (text, mtime) in before.items():
        path = after.get(rel)
        if path is None:
            drifts.append(Drift(rel, "*", "*", "table", "missing", math.inf, 0.0))
            continue
        if only_rewritten and path.stat().st_mtime == mtime:
            continue
        model_table = is_model_table(rel)
        old, text_cols = _keyed(pd.read_csv(io.StringIO(text)))
        new, _ = _keyed(pd.read_csv(path))
        for key in old.index.difference(new.index):
            drifts.append(Drift(rel, key, "*", "row", "missing", math.inf, 0.0))
        for key in new.index.difference(old.index):
            drifts.append(Drift(rel, key, "*", "missing", "row", math.inf, 0.0))
        for key in old.index.intersection(new.index):
            a, b = old.loc[key], new.loc[key]
            model = model_table or is_model_row(a)
            tol = model_rtol if model else DETERMINISTIC_RTOL
            for col in old.columns:
                if col in text_cols or col not in new.columns or col.startswith(TIMING_PREFIX):
                    continue
                x, y = float(a[col]), float(b[col])
                if math.isnan(x) and math.isnan(y):
                    continue
                diff = abs(x - y)
                rel_diff = diff / max(abs(x), ATOL) if diff > ATOL else 0.0
                if math.isnan(rel_diff) or rel_diff > tol:
                    drifts.append(Drift(rel, key, col, x, y, rel_diff, tol))
    for rel in sorted(set(after) - set(before)):
        drifts.append(Drift(rel, "*", "*", "missing", "table", math.inf, 0.0))
    return drifts


def drift_table(drifts: list[Drift]) -> str:
    """The drifts as a Markdown table (what ``rharm study --check`` prints)."""
    if not drifts:
        return "no drift"
    df = pd.DataFrame([d.__dict__ for d in drifts])
    return to_markdown(df, digits={"committed": 6, "regenerated": 6, "rel_diff": 3, "tolerance": 3})
