"""``rharm data``: make the benchmark, fetch and pack photos, measure synthesis speed.

Subcommands:

- ``rharm data synth --photos SRC --split test --seed 0 --out DIR``: the fixed benchmark in
  iHarmony4's layout (one subset per composite family), then its checksum;
- ``rharm data fetch lalonde [--url URL] [--sha256 HEX] [--out DIR]``: download and convert
  the upstream lalonde photos;
- ``rharm data pack --photos SRC --split train --out FILE``: a compact photo pack; prints its
  size and load time;
- ``rharm data bench-synth [--batch 32] [--size 256] [--device cpu]``: composites/s;
- ``rharm data checksum DIR``: the tree checksum recorded in ``docs/benchmark.md``;
- ``rharm data calibrate --photos SRC --split test --seed 0 [--json]``: the calibration
  report (per-image quantiles, KS distances and means against iHarmony4's input composites).

``SRC`` is ``builtin``, ``lalonde`` (the ``lalonde/`` folder under the data root: ``--data``,
``$RHARM_DATA`` or ``../shared/data``), a lalonde-layout directory, or a pack file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..data.benchmark import check_benchmark_out, tree_sha256, write_benchmark
from ..data.fetch import LALONDE_URL, fetch_lalonde
from ..data.pack import check_pack_out, read_pack, write_pack
from ..data.photos import load_photos
from ..data.resolve import resolve_data
from ..data.synth import FAMILIES, measure_throughput
from ..errors import RharmInputError
from ..provenance import device_name
from . import args as a

__all__ = ["register", "run", "resolve_photos"]


def resolve_photos(source: str, data: str | None = None) -> str:
    """The photo source ``--photos`` names (:func:`rharm_lib.data.resolve.resolve_data`,
    with ``--data`` as the data root of ``lalonde``), checked to be photos, not pairs."""
    spec = resolve_data(source, data)
    if spec.kind != "photos":
        raise RharmInputError(f"--photos {source}: an iHarmony4 root (pairs), not photos")
    return spec.location


def _synth(args: argparse.Namespace) -> int:

    check_benchmark_out(args.out, args.overwrite)  # before any photo is read
    src = resolve_photos(args.photos, args.data)
    fams = args.families or list(FAMILIES)
    t0 = time.perf_counter()
    photos = load_photos(src, args.split, args.size)
    out = write_benchmark(
        photos,
        args.out,
        seed=args.seed,
        families=fams,
        source=f"{args.photos}:{args.split}",
        overwrite=args.overwrite,
    )
    dt = time.perf_counter() - t0
    print(
        f"wrote {len(photos) * len(fams)} composites ({len(photos)} photos x {len(fams)} "
        f"families) to {out} in {dt:.1f} s"
    )
    print(f"sha256 {tree_sha256(out)}")
    return 0


def _fetch(args: argparse.Namespace) -> int:

    def progress(got: int, total: int | None) -> None:
        if args.quiet:
            return
        tot = f" / {total / 1e6:.1f}" if total else ""
        print(f"\rdownloading {got / 1e6:.1f}{tot} MB", end="", flush=True)

    out = fetch_lalonde(
        out=args.out,
        url=args.url or LALONDE_URL,
        sha256=args.sha256,
        keep_archive=args.keep_archive,
        progress=progress,
    )
    if not args.quiet:
        print()
    n = {s: len((out / f"{s}.txt").read_text().split()) for s in ("train", "test")}
    print(f"wrote {out}: {n['train']} train + {n['test']} test photos")
    return 0


def _pack(args: argparse.Namespace) -> int:

    check_pack_out(args.out)  # before any photo is read
    src = resolve_photos(args.photos, args.data)
    photos = load_photos(src, args.split, args.size)
    out = write_pack(photos, args.out, split=args.split, quality=args.quality, source=args.photos)
    t0 = time.perf_counter()
    back = read_pack(out, split=args.split)
    dt = time.perf_counter() - t0
    mb = out.stat().st_size / 1e6
    print(f"wrote {out}: {len(back)} photos, {mb:.1f} MB, loads in {dt:.2f} s")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    res = {"device": device_name(args.device), "batch": args.batch, "size": args.size}
    # a throw-away round first: the first calls in a process pay one-off allocations
    measure_throughput(args.batch, args.size, args.device, 1)
    res["mixed"] = measure_throughput(args.batch, args.size, args.device, args.iters)
    for fam in FAMILIES:
        res[fam] = measure_throughput(args.batch, args.size, args.device, args.iters, family=fam)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(
            f"composite synthesis at {args.size}x{args.size}, batch {args.batch}, {res['device']}"
        )
        for k in ["mixed", *FAMILIES]:
            print(f"  {k:10s} {res[k]:9.1f} composites/s")
    return 0


def _checksum(args: argparse.Namespace) -> int:

    if not Path(args.dir).is_dir():
        raise RharmInputError(f"{args.dir} is not a directory")
    print(tree_sha256(args.dir))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from ..calibration import (
        calibration_markdown,
        calibration_report,
        composite_statistics,
        mean_check,
    )
    from ..data.photos import load_photos
    from ..data.synth import FAMILIES

    src = resolve_photos(args.photos, args.data)
    t0 = time.perf_counter()
    photos = load_photos(src, args.split, args.size)
    stats = composite_statistics(photos, args.seed, args.families or list(FAMILIES))
    dt = time.perf_counter() - t0
    report, means = calibration_report(stats), mean_check(stats)
    if args.per_image:
        stats.to_csv(args.per_image, index=False)
    if args.json:
        print(
            json.dumps(
                {
                    "photos": f"{args.photos}:{args.split}",
                    "seed": args.seed,
                    "composites": len(stats),
                    "region_masks": int((stats["mask_kind"] == "region").sum()),
                    "seconds": round(dt, 1),
                    "report": report.to_dict(orient="records"),
                    "means": means.to_dict(orient="records"),
                },
                indent=2,
            )
        )
    else:
        print(
            f"{len(stats)} composites ({args.photos}:{args.split}, seed {args.seed}) in {dt:.1f} s"
        )
        print(calibration_markdown(report, means))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="benchmark synthesis, photo fetch/pack")
    sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    sub.required = True

    s = sub.add_parser("synth", help="write the fixed test benchmark (iHarmony4 layout)")
    s.add_argument("--photos", default="builtin", help="builtin | lalonde | DIR | PACK")
    s.add_argument("--data", default=None, help="data root (default $RHARM_DATA or ../shared/data)")
    s.add_argument("--split", default="test", choices=["train", "test"])
    s.add_argument("--seed", type=a.nonneg_int, default=0)
    s.add_argument("--size", type=a.image_side, default=256)
    s.add_argument("--families", nargs="*", default=None, help="default: all four")
    s.add_argument("--out", required=True)
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a benchmark rharm wrote (never other files)",
    )
    s.set_defaults(func=run, data_func=_synth)

    f = sub.add_parser("fetch", help="download and convert upstream photos")
    f.add_argument("dataset", choices=["lalonde"])
    f.add_argument("--url", default=None, help="archive URL (default: the upstream repository)")
    f.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    f.add_argument("--out", default=None, help="default: $RHARM_CACHE/data/lalonde")
    f.add_argument("--keep-archive", action="store_true")
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=run, data_func=_fetch)

    k = sub.add_parser("pack", help="write a compact photo pack (JPEG + bit-packed masks)")
    k.add_argument("--photos", default="lalonde", help="builtin | lalonde | DIR")
    k.add_argument("--data", default=None)
    k.add_argument("--split", default="train", choices=["train", "test"])
    k.add_argument("--size", type=a.image_side, default=256)
    k.add_argument("--quality", type=a.positive_int, default=85, help="JPEG quality 1..100")
    k.add_argument("--out", required=True, help="pack file (an existing file only if a pack)")
    k.set_defaults(func=run, data_func=_pack)

    b = sub.add_parser("bench-synth", help="composites/s of the synthesis")
    b.add_argument("--batch", type=a.positive_int, default=32)
    b.add_argument("--size", type=a.image_side, default=256)
    b.add_argument("--device", type=a.device, default="cpu")
    b.add_argument("--iters", type=a.positive_int, default=5)
    b.add_argument("--threads", type=a.nonneg_int, default=0, help="torch CPU threads (0: default)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=run, data_func=_bench)

    cal = sub.add_parser("calibrate", help="calibration report of the benchmark vs iHarmony4")
    cal.add_argument("--photos", default="builtin", help="builtin | lalonde | DIR | PACK")
    cal.add_argument("--data", default=None)
    cal.add_argument("--split", default="test", choices=["train", "test"])
    cal.add_argument("--seed", type=a.nonneg_int, default=0)
    cal.add_argument("--size", type=a.image_side, default=256)
    cal.add_argument("--families", nargs="*", default=None, help="default: all four")
    cal.add_argument("--per-image", default=None, help="also write the per-image CSV here")
    cal.add_argument("--json", action="store_true")
    cal.set_defaults(func=run, data_func=_calibrate)

    c = sub.add_parser("checksum", help="SHA-256 of a benchmark tree")
    c.add_argument("dir")
    c.set_defaults(func=run, data_func=_checksum)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen ``rharm data`` subcommand."""
    return int(args.data_func(args))
