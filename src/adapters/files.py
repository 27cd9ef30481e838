"""Files eventcore keeps on disk (the embedded store, its generated secret): readable by the
owner alone, since they hold password and key hashes, the signing secret and every event."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> None:
    """Create ``path`` (0700) unless it exists; a directory that exists keeps its mode, since it
    may be the operator's (the files eventcore puts in it are private either way)."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)


def private_file(path: Path) -> None:
    """Create ``path`` empty (0600) unless it exists, and take away what a file left by an
    older version grants the group or others."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    tighten(path)


def tighten(path: Path) -> None:
    """``path``, if it exists, readable by its owner alone (a file not ours is left as it is)."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        if path.stat().st_mode & 0o077:
            path.chmod(FILE_MODE)
