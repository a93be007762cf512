"""``rharm data fetch lalonde``: download the upstream photos and convert them.

Upstream: the folder ``Lalonde and Efros/onlineDb`` of the public GitHub repository
``bcmi/Image-Harmonization-Dataset-iHarmony4``, fetched as the repository's ZIP archive
(:data:`LALONDE_URL`). Inside the folder:

- ``Images/<id>.jpg``: 256x256 photographs and composites;
- ``Annotation/<id>.xml``: LabelMe-style records (several top-level elements) with
  ``<image><generated>`` (0 = a real photograph, 1 = a cut-and-paste composite) and
  ``<object><name>`` / ``<object><masks><filename>masks/<id>.mat``;
- ``Annotation/masks/<id>.mat``: MATLAB files whose ``objMask`` is the object's mask.

Conversion writes the layout of ``../shared/data/lalonde`` for the ``generated=0`` photos:
``images/<id>.jpg`` (decoded, resized to 256x256 if needed, re-encoded at JPEG quality 95),
``masks/<id>.png`` (255 = object), ``index.csv`` (``id, object_name, mask_area, split``) and
``train.txt``/``test.txt``: an id is in the test split when ``sha1(id) % 5 == 0`` -- the
rule that reproduces the shared copy's split exactly (1,612 / 387 ids).

Safety: the download streams into a temporary file next to the destination; a short read
(fewer bytes than the server's ``Content-Length``) or a SHA-256 different from ``--sha256``
is an error and the temporary file is removed. The converted tree is written into a
temporary directory and renamed into place only after it has been verified (every photo
decodes at 256x256, every mask is non-empty and matches, the split lists cover the index).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import RharmInputError
from ..outputs import check_output_dir, publish_dir
from ..paths import cache_root
from .imageio import decode_rgb

__all__ = [
    "LALONDE_URL",
    "LALONDE_EXPECTED_COUNT",
    "download",
    "convert_lalonde",
    "check_lalonde_out",
    "fetch_lalonde",
    "lalonde_split",
]

LALONDE_URL = "https://github.com/bcmi/Image-Harmonization-Dataset-iHarmony4/archive/HEAD.zip"
#: real photographs in the upstream folder (the shared copy's count)
LALONDE_EXPECTED_COUNT = 1999
_ONLINE_DB = "Lalonde and Efros/onlineDb/"
_SIZE = 256
_CHUNK = 1 << 20


def lalonde_split(photo_id: str) -> str:
    """``"test"`` when ``sha1(id) % 5 == 0``, else ``"train"`` (the fixed split)."""
    return "test" if int(hashlib.sha1(photo_id.encode()).hexdigest(), 16) % 5 == 0 else "train"


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through a temporary file; verify length and checksum.

    Args:
        url: ``http(s)://`` or ``file://`` URL.
        dest: the file to create.
        sha256: expected hex digest; ``None`` skips the check.
        timeout: socket timeout in seconds.
        progress: called with ``(bytes so far, total or None)`` after each chunk.

    Returns:
        ``dest``. On any failure nothing is left at ``dest`` or in its temporary file.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    h = hashlib.sha256()
    got = 0
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, os.fdopen(fd, "wb") as f:
                length = resp.headers.get("Content-Length")
                total = int(length) if length is not None else None
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
                    if progress:
                        progress(got, total)
        except (urllib.error.URLError, HTTPException, OSError, TimeoutError) as exc:
            raise RharmInputError(
                f"download of {url} failed after {got} bytes: {exc}; nothing was kept"
            ) from exc
        if total is not None and got != total:
            raise RharmInputError(
                f"download of {url} is truncated: got {got} of {total} bytes; nothing was kept"
            )
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            raise RharmInputError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest}; "
                "nothing was kept"
            )
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _parse_annotation(text: str, where: str) -> tuple[int, str, str]:
    """``(generated, object name, mask file relative to Annotation/)`` of one record."""
    # the records have several top-level elements: wrap them in one root
    body = re.sub(r"<\?xml[^>]*\?>", "", text)
    try:
        root = ET.fromstring(f"<root>{body}</root>")
    except ET.ParseError as exc:
        raise RharmInputError(f"{where}: cannot parse the annotation: {exc}") from exc
    gen = root.findtext("image/generated")
    mask = root.findtext("object/masks/filename")
    if gen is None or mask is None:
        raise RharmInputError(f"{where}: no <image><generated> or <object><masks><filename>")
    name = (root.findtext("object/name") or "").strip()
    return int(gen.strip()), name, mask.strip()


def _load_objmask(data: bytes, where: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        mat = loadmat(io.BytesIO(data))
    except (ValueError, NotImplementedError, OSError) as exc:
        raise RharmInputError(f"{where}: cannot read the MATLAB file: {exc}") from exc
    if "objMask" not in mat:
        raise RharmInputError(f"{where}: no 'objMask' in the MATLAB file")
    return (np.asarray(mat["objMask"]) > 0).astype(np.uint8)


#: the top-level names of a converted lalonde folder written before manifests existed
_LEGACY = ("images", "masks", "index.csv", "train.txt", "test.txt")


def check_lalonde_out(out: str | os.PathLike) -> Path:
    """Check, before any download, that a lalonde folder can be written at ``out``
    (:func:`rharm_lib.outputs.check_output_dir`): an existing folder is replaced only when
    it holds nothing but a conversion rharm wrote, never other files."""
    return check_output_dir(out, overwrite=True, legacy=_LEGACY)


def convert_lalonde(archive: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Convert the upstream archive (a ZIP containing ``.../Lalonde and Efros/onlineDb/``).

    Args:
        archive: the ZIP file.
        out: the directory to create (lalonde layout; see the module docstring).

    Returns:
        ``out``, written atomically.
    """
    out = Path(out)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise RharmInputError(f"{archive} is not a ZIP archive: {exc}") from exc
    with zf:
        names = zf.namelist()
        prefix = next((n[: n.index(_ONLINE_DB)] for n in names if _ONLINE_DB in n), None)
        if prefix is None:
            raise RharmInputError(f"{archive}: no '{_ONLINE_DB}' folder in the archive")
        base = prefix + _ONLINE_DB
        members = set(names)
        ann = sorted(
            n
            for n in names
            if n.startswith(base + "Annotation/")
            and n.endswith(".xml")
            and n.count("/") == base.count("/") + 1
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            (tmp / "images").mkdir()
            (tmp / "masks").mkdir()
            rows = []
            for a in ann:
                pid = Path(a).stem
                gen, obj, mask_rel = _parse_annotation(zf.read(a).decode("utf-8", "replace"), a)
                if gen != 0:
                    continue
                img_m = base + f"Images/{pid}.jpg"
                mask_m = base + "Annotation/" + mask_rel
                for m in (img_m, mask_m):
                    if m not in members:
                        raise RharmInputError(f"{archive}: {a} refers to missing {m}")
                image = decode_rgb(zf.read(img_m), f"{archive}: {img_m}")
                mask = _load_objmask(zf.read(mask_m), mask_m)
                if mask.shape != image.shape[:2]:
                    raise RharmInputError(
                        f"{mask_m}: mask {mask.shape} does not match image {image.shape[:2]}"
                    )
                if image.shape[:2] != (_SIZE, _SIZE):
                    image = np.asarray(Image.fromarray(image).resize((_SIZE, _SIZE), Image.BICUBIC))
                    mask = (
                        np.asarray(
                            Image.fromarray(mask * 255).resize((_SIZE, _SIZE), Image.NEAREST)
                        )
                        > 127
                    )
                    mask = mask.astype(np.uint8)
                if not mask.any():
                    raise RharmInputError(f"{mask_m}: empty object mask")
                Image.fromarray(image).save(tmp / "images" / f"{pid}.jpg", quality=95)
                Image.fromarray(mask * 255).save(tmp / "masks" / f"{pid}.png")
                rows.append((pid, obj, round(float(mask.mean()), 4), lalonde_split(pid)))
            if not rows:
                raise RharmInputError(f"{archive}: no real (generated=0) photographs found")
            with open(tmp / "index.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["id", "object_name", "mask_area", "split"])
                w.writerows(rows)
            for split in ("train", "test"):
                ids = [r[0] for r in rows if r[3] == split]
                (tmp / f"{split}.txt").write_text("".join(i + "\n" for i in ids))
            _verify(tmp, len(rows))
            check_lalonde_out(out)  # again: the folder may have changed during the conversion
            publish_dir(tmp, out, "rharm data fetch lalonde", legacy=_LEGACY)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def _verify(root: Path, n: int) -> None:
    """Re-read the converted tree: every listed photo decodes at 256x256 with a valid mask."""
    ids = []
    for split in ("train", "test"):
        ids += [x for x in (root / f"{split}.txt").read_text().split() if x]
    if len(ids) != n or len(set(ids)) != n:
        raise RharmInputError(f"conversion check failed: {len(ids)} listed ids for {n} photos")
    for pid in ids:
        with Image.open(root / "images" / f"{pid}.jpg") as im:
            if im.size != (_SIZE, _SIZE):
                raise RharmInputError(f"conversion check failed: {pid}.jpg is {im.size}")
        with Image.open(root / "masks" / f"{pid}.png") as im:
            m = np.asarray(im)
            if m.shape != (_SIZE, _SIZE) or not (m > 127).any():
                raise RharmInputError(f"conversion check failed: bad mask {pid}.png")


def fetch_lalonde(
    out: str | os.PathLike | None = None,
    url: str = LALONDE_URL,
    sha256: str | None = None,
    expect_count: int | None = None,
    keep_archive: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download and convert the lalonde photos.

    Args:
        out: destination directory; default ``cache_root()/data/lalonde``, where
            :func:`rharm_lib.paths.data_root` looks when nothing else is configured.
        url: the archive's URL (tests point it at a local server).
        sha256: expected SHA-256 of the archive (``None``: not checked; the conversion is
            still verified).
        expect_count: expected number of real photos (the default URL expects
            :data:`LALONDE_EXPECTED_COUNT`).
        keep_archive: keep the downloaded ZIP next to ``out``.
        progress: download progress callback ``(bytes, total)``.

    Returns:
        ``out``.
    """
    out = Path(out) if out is not None else cache_root() / "data" / "lalonde"
    check_lalonde_out(out)
    if expect_count is None and url == LALONDE_URL:
        expect_count = LALONDE_EXPECTED_COUNT
    archive = out.parent / f".{out.name}-upstream.zip"
    download(url, archive, sha256=sha256, progress=progress)
    try:
        convert_lalonde(archive, out)
    finally:
        if not keep_archive:
            archive.unlink(missing_ok=True)
    if expect_count is not None:
        n = sum(1 for _ in (out / "images").glob("*.jpg"))
        if n != expect_count:
            shutil.rmtree(out, ignore_errors=True)
            raise RharmInputError(
                f"expected {expect_count} real photographs upstream, converted {n}; removed {out}"
            )
    return out
