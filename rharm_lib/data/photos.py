"""Photo sets: real photographs with one object mask each, as uint8 tensors.

A :class:`PhotoSet` is what composite synthesis consumes, on the fly in training (issue 5) or
once for the fixed test benchmark (:mod:`rharm_lib.data.benchmark`). Sources:

- ``"builtin"``: the photographs bundled with scikit-image and matplotlib, with the masks
  committed in this package (:mod:`rharm_lib.data.builtin`);
- a lalonde-layout directory: ``images/<id>.jpg``, ``masks/<id>.png`` (255 = object),
  ``train.txt`` and ``test.txt`` (one id per line), e.g. ``../shared/data/lalonde``;
- a pack file written by ``rharm data pack`` (:mod:`rharm_lib.data.pack`).

Images are resized to ``size x size`` (bicubic) when they are not already that size, masks
with the box filter then thresholded at 0.5, so a mask stays in ``{0,1}``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import RharmInputError

__all__ = ["PhotoSet", "load_photos", "read_lalonde", "resize_pair", "SPLITS"]

SPLITS = ("train", "test")


@dataclass(frozen=True)
class PhotoSet:
    """Photographs and their foreground masks.

    Attributes:
        images: ``(N,3,S,S)`` uint8 sRGB.
        masks: ``(N,1,S,S)`` uint8 in ``{0,1}`` (1 = the object).
        names: ``N`` unique names (file stems of the source).
    """

    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise RharmInputError(
                f"PhotoSet images must be uint8 (N,3,S,S), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.masks.dtype != torch.uint8 or tuple(self.masks.shape) != (
            n,
            1,
            *self.images.shape[2:],
        ):
            raise RharmInputError(
                f"PhotoSet masks must be uint8 (N,1,S,S) matching images "
                f"{tuple(self.images.shape)}, got {self.masks.dtype} {tuple(self.masks.shape)}"
            )
        if self.images.shape[0] != n:
            raise RharmInputError(f"PhotoSet has {self.images.shape[0]} images but {n} names")
        if len(set(self.names)) != n:
            raise RharmInputError("PhotoSet names must be unique")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def size(self) -> int:
        """The side ``S`` of the square images."""
        return int(self.images.shape[-1])

    def to(self, device: str | torch.device) -> PhotoSet:
        """The same set with its tensors on ``device`` (GPU-resident training data)."""
        return PhotoSet(self.images.to(device), self.masks.to(device), list(self.names))

    def float_batch(self, index: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """``(target (B,3,S,S) float32 [0,1], mask (B,1,S,S) float32 {0,1})`` for ``index``."""
        return self.images[index].float() / 255.0, self.masks[index].float()


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (H,W,3) uint8 and its mask (H,W) uint8 {0,1} to ``size x size``.

    Bicubic for the image; the box filter then ``>= 0.5`` for the mask. A no-op at that size.
    """
    if image.shape[:2] == (size, size) and mask.shape == (size, size):
        return image, mask
    im = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))
    m = Image.fromarray((mask > 0).astype(np.float32)).resize((size, size), Image.BOX)
    return im, (np.asarray(m) >= 0.5).astype(np.uint8)


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise RharmInputError(f"cannot read image {path}: {exc}") from exc


def _read_mask(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return (np.asarray(im.convert("L")) > 127).astype(np.uint8)
    except (OSError, ValueError) as exc:
        raise RharmInputError(f"cannot read mask {path}: {exc}") from exc


def _stack(
    images: list[np.ndarray], masks: list[np.ndarray], names: list[str], size: int
) -> PhotoSet:
    if not names:
        return PhotoSet(
            torch.zeros(0, 3, size, size, dtype=torch.uint8),
            torch.zeros(0, 1, size, size, dtype=torch.uint8),
            [],
        )
    ims = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    ms = torch.from_numpy(np.stack(masks))[:, None].contiguous()
    return PhotoSet(ims, ms, names)


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
        im = _read_rgb(root / "images" / f"{name}.jpg")
        m = _read_mask(root / "masks" / f"{name}.png")
        if im.shape[:2] != m.shape:
            raise RharmInputError(
                f"{root / 'masks' / (name + '.png')}: mask {m.shape} does not match image "
                f"{im.shape[:2]}"
            )
        im, m = resize_pair(im, m, size)
        images.append(im)
        masks.append(m)
    return _stack(images, masks, ids, size)


def load_photos(source: str | os.PathLike, split: str = "train", size: int = 256) -> PhotoSet:
    """Load a photo set.

    Args:
        source: ``"builtin"``, a lalonde-layout directory, or a pack file from
            ``rharm data pack``.
        split: ``"train"`` or ``"test"`` (a pack holds the one split it was made from; asking
            for another is an error).
        size: side of the square images returned.

    Returns:
        A :class:`PhotoSet` with ``(N,3,size,size)`` uint8 images and ``(N,1,size,size)``
        uint8 ``{0,1}`` masks, in the order of the split list.
    """
    if split not in SPLITS:
        raise RharmInputError(f"unknown split {split!r}; expected one of {SPLITS}")
    if str(source) == "builtin":
        from . import builtin

        return builtin.load_builtin(split, size)
    path = Path(source)
    if path.is_dir():
        return _load_lalonde(path, split, size)
    if path.is_file():
        from . import pack

        return pack.read_pack(path, split=split, size=size)
    raise RharmInputError(
        f"photo source {str(source)!r} is neither 'builtin', a directory nor a pack file"
    )
