"""Where commands write: early path checks, run-folder locks, temp-sibling writes, manifests.

Every command that writes (``harmonize``, ``evaluate``, ``data synth``, ``data pack``,
``train``, ``study``) goes through this module, so that they share four guarantees:

1. **Checked before the work.** :func:`check_output_file` / :func:`check_output_dir` refuse,
   with one :class:`~rharm_lib.errors.RharmInputError` line, an output whose parent is a
   file, a read-only destination, a folder where a file is needed (and vice versa), an
   unknown suffix, and a destination holding files this program did not write.
2. **Nothing half-written.** Files and folders are written to a temporary sibling named
   ``.<name>.tmp-<pid>[<suffix>]`` (:func:`tmp_sibling`) and renamed into place
   (:func:`atomic_file`, :func:`publish_dir`); a crash leaves the previous complete output or
   the new one. Temporaries of processes that no longer exist are removed by
   :func:`clean_stale_temps` at the next start.
3. **Nothing foreign deleted.** A folder we wrote carries :data:`MANIFEST` (the relative
   paths of the files written, and the command); ``--overwrite`` replaces a folder only when
   every file in it is listed there (:func:`foreign_files`).
4. **One writer per run folder.** :class:`RunLock` holds ``fcntl.flock`` on :data:`LOCK`
   for the run's life (the kernel releases it when the process dies, even by SIGKILL); a
   second process is refused with the holder's PID.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import RharmInputError

__all__ = [
    "MANIFEST",
    "LOCK",
    "LOSSY_SUFFIXES",
    "check_output_file",
    "check_output_dir",
    "tmp_sibling",
    "atomic_file",
    "publish_dir",
    "write_manifest",
    "read_manifest",
    "foreign_files",
    "clean_stale_temps",
    "pid_alive",
    "RunLock",
    "RunLockedError",
]

#: the manifest a folder written by rharm carries (JSON: ``command``, ``files``)
MANIFEST = ".rharm-manifest.json"
#: the lock file of a run folder (holds the PID of the process that has it)
LOCK = ".rharm.lock"
#: suffixes whose format is lossy (the background is then not bit-identical to the input)
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")
#: ``.<name>.tmp-<pid>`` with an optional suffix kept for formats chosen by extension
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)(?P<suffix>\.[A-Za-z0-9]+)?$")


def _check_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable folder."""
    parent = path.parent if str(path.parent) else Path(".")
    probe = parent
    while not probe.exists():
        if probe.is_symlink():  # a dangling link: mkdir would fail
            raise RharmInputError(f"{what} {path}: {probe} is a broken symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise RharmInputError(f"{what} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RharmInputError(f"{what} {path}: folder {probe} is not writable")


def check_output_file(
    path: str | os.PathLike,
    *,
    what: str = "--out",
    suffixes: Iterable[str] | None = None,
    replaceable: bool | None = None,
) -> Path:
    """Check, before any work, that a file can be written at ``path``.

    Args:
        path: the destination file.
        what: how the message names the option (``"-o"``, ``"--out"``).
        suffixes: allowed suffixes (lower case, with the dot); ``None`` = any.
        replaceable: for an existing file, whether it may be replaced (``None``: yes;
            ``False``: it is not ours, refuse).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        RharmInputError: ``path`` is a folder, has an unknown suffix, its parent is a file
            or not writable, or it is an existing file that is not ours.
    """
    p = Path(path)
    if p.is_dir():
        raise RharmInputError(f"{what} {p} is a folder; give a file name")
    if suffixes is not None:
        allowed = tuple(suffixes)
        if p.suffix.lower() not in allowed:
            got = f"suffix {p.suffix!r}" if p.suffix else "no suffix"
            raise RharmInputError(f"{what} {p}: {got}; use one of {', '.join(allowed)}")
    _check_parent(p, what)
    if p.exists() and replaceable is False:
        raise RharmInputError(
            f"{what} {p} exists and was not written by this command; remove it or choose "
            "another name"
        )
    return p


def check_output_dir(
    path: str | os.PathLike,
    *,
    what: str = "--out",
    overwrite: bool = True,
    legacy: Iterable[str] = (),
    in_place: bool = False,
) -> Path:
    """Check, before any work, that a folder can be written (or replaced) at ``path``.

    Args:
        path: the destination folder.
        what: how the message names the option.
        overwrite: an existing folder of ours may be replaced (else: refused unless empty).
        legacy: top-level names a folder of ours holds when it predates :data:`MANIFEST`.
        in_place: the command writes inside the folder (a run folder) rather than
            replacing it: foreign files are allowed, the folder itself must be writable.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        RharmInputError: ``path`` is a file, its parent is a file, it is not writable, or
            it holds files this program did not write (or is ours but ``overwrite`` is off).
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise RharmInputError(f"{what} {p} is a file; give a folder")
    _check_parent(p, what)
    if not p.is_dir():
        return p
    if in_place:
        if not os.access(p, os.W_OK | os.X_OK):
            raise RharmInputError(f"{what} {p}: folder is not writable")
        return p
    if not any(p.iterdir()):
        return p
    foreign = foreign_files(p, legacy)
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise RharmInputError(
            f"{what} {p} holds files rharm did not write ({shown}); nothing was replaced, "
            "choose another folder"
        )
    if not overwrite:
        raise RharmInputError(f"{what} {p} already exists (pass --overwrite to replace it)")
    return p


def tmp_sibling(path: str | os.PathLike, keep_suffix: bool = False) -> Path:
    """The temporary sibling ``.<name>.tmp-<pid>`` of ``path`` (``+ suffix`` when
    ``keep_suffix``, for writers that choose the format from the extension)."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}" + (p.suffix if keep_suffix else ""))


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling to write; on success fsync it and rename it to ``path``.

    On an exception (or Ctrl-C) the temporary file is removed and ``path`` is untouched.
    """
    dst = Path(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(dst, keep_suffix)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _publish_mode(tmp, directory=False)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def _publish_mode(path: Path, directory: bool) -> None:
    """Give a temporary file/dir (created 0600/0700) the usual umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def publish_dir(tmp: Path, out: Path, command: str, legacy: Iterable[str] = ()) -> Path:
    """Write :data:`MANIFEST` into the finished ``tmp`` folder and rename it to ``out``.

    An existing ``out`` (checked by :func:`check_output_dir` to be ours; ``legacy`` as
    there) is moved aside first and removed after the rename; on failure it is put back.
    Returns ``out``.
    """
    write_manifest(tmp, command)
    _publish_mode(tmp, directory=True)
    old: Path | None = None
    try:
        if out.is_dir():
            if foreign_files(out, legacy):  # written meanwhile by someone else: never delete it
                raise RharmInputError(f"{out} changed while this command ran; nothing replaced")
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        if old is not None and not out.exists():
            os.rename(old, out)  # put the previous result back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def _files(folder: Path) -> list[str]:
    return sorted(
        q.relative_to(folder).as_posix()
        for q in folder.rglob("*")
        if not q.is_dir() and q.name not in (MANIFEST, LOCK)
    )


