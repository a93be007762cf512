"""Tests of the study runner, profiles, table and figure writers (rharm_lib.study)."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rharm_lib.cli import main
from rharm_lib.errors import RharmInputError
from rharm_lib.study import plots, tables
from rharm_lib.study.profiles import PROFILES, get_profile
from rharm_lib.study.runner import (
    PARAMETER_NAMES,
    StudyFailure,
    discover_notebooks,
    load_notebook,
    resolve_device,
    run_study,
    select_notebooks,
)
from rharm_lib.study.session import start_session

REPO = Path(__file__).resolve().parent.parent

PARAMS_CELL = """# %% tags=["parameters"]
profile = "ci"
seed = 0
device = "cpu"
"""

NB_OK = (
    PARAMS_CELL
    + """
# %%
import json, os, pathlib
from tqdm.auto import tqdm
from rharm_lib.study.outputs import output_dirs
figures_dir, results_dir = (str(d) for d in output_dirs(profile))
pathlib.Path(results_dir).mkdir(parents=True, exist_ok=True)
total = 0
for i in tqdm(range(50), desc="loop"):
    total += i
pathlib.Path(results_dir, "seen.json").write_text(json.dumps(
    {"profile": profile, "seed": seed, "device": device, "figures_dir": figures_dir,
     "results_dir": results_dir, "cwd": os.getcwd(), "total": total,
     "notebook": os.environ.get("RHARM_STUDY_NOTEBOOK"), "tqdm": tqdm.__module__}))
"""
)

NB_FAIL = (
    PARAMS_CELL
    + """
# %% [markdown]
# A markdown cell before the failing one.

# %%
x = 1

