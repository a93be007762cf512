"""``rharm_lib.study.reported``: every transcribed cell equals the paper's text.

The paper's tables are re-read here, independently of the module, from the plain-text
copy in ``../shared/paper/`` (tab-separated rows under each ``TABLE <n>`` caption); each
cell is keyed ``(table, row, column)`` and compared with the module's public frames, in
both directions (a cell missing on either side fails too). Skipped when the file is absent.
"""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from rharm_lib.errors import RharmInputError
from rharm_lib.paths import REPO_ROOT
from rharm_lib.study import reported

PAPER = REPO_ROOT.parent / "shared" / "paper" / "liang_pun_2022_region_wise_contrastive.txt"

#: column order of Tables II/III, by position (their subset headers are OCR-split/garbled)
POSITIONAL_SUBSETS = ["HCOCO", "HAdobe5k", "HFlickr", "Hday2night", "All"]

#: paper row/column labels -> the module's method names (reference numbers stripped first)
ALIASES = {
    "Ours": "ours (paper)",
    "Copy-paste": "input composite",
    "$S^{2}AM$": "S2AM",
    "S ² AM": "S2AM",
    "S ² CRNet-VGG": "S2CRNet-VGG",
    "BargainNe": "BargainNet",  # truncated in Table V
}

Key = tuple  # (table, row, column)


def _method(label: str) -> str:
    name = re.sub(r"\s*\[\d+\]$", "", label.strip())
    return ALIASES.get(name, name)


def _num(cell: str) -> float | None:
    """'41.76M' -> 41.76, '11.76%' -> 11.76, '-' -> None."""
    cell = cell.strip().rstrip("M%")
    return None if cell in ("", "-") else float(cell)


def _table_rows(lines: list[str], table: str) -> list[list[str]]:
    """The consecutive tab-separated lines after the caption ``TABLE <table>``."""
    caption = re.compile(rf"^TABLE {table}\b")
    start = next(i for i, line in enumerate(lines) if caption.match(line))
    i = start + 1
    while "\t" not in lines[i]:
        i += 1
    rows = []
    while i < len(lines) and "\t" in lines[i]:
        rows.append(lines[i].split("\t"))
        i += 1
    return rows


def parse_paper(text: str) -> dict[Key, float | bool]:
    """Every numeric (and tick) cell of Tables I-VII, keyed like :func:`module_cells`."""
    lines = text.splitlines()
    cells: dict[Key, float | bool] = {}

    # Table I: header, "Training", "Testing"; subsets by position (HCOCO printed in Cyrillic)
    t1 = _table_rows(lines, "I")
    assert t1[0][0] == "Sub-dataset" and t1[0][-1] == "Total" and len(t1[0]) == 6
    for row in t1[1:]:
        split = {"Training": "train", "Testing": "test"}[row[0]]
        for subset, cell in zip(POSITIONAL_SUBSETS[:4] + ["Total"], row[1:], strict=True):
            cells[("I", subset, split)] = _num(cell)

    # Table II: 2 header lines, then method, #params, (MSE, PSNR) x 5
    t2 = _table_rows(lines, "II")
    header = t2[1]
    assert header[0] == "Methods" and header[1].startswith("#Param")
    assert all("MSE" in h for h in header[2::2]) and all("PSNR" in h for h in header[3::2])
    for row in t2[2:]:
        method = _method(row[0])
        if (p := _num(row[1])) is not None:
            cells[("II", method, "params_M")] = p
        for j, subset in enumerate(POSITIONAL_SUBSETS):
            cells[("II", f"{method}|{subset}", "mse")] = _num(row[2 + 2 * j])
            cells[("II", f"{method}|{subset}", "psnr")] = _num(row[3 + 2 * j])

    # Table III: 3 header lines (the third names fMSE/fSSIM), then method, (fMSE, fSSIM) x 5
    t3 = _table_rows(lines, "III")
    header = t3[2]
    assert all(h.startswith("fMSE") for h in header[1::2]) and len(header) == 11
    assert all(h.startswith("fSSIM") for h in header[2::2])
    for row in t3[3:]:
        method = _method(row[0])
        for j, subset in enumerate(POSITIONAL_SUBSETS):
            cells[("III", f"{method}|{subset}", "fmse")] = _num(row[1 + 2 * j])
            cells[("III", f"{method}|{subset}", "fssim_pct")] = _num(row[2 + 2 * j])

    # Table IV: header of methods; rows (dataset, "256×256", PSNR per method)
    t4 = _table_rows(lines, "IV")
    assert t4[0][:2] == ["Dataset", "Resolution"]
    methods = [_method(h) for h in t4[0][2:]]
    for row in t4[1:]:
        side, other = row[1].split("×")
        assert side == other
        for method, cell in zip(methods, row[2:], strict=True):
            cells[("IV", f"{method}|{int(side)}", "psnr")] = _num(cell)

    # Table V: rows Method / Votes / Preference, one column per method
    t5 = {row[0]: row[1:] for row in _table_rows(lines, "V")}
    for method, votes, pref in zip(t5["Method"], t5["Votes"], t5["Preference"], strict=True):
        cells[("V", _method(method), "votes")] = _num(votes)
        cells[("V", _method(method), "preference_pct")] = _num(pref)

    # Table VI: "#", 4 component columns (any glyph = ticked), MSE, PSNR, fSSIM
    t6 = _table_rows(lines, "VI")
    assert [h.split()[0] for h in t6[0][5:]] == ["MSE", "PSNR", "fSSIM"]
    comps = ["l1", "l_pixel", "style_fusion", "l_hcl"]
    for row in t6[1:]:
        for comp, cell in zip(comps, row[1:5], strict=True):
            cells[("VI", row[0], comp)] = bool(cell.strip())
        for col, cell in zip(["mse", "psnr", "fssim_pct"], row[5:], strict=True):
            cells[("VI", row[0], col)] = _num(cell)

    # Table VII: K, MSE, PSNR, SSIM
    t7 = _table_rows(lines, "VII")
    assert t7[0][0].startswith("Patches of K") and t7[0][3].startswith("SSIM")
    for row in t7[1:]:
        for col, cell in zip(["mse", "psnr", "ssim_pct"], row[1:], strict=True):
            cells[("VII", row[0], col)] = _num(cell)
    return cells


