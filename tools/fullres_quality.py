"""Fast / tiled modes against native mode on the high-resolution composites (issue 11).

    rharm train --config ci --data lalonde --steps 300 --out /tmp/fr_ci --threads 1 \\
        --no-progress --eval-data none
    nice -n 15 .venv/bin/python tools/fullres_quality.py --checkpoint /tmp/fr_ci/checkpoints/last.pt \\
        --photos 6 --size 2048 --set lifts --threads 2 --out /tmp/fr_quality

Composites: the first ``--photos`` photos of ``data_root()/highres`` with their region masks,
synthesised at long side ``--size`` exactly as notebook 04 does
(:func:`rharm_lib.study.sources.highres_composites`). Prints the summary of
:func:`rharm_lib.bench_infer.summarize_quality` as Markdown and writes ``per_image.csv`` and
``summary.csv`` into ``--out``. ``--set``: ``lifts`` (working sizes, lifts, window radius
and ridge weight of fast mode), ``tiled`` (statistics of tiled mode) or ``default``
(:data:`rharm_lib.bench_infer.DEFAULT_VARIANTS`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rharm_lib.bench_infer import DEFAULT_VARIANTS, quality_table, summarize_quality
from rharm_lib.inference import Harmonizer
from rharm_lib.study.sources import highres_composites, highres_photos

SETS = {
    "default": DEFAULT_VARIANTS,
    "lifts": {
        **{f"local@{ws}": {"mode": "fast", "working_size": ws} for ws in (256, 512, 1024)},
        "global_affine@512": {"mode": "fast", "lift": "global_affine"},
        "offset@512": {"mode": "fast", "lift": "offset"},
        "local@512 r2": {"mode": "fast", "radius": 2},
        "local@512 r8": {"mode": "fast", "radius": 8},
        "local@512 eps1e-4": {"mode": "fast", "eps": 1e-4},
        "local@512 eps1e-2": {"mode": "fast", "eps": 1e-2},
    },
    "tiled": {
        "tiled global@512": {"mode": "tiled", "stats": "global", "working_size": 512},
        "tiled global@1024": {"mode": "tiled", "stats": "global", "working_size": 1024},
        "tiled tile": {"mode": "tiled", "stats": "tile"},
    },
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--photos", type=int, default=6)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--set", choices=sorted(SETS), default="default")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    photos = highres_photos("highres", args.photos, seed=0)
    samples = highres_composites(photos, args.size, seed=0)
    h = Harmonizer.from_checkpoint(args.checkpoint)
    per = quality_table(samples, h, SETS[args.set])
    summ = summarize_quality(per)
    print(summ.round(4).to_string(index=False))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        per.to_csv(args.out / "per_image.csv", index=False)
        summ.to_csv(args.out / "summary.csv", index=False)


if __name__ == "__main__":
    main()
