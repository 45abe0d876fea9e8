"""Writing files so that a crash never leaves half of one: the one atomic-write helper."""

from __future__ import annotations

import fcntl
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
    While the block runs the temporary file is locked (`flock`): that is how `remove_partials` tells
    a file whose writer died from one still being written by another process.
    `mode`, when given, is applied before the rename (for secrets: 0o600).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = _new_locked_partial(destination)
    try:
        yield temporary
        if mode is not None:
            temporary.chmod(mode)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
        os.close(handle)


def _new_locked_partial(destination: Path) -> tuple[int, Path]:
    """A new `.part` file beside `destination`, created and locked by us: its descriptor and path.

    `remove_partials` deletes every `.part` file that nobody holds locked, so it may delete ours in
    the moment between its creation and our lock. Once locked, ours cannot go; so after locking we
    check that the path still names the file we created, and make another one if it does not.
    """
    while True:
        handle, name = tempfile.mkstemp(
            prefix=f".{destination.name}.", suffix=PARTIAL_SUFFIX, dir=destination.parent
        )
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when `handle` closes, also when the process dies
        try:
            if os.path.samestat(os.fstat(handle), os.stat(name)):
                return handle, Path(name)
        except FileNotFoundError:  # removed by another process's remove_partials: not ours any more
            pass
        os.close(handle)


def write_text_atomically(destination: Path, text: str, mode: int | None = None) -> None:
    with atomic_path(destination, mode) as temporary:
        temporary.write_text(text)


def remove_partials(folder: Path) -> list[Path]:
    """Delete the `.part` files in `folder` left by writers that died (killed mid-download); return them.

    A partial file that another process is still writing is locked by it and kept. One that is not
    locked is removed however young: its writer died, or has not locked it yet, and then that writer
    sees that its file is gone and makes another (`_new_locked_partial`).
    """
    removed = []
    for partial in sorted(Path(folder).glob(f".*{PARTIAL_SUFFIX}")):
        try:
            with partial.open("rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                partial.unlink()
        except BlockingIOError:  # its writer is alive
            continue
        except FileNotFoundError:  # its writer finished, or another process removed it first
            continue
        removed.append(partial)
    return removed
