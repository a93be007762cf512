"""The study runner: jupytext percent-format notebooks executed with papermill.

The notebooks of ``notebooks/`` are stored as jupytext *percent* ``.py`` files (the one
source of truth: clean diffs, JupyterLab opens them as notebooks). For each selected
notebook, in the order of its two-digit number, the runner

1. converts the ``.py`` file to a notebook in memory (jupytext) and checks it has exactly
   one cell tagged ``parameters``;
2. executes it with papermill on the kernel ``python3`` with the study's root (the
   repository root by default; :func:`rharm_lib.study.outputs.study_root`) as the working
   directory, injecting the parameters of :func:`notebook_parameters` (profile, seed,
   device) and passing the root (``$RHARM_STUDY_ROOT``) and whether the profile is
   reduced (``$RHARM_STUDY_REDUCED``) in the kernel's environment;
3. writes the executed copy to ``results/<profile>/executed/<NN_name>.ipynb`` (through a
   temporary file and an atomic rename), or, on failure, to
   ``<NN_name>.failed.ipynb`` and stops, raising :class:`StudyFailure`, whose message names
   the notebook, the failing cell and its line in the ``.py`` file;
4. at the end writes ``results/<profile>/study_provenance.json`` (commit, profile, device,
   versions, date, wall time per notebook and in all; each notebook's entry carries the
   commit and date of the run that executed it, and a partial run, ``only``, keeps the
   entries of the notebooks it did not run).

Progress bars are plain text in executed notebooks: the kernel starts with an IPython
start-up file (a temporary ``IPYTHONDIR``) that points ``tqdm.auto`` and
``tqdm.autonotebook`` at the console ``tqdm``, whose output is a text stream (a widget
would be saved frozen at 0 %). ``TQDM_MININTERVAL`` (default 5 s) keeps those streams short.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..device import resolve_device as _resolve_device
from ..errors import RharmInputError
from ..outputs import RunLock
from ..paths import REPO_ROOT
from ..provenance import portable_paths, provenance, write_json_atomic
from .outputs import REDUCED_ENV, ROOT_ENV, output_dirs, study_root
from .profiles import StudyProfile

__all__ = [
    "NOTEBOOK_PATTERN",
    "PARAMETER_NAMES",
    "StudyFailure",
    "NotebookRun",
    "discover_notebooks",
    "select_notebooks",
    "load_notebook",
    "resolve_device",
    "notebook_parameters",
    "run_notebook",
    "run_study",
]

#: notebook file names: two digits, an underscore, a name, ``.py``
NOTEBOOK_PATTERN = re.compile(r"^(\d{2})_[A-Za-z0-9_]+\.py$")

#: the parameters every notebook's ``parameters`` cell declares and the runner injects
PARAMETER_NAMES = ("profile", "seed", "device")

_STARTUP = """\
# Written by rharm_lib.study.runner: console progress bars in executed notebooks.
import tqdm.asyncio as _ta
import tqdm.auto as _tauto
import tqdm.autonotebook as _tan
import tqdm.std as _ts

_tan.tqdm, _tan.trange = _ts.tqdm, _ts.trange
_tauto.tqdm, _tauto.trange = _ta.tqdm, _ta.trange
del _ta, _tauto, _tan, _ts
"""


class StudyFailure(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and its line.

    Attributes:
        notebook: the ``.py`` source of the failing notebook.
        cell: index of the failing cell in the source notebook (0-based, markdown cells
            counted), or ``None`` when the kernel itself failed.
        line: 1-based line of the cell's first code line in the ``.py`` file, or ``None``.
        executed: the executed copy holding the traceback, or ``None``.
    """

    def __init__(
        self,
        message: str,
        notebook: Path,
        cell: int | None = None,
        line: int | None = None,
        executed: Path | None = None,
    ):
        super().__init__(message)
        self.notebook = notebook
        self.cell = cell
        self.line = line
        self.executed = executed


