"""Inference with a trained network: :class:`Harmonizer` (behind ``rharm harmonize`` and
``rharm evaluate --method checkpoint``).

The network runs at the image's own resolution (as in the paper's Table IV); the model
pads internally to the multiple its U-Net needs. Input and output are NumPy uint8 sRGB.

Full resolution (issue 11): :meth:`Harmonizer.harmonize` adds ``mode="fast"`` (the network
at a working size, its change lifted to full resolution) and ``mode="tiled"`` (the network
at full resolution in tiles); both live in :mod:`rharm_lib.fullres`.

Decision: by default the background is copied from the input composite
(``keep_background=True``): harmonization changes only the pasted region, and the
network's background reconstruction (close to, but not exactly, the input) would only
add error outside the mask. ``keep_background=False`` returns the raw network output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .batch import check_images
from .checkpoint import load_checkpoint
from .config_io import plain, rebuild
from .errors import RharmInputError
from .fullres import MODES, FullResConfig, as_arrays, harmonize_fast, harmonize_tiled
from .model import CONFIGS, ModelConfig, build_model

__all__ = ["Harmonizer", "load_network"]


def load_network(
    path: str | os.PathLike, expect_config: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network stored in an rharm checkpoint (on the CPU, eval mode).

    Args:
        path: a checkpoint written by ``rharm train`` (``RUN/checkpoints/last.pt``).
        expect_config: when given, the name of a model config in
            :data:`rharm_lib.model.CONFIGS` that the checkpoint must have been trained with.

    Returns:
        ``(net, checkpoint)``.

    Raises:
        RharmInputError: not a checkpoint, corrupt, of another model config than
            ``expect_config``, or weights that do not fit the stored config.
    """
    ckpt = load_checkpoint(path)
    # only the model's part of the stored training config matters here: inference does not
    # depend on the trainer (rharm_lib.train), whose config it would otherwise have to import
    stored = ckpt["train_config"]
    if not isinstance(stored.get("model"), dict):
        raise RharmInputError(f"{path}: the stored training config has no model config")
    model_cfg = rebuild(ModelConfig, stored["model"], "checkpoint model config")
    if expect_config is not None:
        if expect_config not in CONFIGS:
            raise RharmInputError(
                f"unknown model config {expect_config!r}; choose from {sorted(CONFIGS)}"
            )
        want, got = plain(CONFIGS[expect_config]), plain(model_cfg)
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        if diff:
            raise RharmInputError(
                f"{path} holds a model of config {stored.get('name')!r}, not {expect_config!r} "
                f"(fields {diff} differ)"
            )
    net = build_model(model_cfg)
    try:
        net.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise RharmInputError(
            f"{path}: the stored weights do not fit the stored model config: {_first_mismatch(exc)}"
        ) from None
    net.eval()
    return net, ckpt


def _first_mismatch(exc: Exception) -> str:
    """One line from ``load_state_dict``'s multi-line error: its first problem and a count."""
    lines = [" ".join(x.split()) for x in str(exc).splitlines() if x.strip()]
    problems = [x for x in lines[1:] if x] or lines or [type(exc).__name__]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0][:240] + more


