"""Every profile's notebooks, reduced, end to end on the CPU (rharm_lib.study.profiles.reduced).

One test per profile runs ``rharm study --profile P --reduced`` (all seven notebooks, the
``gpu`` profile's paper-sized network included) into a temporary root and checks that every
notebook ran, that the tables and figures each notebook promises exist there, and that
nothing was written into the repository's ``results/<P>``, ``figures/<P>``, ``runs/`` or
the shipped weights. The ``cpu`` and ``gpu`` runs read the lalonde photos, the
high-resolution photos and the real composites, and are skipped without them
(``data_root()``, as ``tests/conftest.py``'s ``SHARED_DATA``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import resource
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from rharm_lib.cli import main
from rharm_lib.errors import RharmInputError
from rharm_lib.paths import REPO_ROOT, data_root
from rharm_lib.study import sources
from rharm_lib.study.outputs import REDUCED_ENV, REDUCED_ROOT, ROOT_ENV, runs_root, study_root
from rharm_lib.study.profiles import PROFILES, get_profile, reduced
from rharm_lib.study.userstudy import REDUCED_USER_STUDY_SIZES, USER_STUDY_SIZES, get_sizes
from rharm_lib.weights import shipped_weights_path

#: tables (``.csv``, ``.md``, ``.provenance.json``) each notebook writes into results/<P>
TABLES = {
    "01_data_exploration": [
        "benchmark_statistics",
        "table2_3_input_composite",
        "benchmark_calibration",
        "hcl_loss_diagnosis",
    ],
    "02_training": ["table2_3_benchmark", "table2_3_paired_tests", "table2_3_reported_iharmony4"],
    "03_ablations": [
        "table6_ablation",
        "table6_paired_tests",
        "fig8_9_fusion",
        "table7_patches",
        "ablation_verdicts",
    ],
    "04_highres_evaluation": ["table4_highres"],
    "05_feature_maps": ["fig10_feature_stats"],
    "06_real_composites": [],
    "07_user_study": [
        "table5_user_study",
        "table5_heterogeneity",
        "table5_power",
        "table5_simulated_votes",
    ],
}

#: figures (``.png``) each notebook writes into figures/<P>
FIGURES = {
    "01_data_exploration": [
        *(f"benchmark_samples_{s}" for s in ("histogram", "relight", "retouch", "transfer")),
        "benchmark_distributions",
        "hcl_patch_inspector_untrained",
        "benchmark_calibration",
        "hcl_loss_diagnosis",
    ],
    "02_training": ["training_curves", "fig4_qualitative", "hcl_patch_inspector_trained"],
    "03_ablations": ["fig7_ablation_grid", "fig8_9_fusion_curves"],
    "04_highres_evaluation": ["table4_highres_psnr", "table4_highres_example"],
    "05_feature_maps": ["fig10_feature_maps"],
    "06_real_composites": [],  # fig5_6_real_<source>: checked below
    "07_user_study": [
        "table5_shares",
        "table5_heterogeneity",
        "table5_power",
        "fig3_layout",
        "table5_simulated_ranking",
    ],
}

HAVE_DATA = all(
    (data_root() / p).exists()
    for p in ("lalonde/train.txt", "lalonde/test.txt", "highres", "real_composites/list.txt")
)
needs_data = pytest.mark.skipif(
    not HAVE_DATA, reason=f"shared data (lalonde, highres, real_composites) absent at {data_root()}"
)


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _repo_state(profile: str) -> dict:
    """What a reduced run must not touch in the repository: every file (mtime, size) of
    results/<P> and figures/<P>, the run folders of the profile (and of reduced runs,
    shipped weights, votes) under runs/, and the shipped weights' content."""
    files = {}
    for top in ("results", "figures"):
        base = REPO_ROOT / top / profile
        if base.is_dir():
            for p in base.rglob("*"):
                if p.is_file():
                    st = p.stat()
                    files[str(p.relative_to(REPO_ROOT))] = (st.st_mtime_ns, st.st_size)
    runs = REPO_ROOT / "runs"
    prefixes = (f"study-{profile}-", f"ablate-{profile}-", "reduced", "shipped", "user_study")
    run_dirs = {}
    if runs.is_dir():
        for p in runs.iterdir():
            if p.name.startswith(prefixes):
                run_dirs[p.name] = p.stat().st_mtime_ns
    return {"files": files, "runs": run_dirs, "weights": _sha256(shipped_weights_path())}


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the kernels)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _run_reduced(profile: str, tmp_path: Path, monkeypatch, capsys) -> tuple[Path, float]:
    """``rharm study --profile P --reduced --quiet`` with ``$RHARM_STUDY_ROOT`` = a temporary
    root; returns (root, wall seconds) after checking the repository was not touched."""
    root = tmp_path / "root"
    monkeypatch.setenv(ROOT_ENV, str(root))
    monkeypatch.delenv(REDUCED_ENV, raising=False)
    before = _repo_state(profile)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    rc = main(["study", "--profile", profile, "--reduced", "--quiet"])
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    err = capsys.readouterr().err
    print(f"reduced {profile} study: {wall:.1f} s wall, {cpu:.1f} s CPU")  # shown with -rP
    assert rc == 0, err[-3000:]
    assert REDUCED_ENV not in os.environ  # --reduced is scoped to the command
    assert _repo_state(profile) == before, "a reduced run wrote into the repository"
    return root, wall


