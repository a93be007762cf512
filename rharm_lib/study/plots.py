"""Figure helpers of the study: image grids, mask outlines, and saving with provenance.

Images are NumPy ``(H,W,3)`` uint8 sRGB (the reader vocabulary); masks ``(H,W)`` uint8 in
``{0,1}``. :func:`save_figure` writes ``<name>.png`` (and ``<name>.pdf`` where a vector
file helps: curves, bar charts) and records the figure in ``<out_dir>/provenance.json``,
an index ``{file name: provenance record}`` rewritten atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import binary_dilation
from skimage.segmentation import find_boundaries

from ..errors import RharmInputError
from ..provenance import write_json_atomic

__all__ = ["outline", "image_grid", "box_strip", "save_figure"]


def outline(image: np.ndarray, mask: np.ndarray, color=(255, 32, 32), width: int = 1) -> np.ndarray:
    """``image`` with the boundary of ``mask`` drawn in ``color``.

    Args:
        image: ``(H,W,3)`` uint8 sRGB.
        mask: ``(H,W)`` in ``{0,1}`` (any dtype), same H, W.
        color: RGB in ``[0,255]``.
        width: boundary thickness in pixels (``find_boundaries`` dilated ``width-1`` times).

    Returns:
        a new ``(H,W,3)`` uint8 array.
    """
    if image.shape[:2] != mask.shape[:2]:
        raise RharmInputError(f"outline: image {image.shape} and mask {mask.shape} differ in size")
    edge = find_boundaries(mask > 0, mode="inner")
    for _ in range(max(width, 1) - 1):
        edge = binary_dilation(edge) & (mask > 0)
    out = image.copy()
    out[edge] = np.asarray(color, dtype=np.uint8)
    return out


def image_grid(
    rows: Sequence[Sequence[np.ndarray]],
    col_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    cell_inches: float = 1.9,
    title: str | None = None,
):
    """A figure showing ``rows[r][c]`` at row r, column c, without axes.

    Args:
        rows: lists of images, each ``(H,W,3)`` uint8 or ``(H,W)`` (shown grey); rows may
            differ in length (missing cells stay blank).
        col_labels: titles of the first row's columns.
        row_labels: labels left of each row.
        cell_inches: size of one cell.
        title: the figure's title.

    Returns:
        the ``matplotlib.figure.Figure``.
    """
    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise RharmInputError("image_grid: no images to show")
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(cell_inches * n_cols, cell_inches * n_rows + (0.4 if title else 0)),
        squeeze=False,
    )
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if c < len(row) and row[c] is not None:
                img = row[c]
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
            if r == 0 and col_labels is not None and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0 and row_labels is not None and r < len(row_labels):
                ax.set_ylabel(row_labels[r], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def box_strip(ax, groups: dict[str, Sequence[float]], seed: int = 0) -> None:
    """Box plots with every value drawn as a jittered dot, one column per group.

    Args:
        ax: a matplotlib axes.
        groups: label -> values (NaNs dropped).
        seed: seed of the horizontal jitter (the figure is reproducible).
    """
    rng = np.random.default_rng(seed)
    labels = list(groups)
    data = [np.asarray([v for v in groups[k] if np.isfinite(v)], dtype=float) for k in labels]
    ax.boxplot(data, showfliers=False, widths=0.5)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    for i, vals in enumerate(data, start=1):
        ax.plot(i + rng.uniform(-0.15, 0.15, len(vals)), vals, ".", alpha=0.6, ms=4)


def _update_index(out_dir: Path, files: Sequence[Path], record: dict[str, Any]) -> None:
    index_path = out_dir / "provenance.json"
    index: dict[str, Any] = {}
    if index_path.exists():
        try:
            index = json.loads(index_path.read_text())
        except json.JSONDecodeError:
            index = {}
    for f in files:
        index[f.name] = record
    write_json_atomic(index_path, index, portable=True)


def save_figure(
    fig,
    out_dir: str | os.PathLike,
    name: str,
    record: dict[str, Any],
    pdf: bool = False,
    dpi: int = 100,
    close: bool = False,
) -> list[Path]:
    """Save ``fig`` as ``<out_dir>/<name>.png`` (and ``.pdf``); index its provenance.

    Args:
        fig: a matplotlib figure.
        out_dir: e.g. ``figures/ci`` (created).
        name: file stem (letters, digits, ``_``, ``-``).
        record: provenance record (:meth:`StudyContext.provenance`).
        pdf: also write a vector PDF (curves, bars; not photo grids).
        dpi: PNG resolution.
        close: close the figure afterwards (keep it open to show it inline).

    Returns:
        the written paths.
    """
    if not name or any(not (ch.isalnum() or ch in "_-") for ch in name):
        raise RharmInputError(f"figure name {name!r}: use letters, digits, '_' and '-'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("png", "pdf") if pdf else ("png",):
        path = out / f"{name}.{ext}"
        tmp = out / f".{name}.tmp.{ext}"
        fig.savefig(
            tmp,
            dpi=dpi,
            bbox_inches="tight",
            metadata={"CreationDate": None} if ext == "pdf" else None,
        )
        os.replace(tmp, path)
        written.append(path)
    _update_index(out, written, dict(record, figure=name))
    if close:
        plt.close(fig)
    return written
