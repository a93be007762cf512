"""Readers for real composites: without ground truth (DIH99 layout) and RealHM-style triplets.

DIH99 layout (as ``../shared/data/real_composites``; ``target`` is ``None``)::

    root/
      list.txt                      # one name per line, with or without suffix
      composite_images/<name>.jpg   # any suffix of IMAGE_SUFFIXES
      masks/<name>.png              # 255 = pasted foreground

RealHM-style layout (our decision; RealHM itself ships composite, mask and target per
sample, and any such set can be arranged like this by renaming)::

    root/
      list.txt                      # optional; default: every file of composite_images/
      composite_images/<name>.<ext>
      masks/<name>.png
      real_images/<name>.<ext>      # the harmonized ground truth, same stem as the composite

Samples use the reader vocabulary: ``composite`` ``(H,W,3)`` uint8 sRGB, ``mask``
``(H,W)`` uint8 {0,1}, ``target`` ``(H,W,3)`` uint8 or ``None``, ``name`` (the stem),
``subset`` (by default the root directory's name). Conversions of grayscale, RGBA, 16-bit
images and non-binary masks: :mod:`rharm_lib.data.imageio`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import RharmInputError
from .ihd import _DirIndex, _read_list, check_sample_shapes
from .imageio import IMAGE_SUFFIXES, load_mask, load_rgb

__all__ = ["RealCompositeDataset", "RealHMDataset"]


class _StemDataset(Sequence):
    """Shared logic: names from a list file (or a directory listing) -> files by stem."""

    _has_target = False

    def __init__(
        self, root: str | os.PathLike, list_file: str | None = "list.txt", subset: str | None = None
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise RharmInputError(f"{self.root}: no such dataset directory")
        comp_dir = self.root / "composite_images"
        if not comp_dir.is_dir():
            raise RharmInputError(f"{self.root}: no composite_images/ directory")
        self.subset = subset or self.root.name
        index = _DirIndex()
        lst = self.root / list_file if list_file else None
        if lst is not None and lst.is_file():
            lines = _read_list(lst)
            src = str(lst)
        else:
            names = sorted(
                n for n in index.names(comp_dir) if Path(n).suffix.lower() in IMAGE_SUFFIXES
            )
            lines = list(enumerate(names, 1))
            src = f"the listing of {comp_dir}"
        self.items: list[tuple[str, Path, Path, Path | None]] = []
        for lineno, line in lines:
            where = f"line {lineno} of {src} ({line!r})"
            fname = line.replace("\\", "/").rsplit("/", 1)[-1]
            stem, suffix = os.path.splitext(fname)
            if suffix.lower() not in IMAGE_SUFFIXES:
                stem, suffix = fname, ""
            comp = index.find(
                comp_dir, stem, (suffix, *IMAGE_SUFFIXES) if suffix else IMAGE_SUFFIXES
            )
            if comp is None:
                raise RharmInputError(
                    f"{comp_dir / (stem + (suffix or '.jpg'))}: no such file ({where})"
                )
            mask = index.find(self.root / "masks", stem, (".png", *IMAGE_SUFFIXES))
            if mask is None:
                raise RharmInputError(
                    f"{self.root / 'masks' / (stem + '.png')}: no such file ({where})"
                )
            real = None
            if self._has_target:
                real = index.find(
                    self.root / "real_images", stem, (comp.suffix.lower(), *IMAGE_SUFFIXES)
                )
                if real is None:
                    raise RharmInputError(
                        f"{self.root / 'real_images' / (stem + comp.suffix)}: no such file ({where})"
                    )
            self.items.append((stem, comp, mask, real))
        if not self.items:
            raise RharmInputError(f"{self.root}: no composites listed ({src} is empty)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name, comp, mask_path, real = self.items[index]
        composite = load_rgb(comp)
        mask = load_mask(mask_path)
        target = load_rgb(real) if real is not None else None
        check_sample_shapes(composite, mask, target, f"{name} in {self.root}")
        return {
            "composite": composite,
            "mask": mask,
            "target": target,
            "name": name,
            "subset": self.subset,
        }

    @property
    def paths(self) -> list[tuple[Path, Path, Path | None]]:
        """``[(composite, mask, real or None)]`` in dataset order."""
        return [(c, m, r) for _, c, m, r in self.items]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, n={len(self)})"


class RealCompositeDataset(_StemDataset):
    """Real composites without ground truth, DIH99 layout (module docstring); ``target`` is None.

    Args:
        root: the folder holding ``composite_images/``, ``masks/`` and the list.
        list_file: the list's name in ``root`` (default ``list.txt``); when absent, every
            image of ``composite_images/`` in name order.
        subset: the ``subset`` of every sample (default: ``root``'s name).

    Raises:
        RharmInputError: a missing directory or file (naming it and the list line), an
            empty list; when read, unreadable files and sizes that disagree.
    """

    _has_target = False


class RealHMDataset(_StemDataset):
    """RealHM-style triplets (layout in the module docstring): samples with a ``target``.

    Args:
        root: the folder holding ``composite_images/``, ``masks/``, ``real_images/``.
        list_file: optional list in ``root`` (default ``list.txt``); when absent, every
            image of ``composite_images/`` in name order.
        subset: the ``subset`` of every sample (default: ``root``'s name).

    Raises:
        RharmInputError: as :class:`RealCompositeDataset`, plus a missing real image.
    """

    _has_target = True
