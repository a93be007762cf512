"""Ctrl-C during training: a checkpoint of the last completed step, the lock released, one
line instead of a traceback, an exact resume; and the progress display's ETA."""

import csv
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from test_train import tiny_cfg, write_lalonde_dir

from rharm_lib.checkpoint import load_checkpoint
from rharm_lib.cli import main as cli_main
from rharm_lib.outputs import RunLock
from rharm_lib.train import TrainingInterrupted, engine, runlog

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def sigint_as_in_a_terminal():
    """Python's own SIGINT handler for each test. A process started in the background by a
    non-interactive shell (``cmd &``, e.g. a CI runner) inherits SIGINT *ignored*, and so do
    the subprocesses and kernels it starts; Ctrl-C is then impossible by design, which is
    not what these tests are about. With a Python handler here, exec'd children start with
    the default disposition (and Python installs its handler in them)."""
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture
def lalonde_dir(tmp_path):
    return write_lalonde_dir(tmp_path / "lal")


def _hooked_loss(at_call: int, action):
    """A build_loss whose loss module runs ``action()`` inside its ``at_call``-th forward
    (1-based: the forward of step ``at_call``), with the real module's state dict (so the
    run resumes with the real loss)."""
    real = engine.build_loss

    class Hooked(torch.nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.inner, self.calls = real(cfg), 0

        def state_dict(self, *a, **k):
            return self.inner.state_dict(*a, **k)

        def load_state_dict(self, *a, **k):
            return self.inner.load_state_dict(*a, **k)

        def forward(self, *a, **k):
            self.calls += 1
            if self.calls == at_call:
                action()
            return self.inner(*a, **k)

    return Hooked


def _train(cfg, data, out, **kw):
    return engine.train(cfg, data, out, device="cpu", progress=False, eval_data="none", **kw)


def _assert_released_and_clean(run: Path) -> None:
    RunLock(run).acquire().release()  # raises RunLockedError while a lock is held
    temps = [p.name for p in run.rglob("*") if ".tmp" in p.name or ".partial" in p.name]
    assert temps == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _log_steps(run: Path) -> list[int]:
    return [int(r["step"]) for r in csv.DictReader(open(run / "train_log.csv"))]


def _assert_same_state(a: Path, b: Path) -> None:
    x, y = (load_checkpoint(p / "checkpoints" / "last.pt") for p in (a, b))
    assert x["step"] == y["step"]
    for part in ("model", "loss"):
        assert x[part].keys() == y[part].keys()
        for k in x[part]:
            assert torch.equal(x[part][k], y[part][k]), (part, k)
    for i, st in x["optimizer"]["state"].items():
        assert torch.equal(st["exp_avg_sq"], y["optimizer"]["state"][i]["exp_avg_sq"])


def test_ctrl_c_checkpoints_the_step_in_progress_and_resumes_bit_exact(
    lalonde_dir, tmp_path, monkeypatch
):
    """SIGINT in the middle of step 6 (checkpoints every 4 steps): step 6 finishes, is
    logged and checkpointed, the lock is released, and the resumed run ends with the weights
    of an uninterrupted one (deterministic CPU)."""
    assert threading.current_thread() is threading.main_thread()  # where signals arrive
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    cfg = tiny_cfg(steps=12, log_every=2, ckpt_every=4)
    _train(cfg, lalonde_dir, tmp_path / "a")

    run = tmp_path / "b"
    monkeypatch.setattr(
        engine, "build_loss", _hooked_loss(6, lambda: signal.raise_signal(signal.SIGINT))
    )
    with pytest.raises(TrainingInterrupted) as ei:
        _train(cfg, lalonde_dir, run)
    exc = ei.value
    assert isinstance(exc, KeyboardInterrupt)
    assert (exc.step, exc.total, exc.checkpoint_step, exc.resume) == (6, 12, 6, False)
    assert exc.checkpoint == run / "checkpoints" / "last.pt"
    msg = str(exc)
    assert "\n" not in msg and msg.startswith("training interrupted at step 6 of 12;")
    assert "resume=True" in msg
    assert exc._render_traceback_() == ["interrupted at step 6 of 12; pass resume=True and re-run"]
    assert load_checkpoint(exc.checkpoint)["step"] == 6
    assert _log_steps(run) == [2, 4, 6]
    _assert_released_and_clean(run)

    monkeypatch.undo()  # the real loss from here
    s = _train(cfg, lalonde_dir, run, resume=True)
    assert s.steps == 12 and s.steps_this_call == 6
    _assert_same_state(tmp_path / "a", run)
    assert _log_steps(run) == [2, 4, 6, 8, 10, 12]


class _Stop(Exception):
    pass


def test_interrupt_outside_a_step_saves_it_inside_one_keeps_the_last_checkpoint(
    lalonde_dir, tmp_path, monkeypatch
):
    """A KeyboardInterrupt during an evaluation (between steps) checkpoints that step; one
    that cuts a step (a second Ctrl-C, or any code raising it mid-step) keeps the previous
    checkpoint, as the weights may be half-updated."""
    real_eval = engine._run_eval

    def eval_then_stop(net, ds, out, cfg, dev, method=None):
        if method is None:
            raise KeyboardInterrupt
        return real_eval(net, ds, out, cfg, dev, method)

    monkeypatch.setattr(engine, "_run_eval", eval_then_stop)
    run = tmp_path / "eval"
    cfg = tiny_cfg(steps=12, log_every=2, ckpt_every=4, eval_every=3, eval_max_images=2)
    with pytest.raises(TrainingInterrupted) as ei:
        engine.train(cfg, lalonde_dir, run, resume=True, device="cpu", progress=False)
    assert (ei.value.step, ei.value.checkpoint_step) == (3, 3)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 3
    assert _log_steps(run) == [2, 3]  # the row of step 3 is written before the evaluation
    assert ei.value._render_traceback_() == [
        "interrupted at step 3 of 12; re-run this cell to resume"
    ]
    _assert_released_and_clean(run)
    monkeypatch.undo()

    def cut():
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "build_loss", _hooked_loss(7, cut))
    run = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted) as ei:
        _train(tiny_cfg(steps=12, log_every=2, ckpt_every=4), lalonde_dir, run)
    exc = ei.value
    assert (exc.step, exc.checkpoint_step) == (6, 4)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4
    assert "(last checkpoint: step 4)" in exc._render_traceback_()[0]
    assert _log_steps(run) == [2, 4, 6]
    _assert_released_and_clean(run)

    # a Ctrl-C before the first step: nothing to save, nothing claimed
    monkeypatch.setattr(engine, "build_loss", _hooked_loss(1, cut))
    run = tmp_path / "early"
    with pytest.raises(TrainingInterrupted) as ei:
        _train(tiny_cfg(steps=12), lalonde_dir, run)
    assert (ei.value.step, ei.value.checkpoint, ei.value.checkpoint_step) == (0, None, None)
    assert "no checkpoint" in str(ei.value) and not (run / "checkpoints" / "last.pt").exists()


