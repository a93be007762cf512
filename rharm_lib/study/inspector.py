"""The patch inspector: an ipywidgets view of exactly what the region-wise contrastive loss
L_HCL samples (Section III-B, eqs. 8–12).

Choose an image of the benchmark; see the harmonized output with the K sampled *negative*
locations (foreground of the output, eq. 9) and the ground truth with the K *positive*
locations (its background, eq. 10) drawn as the patch boxes L_HCL cuts; sliders for K,
the patch size P and the sampling seed; a panel of patches and their embedding
similarities (eq. 11).

Exactness: the view calls the loss's own functions --
:func:`rharm_lib.losses.contrastive.sample_locations` with a CPU generator seeded with the
slider's seed (the generator :func:`region_contrastive_loss` would receive),
:func:`~rharm_lib.losses.contrastive.patch_boxes` for the boxes,
:func:`~rharm_lib.losses.contrastive.extract_patches`, :func:`~rharm_lib.losses.contrastive.embed`
and :func:`~rharm_lib.losses.contrastive.info_nce` for the similarities and the per-location
eq. 11 terms -- so the mean of the shown terms is L_HCL of this image (a test checks it).
Two differences with training, both stated in the view: the harmonized output is the
network's uint8 output (background copied from the composite) rather than the float
training output, and the image is one at the benchmark's resolution rather than a crop.

The computation (:meth:`PatchInspector.compute`) is a pure function of the controls'
values; :meth:`PatchInspector.refresh` renders it (matplotlib, PNG bytes into an
``ipywidgets.Image``), so the callbacks can be tested headless.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..errors import RharmInputError
from ..losses.config import LossConfig
from ..losses.contrastive import (
    PatchEmbedder,
    embed,
    extract_patches,
    info_nce,
    patch_boxes,
    sample_locations,
)
from ..seed import make_generator

__all__ = ["InspectorView", "compute_view", "render_view", "PatchInspector", "loss_from_checkpoint"]

#: colours of negative (foreground) and positive (background) boxes
NEG_COLOR = "#ff3b30"
POS_COLOR = "#34c759"


@dataclass(frozen=True)
class InspectorView:
    """What the inspector shows for one image and one setting of the controls.

    Attributes:
        name: the sample's name.
        k, patch, seed: the controls' values.
        valid: the image has foreground and background locations (else L_HCL skips it).
        neg_idx, pos_idx: ``(K,)`` flat sampling-map indices (as ``sample_locations``).
        neg_boxes, pos_boxes: ``(K,4)`` int ``(x0, y0, x1, y1)`` in image pixels, end
            exclusive (as ``patch_boxes``).
        neg_patches, pos_patches: ``(K,P,P,3)`` float sRGB in [0,1] (as cut by
            ``extract_patches``; for ``patch_source="map"`` the downsampled image's pixels).
        sim_pos: ``(K,K)`` cosine similarities query_k · positive_j.
        sim_neg: ``(K,N)`` cosine similarities query_k · negative_j.
        loss_k: ``(K,)`` eq. 11 terms; their mean is this image's L_HCL (0 if not valid).
        loss: the mean of ``loss_k`` (eq. 12 for a batch of one), 0 if not valid.
        composite, harmonized, target: ``(H,W,3)`` uint8; mask ``(H,W)`` uint8 {0,1}.
    """

    name: str
    k: int
    patch: int
    seed: int
    valid: bool
    neg_idx: np.ndarray
    pos_idx: np.ndarray
    neg_boxes: np.ndarray
    pos_boxes: np.ndarray
    neg_patches: np.ndarray
    pos_patches: np.ndarray
    sim_pos: np.ndarray
    sim_neg: np.ndarray
    loss_k: np.ndarray
    loss: float
    composite: np.ndarray
    harmonized: np.ndarray
    target: np.ndarray
    mask: np.ndarray


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


@torch.no_grad()
def compute_view(
    sample: dict[str, Any],
    harmonized: np.ndarray,
    mlp: torch.nn.Module,
    cfg: LossConfig,
    k: int,
    patch: int,
    seed: int,
) -> InspectorView:
    """Sample, cut and embed exactly as L_HCL does, for one image (pure function).

    Args:
        sample: a reader sample with ``composite``, ``target`` (H,W,3) uint8 and ``mask``
            (H,W) uint8 {0,1}.
        harmonized: ``(H,W,3)`` uint8, the network's output for the sample.
        mlp: the shared embedder, input ``3·patch²`` (a new one is needed when ``patch``
            differs from the loss's; see :class:`PatchInspector`).
        cfg: the loss configuration (``sample_scale``, ``tau``, ``negatives``,
            ``patch_source``).
        k: K. patch: P. seed: seed of the CPU generator given to ``sample_locations``.

    Returns:
        the :class:`InspectorView`.
    """
    comp, target, mask = sample["composite"], sample["target"], sample["mask"]
    if target is None:
        raise RharmInputError(f"{sample.get('name')}: the inspector needs a ground truth (target)")
    if harmonized.shape != comp.shape or target.shape != comp.shape or mask.shape != comp.shape[:2]:
        raise RharmInputError(
            f"{sample.get('name')}: composite {comp.shape}, harmonized {harmonized.shape}, "
            f"target {target.shape} and mask {mask.shape} must have one size"
        )
    scale, src = cfg.sample_scale, cfg.patch_source
    h, w = mask.shape
    map_size = (max(1, h // scale), max(1, w // scale))
    m = torch.from_numpy((mask > 0).astype(np.float32))[None, None]
    pred, tgt, cmp_ = _to_tensor(harmonized), _to_tensor(target), _to_tensor(comp)
    neg_idx, pos_idx, valid = sample_locations(m, k, scale, make_generator(seed))  # eqs. 9-10
    q = embed(mlp, extract_patches(pred, neg_idx, patch, scale, src))  # output fg: queries
    v_pos = embed(mlp, extract_patches(tgt, pos_idx, patch, scale, src))  # ground-truth bg
    if cfg.negatives == "pred":
        v_neg, excl = q, True
    else:
        v_neg, excl = embed(mlp, extract_patches(cmp_, neg_idx, patch, scale, src)), False
    loss_k = info_nce(q, v_pos, v_neg, cfg.tau, excl)[0]  # eq. 11 per location
    ok = bool(valid[0])
    neg_src = pred if cfg.negatives == "pred" else cmp_

    def cut(img: torch.Tensor, idx: torch.Tensor) -> np.ndarray:
        p = extract_patches(img, idx, patch, scale, src)[0]
        return p.reshape(k, 3, patch, patch).permute(0, 2, 3, 1).numpy()

    sim_neg = (q[0] @ v_neg[0].T).numpy()
    if excl:
        np.fill_diagonal(sim_neg, np.nan)  # a query is not its own negative
    return InspectorView(
        name=str(sample.get("name", "")),
        k=k,
        patch=patch,
        seed=seed,
        valid=ok,
        neg_idx=neg_idx[0].numpy(),
        pos_idx=pos_idx[0].numpy(),
        neg_boxes=patch_boxes(neg_idx, map_size, patch, scale, src)[0].numpy(),
        pos_boxes=patch_boxes(pos_idx, map_size, patch, scale, src)[0].numpy(),
        neg_patches=cut(neg_src, neg_idx),
        pos_patches=cut(tgt, pos_idx),
        sim_pos=(q[0] @ v_pos[0].T).numpy(),
        sim_neg=sim_neg,
        loss_k=loss_k.numpy() if ok else np.zeros(k, np.float32),
        loss=float(loss_k.mean()) if ok else 0.0,
        composite=comp,
        harmonized=harmonized,
        target=target,
        mask=mask,
    )


def _mosaic(top: np.ndarray, bottom: np.ndarray, gap: int = 1) -> np.ndarray:
    """Two rows of ``(n,P,P,3)`` patches in one image, separated by white ``gap`` pixels."""
    n, p = top.shape[0], top.shape[1]
    out = np.ones((2 * p + 3 * gap, n * (p + gap) + gap, 3), np.float32)
    for r, patches in enumerate((top, bottom)):
        y = gap + r * (p + gap)
        for i in range(n):
            x = gap + i * (p + gap)
            out[y : y + p, x : x + p] = np.clip(patches[i], 0, 1)
    return out


def render_view(
    view: InspectorView, cfg: LossConfig, max_patches: int = 8, output_label: str = "harmonized"
):
    """A matplotlib figure of ``view``.

    Layout: row 1: composite (mask outline), harmonized output with the K negative boxes
    (red), ground truth with the K positive boxes (green), the K×K similarity matrix
    query·positive; row 2: up to ``max_patches`` negative and positive patches and the
    eq. 11 term per location.

    Args:
        view: the computed view. cfg: the loss configuration (titles, negatives' source).
        max_patches: patches shown per row. output_label: what the output panel is called.

    Returns:
        the figure; ``fig.axes[1].patches`` are the negative boxes and
        ``fig.axes[2].patches`` the positive ones (one :class:`Rectangle` per location).
    """
    from .plots import outline

    # a bare Figure (not pyplot): never auto-displayed by the inline backend
    fig = Figure(figsize=(13, 6.2))
    gs = fig.add_gridspec(2, 4, height_ratios=[3, 2])
    axes = [fig.add_subplot(gs[0, i]) for i in range(4)]
    neg_name = output_label if cfg.negatives == "pred" else "composite"
    axes[0].imshow(outline(view.composite, view.mask))
    axes[0].set_title(f"composite: {view.name}", fontsize=9)
    axes[1].imshow(view.harmonized if cfg.negatives == "pred" else view.composite)
    axes[1].set_title(f"{neg_name}: {view.k} negatives (fg)", fontsize=9)
    axes[2].imshow(view.target)
    axes[2].set_title(f"ground truth: {view.k} positives (bg)", fontsize=9)
    if view.valid:
        for ax, boxes, color in (
            (axes[1], view.neg_boxes, NEG_COLOR),
            (axes[2], view.pos_boxes, POS_COLOR),
        ):
            for x0, y0, x1, y1 in boxes:
                ax.add_patch(
                    Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=0.8, ec=color)
                )
    else:
        axes[1].text(
            0.5, 0.5, "no foreground or no background:\nL_HCL skips this image",
            transform=axes[1].transAxes, ha="center", va="center", color="white",
            bbox={"facecolor": "black", "alpha": 0.6},
        )  # fmt: skip
    im = axes[3].imshow(view.sim_pos, vmin=-1, vmax=1, cmap="coolwarm")
    axes[3].set_title("cos(query_k, positive_j)", fontsize=9)
    axes[3].set_xlabel("positive j (bg)", fontsize=8)
    axes[3].set_ylabel("query k (fg)", fontsize=8)
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    for ax in axes[:3]:
        ax.set_xticks([])
        ax.set_yticks([])
    n = min(max_patches, view.k)
    ax = fig.add_subplot(gs[1, :3])
    ax.imshow(_mosaic(view.neg_patches[:n], view.pos_patches[:n]), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        f"first {n} patches: negatives (top, {neg_name} fg), positives (bottom, bg)", fontsize=8
    )
    cos = " ".join(f"{view.sim_pos[i, i]:.2f}" for i in range(n))
    ax.set_xlabel(f"cos(query_k, positive_k): {cos}", fontsize=8)
    ax = fig.add_subplot(gs[1, 3])
    ax.plot(view.loss_k, ".", ms=3)
    ax.set_title(f"eq. 11 per location; mean (L_HCL) = {view.loss:.3f}", fontsize=8)
    ax.set_xlabel("k", fontsize=8)
    fig.suptitle(
        f"L_HCL sampling: K={view.k}, P={view.patch}, seed={view.seed}, scale={cfg.sample_scale}, "
        f"patches from the {cfg.patch_source}, tau={cfg.tau}",
        fontsize=10,
    )
    return fig


def loss_from_checkpoint(path) -> tuple[torch.nn.Module, LossConfig]:
    """The trained L_HCL embedder and loss config stored in a training checkpoint.

    Returns:
        ``(mlp, cfg)``: the shared MLP (eval mode, CPU) and the run's :class:`LossConfig`.
    """
    from ..checkpoint import load_checkpoint
    from ..losses import HarmonizationLoss
    from ..train.config import config_from_dict

    ckpt = load_checkpoint(path)
    cfg = config_from_dict(ckpt["train_config"]).loss
    loss = HarmonizationLoss(cfg)
    loss.load_state_dict(ckpt["loss"])
    return loss.mlp.eval(), cfg


class PatchInspector:
    """The ipywidgets patch inspector (see the module docstring).

    Args:
        samples: reader samples with ground truth (the benchmark).
        harmonize: ``f(composite uint8 (H,W,3), mask uint8 (H,W)) -> uint8 (H,W,3)`` (a
            :class:`~rharm_lib.inference.Harmonizer`); ``None`` shows the composite as the
            output (an untrained view).
        mlp: the trained embedder (:func:`loss_from_checkpoint`); for another patch size
            than ``cfg.patch`` a fresh embedder seeded with the slider's seed is used, and
            the view says so.
        cfg: the loss configuration.
        k: initial K. max_k: the K slider's maximum.

    Attributes:
        image, k, patch, seed: the controls (``Dropdown``, ``IntSlider`` x3).
        image_out: an ``ipywidgets.Image`` holding the rendered PNG.
        status: an ``ipywidgets.HTML`` line (validity, L_HCL, notes).
        view: the last :class:`InspectorView`; ``figure``: the last matplotlib figure.
        widget: the whole inspector (a ``VBox``) to display.
    """

    def __init__(
        self,
        samples: Sequence[dict[str, Any]],
        harmonize: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
        mlp: torch.nn.Module | None = None,
        cfg: LossConfig | None = None,
        k: int = 16,
        max_k: int = 256,
    ):
        import ipywidgets as W

        if len(samples) == 0:
            raise RharmInputError("the patch inspector needs at least one sample")
        self.samples = samples
        self.harmonize = harmonize
        self.cfg = cfg or LossConfig()
        self._trained_mlp = mlp
        self._cache: dict[int, np.ndarray] = {}
        names = [(str(s.get("name", i)), i) for i, s in enumerate(samples)]
        self.image = W.Dropdown(options=names, value=0, description="image")
        self.k = W.IntSlider(value=k, min=1, max=max_k, description="K")
        self.patch = W.IntSlider(value=self.cfg.patch, min=2, max=32, step=2, description="patch")
        self.seed = W.IntSlider(value=0, min=0, max=999, description="seed")
        self.image_out = W.Image(format="png")
        self.status = W.HTML()
        for c in (self.image, self.k, self.patch, self.seed):
            c.observe(self._on_change, names="value")
        self.widget = W.VBox(
            [
                W.HBox([self.image, self.k]),
                W.HBox([self.patch, self.seed]),
                self.status,
                self.image_out,
            ]
        )
        self.view: InspectorView | None = None
        self.figure = None
        self.refresh()

    def _on_change(self, _change) -> None:
        self.refresh()

    def harmonized(self, i: int) -> np.ndarray:
        """The (cached) harmonized output of sample ``i``."""
        if i not in self._cache:
            s = self.samples[i]
            out = (
                s["composite"]
                if self.harmonize is None
                else self.harmonize(s["composite"], s["mask"])
            )
            self._cache[i] = np.asarray(out, dtype=np.uint8)
        return self._cache[i]

    def embedder(self) -> tuple[torch.nn.Module, bool]:
        """``(mlp, trained)``: the trained MLP when the patch size matches, else a fresh one."""
        p = self.patch.value
        if self._trained_mlp is not None and p == self.cfg.patch:
            return self._trained_mlp, True
        torch.manual_seed(self.seed.value)
        return PatchEmbedder(3 * p * p, self.cfg.mlp_hidden, self.cfg.mlp_out).eval(), False

    def compute(self) -> InspectorView:
        """The view for the controls' current values (no drawing)."""
        i = self.image.value
        mlp, _ = self.embedder()
        return compute_view(
            self.samples[i],
            self.harmonized(i),
            mlp,
            self.cfg,
            self.k.value,
            self.patch.value,
            self.seed.value,
        )

    def refresh(self) -> None:
        """Recompute and redraw (the callback of every control)."""
        view = self.compute()
        _, trained = self.embedder()
        label = "harmonized" if self.harmonize is not None else "composite (no model)"
        fig = render_view(view, self.cfg, output_label=label)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        self.image_out.value = buf.getvalue()
        notes = [
            f"L_HCL of this image = {view.loss:.4f}" if view.valid else "skipped by L_HCL (invalid)"
        ]
        notes.append(
            "trained embedder"
            if trained
            else "untrained embedder (patch size differs or no checkpoint)"
        )
        if self.harmonize is None:
            notes.append("no model: the composite stands for the output")
        self.status.value = " · ".join(notes)
        self.view, self.figure = view, fig
