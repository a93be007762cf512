"""Loading photo sets (:class:`~rharm_lib.data.photoset.PhotoSet`) from any photo source.

A photo set is what composite synthesis consumes, on the fly in training or once for the
fixed test benchmark (:mod:`rharm_lib.data.benchmark`). Sources (resolved by
:func:`rharm_lib.data.resolve.resolve_data`):

- ``"builtin"``: the photographs bundled with scikit-image and matplotlib, with the masks
  committed in this package (:mod:`rharm_lib.data.builtin`);
- a lalonde-layout directory: ``images/<id>.jpg``, ``masks/<id>.png`` (255 = object),
  ``train.txt`` and ``test.txt`` (one id per line), e.g. ``../shared/data/lalonde``;
- a pack file written by ``rharm data pack`` (:mod:`rharm_lib.data.pack`).

Images are resized to ``size x size`` (bicubic) when they are not already that size, masks
by the area rule then thresholded at 0.5, so a mask stays in ``{0,1}``
(:func:`rharm_lib.data.imageio.resize_pair`). Files are decoded by
:mod:`rharm_lib.data.imageio`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import RharmInputError
from .builtin import load_builtin
from .imageio import load_mask, load_rgb, resize_pair
from .pack import read_pack
from .photoset import PhotoSet, stack_photos
from .resolve import resolve_data

__all__ = ["PhotoSet", "load_photos", "read_lalonde", "SPLITS"]

SPLITS = ("train", "test")


def read_lalonde(root: str | os.PathLike, split: str = "train") -> list[str]:
    """The ids of ``split`` in a lalonde-layout directory, checking the files exist."""
    root = Path(root)
    if split not in SPLITS:
        raise RharmInputError(f"unknown split {split!r}; expected one of {SPLITS}")
    lst = root / f"{split}.txt"
    if not lst.is_file():
        raise RharmInputError(
            f"{lst} not found: expected a lalonde-layout directory with images/, masks/, "
            "train.txt and test.txt"
        )
    ids = [ln.strip() for ln in lst.read_text().splitlines() if ln.strip()]
    for i, name in enumerate(ids):
        for sub, ext in (("images", ".jpg"), ("masks", ".png")):
            p = root / sub / f"{name}{ext}"
            if not p.is_file():
                raise RharmInputError(f"{lst}:{i + 1}: {p} does not exist")
    return ids


def _load_lalonde(root: Path, split: str, size: int) -> PhotoSet:
    ids = read_lalonde(root, split)
    images, masks = [], []
    for name in ids:
        im = load_rgb(root / "images" / f"{name}.jpg")
        m = load_mask(root / "masks" / f"{name}.png")
        if im.shape[:2] != m.shape:
            raise RharmInputError(
                f"{root / 'masks' / (name + '.png')}: mask {m.shape} does not match image "
                f"{im.shape[:2]}"
            )
        im, m = resize_pair(im, m, size)
        images.append(im)
        masks.append(m)
    return stack_photos(images, masks, ids, size)


def load_photos(source: str | os.PathLike, split: str = "train", size: int = 256) -> PhotoSet:
    """Load a photo set.

    Args:
        source: ``"builtin"``, ``"lalonde"``, a lalonde-layout directory, or a pack file
            from ``rharm data pack`` (see :func:`rharm_lib.data.resolve.resolve_data`).
        split: ``"train"`` or ``"test"`` (a pack holds the one split it was made from; asking
            for another is an error).
        size: side of the square images returned.

    Returns:
        A :class:`PhotoSet` with ``(N,3,size,size)`` uint8 images and ``(N,1,size,size)``
        uint8 ``{0,1}`` masks, in the order of the split list.

    Raises:
        RharmInputError: an unknown split, a size < 1, a source that is not photos.
    """
    if split not in SPLITS:
        raise RharmInputError(f"unknown split {split!r}; expected one of {SPLITS}")
    if int(size) < 1:
        raise RharmInputError(f"photo size must be a positive integer, got {size!r}")
    spec = resolve_data(source)
    if spec.kind != "photos":
        raise RharmInputError(
            f"photo source {str(source)!r} is an iHarmony4 root (composite pairs), not photos"
        )
    if spec.location == "builtin":
        return load_builtin(split, size)
    path = Path(spec.location)
    if path.is_dir():
        return _load_lalonde(path, split, size)
    return read_pack(path, split=split, size=size)
