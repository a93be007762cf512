"""The training diagnosis ladder of docs/training.md, one rung per call.

Rungs (``--rung``):

- ``overfit``: train on ONE fixed batch; the pixel term must fall far below its start
  (the optimiser and the network can fit at all).
- ``probe``: train on the stream of synthesised training batches and print, every 50
  steps, the model's foreground L1 (``pixel`` term of eq. 13) divided by the composite's own
  on the same batches (< 1: the model does better than "change nothing" on training data).
- ``heldout``: a full training run (``rharm_lib.train.train``) with periodic evaluation on
  the fixed test benchmark that goes with ``--data`` or ``--eval-data`` (the run folder's
  ``eval.csv``, at the config's ``eval_size``); with ``--table-size N`` the finished model
  and the input composite are then evaluated on that whole benchmark at N² as the Table
  II/III analogue does (``rharm_lib.study.methods.seeded_benchmark``), All row and families.

Every factor the diagnosis varies is a flag (config, widths, norm, sizes, lr, schedule,
L_HCL weight); nothing else differs from ``rharm train``. Examples::

    python tools/train_ladder.py --rung overfit --config cpu --steps 300 --crop-size 96
    python tools/train_ladder.py --rung probe --config cpu --steps 400 --crop-size 96 --lr 3e-4
    python tools/train_ladder.py --rung heldout --config ci --steps 600 --out runs/ladder/ci_base
    python tools/train_ladder.py --rung heldout --config ci --data lalonde --eval-data builtin \
        --steps 400 --eval-every 100 --eval-images 0 --ckpt-every 100 --table-size 256 \
        --out runs/ladder/ci_lalonde
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch

from rharm_lib.batch import COMPOSITE, MASK, TARGET
from rharm_lib.data.resolve import resolve_data
from rharm_lib.study import methods, sources
from rharm_lib.train.config import get_config
from rharm_lib.train.engine import _lr_at, build_objective, setup_device, train, train_step
from rharm_lib.train.sources import load_train_source, step_seed


def _pixel(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    d = (pred - target).abs() * mask
    return float((d.sum((1, 2, 3)) / (3 * mask.sum((1, 2, 3)).clamp(min=1))).mean())


def _table(checkpoint: str, kind: str, size: int) -> None:
    """The input composite and the model on the whole benchmark ``kind`` at ``size``²."""
    bench = sources.benchmark_dataset(kind)
    with tempfile.TemporaryDirectory() as tmp:
        table, _, _ = methods.seeded_benchmark(bench, {0: checkpoint}, "cpu", "model", tmp, size)
    rows = table[table["method"].isin(["input composite", "model"])]
    cols = ["method", "subset", "n", "mse", "psnr", "fmse", "ssim", "fssim"]
    print(rows[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rung", choices=("overfit", "probe", "heldout"), required=True)
    ap.add_argument("--config", default="cpu")
    ap.add_argument("--data", default="lalonde")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--schedule", choices=("constant", "cosine"))
    ap.add_argument("--norm", choices=("batch", "instance", "group", "none"))
    ap.add_argument("--widths", help="comma-separated channel widths, e.g. 16,32,64,128,192")
    ap.add_argument("--photo-size", type=int)
    ap.add_argument("--crop-size", type=int)
    ap.add_argument("--w-hcl", type=float)
    ap.add_argument("--no-rule-masks", action="store_true", help="keep the human masks")
    ap.add_argument("--eval-images", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="run folder (rung heldout)")
    ap.add_argument("--eval-data", help="rung heldout: the benchmark (default: --data's own)")
    ap.add_argument("--eval-every", type=int, help="rung heldout: default steps // 3")
    ap.add_argument("--ckpt-every", type=int, help="rung heldout: default --steps")
    ap.add_argument(
        "--table-size", type=int, help="rung heldout: then evaluate on the whole benchmark at N²"
    )
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    crop = a.crop_size
    photo = a.photo_size or (crop + crop // 8 if crop else None)
    cfg = get_config(
        a.config, steps=a.steps, lr=a.lr, lr_schedule=a.schedule, photo_size=photo,
        crop_size=crop, seed=a.seed, compile=False,
    )  # fmt: skip
    model = {"norm": a.norm} if a.norm else {}
    if a.widths:
        model["widths"] = tuple(int(w) for w in a.widths.split(","))
    loss = {"w_hcl": a.w_hcl} if a.w_hcl is not None else {}
    cfg = dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, **model),
        loss=dataclasses.replace(cfg.loss, **loss),
        rule_masks=not a.no_rule_masks,
    )
    if a.rung == "heldout":
        if not a.out:
            ap.error("--out is required for --rung heldout")
        bench_kind = a.eval_data or a.data
        if a.table_size and bench_kind not in sources.SOURCE_KINDS:
            ap.error(f"--table-size needs --eval-data (or --data) among {sources.SOURCE_KINDS}")
        cfg = dataclasses.replace(
            cfg, eval_max_images=a.eval_images,
            eval_every=max(1, a.steps // 3) if a.eval_every is None else a.eval_every,
            ckpt_every=a.steps if a.ckpt_every is None else a.ckpt_every,
        )  # fmt: skip
        s = train(
            cfg, a.data, a.out, resume=True, reuse=True, progress=False, device="cpu",
            eval_data=a.eval_data,
        )  # fmt: skip
        print(f"final: {s.final} (composite: {s.baseline})")
        if a.table_size:
            _table(s.checkpoint, bench_kind, a.table_size)
        return

    dev, info = setup_device(cfg, "cpu")
    t = build_objective(cfg, dev, info)
    src = load_train_source(
        resolve_data(a.data), photo_size=cfg.photo_size, device=dev, batch_size=cfg.batch_size,
        crop_size=cfg.crop_size, hflip=cfg.hflip, families=cfg.families, seed=cfg.seed,
        rule_masks=cfg.rule_masks, photo_jitter=cfg.photo_jitter,
    )  # fmt: skip
    fixed = src.batch(0) if a.rung == "overfit" else None
    model_sum = ident_sum = 0.0
    t0 = time.time()
    for step in range(a.steps):
        b = fixed if fixed is not None else src.batch(step)
        ident_sum += _pixel(b[COMPOSITE], b[TARGET], b[MASK])
        g = torch.Generator().manual_seed(step_seed(cfg.seed, 0, step, 2))
        out = train_step(t, b, _lr_at(cfg, step, a.steps), g)
        model_sum += float(out["pixel"].detach())
        if (step + 1) % 50 == 0:
            print(
                f"{a.rung} step {step + 1}: pixel {model_sum / 50:.5f}, composite's own "
                f"{ident_sum / 50:.5f}, ratio {model_sum / ident_sum:.3f} ({time.time() - t0:.0f} s)",
                flush=True,
            )
            model_sum = ident_sum = 0.0


if __name__ == "__main__":
    main()
