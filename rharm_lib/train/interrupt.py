"""Stopping a training run cleanly on Ctrl-C (or Jupyter's "interrupt kernel" button).

- :class:`DeferredInterrupt`: during the training loop, a SIGINT that arrives inside a
  *critical* block (an optimiser step, a log row, a checkpoint write) is held until the
  block has finished, so the run stops at a step boundary with consistent weights; one
  that arrives elsewhere (an evaluation, a barrier) raises ``KeyboardInterrupt`` at once,
  as usual. A second Ctrl-C while one is held stops at once (a step that hangs can still
  be left; that step is then not checkpointed).
- :class:`TrainingInterrupted`: what :func:`rharm_lib.train.train` raises instead of a bare
  ``KeyboardInterrupt`` once it has checkpointed the last completed step and released the
  run lock. A ``KeyboardInterrupt`` subclass (code that catches ``KeyboardInterrupt`` still
  does); its message is one line, and IPython/Jupyter show that line instead of a
  traceback (``_render_traceback_``). ``rharm`` prints
  ``rharm: interrupted at step N; resume with: <the same command> --resume`` and exits 130.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["DeferredInterrupt", "TrainingInterrupted"]


class TrainingInterrupted(KeyboardInterrupt):  # noqa: N818 (a KeyboardInterrupt, named like one)
    """A training run stopped by Ctrl-C; the run folder can be resumed.

    Attributes:
        step: optimiser steps completed when the run stopped.
        total: the run's total steps (``None`` when stopped before it was known).
        run_dir: the run folder.
        checkpoint: ``run_dir/checkpoints/last.pt`` when it exists, else ``None``.
        checkpoint_step: the step that checkpoint holds (``step`` after a clean stop;
            earlier when a second Ctrl-C stopped a step half-way), else ``None``.
        resume: whether the interrupted call had ``resume=True`` (then the same call
            resumes; otherwise it needs ``resume=True`` / ``--resume``).
    """

    def __init__(
        self,
        step: int,
        total: int | None,
        run_dir: str | Path,
        checkpoint: str | Path | None,
        checkpoint_step: int | None,
        resume: bool,
    ) -> None:
        self.step, self.total, self.run_dir = step, total, Path(run_dir)
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_step, self.resume = checkpoint_step, resume
        how = "run the same call again" if resume else "call train() again with resume=True"
        super().__init__(f"training interrupted at step {self.at}; {self.saved}; {how}")

    @property
    def at(self) -> str:
        """``"N of M"`` (``"N"`` when the total is unknown)."""
        return f"{self.step}" if self.total is None else f"{self.step} of {self.total}"

    @property
    def saved(self) -> str:
        """What is on disk, e.g. ``"checkpoint RUN/checkpoints/last.pt (step 120)"``."""
        if self.checkpoint is None:
            return f"no checkpoint in {self.run_dir} yet (a resume starts afresh)"
        return f"checkpoint {self.checkpoint} (step {self.checkpoint_step})"

    @property
    def behind(self) -> str:
        """``""`` when the checkpoint holds ``step``, else why a resume starts earlier."""
        if self.checkpoint_step == self.step:
            return ""
        if self.checkpoint is None:
            return " (no checkpoint yet)"
        return f" (last checkpoint: step {self.checkpoint_step})"

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback (a notebook cell's one-line error)."""
        how = "re-run this cell to resume" if self.resume else "pass resume=True and re-run"
        return [f"interrupted at step {self.at}{self.behind}; {how}"]


class DeferredInterrupt:
    """Hold SIGINT inside :meth:`critical` blocks while the context is entered (see the
    module docstring).

    Installed only in the main thread (where Python runs signal handlers) and only over
    Python's default handler (the one that raises ``KeyboardInterrupt``; also the one
    ipykernel runs cells under): an ignored SIGINT (a background job) or a program's own
    handler is left alone, and then this class does nothing.

    Attributes:
        pending: a Ctrl-C is held and will be raised when the critical block ends.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.installed, self.pending, self.depth = False, False, 0

    def __enter__(self) -> DeferredInterrupt:
        if (
            self.enabled
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            signal.signal(signal.SIGINT, self._handler)
            self.installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.installed = False
        self.pending = False

    def _handler(self, signum: int, frame: object) -> None:
        if self.depth and not self.pending:
            self.pending = True  # raised when the critical block ends
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A block that a (first) Ctrl-C does not cut; it is raised when the block ends."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if self.pending and not self.depth:
            self.pending = False
            raise KeyboardInterrupt
