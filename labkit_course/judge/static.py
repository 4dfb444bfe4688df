"""Static audit of a student's exercise module: what it imports and touches, read from its AST.

The sandbox already stops these from reaching the course; a flag puts the submission in front of
an instructor, because a module that needs them is almost surely trying to game the grading:

* ``ctypes``, ``cffi``, ``mmap``: raw memory and libc, around Python's own checks;
* ``inspect``, ``sys._getframe``, ``gc.get_referrers``, frame attributes (``f_back``, ``f_locals``...):
  reading the caller's variables (the judge's, the checks');
* ``labkit.check``, ``labkit_course``: the public checks and the instructor's package;
* ``captum``, ``torchattacks`` (in the labs where they compute the answer) and ``__import__``/
  ``exec``/``eval``/``compile``, which hide what is run;
* ``subprocess``, ``socket``, ``os.system``/``os.fork``/``os.exec*``, ``pickle``/``marshal``.

A flag is a reason to look, not a verdict: :func:`audit` returns human-readable reasons.
"""

from __future__ import annotations

import ast

FORBIDDEN_MODULES = {
    "ctypes": "raw memory and libc access",
    "cffi": "raw memory and libc access",
    "mmap": "raw memory access",
    "inspect": "frame inspection",
    "gc": "reaching other objects through the garbage collector",
    "labkit.check": "the public checks",
    "labkit_course": "the instructor's package",
    "subprocess": "starting processes",
    "multiprocessing": "starting processes",
    "socket": "network access",
    "urllib": "network access",
    "http": "network access",
    "requests": "network access",
    "pickle": "executable serialization",
    "dill": "executable serialization",
    "marshal": "executable serialization",
    "builtins": "replacing built-in functions",
}
#: libraries that compute an exercise's answer, per lab (exercise module)
ANSWER_LIBRARIES = {
    "saliency": {"captum": "Captum computes these attributions"},
    "adversarial": {"torchattacks": "torchattacks computes these attacks", "captum": "Captum"},
    "classviz": {"captum": "Captum"},
}
FORBIDDEN_CALLS = {
    "_getframe": "frame inspection",
    "_current_frames": "frame inspection",
    "settrace": "tracing the judge",
    "setprofile": "tracing the judge",
    "addaudithook": "audit hooks",
    "get_referrers": "reaching other objects",
    "__import__": "dynamic imports",
    "exec": "running generated code",
    "eval": "running generated code",
    "compile": "running generated code",
    "system": "starting processes",
    "fork": "starting processes",
    "forkpty": "starting processes",
    "execv": "starting processes",
    "execve": "starting processes",
    "posix_spawn": "starting processes",
    "popen": "starting processes",
}
FORBIDDEN_ATTRIBUTES = {
    "f_back": "frame inspection",
    "f_locals": "frame inspection",
    "f_globals": "frame inspection",
    "tb_frame": "frame inspection",
    "gi_frame": "frame inspection",
    "cr_frame": "frame inspection",
    "__code__": "rewriting functions",
    "__globals__": "reaching other modules' variables",
    "__builtins__": "replacing built-in functions",
    "__subclasses__": "reaching classes by the back door",
}
# Python's own calls named like the ones above but harmless; flagged only as attributes of these.
_CALL_OWNERS = {
    "system": {"os"},
    "fork": {"os"},
    "forkpty": {"os", "pty"},
    "popen": {"os"},
    "compile": {None},
    "exec": {None},
    "eval": {None},
}


def audit(source: str, module: str) -> list[str]:
    """Reasons to review the exercise module ``source`` of lab module ``module`` ([] if none)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # not a cheat: the judge reports it as a crash
    forbidden = dict(FORBIDDEN_MODULES, **ANSWER_LIBRARIES.get(module, {}))
    reasons: list[str] = []

    def flag(node, what: str, why: str) -> None:
        reasons.append(f"line {getattr(node, 'lineno', '?')}: {what} ({why})")

    def check_module(node, name: str) -> None:
        for banned, why in forbidden.items():
            if name == banned or name.startswith(banned + "."):
                flag(node, f"imports {name}", why)
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_module(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 0:
                check_module(node, base)
                for alias in node.names:  # from labkit import check
                    check_module(node, f"{base}.{alias.name}")
            elif base in ("check", "") and any(a.name == "check" or base == "check" for a in node.names):
                flag(node, "imports labkit.check (relative)", "the public checks")
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_ATTRIBUTES:
                flag(node, f"uses .{node.attr}", FORBIDDEN_ATTRIBUTES[node.attr])
            elif node.attr in FORBIDDEN_CALLS and _owner_matches(node):
                flag(node, f"uses .{node.attr}", FORBIDDEN_CALLS[node.attr])
        elif (
            isinstance(node, ast.Name)
            and node.id in FORBIDDEN_CALLS
            and node.id in ("__import__", "exec", "eval", "compile")
            and isinstance(node.ctx, ast.Load)
        ):
            flag(node, f"uses {node.id}", FORBIDDEN_CALLS[node.id])
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_ATTRIBUTES:
            flag(node, f"uses {node.id}", FORBIDDEN_ATTRIBUTES[node.id])
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and any(s in node.value for s in ("labkit_course", "labkit.check", "/proc/", "gradebook"))
        ):
            flag(node, f"mentions {node.value[:40]!r}", "a path or module of the grading")
    return sorted(set(reasons), key=lambda r: int(r.split(":")[0][5:]) if r[5:].split(":")[0].isdigit() else 0)


def _owner_matches(node: ast.Attribute) -> bool:
    owners = _CALL_OWNERS.get(node.attr)
    if owners is None:
        return True
    return isinstance(node.value, ast.Name) and node.value.id in owners
