"""Graded hostile submissions, where an instructor looks at them: nothing runs, everything honest shows.

The toy course (tests/grading_samples/toy_lab.py) with the samples of tests/test_sanitize.py (an
honest submission, a hostile one that executed in the sandbox, one nbgrader could not process) is
graded once by ``labkit-course grade``. Then the files it wrote are checked, plain ``nbgrader
autograde`` is shown refused, and ``jupyter lab`` is started as docs/instructors.md says
(``JUPYTER_CONFIG_PATH=COURSE/.jupyter``: the course's server extension, labkit_course.formgrader).
The instructor logs in with the token and opens, in Chromium, Formgrader's submission list, each
submission's page, the Autograde button and the feedback page. Every payload, had it run, would have
left ``window.__pwned``, a dialog, a request to ``/api`` and a file in the course. Screenshots go to
``build/screenshots/``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlparse

import nbformat
import pytest

from labkit_course import formgrader, sanitize
from tests.test_browser import BIN, SCREENSHOTS, _free_port, _isolated_env, _server_args, _serving, _shot
from tests.test_sanitize import (
    HONEST_ANSWER,
    MARKER,
    STUDENTS,
    active_parts,
    feedback_active_parts,
    html_payloads,
    make_samples,
    new_active_parts,
)

# the `browser` fixture (Chromium) of the module it belongs to, without a conftest
pytest_plugins = ["tests.test_browser"]
# one worker grades the samples once for every test here
pytestmark = pytest.mark.xdist_group("formgrader")

TIMEOUT = 60_000  # ms
ANSWER = HONEST_ANSWER.split(":")[0]  # the answer's text, without its formula


def _tree(course: Path) -> dict[str, str]:
    """path -> sha256 of every file of the course but the gradebook (Formgrader may touch its journal)."""
    return {
        str(p.relative_to(course)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(course.rglob("*"))
        if p.is_file() and not p.name.startswith("gradebook.db") and ".jupyter" not in p.parts
    }


@pytest.fixture(scope="module")
def graded_samples(tmp_path_factory):
    """The toy course with the samples graded (and feedback generated) by labkit-course grade."""
    from labkit_course import build, grading, sandbox
    from tests.grading_samples.toy_lab import TOY, make_repo
    from tests.test_grading import LIMITS

    if sandbox.bwrap() is None:
        pytest.skip("bubblewrap (bwrap) is missing or not working: cannot grade (apt-get install bubblewrap)")
    repo = make_repo(tmp_path_factory.mktemp("sanitize") / "repo")
    course = build.build_course(repo.parent / "course", [TOY], repo=repo, cell_timeout=LIMITS.cell_timeout)
    students = make_samples(course)
    table = grading.grade(course, 0, workers=2, students=students, limits=LIMITS, progress=False)
    return course, table


@pytest.mark.slow
def test_graded_submissions_are_inert_everywhere_an_instructor_looks(graded_samples):
    course, table = graded_samples
    assert not (course.parent / MARKER).exists()
    assert table.loc["honest", "status"] == "graded" and table.loc["honest", "auto_total"] == 5
    for student in STUDENTS:
        graded = nbformat.read(course / "autograded" / student / "lab0" / "00_toy.ipynb", as_version=4)
        assert not new_active_parts(graded), (student, new_active_parts(graded))
        assert "pwned" not in json.dumps(graded.metadata) and '"trusted"' not in json.dumps(graded)
        answer = next(c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer")
        assert ANSWER in answer.source and "\\sum_{i \\in \\emptyset}" in answer.source
        feedback = (course / "feedback" / student / "lab0" / "00_toy.html").read_text()
        assert not feedback_active_parts(feedback), (student, feedback_active_parts(feedback))
        assert ANSWER in feedback
        report = (course / "feedback" / student / "lab0" / "grading_report.html").read_text()
        assert not active_parts(report)
        assert not [p for p in (course / "autograded" / student).rglob("*") if p.suffix in (".html", ".svg")]

    hostile = nbformat.read(course / "autograded" / "hostile" / "lab0" / "00_toy.ipynb", as_version=4)
    outputs = [o for c in hostile.cells if c.cell_type == "code" for o in c.outputs]
    shown = [o.get("data", {}).get("text/plain", "") for o in outputs]
    assert shown.count(sanitize.ACTIVE_NOTE) == 2 and sanitize.UNSUPPORTED_NOTE in shown  # js, widget; raw
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the honest figure
    assert any(o.output_type == "error" and "onerror" in o.evalue for o in outputs)  # as text
    # nbgrader could not process "broken": it is `failed`, its written answer shown (sanitized, above)
    assert table.loc["broken", "status"] == "failed"


@contextmanager
def instructor_server(course: Path, home: Path, token: str):
    """``jupyter lab`` in the course folder as docs/instructors.md starts it, with a login token; yields
    its URL and log."""
    port = _free_port()
    args = [a for a in _server_args(port) if not a.startswith("--IdentityProvider.token")]
    cmd = [str(BIN / "jupyter"), "lab", *args, f"--IdentityProvider.token={token}"]
    env = _isolated_env(home, JUPYTER_CONFIG_PATH=str(course / ".jupyter"))
    log_path = home / "server.log"
    with _serving(cmd, course, env, log_path, port, token=token) as url:
        yield url, log_path


def test_policy_confines_formgrader_to_its_own_api():
    csp = formgrader.policy("http://127.0.0.1:8888", "/")
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    assert directives["connect-src"] == "http://127.0.0.1:8888/formgrader/api/"
    assert directives["default-src"] == "'none'" and directives["frame-src"] == "'none'"
    assert "allow-popups" not in directives["sandbox"] and "allow-same-origin" in directives["sandbox"]


@pytest.mark.slow
def test_course_refuses_plain_nbgrader_autograde(graded_samples, tmp_path):
    """`nbgrader autograde` in the course would run the student's code as the instructor: refused."""
    course, _ = graded_samples
    copy = shutil.copytree(course, tmp_path / "course", symlinks=True)
    run = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", "lab0", "--student", "hostile", "--force"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0 and "labkit-course grade" in run.stdout + run.stderr
    assert not (copy.parent / MARKER).exists()
    assert not (course.parent / MARKER).exists()


