"""Result tables: one table = ``<name>.csv`` + ``<name>.md`` + ``<name>.provenance.json``.

The CSV keeps full precision (machine-readable), the Markdown rounds for reading and
carries the title and a note (the metric conventions, "reported, not reproduced" ...),
and the JSON is the provenance record (commit, profile, device, versions, date) with the
table's columns and row count. Every file is written through a temporary file and an
atomic rename, so a failure never leaves a partial table.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import RharmInputError
from ..provenance import write_json_atomic

__all__ = ["TableFiles", "COLUMN_DIGITS", "to_markdown", "write_table", "combine_summaries"]

#: decimals of columns whose values live in [0,1] (used unless ``digits`` names them)
COLUMN_DIGITS = {"ssim": 4, "fssim": 4}


@dataclass(frozen=True)
class TableFiles:
    """The three files of a written table."""

    csv: Path
    markdown: Path
    provenance: Path


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.{digits}f}" if abs(value) >= 1000 else f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def to_markdown(df: pd.DataFrame, digits: int | dict[str, int] = 2, index: bool = False) -> str:
    """A GitHub pipe table of ``df``; NaN shown as ``n/a``.

    Args:
        df: the table.
        digits: decimals of float columns: one int for all, or ``{column: decimals}`` (other
            columns 2). :data:`COLUMN_DIGITS` applies to columns not named.
        index: include the index as the first column.
    """
    frame = df.reset_index() if index else df
    cols = [str(c) for c in frame.columns]
    default = digits if isinstance(digits, int) else 2
    per = {**COLUMN_DIGITS, **({} if isinstance(digits, int) else digits)}
    col_digits = [per.get(c, default) for c in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        vals = [v.item() if hasattr(v, "item") else v for v in row]
        lines.append(
            "| " + " | ".join(_fmt(v, d) for v, d in zip(vals, col_digits, strict=True)) + " |"
        )
    return "\n".join(lines) + "\n"


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_table(
    df: pd.DataFrame,
    out_dir: str | os.PathLike,
    name: str,
    record: dict[str, Any],
    title: str | None = None,
    note: str | None = None,
    digits: int | dict[str, int] = 2,
    markdown: pd.DataFrame | None = None,
) -> TableFiles:
    """Write ``df`` as ``<out_dir>/<name>.csv``, ``.md`` and ``.provenance.json``.

    Args:
        df: the table (index dropped; put labels in columns).
        out_dir: the folder (created), e.g. ``results/ci``.
        name: a file stem of letters, digits, ``_``, ``-`` (``table2_benchmark``).
        record: the provenance record (:meth:`StudyContext.provenance`).
        title: the Markdown heading.
        note: a paragraph under the heading (conventions, caveats).
        digits: decimals in the Markdown file (see :func:`to_markdown`).
        markdown: a compact view shown in the Markdown file instead of ``df`` (the CSV
            always holds ``df`` in full precision).

    Returns:
        the :class:`TableFiles` written.
    """
    if not name or any(not (ch.isalnum() or ch in "_-") for ch in name):
        raise RharmInputError(f"table name {name!r}: use letters, digits, '_' and '-'")
    if df.empty:
        raise RharmInputError(f"table {name!r} is empty; nothing to write")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = TableFiles(out / f"{name}.csv", out / f"{name}.md", out / f"{name}.provenance.json")
    _write_text_atomic(files.csv, df.to_csv(index=False))
    md = (
        f"# {title or name}\n\n"
        + (f"{note.strip()}\n\n" if note else "")
        + to_markdown(df if markdown is None else markdown, digits)
    )
    _write_text_atomic(files.markdown, md)
    rec = dict(record)
    rec.update(
        table=name, title=title, note=note, columns=[str(c) for c in df.columns], rows=len(df)
    )
    write_json_atomic(files.provenance, rec, portable=True)
    return files


def combine_summaries(
    summaries: dict[str, pd.DataFrame], extra: dict[str, dict[str, Any]] | None = None
) -> pd.DataFrame:
    """Stack per-method summaries (``rharm_lib.evaluate`` ``summary.csv`` frames) into one table.

    Args:
        summaries: method label -> summary DataFrame (one row per subset plus ``All``).
        extra: method label -> extra columns for that method's rows (e.g. ``params_M``).

    Returns:
        columns ``method``, then the summaries' columns, then the extra ones; rows in the
        order of ``summaries``, each method's subsets in their own order.
    """
    if not summaries:
        raise RharmInputError("no summaries to combine")
    frames = []
    for label, df in summaries.items():
        f = df.copy()
        f.insert(0, "method", label)
        for k, v in (extra or {}).get(label, {}).items():
            f[k] = v
        frames.append(f)
    return pd.concat(frames, ignore_index=True)
