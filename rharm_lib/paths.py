"""Where data lives: ``--data`` options, the ``RHARM_DATA`` variable and a default.

Resolution order for the data root (the folder holding ``lalonde/``, ``real_composites/``
and ``highres/``): an explicit argument, then ``$RHARM_DATA``, then ``../shared/data``
next to the repository (the development layout), then ``~/.cache/rharm/data`` (where
``rharm data fetch`` writes).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "data_root", "cache_root"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    """``$RHARM_CACHE`` or ``~/.cache/rharm``: where fetched data and packs go."""
    return Path(os.environ.get("RHARM_CACHE", Path.home() / ".cache" / "rharm"))


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data root, by the resolution order in the module docstring.

    Returns the first candidate that exists; when none exists, the cache location
    (so that error messages name where data was expected).
    """
    if explicit:
        return Path(explicit)
    env = os.environ.get("RHARM_DATA")
    if env:
        return Path(env)
    shared = REPO_ROOT.parent / "shared" / "data"
    if shared.is_dir():
        return shared
    return cache_root() / "data"
