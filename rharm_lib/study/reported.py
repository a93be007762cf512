"""Numbers *reported* by the paper, kept apart from anything this project measures.

These values are **reported, not reproduced**: every number in the paper's Tables I-VII,
stored once here as data with its table, so that notebooks can print them in separate,
clearly-labelled blocks next to our own tables. Nothing in this project computes them.

Source: Liang, J. and Pun, C.-M., "Image Harmonization with Region-wise Contrastive
Learning", arXiv:2205.14058 (2022); transcribed from the plain-text copy of the paper
(``../shared/paper/liang_pun_2022_region_wise_contrastive.txt``). ``tests/test_reported.py``
re-reads every table from that file and checks every cell below against it.

Transcription decisions (the text copy is OCR'd):

- Columns are mapped **by position**. Table II's header cells are OCR-split ("HC MSE /
  OCO PSNR") and Table III's subset header is garbled; both follow the order HCOCO,
  HAdobe5k, HFlickr, Hday2night, All (:data:`SUBSETS`), with (MSE, PSNR) resp.
  (fMSE, fSSIM) per subset. Table I spells the subsets "Hflickr" and "Hdat2night" (and
  HCOCO in Cyrillic letters); they are stored under the names of :data:`SUBSETS`.
- Method names: reference numbers dropped ("DIH [30]" -> "DIH"), "S²AM" -> "S2AM",
  "S²CRNet-VGG" -> "S2CRNet-VGG", the paper's "Ours" -> "ours (paper)", and Table V's
  "Copy-paste" (truncated "BargainNe") -> "input composite" ("BargainNet"): the unharmonized
  composite is the same method as Table II's "input composite".
- Table VI numbers its models 1-4; the paper's prose calls them A-D (kept as ``label``).
  Every row has L_1 ticked (row 1 with a different check glyph).
- **Units as printed.** MSE/fMSE on 0-255 pixel values, PSNR in dB, #params in millions,
  and **SSIM/fSSIM in percent** (e.g. 90.69); this project's metrics give SSIM/fSSIM in
  [0,1]. Columns holding percent are named ``*_pct``; :func:`percent_to_fraction` converts
  them, and :func:`reported_table` (the block printed next to our measured rows) is already
  in our units.
- Cells the paper does not have (Table III lists 6 of Table II's 10 methods; #params of
  the three rows printed "-"; SSIM in Tables II/III) are ``None`` here and NaN (``n/a``) in
  the frames: "not reported", not "not transcribed".

The paper's tables do not all agree with each other where they overlap (e.g. Table IV's
256² PSNR of "ours" is Table II's All PSNR, not its HAdobe5k PSNR); :func:`cross_table_checks`
lists every overlapping cell, computed from the data, and the study prints it as is.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..errors import RharmInputError
from .tables import TableFiles, write_table

__all__ = [
    "CITATION",
    "SOURCE",
    "SUBSETS",
    "TABLE1_SUBSET_SIZES",
    "TABLE2_MSE_PSNR",
    "TABLE3_FMSE_FSSIM",
    "TABLE4_HADOBE5K_PSNR",
    "TABLE5_USER_STUDY",
    "USER_STUDY",
    "TABLE6_ABLATION",
    "TABLE7_PATCHES_K",
    "REPORTED_IHARMONY4",
    "REPORTED_PARAMS_M",
    "percent_to_fraction",
    "reported_table",
    "reported_table1",
    "reported_table2_3",
    "reported_table4",
    "reported_table5",
    "reported_table6",
    "reported_table7",
    "cross_table_checks",
    "REPORTED_BLOCKS",
    "write_reported_blocks",
]

CITATION = (
    "Liang & Pun, Image Harmonization with Region-wise Contrastive Learning, "
    "arXiv:2205.14058, Tables I-VII (Tables II/III: iHarmony4 test set, 256x256)"
)

#: the value of every frame's ``source`` column
SOURCE = "reported, not reproduced"

#: iHarmony4's subsets in the paper's column order, then the pooled "All"
SUBSETS = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night", "All")

# ---------------------------------------------------------------------------------------
# The tables, as printed (units in the module docstring). None = the paper has no value.
# ---------------------------------------------------------------------------------------

#: Table I: iHarmony4 image pairs per subset, ``{subset: {"train": n, "test": n}}``
TABLE1_SUBSET_SIZES: dict[str, dict[str, int]] = {
    "HCOCO": {"train": 38545, "test": 4283},
    "HAdobe5k": {"train": 19437, "test": 2160},
    "HFlickr": {"train": 7449, "test": 828},
    "Hday2night": {"train": 311, "test": 133},
    "Total": {"train": 65742, "test": 7404},
}

#: Table II: ``method -> (params_M, (MSE, PSNR) for each of SUBSETS)``
TABLE2_MSE_PSNR: dict[str, tuple[float | None, tuple[tuple[float, float], ...]]] = {
    "input composite": (
        None,
        ((67.89, 34.07), (342.27, 28.14), (260.98, 28.35), (107.95, 34.01), (170.25, 31.70)),
    ),
    "Xue et al.": (
        None,
        ((77.04, 33.32), (274.15, 28.79), (249.54, 28.32), (190.51, 31.24), (155.87, 31.40)),
    ),
    "Zhu et al.": (
        None,
        ((79.82, 33.04), (414.31, 27.26), (315.42, 27.52), (136.71, 32.32), (204.77, 30.72)),
    ),
    "DIH": (
        41.76,
        ((51.85, 34.69), (92.65, 32.28), (163.38, 29.55), (82.34, 34.62), (76.77, 33.41)),
    ),
    "S2AM": (
        66.70,
        ((33.07, 36.09), (48.22, 35.34), (124.53, 31.00), (48.78, 35.60), (48.00, 35.29)),
    ),
    "DoveNet": (
        54.76,
        ((36.72, 35.83), (52.32, 34.34), (133.14, 30.21), (54.05, 35.18), (52.36, 34.75)),
    ),
    "BargainNet": (
        58.74,
        ((24.84, 37.03), (39.94, 35.34), (97.32, 31.34), (50.98, 35.67), (37.82, 35.88)),
    ),
    "IIH": (
        40.86,
        ((24.92, 37.16), (43.02, 35.20), (105.13, 31.34), (55.53, 35.96), (38.71, 35.90)),
    ),
    "RainNet": (
        54.75,
        ((31.12, 36.59), (42.84, 36.20), (117.59, 31.33), (47.24, 36.12), (44.50, 35.88)),
    ),
    "ours (paper)": (
        28.37,
        ((19.91, 37.77), (21.16, 38.33), (66.14, 34.00), (46.63, 37.11), (25.90, 37.50)),
    ),
}

#: Table III: ``method -> (fMSE, fSSIM %) for each of SUBSETS`` (6 of Table II's methods)
TABLE3_FMSE_FSSIM: dict[str, tuple[tuple[float, float], ...]] = {
    "input composite": (
        (996.59, 82.57),
        (2051.61, 72.94),
        (1574.37, 80.31),
        (1409.98, 63.53),
        (1376.42, 79.17),
    ),
    "DIH": ((798.99, 82.25), (593.03, 77.77), (1099.13, 79.84), (1129.40, 62.77), (773.18, 80.32)),
    "S2AM": ((542.06, 84.77), (404.62, 81.20), (785.65, 82.33), (989.07, 63.74), (594.67, 83.08)),
    "DoveNet": (
        (551.01, 84.73),
        (380.36, 83.09),
        (827.03, 82.35),
        (1075.71, 61.94),
        (532.62, 83.57),
    ),
    "IIH": ((416.38, 86.19), (284.21, 83.64), (716.60, 82.97), (797.04, 64.49), (400.29, 84.69)),
    "ours (paper)": (
        (300.19, 89.81),
        (157.40, 92.54),
        (412.82, 91.99),
        (763.66, 77.79),
        (279.46, 90.69),
    ),
}

#: Table IV: HAdobe5k PSNR (dB) at 256², 512², 1024²: ``method -> {resolution: psnr}``
TABLE4_HADOBE5K_PSNR: dict[str, dict[int, float]] = {
    "S2AM": {256: 35.34, 512: 32.55, 1024: 30.02},
    "DoveNet": {256: 34.34, 512: 34.72, 1024: 34.43},
    "BargainNet": {256: 35.34, 512: 35.78, 1024: 34.64},
    "RainNet": {256: 35.77, 512: 36.56, 1024: 36.81},
    "IIH": {256: 35.26, 512: 36.62, 1024: 36.45},
    "S2CRNet-VGG": {256: 36.42, 512: 36.89, 1024: 36.52},
    "ours (paper)": {256: 37.50, 512: 37.50, 1024: 37.55},
}

#: Table V: user study on DIH99, ``method -> (votes, preference %)``
TABLE5_USER_STUDY: dict[str, tuple[int, float]] = {
    "input composite": (326, 11.76),
    "DIH": (521, 18.80),
    "BargainNet": (491, 17.71),
    "RainNet": (618, 22.29),
    "ours (paper)": (816, 29.44),
}

#: the user study's size (Section IV-C, "Subjective Evaluation": 28 participants, each
#: choosing one image per group, 28x99 groups; DIH99 has 99 composites, Section IV-B)
USER_STUDY: dict[str, Any] = {"participants": 28, "images": 99, "section": "IV-C"}

#: Table VI: ablation, ``model -> (label, L_1, L_pixel, S.F., L_HCL, MSE, PSNR, fSSIM %)``
TABLE6_ABLATION: dict[int, tuple[str, bool, bool, bool, bool, float, float, float]] = {
    1: ("A", True, False, False, False, 54.55, 34.56, 85.68),
    2: ("B", True, True, False, False, 42.14, 35.53, 88.14),
    3: ("C", True, True, True, False, 29.08, 37.01, 90.03),
    4: ("D", True, True, True, True, 25.92, 37.50, 90.69),
}

#: Table VII: number of sampled patches K, ``K -> (MSE, PSNR, SSIM %)``
TABLE7_PATCHES_K: dict[int, tuple[float, float, float]] = {
    128: (29.06, 37.00, 98.92),
    256: (25.90, 37.50, 99.04),
    512: (30.87, 36.79, 98.88),
    1024: (30.35, 36.69, 98.83),
}

_TABLE_IDS = {
    "I": "Table I",
    "II/III": "Tables II/III",
    "IV": "Table IV",
    "V": "Table V",
    "VI": "Table VI",
    "VII": "Table VII",
}


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _finish(rows: list[dict[str, Any]], table: str) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df.insert(0, "table", _TABLE_IDS[table])
    df["source"] = SOURCE
    return df


def percent_to_fraction(df: pd.DataFrame) -> pd.DataFrame:
    """Convert the paper's percent SSIM columns to this project's [0,1] units.

    Every column ``<name>_pct`` (``ssim_pct``, ``fssim_pct``) becomes ``<name>`` holding
    ``value / 100``, in place of the percent column; other columns are untouched.

    Args:
        df: a frame of this module (percent as printed, e.g. ``fssim_pct`` = 90.69).

    Returns:
        a new frame, e.g. with ``fssim`` = 0.9069.
    """
    out = df.copy()
    for col in [c for c in df.columns if str(c).endswith("_pct")]:
        out[col] = out[col] / 100.0
        out = out.rename(columns={col: str(col)[: -len("_pct")]})
    return out


def reported_table1() -> pd.DataFrame:
    """Table I: ``table, subset, train, test, source`` (image pairs; 5 rows incl. Total)."""
    rows = [{"subset": s, **n} for s, n in TABLE1_SUBSET_SIZES.items()]
    return _finish(rows, "I")


def reported_table2_3() -> pd.DataFrame:
    """Tables II/III as printed, one row per method x subset (10 methods x 5 subsets).

    Columns ``table, method, subset, params_M, mse, psnr, fmse, fssim_pct, source``:
    MSE/fMSE on 0-255, PSNR in dB, fSSIM in percent, #params in millions (the same on
    each of a method's rows). fMSE/fSSIM are NaN for the 4 methods absent from Table III.
    """
    rows = []
    for method, (params, cells) in TABLE2_MSE_PSNR.items():
        fg = TABLE3_FMSE_FSSIM.get(method)
        for i, subset in enumerate(SUBSETS):
            mse, psnr = cells[i]
            fmse, fssim = fg[i] if fg else (None, None)
            rows.append(
                {
                    "method": method,
                    "subset": subset,
                    "params_M": _nan(params),
                    "mse": mse,
                    "psnr": psnr,
                    "fmse": _nan(fmse),
                    "fssim_pct": _nan(fssim),
                }
            )
    return _finish(rows, "II/III")


def reported_table4() -> pd.DataFrame:
    """Table IV: ``table, dataset, method, resolution, psnr, source`` (7 methods x 3 sizes).

    ``resolution`` is the square side in pixels (256, 512, 1024); PSNR in dB on HAdobe5k.
    """
    rows = [
        {"dataset": "HAdobe5k", "method": m, "resolution": r, "psnr": p}
        for m, by_res in TABLE4_HADOBE5K_PSNR.items()
        for r, p in by_res.items()
    ]
    return _finish(rows, "IV")


def reported_table5() -> pd.DataFrame:
    """Table V: ``table, method, votes, preference_pct, source`` (5 methods, DIH99).

    The votes sum to ``participants x images`` of :data:`USER_STUDY` (28 x 99 = 2772).
    """
    rows = [
        {"method": m, "votes": v, "preference_pct": p} for m, (v, p) in TABLE5_USER_STUDY.items()
    ]
    return _finish(rows, "V")


def reported_table6() -> pd.DataFrame:
    """Table VI: ``table, model, label, l1, l_pixel, style_fusion, l_hcl, mse, psnr, fssim_pct, source``.

    The four booleans say which components the model uses; fSSIM in percent.
    """
    keys = ("label", "l1", "l_pixel", "style_fusion", "l_hcl", "mse", "psnr", "fssim_pct")
    rows = [{"model": k, **dict(zip(keys, v, strict=True))} for k, v in TABLE6_ABLATION.items()]
    return _finish(rows, "VI")


def reported_table7() -> pd.DataFrame:
    """Table VII: ``table, k, mse, psnr, ssim_pct, source`` (K patches; SSIM in percent)."""
    rows = [
        {"k": k, "mse": mse, "psnr": psnr, "ssim_pct": ssim}
        for k, (mse, psnr, ssim) in TABLE7_PATCHES_K.items()
    ]
    return _finish(rows, "VII")


def _iharmony4_nested() -> dict[str, dict[str, dict[str, float | None]]]:
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for method, (_, cells) in TABLE2_MSE_PSNR.items():
        fg = TABLE3_FMSE_FSSIM.get(method)
        out[method] = {}
        for i, subset in enumerate(SUBSETS):
            out[method][subset] = {
                "mse": cells[i][0],
                "psnr": cells[i][1],
                "fmse": fg[i][0] if fg else None,
                "ssim": None,  # Tables II/III report no full-image SSIM
                "fssim": fg[i][1] / 100.0 if fg else None,
            }
    return out


#: method -> subset -> metric -> value in **this project's units** (fSSIM in [0,1]);
#: None = not reported. Derived from :data:`TABLE2_MSE_PSNR` and :data:`TABLE3_FMSE_FSSIM`.
REPORTED_IHARMONY4: dict[str, dict[str, dict[str, float | None]]] = _iharmony4_nested()

#: the paper's model size in millions of parameters (Table II, row "Ours")
REPORTED_PARAMS_M: float = TABLE2_MSE_PSNR["ours (paper)"][0]  # type: ignore[assignment]


def reported_table() -> pd.DataFrame:
    """The reported block of Tables II/III in this project's units, next to measured tables.

    Columns ``method, subset, mse, psnr, fmse, ssim, fssim, params_M, source``: one row per
    method x subset (50 rows), fSSIM in [0,1] (the paper's percent / 100), ``ssim`` NaN (not
    reported), fMSE/fSSIM NaN for methods absent from Table III. The last row is
    ``ours (paper)``, ``All``.
    """
    return percent_to_fraction(reported_table2_3()).assign(ssim=float("nan"))[
        ["method", "subset", "mse", "psnr", "fmse", "ssim", "fssim", "params_M", "source"]
    ]


def cross_table_checks() -> pd.DataFrame:
    """Every cell the paper prints in two tables, and whether the two agree.

    Columns ``quantity, table_a, value_a, table_b, value_b, agree`` (exact equality of
    the printed values): Table IV's 256² PSNR vs Table II's HAdobe5k PSNR per method,
    Table VI's full model (row 4) and Table VII's K=256 row vs the "ours" All row of
    Tables II/III.
    """
    rows = []
    for method, by_res in TABLE4_HADOBE5K_PSNR.items():
        if method in TABLE2_MSE_PSNR:
            t2 = TABLE2_MSE_PSNR[method][1][SUBSETS.index("HAdobe5k")][1]
            rows.append((f"{method} HAdobe5k PSNR @256", "IV", by_res[256], "II", t2))
    ours_all = TABLE2_MSE_PSNR["ours (paper)"][1][-1]
    ours_fg = TABLE3_FMSE_FSSIM["ours (paper)"][-1]
    full = TABLE6_ABLATION[4]
    rows += [
        ("ours All MSE (Table VI model 4)", "VI", full[5], "II", ours_all[0]),
        ("ours All PSNR (Table VI model 4)", "VI", full[6], "II", ours_all[1]),
        ("ours All fSSIM % (Table VI model 4)", "VI", full[7], "III", ours_fg[1]),
        ("ours All MSE (Table VII K=256)", "VII", TABLE7_PATCHES_K[256][0], "II", ours_all[0]),
        ("ours All PSNR (Table VII K=256)", "VII", TABLE7_PATCHES_K[256][1], "II", ours_all[1]),
    ]
    df = pd.DataFrame(rows, columns=["quantity", "table_a", "value_a", "table_b", "value_b"])
    df["agree"] = df["value_a"] == df["value_b"]
    df["source"] = SOURCE
    return df


#: the reported blocks a notebook can write: id -> (file stem, title, frame builder)
REPORTED_BLOCKS: dict[str, tuple[str, str, Callable[[], pd.DataFrame]]] = {
    "I": (
        "reported_table1_iharmony4_sizes",
        "Table I: iHarmony4 image pairs per subset",
        reported_table1,
    ),
    "II/III": (
        "reported_table2_3_iharmony4",
        "Tables II/III: iHarmony4 test set at 256² (MSE, PSNR, fMSE, fSSIM %, #params)",
        reported_table2_3,
    ),
    "IV": (
        "reported_table4_hadobe5k",
        "Table IV: PSNR on HAdobe5k at 256², 512², 1024²",
        reported_table4,
    ),
    "V": ("reported_table5_user_study", "Table V: user study on DIH99", reported_table5),
    "VI": ("reported_table6_ablation", "Table VI: ablation of the components", reported_table6),
    "VII": ("reported_table7_patches_k", "Table VII: number of sampled patches K", reported_table7),
    "checks": (
        "reported_cross_table_checks",
        "Cells the paper prints in two tables, and whether they agree",
        cross_table_checks,
    ),
}


def write_reported_blocks(
    out_dir: str | os.PathLike, record: dict[str, Any], which: tuple[str, ...] | None = None
) -> dict[str, TableFiles]:
    """Write reported blocks as tables (CSV + Markdown + provenance), labelled as such.

    Args:
        out_dir: the results folder, e.g. ``ctx.results_dir``.
        record: the provenance record (``ctx.provenance(citation=CITATION)``).
        which: ids of :data:`REPORTED_BLOCKS` (``("IV",)``); None = all of them.

    Returns:
        ``{id: TableFiles}`` of the files written.
    """
    ids = tuple(REPORTED_BLOCKS) if which is None else which
    unknown = [i for i in ids if i not in REPORTED_BLOCKS]
    if unknown:
        raise RharmInputError(
            f"unknown reported table(s) {unknown}; known: {list(REPORTED_BLOCKS)}"
        )
    out = {}
    for i in ids:
        stem, title, build = REPORTED_BLOCKS[i]
        out[i] = write_table(
            build(),
            out_dir,
            stem,
            record,
            title=f"Reported, not reproduced: {title}",
            note=f"Source: {CITATION}. Values as printed in the paper: MSE/fMSE on 0-255, PSNR in dB, "
            "SSIM/fSSIM in percent (`*_pct`; this project's metrics are in [0,1]), #params in "
            "millions. n/a = not reported by the paper. Transcribed in rharm_lib/study/reported.py.",
        )
    return out