def _notna(v) -> bool:
    return not (isinstance(v, float) and math.isnan(v))


def module_cells() -> dict[Key, float | bool]:
    """The module's cells from its public frames, keyed like :func:`parse_paper` (NaN dropped)."""
    cells: dict[Key, float | bool] = {}
    for r in reported.reported_table1().itertuples():
        cells[("I", r.subset, "train")] = r.train
        cells[("I", r.subset, "test")] = r.test
    t23 = reported.reported_table2_3()
    for r in t23.itertuples():
        row = f"{r.method}|{r.subset}"
        cells[("II", row, "mse")] = r.mse
        cells[("II", row, "psnr")] = r.psnr
        if _notna(r.fmse) or _notna(r.fssim_pct):
            cells[("III", row, "fmse")] = r.fmse
            cells[("III", row, "fssim_pct")] = r.fssim_pct
    for method, p in t23.groupby("method", sort=False)["params_M"]:
        assert p.nunique(dropna=False) == 1
        if _notna(p.iloc[0]):
            cells[("II", method, "params_M")] = p.iloc[0]
    for r in reported.reported_table4().itertuples():
        cells[("IV", f"{r.method}|{r.resolution}", "psnr")] = r.psnr
    for r in reported.reported_table5().itertuples():
        cells[("V", r.method, "votes")] = r.votes
        cells[("V", r.method, "preference_pct")] = r.preference_pct
    for r in reported.reported_table6().itertuples():
        for col in ("l1", "l_pixel", "style_fusion", "l_hcl", "mse", "psnr", "fssim_pct"):
            cells[("VI", str(r.model), col)] = getattr(r, col)
    for r in reported.reported_table7().itertuples():
        for col in ("mse", "psnr", "ssim_pct"):
            cells[("VII", str(r.k), col)] = getattr(r, col)
    return cells


def mismatches(paper: dict, module: dict) -> list[str]:
    """Cells that differ, or that only one side has (values compared as printed, 2 decimals)."""
    out = []
    for key in sorted(set(paper) | set(module), key=str):
        if key not in module:
            out.append(f"{key}: in the paper ({paper[key]}), not in the module")
        elif key not in paper:
            out.append(f"{key}: in the module ({module[key]}), not in the paper")
        else:
            a, b = paper[key], module[key]
            same = (a is b) if isinstance(a, bool) else (a is not None and abs(a - b) < 5e-7)
            if not same:
                out.append(f"{key}: paper {a}, module {b}")
    return out


@pytest.fixture(scope="module")
def paper_cells() -> dict:
    if not PAPER.is_file():
        pytest.skip(f"paper text not found at {PAPER} (needs ../shared/paper next to the repo)")
    return parse_paper(PAPER.read_text(encoding="utf-8"))