@pytest.mark.slow  # one CLI process (~5 s on an idle 2-core machine)
def test_cli_sigint_exits_130_with_one_line_and_a_resume_command(lalonde_dir, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--config", "ci", "--data", str(lalonde_dir), "--out", str(out),
            "--steps", "100000", "--no-progress", "--eval-data", "none", "--device", "cpu",
            "--log-every", "1", "--ckpt-every", "100000", "--batch", "2", "--threads", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "rharm_lib.cli", *argv], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    log = out / "train_log.csv"
    try:
        deadline = time.time() + 600  # generous: the suite shares a loaded machine
        while not (log.exists() and len(log.read_text().splitlines()) >= 2):
            assert p.poll() is None, p.communicate()[1]
            assert time.time() < deadline, "no step logged in 600 s"
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if "interrupted" in ln]
    assert len(lines) == 1, err
    m = re.fullmatch(r"rharm: interrupted at step (\d+) of 100000; resume with: (.*)", lines[0])
    assert m, lines[0]
    step = int(m[1])
    assert step >= 1 and load_checkpoint(out / "checkpoints" / "last.pt")["step"] == step
    assert _log_steps(out)[-1] == step
    _assert_released_and_clean(out)
    cmd = shlex.split(m[2])
    assert cmd == ["rharm", *argv, "--resume"]
    # the printed command resumes (two more steps: --steps may change on resume)
    cmd[cmd.index("--steps") + 1] = str(step + 2)
    assert cli_main(cmd[1:]) == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == step + 2