class Harmonizer:
    """A callable ``h(composite, mask) -> harmonized`` around a network.

    Args:
        net: ``net(composite (B,3,H,W) float [0,1], mask (B,1,H,W) {0,1}) -> (B,3,H,W)``.
        device: where the network runs (it is moved there).
        precision: ``"fp32"``, ``"bf16"`` (autocast) or ``"auto"`` (bf16 on CUDA).
        keep_background: copy the input's pixels outside the mask (see module docstring).
        meta: free-form information (the checkpoint's step, config name ...).
    """

    def __init__(
        self,
        net: nn.Module,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        keep_background: bool = True,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device)
        if precision not in ("fp32", "bf16", "auto"):
            raise RharmInputError(f"precision must be fp32, bf16 or auto, got {precision!r}")
        use_bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        self.amp = torch.bfloat16 if use_bf16 else None
        self.keep_background = keep_background
        self.meta = dict(meta or {})

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        expect_config: str | None = None,
        precision: str = "fp32",
        keep_background: bool = True,
    ) -> Harmonizer:
        """Load a checkpoint of ``rharm train`` (see :func:`load_network` for the errors).

        ``precision`` defaults to fp32 so that ``rharm evaluate --method checkpoint`` gives
        the same metrics on every device; ``rharm harmonize`` uses ``auto`` (bf16 on CUDA).
        """
        net, ckpt = load_network(path, expect_config)
        meta = {
            "checkpoint": str(Path(path)),
            "step": int(ckpt["step"]),
            "config": ckpt["train_config"].get("name"),
        }
        return cls(
            net, device=device, precision=precision, keep_background=keep_background, meta=meta
        )

    @torch.inference_mode()
    def predict(self, composite: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The network's output for a batch.

        Args:
            composite: ``(B,3,H,W)`` float32 sRGB in ``[0,1]``.
            mask: ``(B,1,H,W)`` float32 in ``{0,1}``.

        Returns:
            ``(B,3,H,W)`` float32 in ``[0,1]`` (clamped), on ``self.device``; the
            background is the input's when ``keep_background``.
        """
        check_images(composite, mask)
        self.net.eval()
        composite, mask = composite.to(self.device), mask.to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp is not None):
            pred = self.net(composite, mask)
        pred = pred.float().clamp_(0, 1)
        if self.keep_background:
            pred = torch.where(mask > 0.5, pred, composite)
        return pred

    def __call__(self, composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Harmonize one image at its own resolution.

        Args:
            composite: ``(H,W,3)`` uint8 sRGB.
            mask: ``(H,W)`` uint8, foreground where ``> 0`` (``{0,1}`` or ``{0,255}``).

        Returns:
            ``(H,W,3)`` uint8 sRGB (rounded); background pixels equal the input's when
            ``keep_background``.
        """
        composite, mask = np.asarray(composite), np.asarray(mask)
        if composite.dtype != np.uint8 or composite.ndim != 3 or composite.shape[2] != 3:
            raise RharmInputError(
                f"expected composite uint8 (H,W,3), got {composite.dtype} {composite.shape}"
            )
        if mask.shape != composite.shape[:2]:
            raise RharmInputError(f"expected mask (H,W) = {composite.shape[:2]}, got {mask.shape}")
        c = torch.tensor(composite).permute(2, 0, 1)[None].float().div_(255)
        m = torch.from_numpy((mask > 0).astype(np.float32))[None, None]
        pred = self.predict(c, m)[0]
        out = pred.mul(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        if self.keep_background:
            out[mask == 0] = composite[mask == 0]  # exact copy (no float round trip)
        return out

    # --- full-resolution modes (issue 11; the logic lives in rharm_lib.fullres) ----------

    def harmonize(
        self,
        composite: Any,
        mask: Any,
        mode: str = "fast",
        working_size: int | None = None,
        **options: Any,
    ) -> np.ndarray:
        """Harmonize one image of any size in one of :data:`rharm_lib.fullres.MODES`.

        Args:
            composite: ``(H,W,3)`` uint8 sRGB array or a PIL image.
            mask: ``(H,W)`` array (foreground where ``> 0``) or a PIL image.
            mode: ``fast`` (network at ``working_size``, lifted to full resolution),
                ``native`` (network on the whole image: :meth:`__call__`) or ``tiled``
                (network at full resolution in overlapping tiles, bounded memory).
            working_size: long side of the network in ``fast`` mode (default 512) and of
                the statistics pass in ``tiled`` mode (``stats_size``, default 1024).
            **options: other :class:`~rharm_lib.fullres.FullResConfig` fields (``lift``,
                ``radius``, ``eps``, ``tile``, ``overlap``, ``stats`` ...).

        Returns:
            ``(H,W,3)`` uint8 sRGB; the background is the input's, bit for bit (``fast``
            and ``tiled`` always keep it).
        """
        if mode not in MODES:
            raise RharmInputError(f"unknown mode {mode!r}; expected one of {MODES}")
        if mode != "native" and not self.keep_background:
            raise RharmInputError(f"mode {mode!r} always keeps the background; use native")
        composite, mask = as_arrays(composite, mask)
        if mode == "native":
            return self(composite, mask)
        if working_size is not None:
            options["working_size" if mode == "fast" else "stats_size"] = working_size
        try:
            cfg = FullResConfig(**options)
        except TypeError as exc:
            raise RharmInputError(f"bad full-resolution option: {exc}") from None
        if mode == "fast":
            return harmonize_fast(self.predict, composite, mask, cfg)
        return harmonize_tiled(self.predict, self.net, composite, mask, cfg)
