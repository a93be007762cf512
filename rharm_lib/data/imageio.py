"""Load and save images and masks with documented conversions.

Everything the rest of the package sees is NumPy uint8 sRGB ``(H,W,3)`` for images
and uint8 ``(H,W)`` in ``{0,1}`` for masks (1 = pasted foreground). Conversions, decided
once here:

- grayscale (``L``, ``1``) images: the gray value copied to R, G and B;
- palette (``P``), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` images: Pillow's conversion to RGB;
- an alpha channel (``RGBA``, ``LA``, ``PA``): dropped, *not* composited on a background
  (harmonization data store the pasted object in the mask, never in alpha);
- 16-bit images: reduced to 8 bits by keeping the high byte (``x >> 8``). Pillow already
  does this for 16-bit RGB PNGs; 16-bit grayscale (``I;16``, ``I``) is reduced the same way
  so that the two agree;
- EXIF orientation is *not* applied: pixels are used as stored, so that a composite, its
  mask and its real image (which may differ in EXIF tags) stay aligned;
- masks are read as grayscale (colour masks through Pillow's ``L`` luma conversion, alpha
  dropped) and binarised at half the dtype's range: ``>= 128`` for 8-bit, ``>= 32768`` for
  16-bit. Exception: an 8-bit mask whose values are all in ``{0,1}`` is taken as is (a
  ``{0,1}`` mask saved without scaling would otherwise read as empty).

Errors (missing file, not an image, truncated data, unsupported mode) are
:class:`~rharm_lib.errors.RharmInputError` naming the file.

This is the one decoding layer: every reader (iHarmony4, real composites, lalonde photos,
built-in photos, packs) decodes through :func:`load_rgb`/:func:`load_mask` (files) or
:func:`decode_rgb`/:func:`decode_mask` (bytes), and resizes with :func:`resize_rgb`,
:func:`resize_mask` and :func:`resize_pair`.

Resizing rule (NumPy, uint8): images bicubic (PIL); masks by **area** -- PIL's box filter on
the ``{0,1}`` float mask, i.e. the foreground fraction of each output cell, as
:func:`rharm_lib.model.masks.resize_mask` does on tensors -- then thresholded at ``>= 0.5``
so that a resized mask stays in ``{0,1}``. (The evaluation protocol's nearest-neighbour
mask resize, :func:`rharm_lib.metrics.resize_mask`, is a different thing: the paper's metric
convention, kept as it is.)
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import RharmInputError

__all__ = [
    "load_rgb",
    "load_mask",
    "decode_rgb",
    "decode_mask",
    "save_rgb",
    "resize_rgb",
    "resize_mask",
    "resize_pair",
    "IMAGE_SUFFIXES",
]

#: file suffixes recognised as images by the readers
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _open(path: str | os.PathLike) -> Image.Image:
    p = Path(path)
    if not p.is_file():
        raise RharmInputError(f"{p}: no such file")
    return _decode(p, str(p))


def _decode(src: Path | io.BytesIO, label: str) -> Image.Image:
    try:
        with Image.open(src) as im:
            im.load()
            return (
                im.copy()
                if im.mode != "P"
                else im.convert("RGBA" if "transparency" in im.info else "RGB")
            )
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise RharmInputError(f"{label}: cannot read image ({exc})") from None


def _sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    # Pillow's "I" mode holds 32-bit ints; PNG 16-bit gray lands in [0, 65535].
    return (np.clip(arr.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as sRGB uint8 with the conversions of the module docstring.

    Args:
        path: an image file Pillow can read (JPEG, PNG, BMP, TIFF, WebP ...).

    Returns:
        ``(H,W,3)`` uint8 sRGB array (C-contiguous).

    Raises:
        RharmInputError: naming ``path`` when it is missing, unreadable or of an
            unsupported mode (e.g. floating point ``F``).
    """
    return _to_rgb(_open(path), str(path))


def decode_rgb(data: bytes, label: str) -> np.ndarray:
    """:func:`load_rgb` of an encoded image held in memory (e.g. a pack's JPEG bytes).

    Args:
        data: the encoded file's bytes.
        label: names the image in error messages (e.g. ``"pack.rhpack:images/000003.jpg"``).

    Returns:
        ``(H,W,3)`` uint8 sRGB array.
    """
    return _to_rgb(_decode(io.BytesIO(data), label), label)


