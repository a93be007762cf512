"""Where the training step's overhead goes (issue 11, item 5), before and after the
issue-11 rewrite of the style fusion and S²AM, measured in one process.

    nice -n 15 .venv/bin/python tools/train_overhead.py --config ci --batch 8 --threads 1 \\
        --steps 3 --warmup 1 --rounds 3 --profile-steps 3

Variants, each the training engine's own step (:func:`rharm_lib.train.engine.train_step` on
the :mod:`rharm_lib.train.bench` photos):

- ``before``: the full model with the pre-issue-11 code of
  :class:`~rharm_lib.model.fusion.StyleFusion`, :class:`~rharm_lib.model.s2am.S2AM` and
  L_HCL's patch cutting and embedding (kept below verbatim, swapped in for that variant
  only);
- ``after``: the full model as the package computes it now;
- ``no_hcl`` / ``no_s2am`` / ``no_fusion``: ``after`` without one of the paper's additions
  (``w_hcl = 0``, ``use_s2am=False``, ``fusion="none"``): the attribution;
- ``plain``: the plain ResUNet (:func:`rharm_lib.train.bench.plain_variant`).

Each is timed in CPU seconds of this process per image (user + system: on a machine shared
with other jobs, CPU time moves far less than wall time), interleaved over ``--rounds``
rounds, median reported; ratios are ``variant / plain``. ``--profile-steps`` then runs
``torch.profiler`` over that many ``after`` and ``before`` steps and prints the operators by
self CPU time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from rharm_lib.data.synth import FAMILIES
from rharm_lib.losses import contrastive as hcl_mod
from rharm_lib.model import fusion as fusion_mod
from rharm_lib.model import s2am as s2am_mod
from rharm_lib.model.masks import blur_mask, masked_mean_std, resize_mask
from rharm_lib.train.bench import plain_variant, random_photos
from rharm_lib.train.config import get_config
from rharm_lib.train.engine import build_objective, train_step
from rharm_lib.train.sources import TensorSource


# --- the pre-issue-11 forward passes (commit 706128b), kept to measure against ---------
def _old_fusion_forward(self, dec, enc, mask):
    d, m = fusion_mod._up(dec), fusion_mod._up(mask).to(fusion_mod._up(dec).dtype)
    ref = fusion_mod._up(enc).to(d.dtype) if self.external else d
    mu_ref, sd_ref = masked_mean_std(ref, 1 - m, self.eps)
    mu_fg, sd_fg = masked_mean_std(d, m, self.eps)
    mu_bg, sd_bg = masked_mean_std(d, 1 - m, self.eps)
    f_fg = self._foreground(d, mu_fg, sd_fg, mu_ref, sd_ref)
    f_bg = (d - mu_bg) / sd_bg
    out = m * self._psi(f_fg, self.gamma_fg, self.beta_fg) + (1 - m) * self._psi(
        f_bg, self.gamma_bg, self.beta_bg
    )
    out = torch.where(fusion_mod._has_region(1 - m), out, d)
    return out.to(dec.dtype)


def _old_attention_forward(self, x):
    avg = x.mean(dim=(2, 3), keepdim=True)
    mx = x.amax(dim=(2, 3), keepdim=True)
    return x * torch.sigmoid(self.mlp(avg) + self.mlp(mx))


def _old_s2am_forward(self, x, mask):
    m = resize_mask(mask, tuple(x.shape[-2:]))
    m = blur_mask(m, self.blur_size, self.blur_sigma).to(x.dtype)
    return self.att_bg(x) * (1 - m) + (self.learn(self.att_fg(x)) + self.att_mix(x)) * m


def _old_extract_patches(image, idx, patch=8, scale=4, source="image"):
    b, c, h, w = image.shape
    map_size = hcl_mod._map_size(h, w, scale)
    src = image if source == "image" else F.interpolate(image, size=map_size, mode="area")
    y0, x0 = hcl_mod.patch_starts(idx, map_size, patch, scale, source)
    src = F.pad(src, (patch, patch, patch, patch), mode="replicate")
    ar = torch.arange(patch, device=image.device)
    rows = (y0 + patch)[..., None] + ar
    cols = (x0 + patch)[..., None] + ar
    bi = torch.arange(b, device=image.device)[:, None, None, None]
    out = src[bi, :, rows[:, :, :, None], cols[:, :, None, :]]
    return out.permute(0, 1, 4, 2, 3).reshape(b, idx.shape[1], c * patch * patch)


def _old_embed_all(mlp, patches, ok):
    return hcl_mod.embed(mlp, patches)  # the MLP on every slot, filled or not


@contextlib.contextmanager
def old_forwards():
    """Swap the pre-issue-11 code in (class attributes, module functions) for the block."""
    slots = [
        (fusion_mod.StyleFusion, "forward", _old_fusion_forward),
        (s2am_mod.ChannelAttention, "forward", _old_attention_forward),
        (s2am_mod.S2AM, "forward", _old_s2am_forward),
        (hcl_mod, "extract_patches", _old_extract_patches),
        (hcl_mod, "embed_filled", _old_embed_all),
    ]
    saved = [getattr(o, n) for o, n, _ in slots]
    for o, n, f in slots:
        setattr(o, n, f)
    try:
        yield
    finally:
        for (o, n, _), f in zip(slots, saved, strict=True):
            setattr(o, n, f)


def _cpu_s() -> float:
    return time.process_time()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="ci")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variants", default="before,after,no_hcl,no_s2am,no_fusion,plain")
    p.add_argument("--profile-steps", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = get_config(a.config, batch_size=a.batch, compile=False)
    rep = dataclasses.replace
    configs = {
        "before": cfg,
        "after": cfg,
        "no_hcl": rep(cfg, loss=rep(cfg.loss, w_hcl=0.0)),
        "no_s2am": rep(cfg, model=rep(cfg.model, use_s2am=False)),
        "no_fusion": rep(cfg, model=rep(cfg.model, fusion="none")),
        "plain": plain_variant(cfg),
    }
    names = [v for v in a.variants.split(",") if v]
    dev = torch.device("cpu")
    images, masks = random_photos(max(2 * cfg.batch_size, 16), cfg.photo_size)
    trainees, sources = {}, {}
    for v in names:
        c = configs[v]
        trainees[v] = build_objective(c, dev)
        sources[v] = TensorSource(
            images, masks, None, batch_size=c.batch_size, crop_size=c.crop_size,
            hflip=c.hflip, families=c.families or tuple(FAMILIES), seed=c.seed,
        )  # fmt: skip
    # the same batches for every variant: batch i of each source (same seed, same photos)
    counter = dict.fromkeys(names, 0)

    def run(v: str, n: int) -> float:
        ctx = old_forwards() if v == "before" else contextlib.nullcontext()
        with ctx:
            c0 = _cpu_s()
            for _ in range(n):
                i = counter[v]
                train_step(trainees[v], sources[v].batch(i), cfg.lr,
                           torch.Generator().manual_seed(i))  # fmt: skip
                counter[v] += 1
            return (_cpu_s() - c0) / (n * cfg.batch_size)

    for v in names:
        run(v, a.warmup)
    per: dict[str, list[float]] = {v: [] for v in names}
    t0 = time.perf_counter()
    for _ in range(a.rounds):
        for v in names:
            per[v].append(run(v, a.steps))
    wall = time.perf_counter() - t0
    med = {v: statistics.median(x) for v, x in per.items()}
    print(f"config {a.config}, batch {a.batch}, crop {cfg.crop_size}, threads {a.threads}, "
          f"{a.rounds} rounds x {a.steps} steps (wall {wall:.0f} s for the timed part)")  # fmt: skip
    print("| variant | CPU ms / image (median of rounds) | rounds | ratio to plain |")
    print("|---|---|---|---|")
    for v in names:
        ratio = med[v] / med["plain"] if "plain" in med else float("nan")
        rounds = ", ".join(f"{1e3 * x:.1f}" for x in per[v])
        print(f"| {v} | {1e3 * med[v]:.1f} | {rounds} | {ratio:.2f} |")
    if a.profile_steps:
        for v in ("after", "before"):
            if v not in names:
                continue
            ctx = old_forwards() if v == "before" else contextlib.nullcontext()
            with ctx, profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(a.profile_steps):
                    i = counter[v]
                    train_step(trainees[v], sources[v].batch(i), cfg.lr,
                               torch.Generator().manual_seed(i))  # fmt: skip
                    counter[v] += 1
            print(f"\n## torch.profiler, {v}, {a.profile_steps} steps")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30,
                                            max_name_column_width=48))  # fmt: skip


if __name__ == "__main__":
    main()
