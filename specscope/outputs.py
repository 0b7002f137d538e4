"""Writing results: "can I write here?" before any model loads, then atomic writes.

Every command that writes (trim's artifact, bench's result folder, layerskip-search's cache
entry, the embedded pair's conversion) asks `check_output_file` or `check_output_dir` while it
validates its options, so a folder that cannot be created costs a second and one error line, not
minutes of loading and calibration and then a traceback. The probes leave nothing behind.

Atomic output (`core/files.py`): every file is written to a temporary name in the same folder, then renamed. A
reader (or a Ctrl-C, or a crash) never sees a half-written file: it sees the old one or the new.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from specscope.core.errors import SpecScopeError
from specscope.core.files import atomic_write


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def dir_problem(out: Path) -> str | None:
    """Why the folder `out` cannot be created and written, or None. Probes by creating what is
    missing and a temporary file in it, then removes them: leaves nothing behind."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        return "it is a file, not a directory"
    created: list[Path] = []
    try:
        missing = [p for p in [out, *out.parents] if not p.exists()]
        for p in reversed(missing):
            p.mkdir()
            created.append(p)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        where = f" ({e.filename})" if e.filename and Path(e.filename) != out else ""
        return f"{e.strerror or e}{where}"
    finally:
        for p in reversed(created):
            try:
                p.rmdir()
            except OSError:
                pass
    return None


def check_output_dir(out: Path, what: str = "output directory") -> None:
    """Fail before any model loads if `out` cannot be created and written."""
    problem = dir_problem(out)
    if problem:
        raise SpecScopeError(f"cannot write to {what} {Path(out).expanduser()}: {problem}")


def check_output_file(path: Path, what: str = "output file") -> Path:
    """Fail before any model loads if the file `path` cannot be written: it names a folder, or
    its folder cannot be created or written (an atomic write needs only the folder: it renames a
    temporary file over the old one). Returns the path with ~ expanded."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise SpecScopeError(f"{what} {path} is a directory; give a file name")
    problem = dir_problem(path.parent)
    if problem:
        raise SpecScopeError(f"cannot write {what} {path}: its folder {path.parent}: {problem}")
    return path


def ensure_dir(out: Path) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SpecScopeError(f"cannot create output directory {out}: {e.strerror or e}") from None
    return out
