"""Test helpers: small iHarmony4-, DIH99- and RealHM-layout datasets written on the fly, and a
16-bit PNG writer (Pillow cannot write 16-bit RGB)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

#: the fixture's image size (W x H = 300 x 200: not square, not 256)
H, W = 200, 300


def write_png16(path: Path, arr: np.ndarray) -> None:
    """Write a 16-bit grayscale ``(H,W)`` or RGB ``(H,W,3)`` PNG with the standard library."""
    a = np.asarray(arr, dtype=">u2")
    h, w = a.shape[:2]
    color_type = 2 if a.ndim == 3 else 0

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_pair(rng: np.random.Generator, h: int = H, w: int = W, shift: int = 40):
    """A smooth random real image, a rectangular mask and a composite whose foreground is
    shifted by ``shift`` levels: ``(real (h,w,3) uint8, mask (h,w) uint8 {0,255}, composite)``."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([120 + 80 * np.sin(3 * xx + c) * np.cos(2 * yy - c) for c in range(3)], -1)
    real = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    y0, x0 = int(rng.integers(h // 8, h // 3)), int(rng.integers(w // 8, w // 3))
    mask[y0 : y0 + h // 3, x0 : x0 + w // 3] = 255
    comp = real.copy()
    fg = mask > 0
    comp[fg] = np.clip(comp[fg].astype(int) + np.array([shift, -shift // 2, shift // 3]), 0, 255)
    return real, mask, comp


def write_ihd(
    root: Path,
    subsets: dict[str, int] | None = None,
    split: str = "test",
    root_list: bool = True,
    subset_lists: bool = True,
    seed: int = 0,
    ext: str = ".jpg",
) -> list[str]:
    """Write an iHarmony4-layout dataset; returns the root list's lines.

    Names: ``<real>_<maskid>_<compid>.jpg`` with ``<real>`` = ``<letter>NNNN`` and mask id 1,
    composite id 2 (the first subset's first real image also has a second mask/composite).
    """
    rng = np.random.default_rng(seed)
    subsets = subsets or {"HCOCO": 3, "HFlickr": 2}
    lines: list[str] = []
    for sub, count in subsets.items():
        d = root / sub
        for part in ("composite_images", "masks", "real_images"):
            (d / part).mkdir(parents=True, exist_ok=True)
        names = []
        for k in range(count):
            real, mask, comp = make_pair(rng)
            r = f"{sub[1].lower()}{k:04d}"
            Image.fromarray(real).save(d / "real_images" / f"{r}{ext}", quality=95)
            Image.fromarray(mask).save(d / "masks" / f"{r}_1.png")
            Image.fromarray(comp).save(d / "composite_images" / f"{r}_1_2{ext}", quality=95)
            names.append(f"{r}_1_2{ext}")
        lines += [f"{sub}/composite_images/{n}" for n in names]
        if subset_lists:
            (d / f"{sub}_{split}.txt").write_text("\n".join(names) + "\n")
    if root_list:
        (root / f"IHD_{split}.txt").write_text("\n".join(lines) + "\n")
    return lines


def write_dih(
    root: Path, n: int = 3, with_target: bool = False, list_file: bool = True
) -> list[str]:
    """Write a DIH99-layout folder (``with_target``: also ``real_images/``, RealHM style)."""
    rng = np.random.default_rng(1)
    for part in ("composite_images", "masks") + (("real_images",) if with_target else ()):
        (root / part).mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(n):
        real, mask, comp = make_pair(rng, 64 + 8 * k, 96)
        name = f"dih_test{k}"
        Image.fromarray(comp).save(root / "composite_images" / f"{name}.jpg", quality=95)
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
        if with_target:
            Image.fromarray(real).save(root / "real_images" / f"{name}.png")
        names.append(name)
    if list_file:
        (root / "list.txt").write_text("\n".join(names) + "\n")
    return names
