"""Whether a command can write its output file, asked before the work that makes it: a path in
a folder that cannot be written is one line naming the path at once, not a traceback (or an
"internal error") after minutes of generating."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["unwritable"]


def unwritable(path: Path) -> str | None:
    """Why `path` cannot be written, for a person (None: it can). Probed the way the writers
    write (`RecordingWriter`: a temporary file in the same folder, renamed into place; the
    folder made first), so the answer is theirs, whatever the reason (permissions, a read-only
    or special file system such as /proc, a file where a folder should be)."""
    if path.is_dir():
        return f"cannot write {path}: it is a folder"
    folder = path.parent
    for above in (folder, *folder.parents):
        if above.exists():
            if not above.is_dir():
                return f"cannot write {path}: {above} is a file, not a folder"
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        return f"cannot write {path}: cannot create a file in {folder} ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(probe)
    return None