# %%
y = 2
z = y / (x - 1)  # ZeroDivisionError
"""
)

NB_NEVER = PARAMS_CELL + '\n# %%\nopen("never_ran.txt", "w").write("x")\n'


def _study_tree(tmp_path: Path, notebooks: dict[str, str]) -> Path:
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    for name, text in notebooks.items():
        (nb_dir / name).write_text(text)
    return nb_dir


@pytest.fixture
def test_profile():
    return dataclasses.replace(PROFILES["ci"], name="testprof", device="cpu")


@pytest.mark.slow
def test_runner_success_and_failure(tmp_path, test_profile):
    """One run that stops at the failing notebook, then an --only run that succeeds."""
    nb_dir = _study_tree(
        tmp_path, {"01_ok.py": NB_OK, "02_fail.py": NB_FAIL, "03_never.py": NB_NEVER}
    )
    logs: list[str] = []
    with pytest.raises(StudyFailure) as info:
        run_study(test_profile, notebooks_dir=nb_dir, root=tmp_path, stream=False, log=logs.append)
    err = info.value
    msg = str(err)
    # the message names the notebook, the cell and its line in the .py file
    assert "02_fail.py" in msg and "ZeroDivisionError" in msg
    fail_line = NB_FAIL.splitlines().index("y = 2") + 1
    assert err.line == fail_line and f"line {fail_line}" in msg
    assert err.cell == 3  # parameters, markdown, x = 1, then the failing cell
    executed = tmp_path / "results" / "testprof" / "executed"
    assert err.executed == executed / "02_fail.failed.ipynb" and err.executed.exists()
    assert (executed / "01_ok.ipynb").exists()
    assert not (executed / "02_fail.ipynb").exists()
    assert not (tmp_path / "never_ran.txt").exists()  # stopped at the first failure
    assert not list(executed.glob(".*partial*"))
    prov = json.loads((tmp_path / "results/testprof/study_provenance.json").read_text())
    assert prov["status"] == "failed"
    assert [n["status"] for n in prov["notebooks"]] == ["ok", "failed"]

    # parameters injected from the profile, output folders derived from it under the
    # runner's root, cwd = root, plain-text progress bars
    seen = json.loads((tmp_path / "results/testprof/seen.json").read_text())
    assert seen["profile"] == "testprof" and seen["seed"] == test_profile.seed
    assert Path(seen["results_dir"]) == tmp_path / "results/testprof"
    assert Path(seen["figures_dir"]) == tmp_path / "figures/testprof"
    assert seen["device"] == "cpu" and seen["total"] == sum(range(50))
    assert Path(seen["cwd"]).resolve() == tmp_path.resolve()
    assert seen["notebook"] == "01_ok"
    assert not seen["tqdm"].startswith("tqdm.notebook")
    text = (executed / "01_ok.ipynb").read_text()
    assert "application/vnd.jupyter.widget-view+json" not in text
    assert "loop: 100%" in text

    # --only 1: the successful notebook alone; provenance complete
    rec = run_study(
        test_profile, only=["1"], notebooks_dir=nb_dir, root=tmp_path, stream=False, log=logs.append
    )
    prov = json.loads((tmp_path / "results/testprof/study_provenance.json").read_text())
    assert prov == json.loads(json.dumps(rec, default=str))
    assert prov["status"] == "ok" and prov["only"] == ["1"]
    for key in ("git_commit", "versions", "device", "date_utc", "wall_time_s", "profile"):
        assert key in prov, key
    assert prov["profile"]["name"] == "testprof"
    assert prov["versions"]["papermill"] != "not installed"
    assert prov["notebooks"][0]["name"] == "01_ok" and prov["notebooks"][0]["wall_s"] > 0
    assert any("01_ok done" in line for line in logs)
    # the partial run keeps the entry of the notebook it did not run (the earlier failure),
    # and every entry carries the commit and date of the run that executed it
    assert [(n["name"], n["status"]) for n in prov["notebooks"]] == [
        ("01_ok", "ok"),
        ("02_fail", "failed"),
    ]
    assert all(n["git_commit"] and n["date_utc"] for n in prov["notebooks"])
    assert prov["notebooks"][0]["date_utc"] == prov["date_utc"]


def test_select_and_discover(tmp_path):
    nb_dir = _study_tree(
        tmp_path,
        {"02_b.py": PARAMS_CELL, "01_a.py": PARAMS_CELL, "10_c.py": PARAMS_CELL, "notes.py": ""},
    )
    found = discover_notebooks(nb_dir)
    assert [p.name for p in found] == ["01_a.py", "02_b.py", "10_c.py"]
    assert [p.name for p in select_notebooks(found, ["10", "1"])] == ["01_a.py", "10_c.py"]
    assert [p.name for p in select_notebooks(found, ["02_b"])] == ["02_b.py"]
    with pytest.raises(RharmInputError, match="no notebook '07'.*01_a, 02_b, 10_c"):
        select_notebooks(found, ["07"])
    with pytest.raises(RharmInputError, match="does not exist"):
        discover_notebooks(tmp_path / "missing")


def test_parameters_cell_required(tmp_path):
    bad = tmp_path / "01_bad.py"
    bad.write_text("# %%\nprofile = 'ci'\n")
    with pytest.raises(
        RharmInputError, match=r"01_bad.py: expected exactly one cell tagged 'parameters'.*found 0"
    ):
        load_notebook(bad)


def test_malformed_notebook_fails_before_any_kernel(tmp_path, test_profile):
    nb_dir = _study_tree(tmp_path, {"01_ok.py": NB_NEVER, "02_bad.py": "# %%\nx = 1\n"})
    with pytest.raises(RharmInputError, match="02_bad.py"):
        run_study(
            test_profile, notebooks_dir=nb_dir, root=tmp_path, stream=False, log=lambda m: None
        )
    assert not (tmp_path / "never_ran.txt").exists()


def test_second_study_on_the_same_results_folder_is_refused(tmp_path, test_profile):
    from rharm_lib.outputs import RunLock
    from rharm_lib.study.outputs import output_dirs

    nb_dir = _study_tree(tmp_path, {"01_ok.py": NB_NEVER})
    _, results = output_dirs(test_profile.name, tmp_path)
    with RunLock(results), pytest.raises(RharmInputError, match=f"in use.*PID {os.getpid()}"):
        run_study(
            test_profile, notebooks_dir=nb_dir, root=tmp_path, stream=False, log=lambda m: None
        )
    assert not (tmp_path / "never_ran.txt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_gpu_profile_without_gpu(capsys):
    assert resolve_device("auto") == "cpu"
    with pytest.raises(RharmInputError, match="no CUDA device.*--profile ci"):
        resolve_device(PROFILES["gpu"].device)
    assert main(["study", "--profile", "gpu", "--only", "01"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_cli_bad_input(capsys):
    assert main(["study", "--profile", "ci", "--only", "99"]) == 2
    err = capsys.readouterr().err
    assert "no notebook '99'" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as info:
        main(["study", "--profile", "nope"])
    assert info.value.code == 2


def test_profiles():
    assert set(PROFILES) == {"ci", "cpu", "gpu"}
    ci, gpu, cpu = PROFILES["ci"], PROFILES["gpu"], PROFILES["cpu"]
    assert cpu.train_config == "cpu" and cpu.benchmark == "lalonde" and len(cpu.seeds) == 3
    assert ci.device == "cpu" and ci.train_source == "builtin" and ci.train_config == "ci"
    assert ci.estimated_minutes <= 10
    assert gpu.train_config == "paper" and gpu.train_source == "lalonde"
    assert gpu.estimated_minutes <= 9 and gpu.measured is False  # an estimate, never run here
    assert "estimate" in gpu.note
    for p in PROFILES.values():
        json.dumps(p.to_dict())
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.seed = 1  # type: ignore[misc]
    with pytest.raises(RharmInputError, match="known profiles: ci, cpu, gpu"):
        get_profile("fast")


def test_repo_notebooks_follow_the_rules():
    """Each notebook: one parameters cell declaring PARAMETER_NAMES, seeding, rharm_lib imports only."""
    notebooks = discover_notebooks(REPO / "notebooks")
    assert notebooks, "no notebooks in notebooks/"
    assert [p.name[:2] for p in notebooks] == ["01", "02", "03", "04", "05", "06", "07"]
    allowed_top = {
        "rharm_lib",
        "numpy",
        "pandas",
        "matplotlib",
        "IPython",
        "torch",
        "pathlib",
        "json",
        "os",
        "dataclasses",
        "ipywidgets",
        "seaborn",
    }
    for path in notebooks:
        nb = load_notebook(path)
        params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        declared = {
            t.id
            for node in ast.parse(params.source).body
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        assert set(PARAMETER_NAMES) <= declared, (path.name, declared)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "sys.path" not in code, path.name
        assert "start_session(" in code, path.name  # seeds through rharm_lib.seed
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                for m in mods:
                    assert m.split(".")[0] in allowed_top, (path.name, m)


def test_write_table(tmp_path):
    df = pd.DataFrame({"subset": ["a", "All"], "n": [3, 5], "mse": [12.3456, float("nan")]})
    files = tables.write_table(
        df, tmp_path / "res", "t1", {"git_commit": "x"}, title="T", note="conv"
    )
    back = pd.read_csv(files.csv)
    pd.testing.assert_frame_equal(back, df)
    md = files.markdown.read_text()
    assert md.startswith("# T\n\nconv\n")
    assert "| a | 3 | 12.35 |" in md and "| All | 5 | n/a |" in md
    prov = json.loads(files.provenance.read_text())
    assert (
        prov["columns"] == ["subset", "n", "mse"]
        and prov["rows"] == 2
        and prov["git_commit"] == "x"
    )
    assert not list((tmp_path / "res").glob("*.tmp"))
    with pytest.raises(RharmInputError, match="table name"):
        tables.write_table(df, tmp_path, "../x", {})
    with pytest.raises(RharmInputError, match="empty"):
        tables.write_table(df.iloc[:0], tmp_path, "e", {})
    assert tables.to_markdown(pd.DataFrame({"v": [12345.678]}), 1) == "| v |\n|---|\n| 12,345.7 |\n"


def test_outline_and_save_figure(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 10:20] = 1
    out = plots.outline(img, mask, color=(255, 0, 0))
    red = (out == [255, 0, 0]).all(-1)
    assert red.sum() == 4 * 10 - 4  # the inner boundary of a 10x10 square
    assert red[5, 10:20].all() and not red[10, 15] and not red[0, 0]
    assert (img == 0).all()  # input untouched
    with pytest.raises(RharmInputError, match="differ in size"):
        plots.outline(img, mask[:10])
    fig = plots.image_grid(
        [[img, out], [mask * 255]], col_labels=["a", "b"], row_labels=["r1", "r2"]
    )
    paths = plots.save_figure(
        fig, tmp_path / "figs", "grid", {"notebook": "t"}, pdf=True, close=True
    )
    assert [p.name for p in paths] == ["grid.png", "grid.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = json.loads((tmp_path / "figs/provenance.json").read_text())
    assert index["grid.png"]["figure"] == "grid" and index["grid.pdf"]["notebook"] == "t"


def test_start_session(tmp_path):
    threads = torch.get_num_threads()
    ctx = start_session("ci", 3, "auto", tmp_path / "f", tmp_path / "r", notebook="xx")
    assert torch.get_num_threads() == PROFILES["ci"].torch_threads == 1
    torch.set_num_threads(threads)
    assert ctx.device in ("cpu", "cuda") and (tmp_path / "f").is_dir() and (tmp_path / "r").is_dir()
    a = torch.rand(3)
    start_session("ci", 3, "cpu", tmp_path / "f", tmp_path / "r")
    assert torch.equal(a, torch.rand(3))  # seeded
    rec = ctx.provenance(extra=1)
    assert (
        rec["profile"] == "ci"
        and rec["notebook"] == "xx"
        and rec["seed"] == 3
        and rec["extra"] == 1
    )
    assert re.match(r"\d{4}-\d\d-\d\d", rec["date_utc"])


def test_sample_statistics_against_naive(rng):
    from skimage.color import rgb2lab

    from rharm_lib.study import exploration

    comp = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    target = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    mask = (rng.random((9, 7)) > 0.6).astype(np.uint8)
    st = exploration.sample_statistics(comp, target, mask)
    # naive per-pixel loop in float64
    n, l1, de, dl = 0, 0.0, 0.0, 0.0
    lab_c, lab_t = rgb2lab(comp / 255.0), rgb2lab(target / 255.0)
    for y in range(9):
        for x in range(7):
            if mask[y, x]:
                n += 1
                l1 += np.abs(comp[y, x].astype(float) - target[y, x]).sum() / 3
                de += np.sqrt(((lab_c[y, x] - lab_t[y, x]) ** 2).sum())
                dl += lab_c[y, x, 0] - lab_t[y, x, 0]
    assert st["fg_fraction"] == pytest.approx(n / 63)
    assert st["shift_rgb"] == pytest.approx(l1 / n)
    assert st["shift_de"] == pytest.approx(de / n, rel=1e-9)
    assert st["shift_dl"] == pytest.approx(dl / n, rel=1e-9)
    empty = exploration.sample_statistics(comp, target, np.zeros((9, 7), np.uint8))
    assert empty["fg_fraction"] == 0 and np.isnan(empty["shift_de"])
    full = exploration.sample_statistics(comp, comp, np.ones((9, 7), np.uint8))
    assert full["fg_fraction"] == 1 and full["shift_de"] == 0 and full["shift_rgb"] == 0
    with pytest.raises(RharmInputError, match="mask of shape"):
        exploration.sample_statistics(comp, target, mask[:3])
    samples = [
        {"composite": comp, "target": target, "mask": mask, "name": "a", "subset": "X"},
        {"composite": comp, "target": target, "mask": mask * 0, "name": "b", "subset": "X"},
        {"composite": comp, "target": comp, "mask": mask, "name": "c", "subset": "Y"},
    ]
    df = exploration.composite_statistics(samples)
    summ = exploration.summarize_statistics(df).set_index("subset")
    assert list(summ.index) == ["X", "Y", "All"] and summ.loc["All", "n"] == 3
    assert summ.loc["X", "shift_de_mean"] == pytest.approx(st["shift_de"])  # NaN skipped
    assert summ.loc["Y", "shift_de_mean"] == 0
    d = exploration.abs_difference(comp, target, gain=2)
    assert d.dtype == np.uint8 and d.max() <= 255
    assert d[0, 0, 0] == min(255, 2 * abs(int(comp[0, 0, 0]) - int(target[0, 0, 0])))


def test_reported_block_is_labelled():
    from rharm_lib.study import reported

    df = reported.reported_table()
    assert (df["source"] == "reported, not reproduced").all()
    row = df[(df["method"] == "input composite") & (df["subset"] == "All")].iloc[0]
    assert (row["mse"], row["psnr"], row["fmse"]) == (170.25, 31.70, 1376.42)
    assert "2205.14058" in reported.CITATION


def _fake_features(seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(2, 1, 16, 16)
    mask[0, :, 4:12, 2:10] = 1  # image 0: a square; image 1: no foreground
    feats = {"mask_pad": mask}
    for i, (c, s) in enumerate(((4, 16), (6, 8))):
        for k in (f"enc{i}", f"dec{i}_pre", f"dec{i}"):
            feats[k] = torch.randn(2, c, s, s, generator=g) * (i + 1) + 0.5
    feats["att0"] = feats["dec0"]
    return feats


def test_feature_style_statistics_against_numpy():
    from rharm_lib.study import features as F

    feats = _fake_features()
    assert F.feature_levels(feats) == [0, 1]
    df = F.style_statistics(feats, names=["sq", "none"])
    assert len(df) == 4 and set(df["level"]) == {0, 1}
    # float64 NumPy re-computation for image 0, level 1 (8x8 map: mask 2x2-pooled)
    m = feats["mask_pad"][0, 0].numpy().reshape(8, 2, 8, 2).mean(axis=(1, 3))
    bg, fg = m < 0.5, m >= 0.5
    enc, pre, post = (feats[k][0].double().numpy() for k in ("enc1", "dec1_pre", "dec1"))
    mu_e = enc[:, bg].mean(1)
    mu_p = pre[:, bg].mean(1)
    sd_e, sd_p = enc[:, bg].std(1), pre[:, bg].std(1)
    row = df[(df.image == "sq") & (df.level == 1)].iloc[0]
    assert row["bg_mean_corr"] == pytest.approx(np.corrcoef(mu_e, mu_p)[0, 1], rel=1e-4)
    assert row["bg_std_ratio"] == pytest.approx((sd_p / sd_e).mean(), rel=1e-3)
    gap_pre = np.linalg.norm(pre[:, fg].mean(1) - mu_e) / np.linalg.norm(mu_e)
    gap_post = np.linalg.norm(post[:, fg].mean(1) - mu_e) / np.linalg.norm(mu_e)
    assert row["fg_gap_pre"] == pytest.approx(gap_pre, rel=1e-4)
    assert row["fg_gap_post"] == pytest.approx(gap_post, rel=1e-4)
    # no foreground: the gaps are NaN, background statistics still finite
    none = df[(df.image == "none") & (df.level == 1)].iloc[0]
    assert np.isnan(none["fg_gap_pre"]) and np.isfinite(none["bg_mean_corr"])
    e = F.background_energy(feats, "enc0")
    assert e.shape == (2, 16, 16)
    assert np.isnan(e[0][feats["mask_pad"][0, 0].numpy() > 0]).all()
    assert np.nanmin(e[0]) == 0 and np.nanmax(e[0]) == 1 and not np.isnan(e[1]).any()
    with pytest.raises(RharmInputError, match="no feature map"):
        F.background_energy(feats, "enc9")


def test_feature_statistics_on_the_model():
    from rharm_lib.model import CONFIGS, build_model
    from rharm_lib.study import features as F

    torch.manual_seed(0)
    net = build_model(CONFIGS["ci"]).eval()
    comp = torch.rand(1, 3, 40, 48)
    mask = torch.zeros(1, 1, 40, 48)
    mask[..., 10:30, 12:30] = 1
    with torch.no_grad():
        _, feats = net(comp, mask, return_features=True)
    samples = [
        {
            "composite": (comp[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8),
            "mask": mask[0, 0].numpy().astype(np.uint8),
        }
    ]
    _, feats2 = F.model_features(net, samples)
    assert F.feature_levels(feats2) == F.feature_levels(feats)
    assert feats2["enc0"].shape == feats["enc0"].shape
    with pytest.raises(RharmInputError, match="one size"):
        F.model_features(
            net,
            samples
            + [{"composite": np.zeros((8, 8, 3), np.uint8), "mask": np.zeros((8, 8), np.uint8)}],
        )
    df = F.style_statistics(feats)
    assert len(df) == len(F.feature_levels(feats)) >= 2
    assert np.isfinite(
        df[["bg_mean_corr", "bg_std_ratio", "fg_gap_pre", "fg_gap_post"]].to_numpy()
    ).all()


def test_spread_indices_and_combine():
    from rharm_lib.study import exploration

    subsets = ["A", "A", "A", "B", "C", "C"]
    assert exploration.spread_indices(subsets, 4) == [0, 3, 4, 1]
    assert exploration.spread_indices(subsets, 99) == [0, 3, 4, 1, 5, 2]
    assert exploration.spread_indices([], 3) == []
    # 4 families x 5 photos, photo order the same in every family: 4 different photos
    fam = [f for f in "WXYZ" for _ in range(5)]
    picks = exploration.spread_indices(fam, 4)
    assert [fam[i] for i in picks] == list("WXYZ") and [i % 5 for i in picks] == [0, 1, 2, 3]
    s1 = pd.DataFrame({"subset": ["X", "All"], "n": [2, 2], "mse": [1.0, 1.0]})
    s2 = pd.DataFrame({"subset": ["X", "All"], "n": [2, 2], "mse": [3.0, 3.0]})
    t = tables.combine_summaries({"a": s1, "b": s2}, {"b": {"params_M": 1.5}})
    assert list(t.columns) == ["method", "subset", "n", "mse", "params_M"]
    assert list(t["method"]) == ["a", "a", "b", "b"] and t["params_M"].isna().tolist() == [
        True,
        True,
        False,
        False,
    ]
    with pytest.raises(RharmInputError):
        tables.combine_summaries({})


def test_study_run_dir_depends_on_config():
    from rharm_lib.study import sources

    ci = PROFILES["ci"]
    a = sources.study_run_dir(ci)
    assert a == sources.study_run_dir(ci) and a.name.startswith("study-ci-")
    b = sources.study_run_dir(dataclasses.replace(ci, train_steps=ci.train_steps + 1))
    assert a != b
    cfg = sources.study_train_config(ci)
    assert cfg.steps == ci.train_steps and cfg.seed == ci.seed and cfg.name == ci.train_config


def test_fresh_runs_train_in_an_empty_folder_that_is_removed(monkeypatch, tmp_path):
    """``rharm study --fresh-runs``: during the study, runs_root() (and every run directory)
    is an empty temporary folder, not the repository's runs/; afterwards it is gone and the
    environment is as before (so a stale run cannot make ``--check`` pass)."""
    import rharm_lib.cli.study as cli_study
    from rharm_lib.study import outputs, sources

    monkeypatch.delenv(outputs.RUNS_ENV, raising=False)
    repo_runs = outputs.runs_root()
    seen = {}

    def fake_run_study(profile, only=None, stream=True, log=None):
        root = outputs.runs_root()
        seen["root"] = root
        seen["empty"] = root.is_dir() and not any(root.iterdir())
        seen["run_dir"] = sources.study_run_dir(profile)
        (root / "marker").write_text("x")

    monkeypatch.setattr(cli_study, "run_study", fake_run_study)
    assert main(["study", "--profile", "ci", "--fresh-runs", "--quiet"]) == 0
    assert seen["empty"] and seen["root"] != repo_runs
    assert seen["run_dir"].parent == seen["root"]
    assert not seen["root"].exists()
    assert outputs.RUNS_ENV not in os.environ and outputs.runs_root() == repo_runs
    # an explicit RHARM_RUNS_DIR moves only the runs, and is restored after --fresh-runs
    monkeypatch.setenv(outputs.RUNS_ENV, str(tmp_path))
    assert outputs.runs_root() == tmp_path
    assert main(["study", "--profile", "ci", "--fresh-runs", "--quiet"]) == 0
    assert seen["root"] != tmp_path and os.environ[outputs.RUNS_ENV] == str(tmp_path)
    # --train-seed with --fresh-runs would train into a folder that is then removed
    assert main(["study", "--profile", "ci", "--fresh-runs", "--train-seed", "0"]) == 2


def test_real_composites_grouping(tmp_path, rng):
    from PIL import Image

    from rharm_lib.study import sources

    root = tmp_path / "real"
    (root / "composite_images").mkdir(parents=True)
    (root / "masks").mkdir()
    names = ["b_2", "a_1", "b_1", "a_3", "a_2"]
    for n in names:
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(
            root / "composite_images" / f"{n}.jpg"
        )
        Image.fromarray((rng.random((12, 10)) > 0.5).astype(np.uint8) * 255).save(
            root / "masks" / f"{n}.png"
        )
    (root / "list.txt").write_text("\n".join(n + ".jpg" for n in names) + "\n")
    groups, note = sources.real_composites(2, root)
    assert {k: [s["name"] for s in v] for k, v in groups.items()} == {
        "a": ["a_1", "a_2"],
        "b": ["b_1", "b_2"],
    }
    assert all(s["target"] is None for v in groups.values() for s in v)
    assert "a (3)" in note and "b (2)" in note
    groups, note = sources.real_composites(2, tmp_path / "missing")
    assert groups == {} and "not found" in note


def test_fast_vs_native_bar():
    from rharm_lib.study.methods import fast_vs_native

    long = pd.DataFrame(
        {
            "method": ["ours (native)", "ours (fast@256)", "ours (fast@512)"] * 2,
            "size": [512] * 3 + [2048] * 3,
            "n": [4] * 6,
            "psnr": [30.0, 29.8, 30.0, 28.0, 27.6, 29.0],
            "fmse": [100.0, 104.0, 100.0, 200.0, 190.0, 211.0],
        }
    )
    bar = fast_vs_native(long).set_index(["method", "size"])
    assert bar.loc[("ours (fast@256)", 512), "psnr_diff_db"] == pytest.approx(-0.2)
    assert bool(bar.loc[("ours (fast@256)", 512), "meets_bar"])  # -0.2 dB, 1.04x
    r = bar.loc[("ours (fast@256)", 2048)]  # -0.4 dB misses, fMSE 0.95x meets
    assert not r["meets_psnr"] and r["meets_fmse"] and not r["meets_bar"]
    r = bar.loc[("ours (fast@512)", 2048)]  # +1 dB meets, fMSE 1.055x misses
    assert r["meets_psnr"] and not r["meets_fmse"] and r["fmse_ratio"] == pytest.approx(1.055)
    with pytest.raises(RharmInputError, match="no 'ours' row"):
        fast_vs_native(long, native="ours")


def test_highres_composites(rng):
    from rharm_lib.data.synth import FAMILIES
    from rharm_lib.study import sources

    photos = []
    dup = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    for i, (h, w) in enumerate(((60, 90), (60, 90), (80, 80), (90, 45))):
        img = dup if i < 2 else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # 0, 1: same photo
        small_mask = np.zeros((20, 30), np.uint8)
        small_mask[5:15, 8:20] = 1
        photos.append((f"p{i}", img, small_mask))
    a = sources.highres_composites(photos, 64, seed=3)
    b = sources.highres_composites(photos, 64, seed=3)
    c = sources.highres_composites(photos, 32, seed=3)
    assert [s["subset"] for s in a] == list(FAMILIES[:4])
    assert sources._reference_index([p for p in photos], 0) == 2  # not the identical photo 1
    for sa, sb, sc, (_, img, _) in zip(a, b, c, photos, strict=True):
        assert max(sa["composite"].shape[:2]) == 64 and max(sc["composite"].shape[:2]) == 32
        assert (
            sa["composite"].shape == sa["target"].shape
            and sa["mask"].shape == sa["composite"].shape[:2]
        )
        np.testing.assert_array_equal(sa["composite"], sb["composite"])  # deterministic
        bg = sa["mask"] == 0
        np.testing.assert_array_equal(sa["composite"][bg], sa["target"][bg])  # background untouched
        assert set(np.unique(sa["mask"])) <= {0, 1} and sa["mask"].any()
        assert (sa["composite"] != sa["target"]).any()  # the foreground changed
    im, m = sources.resize_long_side(
        np.zeros((100, 50, 3), np.uint8), np.ones((100, 50), np.uint8), 40
    )
    assert im.shape == (40, 20, 3) and m.shape == (40, 20) and m.all()


def test_markdown_digits_per_column():
    df = pd.DataFrame({"subset": ["All"], "psnr": [31.23456], "ssim": [0.912345], "x": [1.23456]})
    md = tables.to_markdown(df)
    assert "| All | 31.23 | 0.9123 | 1.23 |" in md
    assert "| All | 31.2 | 0.91 | 1.235 |" in tables.to_markdown(df, {"psnr": 1, "ssim": 2, "x": 3})


def test_interrupt_and_kernel_death_leave_no_partial_copy(tmp_path, monkeypatch):
    import papermill

    from rharm_lib.study.runner import run_notebook

    src = tmp_path / "01_x.py"
    src.write_text(PARAMS_CELL)
    executed = tmp_path / "executed"

    def fake(error):
        def run(nb, out, **kw):
            Path(out).write_text("{}")  # papermill writes as it goes
            raise error

        return run

    monkeypatch.setattr(papermill, "execute_notebook", fake(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run_notebook(src, executed, {}, tmp_path, stream=False)
    assert list(executed.iterdir()) == []
    monkeypatch.setattr(papermill, "execute_notebook", fake(RuntimeError("Kernel died")))
    with pytest.raises(StudyFailure, match="01_x.py failed: RuntimeError: Kernel died") as info:
        run_notebook(src, executed, {}, tmp_path, stream=False)
    assert [p.name for p in executed.iterdir()] == ["01_x.failed.ipynb"]
    assert info.value.executed == executed / "01_x.failed.ipynb" and info.value.cell is None
