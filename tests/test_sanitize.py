"""labkit_course.sanitize: nothing a student submits stays active in what an instructor's tool renders.

One hostile sample per channel (written answers, extra markdown cells, display outputs, raw output
JSON, cell and notebook metadata, error messages), on the functions. :func:`make_samples` builds the
same payloads into toy-course submissions (an executed hostile notebook, one nbgrader cannot process,
an honest one), graded end to end and opened in Chromium by tests/test_formgrader.py. Every payload,
if it ran, would record itself in ``window.__pwned``, open a dialog and write a file through
``/api/contents``.
"""

from __future__ import annotations

import base64
import functools
import json
import shutil
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output

from labkit_course import sanitize

ACTIVE_TAGS = {"script", "iframe", "frame", "object", "embed", "form", "base", "meta", "style", "link", "svg", "math"}


def js(channel: str) -> str:
    """What each payload runs: a mark, a dialog, a file written through the contents API. No double quotes."""
    return (
        f"(window.__pwned=window.__pwned||[]).push('{channel}');alert('{channel}');"
        f"fetch('/api/contents/pwned_{channel}.txt',{{method:'PUT',headers:{{'X-XSRFToken':"
        "decodeURIComponent((document.cookie.match(/_xsrf=([^;]+)/)||['',''])[1])},"
        f"body:JSON.stringify({{type:'file',format:'text',content:'{channel}'}})}})"
    )


def html_payloads(channel: str) -> str:
    inner = base64.b64encode(f"<script>{js(channel + '-data')}</script>".encode()).decode()
    return "\n".join(
        [
            f'<img src=x onerror="{js(channel + "-img")}">',
            f"<script>{js(channel + '-script')}</script>",
            f'<iframe srcdoc="<script>{js(channel + "-srcdoc")}</script>"></iframe>',
            f'<iframe src="javascript:{js(channel + "-iframe")}"></iframe>',
            f'<svg onload="{js(channel + "-svg")}"><circle r="5"/></svg>',
            f'<details open ontoggle="{js(channel + "-details")}">details</details>',
            f'<a href="data:text/html;base64,{inner}">data link</a>',
            f'<a href="JaVaScRiPt:{js(channel + "-link")}">js link</a>',
            # closed: left open, its <style> would swallow (and disarm) every payload after it on the page
            f'<math><mtext><table><mglyph><style><img src=x onerror="{js(channel + "-mxss")}">'
            "</style></mglyph></table></mtext></math>",
            '<img src="/api/contents/from_img">',
        ]
    )


def markdown_payloads(channel: str) -> str:
    return "\n\n".join(
        [
            f"[click me](javascript:alert('{channel}'))",
            f"![figure](javascript:alert('{channel}'))",
            f'<form action="/api/contents" method="post"><button>{channel} form</button></form>',
            '<base href="http://example.invalid/">',
            '<meta http-equiv="refresh" content="0;url=/api/contents">',
            f'<object data="data:text/html,<script>{js(channel + "-object")}</script>"></object>',
            f'<embed src="javascript:{js(channel + "-embed")}">',
            "<style>body { background: url(/api/contents/from_style) }</style>",
            html_payloads(channel),
        ]
    )


HONEST_ANSWER = "Because an empty sum is 0: $\\sum_{i \\in \\emptyset} x_i = 0$."
SVG_PAYLOAD = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" onload="{js}">'
    '<script>{js}</script><circle cx="20" cy="20" r="15" fill="teal"/></svg>'
)
# the kernel draws an honest figure, then shows every kind of active output, then fails with markup
DISPLAY_CELL = f"""\
import io
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
from IPython.display import HTML, SVG, Image, Javascript, Markdown, display

fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1, 2, 3], [0, 1, 4, 9], "o-")
ax.set_title("honest figure")
buf = io.BytesIO()
fig.savefig(buf, format="png", dpi=60)
display(Image(buf.getvalue()))
display(HTML({html_payloads("output-html")!r}))
display(Javascript({js("output-js")!r}))
display(SVG({SVG_PAYLOAD.format(js=js("output-svg"))!r}))
display(Markdown({markdown_payloads("output-md")!r}))
display({{"application/vnd.jupyter.widget-view+json": {{"model_id": "x", "version_major": 2, "version_minor": 0}},
         "text/plain": "a widget"}}, raw=True)
display({{"application/x-labkit-payload": "<script>{js("output-raw")}</script>"}}, raw=True)
try:
    open("<marker>", "w").write("student code ran outside the sandbox")
except OSError:
    pass
raise ValueError({f'<img src=x onerror="{js("error")}">'!r})
"""
FIGURE_CELL = DISPLAY_CELL.split("display(HTML")[0]  # the honest part: the figure


