"""The student's and the instructor's path in a real browser: JupyterLab and Formgrader in Chromium.

Playwright for Python drives the system Chromium (Debian's ``chromium``, which ``.ci/run`` installs;
Playwright's own browser download is not needed). The student's test walks README's path with no staging:

1. a fresh ``git clone`` of the repository, and ``make lab`` in it (the Makefile's own command, with this
   venv instead of a new one, a free port and no token); a student sees no Nbgrader menu and no Formgrader;
2. the browser lands in ``notebooks/``; the student opens Lab 2 there and runs the cells up to the first
   check, which shows the "not implemented yet" report and one line, no traceback; the set-up shows nothing;
3. the link under the exercise opens ``labkit/adversarial.py`` in JupyterLab's editor; the student types
   an implementation, saves with Ctrl+S, goes back to the notebook and re-runs the check: PASS, same kernel;
4. a tqdm loop in a new cell shows a progress-bar widget at 100%; no news toast showed at any point.

The instructor's test builds a course with ``labkit-course course build`` and opens nbgrader's Formgrader.
Screenshots go to ``build/screenshots/`` (look at them). Marked ``browser`` and ``slow``; skipped, saying
why, where Chromium or Playwright is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

from labkit_course.repo import REPO, SOLUTIONS
from labkit_course.sync import _DEF, BEGIN_SOLUTION, END_SOLUTION, stub_source

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = REPO / "build" / "screenshots"
CHROMIUM = next(
    (
        p
        for p in (
            os.environ.get("LABKIT_CHROMIUM"),
            shutil.which("chromium"),
            "/usr/bin/chromium",
            shutil.which("chromium-browser"),
        )
        if p and Path(p).exists()
    ),
    None,
)
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--mute-audio",
]
BIN = Path(sys.executable).parent
TIMEOUT = 120_000  # ms, for what waits on a kernel (imports on a loaded 2-core machine)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a JupyterLab server isolated in ``home``: every cell rendered (no windowing, so the
    test can reach any cell), nothing else configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        LABKIT_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        **extra,
    )
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    return env


def _server_args(port: int) -> list[str]:
    args = [f"--port={port}", "--no-browser", "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token="]
    if hasattr(os, "getuid") and os.getuid() == 0:
        args.append("--allow-root")
    return args


@contextmanager
def _serving(cmd: list[str], cwd: Path, env: dict, log_path: Path, port: int, token: str = ""):
    """Run ``cmd`` (a Jupyter server on ``port``, logging to ``log_path``) until the block ends; yields its URL
    once ``/api/status`` answers. ``token``: the server's login token, if it has one (without it a
    token-protected server answers 403 to every poll)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError("the Jupyter server did not start:\n" + log_path.read_text()[-3000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, 15)  # make and the server it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


@contextmanager
def make_lab(clone: Path, home: Path):
    """``make lab`` in ``clone``, exactly as a student runs it, with this test's venv (no reinstall: ``-o``
    marks its install stamp up to date) and a free port without a token (``JUPYTER_ARGS``).

    ``PYTHONPATH`` puts the clone's labkit first, as the clone's own editable install would."""
    port = _free_port()
    venv = BIN.parent
    cmd = ["make", "--no-print-directory", "-o", str(venv / ".installed-lab"), "lab", f"VENV={venv}"]
    cmd.append("JUPYTER_ARGS=" + " ".join(_server_args(port)))
    env = _isolated_env(home, PYTHONPATH=str(clone))
    with _serving(cmd, clone, env, home / "jupyter.log", port) as url:
        yield url


@contextmanager
def jupyter_lab(root: Path, home: Path):
    """The instructor's JupyterLab on ``root`` (nbgrader's extensions on), isolated in ``home``; yields its URL."""
    port = _free_port()
    cmd = [str(BIN / "jupyter"), "lab", f"--ServerApp.root_dir={root}", *_server_args(port)]
    cmd += ["--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with _serving(cmd, root, _isolated_env(home, PYTHONPATH=str(root)), home / "jupyter.log", port) as url:
        yield url


def _status(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=30).status
    except urllib.error.HTTPError as err:
        return err.code


def _shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def _code_sources(path: Path) -> list[str]:
    import nbformat

    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _no_dialog(page, timeout: int = 10_000) -> None:
    """Accept a modal dialog that JupyterLab leaves open, as a student would, with a warning that quotes it
    and a screenshot.

    Under CI's full load JupyterLab sometimes asks "Select Kernel" for the notebook (Python 3 preselected)
    instead of starting it: a student clicks Select. A real problem (a dead kernel, a failed save) still
    fails the checks that follow.
    """
    dialog = page.locator(".jp-Dialog").first
    try:
        dialog.wait_for(state="hidden", timeout=timeout)
        return
    except Exception:
        text = dialog.inner_text()
    _shot(page, "unexpected_dialog")
    warnings.warn(f"JupyterLab showed a dialog, accepted: {text!r}", stacklevel=2)
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").first.click()
    dialog.wait_for(state="hidden", timeout=timeout)


def _run_cell(page, cell) -> None:
    """Select a cell and run it with Shift+Enter, as a student does."""
    _no_dialog(page)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-prompt").first.click()
    page.keyboard.press("Shift+Enter")


def _wait_idle(page, timeout=TIMEOUT) -> None:
    page.wait_for_function(
        "() => { const s = document.querySelectorAll('.jp-InputArea-prompt');"
        " return Array.from(s).every(p => !p.textContent.includes('[*]')); }",
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium: install Debian's `chromium` (apt-get install chromium), or set LABKIT_CHROMIUM")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def _with_one_exercise_solved(module: str, function: str) -> str:
    """The student file of ``module`` with ``function`` written (its reference body), the rest stubs:
    what a student types for one exercise."""
    lines, current = [], None
    for line in (SOLUTIONS / "labkit" / f"{module}.py").read_text().splitlines(keepends=True):
        m = _DEF.match(line)
        if m:
            current = m.group(2)
        if current == function and line.strip() in (BEGIN_SOLUTION, END_SOLUTION):
            continue
        lines.append(line)
    return stub_source("".join(lines), module)


def test_student_walks_lab_2_from_a_fresh_clone(browser, tmp_path):
    """The path README gives: clone, ``make lab``, open Lab 2 from the landing folder, run up to the first
    check (only the friendly report), follow the exercise's link to labkit/adversarial.py, type an
    implementation, save with Ctrl+S, re-run the check in the same kernel: PASS."""
    from playwright.sync_api import expect

    clone = tmp_path / "labkit"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    exercise_file = clone / "labkit" / "adversarial.py"
    assert "not implemented yet" in exercise_file.read_text()
    notebook = "02_adversarial.ipynb"
    with make_lab(clone, tmp_path / "home") as url:
        assert _status(f"{url}/formgrader") == 404, "a student's server serves Formgrader"
        assert _status(f"{url}/api/contents/labkit/adversarial.py") == 200, "the exercise file is out of reach"
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT)
        page.goto(url)  # where `make lab` sends the browser: the landing folder, notebooks/
        page.wait_for_url("**/lab/tree/notebooks**")
        listing = page.locator(".jp-DirListing-item").filter(has_text=notebook)
        listing.wait_for()
        menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
        assert "File" in menus and not any("nbgrader" in m.lower() for m in menus), menus
        _shot(page, "1_student_landing")
        listing.dblclick()

        page.wait_for_selector(".jp-Notebook .jp-Cell", state="visible")
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached")
        code = page.locator(".jp-Notebook .jp-CodeCell")
        sources = _code_sources(clone / "notebooks" / notebook)
        deadline = time.monotonic() + TIMEOUT / 1000  # cells attach one by one after the first shows
        while code.count() < len(sources) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert code.count() == len(sources)
        checked = next(i for i, s in enumerate(sources) if "check.adversarial.linear_adversarial()" in s)
        for i in range(checked + 1):
            _run_cell(page, code.nth(i))
            _wait_idle(page)
        # JupyterLab renders an error output (as any stderr) with the stderr mime type
        stderr = page.locator(".jp-Notebook .jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']")
        output = code.nth(checked).locator(".jp-OutputArea")
        try:  # the set-up cells import torch and load a model: minutes on a loaded 2-core machine
            output.get_by_text("not implemented yet").first.wait_for(timeout=3 * TIMEOUT)
        except Exception:
            _shot(page, "2_student_first_check_FAILED")  # what the student saw instead
            raise
        assert stderr.count() == 1, [stderr.nth(i).inner_text() for i in range(stderr.count())]
        setup = code.nth(1).locator(".jp-OutputArea-output")
        assert setup.count() == 0, f"the set-up cell shows {setup.first.inner_text()!r}"
        assert code.nth(3).locator(".jp-OutputArea img").count() >= 1, "the photos' figure did not render"
        text = output.inner_text()
        assert "adversarial.linear_adversarial: not implemented yet" in text, text
        assert "Traceback" not in text and "runner.py" not in text and "NotImplementedError" not in text, text
        assert output.locator("[data-mime-type='application/vnd.jupyter.stderr']").inner_text().strip() == (
            "linear_adversarial() is not implemented yet: fill in its body in labkit/adversarial.py"
        )
        code.nth(checked).scroll_into_view_if_needed()
        _shot(page, "2_student_first_check")
        kernels = json.load(urllib.request.urlopen(f"{url}/api/kernels"))

        # the exercise's instructions link to its file: one click opens it in JupyterLab's editor
        link = page.locator(".jp-MarkdownCell a").filter(has_text="labkit/adversarial.py").first
        link.scroll_into_view_if_needed()
        link.click()
        editor = page.locator(".jp-FileEditor .cm-content")
        editor.wait_for(state="visible")
        tab = page.locator(".lm-TabBar-tab.jp-mod-current[data-type='document-title']")
        expect(tab).to_have_attribute("title", re.compile(r"^Path: labkit/adversarial\.py$", re.M))  # filled late
        _shot(page, "3_student_exercise_file")
        typed = _with_one_exercise_solved("adversarial", "linear_adversarial")
        editor.click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(typed)  # as a paste: CodeMirror adds no indentation or brackets
        page.keyboard.press("Control+s")
        deadline = time.monotonic() + 30
        while exercise_file.read_text() != typed and time.monotonic() < deadline:
            time.sleep(0.5)
        assert exercise_file.read_text() == typed, "the editor did not save the file as typed"
        page.keyboard.press("Control+Home")  # the typed body, near the top, into view for the screenshot
        editor.locator(".cm-line").filter(has_text="return (x + eps * direction)").scroll_into_view_if_needed()
        _shot(page, "4_student_saved")

        # back to the notebook's tab: the same kernel runs the check on the saved file
        page.locator(".lm-TabBar-tab").filter(has_text=notebook).first.click()
        check_cell = page.locator(".jp-Notebook .jp-CodeCell").nth(checked)
        _run_cell(page, check_cell)
        _wait_idle(page)
        output = check_cell.locator(".jp-OutputArea")
        output.get_by_text("well done").first.wait_for()
        text = output.inner_text()
        assert "PASS" in text and "FAIL" not in text and "not implemented" not in text, text
        _shot(page, "5_student_check_pass")
        assert json.load(urllib.request.urlopen(f"{url}/api/kernels"))[0]["id"] == kernels[0]["id"], (
            "the kernel restarted"
        )

        # a progress bar is a widget (tqdm.auto with ipywidgets, the lab extra), not lines of text
        page.keyboard.press("Escape")
        page.keyboard.press("b")  # a new cell below, as a student adds one
        page.keyboard.press("Enter")
        page.keyboard.insert_text("from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='steps'): pass")
        page.keyboard.press("Shift+Enter")
        _wait_idle(page)
        widget = page.locator(".jp-OutputArea-output:has(.widget-hprogress)").filter(has_text="steps:").first
        widget.wait_for()  # ipywidgets' HBox: label, progress bar, counts
        assert "100%" in widget.inner_text() and "3/3" in widget.inner_text(), widget.inner_text()
        assert widget.locator(".progress-bar").evaluate("bar => bar.style.width") == "100%"
        _shot(page, "6_student_progress_bar")
        # the students' configuration (binder/student) asks no news question, at any point of the session
        assert page.locator(".Toastify__toast").count() == 0, page.locator(".Toastify__toast").first.inner_text()
        page.close()


def test_instructor_opens_formgrader_on_a_built_course(browser, tmp_path):
    course = tmp_path / "course"
    built = subprocess.run(
        [str(BIN / "labkit-course"), "course", "build", str(course), "--labs", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    with jupyter_lab(course, tmp_path / "home") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(TIMEOUT)
        page.goto(f"{url}/formgrader")
        page.get_by_role("link", name="lab1", exact=True).wait_for()  # the table is filled by the gradebook
        body = page.inner_text("body")
        assert "Manage Assignments" in body and "Manual Grading" in body
        _shot(page, "7_instructor_formgrader")
        page.goto(f"{url}/lab")
        page.wait_for_selector(".lm-MenuBar-itemLabel", state="visible")
        menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
        assert any("nbgrader" in m.lower() for m in menus), f"the instructor's JupyterLab has no Nbgrader menu: {menus}"
        _shot(page, "8_instructor_lab")
        page.close()