# ---------------------------------------------------------------- progress display


def _row(step, elapsed, **kw):
    return {"step": step, "epoch": 0, "lr": 1e-3, "total": 0.5, "l1": 0.25, "pixel": 0.125,
            "hcl": 1.5, "hcl_skipped": 0.0, "img_per_s": 12.5, "elapsed_s": elapsed, **kw}  # fmt: skip


def test_progress_line_has_eta_from_this_calls_pace():
    line = runlog.progress_line(25, 100, 0, _row(25, 50.0))
    assert line.startswith("step 25/100 (25%)")
    assert "total 0.5 l1 0.25 pixel 0.125 hcl 1.5" in line and "12.5 img/s" in line
    assert "elapsed 00:50" in line and line.endswith("eta 02:30")  # 75 steps at 2 s
    # resumed at 50: 25 steps in 50 s, 25 left -> 50 s; hours are shown as h:mm:ss
    assert runlog.progress_line(75, 100, 50, _row(75, 50.0)).endswith("eta 00:50")
    assert runlog.progress_line(1, 1001, 0, _row(1, 10.0)).endswith("eta 2:46:40")


def test_plain_progress_lines_have_eta_and_do_not_flood(tmp_path, capsys):
    """Not a terminal, not a notebook (e.g. an executed notebook, a log file): about one
    line every 5 % of the run, each with elapsed and eta; none with ``progress=None``."""
    log = runlog.RunLogger(tmp_path / "run", 0, 1000, progress=True)
    assert log.bar.kind == "lines"
    for step in range(10, 1001, 10):
        log.losses(_row(step, step * 0.1))
    log.evaluation(1000, "model", {"psnr": 30.0})
    log.close()
    err = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err if ln.startswith("run: step ")]
    assert 20 <= len(lines) <= 22, err
    assert lines[0].startswith("run: step 10/1000") and lines[-1].startswith("run: step 1000/1000")
    assert all(re.search(r"elapsed \S+  eta \S+$", ln) for ln in lines)
    assert "eval step 1000: psnr 30" in err[-1]
    quiet = runlog.RunLogger(tmp_path / "q", 0, 10, progress=None)
    quiet.losses(_row(10, 1.0))
    quiet.close()
    assert quiet.bar.kind == "off" and capsys.readouterr().err == ""


def test_notebook_progress_is_one_widget_and_degrades_to_lines(tmp_path, capsys, monkeypatch):
    class FakeWidget:  # records what tqdm.notebook.tqdm would show
        made = []

        def __init__(self, **kw):
            self.kw, self.n, self.postfix, self.closed = kw, kw["initial"], {}, False
            FakeWidget.made.append(self)

        def set_postfix(self, d, refresh=True):
            self.postfix = d

        def update(self, n):
            self.n += n

        def write(self, msg):
            print(msg)

        def close(self):
            self.closed = True

    monkeypatch.setattr(runlog, "_notebook_tqdm", lambda: FakeWidget)
    log = runlog.RunLogger(tmp_path / "run", 40, 100, progress=None)  # resumed at 40
    for step in (50, 60):
        log.losses(_row(step, 1.0))
    log.close()
    (bar,) = FakeWidget.made
    assert log.bar.kind == "widget" and bar.kw["total"] == 100 and bar.kw["desc"] == "run"
    assert bar.n == 60 and bar.closed
    assert set(bar.postfix) == {"total", "l1", "pixel", "hcl", "img/s"}
    assert capsys.readouterr().err == ""  # the widget only

    class NoWidgets(FakeWidget):  # tqdm.notebook without ipywidgets raises ImportError
        def __init__(self, **kw):
            raise ImportError("IProgress not found")

    monkeypatch.setattr(runlog, "_notebook_tqdm", lambda: NoWidgets)
    log = runlog.RunLogger(tmp_path / "run2", 0, 100, progress=True)
    log.losses(_row(50, 5.0))
    log.close()
    assert log.bar.kind == "lines" and "eta 00:05" in capsys.readouterr().err