class _Active(HTMLParser):
    """Active parts of an HTML page: tags that run or load things, event handlers, script URLs, payloads."""

    def __init__(self):
        super().__init__()
        self.found, self._in = [], None

    def handle_starttag(self, tag, attrs):
        self._in = tag
        if tag in ACTIVE_TAGS:
            self.found.append(tag)
        for name, value in attrs:
            v = (value or "").strip().lower()
            if (
                name.startswith("on")
                or name in ("srcdoc", "formaction", "action")
                or v.startswith(("javascript:", "data:text/html", "vbscript:"))
                or (name in ("src", "href", "data") and v.startswith("/"))
                or "__pwned" in v
            ):
                self.found.append(f"{tag} {name}={value}")

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in in ("script", "style") and ("__pwned" in data or "/api/" in data):
            self.found.append(f"{self._in}: {data[:80]}")


def active_parts(page: str) -> Counter:
    parser = _Active()
    parser.feed(page)
    return Counter(parser.found)


def feedback_active_parts(page: str) -> Counter:
    """Active parts of a feedback page beyond its own charset ``<meta>`` and stylesheet."""
    return active_parts(page) - Counter({"meta": 1, "style": 1})


def rendered(nb) -> str:
    """The notebook as Formgrader renders it (nbconvert's classic template, no sanitizing of its own)."""
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="classic").from_notebook_node(nbformat.from_dict(nb))[0]


@functools.cache
def _template_parts() -> Counter:
    return active_parts(rendered(nbformat.v4.new_notebook()))


def new_active_parts(nb) -> Counter:
    """What the notebook adds to the template's own scripts and styles."""
    return active_parts(rendered(nb)) - _template_parts()


# ----------------------------------------------------------------------------------------------
# Each channel, on the functions
# ----------------------------------------------------------------------------------------------
def test_written_answer_keeps_text_and_math_and_loses_every_payload():
    dirty = HONEST_ANSWER + "\n\n" + html_payloads("answer")
    assert active_parts(dirty)  # the sample does carry payloads
    clean = sanitize.clean_markdown(dirty)
    assert not active_parts(clean), active_parts(clean)
    assert "Because an empty sum is 0" in clean and "$\\sum_{i \\in \\emptyset} x_i = 0$" in clean
    nb = nbformat.v4.new_notebook(cells=[new_markdown_cell(clean)])
    assert not new_active_parts(nb)
    assert "\n\n" not in clean  # one raw-HTML block: no markdown parser sees its text again


def test_honest_markdown_is_kept_as_written():
    honest = "# Answer\n\n- the sum of nothing is **0**\n- $x_i \\geq 0$ for all $i$\n\n```python\nsum(xs)\n```"
    assert sanitize.clean_markdown(honest) == honest
    with_brackets = sanitize.clean_markdown("$x \\in [0, 1]$ and `xs[0]`")  # rendered, the same to read
    assert "$x \\in [0, 1]$" in with_brackets and "<code>xs[0]</code>" in with_brackets


def test_extra_markdown_cell_links_forms_and_frames_are_inert():
    clean = sanitize.clean_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n\n" + markdown_payloads("extra-md"))
    assert not active_parts(clean), active_parts(clean)
    assert "<table>" in clean and "<td>2</td>" in clean and "click me" in clean
    nb = nbformat.v4.new_notebook(cells=[new_markdown_cell(clean)])
    assert not new_active_parts(nb)


def test_markdown_cannot_rebuild_a_link_from_text():
    """Code whose text is a markdown link stays text: the sanitized HTML is one block, blank lines included."""
    clean = sanitize.clean_markdown("<b>x</b>\n\n```\nline\n\n[y](javascript:alert(1))\n```\n")
    nb = nbformat.v4.new_notebook(cells=[new_markdown_cell(clean)])
    page = rendered(nb)
    assert "[y](javascript:alert(1))" in page and not new_active_parts(nb)


def test_html_output_is_sanitized_tables_and_images_stay():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    table = f'<table><tr><th>k</th></tr><tr><td>1</td></tr></table><img src="data:image/png;base64,{png}">'
    data, notes = sanitize.clean_bundle({"text/html": table + html_payloads("html")})
    assert not notes and not active_parts(data["text/html"])
    assert "<td>1</td>" in data["text/html"] and f"data:image/png;base64,{png}" in data["text/html"]