@pytest.mark.slow
@pytest.mark.browser
def test_instructor_sees_sanitized_submissions_and_nothing_runs(browser, graded_samples, tmp_path):
    from PIL import Image

    course, _ = graded_samples
    before = _tree(course)
    token = secrets.token_hex(16)
    dialogs, requests, violations = [], [], []
    with instructor_server(course, tmp_path / "home", token) as (url, log_path):
        context = browser.new_context(viewport={"width": 1100, "height": 2000})  # a whole toy notebook
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

        # the instructor logs in with the token
        page.goto(f"{url}/login?next=%2Fformgrader%2Fgradebook%2Flab0%2F00_toy")
        page.fill("input[type=password]", token)
        page.keyboard.press("Enter")
        page.wait_for_url("**/formgrader/gradebook/lab0/00_toy")
        # the submission list, filled by Formgrader's own API (student names are hidden until asked)
        page.wait_for_function(f"() => document.querySelectorAll('tbody tr').length >= {len(STUDENTS)}")
        assert all(student in page.content() for student in STUDENTS)
        shots = {"list": _shot(page, "formgrader_1_submission_list")}

        ids = {
            s["student"]: s["id"]
            for s in page.request.get(f"{url}/formgrader/api/submitted_notebooks/lab0/00_toy").json()
        }
        for student in STUDENTS:
            response = page.goto(f"{url}/formgrader/submissions/{ids[student]}/")
            assert response.status == 200, student
            assert "connect-src" in response.headers.get("content-security-policy", ""), student
            notebook = page.locator("#notebook-container").first  # the page nests two
            notebook.wait_for()
            text = notebook.inner_text()
            assert ANSWER in text, student  # a written answer
            math = page.locator("#notebook-container .MathJax, #notebook-container mjx-container")
            assert "\\sum_{i \\in \\emptyset}" in text or math.count(), student  # a formula (TeX when offline)
            if student != "broken":
                figure = page.locator("#notebook-container img[src^='data:image/png']").first
                assert figure.evaluate("img => img.complete && img.naturalWidth") > 100, student
            if student == "hostile":
                assert "[removed: active content]" in text and "[removed: unsupported output]" in text
                assert "onerror" in text  # the error message, shown as text
            assert page.evaluate("() => window.__pwned === undefined"), student
            shots[student] = _shot(page, f"formgrader_2_submission_{student}")

        # Formgrader's Autograde button: refused, in Formgrader's own error dialog; nothing runs again
        page.goto(f"{url}/formgrader/manage_submissions/lab0")
        page.locator("tbody tr", has_text="hostile").locator(".autograde a").click()
        refusal = page.locator("#error-modal")
        refusal.get_by_role("button", name="OK").wait_for()
        page.wait_for_function("() => getComputedStyle(document.querySelector('#error-modal')).opacity === '1'")
        assert "labkit-course grade" in refusal.inner_text() and "outside the sandbox" in refusal.inner_text()
        shots["autograde"] = _shot(page, "formgrader_3_autograde_refused")

        # the feedback page, through the instructor's server, as JupyterLab's "Open in New Browser Tab" opens it
        xsrf = next(c["value"] for c in context.cookies() if c["name"] == "_xsrf")
        response = page.goto(f"{url}/files/feedback/hostile/lab0/00_toy.html?_xsrf={quote(xsrf)}")
        assert response.status == 200
        body = page.inner_text("body")
        assert ANSWER in body and "\\sum_{i \\in \\emptyset}" in body
        assert page.locator("img[src^='data:image/png']").first.evaluate("img => img.naturalWidth") > 100
        assert page.evaluate("() => window.__pwned === undefined")
        shots["feedback"] = _shot(page, "formgrader_4_feedback_hostile")
        page.wait_for_timeout(1000)  # late payloads (a failed image, a timer) would have fired by now

        assert not dialogs, dialogs
        assert not [u for u in requests if urlparse(u).path.startswith("/api/")], requests
        assert not violations, violations  # nothing the policy had to stop, nothing of Formgrader's it broke
        assert not list(course.rglob("pwned*")) and _tree(course) == before, "a file in the course changed"
        assert "labkit: Formgrader under a Content-Security-Policy" in log_path.read_text()

        # Control: payloads left unsanitized in the honest notebook do run (so the checks above would have seen
        # them), and the policy alone still keeps them from /api, from dialogs and from the course's files.
        ran = _open_with_raw_payloads(page, course / "autograded" / "honest" / "lab0" / "00_toy.ipynb", url, ids)
        assert {"canary-script", "canary-img"} <= set(ran), ran
        assert [u for u in requests if urlparse(u).path.startswith("/api/")], "the payloads' requests were not seen"
        assert not dialogs and violations and not list(course.rglob("pwned*"))
        context.close()

    # the sanitized hostile submission next to the honest one, for a human to look at
    left, right = Image.open(shots["honest"]), Image.open(shots["hostile"])
    both = Image.new("RGB", (left.width + right.width + 20, max(left.height, right.height)), "white")
    both.paste(left, (0, 0))
    both.paste(right, (left.width + 20, 0))
    both.save(SCREENSHOTS / "formgrader_honest_vs_hostile.png")


