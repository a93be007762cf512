"""Calibration of the composite synthesis against iHarmony4's input composites.

A thin wrapper over :mod:`rharm_lib.calibration` (the metrics are
:func:`rharm_lib.metrics.image_metrics`, the iHarmony4 targets :mod:`rharm_lib.data.ihd_stats`)
for trying configurations: synthesises every photo of a split once per family exactly as
``rharm data synth`` does, without writing files, and prints the calibration report
(``rharm data calibrate`` prints the same for the default configuration).

    .venv/bin/python tools/calibrate_synth.py --photos ../shared/data/lalonde --split test \\
        --set amplify_max=6.0 --mask-set bins=10
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import time

from rharm_lib.calibration import (
    calibration_markdown,
    calibration_report,
    composite_statistics,
    mean_check,
)
from rharm_lib.data.mask_rule import MaskRuleConfig
from rharm_lib.data.photos import load_photos
from rharm_lib.data.synth import SynthConfig


def _override(cfg, pairs: list[str]):
    for kv in pairs:
        k, v = kv.split("=", 1)
        cfg = dataclasses.replace(cfg, **{k: ast.literal_eval(v)})
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="../shared/data/lalonde")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], help="override SynthConfig fields: k=v")
    ap.add_argument("--mask-set", nargs="*", default=[], help="override MaskRuleConfig: k=v")
    ap.add_argument("--per-image", default=None, help="write the per-image CSV here")
    args = ap.parse_args()
    cfg = _override(SynthConfig(), args.set)
    mask_cfg = _override(MaskRuleConfig(), args.mask_set)
    photos = load_photos(args.photos, args.split)
    t0 = time.perf_counter()
    stats = composite_statistics(photos, args.seed, cfg=cfg, mask_cfg=mask_cfg)
    dt = time.perf_counter() - t0
    if args.per_image:
        stats.to_csv(args.per_image, index=False)
    print(f"{len(stats)} composites, seed {args.seed}, {photos.size}x{photos.size}, {dt:.1f} s")
    print(calibration_markdown(calibration_report(stats), mean_check(stats)))


if __name__ == "__main__":
    main()