def test_javascript_and_widget_outputs_are_dropped_with_a_visible_note():
    outputs = [
        new_output("display_data", data={"application/javascript": js("js"), "text/plain": "<Javascript>"}),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m"}}),
    ]
    clean = sanitize.clean_outputs(outputs)
    shown = [o.data.get("text/plain") for o in clean]
    assert shown == ["<Javascript>", sanitize.ACTIVE_NOTE, sanitize.ACTIVE_NOTE]
    assert "pwned" not in json.dumps(clean)


def test_svg_output_becomes_an_image():
    data, _ = sanitize.clean_bundle({"image/svg+xml": SVG_PAYLOAD.format(js=js("svg"))})
    assert set(data) == {"text/html"} and data["text/html"].startswith('<img src="data:image/svg+xml;base64,')
    assert not active_parts(data["text/html"])  # an SVG shown as an image runs nothing, loads nothing


def test_raw_output_json_is_dropped():
    """Outputs written into the notebook's JSON by hand: unknown types, odd fields, metadata that changes
    how nbconvert shows them (an isolated iframe, a file URL)."""
    outputs = [
        {"output_type": "display_data", "data": {"application/x-payload": f"<script>{js('raw')}</script>"}},
        {"output_type": "evil", "data": {"text/html": f"<script>{js('raw-type')}</script>"}},
        {"output_type": "stream", "name": "<b>", "text": ["a", "<script>b</script>"]},
        {
            "output_type": "display_data",
            "data": {"text/html": "<p>isolated</p>", "image/png": "not base64!"},
            "metadata": {"text/html": {"isolated": True}, "filenames": {"image/png": "/api/contents/x"}},
        },
        {"output_type": "execute_result", "execution_count": "1; alert(1)", "data": {"text/plain": "ok"}},
        "not even a dict",
    ]
    clean = sanitize.clean_outputs(outputs)
    kinds = [o.output_type for o in clean]
    assert kinds == ["display_data"] * 2 + ["stream"] + ["display_data"] * 2 + ["execute_result", "display_data"]
    unsupported = [0, 1, 4, 6]  # unknown type, unknown output_type, PNG that is not base64, not a dict
    assert [clean[i].data for i in unsupported] == [{"text/plain": sanitize.UNSUPPORTED_NOTE}] * 4
    assert clean[2].name == "stdout" and clean[2].text == "a<script>b</script>"  # text: escaped when shown
    assert clean[3].metadata == {} and set(clean[3].data) == {"text/html"}  # no isolated iframe, no file URL
    assert clean[5].execution_count is None
    nb = nbformat.v4.new_notebook(cells=[new_code_cell("x", outputs=clean)])
    nbformat.validate(nb)
    assert not new_active_parts(nb)


def test_metadata_keeps_only_what_nbgrader_needs():
    nb = {
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "<img src=x onerror=alert(1)>"},
            "language_info": {"name": "python", "pygments_lexer": "<script>"},
            "widgets": {"application/vnd.jupyter.widget-state+json": {"state": f"<script>{js('state')}</script>"}},
            "signature": "sha256:forged",
            "trusted": True,
        },
        "cells": [
            {
                "cell_type": "markdown",
                "id": 'x" onmouseover="alert(1)',
                "source": "answer",
                "metadata": {
                    "trusted": True,
                    "tags": ['x" onmouseover="alert(1)'],
                    "nbgrader": {"grade": True, "solution": True, "points": 1, "grade_id": "answer"},
                },
                "attachments": {"a.svg": {"image/svg+xml": SVG_PAYLOAD}},
            },
            {
                "cell_type": "code",
                "source": "1",
                "metadata": {"nbgrader": {"grade": True, "grade_id": '<img src=x onerror="alert(1)">'}},
                "outputs": [],
                "execution_count": None,
            },
            {"cell_type": "code", "source": "2", "metadata": {"nbgrader": {"grade": "yes", "grade_id": "ok"}}},
            {"cell_type": "raw", "source": f"<script>{js('raw-cell')}</script>", "metadata": {"format": "text/html"}},
        ],
    }
    clean = sanitize.clean_notebook(nb)
    nbformat.validate(clean)
    assert clean.metadata == {"kernelspec": sanitize.KERNELSPEC, "language_info": {"name": "python"}}
    answer, bad_id, bad_type, raw = clean.cells
    assert answer.metadata == {
        "nbgrader": {"grade": True, "solution": True, "points": 1, "grade_id": "answer", "schema_version": 3}
    }
    assert answer.id != nb["cells"][0]["id"] and "attachments" not in answer
    assert bad_id.metadata == {} and bad_type.metadata == {}  # Formgrader writes grade_id unescaped
    assert "pwned" not in raw.source and "trusted" not in json.dumps(clean)
    assert not new_active_parts(clean)


