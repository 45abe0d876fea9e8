"""Writing files so that a crash never leaves half of one: the one atomic-write helper."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_SUFFIX = ".part"


@contextmanager
def atomic_path(destination: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; on success rename it into place, else delete it.

    The temporary file is `.<name>.<random>.part` in the same folder, so the rename is atomic and a
    process killed in the middle leaves only a `.part` file, which `remove_partials` clears later.
    `mode`, when given, is applied before the rename (for secrets: 0o600).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=PARTIAL_SUFFIX, dir=destination.parent
    )
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        if mode is not None:
            temporary.chmod(mode)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomically(destination: Path, text: str, mode: int | None = None) -> None:
    with atomic_path(destination, mode) as temporary:
        temporary.write_text(text)
