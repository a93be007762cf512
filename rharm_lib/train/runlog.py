"""What a training run records as it goes: CSV logs, TensorBoard, a progress display.

- ``RUN/train_log.csv``: one row per synchronisation (:data:`LOG_FIELDS`: losses, lr, img/s);
- ``RUN/eval.csv``: one row per evaluation on the fixed test benchmark (:data:`EVAL_FIELDS`,
  the ``All`` row of :func:`rharm_lib.evaluate.evaluate`'s summary);
- ``RUN/tb``: TensorBoard events when ``tensorboard`` is asked for and installed;
- a progress display with an ETA (:class:`_Progress`): a tqdm bar on a terminal, one
  updating tqdm widget in a Jupyter notebook, plain lines (with ``eta``, about every 5 % of
  the run) when asked for elsewhere (executed notebooks, logs), nothing when disabled.

Only the main process writes (:class:`RunLogger` is inert on the others). On resume, rows
after the checkpoint's step are dropped so that the logs continue where the weights do.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from tqdm.std import tqdm as std_tqdm

_interval = std_tqdm.format_interval  # seconds -> "01:30", "1:02:03"

__all__ = ["LOG_FIELDS", "EVAL_FIELDS", "LOSS_KEYS", "RunLogger", "progress_line"]

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


def _notebook_tqdm() -> type | None:
    """tqdm's ipywidgets bar when this is a Jupyter kernel where ``tqdm.auto`` resolves to it,
    else ``None``: not a kernel, ipywidgets missing, or a kernel whose ``tqdm.auto`` points at
    the console bar (:mod:`rharm_lib.study.runner` does that for executed notebooks, where a
    widget would be saved frozen)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if getattr(shell, "kernel", None) is None:  # tqdm.auto only asks for ipykernel's import
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm's "IProgress not found": lines instead
        from tqdm import notebook
        from tqdm.auto import tqdm as auto
    return auto if notebook.IProgress is not None and issubclass(auto, notebook.tqdm) else None


def progress_line(step: int, total: int, start: int, row: dict[str, Any]) -> str:
    """One plain-text progress line: step/total, the loss terms, img/s, elapsed and eta.

    ``eta`` assumes the pace of this call so far, ``row["elapsed_s"] / (step - start)``
    seconds a step (evaluations and checkpoints included, as they recur), e.g.
    ``step 240/600 (40%)  total 0.1234 l1 0.0456 pixel 0.0567 hcl 1.23  88.1 img/s
    elapsed 01:00  eta 01:30`` (``h:mm:ss`` from an hour).
    """
    elapsed = float(row.get("elapsed_s", 0.0))
    done = step - start
    eta = _interval(elapsed / done * (total - step)) if done > 0 and elapsed > 0 else "?"
    losses = " ".join(f"{k} {row[k]:.4g}" for k in LOSS_KEYS[:4] if k in row)
    return (
        f"step {step}/{total} ({100 * step / max(total, 1):.0f}%)  {losses}  "
        f"{row.get('img_per_s', float('nan')):.1f} img/s  elapsed {_interval(elapsed)}  eta {eta}"
    )


#: plain progress lines per call: about one every 1/LINES of the steps left at the start
LINES = 20


class _Progress:
    """The progress display of one run (one bar, widget or line stream).

    Kinds: ``"bar"`` (console tqdm on a terminal), ``"widget"`` (tqdm's ipywidgets bar in a
    Jupyter notebook: :func:`_notebook_tqdm`), ``"lines"`` (plain :func:`progress_line` text
    on stderr, the first row then about every 5 % of the steps, and the last: a few dozen
    lines per run, whatever its length, as executed notebooks store every line), ``"off"``.
    ``enabled``: ``False`` off; ``None`` a bar or widget, else off; ``True`` a bar or
    widget, else lines. tqdm's bar and widget show the ETA themselves.
    """

    def __init__(self, enabled: bool | None, total: int, initial: int, desc: str = "") -> None:
        self.total, self.start, self.bar = total, initial, None
        self.desc = f"{desc}: " if desc else ""
        self.every = max(1, math.ceil((total - initial) / LINES))
        self.next_line = initial + 1
        kw = {"total": total, "initial": initial, "unit": "step", "desc": desc}
        self.kind = "lines" if enabled else "off"  # unless a bar or a widget can be shown
        if enabled is False:
            return
        if sys.stderr.isatty():
            self.kind, self.bar = "bar", std_tqdm(**kw, dynamic_ncols=True)
        elif (widget := _notebook_tqdm()) is not None:
            with contextlib.suppress(ImportError):  # tqdm found no widget front end after all
                self.bar, self.kind = widget(**kw), "widget"

    def update(self, step: int, n: int, info: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(
                {k: f"{info[k]:.4g}" for k in LOSS_KEYS[:4] if k in info}
                | {"img/s": f"{info['img_per_s']:.1f}"},
                refresh=False,
            )
            self.bar.update(n)
        elif self.kind == "lines" and (step >= self.next_line or step >= self.total):
            self.next_line = step + self.every
            line = progress_line(step, self.total, self.start, info)
            print(self.desc + line, file=sys.stderr, flush=True)

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg)
        elif self.kind == "lines":
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
        progress: the progress display (``True``: a bar, a widget or lines; ``None``: a bar
            on a terminal or a widget in a notebook, else none; ``False``: none).
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
        self.bar = _Progress(progress if main else False, total, start, run_dir.name)

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