def test_error_messages_are_text():
    outputs = [
        {
            "output_type": "error",
            "ename": ["<script>", "x"],
            "evalue": {"html": f"<img src=x onerror={js('error')}>"},
            "traceback": [f"<img src=x onerror={js('tb')}>", 3],
        }
    ]
    (error,) = sanitize.clean_outputs(outputs)
    assert error.ename == "<script>x" and isinstance(error.evalue, str) and error.traceback[1] == "3"
    nb = nbformat.v4.new_notebook(cells=[new_code_cell("raise", outputs=[error])])
    assert not new_active_parts(nb)
    assert "&lt;img src=x onerror=" in rendered(nb)  # shown, as text


def test_feedback_page_is_inert_and_readable():
    page = rendered(
        nbformat.v4.new_notebook(
            cells=[new_markdown_cell(HONEST_ANSWER), new_code_cell("raise", outputs=[])],
            metadata={},
        )
    ).replace("</body>", html_payloads("feedback") + "</body>")
    clean = sanitize.clean_feedback_html(page, "00_toy")
    assert not feedback_active_parts(clean)
    assert "<style>" in clean and clean.count("<style>") == 1 and "<script" not in clean
    assert "Because an empty sum is 0" in clean and "\\sum_{i \\in \\emptyset}" in clean


def test_only_inert_files_reach_autograded():
    nb = nbformat.writes(nbformat.v4.new_notebook(cells=[new_markdown_cell(html_payloads("file"))])).encode()
    assert sanitize.view_file(Path("00_toy.ipynb"), b"{ not json") is None
    cleaned = json.loads(sanitize.view_file(Path("00_toy.ipynb"), nb))
    assert not active_parts("".join(cleaned["cells"][0]["source"]))
    assert sanitize.view_file(Path("labkit/toy.py"), b"x = 1\n") == b"x = 1\n"
    for name in ("report.html", "figure.svg", "page.htm", "x.js", "x.xhtml"):
        assert sanitize.view_file(Path(name), b"<script>alert(1)</script>") is None, name


# ----------------------------------------------------------------------------------------------
# The samples, as toy-course submissions (graded in tests/test_formgrader.py)
# ----------------------------------------------------------------------------------------------
STUDENTS = ("honest", "hostile", "broken")
MARKER = "labkit-ran-outside-the-sandbox"


def _edit(nb, student: str, marker: Path):
    """Derive one sample from the perfect submission's notebook."""
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer")
    answer.source = HONEST_ANSWER
    if student == "honest":
        nb.cells.append(new_code_cell(FIGURE_CELL))
        return nb
    answer.source += "\n\n" + html_payloads("answer")
    nb.cells.append(new_markdown_cell(markdown_payloads("extra-md"), metadata={"trusted": True}))
    nb.cells.append(new_code_cell(DISPLAY_CELL.replace("<marker>", str(marker)), metadata={"trusted": True}))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"x": f"</script><script>{js('w')}"}}
    nb.metadata["trusted"] = True
    if student == "broken":  # nbgrader cannot process it (an empty grade_id): only its answers are shown
        nb.cells.append(
            new_code_cell(
                "1",
                metadata={
                    "tags": ['x" onmouseover="window.__pwned=[1]'],  # nbformat: no comma in a tag
                    "nbgrader": {"grade": True, "solution": False, "grade_id": "", "points": 1},
                },
                outputs=[
                    new_output("display_data", data={"text/html": html_payloads("raw-html")}),
                    new_output("display_data", data={"application/javascript": js("raw-js")}),
                    new_output("display_data", data={"application/x-labkit": f"<script>{js('raw-x')}</script>"}),
                    new_output("error", ename="E", evalue=f"<img src=x onerror={js('raw-err')}>", traceback=[]),
                ],
            )
        )
        nb.cells.append(
            new_markdown_cell("x", metadata={"nbgrader": {"grade": True, "solution": True, "grade_id": "<img>"}})
        )
    return nb


def make_samples(course: Path) -> list[str]:
    """``submitted/{honest,hostile,broken}/lab0``: the perfect toy submission with these notebooks."""
    from tests.grading_samples.toy_lab import make_submissions

    make_submissions(course, "lab0", only=["perfect"])
    for student in STUDENTS:
        dest = course / "submitted" / student / "lab0"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(course / "submitted" / "perfect" / "lab0", dest)
        nb = nbformat.read(dest / "00_toy.ipynb", as_version=4)
        nbformat.write(_edit(nb, student, course.parent / MARKER), dest / "00_toy.ipynb")
    return list(STUDENTS)
