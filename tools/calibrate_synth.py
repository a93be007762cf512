"""Calibration of the composite synthesis against iHarmony4's input-composite scores.

Synthesises every photo of a split once per family (exactly as ``rharm data synth`` does,
without writing files) and prints the input composite's MSE / PSNR / fMSE per family and
"All" next to iHarmony4's test-set numbers, by the paper's conventions at 256x256: MSE over
H*W*3 on 0..255, PSNR = 10 log10(255^2 / MSE) per image then averaged,
fMSE = sum(m (p-t)^2) / (3 sum(m)); "All" pools every composite.

    .venv/bin/python tools/calibrate_synth.py --photos ../shared/data/lalonde --split test
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from rharm_lib.data.benchmark import make_composites
from rharm_lib.data.photos import load_photos
from rharm_lib.data.synth import FAMILIES, SynthConfig

#: iHarmony4 test set, input composite (DoveNet, CVPR 2020, Table 1); "All" as the brief gives it
IHARMONY4 = {
    "transfer": ("HCOCO", 69.37, 33.94, 996.59),
    "histogram": ("HFlickr", 264.35, 28.32, 1574.37),
    "retouch": ("HAdobe5k", 345.54, 28.16, 2051.61),
    "relight": ("Hday2night", 109.65, 34.01, 1409.98),
    "all": ("All", 170.25, 31.70, 1376.42),
}


def metrics(comp: np.ndarray, real: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-image (MSE, PSNR, fMSE) of uint8 (N,3,H,W) images, (N,1,H,W) masks."""
    d2 = (comp.astype(np.float64) - real.astype(np.float64)) ** 2
    mse = d2.mean(axis=(1, 2, 3))
    psnr = 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))
    m = mask.astype(np.float64)
    fmse = (d2 * m).sum(axis=(1, 2, 3)) / np.maximum(3 * m.sum(axis=(1, 2, 3)), 1)
    return np.stack([mse, psnr, fmse], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="../shared/data/lalonde")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], help="override SynthConfig fields: k=v")
    args = ap.parse_args()
    cfg = SynthConfig()
    for kv in args.set:
        k, v = kv.split("=", 1)
        cfg = dataclasses.replace(cfg, **{k: eval(v)})  # noqa: S307 (a developer's tool)
    photos = load_photos(args.photos, args.split)
    real, mask = photos.images.numpy(), photos.masks.numpy()
    rows, allm = [], []
    t0 = time.perf_counter()
    for fam in FAMILIES:
        comp, _ = make_composites(photos, fam, args.seed, cfg)
        m = metrics(comp.numpy(), real, mask)
        allm.append(m)
        rows.append((fam, m))
    dt = time.perf_counter() - t0
    rows.append(("all", np.concatenate(allm)))
    print(f"{len(photos)} photos x {len(FAMILIES)} families, seed {args.seed}, 256x256")
    print(
        "| family | ours MSE | PSNR | fMSE | median fMSE | iHarmony4 subset | MSE | PSNR | fMSE |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for fam, m in rows:
        ref = IHARMONY4[fam]
        print(
            f"| {fam} | {m[:, 0].mean():.2f} | {m[:, 1].mean():.2f} | {m[:, 2].mean():.2f} | "
            f"{np.median(m[:, 2]):.1f} | {ref[0]} | {ref[1]:.2f} | {ref[2]:.2f} | {ref[3]:.2f} |"
        )
    a = rows[-1][1]
    ra = IHARMONY4["all"]
    print(
        f"All vs iHarmony4: MSE {100 * (a[:, 0].mean() / ra[1] - 1):+.1f} %, "
        f"PSNR {a[:, 1].mean() - ra[2]:+.2f} dB, fMSE {100 * (a[:, 2].mean() / ra[3] - 1):+.1f} %"
    )
    print(f"synthesis: {a.shape[0] / dt:.1f} composites/s (CPU, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