def _check_outputs(root: Path, profile: str) -> dict:
    results, figures = root / "results" / profile, root / "figures" / profile
    prov = json.loads((results / "study_provenance.json").read_text())
    assert prov["status"] == "ok"
    assert [n["name"] for n in prov["notebooks"]] == list(TABLES)
    assert all(n["status"] == "ok" for n in prov["notebooks"])
    assert prov["profile"]["reduced"] is True and prov["profile"]["device"] == "cpu"
    for nb in TABLES:
        assert (results / "executed" / f"{nb}.ipynb").is_file(), nb
        for t in TABLES[nb]:
            for ext in (".csv", ".md", ".provenance.json"):
                assert (results / f"{t}{ext}").is_file(), (nb, t + ext)
        for f in FIGURES[nb]:
            assert (figures / f"{f}.png").is_file(), (nb, f)
    assert list(figures.glob("fig5_6_real_*.png")), "notebook 06 wrote no figure"
    # every table says it is a reduced run
    md = (results / "table2_3_benchmark.md").read_text()
    assert f"REDUCED run of the {profile} profile" in md
    # the training and ablation runs went under the temporary root
    runs = sorted(p.name for p in (root / "runs").iterdir())
    assert any(n.startswith(f"study-{profile}-") for n in runs), runs
    assert sum(n.startswith(f"ablate-{profile}-") for n in runs) == 15, runs
    return prov


def _free(root: Path) -> None:
    """Remove the runs' checkpoints (16 of the paper network with its optimiser state are
    ~5.7 GB; pytest keeps its last three temporary folders)."""
    for ckpt in (root / "runs").glob("*/checkpoints"):
        shutil.rmtree(ckpt, ignore_errors=True)


@pytest.mark.slow
def test_reduced_study_ci(tmp_path, monkeypatch, capsys):
    root, _ = _run_reduced("ci", tmp_path, monkeypatch, capsys)
    prov = _check_outputs(root, "ci")
    assert prov["profile"]["train_config"] == "ci" and prov["profile"]["benchmark"] == "builtin"
    _free(root)


@needs_data
@pytest.mark.slow
def test_reduced_study_cpu(tmp_path, monkeypatch, capsys):
    """The cpu profile: two seeds pooled, the lalonde subset, and shipped weights that go
    under the run's root, never over the package's file."""
    root, _ = _run_reduced("cpu", tmp_path, monkeypatch, capsys)
    prov = _check_outputs(root, "cpu")
    assert prov["profile"]["train_config"] == "cpu" and prov["profile"]["seeds"] == [0, 1]
    assert prov["profile"]["benchmark"] == "lalonde-subset"
    shipped = root / "runs" / "shipped" / shipped_weights_path().name
    assert shipped.is_file()
    from rharm_lib.inference import Harmonizer

    h = Harmonizer.from_checkpoint(shipped, "cpu")  # a working weights file
    assert sum(p.numel() for p in h.net.parameters()) > 1e6
    meta = torch.load(shipped, map_location="cpu", weights_only=False)
    assert meta["step"] == 2 and "lalonde-subset" in meta["shipped"]["benchmark"]
    table = pd.read_csv(root / "results" / "cpu" / "table2_3_benchmark.csv")
    assert {"ours (cpu config) seed 0", "ours (cpu config) seed 1"} <= set(table["method"])
    _free(root)