@dataclass(frozen=True)
class NotebookRun:
    """The record of one executed notebook (``status`` is ``"ok"`` or ``"failed"``)."""

    name: str
    source: str
    executed: str
    status: str
    wall_s: float


def discover_notebooks(directory: str | os.PathLike) -> list[Path]:
    """The notebooks ``NN_name.py`` of ``directory``, sorted by number then name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RharmInputError(f"notebook folder {directory} does not exist")
    found = [p for p in directory.iterdir() if NOTEBOOK_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: (int(p.name[:2]), p.name))


def select_notebooks(notebooks: Sequence[Path], only: Sequence[str] | None) -> list[Path]:
    """Keep the notebooks whose number (``"02"`` or ``"2"``) or stem is in ``only``.

    Raises:
        RharmInputError: a requested notebook does not exist (the message lists them).
    """
    if not only:
        return list(notebooks)
    chosen: list[Path] = []
    for want in only:
        want = want.strip()
        key = want.zfill(2) if want.isdigit() else want
        hits = [p for p in notebooks if p.name[:2] == key or p.stem == key]
        if not hits:
            have = ", ".join(p.stem for p in notebooks) or "none"
            raise RharmInputError(f"no notebook {want!r}; available: {have}")
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen, key=lambda p: (int(p.name[:2]), p.name))


def load_notebook(path: str | os.PathLike):
    """Read a jupytext percent ``.py`` file as an ``nbformat`` notebook for kernel ``python3``.

    Raises:
        RharmInputError: the file does not have exactly one cell tagged ``parameters``.
    """
    import jupytext

    path = Path(path)
    nb = jupytext.read(path, fmt="py:percent")
    tagged = [
        i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if len(tagged) != 1:
        raise RharmInputError(
            f"{path}: expected exactly one cell tagged 'parameters' "
            f'(# %% tags=["parameters"]), found {len(tagged)}'
        )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def resolve_device(device: str) -> str:
    """A profile's device as the string the notebooks receive (:func:`rharm_lib.device.resolve_device`:
    ``"auto"`` -> ``"cuda"`` when a CUDA device is available, else ``"cpu"``).

    Raises:
        RharmInputError: ``"cuda"`` was asked for and torch sees no CUDA device.
    """
    return str(
        _resolve_device(device, hint="run the CPU profile instead: rharm study --profile ci")
    )


def notebook_parameters(profile: StudyProfile, device: str) -> dict[str, Any]:
    """The papermill parameters of every notebook (the output folders follow from the
    profile: :func:`rharm_lib.study.session.output_dirs`)."""
    return {"profile": profile.name, "seed": profile.seed, "device": device}


@contextlib.contextmanager
def _kernel_environment(extra: dict[str, str]) -> Iterator[None]:
    """Set environment variables (inherited by the kernel) and an IPython start-up file."""
    with tempfile.TemporaryDirectory(prefix="rharm-ipython-") as ipdir:
        startup = Path(ipdir, "profile_default", "startup")
        startup.mkdir(parents=True)
        (startup / "00-rharm-plain-progress.py").write_text(_STARTUP)
        env = {"IPYTHONDIR": ipdir, "PYDEVD_DISABLE_FILE_VALIDATION": "1", **extra}
        env.setdefault("TQDM_MININTERVAL", os.environ.get("TQDM_MININTERVAL", "5"))
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _source_line(py_path: Path, cell_source: str) -> int | None:
    """1-based line of ``cell_source``'s first non-blank line in ``py_path``."""
    first = next((ln.strip() for ln in cell_source.splitlines() if ln.strip()), None)
    if first is None:
        return None
    for i, line in enumerate(py_path.read_text().splitlines(), start=1):
        if line.strip() == first:
            return i
    return None


def _cell_in_source(nb, cell_source: str) -> int | None:
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and c.source == cell_source:
            return i
    return None


