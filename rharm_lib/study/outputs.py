"""Where the study writes: ``<root>/figures/<profile>``, ``<root>/results/<profile>`` and
its training runs under ``<root>/runs``.

``<root>`` (:func:`study_root`) is, in order: ``$RHARM_STUDY_ROOT`` (the runner passes
its root to its kernels through it; set it yourself to send a whole study elsewhere), else
``<repo>/runs/reduced`` for a *reduced* run (``$RHARM_STUDY_REDUCED``, see
:func:`rharm_lib.study.profiles.reduced`: a reduced run never writes into the committed
``results/`` and ``figures/``), else the repository root. It is never the kernel's working
directory: a notebook opened in JupyterLab from ``notebooks/`` writes to
``<repo>/figures/<profile>`` like ``rharm study`` does, and changing only ``profile`` in a
notebook's parameters cell changes the folders.

The training runs of notebooks 02 and 03 (``study-<profile>-<hash>``,
``ablate-<profile>-<hash>``) live in :func:`runs_root` = ``<root>/runs``: with the default
root that is the repository's git-ignored ``runs/``, where finished runs are reused.
``$RHARM_RUNS_DIR`` moves only the runs (``rharm study --check --fresh-runs`` points it at
an empty temporary folder so that every run is trained anew by the current code, exactly as
on a clean clone, while the regenerated tables still land in ``results/<profile>``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import REPO_ROOT

__all__ = [
    "ROOT_ENV",
    "RUNS_ENV",
    "REDUCED_ENV",
    "REDUCED_ROOT",
    "reduced_requested",
    "study_root",
    "runs_root",
    "output_dirs",
]

#: environment variable through which ``rharm study`` tells its kernels where outputs go
ROOT_ENV = "RHARM_STUDY_ROOT"

#: environment variable moving only the training runs (default ``<study_root()>/runs``)
RUNS_ENV = "RHARM_RUNS_DIR"

#: environment variable selecting the reduced variant of every profile (``1``; unset, empty
#: or ``0`` = the full profile); the runner sets it for the kernels of a reduced study
REDUCED_ENV = "RHARM_STUDY_REDUCED"

#: default root of a reduced run when ``$RHARM_STUDY_ROOT`` is not set (git-ignored)
REDUCED_ROOT = REPO_ROOT / "runs" / "reduced"


def reduced_requested() -> bool:
    """True when ``$RHARM_STUDY_REDUCED`` asks for the reduced profiles (any value but
    empty or ``0``)."""
    return os.environ.get(REDUCED_ENV, "").strip() not in ("", "0")


def study_root(reduced: bool | None = None) -> Path:
    """Where ``figures/``, ``results/`` and ``runs/`` live: ``$RHARM_STUDY_ROOT``, else
    :data:`REDUCED_ROOT` for a reduced run (``reduced``, default
    :func:`reduced_requested`), else the repository root."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env)
    if reduced_requested() if reduced is None else reduced:
        return REDUCED_ROOT
    return REPO_ROOT


def runs_root(reduced: bool | None = None) -> Path:
    """The folder of the study's training runs: ``$RHARM_RUNS_DIR`` when set, else
    ``<study_root(reduced)>/runs``."""
    env = os.environ.get(RUNS_ENV)
    if env:
        return Path(env)
    return study_root(reduced) / "runs"


def output_dirs(profile: str, root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(figures_dir, results_dir)`` of ``profile``: ``<root>/figures/<profile>`` and
    ``<root>/results/<profile>`` (``root`` default :func:`study_root`)."""
    base = Path(root) if root is not None else study_root()
    return base / "figures" / profile, base / "results" / profile
