"""Writing files so that a crash never leaves half of one: the one atomic-write helper."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_SUFFIX = ".part"
PARTIAL_GRACE_SECONDS = 60
"""A partial file this young is left alone: its writer may not have locked it yet."""


@contextmanager
def atomic_path(destination: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; on success rename it into place, else delete it.

    The temporary file is `.<name>.<random>.part` in the same folder, so the rename is atomic and a
    process killed in the middle leaves only a `.part` file, which `remove_partials` clears later.
    While the block runs the temporary file is locked (`flock`): that is how `remove_partials` tells
    a file whose writer died from one still being written by another process.
    `mode`, when given, is applied before the rename (for secrets: 0o600).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=PARTIAL_SUFFIX, dir=destination.parent
    )
    temporary = Path(name)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when `handle` closes, also when the process dies
        yield temporary
        if mode is not None:
            temporary.chmod(mode)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
        os.close(handle)


def write_text_atomically(destination: Path, text: str, mode: int | None = None) -> None:
    with atomic_path(destination, mode) as temporary:
        temporary.write_text(text)


def remove_partials(folder: Path) -> list[Path]:
    """Delete the `.part` files in `folder` left by writers that died (killed mid-download); return them.

    A partial file that another process is still writing is locked by it and kept, and so is one
    younger than PARTIAL_GRACE_SECONDS.
    """
    removed = []
    for partial in sorted(Path(folder).glob(f".*{PARTIAL_SUFFIX}")):
        try:
            if time.time() - partial.stat().st_mtime < PARTIAL_GRACE_SECONDS:
                continue
            with partial.open("rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                partial.unlink()
        except BlockingIOError:  # its writer is alive
            continue
        except FileNotFoundError:  # its writer finished, or another process removed it first
            continue
        removed.append(partial)
    return removed
