"""Step 1 of the judge, the static audit of a student's exercise module: what it imports and touches,
read from its AST (:func:`read_source` reads the module, :func:`audit` says what to review in it).

The sandbox, and the judge's own clock and limits, are the defense; the audit is evidence: a flag
puts the submission in front of an instructor, because a module that needs these is almost surely
trying to game the grading:

* ``ctypes``, ``cffi``, ``mmap``, ``numpy.ctypeslib``: raw memory and libc, around Python's own checks;
* ``inspect``, ``sys._getframe``, ``gc.get_referrers``, frame attributes (``f_back``, ``f_locals``...):
  reading the caller's variables (the judge's, the checks');
* ``labkit.check``, ``labkit_course``: the public checks and the instructor's package;
* ``captum``, ``torchattacks`` (in the labs where they compute the answer);
* code hidden from this very audit: ``__import__``/``exec``/``eval``/``compile``,
  ``importlib.import_module`` of a computed name, ``getattr`` on a module with a computed name,
  loaders (``importlib.util``...), ``sys.modules``, a module's ``__dict__``;
* processes and signals: ``subprocess``, ``os.system``/``os.fork``/``os.exec*``/``os.spawn*``/
  ``os.posix_spawn*``, ``pty``, ``os.kill``, ``signal`` (the worker's own timer), ``resource``;
* ``socket`` and the network, ``pickle``/``marshal``; ``runpy``, ``code``, ``zipimport``; native
  libraries (``torch.ops.load_library``, ``torch.utils.cpp_extension``); ``from os import *`` and the like;
* replacing an attribute of an imported module (``json.dump = ...``: the worker writes its results
  with it).

Names are resolved through import aliases (``import os as o; o.spawnv`` is ``os.spawnv``).
A flag is a reason to look, not a verdict: :func:`audit` returns human-readable reasons.
"""

from __future__ import annotations

import ast
import threading
from fnmatch import fnmatchcase
from pathlib import Path

from labkit_course.judge import worker

MAX_SOURCE_BYTES = 2 * 2**20  # a larger exercise module is not judged

FORBIDDEN_MODULES = {
    "ctypes": "raw memory and libc access",
    "_ctypes": "raw memory and libc access",
    "cffi": "raw memory and libc access",
    "mmap": "raw memory access",
    "numpy.ctypeslib": "raw memory and libc access",
    "inspect": "frame inspection",
    "gc": "reaching other objects through the garbage collector",
    "labkit.check": "the public checks",
    "labkit_course": "the instructor's package",
    "subprocess": "starting processes",
    "_posixsubprocess": "starting processes",
    "multiprocessing": "starting processes",
    "pty": "starting processes",
    "posix": "raw system calls",
    "signal": "changing the judge's timer and signals",
    "resource": "changing the process limits",
    "socket": "network access",
    "urllib": "network access",
    "http": "network access",
    "requests": "network access",
    "pickle": "executable serialization",
    "dill": "executable serialization",
    "marshal": "executable serialization",
    "builtins": "replacing built-in functions",
    "importlib.util": "loading code by the back door",
    "importlib.machinery": "loading code by the back door",
    "importlib._bootstrap": "loading code by the back door",
    "runpy": "running code by the back door",
    "code": "running code by the back door",
    "codeop": "running code by the back door",
    "zipimport": "loading code by the back door",
    "torch.utils.cpp_extension": "compiling native code",
}
#: libraries that compute an exercise's answer, per lab (exercise module)
ANSWER_LIBRARIES = {
    "saliency": {"captum": "Captum computes these attributions"},
    "adversarial": {"torchattacks": "torchattacks computes these attacks", "captum": "Captum"},
    "classviz": {"captum": "Captum"},
}
#: qualified names (fnmatch patterns), however reached: attribute, ``from`` import or alias
FORBIDDEN_NAMES = {
    "os.system": "starting processes",
    "os.popen": "starting processes",
    "os.fork*": "starting processes",
    "os.exec*": "starting processes",
    "os.spawn*": "starting processes",
    "os.posix_spawn*": "starting processes",
    "os.kill*": "signalling other processes",
    "os.setuid": "changing users",
    "sys._getframe": "frame inspection",
    "sys._current_frames": "frame inspection",
    "sys.settrace": "tracing the judge",
    "sys.setprofile": "tracing the judge",
    "sys.addaudithook": "audit hooks",
    "sys.modules": "reaching other modules (the judge's worker)",
    "threading.settrace": "tracing the judge",
    "torch.ops.load_library": "loading a native library",
    "torch.classes.load_library": "loading a native library",
}
#: ``from X import *`` of these hides which of their forbidden names the module then uses
_NO_STAR = ("os", "posix", "sys", "importlib", "builtins", "gc", "signal")
#: calls flagged whatever their owner (an unknown object's ``.get_referrers`` is as suspicious)
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
    "ctypeslib": "raw memory and libc access",
}
# Python's own calls named like the ones above but harmless (re.compile, a model's .eval()): flagged
# only as these builtins.
_BUILTIN_ONLY = {"compile", "exec", "eval"}
_SUSPICIOUS_TEXT = ("labkit_course", "labkit.check", "/proc/", "gradebook")
# Settings that honest code changes on the libraries it imports (torch.backends.cudnn.deterministic = True).
_SETTINGS = ("torch.backends.",)


def read_source(path: Path) -> tuple[str, list[str]]:
    """The student's module (``""`` if missing or unreadable) and the reasons to review it that reading
    it gave (a module too large to judge)."""
    try:
        data = worker.open_regular(str(path), MAX_SOURCE_BYTES)
    except worker.TooLarge:
        return "", [f"the module is larger than {MAX_SOURCE_BYTES // 2**20} MB: not judged, review it by hand"]
    except (OSError, ValueError):
        return "", []
    return data.decode("utf-8", errors="replace"), []


