"""The one way this project writes a file: whole or not at all.

Records, tables, dashboards, the decoded-data cache and checkpoints all go through
:func:`write_atomic`: a temporary file beside the target, flushed to disk (``fsync``), renamed
into place. A reader never sees half a file, and a crash leaves the old file as it was. The
new file gets the mode any new file of the process gets (0666 less the umask), not
``mkstemp``'s private 0600, so that teammates sharing a group directory can read it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def umask() -> int:
    """The process umask, read without changing it where the OS tells it (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the usual two calls
    os.umask(mask)
    return mask


def write_atomic(path: Path | str, content: str | bytes | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` (text, bytes, or a function that writes into a binary file, e.g.
    ``lambda f: torch.save(state, f)``) to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
