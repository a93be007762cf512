"""Per-image percentiles of iHarmony4's input composites -> rharm_lib/assets/ihd/.

Reads PCT-Net's published per-image evaluation of the *input composite* on the iHarmony4 test
set (``evaluation/evaluation_composite.csv`` of rakutentech/PCT-Net-Image-Harmonization,
MPL-2.0; 7,404 rows ``Name,MSE,PSNR,fMSE,SE,SSIM,height,width,mask_area``, metrics at native
resolution, ``mask_area`` in pixels) and writes the percentiles 0, 1, ..., 100 (numpy's linear
interpolation) of input fMSE, MSE and the foreground fraction ``mask_area / (height * width)``
per subset (``a``/``c``/``d``/``f`` name prefix = HAdobe5k/HCOCO/Hday2night/HFlickr) and All,
plus the per-subset counts and means. Only these summaries are committed, not the file.

    git -C <PCT-Net clone> show HEAD:evaluation/evaluation_composite.csv > composite.csv
    .venv/bin/python tools/ihd_percentiles.py composite.csv
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "rharm_lib" / "assets" / "ihd"
PREFIX = {"c": "HCOCO", "a": "HAdobe5k", "f": "HFlickr", "d": "Hday2night"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", help="PCT-Net's evaluation/evaluation_composite.csv")
    ap.add_argument("--commit", default="1572176ed1a72217dad7395391615329b98d30c7")
    args = ap.parse_args()
    raw = Path(args.csv).read_bytes()
    d = pd.read_csv(args.csv)
    d["subset"] = d["Name"].str[0].map(PREFIX)
    if d["subset"].isna().any():
        raise SystemExit("unexpected name prefix in the CSV")
    d["fg_fraction"] = d["mask_area"] / (d["height"] * d["width"])
    d = d.rename(columns={"fMSE": "fmse", "MSE": "mse", "PSNR": "psnr"})
    levels = np.arange(101)
    rows, summary = [], {}
    for sub in ["All", *PREFIX.values()]:
        s = d if sub == "All" else d[d["subset"] == sub]
        summary[sub] = {
            "n": int(len(s)),
            **{k: float(s[k].mean()) for k in ("mse", "psnr", "fmse")},
        }
        for metric in ("fmse", "mse", "fg_fraction"):
            q = np.percentile(s[metric].to_numpy(np.float64), levels)
            rows += [(sub, metric, int(p), float(v)) for p, v in zip(levels, q, strict=True)]
    OUT.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["subset", "metric", "percent", "value"]).to_csv(
        OUT / "ihd_test_input_percentiles.csv", index=False, float_format="%.6g"
    )
    meta = {
        "source": "rakutentech/PCT-Net-Image-Harmonization, evaluation/evaluation_composite.csv",
        "commit": args.commit,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "licence": "MPL-2.0 (the source repository)",
        "percentiles": "numpy.percentile(..., 0..100), linear",
        "summary": summary,
    }
    (OUT / "ihd_test_input_percentiles.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
