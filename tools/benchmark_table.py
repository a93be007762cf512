"""Markdown tables for docs/benchmark.md from ``rharm evaluate`` result folders.

    rharm data synth --photos lalonde --split test --seed 0 --out B
    for m in composite reinhard histmatch; do
        rharm evaluate --data B --method $m --out E/$m; done
    .venv/bin/python tools/benchmark_table.py E/composite E/reinhard E/histmatch

The first folder (the input composite) is compared with iHarmony4's test set per family;
all folders together give the baseline table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

#: iHarmony4 test set, input composite: DoveNet (CVPR 2020) Table 1; "All" as the brief gives it
IHARMONY4 = {
    "Transfer": ("HCOCO", 69.37, 33.94, 996.59),
    "Histogram": ("HFlickr", 264.35, 28.32, 1574.37),
    "Retouch": ("HAdobe5k", 345.54, 28.16, 2051.61),
    "Relight": ("Hday2night", 109.65, 34.01, 1409.98),
    "All": ("All", 170.25, 31.70, 1376.42),
}


def main(folders: list[str]) -> None:
    tabs = {Path(f).name: pd.read_csv(Path(f) / "summary.csv").set_index("subset") for f in folders}
    first = next(iter(tabs.values()))
    print(
        "| family (ours) | n | MSE | PSNR | fMSE | iHarmony4 | MSE | PSNR | fMSE | ΔMSE | ΔPSNR | ΔfMSE |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for s, r in first.iterrows():
        ih = IHARMONY4[s]
        print(
            f"| {s} | {int(r['n'])} | {r['mse']:.2f} | {r['psnr']:.2f} | {r['fmse']:.2f} | {ih[0]} | "
            f"{ih[1]:.2f} | {ih[2]:.2f} | {ih[3]:.2f} | {100 * (r['mse'] / ih[1] - 1):+.0f} % | "
            f"{r['psnr'] - ih[2]:+.2f} dB | {100 * (r['fmse'] / ih[3] - 1):+.0f} % |"
        )
    print()
    subs = [s for s in first.index if s != "All"]
    print(
        "| method | "
        + " | ".join(f"{s} fMSE" for s in subs)
        + " | All MSE | All PSNR | All fMSE | All fSSIM |"
    )
    print("|---|" + "---:|" * (len(subs) + 4))
    for name, t in tabs.items():
        cells = [f"{t.loc[s, 'fmse']:.1f}" for s in subs]
        a = t.loc["All"]
        print(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {a['mse']:.2f} | {a['psnr']:.2f} | {a['fmse']:.1f} | {a['fssim']:.4f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
