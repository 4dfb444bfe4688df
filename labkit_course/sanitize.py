"""Make what a student submitted inert before any instructor tool renders it.

Everything derived from a submission (the notebook written to ``autograded/``, whether executed in the
sandbox or copied raw when it could not run; the feedback HTML) passes through here, in the trusted
grading process, before Formgrader, ``nbgrader generate_feedback``, JupyterLab or a browser sees it.
Formgrader renders notebooks with nbconvert, which does not sanitize: a ``<script>`` in a written
answer, a ``display(Javascript(...))`` output or an ``onerror`` attribute would run on the
instructor's Jupyter origin, with the instructor's rights (contents, kernels, terminals).

HTML goes through nh3 (the Python binding of the Rust ``ammonia`` allowlist sanitizer):

- markdown (cells and ``text/markdown`` outputs): kept verbatim when it cannot hold markup or a link
  (no ``<``, no ``[``); otherwise rendered with nbconvert's own renderer (the one Formgrader uses),
  sanitized, and stored as a single raw-HTML block, so no markdown parser can turn text back into a
  tag or a link;
- ``text/html`` outputs: sanitized; no script, iframe, object, embed, form, base, meta or style; no
  ``on*``, ``style``, ``id`` or ``class`` attribute; links only to http(s)/mailto/``#``; images only
  from ``data:image/png|jpeg|gif|svg+xml`` (no request leaves the page);
- ``image/svg+xml`` outputs become an ``<img>`` of a data URI: an SVG shown as an image runs no script
  and loads nothing;
- ``application/javascript``, widget views and every other type are dropped, with a visible
  "[removed: ...]" output in their place;
- error outputs and streams are coerced to plain text; PNG/JPEG must be valid base64;
- cell metadata is reduced to nbgrader's (validated: a ``grade_id`` must be a plain identifier,
  Formgrader writes it into the page unescaped), notebook metadata to a fixed Python kernelspec;
  ``trusted``, tags, widget state, attachments and output metadata are dropped.

What a grader needs still shows: text, headings, lists, tables, code, LaTeX math (typeset by
Formgrader's MathJax, loaded in its Safe mode), PNG/JPEG figures.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from pathlib import Path

import nbformat
import nh3
from nbformat.corpus.words import generate_corpus_id
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

ACTIVE_NOTE = "[removed: active content]"
UNSUPPORTED_NOTE = "[removed: unsupported output]"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
# what nbgrader's schema 3 keeps per cell, with the type each must have
NBGRADER_KEYS = {
    "grade": bool,
    "solution": bool,
    "locked": bool,
    "task": bool,
    "points": (int, float),
    "grade_id": str,
    "checksum": str,
    "cell_type": str,
}
NBGRADER_SCHEMA = 3
PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # nbgrader's own rule for grade ids; nbformat's for cell ids
ACTIVE_TYPES = ("application/javascript", "application/vnd.jupyter.widget-view+json")
IMAGE_DATA = ("data:image/png;", "data:image/jpeg;", "data:image/gif;", "data:image/svg+xml;")
# files other than notebooks that may reach autograded/: served as text by Formgrader
PLAIN_SUFFIXES = {".py", ".txt"}

_TAGS = set(nh3.ALLOWED_TAGS) - {"area", "map"}  # image maps carry links on areas: not needed
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start"},
}


def _url_filter(tag: str, attribute: str, value: str) -> str | None:
    """Links to the web or an anchor; images only from data: URIs of raster (or inert SVG) images.

    Relative and same-host URLs are refused: an ``<img src="/api/...">`` is a request with the
    instructor's cookies."""
    if attribute == "src":
        return value if tag == "img" and value.strip().lower().startswith(IMAGE_DATA) else None
    if attribute == "href":
        v = value.strip().lower()
        return value if v.startswith(("http://", "https://", "mailto:", "#")) else None
    return value


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"script", "style"},
    attributes=_ATTRIBUTES,
    attribute_filter=_url_filter,
    url_schemes={"http", "https", "mailto", "data"},
)


def clean_html(text: str) -> str:
    """An HTML fragment with only inert markup left (see the module doc)."""
    return _CLEANER.clean(text)


def _text(value) -> str:
    """Notebook text fields are a string or a list of strings; anything else becomes its str."""
    if isinstance(value, list):
        return "".join(v if isinstance(v, str) else str(v) for v in value)
    return value if isinstance(value, str) else ("" if value is None else str(value))