def write_manifest(folder: str | os.PathLike, command: str) -> None:
    """Record every file now under ``folder`` as written by ``command`` (:data:`MANIFEST`)."""
    folder = Path(folder)
    rec = {"command": command, "files": _files(folder)}
    (folder / MANIFEST).write_text(json.dumps(rec, indent=1) + "\n")


def read_manifest(folder: str | os.PathLike) -> set[str] | None:
    """The files :data:`MANIFEST` lists (``None``: no readable manifest)."""
    try:
        rec = json.loads((Path(folder) / MANIFEST).read_text())
        return {str(f) for f in rec["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def foreign_files(folder: str | os.PathLike, legacy: Iterable[str] = ()) -> list[str]:
    """Files under ``folder`` that rharm did not write (relative POSIX paths, sorted).

    Ours: the files :data:`MANIFEST` lists; without a manifest, files under the top-level
    names in ``legacy`` (folders written before manifests existed).
    """
    folder = Path(folder)
    listed = read_manifest(folder)
    legacy = set(legacy)
    out = []
    for f in _files(folder):
        ours = f in listed if listed is not None else f.split("/", 1)[0] in legacy
        if not ours:
            out.append(f)
    return out


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries (``.<name>.tmp-<pid>…``, files or folders) that processes
    which no longer exist left in ``folder`` (SIGKILL during a write). Returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    gone = []
    for q in folder.iterdir():
        m = _TMP_RE.match(q.name)
        if m is None or int(m["pid"]) == os.getpid() or pid_alive(int(m["pid"])):
            continue
        if q.is_dir() and not q.is_symlink():
            shutil.rmtree(q, ignore_errors=True)
        else:
            q.unlink(missing_ok=True)
        gone.append(q)
    return gone


class RunLockedError(RharmInputError):
    """Another process holds the run folder's lock (a :class:`RharmInputError`, so the CLI
    exits 2 naming the holder; batch drivers such as ``rharm ablate`` skip the run)."""


class RunLock:
    """An exclusive lock on a run folder, held for the run's life (``with RunLock(dir):``).

    ``fcntl.flock`` on ``folder/.rharm.lock``; the file holds the holder's PID. The kernel
    drops the lock when the process ends, however it ends. When the body fails and the
    folder was created by this lock and holds nothing else, the folder is removed again
    (a refused run leaves nothing behind).

    Raises:
        RunLockedError: another process holds the lock (the message gives its PID).
    """

    def __init__(self, folder: str | os.PathLike, what: str = "--out") -> None:
        self.folder, self.what = Path(folder), what
        self.fd: int | None = None
        self.created: list[Path] = []

    def acquire(self) -> RunLock:
        missing = []
        p = self.folder
        while not p.exists():
            missing.append(p)
            p = p.parent
        self.folder.mkdir(parents=True, exist_ok=True)
        self.created = missing
        path = self.folder / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise RunLockedError(
                f"{self.what} {self.folder} is in use by another rharm process (PID {holder}); "
                "wait for it to end or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self, failed: bool = False) -> None:
        if self.fd is None:
            return
        os.close(self.fd)  # releases the flock
        self.fd = None
        if failed and self.created and [q.name for q in self.folder.iterdir()] == [LOCK]:
            (self.folder / LOCK).unlink(missing_ok=True)
            for q in self.created:  # innermost first
                with contextlib.suppress(OSError):
                    q.rmdir()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release(failed=exc_type is not None)
