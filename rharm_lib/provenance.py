"""Provenance records (commit, versions, device, date) attached to every checkpoint and table."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "git_commit",
    "package_versions",
    "device_name",
    "provenance",
    "portable_paths",
    "write_json_atomic",
]

_PACKAGES = ("rharm", "torch", "numpy", "scikit-image", "pillow", "pandas", "papermill")


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """The current git commit (``+dirty`` when the tree has changes), or ``"unknown"``."""
    cwd = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers, plus Python's."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_name(device: str | torch.device | None = None) -> str:
    """A human-readable device: the CUDA card's name or the CPU's architecture and core count."""
    dev = torch.device(device) if device is not None else None
    if (dev is None or dev.type == "cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(
            dev.index if dev is not None and dev.index is not None else 0
        )
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def provenance(device: str | torch.device | None = None, **extra: Any) -> dict[str, Any]:
    """A provenance record: commit, versions, device, UTC date, plus ``extra`` fields."""
    rec: dict[str, Any] = {
        "git_commit": git_commit(),
        "versions": package_versions(),
        "device": device_name(device),
        "date_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
    }
    rec.update(extra)
    return rec


def portable_paths(obj: Any) -> Any:
    """``obj`` with this machine's absolute paths rewritten for committed records.

    Paths inside the repository become repository-relative (``runs/x``), the data folder
    beside it ``../shared/...``, paths in the home folder ``~/...``; any other path is kept.
    For records that are committed or shown (tables, figures, study provenance), never for
    files the program reads back as paths (a run's ``config.json``).
    """
    repo = Path(__file__).resolve().parent.parent
    prefixes = [
        (str(repo) + os.sep, ""),
        (str(repo.parent / "shared") + os.sep, ".." + os.sep + "shared" + os.sep),
        (str(Path.home()) + os.sep, "~" + os.sep),
    ]
    if isinstance(obj, dict):
        return {k: portable_paths(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [portable_paths(v) for v in obj]
    if isinstance(obj, os.PathLike):
        obj = os.fspath(obj)
    if isinstance(obj, str):
        for prefix, repl in prefixes:
            obj = obj.replace(prefix, repl)
        return obj
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any, portable: bool = False) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename.

    With ``portable``, absolute paths are rewritten by :func:`portable_paths` (for
    committed records only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if portable:
        obj = portable_paths(obj)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