def _to_rgb(im: Image.Image, path: str) -> np.ndarray:
    if im.mode in _SIXTEEN_BIT:
        gray = _sixteen_to_eight(np.asarray(im))
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if im.mode == "F":
        raise RharmInputError(f"{path}: floating-point images (mode F) are not supported")
    if im.mode != "RGB":
        # RGBA/LA/PA: convert("RGB") drops alpha; L and 1 replicate gray; CMYK etc. convert.
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask and binarise it (rules in the module docstring).

    Args:
        path: a mask image (usually PNG, 255 = foreground).

    Returns:
        ``(H,W)`` uint8 array in ``{0,1}``, 1 = foreground.

    Raises:
        RharmInputError: naming ``path`` when it is missing or unreadable.
    """
    return _to_mask(_open(path))


def decode_mask(data: bytes, label: str) -> np.ndarray:
    """:func:`load_mask` of an encoded mask held in memory; ``label`` names it in errors."""
    return _to_mask(_decode(io.BytesIO(data), label))


def _to_mask(im: Image.Image) -> np.ndarray:
    if im.mode in _SIXTEEN_BIT:
        arr = np.asarray(im).astype(np.int64)
        return (arr >= 32768).astype(np.uint8)
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        # a float mask is taken to be in [0, 1]
        return (arr >= 0.5).astype(np.uint8)
    if im.mode == "1":
        return np.asarray(im, dtype=np.uint8)
    if im.mode != "L":
        im = im.convert("RGB").convert("L") if im.mode in ("RGBA", "LA", "PA") else im.convert("L")
    arr = np.asarray(im, dtype=np.uint8)
    if arr.size and arr.max() <= 1:
        return np.ascontiguousarray(arr)
    return (arr >= 128).astype(np.uint8)


def save_rgb(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write an sRGB uint8 image atomically (a temporary file, then a rename).

    The format follows the suffix of ``path`` (PNG is lossless; JPEG is written at
    quality 95). A failure leaves no file at ``path`` and no temporary file behind.

    Args:
        path: the destination; its parent directory is created.
        arr: ``(H,W,3)`` uint8 sRGB (``(H,W)`` uint8 is written as grayscale).

    Raises:
        RharmInputError: quoting the array's shape and dtype when they are not as above,
            or naming ``path`` when the suffix is not an image format.
    """
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise RharmInputError(
            f"save_rgb({path}): expected a uint8 (H,W,3) array, got {arr.dtype} {arr.shape}"
        )
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise RharmInputError(
            f"{path}: unknown image suffix {path.suffix!r}; use one of {IMAGE_SUFFIXES}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        kwargs = {"quality": 95} if suffix in (".jpg", ".jpeg") else {}
        Image.fromarray(np.ascontiguousarray(arr)).save(tmp, **kwargs)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a saved image is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def resize_rgb(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize an ``(H,W,3)`` uint8 sRGB image to ``size`` (an int or ``(h, w)``), PIL bicubic.

    Returned unchanged when already that size.
    """
    h, w = _size_hw(size)
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC))


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize an ``(H,W)`` mask (foreground where ``> 0``) by the area rule (module docstring).

    Args:
        mask: ``(H,W)`` array, foreground where ``> 0``.
        size: an int (square) or ``(h, w)``.

    Returns:
        ``(h,w)`` uint8 in ``{0,1}``: 1 where at least half of the cell is foreground
        (``mask > 0`` as uint8 when already that size).
    """
    h, w = _size_hw(size)
    fg = (np.asarray(mask) > 0).astype(np.float32)
    if fg.shape == (h, w):
        return fg.astype(np.uint8)
    m = Image.fromarray(fg).resize((w, h), Image.BOX)
    return (np.asarray(m) >= 0.5).astype(np.uint8)


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image ``(H,W,3)`` uint8 and its mask ``(H,W)`` uint8 ``{0,1}`` to ``size x size``.

    :func:`resize_rgb` and :func:`resize_mask`; a no-op (the same arrays) at that size.
    """
    if image.shape[:2] == (size, size) and mask.shape == (size, size):
        return image, mask
    return resize_rgb(image, size), resize_mask(mask, size)
