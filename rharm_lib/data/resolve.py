"""Resolving a data name (``--data``, ``--photos``, a profile's source) into a data source.

The one place that decides what ``builtin``, ``lalonde``, a pack file or a folder means; the
CLI (``rharm data``, ``rharm train``), the training engine, the study and
:func:`rharm_lib.data.photos.load_photos` all call :func:`resolve_data`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import RharmInputError
from ..paths import data_root

__all__ = ["SourceSpec", "resolve_data"]


@dataclass(frozen=True)
class SourceSpec:
    """Where data comes from.

    Attributes:
        kind: ``"photos"`` (photos + masks, composites synthesised from them) or ``"pairs"``
            (an iHarmony4-layout root with real composites).
        location: ``"builtin"``, a lalonde-layout folder, a pack file or an iHarmony4 root.
    """

    kind: str
    location: str


def resolve_data(name: str | os.PathLike, data: str | os.PathLike | None = None) -> SourceSpec:
    """Classify a data name.

    Args:
        name: ``"builtin"`` (the built-in photos); ``"lalonde"`` (the ``lalonde/`` folder
            under :func:`rharm_lib.paths.data_root`, unless a path of that name exists); a
            file (a pack of ``rharm data pack``); a folder with ``images/`` and ``masks/``
            (lalonde layout); a folder with iHarmony4 ``*_train.txt`` lists (pairs).
        data: an explicit data root for ``"lalonde"`` (``--data``; default
            :func:`~rharm_lib.paths.data_root`'s search).

    Returns:
        The :class:`SourceSpec`.

    Raises:
        RharmInputError: anything else, naming the path.
    """
    s = str(name)
    if s == "builtin":
        return SourceSpec("photos", "builtin")
    path = Path(s)
    if s == "lalonde" and not path.exists():
        path = data_root(data) / "lalonde"
        if not path.is_dir():
            raise RharmInputError(
                f"no lalonde photos at {path}: set --data or RHARM_DATA, or run "
                "'rharm data fetch lalonde'"
            )
    if path.is_file():
        return SourceSpec("photos", str(path))
    if path.is_dir():
        if (path / "images").is_dir() and (path / "masks").is_dir():
            return SourceSpec("photos", str(path))
        if list(path.glob("*_train.txt")) or list(path.glob("*/*_train.txt")):
            return SourceSpec("pairs", str(path))
        raise RharmInputError(
            f"--data {path}: a folder but neither lalonde layout (images/, masks/) nor an "
            f"iHarmony4 root (<subset>/<subset>_train.txt)"
        )
    raise RharmInputError(
        f"--data {s!r} is neither 'builtin', 'lalonde', a pack file nor a data folder: "
        f"{path} does not exist"
    )
