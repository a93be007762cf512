"""Seed-to-seed spread of a profile's trained model: where ``StudyProfile.check_rtol`` comes from.

Trains (or reuses) the profile's study run for each seed, evaluates each on the profile's
benchmark with the Table II/III protocol (``--working-size N``: the network in the fast
mode at long side N, its colour change lifted to the evaluation size), and prints, per
metric of the All row, the mean, the sample sd and the largest relative deviation of a
seed from the mean. ``rharm study --check`` compares a regenerated model row with the
committed one; two independent runs differ by up to about twice the largest deviation from
the mean, which is what the profile's ``check_rtol`` is set from (docs/study.md)::

    python tools/seed_spread.py --profile ci --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import tempfile

import pandas as pd

from rharm_lib.study import methods, sources, stats
from rharm_lib.study.profiles import get_profile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--working-size", type=int, default=None)
    a = ap.parse_args()
    P = get_profile(a.profile)
    seeds = [int(s) for s in a.seeds.split(",")]
    ckpts = {s: sources.train_study_run(P, s, P.device, progress=False).checkpoint for s in seeds}
    bench = sources.benchmark_dataset(P.benchmark, limit=P.max_eval_images)
    with tempfile.TemporaryDirectory() as tmp:
        table, _, _ = methods.seeded_benchmark(
            bench,
            ckpts,
            P.device,
            "ours",
            tmp,
            P.eval_size,
            working_size=a.working_size,
        )
    rows = table[table["method"].str.startswith("ours seed") & (table["subset"] == "All")]
    every = table[(table["subset"] == "All") & ~table["method"].isin(["ours"])]
    print(every[["method", *stats.METRICS]].to_string(index=False))
    out = []
    for m in stats.METRICS:
        v = rows[m].astype(float)
        dev = ((v - v.mean()).abs() / v.mean().__abs__()).max()
        out.append({"metric": m, "mean": v.mean(), "sd": v.std(ddof=1), "max_rel_dev": dev})
    print(pd.DataFrame(out).to_string(index=False))
    worst = max(r["max_rel_dev"] for r in out)
    print(f"largest relative deviation from the seed mean: {worst:.4f}; "
          f"two runs differ by up to ~{2 * worst:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
