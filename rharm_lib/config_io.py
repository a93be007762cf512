"""Config (de)serialisation: frozen dataclasses <-> plain dicts (JSON- and checkpoint-safe).

Checkpoints and run records store configs as nested dicts of primitives (tuples become
lists), so that ``torch.load(weights_only=True)`` can read them; :func:`rebuild` restores the
dataclass, nested dataclasses and tuples included, and refuses fields this code does not
know (a checkpoint of another code version). Training (:mod:`rharm_lib.train.config`) and
inference (:mod:`rharm_lib.inference`) both use these two functions.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from .errors import RharmInputError

__all__ = ["plain", "rebuild"]


def plain(obj: Any) -> Any:
    """Dataclasses -> dicts, tuples -> lists: JSON- and ``weights_only``-safe primitives."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    return obj


def rebuild(cls: type, data: dict[str, Any], what: str) -> Any:
    """Rebuild dataclass ``cls`` from a plain dict: nested dataclasses and tuples restored.

    Args:
        cls: the dataclass.
        data: what :func:`plain` made of an instance.
        what: names the record in error messages (e.g. ``"checkpoint model config"``).

    Raises:
        RharmInputError: ``data`` has fields ``cls`` does not know (another code version).
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise RharmInputError(f"{what} has fields {unknown} that {cls.__name__} does not know")
    hints = typing.get_type_hints(cls)
    kw = {}
    for k, v in data.items():
        hint = hints.get(k)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(v, dict):
            v = rebuild(hint, v, f"{what}.{k}")
        elif isinstance(v, list) and "tuple" in str(hint):
            v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        kw[k] = v
    return cls(**kw)
