"""Numbers *reported* by the paper, kept apart from anything this project measures.

These values are **reported, not reproduced**: they are the paper's published iHarmony4
results, stored here as data with their citation so that notebooks can print them in a
separate, clearly-labelled block next to our own tables. No notebook computes them.

Source: Liang, J. and Pun, C.-M., "Image Harmonization with Region-wise Contrastive
Learning", arXiv:2205.14058 (2022), Tables II/III (iHarmony4 test set, 256x256) and
Section IV (parameter count). Transcription note: only two values are entered (the
input-composite row "All" and the parameter count, as quoted from the paper when the
project was planned); the other cells of the paper's tables are left as ``None`` ("not transcribed")
because the paper's PDF was not available offline when this module was written. Fill
them from the PDF, with the table and row they come from, never from memory.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["CITATION", "REPORTED_IHARMONY4", "REPORTED_PARAMS_M", "reported_table"]

CITATION = (
    "Liang & Pun, Image Harmonization with Region-wise Contrastive Learning, "
    "arXiv:2205.14058, Tables II/III (iHarmony4 test set, 256x256)"
)

#: method -> subset -> metric -> value (None = not transcribed)
REPORTED_IHARMONY4: dict[str, dict[str, dict[str, float | None]]] = {
    "input composite": {
        "All": {"mse": 170.25, "psnr": 31.70, "fmse": 1376.42, "ssim": None, "fssim": None},
    },
    "ours (paper)": {
        "All": {"mse": None, "psnr": None, "fmse": None, "ssim": None, "fssim": None},
    },
}

#: the paper's model size in millions of parameters (Section IV)
REPORTED_PARAMS_M = 28.37


def reported_table() -> pd.DataFrame:
    """The reported block as a table: ``method, subset, mse, psnr, fmse, ssim, fssim, source``.

    Cells that were not transcribed are NaN (shown as ``n/a`` in Markdown).
    """
    rows = []
    for method, subsets in REPORTED_IHARMONY4.items():
        for subset, vals in subsets.items():
            rows.append(
                {
                    "method": method,
                    "subset": subset,
                    **{k: (float("nan") if v is None else v) for k, v in vals.items()},
                    "source": "reported, not reproduced",
                }
            )
    return pd.DataFrame(rows)
