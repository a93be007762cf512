"""Benchmark exploration statistics (notebook 01): foreground area and shift magnitude.

For each composite of a benchmark (a sequence of reader samples ``{"composite",
"mask", "target", "name", "subset"}``, uint8 NumPy), :func:`composite_statistics` measures

- ``fg_fraction``: the foreground's share of the image, ``sum(mask) / (H*W)`` in ``[0,1]``;
- ``shift_rgb``: the mean absolute difference composite - target over the foreground's
  pixels and the three channels, on the 0-255 scale;
- ``shift_de``: the mean CIE76 colour difference ΔE*ab (scikit-image's
  ``rgb2lab`` with D65, then ``deltaE_cie76``) over the foreground;
- ``shift_dl``: the mean signed lightness shift ΔL* (composite minus target) over the
  foreground (negative = the composite's foreground is darker).

Images are measured at their stored resolution. Empty foregrounds give ``fg_fraction = 0``
and NaN shifts (never a division by zero).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from skimage.color import deltaE_cie76, rgb2lab

from ..errors import RharmInputError

__all__ = [
    "sample_statistics",
    "composite_statistics",
    "summarize_statistics",
    "abs_difference",
    "COLUMNS",
]

COLUMNS = ("name", "subset", "fg_fraction", "shift_rgb", "shift_de", "shift_dl")


def sample_statistics(
    composite: np.ndarray, target: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    """The statistics of one composite (see the module docstring).

    Args:
        composite: ``(H,W,3)`` uint8 sRGB.
        target: ``(H,W,3)`` uint8 sRGB, the real image.
        mask: ``(H,W)`` in ``{0,1}``, 1 = foreground.

    Returns:
        ``{"fg_fraction", "shift_rgb", "shift_de", "shift_dl"}`` as floats.
    """
    if composite.shape != target.shape or composite.ndim != 3 or composite.shape[2] != 3:
        raise RharmInputError(
            f"expected composite and target of one shape (H,W,3), got {composite.shape} and {target.shape}"
        )
    if mask.shape != composite.shape[:2]:
        raise RharmInputError(f"expected mask of shape {composite.shape[:2]}, got {mask.shape}")
    fg = mask > 0
    n = int(fg.sum())
    frac = n / fg.size
    if n == 0:
        return {
            "fg_fraction": 0.0,
            "shift_rgb": float("nan"),
            "shift_de": float("nan"),
            "shift_dl": float("nan"),
        }
    c = composite[fg].astype(np.float64)  # (n,3)
    t = target[fg].astype(np.float64)
    lab_c = rgb2lab(c[None] / 255.0)[0]
    lab_t = rgb2lab(t[None] / 255.0)[0]
    return {
        "fg_fraction": frac,
        "shift_rgb": float(np.abs(c - t).mean()),
        "shift_de": float(deltaE_cie76(lab_c, lab_t).mean()),
        "shift_dl": float((lab_c[:, 0] - lab_t[:, 0]).mean()),
    }


def composite_statistics(samples: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per sample with :data:`COLUMNS` (samples need a ground-truth ``target``)."""
    rows = []
    for s in samples:
        if s.get("target") is None:
            raise RharmInputError(
                f"sample {s.get('name')!r} has no target; statistics need ground truth"
            )
        rows.append(
            {
                "name": s["name"],
                "subset": s["subset"],
                **sample_statistics(s["composite"], s["target"], s["mask"]),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def abs_difference(composite: np.ndarray, target: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """``|composite - target| * gain`` clipped to uint8 ``(H,W,3)`` (for display)."""
    d = np.abs(composite.astype(np.int16) - target.astype(np.int16)).astype(np.float32) * gain
    return np.clip(d, 0, 255).astype(np.uint8)


def summarize_statistics(stats: pd.DataFrame) -> pd.DataFrame:
    """Per subset and ``All``: ``n``, mean/median ``fg_fraction``, mean/median ``shift_de``,
    mean ``shift_rgb`` and ``shift_dl`` (NaN shifts of empty masks skipped)."""
    if stats.empty:
        raise RharmInputError("no statistics to summarize")

    def one(df: pd.DataFrame, subset: str) -> dict[str, Any]:
        return {
            "subset": subset,
            "n": len(df),
            "fg_fraction_mean": df["fg_fraction"].mean(),
            "fg_fraction_median": df["fg_fraction"].median(),
            "shift_de_mean": df["shift_de"].mean(),
            "shift_de_median": df["shift_de"].median(),
            "shift_rgb_mean": df["shift_rgb"].mean(),
            "shift_dl_mean": df["shift_dl"].mean(),
        }

    rows = [one(df, s) for s, df in stats.groupby("subset", sort=True)]
    rows.append(one(stats, "All"))
    return pd.DataFrame(rows)


def spread_indices(subsets: Sequence[str], n: int) -> list[int]:
    """``n`` sample indices that cover every subset *and* different photos.

    Pick ``k`` takes subset ``k mod S`` (subsets in first-seen order) at position ``k``
    within it (modulo its size; the next free one if taken), so with benchmarks that hold
    each photo once per family (same order in every subset) the picks show different photos
    in different families.

    Args:
        subsets: the subset of every sample, in dataset order.
        n: how many indices (fewer if the dataset is smaller).
    """
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(subsets):
        groups.setdefault(s, []).append(i)
    keys = list(groups)
    taken: set[int] = set()
    out: list[int] = []
    k = 0
    while len(out) < min(n, len(subsets)):
        g = groups[keys[k % len(keys)]]
        for d in range(len(g)):
            j = g[(k + d) % len(g)]
            if j not in taken:
                out.append(j)
                taken.add(j)
                break
        k += 1
    return out
