"""Writing files atomically: a reader (or a run cut off mid-write) sees the old file or the
new one, never a part. Every file anyner rewrites in place goes through here: training
checkpoints' pointer, ``calibration.json``, the annotation manifest and shards, charts.

The content goes to a uniquely named temporary file in the destination's folder (so the
final rename stays on one file system), is flushed to disk, takes the permissions a plain
``open`` would give it under the process's umask, and is renamed over the destination.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def umask() -> int:
    """The process's file-creation mask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path) -> None:
    """Give ``path`` the permissions a new file gets under the umask (``mkstemp`` and some
    writers, safetensors among them, create files readable by their owner only)."""
    os.chmod(path, 0o666 & ~umask())


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file, then rename it over ``path``.

    ``write`` gets the temporary file's path and writes the whole content there (it may
    reopen or replace the file: ``savefig``, ``pyarrow.parquet.write_table``). If it raises,
    the temporary file is removed and ``path`` is left as it was. Returns ``path``.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        follow_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically. Returns ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


__all__ = ["atomic_write", "atomic_write_text", "follow_umask", "umask"]
