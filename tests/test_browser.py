"""Real-browser tests: JupyterLab as people use it, driven in Debian's Chromium by Playwright.

A JupyterLab server is started on 127.0.0.1 (a free port, a random token) over a
temporary git repository holding copies of notebooks 01 and 07 and ``pyproject.toml``
(the jupytext configuration), with the project's JupyterLab settings
(``jupyter-settings/overrides.json``) installed the way ``make lab`` installs them
(``<app settings dir>/overrides.d/rharm.json``) and fresh config, runtime, user-settings
and workspace folders, so nothing of the user's home takes part. The kernel imports a copy
of this checkout's ``rharm_lib`` placed in that repository, so whatever the notebooks
write lands there, never in the checkout. Chromium is ``/usr/bin/chromium`` (never a downloaded browser),
with a fresh profile.

Checked: double-clicking ``notebooks/*.py`` in the file browser opens a notebook (not a
text editor); saving it leaves the tracked file unchanged (``git diff --quiet``); notebook
01 runs without an error output, writes its figures and tables under the repository's
``figures/ci`` and ``results/ci`` (not under ``notebooks/``, the kernel's working
directory), its patch inspector lists every image once as "Family / name", shows the
plain-language labels and the caption with its colour legend, and its picture changes when
a control changes; notebook 07 runs, and votes cast by a click and by a key press land in the votes
CSV as rows that match what was shown; a notebook cell that trains (``progress=True``)
shows tqdm's widget with its ETA, the toolbar's interrupt button ends it with the library's
one-line message (no traceback) and a checkpoint of that step, and the cell re-run resumes
from it. Screenshots of the widgets are kept in ``runs/test-artefacts/browser/``
(git-ignored).

Skipped, with the reason, when Chromium or the ``playwright`` package is missing (CI
installs both: ``.ci/run`` and the ``dev`` extras). Marked ``browser`` (the default test
command runs them; ``-m 'not browser'`` leaves them out).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from rharm_lib.paths import data_root

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTEFACTS = ROOT / "runs" / "test-artefacts" / "browser"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NOTEBOOKS = ("01_data_exploration.py", "07_user_study.py")

_MISSING = [
    why
    for ok, why in (
        (CHROMIUM.is_file(), f"{CHROMIUM} not found (apt-get install -y chromium; .ci/run does)"),
        (
            importlib.util.find_spec("playwright") is not None,
            "the playwright package is not installed (the dev extras)",
        ),
    )
    if not ok
]


def browser_test(func):
    """Marks ``browser`` and ``slow``; skips with the reason when Chromium/playwright is missing."""
    func = pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING))(func)
    return pytest.mark.browser(pytest.mark.slow(func))


def test_committed_headers_are_what_jupytext_writes():
    """Without a browser: reading a notebook and writing it back, with the kernel that
    ``make env`` installs, gives the committed text (what JupyterLab's save does)."""
    jupytext = pytest.importorskip("jupytext")
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        nb = jupytext.read(path)
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": spec.display_name,
            "language": spec.language,
        }
        assert jupytext.writes(nb, "py:percent") == path.read_text(), path.name


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lab_settings_installs_into_the_environment(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run(["make", "-s", "lab-settings", f"VENV={venv}"], cwd=ROOT, check=True)
    installed = venv / "share/jupyter/lab/settings/overrides.d/rharm.json"
    assert installed.read_text() == (ROOT / "jupyter-settings/overrides.json").read_text()
    settings = json.loads(installed.read_text())
    viewers = settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["python"] == "Jupytext Notebook"
    dry = subprocess.run(
        ["make", "-n", "lab", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert f"{venv}/bin/jupyter lab" in dry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server over a temporary git repository; yields a dict of its facts."""
    tmp = tmp_path_factory.mktemp("lab")
    repo = tmp / "repo"
    (repo / "notebooks").mkdir(parents=True)
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, repo / "notebooks" / name)
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    # the kernel imports a copy of the library, so that the repository root it derives
    # (rharm_lib.paths.REPO_ROOT) is this temporary one: running the notebooks here never
    # writes into the checkout's figures/ or results/
    shutil.copytree(
        ROOT / "rharm_lib", repo / "rharm_lib", ignore=shutil.ignore_patterns("__pycache__")
    )
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "notebooks"], cwd=repo, check=True)
    settings = tmp / "app-settings"  # laid out as $VENV/share/jupyter/lab/settings
    (settings / "overrides.d").mkdir(parents=True)
    shutil.copy(
        ROOT / "jupyter-settings" / "overrides.json", settings / "overrides.d" / "rharm.json"
    )
    port, token = _free_port(), secrets.token_hex(16)
    votes = tmp / "votes.csv"
    env = dict(
        os.environ,
        PYTHONPATH=str(repo),
        RHARM_DATA=str(data_root()),  # the data the checkout sees (../shared/data ...)
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        RHARM_VOTES=str(votes),
        MPLBACKEND="module://matplotlib_inline.backend_inline",
    )
    env.pop("RHARM_STUDY", None)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={repo}",
        f"--LabApp.app_settings_dir={settings}",
        f"--LabApp.user_settings_dir={tmp / 'user-settings'}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to read cell outputs
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    log = open(tmp / "lab.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a busy shared machine: minutes
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {(tmp / 'lab.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start within 300 s") from None
                time.sleep(0.5)
        yield {"base": base, "token": token, "repo": repo, "votes": votes, "log": tmp / "lab.log"}
    finally:
        try:  # the server's own shutdown stops the kernels too
            req = urllib.request.Request(
                f"{base}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
            )
            urllib.request.urlopen(req, timeout=5)
        except OSError:
            proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A Chromium context with a fresh profile."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1500, "height": 1000},
        )
        ctx.set_default_timeout(60_000)
        yield ctx
        ctx.close()


def _open_by_double_click(browser, lab, name, folder="notebooks"):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # a workspace of its own, so that documents opened by earlier pages are not restored
    ws = secrets.token_hex(4)
    tree = f"/tree/{folder}" if folder else ""  # the root: no /tree (a "Path Not Found")
    page.goto(f"{lab['base']}/lab/workspaces/{ws}{tree}?token={lab['token']}")
    item = page.locator(".jp-DirListing-item", has_text=name)
    item.wait_for()
    item.dblclick()
    page.wait_for_selector(
        ".jp-NotebookPanel:not(.lm-mod-hidden), .jp-FileEditor:not(.lm-mod-hidden)"
    )
    page.wait_for_function(  # the document is loaded (not the one-cell placeholder)
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return !w.context || w.context.isReady; }"
    )
    return page, errors


def _wait_idle(page, timeout_s=180.0):
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'; }",
        timeout=timeout_s * 1000,
    )


_CELLS_JS = """() => {
  const m = window.jupyterapp.shell.currentWidget.content.model;
  const out = [];
  for (let i = 0; i < m.cells.length; i++) {
    const c = m.cells.get(i);
    if (c.type !== 'code') continue;
    const errs = [];
    for (let j = 0; j < c.outputs.length; j++) {
      const o = c.outputs.get(j).toJSON();
      if (o.output_type === 'error') errs.push(o.ename + ': ' + o.evalue);
    }
    out.push({count: c.executionCount, errors: errs});
  }
  return out;
}"""


def _run_all(page, timeout_s=600.0):
    # generous: notebook 01 takes ~35 s on an idle 2-core machine, 4 min on a shared one
    _wait_idle(page)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    # done when the kernel is idle and every code cell ran, or a cell failed (run-all
    # stops there, so waiting for the rest would only time out)
    page.wait_for_function(
        f"() => {{ const cs = ({_CELLS_JS})();"
        " const done = cs.every(c => c.count !== null && c.count > 0)"
        " || cs.some(c => c.errors.length > 0);"
        " return done && window.jupyterapp.shell.currentWidget.sessionContext.session"
        ".kernel.status === 'idle'; }",
        timeout=timeout_s * 1000,
        polling=1000,
    )
    cells = page.evaluate(_CELLS_JS)
    errors = [e for c in cells for e in c["errors"]]
    assert not errors, errors


@browser_test
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_double_click_opens_a_notebook_and_saving_changes_nothing(browser, lab, name):
    page, errors = _open_by_double_click(browser, lab, name)
    try:
        assert page.locator(".jp-NotebookPanel").count() == 1
        assert page.locator(".jp-FileEditor").count() == 0
        n_cells = page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.content.model.cells.length"
        )
        assert n_cells >= 5
        _wait_idle(page)  # the kernel started from the notebook's kernelspec, no dialog
        page.keyboard.press("Control+s")
        page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
        time.sleep(1.0)
        diff = subprocess.run(
            ["git", "diff", "--quiet", "--", f"notebooks/{name}"], cwd=lab["repo"]
        )
        shown = subprocess.run(["git", "diff"], cwd=lab["repo"], capture_output=True, text=True)
        assert diff.returncode == 0, shown.stdout
        assert not errors, errors
    finally:
        page.close()


@browser_test
def test_notebook_01_runs_and_the_inspector_reacts(browser, lab):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page, errors = _open_by_double_click(browser, lab, "01_data_exploration.py")
    try:
        _run_all(page)
        picture = page.locator(".jp-OutputArea img.widget-image").last
        picture.wait_for()
        select = page.locator(".jp-OutputArea .widget-dropdown select").last
        before = picture.get_attribute("src")
        select.select_option(index=1)
        page.wait_for_function(
            "([el, src]) => el.getAttribute('src') !== src",
            arg=[picture.element_handle(), before],
        )
        widget = picture.locator("xpath=ancestor::div[contains(@class,'widget-vbox')][1]")
        widget.scroll_into_view_if_needed()
        widget.screenshot(path=str(ARTEFACTS / "inspector.png"))
        # issue 12 item 4, as shown: every image reachable under a distinct "Family / name",
        # plain-language control labels, the caption with a colour legend
        nbsp = str.maketrans({"\xa0": " "})  # the browser renders the spaces as U+00A0
        options = [o.translate(nbsp) for o in select.locator("option").all_inner_texts()]
        assert len(options) == len(set(options)) > 1, options
        assert all(" / " in o for o in options), options
        text = widget.inner_text().translate(nbsp)
        for label in ("Family / name", "K, patches per region", "patch size (px)", "sampling seed"):
            assert label in text, label
        for legend in ("mask outline", "negative patches", "positive patches", "L_HCL"):
            assert legend in text, legend
        # item 3: run interactively (kernel cwd = notebooks/), the outputs land under the
        # repository root, where the README says, not under notebooks/
        repo = lab["repo"]
        assert list((repo / "figures" / "ci").glob("*.png")), "no figure under figures/ci"
        assert list((repo / "results" / "ci").glob("*.csv")), "no table under results/ci"
        assert not (repo / "notebooks" / "figures").exists()
        assert not (repo / "notebooks" / "results").exists()
        assert not errors, errors
    finally:
        page.close()


@browser_test
def test_notebook_07_runs_and_votes_by_click_and_key(browser, lab):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page, errors = _open_by_double_click(browser, lab, "07_user_study.py")
    try:
        _run_all(page)
        ui = page.locator(".rharm-voting").last
        ui.scroll_into_view_if_needed()
        ui.locator("input[type=text]").fill("p01")
        ui.locator("button", has_text="start / resume").click()
        first = ui.locator(".rharm-vote-1")
        first.wait_for()
        n_images = ui.locator("img.widget-image").count()
        assert n_images >= 3
        ui.screenshot(path=str(ARTEFACTS / "voting.png"))

        def rows(n):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if lab["votes"].exists():
                    df = pd.read_csv(lab["votes"])
                    if len(df) >= n:
                        return df
                time.sleep(0.25)
            raise AssertionError(f"{n} vote rows expected in {lab['votes']}")

        ui.locator(".rharm-vote-2").click()  # a click on the second image's button
        df = rows(1)
        # the next group is on screen, then wait past the widget's min_response_ms (a key
        # that arrives sooner after a group appears is ignored, by design)
        ui.locator(".widget-html", has_text="group 2 of").wait_for(timeout=30_000)
        page.wait_for_timeout(800)
        ui.locator(".widget-image").first.hover()
        page.keyboard.press("3")  # a key press over the images
        df = rows(2)
        assert len(df) == 2
        assert list(df["participant"]) == ["p01", "p01"]
        assert list(df["position"]) == [2, 3]
        assert df["trial"].tolist() == [0, 1]
        for shown, choice, pos in zip(df["shown"], df["choice"], df["position"]):
            assert shown.split("|")[pos - 1] == choice
            assert len(shown.split("|")) == n_images
        # the progress shows the third group once it is rendered
        ui.locator(".widget-html", has_text="group 3 of").wait_for(timeout=30_000)
        # the notebook itself was not changed by the key press (no command-mode shortcut)
        cells = page.evaluate(_CELLS_JS)
        assert all(c["count"] for c in cells)
        assert not errors, errors
    finally:
        page.close()


_INTERRUPT_BUTTON = (
    ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar"
    " [data-command='notebook:interrupt-kernel']"
)


@browser_test
def test_training_shows_an_eta_and_stops_cleanly_on_the_interrupt_button(browser, lab, tmp_path):
    """A notebook cell trains (tiny ``ci`` config, 3000 steps) with ``progress=True``: the
    tqdm widget shows ``n/3000 [elapsed<remaining`` (the ETA); the toolbar's interrupt
    button ends the cell with the one-line message (no traceback) and ``last.pt`` holds
    that step; the same cell re-run with the total lowered to two more steps resumes there."""
    import nbformat
    from playwright.sync_api import expect
    from test_train import write_lalonde_dir
    from test_train_interrupt import _KERNEL_CELL  # the kernel test's run, same sizes

    from rharm_lib.checkpoint import load_checkpoint

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    data, run = write_lalonde_dir(tmp_path / "lal"), tmp_path / "run"

    def cell(steps):
        return _KERNEL_CELL.format(steps=steps, data=str(data), out=str(run)).strip() + (
            '\nprint(f"resumed at step {summary.steps - summary.steps_this_call},'
            ' finished at step {summary.steps}")'
        )

    name = f"train_{secrets.token_hex(3)}.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell(3000))])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, lab["repo"] / name)
    page, errors = _open_by_double_click(browser, lab, name, folder="")
    try:
        _wait_idle(page)
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        # tqdm's widget: "<n>/3000 [<elapsed><<remaining>, <rate>step/s, <losses>]", its
        # spaces written as U+2007 (which \s matches, in Python and in JavaScript)
        bar = page.locator(".jp-OutputArea .widget-hbox", has=page.locator(".widget-hprogress"))
        eta = re.compile(r"\b[1-9]\d*/3000\s\[(\d+:)?\d+:\d\d<(\d+:)?\d+:\d\d\b")
        expect(bar).to_contain_text(eta, timeout=300_000)  # kernel start + torch import
        page.locator(_INTERRUPT_BUTTON).click()
        outputs = page.locator(".jp-Cell .jp-OutputArea").first
        message = re.compile(r"interrupted at step (\d+) of 3000; re-run this cell to resume")
        expect(outputs).to_contain_text(message, timeout=120_000)
        _wait_idle(page)
        outputs.screenshot(path=str(ARTEFACTS / "train-interrupt.png"))
        text = outputs.inner_text()
        assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
        # the error output (the last one) is that one line, nothing else
        shown = outputs.locator("[data-mime-type='application/vnd.jupyter.stderr']").last
        assert message.fullmatch(shown.inner_text().strip()), shown.inner_text()
        step = int(message.search(text)[1])
        assert 0 < step < 3000
        assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == step
        errs = page.evaluate(_CELLS_JS)[0]["errors"]
        assert len(errs) == 1 and errs[0].startswith("TrainingInterrupted: "), errs

        # the same cell, its total lowered to two more steps (steps may change on resume)
        page.evaluate(
            "src => { const nb = window.jupyterapp.shell.currentWidget.content;"
            " nb.activeCellIndex = 0; nb.activeCell.model.sharedModel.setSource(src);"
            " window.jupyterapp.commands.execute('notebook:run-cell'); }",
            cell(step + 2),
        )
        expect(outputs).to_contain_text(
            f"resumed at step {step}, finished at step {step + 2}", timeout=300_000
        )
        _wait_idle(page)
        assert page.evaluate(_CELLS_JS)[0]["errors"] == []
        assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == step + 2
        logged = pd.read_csv(run / "train_log.csv")["step"].tolist()
        assert logged == list(range(1, step + 3))
        assert not errors, errors
    finally:
        page.close()
