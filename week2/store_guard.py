"""Whichever process opens a new SQLite store first creates its tables, once; the others wait for them.

MLflow creates a SQLite store's tables and runs its schema migrations when a process first opens
the store, with no lock (MLflow 3.17 locks only its jobs and workspace stores): two processes that
open a new store at the same moment both migrate it and fail with alembic errors. A student meets
this on a fresh clone by running notebook 01, whose cell opens the store with MLflow's own calls as
the lesson types them, beside another notebook.

Creating the store early cannot prevent it: a student's first MLflow call may come before any
course code that would create it, in any process. What every opener goes through is MLflow's own
construction of its SQLAlchemy stores (tracking and registry), so that is what is made safe:
`install()`, which importing `week2` calls, wraps it in `store_lock`, an `flock` on `<store>-lock`
beside the database. Every process of the course imports `week2` before it opens the store (the
notebooks' first cell, the homework scripts through their common module, `python -m week2`), so the
first one creates the tables under the lock and the others, waiting for it, find them whole.

The wrapping is done when MLflow imports those modules (an import hook), not by importing them here:
they take seconds to import, which a process that never opens a store should not pay, and MLflow may
be imported before `week2` or after it.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STORE_MODULES = ("mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store")
"""MLflow's modules whose `SqlAlchemyStore` creates a store's tables when constructed."""

_HELD: set[Path] = set()  # lock files this process holds
_THIS_PROCESS = threading.RLock()  # an flock does not keep this process's other threads out


def database_file(uri: str) -> Path | None:
    """The database file of a `sqlite:` URI (relative ones from the working directory), else None.

    None also for an in-memory database, which no other process can open.
    """
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return None
    return Path(database).expanduser().absolute()


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on a SQLite store's `<file>-lock` while the block runs; no-op for others.

    The lock is an `flock` on a file of its own, never on the database: SQLite's own locks are
    fcntl locks, which closing any descriptor of the database file would release. A block inside
    another on the same store (MLflow opening the store within `setup_mlflow`'s lock) holds it already.
    """
    database = database_file(uri)
    lock_file = database and database.with_name(database.name + "-lock")
    with _THIS_PROCESS:
        if lock_file is None or lock_file in _HELD:
            yield
            return
        try:
            handle = open(lock_file, "a")  # noqa: SIM115 (closed below, after the block)
        except OSError:  # a folder we cannot write in: no store can be created there by us either
            yield
            return
        import fcntl  # here, not above: a logged model ships this module and may load on Windows

        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
            _HELD.add(lock_file)
            try:
                yield
            finally:
                _HELD.discard(lock_file)


def _lock_construction(store_class: type) -> None:
    """Make `store_class(db_uri, …)` run under `store_lock(db_uri)`, once."""
    construct = store_class.__init__
    if getattr(construct, "locked_by_week2", False):
        return

    @functools.wraps(construct)
    def __init__(self, db_uri, *args, **kwargs):
        with store_lock(db_uri):
            construct(self, db_uri, *args, **kwargs)

    __init__.locked_by_week2 = True
    store_class.__init__ = __init__


class _LockStoresOnImport(importlib.abc.MetaPathFinder):
    """Finds MLflow's store modules as Python would, and locks their store's construction once loaded."""

    def find_spec(self, name, path, target=None):
        if name not in STORE_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None:
            return None
        execute = spec.loader.exec_module

        def exec_module(module) -> None:
            execute(module)
            _lock_construction(module.SqlAlchemyStore)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Lock the construction of MLflow's SQLAlchemy stores in this process: now if MLflow has imported
    them, else as soon as it does. Not on Windows, which has no `flock` (a logged model ships week2)."""
    if sys.platform == "win32":
        return
    for name in STORE_MODULES:
        if name in sys.modules:
            _lock_construction(sys.modules[name].SqlAlchemyStore)
    if not any(isinstance(finder, _LockStoresOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _LockStoresOnImport())
