"""Atomic file output, for the core's own caches and for every front end's results.

Every file is written to a temporary name in the same folder, then renamed. A reader (or a
Ctrl-C, or a crash) never sees a half-written file: it sees the old one or the new.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call write(temp_path), then move the temporary file over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_artifact(path: str | os.PathLike, fmt: str, what: str) -> tuple[dict, dict]:
    """(metadata, tensors) of a specscope safetensors artifact whose metadata says `fmt` (an MTP
    head, a draft-length predictor), or a one-line refusal naming `what` it should have been."""
    import json

    from safetensors import safe_open

    from specscope.core.errors import SpecScopeError

    path = Path(path).expanduser()
    if not path.is_file():
        raise SpecScopeError(f"{what} not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("specscope", "{}"))
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as e:
        raise SpecScopeError(f"{path}: not a specscope {what} ({type(e).__name__})") from None
    if meta.get("format") != fmt:
        raise SpecScopeError(f"{path}: not a specscope {what} (format {meta.get('format')!r})")
    return meta, tensors
