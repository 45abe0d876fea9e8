"""Shared code of week 2: configuration, data, preprocessing, tracking and servers.

Importing `week2` (or any of its modules) reads nothing from disk and writes nothing.
"""

__version__ = "0.1.0"
