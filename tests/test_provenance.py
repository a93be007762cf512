"""Provenance records: fields present, machine paths made portable, atomic JSON writes."""

import json
from pathlib import Path

from rharm_lib.paths import REPO_ROOT
from rharm_lib.provenance import portable_paths, provenance, write_json_atomic


def test_provenance_has_commit_versions_device_date():
    rec = provenance(device="cpu", seed=3)
    assert {"git_commit", "versions", "device", "date_utc", "seed"} <= set(rec)
    assert rec["versions"]["torch"] != "not installed"
    assert rec["device"].startswith("cpu")


def test_portable_paths_rewrites_repo_sibling_and_home():
    rec = {
        "run": str(REPO_ROOT / "runs" / "x"),
        "data": [str(REPO_ROOT.parent / "shared" / "data")],
        "note": f"composites from {REPO_ROOT.parent / 'shared'}/real",
        "cache": str(Path.home() / ".cache" / "rharm"),
        "other": str(REPO_ROOT.parent / "elsewhere" / "run"),
        "n": 3,
    }
    out = portable_paths(rec)
    assert out["run"] == "runs/x"
    assert out["data"] == ["../shared/data"]
    assert out["note"] == "composites from ../shared/real"
    assert out["cache"] in ("~/.cache/rharm", str(Path.home() / ".cache" / "rharm"))
    assert out["other"] == rec["other"]  # only repo, ../shared and home are rewritten
    assert out["n"] == 3


def test_write_json_atomic_leaves_no_temp_and_keeps_paths_unless_portable(tmp_path):
    target = tmp_path / "sub" / "p.json"
    run = REPO_ROOT / "runs" / "y"
    write_json_atomic(target, {"run": run})  # read back as a path by its writer: kept
    assert json.loads(target.read_text()) == {"run": str(run)}
    write_json_atomic(target, {"run": run}, portable=True)  # a committed record
    assert json.loads(target.read_text()) == {"run": "runs/y"}
    assert [p.name for p in target.parent.iterdir()] == ["p.json"]
