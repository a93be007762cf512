"""Contact sheet of region masks on the high-resolution photos (the Table IV masks).

    .venv/bin/python tools/region_contact_sheet.py [--data DATA_ROOT] [--seed 0]

Runs :func:`rharm_lib.data.regions.region_mask` on every ``highres/*.jpg`` at full
resolution with seed ``seed + i`` for the i-th photo (sorted by name) and writes ``figures/region_masks_contact_sheet.png`` (each photo
with its region outlined and the background dimmed, titled with the region's area).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from rharm_lib.data.regions import region_mask  # noqa: E402
from rharm_lib.paths import REPO_ROOT, data_root  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO_ROOT / "figures" / "region_masks_contact_sheet.png"))
    args = ap.parse_args()
    paths = sorted((data_root(args.data) / "highres").glob("*.jpg"))
    cols = 8
    rows = -(-len(paths) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.0 * rows))
    for ax in axes.flat:
        ax.axis("off")
    t0 = time.perf_counter()
    areas = []
    for i, (ax, p) in enumerate(zip(axes.flat, paths, strict=False)):
        with Image.open(p) as im:
            image = np.asarray(im.convert("RGB"))
        m = region_mask(image, seed=args.seed + i)
        areas.append(m.mean())
        thumb = np.asarray(
            Image.fromarray(image).resize((256, 256 * image.shape[0] // image.shape[1]))
        )
        mt = np.asarray(Image.fromarray(m * 255).resize(thumb.shape[1::-1])) > 127
        over = thumb.astype(float) / 255
        over[~mt] *= 0.3
        ax.imshow(over)
        ax.contour(mt, levels=[0.5], colors="yellow", linewidths=0.8)
        ax.set_title(f"{p.stem[:24]} {m.mean():.0%}", fontsize=6)
    dt = time.perf_counter() - t0
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(
        f"{len(paths)} photos, seeds {args.seed}+i: area min {min(areas):.3f} median "
        f"{np.median(areas):.3f} max {max(areas):.3f}; {dt / len(paths):.2f} s/photo "
        f"(load + mask); wrote {args.out}"
    )


if __name__ == "__main__":
    main()