# CPython 3.11's ast.parse is not thread-safe: the interpreter-wide AST state's recursion counter is
# shared, so two threads parsing at once (two submissions judged side by side, `grade --workers 2`)
# can fail with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905; seen
# here as an honest submission graded "failed", 0 points). One parse at a time.
_PARSE_LOCK = threading.Lock()


def audit(source: str, module: str) -> list[str]:
    """Reasons to review the exercise module ``source`` of lab module ``module`` ([] if none)."""
    # Longer than 60 lines for a reason: one walk over the tree, one branch per kind of node, all sharing
    # flag() and check_name() (closures over this lab's forbidden names and the import aliases).
    try:
        with _PARSE_LOCK:
            tree = ast.parse(source)
    except SyntaxError:
        return []  # not a cheat: the judge reports it as a crash
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return [f"line ?: the audit could not read the module ({type(exc).__name__}): review it by hand"]
    forbidden = dict(FORBIDDEN_MODULES, **ANSWER_LIBRARIES.get(module, {}))
    aliases = _aliases(tree)
    reasons: list[str] = []

    def flag(node, what: str, why: str) -> None:
        reasons.append(f"line {getattr(node, 'lineno', '?')}: {what} ({why})")

    def check_name(node, name: str, what: str) -> bool:
        """Flag the module or qualified ``name`` if it is forbidden."""
        for banned, why in forbidden.items():
            if name == banned or name.startswith(banned + "."):
                flag(node, f"{what} {name}", why)
                return True
        for pattern, why in FORBIDDEN_NAMES.items():
            if fnmatchcase(name, pattern) or fnmatchcase(name, pattern + ".*"):
                flag(node, f"{what} {name}", why)
                return True
        return False

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_name(node, alias.name, "imports")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 0 and base in _NO_STAR and any(a.name == "*" for a in node.names):
                flag(node, f"imports * from {base}", "hiding which of its names are used")
            elif node.level == 0:
                if not check_name(node, base, "imports"):
                    for alias in node.names:  # from labkit import check; from os import spawnv
                        check_name(node, f"{base}.{alias.name}", "imports")
            elif base in ("check", "") and any(a.name == "check" or base == "check" for a in node.names):
                flag(node, "imports labkit.check (relative)", "the public checks")
        elif isinstance(node, ast.Attribute):
            qualified = _qualified(node, aliases)
            if node.attr in FORBIDDEN_ATTRIBUTES:
                flag(node, f"uses .{node.attr}", FORBIDDEN_ATTRIBUTES[node.attr])
            elif qualified and check_name(node, qualified, "uses"):
                pass
            elif node.attr in FORBIDDEN_CALLS and node.attr not in _BUILTIN_ONLY:
                flag(node, f"uses .{node.attr}", FORBIDDEN_CALLS[node.attr])
            elif node.attr == "__dict__" and qualified:
                flag(node, f"uses {qualified}", "reaching a module's variables")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id in FORBIDDEN_ATTRIBUTES:
                flag(node, f"uses {node.id}", FORBIDDEN_ATTRIBUTES[node.id])
            elif node.id in FORBIDDEN_CALLS and node.id not in aliases:
                flag(node, f"uses {node.id}", FORBIDDEN_CALLS[node.id])
        elif isinstance(node, ast.Call):
            _audit_call(node, aliases, flag, check_name)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                qualified = _qualified(target, aliases) if isinstance(target, ast.Attribute) else None
                if qualified and not qualified.startswith(_SETTINGS):
                    flag(node, f"replaces {qualified}", "changing a library the judge's worker uses")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if any(s in node.value for s in _SUSPICIOUS_TEXT):
                flag(node, f"mentions {node.value[:40]!r}", "a path or module of the grading")
            elif node.value in FORBIDDEN_ATTRIBUTES:
                flag(node, f"mentions {node.value!r}", FORBIDDEN_ATTRIBUTES[node.value])
    return sorted(set(reasons), key=_line)


def _audit_call(node: ast.Call, aliases: dict, flag, check_name) -> None:
    """Calls that reach code or modules by a name this audit can't read."""
    function = _qualified(node.func, aliases) if isinstance(node.func, ast.Attribute) else None
    if isinstance(node.func, ast.Name):
        function = aliases.get(node.func.id, node.func.id)
    first = node.args[0] if node.args else None
    if function in ("importlib.import_module", "importlib.__import__", "__import__"):
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            check_name(node, first.value, "imports")
        else:
            flag(node, "imports a module by a computed name", "hiding what is imported")
    elif function in ("getattr", "setattr", "delattr", "vars") and first is not None:
        owner = _qualified(first, aliases) if isinstance(first, (ast.Name, ast.Attribute)) else None
        if owner is None:
            return
        if function == "vars":
            flag(node, f"vars({owner})", "reaching a module's variables")
            return
        name = node.args[1] if len(node.args) > 1 else None
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            if function == "getattr":
                check_name(node, f"{owner}.{name.value}", "uses")
            else:
                flag(node, f"{function}({owner}, {name.value!r})", "changing a library the judge's worker uses")
        else:
            flag(node, f"{function} on {owner} by a computed name", "hiding what is used")


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the module or qualified name an import bound it to."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _qualified(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """``a.b.c`` with ``a`` an imported name, as the qualified name it stands for (None otherwise)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def _line(reason: str) -> int:
    number = reason[5:].split(":")[0]
    return int(number) if number.isdigit() else 0
