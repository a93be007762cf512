"""How strongly each eq. 13 term pulls on the foreground at the start of training.

An untrained residual net returns the composite (zero-initialised head), so at step 0
``pred = composite``. This probe synthesises composites from real photos with the benchmark
generator and prints, for both readings of L_HCL's negatives, the norm of the gradient with
respect to ``pred`` on the foreground of (a) the reconstruction terms 0.4·L1 + 0.5·L_pixel and
(b) the contrastive term 0.1·L_HCL (eq. 13 weights, K=256, 8×8 patches, τ=0.07).

    python tools/hcl_gradient_probe.py [--photos lalonde|builtin] [--n 32] [--size 256]
"""

from __future__ import annotations

import argparse

from rharm_lib.cli.data import resolve_photos
from rharm_lib.data.photos import load_photos
from rharm_lib.data.synth import FAMILIES, synthesize
from rharm_lib.losses import HarmonizationLoss, LossConfig
from rharm_lib.seed import make_generator, seed_everything


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="lalonde")
    ap.add_argument("--split", default="train")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    seed_everything(args.seed)
    ps = load_photos(resolve_photos(args.photos), args.split, size=args.size)
    n = min(args.n, len(ps.names))
    target, mask = ps.float_batch(slice(0, n))
    families = [FAMILIES[i % len(FAMILIES)] for i in range(n)]
    composite = synthesize(target, mask, families, make_generator(args.seed))
    print(f"{n} {args.photos} photos at {args.size}², families cycled; pred = composite")
    for negatives in ("pred", "composite"):
        crit = HarmonizationLoss(LossConfig(negatives=negatives))
        norms = {}
        for term in ("reconstruction", "contrastive"):
            pred = composite.clone().requires_grad_(True)
            out = crit(pred, target, mask, composite, generator=make_generator(args.seed))
            cfg = crit.cfg
            loss = (
                cfg.w_l1 * out["l1"] + cfg.w_pixel * out["pixel"]
                if term == "reconstruction"
                else cfg.w_hcl * out["hcl"]
            )
            loss.backward()
            norms[term] = float((pred.grad * mask).norm())
        print(
            f"negatives={negatives:9s} |grad fg| 0.4·L1+0.5·L_pixel = {norms['reconstruction']:.5f}"
            f"   0.1·L_HCL = {norms['contrastive']:.5f}"
            f"   ratio = {norms['contrastive'] / max(norms['reconstruction'], 1e-12):.2f}"
        )


if __name__ == "__main__":
    main()
