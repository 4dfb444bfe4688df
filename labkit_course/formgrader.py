"""The instructor's Jupyter server on a built course: Formgrader behind a Content-Security-Policy, no
unsandboxed autograding.

    cd COURSE && JUPYTER_CONFIG_PATH=$PWD/.jupyter jupyter lab

``labkit-course course build`` writes ``.jupyter/jupyter_server_config.json``, which loads this
server extension. It

- adds a Content-Security-Policy to every ``/formgrader/`` response (:func:`policy`): scripts and
  styles from the server (and cdnjs, for Formgrader's MathJax) only, images only from ``data:`` URIs
  and Formgrader's static files, requests only to Formgrader's own API (not ``/api/contents``,
  ``/api/kernels``, ``/api/terminals``), no frames, plugins, forms or pop-ups. Formgrader's pages
  need their inline scripts, so this does not stop an inline script: it limits what one that got
  past the sanitizer (:mod:`labkit_course.sanitize`, the real defense) could reach. Formgrader opened
  inside JupyterLab's panel runs in an iframe that can talk to JupyterLab (nbgrader's design); opened
  in a tab of its own (``/formgrader``), it is contained.
- answers Formgrader's per-submission "Autograde" button with an error pointing to
  ``labkit-course grade``: nbgrader would run the student's code unsandboxed, as the instructor.

The course's ``nbgrader_config.py`` refuses ``nbgrader autograde`` too (:class:`RefuseAutograde`), so
the command line and a server started without this extension are covered.
"""

from __future__ import annotations

import json

from jupyter_server.base.handlers import JupyterHandler
from nbconvert.preprocessors import Preprocessor
from tornado import web
from tornado.routing import PathMatches, Rule

REFUSAL = (
    "Autograding with plain nbgrader is disabled in this course: it would run the student's code "
    "outside the sandbox, as you. Grade with `labkit-course grade COURSE N` (docs/instructors.md)."
)
MATHJAX_CDN = "https://cdnjs.cloudflare.com"  # where nbconvert's templates load MathJax from


def policy(origin: str, base_url: str) -> str:
    """The Content-Security-Policy of Formgrader's pages served at ``origin`` + ``base_url``."""
    formgrader = f"{origin}{base_url}formgrader/"
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' 'unsafe-inline' {MATHJAX_CDN}",
            f"style-src 'self' 'unsafe-inline' {MATHJAX_CDN}",
            f"font-src 'self' data: {MATHJAX_CDN}",
            f"img-src data: {formgrader}static/",
            f"connect-src {formgrader}api/",
            "frame-src 'none'",
            "worker-src 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
            # no allow-popups: a window the page opens on this origin would carry no policy
            "sandbox allow-scripts allow-same-origin",
        ]
    )


class RefuseAutograde(Preprocessor):
    """First of the course's ``Autograde.sanitize_preprocessors``: no plain ``nbgrader autograde`` here.

    ``labkit-course grade`` runs ``nbgrader autograde`` in a throw-away course of its own, whose config
    does not have this."""

    def __call__(self, nb, resources):
        # not preprocess(): nbconvert skips a preprocessor registered by name unless it is `enabled`
        raise RuntimeError(REFUSAL)


class _CSPTransform(web.OutputTransform):
    """Adds :func:`policy` to the responses under ``/formgrader/`` (a second header: the browser enforces
    both it and Jupyter's own ``frame-ancestors`` policy)."""

    base_url = "/"

    def __init__(self, request):
        super().__init__(request)
        self.request = request

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        if self.request.path.startswith(f"{self.base_url}formgrader/") or self.request.path == (
            f"{self.base_url}formgrader"
        ):
            origin = f"{self.request.protocol}://{self.request.host}"
            headers.add("Content-Security-Policy", policy(origin, self.base_url))
        return status_code, headers, chunk


class _AutogradeRefused(JupyterHandler):
    """Formgrader's Autograde button (``POST /formgrader/api/submission/<lab>/<student>/autograde``).

    Answers as nbgrader's handler does (a JSON string as text: Formgrader's page parses it itself), so the
    button shows the refusal in Formgrader's own error dialog."""

    @web.authenticated
    def post(self, *args):
        self.write(json.dumps({"success": False, "error": REFUSAL, "log": REFUSAL}))


def _jupyter_server_extension_points():
    return [{"module": "labkit_course.formgrader"}]


def _load_jupyter_server_extension(serverapp) -> None:
    app = serverapp.web_app
    base_url = app.settings.get("base_url", "/")
    transform = type("CSPTransform", (_CSPTransform,), {"base_url": base_url})
    app.add_transform(transform)
    # first rule of the application's router: before nbgrader's own handler, whatever the load order
    pattern = f"{base_url}formgrader/api/submission/[^/]+/[^/]+/autograde/?"
    app.default_router.rules.insert(0, Rule(PathMatches(pattern), _AutogradeRefused))
    serverapp.log.info("labkit: Formgrader under a Content-Security-Policy; its Autograde button is disabled")