def clean_markdown(source: str, attachments: dict | None = None) -> str:
    """Markdown that renders to inert HTML in any markdown renderer.

    Markdown with no ``<`` and no ``[`` holds neither raw HTML nor a link nor an image (bare
    autolinks are http(s) only): it is returned as is. Anything else is rendered by nbconvert's
    renderer (attachments inlined), sanitized, and returned as one ``<div>`` with no blank line, which
    CommonMark and its kin pass through as a single raw-HTML block. Math stays text for MathJax."""
    if "<" not in source and "[" not in source:
        return source
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    renderer = IPythonRenderer(escape=False, attachments=_image_attachments(attachments), exclude_anchor_links=True)
    cleaned = clean_html(MarkdownWithMath(renderer=renderer).render(source))
    # a blank line would end the raw-HTML block and let the rest be parsed as markdown again
    lines = [line if line.strip() else "&#32;" for line in cleaned.strip().splitlines()]
    return "\n".join(["<div>", *lines, "</div>"])


def _image_attachments(attachments) -> dict:
    """Only PNG/JPEG attachments, as valid base64: what nbconvert inlines into ``<img>``."""
    out = {}
    for name, bundle in (attachments if isinstance(attachments, dict) else {}).items():
        if isinstance(name, str) and isinstance(bundle, dict):
            images = {k: _base64(v) for k, v in bundle.items() if k in ("image/png", "image/jpeg")}
            images = {k: v for k, v in images.items() if v}
            if images:
                out[name] = images
    return out


def _base64(value) -> str | None:
    text = "".join(_text(value).split())
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return text


def _note(text: str):
    return new_output("display_data", data={"text/plain": text})


def clean_bundle(data) -> tuple[dict, list[str]]:
    """A display bundle with only inert representations, and the notes for what was dropped."""
    out, notes = {}, []
    for mime, value in (data if isinstance(data, dict) else {}).items():
        if mime in ("text/plain", "text/latex"):
            out[mime] = _text(value)  # rendered as escaped text (LaTeX by MathJax, Safe mode)
        elif mime == "text/html":
            out[mime] = clean_html(_text(value))
        elif mime == "text/markdown":
            out[mime] = clean_markdown(_text(value))
        elif mime in ("image/png", "image/jpeg"):
            image = _base64(value)
            if image:
                out[mime] = image
            else:
                notes.append(UNSUPPORTED_NOTE)
        elif mime == "image/svg+xml":
            svg = base64.b64encode(_text(value).encode()).decode()
            out.setdefault("text/html", f'<img src="data:image/svg+xml;base64,{svg}" alt="SVG figure">')
        elif mime in ACTIVE_TYPES:
            notes.append(ACTIVE_NOTE)
        else:
            notes.append(UNSUPPORTED_NOTE)
    return out, sorted(set(notes))


def clean_outputs(outputs) -> list:
    """Code cell outputs, inert: streams and errors as text, bundles cleaned, the rest replaced by a note."""
    cleaned = []
    for output in outputs if isinstance(outputs, list) else []:
        kind = output.get("output_type") if isinstance(output, dict) else None
        if kind == "stream":
            name = "stderr" if output.get("name") == "stderr" else "stdout"
            cleaned.append(new_output("stream", name=name, text=_text(output.get("text"))))
        elif kind == "error":
            traceback = output.get("traceback")
            cleaned.append(
                new_output(
                    "error",
                    ename=_text(output.get("ename")),
                    evalue=_text(output.get("evalue")),
                    traceback=[_text(line) for line in traceback] if isinstance(traceback, list) else [],
                )
            )
        elif kind in ("display_data", "execute_result"):
            data, notes = clean_bundle(output.get("data"))
            if data:
                extra = {}
                if kind == "execute_result":
                    count = output.get("execution_count")
                    extra["execution_count"] = count if type(count) is int else None
                cleaned.append(new_output(kind, data=data, **extra))
            cleaned += [_note(n) for n in notes]
        else:
            cleaned.append(_note(UNSUPPORTED_NOTE))
    return cleaned


def clean_nbgrader_metadata(meta) -> dict | None:
    """nbgrader's cell metadata with the right types, or None (an ordinary cell) if it is malformed."""
    if not isinstance(meta, dict):
        return None
    kept = {k: meta[k] for k, kind in NBGRADER_KEYS.items() if k in meta and isinstance(meta[k], kind)}
    if any(k in meta and k not in kept for k in NBGRADER_KEYS):
        return None
    if "grade_id" in kept and not PLAIN_ID.fullmatch(kept["grade_id"]):
        return None
    if "checksum" in kept and not re.fullmatch(r"[0-9a-f]{1,128}", kept["checksum"]):
        del kept["checksum"]
    if kept.get("cell_type", "code") not in ("code", "markdown", "raw"):
        del kept["cell_type"]
    if not kept or ("points" in kept and type(kept["points"]) is bool):
        return None
    kept["schema_version"] = NBGRADER_SCHEMA
    return kept