def test_no_widget_outside_a_kernel_even_with_ipykernel_imported():
    """tqdm.auto picks its widget when ``ipykernel.zmqshell`` is merely imported; the
    display asks for a running kernel."""
    pytest.importorskip("ipykernel.zmqshell")
    assert runlog._notebook_tqdm() is None


_KERNEL_CELL = """
import torch
from rharm_lib.losses import LossConfig
from rharm_lib.model import CONFIGS
from rharm_lib.train import get_config, train

torch.set_num_threads(1)
cfg = get_config("ci", model=CONFIGS["tiny"], loss=LossConfig(k=16), photo_size=40, crop_size=32,
                 batch_size=2, steps={steps}, log_every=1, ckpt_every=1000, deterministic=True)
summary = train(cfg, {data!r}, {out!r}, resume=True, device="cpu", progress=True, eval_data="none")
"""


def _run_cell(kc, code, on_busy=None, timeout=600):
    """Execute ``code``; its iopub messages (``on_busy()`` runs once the cell has started)."""
    msg_id, msgs = kc.execute(code), []
    deadline = time.time() + timeout
    while time.time() < deadline:
        # polled on every message too: a training cell streams widget updates without pause
        if on_busy is not None and on_busy():
            on_busy = None
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except Exception:  # queue.Empty
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs
    raise AssertionError(f"cell did not finish in {timeout} s: {msgs[-3:]}")


@pytest.mark.slow  # a real Jupyter kernel (~15 s on an idle 2-core machine)
def test_jupyter_kernel_widget_and_interrupt_button(lalonde_dir, tmp_path):
    """In a real kernel: one tqdm widget, the interrupt button (SIGINT to the kernel) ends
    the cell with one line, and re-running the cell resumes."""
    jupyter_client = pytest.importorskip("jupyter_client")
    pytest.importorskip("ipywidgets")
    out = tmp_path / "run"
    log = out / "train_log.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "IPYTHONDIR": str(tmp_path / "ipython")}  # fmt: skip
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(tmp_path))
    kc = km.client()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=300)

        def interrupt_after_a_step():
            if log.exists() and len(log.read_text().splitlines()) >= 2:
                km.interrupt_kernel()
                return True
            return False

        # bounded, so that a missed interrupt fails the test instead of training for hours
        cell = _KERNEL_CELL.format(steps=3000, data=str(lalonde_dir), out=str(out))
        msgs = _run_cell(kc, cell, on_busy=interrupt_after_a_step)
        widgets = [m for m in msgs if m["msg_type"] == "display_data"
                   and "application/vnd.jupyter.widget-view+json" in m["content"]["data"]]  # fmt: skip
        assert len(widgets) == 1, [m["msg_type"] for m in msgs]
        (err,) = [m["content"] for m in msgs if m["msg_type"] == "error"]
        assert err["ename"] == "TrainingInterrupted"
        assert len(err["traceback"]) == 1, err["traceback"]
        m = re.fullmatch(r"interrupted at step (\d+) of 3000; re-run this cell to resume",
                         err["traceback"][0])  # fmt: skip
        assert m, err["traceback"]
        step = int(m[1])
        assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == step
        streams = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
        assert "Traceback" not in streams
        # re-running the cell resumes (here to two more steps: steps may change on resume)
        msgs = _run_cell(
            kc, _KERNEL_CELL.format(steps=step + 2, data=str(lalonde_dir), out=str(out))
        )
        assert not [m for m in msgs if m["msg_type"] == "error"], msgs
        assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == step + 2
        assert _log_steps(out) == list(range(1, step + 3))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
