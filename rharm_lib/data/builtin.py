"""Built-in photos: colour photographs shipped inside installed dependencies, with masks.

Zero download: tests, CI and the README's main command use these by default. The photos
come from scikit-image's bundled data (files inside the wheel, not the ones it fetches with
pooch) and matplotlib's sample data. Each photo is cropped to a square (``crop`` below, in
the original's pixels) and resized to ``size``; each has one to three foreground masks,
committed as 256x256 PNGs under ``rharm_lib/assets/builtin/<photo>_<k>.png`` (255 = object).
The masks are hand-drawn polygons and ellipses in ``tools/make_builtin_masks.py``, checked by
eye on ``figures/builtin_masks_contact_sheet.png``.

Not used: ``hubble_deep_field`` (no object-like foreground: galaxies on black),
``immunohistochemistry`` (a stain micrograph), ``colorwheel``/``color`` (charts) and
anything skimage fetches over the network (e.g. ``skin``, ``lily``, ``kidney``).

Split (fixed, by photo so that no photo is in both): test = ``coffee``, ``grace_hopper``
(5 masks -> 5 test pairs, 20 benchmark composites); train = the other five photos
(14 pairs).

Each (photo, mask) pair is one entry of the :class:`~rharm_lib.data.photoset.PhotoSet`,
named ``<photo>_<k>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import RharmInputError
from .imageio import load_mask, load_rgb, resize_mask, resize_rgb
from .photoset import PhotoSet, stack_photos

__all__ = ["BuiltinPhoto", "BUILTIN_PHOTOS", "load_builtin", "builtin_image", "MASK_SIZE"]

#: side of the committed mask PNGs
MASK_SIZE = 256


def _read(path: Path) -> np.ndarray:
    if not path.is_file():
        raise RharmInputError(f"built-in photo {path} is missing from the installed package")
    return load_rgb(path)


def _skimage(filename: str) -> Callable[[], np.ndarray]:
    """A file of scikit-image's bundled data (read directly: the ``skimage.data`` functions
    verify a registry hash first, which costs seconds)."""

    def load() -> np.ndarray:
        import skimage.data

        return _read(Path(skimage.data.__file__).parent / filename)

    return load


def _grace_hopper() -> np.ndarray:
    import matplotlib

    return _read(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")


@dataclass(frozen=True)
class BuiltinPhoto:
    """A bundled photograph: where it comes from, its square crop, its masks and split.

    Attributes:
        name: the photo's name (mask files are ``<name>_<k>.png``).
        loader: returns the original ``(H,W,3)`` uint8 sRGB image.
        crop: ``(x0, y0, side)`` of the square crop, in the original's pixels.
        n_masks: how many committed masks (``k = 1..n_masks``).
        split: ``"train"`` or ``"test"``.
        source: where the photo ships.
    """

    name: str
    loader: Callable[[], np.ndarray]
    crop: tuple[int, int, int]
    n_masks: int
    split: str
    source: str


#: the explicit registry of built-in photos, in a fixed order
BUILTIN_PHOTOS: dict[str, BuiltinPhoto] = {
    p.name: p
    for p in (
        BuiltinPhoto("astronaut", _skimage("astronaut.png"), (0, 0, 512), 3, "train", "skimage"),
        BuiltinPhoto("chelsea", _skimage("chelsea.png"), (75, 0, 300), 3, "train", "skimage"),
        BuiltinPhoto("rocket", _skimage("rocket.jpg"), (110, 0, 427), 3, "train", "skimage"),
        BuiltinPhoto(
            "motorcycle", _skimage("motorcycle_left.png"), (120, 0, 500), 3, "train", "skimage"
        ),
        BuiltinPhoto("retina", _skimage("retina.jpg"), (0, 0, 1411), 2, "train", "skimage"),
        BuiltinPhoto("coffee", _skimage("coffee.png"), (100, 0, 400), 2, "test", "skimage"),
        BuiltinPhoto("grace_hopper", _grace_hopper, (0, 40, 512), 3, "test", "matplotlib"),
    )
}


def builtin_image(name: str, size: int = MASK_SIZE) -> np.ndarray:
    """The square crop of a built-in photo, resized (bicubic) to ``size``: ``(S,S,3)`` uint8."""
    if name not in BUILTIN_PHOTOS:
        raise RharmInputError(f"unknown built-in photo {name!r}; known: {list(BUILTIN_PHOTOS)}")
    p = BUILTIN_PHOTOS[name]
    im = p.loader()
    x0, y0, s = p.crop
    crop = np.ascontiguousarray(im[y0 : y0 + s, x0 : x0 + s, :3])
    if crop.shape[:2] != (s, s):
        raise RharmInputError(f"built-in photo {name}: crop {p.crop} exceeds its {im.shape[:2]}")
    return resize_rgb(crop, size)


def _builtin_mask(name: str, k: int) -> np.ndarray:
    ref = resources.files("rharm_lib") / "assets" / "builtin" / f"{name}_{k}.png"
    with resources.as_file(ref) as path:
        if not path.is_file():
            raise RharmInputError(f"missing built-in mask {path} (reinstall rharm)")
        return load_mask(path)


def load_builtin(split: str = "train", size: int = 256) -> PhotoSet:
    """The built-in (photo, mask) pairs of ``split``.

    Args:
        split: ``"train"`` or ``"test"`` (see the module docstring for the split).
        size: side of the returned square images.

    Returns:
        A :class:`~rharm_lib.data.photoset.PhotoSet`: ``(N,3,size,size)`` uint8 images,
        ``(N,1,size,size)`` uint8 ``{0,1}`` masks, names ``<photo>_<k>``.
    """
    if split not in ("train", "test"):
        raise RharmInputError(f"unknown split {split!r}; expected 'train' or 'test'")
    images, masks, names = [], [], []
    for p in BUILTIN_PHOTOS.values():
        if p.split != split:
            continue
        im = builtin_image(p.name, size)
        for k in range(1, p.n_masks + 1):
            m = resize_mask(_builtin_mask(p.name, k), size)
            images.append(im)
            masks.append(m)
            names.append(f"{p.name}_{k}")
    return stack_photos(images, masks, names, size)
