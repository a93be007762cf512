"""Where the study writes: ``<root>/figures/<profile>`` and ``<root>/results/<profile>``.

``<root>`` is the folder ``rharm study`` runs the notebooks in (the runner passes it to its
kernels as ``$RHARM_STUDY_ROOT``), else the repository root. It is never the kernel's
working directory: a notebook opened in JupyterLab from ``notebooks/`` writes to
``<repo>/figures/<profile>`` like ``rharm study`` does, and changing only ``profile`` in a
notebook's parameters cell changes the folders.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import REPO_ROOT

__all__ = ["ROOT_ENV", "study_root", "output_dirs"]

#: environment variable through which ``rharm study`` tells its kernels where outputs go
ROOT_ENV = "RHARM_STUDY_ROOT"


def study_root() -> Path:
    """Where ``figures/`` and ``results/`` live: ``$RHARM_STUDY_ROOT`` or the repository root."""
    env = os.environ.get(ROOT_ENV)
    return Path(env) if env else REPO_ROOT


def output_dirs(profile: str, root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(figures_dir, results_dir)`` of ``profile``: ``<root>/figures/<profile>`` and
    ``<root>/results/<profile>`` (``root`` default :func:`study_root`)."""
    base = Path(root) if root is not None else study_root()
    return base / "figures" / profile, base / "results" / profile
