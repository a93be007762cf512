"""Draw the built-in photos' foreground masks (hand-placed polygons and ellipses).

Writes ``rharm_lib/assets/builtin/<photo>_<k>.png`` (256x256, 255 = object) and a contact
sheet ``figures/builtin_masks_contact_sheet.png`` to check them by eye:

    .venv/bin/python tools/make_builtin_masks.py

Coordinates are ``(x, y)`` pixels of the photo's 256x256 square crop
(:data:`rharm_lib.data.builtin.BUILTIN_PHOTOS`), read off a gridded view of each crop.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage.draw import ellipse, polygon  # noqa: E402

from rharm_lib.data.builtin import BUILTIN_PHOTOS, MASK_SIZE, builtin_image  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "rharm_lib" / "assets" / "builtin"

# ("poly", [(x, y), ...]) or ("ellipse", (cx, cy, rx, ry))
SHAPES: dict[str, list[tuple[str, object]]] = {
    "astronaut": [
        (
            "poly",
            [
                (96, 40),
                (110, 20),
                (130, 12),
                (152, 18),
                (165, 35),
                (170, 60),
                (165, 85),
                (180, 100),
                (200, 110),
                (210, 125),
                (215, 145),
                (212, 170),
                (180, 180),
                (160, 200),
                (150, 256),
                (20, 256),
                (10, 200),
                (15, 160),
                (40, 120),
                (65, 110),
                (75, 95),
                (95, 85),
                (100, 70),
            ],
        ),
        ("ellipse", (200, 222, 56, 48)),
        (
            "poly",
            [
                (205, 2),
                (222, 2),
                (228, 40),
                (240, 50),
                (245, 110),
                (252, 140),
                (230, 140),
                (222, 125),
                (215, 125),
                (200, 120),
                (180, 120),
                (185, 100),
                (195, 95),
                (200, 50),
            ],
        ),
    ],
    "chelsea": [
        ("ellipse", (87, 102, 37, 31)),
        ("ellipse", (215, 108, 30, 27)),
        (
            "poly",
            [(150, 200), (170, 195), (190, 205), (185, 220), (170, 235), (160, 225), (148, 212)],
        ),
    ],
    "rocket": [
        ("poly", [(120, 95), (123, 82), (128, 76), (133, 82), (136, 95), (134, 232), (122, 232)]),
        ("poly", [(0, 0), (256, 0), (256, 66), (0, 66)]),
        (
            "poly",
            [(40, 225), (50, 130), (52, 118), (55, 76), (58, 76), (60, 118), (65, 130), (68, 225)],
        ),
    ],
    "motorcycle": [
        (
            "poly",
            [
                (0, 120),
                (10, 90),
                (30, 85),
                (60, 85),
                (100, 100),
                (130, 95),
                (160, 75),
                (195, 50),
                (210, 50),
                (230, 70),
                (225, 100),
                (235, 130),
                (256, 135),
                (256, 210),
                (245, 225),
                (220, 220),
                (200, 190),
                (185, 175),
                (165, 190),
                (140, 195),
                (115, 175),
                (95, 180),
                (80, 190),
                (60, 205),
                (30, 210),
                (10, 200),
                (0, 190),
            ],
        ),
        (
            "poly",
            [
                (95, 128),
                (115, 120),
                (140, 105),
                (170, 95),
                (190, 100),
                (190, 115),
                (150, 130),
                (130, 140),
                (110, 142),
            ],
        ),
        ("poly", [(200, 14), (240, 14), (240, 52), (200, 52)]),
    ],
    "retina": [
        ("ellipse", (38, 120, 17, 19)),
        ("ellipse", (131, 127, 24, 24)),
    ],
    "coffee": [
        (
            "poly",
            [
                (60, 35),
                (80, 18),
                (125, 12),
                (170, 15),
                (190, 25),
                (195, 50),
                (190, 100),
                (175, 150),
                (170, 175),
                (150, 185),
                (120, 190),
                (90, 185),
                (80, 178),
                (68, 185),
                (58, 178),
                (60, 150),
                (70, 140),
                (60, 100),
            ],
        ),
        (
            "poly",
            [
                (168, 150),
                (178, 140),
                (182, 120),
                (190, 70),
                (200, 45),
                (208, 40),
                (208, 55),
                (195, 110),
                (185, 150),
                (195, 165),
                (195, 185),
                (180, 195),
                (165, 190),
                (158, 175),
                (160, 160),
            ],
        ),
    ],
    "grace_hopper": [
        (
            "poly",
            [
                (75, 40),
                (90, 10),
                (140, 2),
                (175, 10),
                (190, 30),
                (185, 70),
                (180, 100),
                (170, 130),
                (205, 150),
                (230, 175),
                (245, 220),
                (256, 256),
                (5, 256),
                (15, 200),
                (40, 165),
                (75, 145),
                (85, 130),
                (70, 100),
                (68, 70),
            ],
        ),
        ("ellipse", (132, 100, 45, 50)),
        ("poly", [(0, 0), (75, 0), (75, 60), (70, 130), (45, 160), (20, 190), (0, 200)]),
    ],
}


def rasterize(shape: tuple[str, object], size: int = MASK_SIZE) -> np.ndarray:
    """One shape as a (size,size) uint8 {0,1} mask."""
    kind, spec = shape
    m = np.zeros((size, size), np.uint8)
    if kind == "poly":
        xy = np.asarray(spec, dtype=float)
        rr, cc = polygon(xy[:, 1], xy[:, 0], shape=m.shape)
    else:
        cx, cy, rx, ry = spec
        rr, cc = ellipse(cy, cx, ry, rx, shape=m.shape)
    m[rr, cc] = 1
    return m


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tiles = []
    for name, photo in BUILTIN_PHOTOS.items():
        shapes = SHAPES[name]
        assert len(shapes) == photo.n_masks, (name, len(shapes), photo.n_masks)
        im = builtin_image(name, MASK_SIZE)
        for k, shape in enumerate(shapes, start=1):
            m = rasterize(shape)
            (OUT / f"{name}_{k}.png").write_bytes(png_bytes(m * 255))
            tiles.append((f"{name}_{k} ({photo.split}) {m.mean():.0%}", im, m))
    cols = 6
    rows = -(-len(tiles) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows))
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, im, m) in zip(axes.flat, tiles, strict=False):
        over = im.astype(float) / 255
        over[m == 0] *= 0.35  # dim the background so the object stands out
        ax.imshow(over)
        ax.contour(m, levels=[0.5], colors="yellow", linewidths=1)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    sheet = ROOT / "figures" / "builtin_masks_contact_sheet.png"
    sheet.parent.mkdir(exist_ok=True)
    fig.savefig(sheet, dpi=60)
    print(f"wrote {len(tiles)} masks to {OUT} and {sheet}")


if __name__ == "__main__":
    main()