def run_notebook(
    source: Path,
    executed_dir: Path,
    parameters: dict[str, Any],
    cwd: Path,
    kernel_name: str = "python3",
    stream: bool = True,
    env: dict[str, str] | None = None,
) -> NotebookRun:
    """Execute one notebook with papermill; see the module docstring.

    Args:
        source: the jupytext percent ``.py`` file.
        executed_dir: where the executed copy goes (created).
        parameters: injected after the ``parameters`` cell.
        cwd: the kernel's working directory (the repository root).
        kernel_name: the Jupyter kernel (``python3``).
        stream: echo the notebook's outputs on this process's stdout/stderr.
        env: extra environment variables for the kernel.

    Returns:
        the :class:`NotebookRun` record of a successful run.

    Raises:
        StudyFailure: a cell raised, or the kernel died; the executed copy is kept as
            ``<name>.failed.ipynb``.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = load_notebook(source)
    executed_dir.mkdir(parents=True, exist_ok=True)
    final = executed_dir / f"{source.stem}.ipynb"
    failed = executed_dir / f"{source.stem}.failed.ipynb"
    tmp = executed_dir / f".{source.stem}.partial.ipynb"
    for stale in (final, failed):
        stale.unlink(missing_ok=True)
    env = {"RHARM_STUDY": "1", "RHARM_STUDY_NOTEBOOK": source.stem, **(env or {})}
    t0 = time.perf_counter()
    try:
        with _kernel_environment(env):
            papermill.execute_notebook(
                nb,
                str(tmp),
                parameters=parameters,
                kernel_name=kernel_name,
                progress_bar=False,
                cwd=str(cwd),
                stdout_file=sys.stdout if stream else None,
                stderr_file=sys.stderr if stream else None,
            )
    except PapermillExecutionError as exc:
        if tmp.exists():
            os.replace(tmp, failed)
        cell = _cell_in_source(nb, exc.source)
        line = _source_line(source, exc.source)
        where = f"cell {cell}" if cell is not None else f"executed cell {exc.cell_index}"
        if line is not None:
            where += f" (line {line})"
        raise StudyFailure(
            f"notebook {source} failed in {where}: {exc.ename}: {exc.evalue}\n"
            f"  the executed copy with the traceback: {failed}",
            notebook=source,
            cell=cell,
            line=line,
            executed=failed if failed.exists() else None,
        ) from None
    except Exception as exc:  # the kernel died, timed out or could not start
        if tmp.exists():
            os.replace(tmp, failed)
        raise StudyFailure(
            f"notebook {source} failed: {type(exc).__name__}: {exc}",
            notebook=source,
            executed=failed if failed.exists() else None,
        ) from exc
    except BaseException:  # Ctrl-C: no half-written executed copy is left behind
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, final)
    return NotebookRun(
        name=source.stem,
        source=str(source),
        executed=str(final),
        status="ok",
        wall_s=round(time.perf_counter() - t0, 2),
    )


def _merge_provenance(path: Path, record: dict[str, Any], partial: bool) -> dict[str, Any]:
    """``record`` with each notebook entry stamped with the commit and date of the run that
    executed it; after a partial run (``--only``) the entries of the notebooks it did not
    run are kept from the previous record at ``path`` (with their own commit and date), so
    that the committed record still describes every table in the folder."""
    stamp = {"git_commit": record.get("git_commit"), "date_utc": record.get("date_utc")}
    entries = [{**nb, **stamp} for nb in record.get("notebooks", [])]
    if partial and path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        if not isinstance(old, dict):
            old = {}
        ran = {nb["name"] for nb in entries}
        for nb in old.get("notebooks", []):
            if isinstance(nb, dict) and nb.get("name") not in ran:
                entries.append(
                    {
                        **nb,
                        "git_commit": nb.get("git_commit", old.get("git_commit")),
                        "date_utc": nb.get("date_utc", old.get("date_utc")),
                    }
                )
    entries.sort(key=lambda nb: str(nb.get("name", "")))
    return {**record, "notebooks": entries}


def run_study(
    profile: StudyProfile,
    only: Sequence[str] | None = None,
    notebooks_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    kernel_name: str = "python3",
    stream: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the study's notebooks for ``profile``; return the provenance record it wrote.

    Args:
        profile: the study profile (a reduced one, :func:`rharm_lib.study.profiles.reduced`,
            is passed on to the kernels as ``$RHARM_STUDY_REDUCED=1``).
        only: notebook numbers or stems to run (``None`` = all, in order).
        notebooks_dir: default the repository's ``notebooks/``.
        root: the working directory of the kernels and the base of ``figures/``,
            ``results/`` and ``runs/`` (passed on as ``$RHARM_STUDY_ROOT``); default
            :func:`rharm_lib.study.outputs.study_root` (the repository root, or
            ``<repo>/runs/reduced`` for a reduced profile, unless ``$RHARM_STUDY_ROOT``
            says otherwise).
        kernel_name: the Jupyter kernel.
        stream: echo the notebooks' outputs.
        log: where the runner's one-line progress messages go.

    Returns:
        the record written to ``results/<profile>/study_provenance.json``.

    Raises:
        StudyFailure: at the first failing notebook (the provenance, with status
            ``failed``, is still written).
        RharmInputError: unknown notebook in ``only``, a notebook without a parameters
            cell, a CUDA profile without a CUDA device, or another study running on the
            same results folder (:class:`rharm_lib.outputs.RunLock`; its PID is named).
    """
    device = resolve_device(profile.device)
    root = Path(root) if root is not None else study_root(profile.reduced)
    nb_dir = Path(notebooks_dir) if notebooks_dir is not None else REPO_ROOT / "notebooks"
    notebooks = select_notebooks(discover_notebooks(nb_dir), only)
    if not notebooks:
        raise RharmInputError(f"no notebooks NN_name.py in {nb_dir}")
    for nb in notebooks:  # fail early on a malformed notebook, before any kernel starts
        load_notebook(nb)
    params = notebook_parameters(profile, device)
    _, results_dir = output_dirs(profile.name, root)
    # one study per results folder at a time (two would interleave their tables)
    with RunLock(results_dir, what=f"rharm study --profile {profile.name}: results folder"):
        executed_dir = results_dir / "executed"
        env = {
            "RHARM_STUDY_PROFILE": profile.name,
            ROOT_ENV: str(root),
            REDUCED_ENV: "1" if profile.reduced else "0",  # get_profile in the kernels
        }
        runs: list[NotebookRun] = []
        t0 = time.perf_counter()
        failure: StudyFailure | None = None
        for nb in notebooks:
            log(
                f"rharm study [{profile.name}]: running {nb.relative_to(root) if nb.is_relative_to(root) else nb}"
            )
            t_nb = time.perf_counter()
            try:
                run = run_notebook(nb, executed_dir, params, root, kernel_name, stream, env)
            except StudyFailure as exc:
                failure = exc
                runs.append(
                    NotebookRun(
                        name=nb.stem,
                        source=str(nb),
                        executed=str(exc.executed or ""),
                        status="failed",
                        wall_s=round(time.perf_counter() - t_nb, 2),
                    )
                )
                break
            runs.append(run)
            log(
                f"rharm study [{profile.name}]: {nb.stem} done in {run.wall_s:.1f} s -> {run.executed}"
            )
        wall = round(time.perf_counter() - t0, 2)
        record = portable_paths(
            provenance(
                device,
                profile=profile.to_dict(),
                only=list(only) if only else None,
                kernel=kernel_name,
                parameters=params,
                notebooks=[r.__dict__ for r in runs],
                status="failed" if failure else "ok",
                wall_time_s=wall,
            )
        )  # committed: repository-relative paths
        record = _merge_provenance(results_dir / "study_provenance.json", record, bool(only))
        write_json_atomic(results_dir / "study_provenance.json", record)
        if failure is not None:
            raise failure
        log(f"rharm study [{profile.name}]: {len(runs)} notebook(s) in {wall:.1f} s")
        return record