def clean_cell(cell):
    """One cell, inert, with only nbgrader's metadata (None for a cell that is not a dict)."""
    if not isinstance(cell, dict):
        return None
    kind, source = cell.get("cell_type"), _text(cell.get("source"))
    if kind == "code":
        count = cell.get("execution_count")
        new = new_code_cell(source, outputs=clean_outputs(cell.get("outputs")))
        new.execution_count = count if type(count) is int else None
    elif kind == "markdown":
        new = new_markdown_cell(clean_markdown(source, cell.get("attachments")))
    else:  # raw cells are shown as HTML by nbconvert's HTML templates
        new = new_raw_cell(clean_html(source))
    cell_id = cell.get("id")
    if isinstance(cell_id, str) and PLAIN_ID.fullmatch(cell_id):
        new.id = cell_id
    metadata = cell.get("metadata")
    nbgrader = clean_nbgrader_metadata(metadata.get("nbgrader") if isinstance(metadata, dict) else None)
    if nbgrader is not None:
        new.metadata["nbgrader"] = nbgrader
    return new


def clean_notebook(nb) -> nbformat.NotebookNode:
    """A new v4 notebook holding the inert form of every cell of ``nb`` (a dict, as parsed from JSON)."""
    cells = nb.get("cells") if isinstance(nb, dict) else None
    cells = [c for c in map(clean_cell, cells if isinstance(cells, list) else []) if c is not None]
    seen = set()
    for cell in cells:  # a duplicated id would make nbformat rewrite the notebook
        if cell.id in seen:
            cell.id = generate_corpus_id()
        seen.add(cell.id)
    out = new_notebook(cells=cells)
    out.metadata["kernelspec"] = dict(KERNELSPEC)
    out.metadata["language_info"] = {"name": "python"}
    return out


def notebook_text(nb) -> str:
    """The JSON of the inert form of ``nb``."""
    return nbformat.writes(clean_notebook(nb))


def view_file(relative: Path, data: bytes) -> bytes | None:
    """What of a file of a graded submission may be written to ``autograded/`` (None: nothing).

    Notebooks in their inert form (None if unreadable), ``.py``/``.txt`` as they are (Formgrader
    serves them as text); anything else, e.g. an ``.html`` or ``.svg`` the student's code wrote while
    it ran, stays out: Formgrader would serve it on the instructor's origin."""
    suffix = Path(relative).suffix.lower()
    if suffix == ".ipynb":
        try:
            return notebook_text(nbformat.reads(data.decode("utf-8"), as_version=4)).encode()
        except Exception:  # noqa: BLE001 -- malformed JSON, wrong schema: nothing to show
            return None
    return data if suffix in PLAIN_SUFFIXES else None


# ----------------------------------------------------------------------------------------------
# Feedback HTML (nbgrader generate_feedback's output)
# ----------------------------------------------------------------------------------------------
FEEDBACK_STYLE = """\
body { font-family: sans-serif; max-width: 60em; margin: 1em auto; padding: 0 1em; line-height: 1.4; }
pre { background: #f5f5f5; padding: 0.5em; overflow-x: auto; }
img { max-width: 100%; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; }
"""


def clean_feedback_html(text: str, title: str = "Feedback") -> str:
    """A whole feedback page, inert: the sanitized body of nbgrader's page in a page of our own.

    nbconvert's template (its CSS, MathJax, scripts) is dropped with the rest: the page runs no
    script, so math shows as its LaTeX source."""
    body = clean_html(text)
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{FEEDBACK_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def feedback_hook(assignment: str, student: str, notebooks: list) -> None:
    """nbgrader ``GenerateFeedback.post_convert_hook`` (set in the course's config): sanitize the pages just
    written, whoever ran ``nbgrader generate_feedback``. A page that cannot be sanitized is deleted
    (nbgrader swallows a hook's errors, so this fails closed)."""
    for notebook in notebooks:
        path = Path(notebook)  # <course>/autograded/<student>/<lab>/<name>.ipynb
        page = path.parents[3] / "feedback" / path.parent.parent.name / path.parent.name / f"{path.stem}.html"
        if not page.is_file():
            continue
        try:
            page.write_text(clean_feedback_html(page.read_text(encoding="utf-8"), path.stem), encoding="utf-8")
        except Exception:
            page.unlink(missing_ok=True)
            raise
