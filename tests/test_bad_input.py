"""Bad input, as a careless user gives it: one line ``rharm: error: ...``, exit 2, no
traceback, and the filesystem as it was (nothing half-written, nothing foreign deleted).

Each case of issue #10 runs the real CLI in its own process: a driver process imports
``rharm_lib`` once and forks a child per case (the child's stdout/stderr are files, its exit
status is the command's), so a case costs the command's own work, not a Python start-up.
One tiny checkpoint (1 step of the ``ci`` config on the built-in photos) serves every
checkpoint case.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rharm_lib.checkpoint import load_checkpoint, tensor_digest
from rharm_lib.outputs import LOCK, MANIFEST, RunLock, clean_stale_temps, foreign_files

REPO = Path(__file__).resolve().parent.parent

_DRIVER = textwrap.dedent(
    """
    import json, os, sys, traceback
    from rharm_lib.cli import main
    for line in sys.stdin:
        case = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os.chdir(case["cwd"])
            out = os.open(case["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            err = os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
            os.dup2(err, 2)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            try:
                rc = main(case["argv"])
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                traceback.print_exc()
                rc = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(rc or 0))
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
    """
)


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def one_error_line(self, rc: int = 2) -> str:
        """Assert: exit ``rc``, exactly one stderr line ``rharm: error: ...``, no traceback
        and no usage block; return that line."""
        lines = self.err.splitlines()
        assert self.rc == rc, (self.rc, self.err)
        assert len(lines) == 1, self.err
        assert lines[0].startswith("rharm: error: "), self.err
        assert "Traceback" not in self.err and "usage:" not in self.err
        return lines[0]


class Driver:
    def __init__(self, tmp: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        env.pop("RANK", None)
        self.tmp, self.n = tmp, 0
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def __call__(self, *argv: str, cwd: Path) -> Result:
        self.n += 1
        o, e = self.tmp / f"{self.n}.out", self.tmp / f"{self.n}.err"
        case = {"argv": [str(a) for a in argv], "cwd": str(cwd), "stdout": str(o), "stderr": str(e)}
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()
        rc = json.loads(self.proc.stdout.readline())["rc"]
        return Result(rc, o.read_text(), e.read_text())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    d = Driver(tmp_path_factory.mktemp("driver"))
    yield d
    d.close()


@pytest.fixture(scope="module")
def world(cli, tmp_path_factory):
    """A folder with a tiny checkpoint (1 step of ``ci``), a 48x40 composite and its mask."""
    w = tmp_path_factory.mktemp("world")
    r = cli("train", "--config", "ci", "--data", "builtin", "--out", "run", "--steps", "1",
            "--threads", "1", "--no-progress", "--eval-data", "none", cwd=w)  # fmt: skip
    assert r.rc == 0, r.err
    rng = np.random.default_rng(0)
    comp = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    mask = np.zeros((40, 48), np.uint8)
    mask[10:30, 12:30] = 255
    Image.fromarray(comp).save(w / "comp.png")
    Image.fromarray(mask).save(w / "mask.png")
    return w


def _ckpt(world: Path) -> Path:
    return world / "run" / "checkpoints" / "last.pt"


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --- numbers out of range, unknown devices, argparse errors: one line, nothing written ---
ARG_CASES = {
    "train --device tpu": ["train", "--config", "ci", "--data", "builtin", "--out", "o", "--device", "tpu"],
    "harmonize --device tpu": ["harmonize", "c.png", "m.png", "-o", "o.png", "--checkpoint", "x.pt", "--device", "tpu"],
    "bench infer --device tpu": ["bench", "infer", "--config", "tiny", "--device", "tpu"],
    "bench train --device tpu": ["bench", "train", "--config", "ci", "--device", "tpu"],
    "synth --size 0": ["data", "synth", "--size", "0", "--out", "o"],
    "synth --size -64": ["data", "synth", "--size", "-64", "--out", "o"],
    "pack --size 0": ["data", "pack", "--photos", "builtin", "--size", "0", "--out", "o"],
    "train --lr -1": ["train", "--config", "ci", "--data", "builtin", "--out", "o", "--lr", "-1"],
    "train --lr nan": ["train", "--config", "ci", "--data", "builtin", "--out", "o", "--lr", "nan"],
    "train --threads -1": ["train", "--config", "ci", "--data", "builtin", "--out", "o", "--threads", "-1"],
    "harmonize --threads -1": ["harmonize", "c.png", "m.png", "-o", "o.png", "--checkpoint", "x.pt", "--threads", "-1"],
    "bench infer --size 0": ["bench", "infer", "--config", "tiny", "--size", "0"],
    "bench infer --repeats 0": ["bench", "infer", "--config", "tiny", "--repeats", "0"],
    "evaluate --eval-size 0": ["evaluate", "--data", "builtin", "--method", "composite", "--out", "o", "--eval-size", "0"],
    "train --eval-every -1": ["train", "--config", "ci", "--data", "builtin", "--out", "o", "--eval-every", "-1"],
    "train unknown option": ["train", "--config", "ci", "--data", "builtin", "--out", "o", "--bogus"],
    "train missing --out": ["train", "--config", "ci", "--data", "builtin"],
    "no subcommand": [],
}  # fmt: skip


def test_argument_errors_are_one_line(cli, tmp_path):
    msgs = {}
    for name, argv in ARG_CASES.items():
        r = cli(*argv, cwd=tmp_path)
        msgs[name] = r.one_error_line()
        assert not (tmp_path / "o").exists() and not (tmp_path / "o.png").exists(), name
    assert list(tmp_path.iterdir()) == []
    assert "'tpu'" in msgs["train --device tpu"] and "cuda:N" in msgs["bench train --device tpu"]
    assert "native" in msgs["evaluate --eval-size 0"]
    assert ">= 0, got -1" in msgs["train --eval-every -1"]
    assert "finite" in msgs["train --lr nan"] and "> 0" in msgs["train --lr -1"]
    assert "unrecognized arguments: --bogus" in msgs["train unknown option"]
    assert msgs["train missing --out"].startswith("rharm: error: train: ")


def test_eval_size_too_large_is_refused_with_an_estimate(cli, tmp_path):
    r = cli("evaluate", "--data", "builtin", "--method", "composite", "--out", "e",
            "--eval-size", "99999", cwd=tmp_path)  # fmt: skip
    line = r.one_error_line()
    assert "99999" in line and "GB" in line
    assert list(tmp_path.iterdir()) == []


# --- harmonize: the output path is checked before the work; JPEG warns once ---
@pytest.mark.parametrize(
    "out, words",
    [
        ("afile/out.png", "is a file, not a folder"),
        ("adir", "is a folder"),
        ("noext", "no suffix"),
        ("out.xyz", "'.xyz'"),
    ],
)
def test_harmonize_bad_output_path_before_inference(cli, world, tmp_path, out, words):
    (tmp_path / "afile").write_text("keep")
    (tmp_path / "adir").mkdir()
    before = _listing(tmp_path)
    # the checkpoint does not exist: the -o error must come first (checked before the work)
    r = cli("harmonize", world / "comp.png", world / "mask.png", "-o", out,
            "--checkpoint", tmp_path / "missing.pt", cwd=tmp_path)  # fmt: skip
    line = r.one_error_line()
    assert "-o" in line and words in line and "tmp" not in line
    assert _listing(tmp_path) == before and (tmp_path / "afile").read_text() == "keep"


def test_harmonize_jpeg_warns_once_png_is_exact(cli, world, tmp_path):
    r = cli("harmonize", world / "comp.png", world / "mask.png", "-o", "out.jpg",
            "--checkpoint", _ckpt(world), "--threads", "1", cwd=tmp_path)  # fmt: skip
    assert r.rc == 0 and len(r.err.splitlines()) == 1, r.err
    assert r.err.startswith("rharm: warning: ") and "lossy" in r.err and "bit-identical" in r.err
    r = cli("harmonize", world / "comp.png", world / "mask.png", "-o", "out.png",
            "--checkpoint", _ckpt(world), "--threads", "1", cwd=tmp_path)  # fmt: skip
    assert r.rc == 0 and r.err == ""
    comp = np.asarray(Image.open(world / "comp.png"))
    mask = np.asarray(Image.open(world / "mask.png")) > 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.array_equal(out[~mask], comp[~mask])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jpg", "out.png"]  # no temporaries


# --- checkpoints: non-finite, corrupted, raw pickle, wrong shape ---
def _resave(src: Path, dst: Path, edit, digest: bool = True, **save_kw) -> Path:
    obj = torch.load(src, map_location="cpu", weights_only=True)
    edit(obj)
    if digest:
        payload = {k: v for k, v in obj.items() if k not in ("format", "format_version", "digest")}
        obj["digest"] = tensor_digest(payload)
    torch.save(obj, dst, **save_kw)
    return dst


def _set_inf_running_var(obj):
    key = next(k for k in obj["model"] if k.endswith("running_var"))
    obj["model"][key][0] = float("inf")


def _wrong_widths(obj):
    obj["train_config"]["model"]["widths"] = [8, 8, 8, 8, 8]


def _raw_pickle(dst: Path) -> Path:
    """A plain ``pickle`` file (protocol 4: torch's weights-only loader warns, then fails)."""
    dst.write_bytes(pickle.dumps({"model": {"w": [1.0, 2.0]}, "step": 1}, protocol=4))
    return dst


def _corrupt(src: Path, dst: Path) -> Path:
    """Flip 50 bytes inside the largest tensor's data (found by its bytes in the file)."""
    data = bytearray(src.read_bytes())
    ck = torch.load(src, map_location="cpu", weights_only=True)
    big = max(ck["model"].values(), key=lambda t: t.numel()).contiguous()
    at = bytes(data).find(big.numpy().tobytes()[:256])
    assert at > 0
    for i in range(at + 100, at + 150):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def test_bad_checkpoints_are_refused_in_one_line(cli, world, tmp_path):
    ck = _ckpt(world)
    cases = {
        "non-finite buffer": (_resave(ck, tmp_path / "inf.pt", _set_inf_running_var), "non-finite"),
        "corrupted": (_corrupt(ck, tmp_path / "flip.pt"), "is corrupted"),
        "raw pickle": (_raw_pickle(tmp_path / "raw.pt"), "not a readable rharm checkpoint"),
        "wrong shape": (_resave(ck, tmp_path / "shape.pt", _wrong_widths), "do not fit"),
    }
    for name, (path, words) in cases.items():
        r = cli("harmonize", world / "comp.png", world / "mask.png", "-o", "o.png",
                "--checkpoint", path, cwd=tmp_path)  # fmt: skip
        assert words in r.one_error_line(), (name, r.err)
        assert not (tmp_path / "o.png").exists()
    # the corrupted file is also refused by evaluate, before any result is written
    r = cli("evaluate", "--data", "builtin", "--method", "checkpoint", "--checkpoint",
            tmp_path / "flip.pt", "--out", "e", cwd=tmp_path)  # fmt: skip
    assert "is corrupted" in r.one_error_line() and not (tmp_path / "e").exists()


def test_nan_in_buffers_stops_training_and_keeps_a_finite_checkpoint(cli, tmp_path):
    # lr 3e2 overflows BatchNorm's running_var a few steps before any loss is non-finite
    r = cli("train", "--config", "ci", "--data", "builtin", "--out", "x", "--steps", "14",
            "--lr", "3e2", "--lr-schedule", "constant", "--log-every", "1", "--ckpt-every", "2", "--threads", "1",
            "--no-progress", "--eval-data", "none", cwd=tmp_path)  # fmt: skip
    line = r.one_error_line(rc=3)
    assert "non-finite" in line and "last good checkpoint is kept" in line
    ck = load_checkpoint(tmp_path / "x" / "checkpoints" / "last.pt")  # loads: all finite
    assert f"(step {ck['step']})" in line
    assert [p.name for p in (tmp_path / "x" / "checkpoints").iterdir()] == ["last.pt"]


# --- output folders: a file, foreign files, --overwrite, data pack ---
def test_output_folders_and_files(cli, tmp_path):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    before = _listing(tmp_path)
    refused = {
        "train --out <file>": ["train", "--config", "ci", "--data", "builtin", "--out", "afile", "--steps", "1"],
        "train --eval-data <missing>": ["train", "--config", "ci", "--data", "builtin", "--out", "run",
                                        "--steps", "1", "--eval-data", "nope", "--threads", "1"],
        "evaluate --out <file>": ["evaluate", "--data", "builtin", "--method", "composite", "--out", "afile"],
        "evaluate --out <foreign>": ["evaluate", "--data", "builtin", "--method", "composite", "--out", "foreign"],
        "synth --overwrite <foreign>": ["data", "synth", "--size", "32", "--out", "foreign", "--overwrite"],
        "synth --overwrite <file>": ["data", "synth", "--size", "32", "--out", "afile", "--overwrite"],
        "synth --out <file>/x": ["data", "synth", "--size", "32", "--out", "afile/x"],
        "pack --out <file>": ["data", "pack", "--photos", "builtin", "--size", "32", "--out", "afile"],
        "pack --out <folder>": ["data", "pack", "--photos", "builtin", "--size", "32", "--out", "foreign"],
        "fetch --out <foreign>": ["data", "fetch", "lalonde", "--url", "http://127.0.0.1:9/x.zip",
                                  "--out", "foreign", "--quiet"],
    }  # fmt: skip
    msgs = {name: cli(*argv, cwd=tmp_path).one_error_line() for name, argv in refused.items()}
    assert _listing(tmp_path) == before  # nothing written, nothing deleted
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "afile").read_text() == "mine"
    assert "notes.txt" in msgs["synth --overwrite <foreign>"]
    assert "notes.txt" in msgs["fetch --out <foreign>"]  # refused before any download
    assert "nope" in msgs["train --eval-data <missing>"]
    assert "not written by this command" in msgs["pack --out <file>"]


def test_overwrite_replaces_only_what_we_wrote(cli, tmp_path):
    # synth: a benchmark we wrote is replaced with --overwrite; a stranger's file stops it
    argv = ["data", "synth", "--size", "32", "--out", "b", "--families", "transfer"]
    assert cli(*argv, cwd=tmp_path).rc == 0
    assert (tmp_path / "b" / MANIFEST).is_file() and foreign_files(tmp_path / "b") == []
    assert "--overwrite" in cli(*argv, cwd=tmp_path).one_error_line()
    assert cli(*argv, "--overwrite", cwd=tmp_path).rc == 0
    (tmp_path / "b" / "Transfer" / "notes.txt").write_text("mine")
    assert "notes.txt" in cli(*argv, "--overwrite", cwd=tmp_path).one_error_line()
    assert (tmp_path / "b" / "Transfer" / "notes.txt").read_text() == "mine"
    # pack: a previous pack is replaced, an unrelated file is not
    argv = ["data", "pack", "--photos", "builtin", "--split", "test", "--size", "32"]
    assert cli(*argv, "--out", "p.rhpack", cwd=tmp_path).rc == 0
    assert cli(*argv, "--out", "p.rhpack", cwd=tmp_path).rc == 0
    # evaluate: a previous result is replaced, not a folder with an extra file
    argv = ["evaluate", "--data", "builtin", "--method", "composite", "--eval-size", "32",
            "--no-progress", "--out", "e"]  # fmt: skip
    assert cli(*argv, cwd=tmp_path).rc == 0
    (tmp_path / "e" / MANIFEST).unlink()  # a result written before manifests: still ours
    assert cli(*argv, cwd=tmp_path).rc == 0
    assert (tmp_path / "e" / MANIFEST).is_file()
    (tmp_path / "e" / "mine.txt").write_text("mine")
    assert "mine.txt" in cli(*argv, cwd=tmp_path).one_error_line()
    assert (tmp_path / "e" / "mine.txt").is_file()
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert hidden == []  # no temporaries left beside the outputs


# --- run folders: one writer, lock released on a crash, stale temporaries cleaned ---
def test_second_run_on_a_locked_folder_is_refused(cli, tmp_path):
    with RunLock(tmp_path / "run"):
        r = cli("train", "--config", "ci", "--data", "builtin", "--out", "run", "--steps", "1",
                "--eval-data", "none", "--threads", "1", cwd=tmp_path)  # fmt: skip
        line = r.one_error_line()
        assert f"PID {os.getpid()}" in line and "in use" in line
        assert [p.name for p in (tmp_path / "run").iterdir()] == [LOCK]


def test_lock_is_released_when_the_holder_is_killed(tmp_path):
    code = (
        "import sys, time; from rharm_lib.outputs import RunLock; "
        f"RunLock({str(tmp_path / 'run')!r}).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(Exception, match=f"PID {p.pid}"):
            RunLock(tmp_path / "run").acquire()
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    RunLock(tmp_path / "run").acquire().release()


def test_stale_temporaries_of_dead_processes_are_removed_at_start(cli, world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    dead = subprocess.Popen(["true"])
    dead.wait()
    ckdir = run / "checkpoints"
    (ckdir / f".last.pt.tmp-{dead.pid}").write_bytes(b"x" * 1000)
    (ckdir / f".last.pt.tmp-{os.getpid()}").write_bytes(b"alive")  # a live writer's: kept
    r = cli("train", "--config", "ci", "--data", "builtin", "--out", "run", "--steps", "2",
            "--resume", "--threads", "1", "--no-progress", "--eval-data", "none", cwd=tmp_path)  # fmt: skip
    assert r.rc == 0, r.err
    assert sorted(p.name for p in ckdir.iterdir()) == [f".last.pt.tmp-{os.getpid()}", "last.pt"]
    assert load_checkpoint(ckdir / "last.pt")["step"] == 2


# --- read-only destinations (root writes anyway: the check is exercised through os.access) ---
def test_read_only_destinations_are_refused_before_the_work(tmp_path, monkeypatch, capsys):
    from rharm_lib import outputs
    from rharm_lib.cli import main

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(outputs.os, "access", lambda p, m: False if Path(p) == ro else real(p, m))
    cases = [
        ["harmonize", "c.png", "m.png", "-o", str(ro / "o.png"), "--checkpoint", "x.pt"],
        ["evaluate", "--data", "builtin", "--method", "composite", "--out", str(ro / "e")],
        ["data", "synth", "--size", "32", "--out", str(ro / "b")],
        ["train", "--config", "ci", "--data", "builtin", "--out", str(ro / "r"), "--steps", "1"],
        ["train", "--config", "ci", "--data", "builtin", "--out", str(ro), "--steps", "1"],
        ["data", "pack", "--photos", "builtin", "--out", str(ro / "p.rhpack")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "not writable" in err[0], (argv, err)
    assert list(ro.iterdir()) == []


def test_clean_stale_temps_keeps_other_files(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    names = [f".a.pt.tmp-{dead.pid}", f".img.png.tmp-{dead.pid}.png", f".e.tmp-{os.getpid()}",
             "a.pt.tmp-1", ".notes.txt", "keep.pt"]  # fmt: skip
    for n in names:
        (tmp_path / n).write_text("x")
    (tmp_path / f".res.tmp-{dead.pid}").mkdir()
    gone = {p.name for p in clean_stale_temps(tmp_path)}
    assert gone == {names[0], names[1], f".res.tmp-{dead.pid}"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])
