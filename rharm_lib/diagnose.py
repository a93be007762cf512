"""Diagnostics of the training loss (``rharm diagnose loss``): how each reading of L_HCL
(eqs. 10–11, :data:`~rharm_lib.losses.readings.READINGS`) pulls on the harmonized
foreground, without training a network.

Two measurements on composites synthesised from real photos (the benchmark generator,
:func:`rharm_lib.data.synth.synthesize`, families cycled):

1. **Step-0 gradient** (:func:`gradient_alignment`). An untrained residual net returns the
   composite, so at step 0 ``pred = composite``. For each reading: the cosine between
   ``−∇_pred L`` and the direction that would fix the image, ``target − pred``, over the
   foreground (per image, then the mean), and the norm ratio
   ``‖∇(w_hcl·L_HCL)‖ / ‖∇(w_l1·L1 + w_pixel·L_pixel)‖`` over the foreground (eq. 13
   weights). A loss that helps harmonization has a positive cosine.
2. **Pixel optimisation** (:func:`optimise_pixels`). The foreground pixels themselves are
   the parameters (``pred = composite + M·Δ``, background copied as the network does),
   optimised with Adam from the composite, the shared MLP trained jointly (its own Adam),
   under the reading alone and under the full eq. 13; the fMSE of the result
   (:func:`rharm_lib.metrics.image_metrics`, 0–255 scale) tells whether the loss leads to
   the ground truth (reconstruction alone reaches ≈ 0).

Layer: above ``data``, ``model``, ``losses`` and ``metrics``; below ``train``, ``study`` and
``cli``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .data.photos import load_photos
from .data.synth import FAMILIES, synthesize
from .errors import RharmInputError
from .losses import READINGS, HarmonizationLoss, LossConfig
from .metrics import image_metrics, to_uint8
from .seed import make_generator

__all__ = [
    "DiagnoseConfig",
    "diagnosis_batch",
    "gradient_alignment",
    "optimise_pixels",
    "foreground_mse",
    "diagnose_loss",
    "diagnosis_table",
    "plot_loss_diagnosis",
]


@dataclass(frozen=True)
class DiagnoseConfig:
    """Settings of :func:`diagnose_loss`.

    Attributes:
        readings: readings of eqs. 10–11 to measure (keys of ``READINGS``).
        loss: the base loss configuration (K, P, τ, patch source, masking, sampling, eq. 13
            weights); each reading replaces its ``reading``.
        steps: Adam steps of the pixel optimisation (150).
        lr_pixels: Adam learning rate of the foreground pixels (sRGB in [0,1] units).
        lr_mlp: Adam learning rate of the shared MLP (the paper's 1e-3).
        seed: seeds the MLP initialisation and the sampling generator.
    """

    readings: tuple[str, ...] = tuple(READINGS)
    loss: LossConfig = field(default_factory=LossConfig)
    steps: int = 150
    lr_pixels: float = 0.01
    lr_mlp: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [r for r in self.readings if r not in READINGS]
        if bad or not self.readings:
            raise RharmInputError(f"unknown readings {bad}; expected some of {sorted(READINGS)}")
        if self.steps < 0:
            raise RharmInputError(f"steps must be >= 0, got {self.steps}")


def diagnosis_batch(
    photos: str, n: int = 32, size: int = 256, split: str = "train", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``n`` photos of ``photos`` with composites synthesised from them.

    Args:
        photos: ``"builtin"``, a lalonde-layout directory or a pack file
            (:func:`rharm_lib.data.photos.load_photos`).
        n: number of images (at most the split's size). size: side of the square images.
        split: ``train`` or ``test``. seed: seed of the synthesis generator.

    Returns:
        ``(composite, target, mask)``: ``(n,3,S,S)`` float32 sRGB in [0,1] twice and
        ``(n,1,S,S)`` float32 in {0,1}; image i's family is ``FAMILIES[i % 4]``.
    """
    ps = load_photos(photos, split, size=size)
    n = min(n, len(ps))
    if n < 1:
        raise RharmInputError(f"{photos}: no photos in split {split!r}")
    target, mask = ps.float_batch(slice(0, n))
    families = [FAMILIES[i % len(FAMILIES)] for i in range(n)]
    composite = synthesize(target, mask, families, make_generator(seed))
    return composite, target, mask


def _criterion(cfg: LossConfig, seed: int) -> HarmonizationLoss:
    torch.manual_seed(seed)  # the MLP's initialisation
    return HarmonizationLoss(cfg)


def _reconstruction(out: dict[str, torch.Tensor], cfg: LossConfig) -> torch.Tensor:
    return cfg.w_l1 * out["l1"] + cfg.w_pixel * out["pixel"]


def gradient_alignment(
    composite: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    cfg: LossConfig,
    seed: int = 0,
) -> dict[str, float]:
    """Step-0 gradients of eq. 13's terms at ``pred = composite`` (module docstring, 1).

    Args:
        composite, target: ``(B,3,H,W)`` float32 sRGB in [0,1]. mask: ``(B,1,H,W)`` {0,1}.
        cfg: the loss configuration (its reading is measured). seed: MLP init and sampling.

    Returns:
        ``cos_hcl``, ``cos_reconstruction``, ``cos_total``: mean over images with a
        foreground of the per-image cosine between ``−∇`` of ``w_hcl·L_HCL``, of
        ``w_l1·L1 + w_pixel·L_pixel`` and of the eq. 13 total and ``target − pred`` over
        the foreground; ``norm_ratio``: ``‖∇ w_hcl·L_HCL‖ / ‖∇ reconstruction‖`` over the
        batch's foreground.
    """
    crit = _criterion(cfg, seed)
    grads = {}
    for term in ("hcl", "reconstruction"):
        pred = composite.clone().requires_grad_(True)
        out = crit(pred, target, mask, composite, generator=make_generator(seed))
        loss = cfg.w_hcl * out["hcl"] if term == "hcl" else _reconstruction(out, cfg)
        (grads[term],) = torch.autograd.grad(loss, pred)
    grads["total"] = grads["hcl"] + grads["reconstruction"]
    fix = (target - composite) * mask
    has_fg = mask.flatten(1).sum(dim=1) > 0
    res: dict[str, float] = {}
    for term, g in grads.items():
        d = (-g * mask).flatten(1)
        cos = torch.nn.functional.cosine_similarity(d, fix.flatten(1), dim=1, eps=1e-12)
        res[f"cos_{term}"] = float(cos[has_fg].mean())
    num = float((grads["hcl"] * mask).norm())
    den = float((grads["reconstruction"] * mask).norm())
    res["norm_ratio"] = num / max(den, 1e-30)
    return res


def optimise_pixels(
    composite: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    cfg: LossConfig,
    objective: str,
    steps: int = 150,
    lr_pixels: float = 0.01,
    lr_mlp: float = 1e-3,
    seed: int = 0,
) -> torch.Tensor:
    """Optimise the foreground pixels under ``objective`` from the composite (module docstring, 2).

    Args:
        composite, target: ``(B,3,H,W)`` float32 sRGB in [0,1]. mask: ``(B,1,H,W)`` {0,1}.
        cfg: the loss configuration. objective: ``hcl`` (L_HCL alone), ``total`` (eq. 13)
            or ``reconstruction`` (``w_l1·L1 + w_pixel·L_pixel``).
        steps: Adam steps. lr_pixels, lr_mlp: learning rates of Δ and of the MLP.
        seed: MLP initialisation and the sampling generator (fresh draws every step).

    Returns:
        ``(B,3,H,W)`` float32 prediction (unclamped), background equal to the composite.
    """
    if objective not in ("hcl", "total", "reconstruction"):
        raise RharmInputError(f"objective must be hcl, total or reconstruction, got {objective!r}")
    if objective == "reconstruction":
        cfg = dataclasses.replace(cfg, w_hcl=0.0)
    crit = _criterion(cfg, seed)
    delta = torch.zeros_like(composite, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr_pixels)
    opt_mlp = torch.optim.Adam(crit.parameters(), lr=lr_mlp)
    gen = make_generator(seed)
    for _ in range(steps):
        pred = composite + mask * delta
        out = crit(pred, target, mask, composite, generator=gen)
        loss = {"hcl": out["hcl"], "total": out["total"]}.get(objective)
        if loss is None:
            loss = _reconstruction(out, cfg)
        opt.zero_grad(set_to_none=True)
        opt_mlp.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        opt_mlp.step()
    return (composite + mask * delta).detach()


def foreground_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean over images with a foreground of fMSE (0–255 scale, after rounding to uint8,
    :func:`rharm_lib.metrics.image_metrics`). Inputs as :func:`optimise_pixels`."""
    vals = []
    for p, t, m in zip(pred, target, mask, strict=True):
        if m.sum() == 0:
            continue
        pu = to_uint8(p.permute(1, 2, 0).numpy() * 255.0)
        tu = to_uint8(t.permute(1, 2, 0).numpy() * 255.0)
        vals.append(image_metrics(pu, tu, m[0].numpy().astype(np.uint8))["fmse"])
    return float(np.mean(vals)) if vals else float("nan")


def diagnose_loss(
    composite: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    cfg: DiagnoseConfig = DiagnoseConfig(),
    progress=None,
) -> dict:
    """Both measurements for every reading in ``cfg.readings``.

    Args:
        composite, target: ``(B,3,H,W)`` float32 sRGB in [0,1]. mask: ``(B,1,H,W)`` {0,1}.
        cfg: the settings. progress: optional ``f(str)`` called before each optimisation.

    Returns:
        a JSON-ready dict: ``n``, ``size``, ``config`` (the settings), ``composite_fmse``
        (the start), ``reconstruction`` (``cos``, ``fmse`` after optimising
        ``w_l1·L1 + w_pixel·L_pixel``) and ``readings``: one dict per reading with
        ``reading``, ``cos_hcl``, ``cos_total``, ``norm_ratio``, ``fmse_alone`` (after
        optimising L_HCL alone) and ``fmse_total`` (after optimising eq. 13).
    """
    say = progress or (lambda _msg: None)
    kw = {"steps": cfg.steps, "lr_pixels": cfg.lr_pixels, "lr_mlp": cfg.lr_mlp, "seed": cfg.seed}
    base = cfg.loss
    say("reconstruction")
    rec_grad = gradient_alignment(composite, target, mask, base, cfg.seed)
    rec = optimise_pixels(composite, target, mask, base, "reconstruction", **kw)
    say(
        f"reconstruction: cos {rec_grad['cos_reconstruction']:.4g}, fmse {foreground_mse(rec, target, mask):.4g}"
    )
    rows = []
    for name in cfg.readings:
        lc = dataclasses.replace(base, reading=name)
        g = gradient_alignment(composite, target, mask, lc, cfg.seed)
        say(f"{name}: L_HCL alone")
        alone = optimise_pixels(composite, target, mask, lc, "hcl", **kw)
        say(f"{name}: eq. 13")
        total = optimise_pixels(composite, target, mask, lc, "total", **kw)
        rows.append(
            {
                "reading": name,
                "cos_hcl": g["cos_hcl"],
                "cos_total": g["cos_total"],
                "norm_ratio": g["norm_ratio"],
                "fmse_alone": foreground_mse(alone, target, mask),
                "fmse_total": foreground_mse(total, target, mask),
            }
        )
        say(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in rows[-1].items() if k != "reading"))
    conf = dataclasses.asdict(cfg)
    conf["readings"] = list(cfg.readings)
    return {
        "n": int(composite.shape[0]),
        "size": int(composite.shape[-1]),
        "config": conf,
        "composite_fmse": foreground_mse(composite, target, mask),
        "reconstruction": {
            "cos": rec_grad["cos_reconstruction"],
            "fmse": foreground_mse(rec, target, mask),
        },
        "readings": rows,
    }


def diagnosis_table(result: dict) -> pd.DataFrame:
    """The per-reading rows of :func:`diagnose_loss` as a table (one row per reading, then
    ``reconstruction only`` and ``composite`` reference rows; NaN where not applicable)."""
    df = pd.DataFrame(result["readings"]).set_index("reading")
    df.loc["reconstruction only"] = {
        "cos_total": result["reconstruction"]["cos"],
        "fmse_total": result["reconstruction"]["fmse"],
    }
    df.loc["composite (start)"] = {"fmse_total": result["composite_fmse"]}
    return df


def plot_loss_diagnosis(result: dict):
    """A two-panel matplotlib figure of :func:`diagnose_loss`'s result.

    Left: step-0 cosine of ``−∇(w_hcl·L_HCL)`` with ``target − pred`` per reading (the
    reconstruction terms' cosine as a line). Right: fMSE after optimising the pixels under
    the reading alone and under eq. 13, with the composite's fMSE and reconstruction
    alone as lines (log scale).

    Returns:
        a ``matplotlib.figure.Figure`` (not registered with pyplot).
    """
    from matplotlib.figure import Figure

    rows = result["readings"]
    names = [r["reading"] for r in rows]
    x = np.arange(len(names))
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar(x, [r["cos_hcl"] for r in rows], color="#4c72b0")
    ax1.axhline(
        result["reconstruction"]["cos"], color="k", ls="--", lw=1, label="0.4·L1 + 0.5·L_pixel"
    )
    ax1.axhline(0, color="0.5", lw=0.8)
    ax1.set_xticks(x, names, rotation=20, ha="right")
    ax1.set_ylabel("cos(−∇ L_HCL, target − pred) on the fg")
    ax1.set_title(f"step-0 gradient direction ({result['n']} composites)")
    ax1.legend(fontsize=8)
    w = 0.38
    ax2.bar(x - w / 2, [r["fmse_alone"] for r in rows], w, label="L_HCL alone", color="#dd8452")
    ax2.bar(x + w / 2, [r["fmse_total"] for r in rows], w, label="eq. 13", color="#55a868")
    ax2.axhline(result["composite_fmse"], color="k", ls="--", lw=1, label="composite (start)")
    ax2.axhline(
        max(result["reconstruction"]["fmse"], 1e-2), color="0.4", ls=":", lw=1,
        label="reconstruction alone",
    )  # fmt: skip
    ax2.set_yscale("log")
    ax2.set_xticks(x, names, rotation=20, ha="right")
    ax2.set_ylabel("fMSE after optimising the pixels")
    ax2.set_title(f"{result['config']['steps']} Adam steps from the composite")
    ax2.legend(fontsize=8)
    return fig
