"""Compact photo packs: one file holding a photo set's JPEG bytes and its masks.

A pack is what travels to a GPU machine (64 MiB per call there) and what loads fastest:
``rharm data pack --photos DIR --split train --out FILE`` writes a ZIP archive with

- ``manifest.json``: format, version, split, size, names, JPEG quality, source;
- ``images/<index>.jpg``: each photo re-encoded as JPEG (quality 85 by default, 4:2:0);
- ``masks.npy``: all masks as one ``(N, S, S)`` bit-packed array (``numpy.packbits`` along
  the last axis), deflate-compressed -- masks must stay exact, so they are never JPEG.

The archive is deterministic (fixed member order and time stamps), written to a temporary
file and renamed. :func:`read_pack` (used by :func:`~rharm_lib.data.photos.load_photos`)
returns the :class:`~rharm_lib.data.photoset.PhotoSet`; the photos differ from the source by
the JPEG re-encoding only (a training-data choice: the test benchmark is always made from
the original files).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import RharmInputError
from ..outputs import atomic_file, check_output_file
from .imageio import decode_rgb, resize_pair
from .photoset import PhotoSet

__all__ = ["PACK_FORMAT", "PACK_VERSION", "write_pack", "read_pack", "is_pack", "check_pack_out"]

PACK_FORMAT = "rharm-photo-pack"
PACK_VERSION = 1
_DATE = (1980, 1, 1, 0, 0, 0)


def _member(name: str, compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = compress
    info.external_attr = 0o644 << 16
    return info


def check_pack_out(out: str | os.PathLike) -> Path:
    """Check, before any work, that a pack can be written at ``out``: not a folder, a
    writable parent, and an existing file only when it is a pack (:func:`is_pack`): an
    unrelated file is never overwritten. Raises :class:`RharmInputError` otherwise."""
    p = Path(out)
    return check_output_file(p, replaceable=None if not p.is_file() else is_pack(p))


def write_pack(
    photos: PhotoSet,
    out: str | os.PathLike,
    split: str,
    quality: int = 85,
    source: str = "",
) -> Path:
    """Write ``photos`` as a pack file.

    Args:
        photos: the photo set (``(N,3,S,S)`` uint8 images, ``(N,1,S,S)`` uint8 masks).
        out: the pack file to write (conventionally ``*.rhpack``).
        split: the split the photos are (stored, and checked when reading).
        quality: JPEG quality of the images (1..100).
        source: where the photos came from, for the manifest.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        RharmInputError: a bad quality, or an ``out`` refused by :func:`check_pack_out`
            (a folder, an unwritable place, an existing file that is not a pack).
    """
    if not 1 <= quality <= 100:
        raise RharmInputError(f"JPEG quality must be in 1..100, got {quality}")
    out = check_pack_out(out)
    manifest = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "split": split,
        "size": photos.size,
        "count": len(photos),
        "names": list(photos.names),
        "jpeg_quality": quality,
        "source": source,
    }
    images = photos.images.permute(0, 2, 3, 1).numpy()
    masks = np.packbits(photos.masks[:, 0].numpy().astype(bool), axis=-1)
    with atomic_file(out) as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr(
                _member("manifest.json", zipfile.ZIP_DEFLATED),
                json.dumps(manifest, indent=1, sort_keys=True),
            )
            buf = io.BytesIO()
            np.save(buf, masks, allow_pickle=False)
            zf.writestr(_member("masks.npy", zipfile.ZIP_DEFLATED), buf.getvalue())
            for i, im in enumerate(images):
                b = io.BytesIO()
                Image.fromarray(im).save(b, format="JPEG", quality=quality)
                zf.writestr(_member(f"images/{i:06d}.jpg", zipfile.ZIP_STORED), b.getvalue())
    return out


def is_pack(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a pack file (a ZIP with a pack manifest)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read("manifest.json")).get("format") == PACK_FORMAT
    except (OSError, KeyError, zipfile.BadZipFile, ValueError):
        return False


def read_pack(
    path: str | os.PathLike, split: str | None = None, size: int | None = None
) -> PhotoSet:
    """Read a pack file.

    Args:
        path: the pack file.
        split: when given, must be the split the pack was made from.
        size: when given and different from the pack's, photos and masks are resized.

    Returns:
        The :class:`~rharm_lib.data.photoset.PhotoSet` (``(N,3,S,S)`` uint8 images,
        ``(N,1,S,S)`` uint8 ``{0,1}`` masks).
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            if manifest.get("format") != PACK_FORMAT:
                raise RharmInputError(f"{path} is not an rharm photo pack")
            if manifest.get("version") != PACK_VERSION:
                raise RharmInputError(
                    f"{path}: pack version {manifest.get('version')}, expected {PACK_VERSION}"
                )
            masks_packed = np.load(io.BytesIO(zf.read("masks.npy")), allow_pickle=False)
            blobs = [zf.read(f"images/{i:06d}.jpg") for i in range(manifest["count"])]
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise RharmInputError(f"cannot read pack {path}: {exc}") from exc
    if split is not None and manifest["split"] != split:
        raise RharmInputError(
            f"{path} holds the {manifest['split']!r} split, but {split!r} was asked for"
        )
    s = int(manifest["size"])
    n = int(manifest["count"])
    masks = np.unpackbits(masks_packed, axis=-1, count=s).astype(np.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as ex:
        images = list(ex.map(decode_rgb, blobs, [f"{path}:images/{i:06d}.jpg" for i in range(n)]))
    if size is not None and size != s:
        pairs = [resize_pair(im, m, size) for im, m in zip(images, masks, strict=True)]
        images, masks = [p[0] for p in pairs], np.stack([p[1] for p in pairs])
        s = size
    ims = (
        torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        if n
        else torch.zeros(0, 3, s, s, dtype=torch.uint8)
    )
    return PhotoSet(ims, torch.from_numpy(np.ascontiguousarray(masks))[:, None], manifest["names"])
