"""The iHarmony4 layout reader (also reads any subset names, e.g. the synthetic benchmark's).

Layout::

    root/
      IHD_train.txt  IHD_test.txt          # lines "<Subset>/composite_images/<file>"
      HCOCO/  HAdobe5k/  HFlickr/  Hday2night/   # or any other subset directory
        <Subset>_train.txt  <Subset>_test.txt   # lines "<file>" (composite file names)
        composite_images/<real>_<maskid>_<compid>.jpg
        masks/<real>_<maskid>.png
        real_images/<real>.jpg

Names link as composite ``<real>_<maskid>_<compid>.<ext>`` -> mask
``<real>_<maskid>.png`` -> real image ``<real>.<ext>`` (the composite's suffix first, then
``.jpg``, ``.png``, ...; masks try ``.png`` first). ``<real>`` may itself contain ``_``:
the two last ``_``-separated fields are the mask and composite ids.

Reading order: ``root/IHD_<split>.txt`` when it exists, else every subset's
``<Subset>/<Subset>_<split>.txt`` (subsets sorted by name). A root that is itself one
subset directory (it holds ``composite_images/`` and ``<name>_<split>.txt``) is read as
that single subset. List lines may also be relative paths ``composite_images/<file>``
(per-subset lists) or ``<Subset>/<file>`` (root list); blank lines and lines starting with
``#`` are skipped.

Paths are resolved (and missing files reported, naming the list line) when the dataset
is built; pixels are read lazily in ``__getitem__`` (HAdobe5k originals reach 6,000 px).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RharmInputError
from .imageio import IMAGE_SUFFIXES, load_mask, load_rgb

__all__ = ["IHDItem", "IHDDataset", "IHD_SUBSETS", "check_sample_shapes"]

#: the four subsets of the real iHarmony4, in the paper's table order
IHD_SUBSETS = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night")


@dataclass(frozen=True)
class IHDItem:
    """One composite of a list, with resolved file paths.

    Attributes:
        subset: the subset directory name.
        name: the composite's file stem, e.g. ``a0001_1_1``.
        composite, mask, real: the files.
        list_file: the list the line came from; lineno: its 1-based line number.
        line: the line's text.
    """

    subset: str
    name: str
    composite: Path
    mask: Path
    real: Path
    list_file: Path
    lineno: int
    line: str

    def where(self) -> str:
        """``"list line N of FILE ('LINE')"`` for error messages."""
        return f"list line {self.lineno} of {self.list_file} ({self.line!r})"


def check_sample_shapes(composite, mask, target, where: str) -> None:
    """Raise :class:`RharmInputError` quoting the sizes when composite/mask/target disagree.

    Args:
        composite: ``(H,W,3)`` array; mask: ``(H,W)``; target: ``(H,W,3)`` or ``None``.
        where: names the sample (files, list line) in the message.
    """
    h, w = composite.shape[:2]
    bad = mask.shape != (h, w) or (target is not None and target.shape[:2] != (h, w))
    if bad:
        sizes = f"composite {w}x{h}, mask {mask.shape[1]}x{mask.shape[0]}"
        if target is not None:
            sizes += f", target {target.shape[1]}x{target.shape[0]}"
        raise RharmInputError(f"image sizes disagree (W x H): {sizes}; {where}")


class _DirIndex:
    """File names of a directory, listed once (a stat per file would be slow on 70k lines)."""

    def __init__(self) -> None:
        self._cache: dict[Path, set[str]] = {}

    def names(self, d: Path) -> set[str]:
        if d not in self._cache:
            self._cache[d] = set(os.listdir(d)) if d.is_dir() else set()
        return self._cache[d]

    def find(self, d: Path, stem: str, suffixes: Sequence[str]) -> Path | None:
        names = self.names(d)
        for suf in dict.fromkeys(suffixes):
            for cand in (stem + suf, stem + suf.upper()):
                if cand in names:
                    return d / cand
        return None


def _read_list(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RharmInputError(f"{path}: cannot read list file ({exc})") from None
    return [
        (i, ln.strip())
        for i, ln in enumerate(text.splitlines(), 1)
        if ln.strip() and not ln.strip().startswith("#")
    ]


class IHDDataset(Sequence):
    """iHarmony4-layout dataset: a sequence of reader samples.

    Each sample is ``{"composite": (H,W,3) uint8 sRGB, "mask": (H,W) uint8 {0,1},
    "target": (H,W,3) uint8 sRGB (the real image), "name": str (composite stem),
    "subset": str}`` at the files' native size (see :mod:`rharm_lib.data.imageio` for the
    conversions of grayscale, RGBA, 16-bit images and non-binary masks).

    Args:
        root: the dataset root (layout in the module docstring), or one subset directory.
        split: ``"test"`` or ``"train"`` (any ``<split>`` with list files works).
        subsets: keep only these subsets (names as the directories spell them; a string
            is split on commas); ``None`` keeps all.

    Attributes:
        items: the :class:`IHDItem` list (paths resolved, nothing read).
        available: the subset names found under ``root``.

    Raises:
        RharmInputError: missing root or list, an unknown subset (listing the available
            ones), a list line whose files are missing (naming the file and the line), an
            empty list. Unreadable files and disagreeing sizes are reported when a sample
            is read, naming the files and the list line.
    """

    def __init__(
        self, root: str | os.PathLike, split: str = "test", subsets: Sequence[str] | None = None
    ) -> None:
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise RharmInputError(f"{self.root}: no such dataset directory")
        self._index = _DirIndex()
        self.available = self._find_subsets()
        if isinstance(subsets, str):  # "HCOCO,HFlickr" rather than a list of characters
            subsets = [x.strip() for x in subsets.split(",") if x.strip()]
        wanted = None if subsets is None else list(dict.fromkeys(subsets))
        if wanted is not None:
            unknown = [s for s in wanted if s not in self.available]
            if unknown:
                raise RharmInputError(
                    f"unknown subset(s) {unknown} in {self.root}; available: {self.available}"
                )
        self.items: list[IHDItem] = self._collect(wanted)
        if not self.items:
            which = f" for subsets {wanted}" if wanted else ""
            raise RharmInputError(f"{self.root}: the {split!r} list is empty{which}")

    # -- discovery ------------------------------------------------------------------
    def _single_subset(self) -> bool:
        return (self.root / "composite_images").is_dir() and (
            self.root / f"{self.root.name}_{self.split}.txt"
        ).is_file()

    def _find_subsets(self) -> list[str]:
        if self._single_subset():
            return [self.root.name]
        found = sorted(
            d.name for d in self.root.iterdir() if d.is_dir() and (d / "composite_images").is_dir()
        )
        # the real iHarmony4 subsets first, in the paper's order; then the others by name
        return [s for s in IHD_SUBSETS if s in found] + [s for s in found if s not in IHD_SUBSETS]

    def _collect(self, wanted: list[str] | None) -> list[IHDItem]:
        keep = set(wanted) if wanted is not None else None
        if self._single_subset():
            sub = self.root.name
            lst = self.root / f"{sub}_{self.split}.txt"
            return [self._item(sub, self.root, line, lst, i) for i, line in _read_list(lst)]
        root_list = self.root / f"IHD_{self.split}.txt"
        items: list[IHDItem] = []
        if root_list.is_file():
            for i, line in _read_list(root_list):
                parts = line.replace("\\", "/").split("/", 1)
                if len(parts) != 2:
                    raise RharmInputError(
                        f"list line {i} of {root_list} ({line!r}): expected '<Subset>/composite_images/<file>'"
                    )
                sub, rest = parts
                if keep is not None and sub not in keep:
                    continue
                if sub not in self.available:
                    raise RharmInputError(
                        f"list line {i} of {root_list} ({line!r}): no subset directory "
                        f"{self.root / sub} with composite_images/ (found: {self.available})"
                    )
                items.append(self._item(sub, self.root / sub, rest, root_list, i, line))
            return items
        lists = {s: self.root / s / f"{s}_{self.split}.txt" for s in self.available}
        lists = {s: p for s, p in lists.items() if p.is_file()}
        if not lists:
            raise RharmInputError(
                f"{self.root}: no IHD_{self.split}.txt and no <Subset>/<Subset>_{self.split}.txt "
                f"(subset directories found: {self.available})"
            )
        if keep is not None:
            no_list = sorted(keep - set(lists))
            if no_list:
                raise RharmInputError(
                    f"subset(s) {no_list} in {self.root} have no {self.split} list"
                )
        for sub, lst in lists.items():
            if keep is None or sub in keep:
                items += [self._item(sub, self.root / sub, ln, lst, i) for i, ln in _read_list(lst)]
        return items

    def _item(
        self,
        subset: str,
        sub_dir: Path,
        rel: str,
        list_file: Path,
        lineno: int,
        line: str | None = None,
    ) -> IHDItem:
        line = rel if line is None else line
        where = f"list line {lineno} of {list_file} ({line!r})"
        rel = rel.replace("\\", "/")
        fname = rel.rsplit("/", 1)[-1]
        comp = sub_dir / "composite_images" / fname
        stem, suffix = os.path.splitext(fname)
        fields = stem.rsplit("_", 2)
        if len(fields) != 3 or not all(fields):
            raise RharmInputError(
                f"{where}: composite name {fname!r} is not <real>_<maskid>_<compid>.<ext>"
            )
        if fname not in self._index.names(comp.parent):
            raise RharmInputError(f"{comp}: no such file ({where})")
        mask_stem, real_stem = f"{fields[0]}_{fields[1]}", fields[0]
        mask = self._index.find(
            sub_dir / "masks", mask_stem, (".png", suffix.lower(), *IMAGE_SUFFIXES)
        )
        if mask is None:
            raise RharmInputError(
                f"{sub_dir / 'masks' / (mask_stem + '.png')}: no such file ({where})"
            )
        real = self._index.find(
            sub_dir / "real_images", real_stem, (suffix.lower(), *IMAGE_SUFFIXES)
        )
        if real is None:
            raise RharmInputError(
                f"{sub_dir / 'real_images' / (real_stem + suffix)}: no such file ({where})"
            )
        return IHDItem(subset, stem, comp, mask, real, list_file, lineno, line)

    # -- sequence protocol ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if isinstance(index, slice):
            raise TypeError("IHDDataset does not support slices; index with an int")
        it = self.items[index]
        try:
            composite = load_rgb(it.composite)
            mask = load_mask(it.mask)
            target = load_rgb(it.real)
        except RharmInputError as exc:
            raise RharmInputError(f"{exc} ({it.where()})") from None
        check_sample_shapes(
            composite,
            mask,
            target,
            f"{it.composite.name}, {it.mask.name}, {it.real.name}; {it.where()}",
        )
        return {
            "composite": composite,
            "mask": mask,
            "target": target,
            "name": it.name,
            "subset": it.subset,
        }

    def select(self, indices: Sequence[int]) -> IHDDataset:
        """The same dataset restricted to ``items[i]`` for ``i`` in ``indices`` (that order).

        Raises:
            RharmInputError: no index, or an index out of range.
        """
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < len(self.items)]
        if not idx or bad:
            raise RharmInputError(
                f"select({idx[:5]}): indices must be in [0, {len(self.items)}) and not empty"
            )
        out = copy.copy(self)
        out.items = [self.items[i] for i in idx]
        return out

    @property
    def paths(self) -> list[tuple[Path, Path, Path]]:
        """``[(composite, mask, real)]`` file paths in dataset order (for training readers)."""
        return [(it.composite, it.mask, it.real) for it in self.items]

    @property
    def subsets(self) -> list[str]:
        """The subsets present in this dataset, in order of first appearance."""
        return list(dict.fromkeys(it.subset for it in self.items))

    def __repr__(self) -> str:
        return f"IHDDataset({str(self.root)!r}, split={self.split!r}, n={len(self)}, subsets={self.subsets})"
