"""The notebook session: what a study notebook sets up in its first code cell.

``ctx = start_session(profile, seed, device, notebook=...)`` seeds everything
(:func:`rharm_lib.seed.seed_everything`), resolves ``device="auto"``, creates the output
folders and returns a frozen :class:`StudyContext` that the table and figure writers take
for their provenance.

Output folders come from the profile, never from the notebook: ``<root>/figures/<profile>``
and ``<root>/results/<profile>`` (:func:`output_dirs`), where ``<root>`` is the folder
``rharm study`` runs in (``$RHARM_STUDY_ROOT``, set by the runner) or else the repository
root -- not the kernel's working directory, so a notebook run interactively from
``notebooks/`` writes to the same place as ``rharm study``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..provenance import provenance
from ..seed import seed_everything
from .outputs import output_dirs, study_root
from .profiles import StudyProfile, get_profile
from .runner import resolve_device

__all__ = ["StudyContext", "start_session", "in_study_run", "output_dirs", "study_root"]


@dataclass(frozen=True)
class StudyContext:
    """The profile, device, seed and output folders of one notebook run.

    Attributes:
        profile: the :class:`~rharm_lib.study.profiles.StudyProfile`.
        device: the resolved torch device string (``cpu`` or ``cuda``).
        seed: the seed passed to :func:`~rharm_lib.seed.seed_everything`.
        figures_dir: ``figures/<profile>/`` (created).
        results_dir: ``results/<profile>/`` (created).
        notebook: the notebook's stem (``02_training``), for provenance.
    """

    profile: StudyProfile
    device: str
    seed: int
    figures_dir: Path
    results_dir: Path
    notebook: str

    def provenance(self, **extra: Any) -> dict[str, Any]:
        """A provenance record naming the profile, notebook, seed and device, plus ``extra``."""
        return provenance(
            self.device,
            profile=self.profile.name,
            profile_note=self.profile.note,
            notebook=self.notebook,
            seed=self.seed,
            **extra,
        )


def in_study_run() -> bool:
    """True inside a kernel started by ``rharm study`` (interactive widgets are skipped)."""
    return os.environ.get("RHARM_STUDY") == "1"


def start_session(
    profile: str,
    seed: int,
    device: str = "auto",
    figures_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike | None = None,
    notebook: str | None = None,
) -> StudyContext:
    """Seed, set torch's thread count, resolve the device and create the output folders.

    Args:
        profile: a profile name (:data:`~rharm_lib.study.profiles.PROFILES`).
        seed: the seed.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        figures_dir: default ``figures/<profile>`` under :func:`study_root` (a relative
            path is taken relative to :func:`study_root`, not to the working directory).
        results_dir: default ``results/<profile>``, likewise.
        notebook: the notebook's stem; default ``$RHARM_STUDY_NOTEBOOK`` or ``"interactive"``.
    """
    prof: StudyProfile = get_profile(profile)
    if prof.torch_threads:
        import torch

        torch.set_num_threads(prof.torch_threads)
    seed_everything(int(seed))
    fig, res = output_dirs(prof.name)
    fig = study_root() / figures_dir if figures_dir is not None else fig
    res = study_root() / results_dir if results_dir is not None else res
    fig.mkdir(parents=True, exist_ok=True)
    res.mkdir(parents=True, exist_ok=True)
    name = notebook or os.environ.get("RHARM_STUDY_NOTEBOOK", "interactive")
    return StudyContext(prof, resolve_device(device), int(seed), fig, res, name)
