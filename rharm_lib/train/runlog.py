"""What a training run records as it goes: CSV logs, TensorBoard, a progress display.

- ``RUN/train_log.csv``: one row per synchronisation (:data:`LOG_FIELDS`: losses, lr, img/s);
- ``RUN/eval.csv``: one row per evaluation on the fixed test benchmark (:data:`EVAL_FIELDS`,
  the ``All`` row of :func:`rharm_lib.evaluate.evaluate`'s summary);
- ``RUN/tb``: TensorBoard events when ``tensorboard`` is asked for and installed;
- a tqdm bar on a terminal, plain lines otherwise, nothing when disabled.

Only the main process writes (:class:`RunLogger` is inert on the others). On resume, rows
after the checkpoint's step are dropped so that the logs continue where the weights do.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["LOG_FIELDS", "EVAL_FIELDS", "LOSS_KEYS", "RunLogger"]

#: the loss terms logged (eq. 13: total, L1, L_pixel, L_HCL; and whether L_HCL was skipped)
LOSS_KEYS = ("total", "l1", "pixel", "hcl", "hcl_skipped")
#: train_log.csv columns
LOG_FIELDS = ["step", "epoch", "lr", *LOSS_KEYS, "img_per_s", "elapsed_s"]
#: eval.csv columns: the "All" row of :func:`rharm_lib.evaluate.evaluate`'s summary
EVAL_FIELDS = ["step", "method", "n", "mse", "psnr", "psnr_peak", "fmse", "ssim", "fssim"]


def _rewrite_csv(path: Path, fields: list[str], keep_upto: int) -> None:
    """Keep the rows with ``step <= keep_upto`` (after a resume); atomic rewrite."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(float(r["step"])) <= keep_upto]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


def _append_csv(path: Path, fields: list[str], row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)
        fh.flush()


class _Progress:
    """tqdm on a terminal, plain lines otherwise, nothing when disabled."""

    def __init__(self, enabled: bool | None, total: int, initial: int) -> None:
        self.tty = sys.stderr.isatty()
        self.enabled = self.tty if enabled is None else enabled
        self.bar = None
        if self.enabled and self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
        self.total = total

    def update(self, step: int, n: int, info: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(loss=f"{info['total']:.4f}", img_s=f"{info['img_per_s']:.1f}")
        elif self.enabled:
            print(
                f"step {step}/{self.total}  loss {info['total']:.4f}  {info['img_per_s']:.1f} img/s",
                file=sys.stderr,
                flush=True,
            )

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg)
        elif self.enabled:
            print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class RunLogger:
    """The logs of one run (see the module docstring).

    Args:
        run_dir: the run folder (created by the main process).
        start: the step the run (re)starts from; later log rows are dropped.
        total: the run's total steps (for the progress display).
        main: whether this process writes (rank 0).
        progress: the progress display (``None``: only on a terminal).
        tensorboard: also write TensorBoard events, when ``tensorboard`` is installed.
    """

    def __init__(
        self,
        run_dir: Path,
        start: int,
        total: int,
        *,
        main: bool = True,
        progress: bool | None = None,
        tensorboard: bool = False,
    ) -> None:
        self.main, self.last_step = main, start
        self.log_csv, self.eval_csv = run_dir / "train_log.csv", run_dir / "eval.csv"
        self.tb = None
        if main:
            run_dir.mkdir(parents=True, exist_ok=True)
            _rewrite_csv(self.log_csv, LOG_FIELDS, start)
            _rewrite_csv(self.eval_csv, EVAL_FIELDS, start)
            if tensorboard:
                try:  # optional dependency: the run goes on without it
                    from torch.utils.tensorboard import SummaryWriter

                    self.tb = SummaryWriter(str(run_dir / "tb"))
                except ImportError:
                    self.tb = None
        self.bar = _Progress(progress if main else False, total, start)

    def losses(self, row: dict[str, Any]) -> None:
        """One ``train_log.csv`` row (:data:`LOG_FIELDS`)."""
        if self.main:
            _append_csv(self.log_csv, LOG_FIELDS, row)
            if self.tb is not None:
                for k in LOSS_KEYS:
                    self.tb.add_scalar(f"loss/{k}", row[k], row["step"])
                self.tb.add_scalar("img_per_s", row["img_per_s"], row["step"])
            self.bar.update(row["step"], row["step"] - self.last_step, row)
        self.last_step = row["step"]

    def evaluation(self, step: int, method: str, metrics: dict[str, float]) -> None:
        """One ``eval.csv`` row: the ``All`` metrics of ``method`` at ``step``."""
        if not self.main:
            return
        _append_csv(self.eval_csv, EVAL_FIELDS, {"step": step, "method": method, **metrics})
        if method == "model":
            if self.tb is not None:
                for k, v in metrics.items():
                    self.tb.add_scalar(f"eval/{k}", v, step)
            self.bar.write(
                f"eval step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            )

    def close(self) -> None:
        self.bar.close()
        if self.tb is not None:
            self.tb.close()