@needs_data
@pytest.mark.slow
def test_reduced_study_gpu(tmp_path, monkeypatch, capsys):
    """The gpu profile's code on the CPU: the paper network (29.6 M parameters) trained,
    evaluated, ablated and inspected at a tiny size."""
    root, _ = _run_reduced("gpu", tmp_path, monkeypatch, capsys)
    prov = _check_outputs(root, "gpu")
    assert prov["profile"]["train_config"] == "paper"
    assert prov["profile"]["ablation"]["train_config"] == "paper"
    table = pd.read_csv(root / "results" / "gpu" / "table2_3_benchmark.csv")
    ours = table[table["method"].str.startswith("ours (paper config)")]
    assert len(ours) and (ours["params_M"] > 29).all(), table[["method", "params_M"]]
    _free(root)


def test_reduced_profiles():
    for name, full in PROFILES.items():
        r = reduced(full)
        assert r.reduced and not full.reduced and r.name == name and r.device == "cpu"
        assert r.train_config == full.train_config and r.ship_weights == full.ship_weights
        assert r.ablation.train_config == full.ablation.train_config
        assert r.train_steps < full.train_steps and r.compile is False
        assert r.train_source == sources.REDUCED_SOURCES[full.train_source]
        assert reduced(r) == r  # idempotent
        assert get_profile(name, reduced=True) == r and get_profile(name, reduced=False) == full
        json.dumps(r.to_dict())
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.seed = 1  # type: ignore[misc]
    assert reduced(PROFILES["gpu"]).train_source == "lalonde-subset"
    assert reduced(PROFILES["ci"]).benchmark == "builtin"


def test_reduced_selected_by_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(ROOT_ENV, raising=False)
    monkeypatch.delenv(REDUCED_ENV, raising=False)
    assert not get_profile("gpu").reduced and study_root() == REPO_ROOT
    assert get_sizes("ci") == USER_STUDY_SIZES["ci"]
    monkeypatch.setenv(REDUCED_ENV, "0")
    assert not get_profile("gpu").reduced
    monkeypatch.setenv(REDUCED_ENV, "1")
    assert get_profile("gpu") == reduced(PROFILES["gpu"])
    assert get_sizes("ci") == REDUCED_USER_STUDY_SIZES
    # a reduced run never defaults to the repository's results/ or figures/
    assert study_root() == REDUCED_ROOT and runs_root() == REDUCED_ROOT / "runs"
    assert study_root(reduced=False) == REPO_ROOT
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    assert study_root() == tmp_path and runs_root(False) == tmp_path / "runs"
    # run folders follow the profile's root; a reduced run's weights are never the package's
    r = get_profile("cpu")
    assert sources.study_run_dir(r).parent == tmp_path / "runs"
    target = sources.shipped_weights_target(r)
    assert target == tmp_path / "runs" / "shipped" / shipped_weights_path().name
    assert sources.shipped_weights_target(PROFILES["cpu"]) == shipped_weights_path()


def test_check_refused_for_a_reduced_run(capsys):
    assert main(["study", "--profile", "ci", "--reduced", "--check"]) == 2
    assert "reduced run has none" in capsys.readouterr().err


def test_lalonde_subset(tmp_path):
    src = tmp_path / "lal"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    ids = {"train": [f"tr{i}" for i in range(5)], "test": [f"te{i}" for i in range(3)]}
    rows = ["id,object_name,mask_area,split"]
    for split, names in ids.items():
        (src / f"{split}.txt").write_text("\n".join(names) + "\n")
        for n in names:
            (src / "images" / f"{n}.jpg").write_bytes(n.encode())
            (src / "masks" / f"{n}.png").write_bytes(n.encode() * 2)
            rows.append(f"{n},car,0.1,{split}")
    (src / "index.csv").write_text("\n".join(rows) + "\n")
    out = sources.lalonde_subset(src, 2, 1, tmp_path / "sub")
    assert (out / "train.txt").read_text().split() == ["tr0", "tr1"]
    assert (out / "test.txt").read_text().split() == ["te0"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["te0.jpg", "tr0.jpg", "tr1.jpg"]
    assert (out / "masks" / "tr1.png").read_bytes() == b"tr1tr1"
    assert (out / "index.csv").read_text().splitlines() == [rows[0], rows[1], rows[2], rows[6]]
    (out / "train.txt").write_text("changed")
    assert sources.lalonde_subset(src, 2, 1, tmp_path / "sub") == out  # written once
    assert (out / "train.txt").read_text() == "changed"
    assert not list(tmp_path.glob(".sub.tmp-*"))
    with pytest.raises(RharmInputError, match=">= 1 photo"):
        sources.lalonde_subset(src, 0, 1, tmp_path / "sub2")
    with pytest.raises(RharmInputError, match="unknown benchmark"):
        sources.benchmark_dataset("lalonde-tiny")
