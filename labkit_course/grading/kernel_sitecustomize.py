"""The kernel's ``sitecustomize``: an audit hook that records what a notebook's kernel opens and starts.

Not imported by the grader: :func:`labkit_course.grading.preparing.prepare_kernel_box` copies this
file as ``sitecustomize.py`` into the folder on the sandboxed kernel's ``PYTHONPATH``, and Python
runs it at the kernel's start. It does nothing unless ``LABKIT_AUDIT_LOG`` is set and the kernel
runs for ``nbgrader autograde``. The sandbox already hides the course; this turns an attempt into
evidence. The kernel writes the log: the grader reads it as untrusted data
(:func:`labkit_course.grading.running.read_audit_log`), and nothing the sandbox prevents depends on it.
"""

import os
import sys

_log = os.environ.get("LABKIT_AUDIT_LOG")
if _log and os.environ.get("NBGRADER_EXECUTION") == "autograde":
    _fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(_fd, f"START {os.getpid()}\n".encode())
    # the runtime's own process starts are not the student's: ctypes.util.find_library runs
    # ldconfig and gcc, platform runs uname, matplotlib's font manager fc-list
    import importlib.util

    _own = [os.path.join(os.path.dirname(os.__file__), f) for f in ("ctypes/util.py", "platform.py")]
    _mpl = importlib.util.find_spec("matplotlib")  # found, not imported
    _own = tuple(_own + [os.path.join(p, "font_manager.py") for p in (_mpl and _mpl.submodule_search_locations or ())])

    def _runtime_own(_getframe=sys._getframe, _own=_own):
        frame = _getframe(1)
        while frame is not None:
            if frame.f_code.co_filename in _own:
                return True
            frame = frame.f_back
        return False

    def _hook(event, args, _fd=_fd, _w=os.write, _fs=os.fsdecode):
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            path = _fs(args[0])
            if (
                path.endswith((".ipynb", ".db", ".db-journal"))
                or "/.labkit" in path
                or (path.startswith("/proc/") and path.endswith("/mem"))
            ):
                _w(_fd, f"open {path!r}\n".encode())
        elif event == "sqlite3.connect":
            _w(_fd, f"sqlite3.connect {args!r}\n".encode())
        elif event in ("subprocess.Popen", "os.system", "os.posix_spawn", "os.exec") and not _runtime_own():
            _w(_fd, f"PROC {event} {args[:2]!r}"[:300].encode() + b"\n")

    sys.addaudithook(_hook)
