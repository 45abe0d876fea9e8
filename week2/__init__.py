"""Shared code of week 2: configuration, data, preprocessing, tracking and servers.

Importing `week2` (or any of its modules) reads nothing from disk and writes nothing. It makes
MLflow create a new SQLite store's tables under a lock, so that two processes opening the store at
once do not both migrate it (`week2.store_guard` says why and how).
"""

from week2 import store_guard

__version__ = "0.1.0"

store_guard.install()