def test_every_transcribed_cell_matches_the_paper(paper_cells):
    module = module_cells()
    assert mismatches(paper_cells, module) == []
    # the parse found every table's cells (not a vacuous comparison)
    per_table = pd.Series([k[0] for k in paper_cells]).value_counts().to_dict()
    assert per_table == {"I": 10, "II": 107, "III": 60, "IV": 21, "V": 10, "VI": 28, "VII": 12}


def test_comparison_detects_an_altered_or_missing_cell(paper_cells):
    module = module_cells()
    key = ("III", "ours (paper)|All", "fssim_pct")
    altered = {**module, key: module[key] + 0.01}
    assert mismatches(paper_cells, altered) == [f"{key}: paper 90.69, module {module[key] + 0.01}"]
    missing = {k: v for k, v in module.items() if k != ("II", "DIH", "params_M")}
    assert len(mismatches(paper_cells, missing)) == 1
    ticked = {**module, ("VI", "1", "l_pixel"): True}
    assert len(mismatches(paper_cells, ticked)) == 1


def test_legacy_names_agree_with_the_tables():
    assert reported.REPORTED_PARAMS_M == 28.37
    ours = reported.REPORTED_IHARMONY4["ours (paper)"]["All"]
    assert (ours["mse"], ours["psnr"], ours["fmse"]) == (25.90, 37.50, 279.46)
    assert ours["fssim"] == pytest.approx(0.9069, abs=1e-12)  # percent -> [0,1]
    df = reported.reported_table()
    assert df.shape == (50, 9) and (df["source"] == "reported, not reproduced").all()
    last = df.iloc[-1]
    assert (last["method"], last["subset"], last["params_M"]) == ("ours (paper)", "All", 28.37)
    assert df["fssim"].max() <= 1 and df["ssim"].isna().all()
    # methods absent from Table III have no foreground cells
    assert df.loc[df["method"] == "RainNet", ["fmse", "fssim"]].isna().all().all()


def test_every_frame_is_labelled_and_percent_converts():
    frames = {
        "Table I": reported.reported_table1(),
        "Tables II/III": reported.reported_table2_3(),
        "Table IV": reported.reported_table4(),
        "Table V": reported.reported_table5(),
        "Table VI": reported.reported_table6(),
        "Table VII": reported.reported_table7(),
    }
    for table_id, df in frames.items():
        assert (df["table"] == table_id).all() and (df["source"] == reported.SOURCE).all()
    t7 = reported.percent_to_fraction(frames["Table VII"])
    assert "ssim_pct" not in t7 and t7["ssim"].tolist() == pytest.approx(
        [0.9892, 0.9904, 0.9888, 0.9883]
    )


def test_user_study_votes_add_up_to_participants_times_images():
    t5 = reported.reported_table5()
    n = reported.USER_STUDY["participants"] * reported.USER_STUDY["images"]
    assert t5["votes"].sum() == n == 28 * 99
    # the printed preference is each method's share of the votes, to 2 decimals
    assert (100 * t5["votes"] / n).round(2).tolist() == t5["preference_pct"].tolist()


def test_user_study_size_is_the_papers(paper_cells):
    text = PAPER.read_text(encoding="utf-8")
    assert f"invite {reported.USER_STUDY['participants']} participants" in text
    assert f"{reported.USER_STUDY['participants']}×{reported.USER_STUDY['images']} groups" in text


def test_cross_table_checks_name_the_papers_disagreements():
    df = reported.cross_table_checks()
    assert df["agree"].tolist() == (df["value_a"] == df["value_b"]).tolist()
    off = set(df.loc[~df["agree"], "quantity"])
    assert off == {
        "RainNet HAdobe5k PSNR @256",
        "IIH HAdobe5k PSNR @256",
        "ours (paper) HAdobe5k PSNR @256",
        "ours All MSE (Table VI model 4)",
    }


def test_write_reported_blocks(tmp_path):
    files = reported.write_reported_blocks(tmp_path, {"citation": reported.CITATION}, ("IV", "V"))
    assert set(files) == {"IV", "V"}
    md = files["IV"].markdown.read_text()
    assert "Reported, not reproduced" in md and "37.55" in md
    assert len(pd.read_csv(files["V"].csv)) == 5
    with pytest.raises(RharmInputError, match="unknown reported table"):
        reported.write_reported_blocks(tmp_path, {}, ("VIII",))