def _open_with_raw_payloads(page, notebook: Path, url: str, ids: dict) -> list[str]:
    """Open the honest submission's page with a markdown cell of raw payloads appended to its notebook (put
    back after); returns the payloads that ran (``window.__pwned``)."""
    original = notebook.read_bytes()
    nb = nbformat.reads(original.decode(), as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(html_payloads("canary")))
    notebook.chmod(0o644)  # nbgrader leaves it read-only
    try:
        nbformat.write(nb, notebook)
        page.goto(f"{url}/formgrader/submissions/{ids['honest']}/")
        page.wait_for_function("() => (window.__pwned || []).length > 0")
        page.wait_for_timeout(1000)
        return page.evaluate("() => window.__pwned")
    finally:
        notebook.write_bytes(original)


@pytest.mark.slow
def test_build_writes_the_instructor_server_config(graded_samples):
    course, _ = graded_samples
    config = json.loads((course / ".jupyter" / "jupyter_server_config.json").read_text())
    assert config["ServerApp"]["jpserver_extensions"] == {"labkit_course.formgrader": True}
    nbgrader_config = (course / "nbgrader_config.py").read_text()
    assert "labkit_course.formgrader.RefuseAutograde" in nbgrader_config
    assert "labkit_course.sanitize.feedback_hook" in nbgrader_config
