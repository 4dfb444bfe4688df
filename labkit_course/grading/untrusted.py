"""Reading what student code could have written (steps 2 and 3 of grading): the submission, the
executed notebook, the kernel's logs. No links followed, sizes capped, special files refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def read_untrusted(path: Path, limit: int = 64 * 2**20) -> bytes:
    """The bytes of a regular file that student code could have replaced: no links followed, size capped."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise ValueError(f"{path.name} is not a regular file of a sensible size")
        return f.read(limit)


def read_tail(path: Path, limit: int) -> bytes:
    """The last ``limit`` bytes of a log (b"" if there is none): a log can be as big as its writer made it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return b""
        f.seek(max(0, os.fstat(f.fileno()).st_size - limit))
        return f.read(limit)


def copy_regular_files(src: Path, dest: Path) -> None:
    """Copy the regular files under ``src`` (links and special files are left behind), each in the
    form an instructor's tool may show (:func:`labkit_course.sanitize.view_file`; files it refuses
    are left behind)."""
    from labkit_course.sanitize import view_file

    for path in sorted(src.rglob("*")):
        if (
            path.is_file()
            and not path.is_symlink()
            and not any(p.is_symlink() for p in path.parents if src in p.parents)
        ):
            rel = path.relative_to(src)
            data = view_file(rel, read_untrusted(path))
            if data is not None:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                (dest / rel).write_bytes(data)
