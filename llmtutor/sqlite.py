"""Append-only schema migrations on a plain `sqlite3` connection (the course catalog database).

The mechanism itself lives in `llmtutor.database` (SQLite and Postgres alike): a migration is
`(version, description, sql)`, a new schema version is a new entry at the end, never an edit
of a released one, and a database written by a newer llmtutor is refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from llmtutor import database
from llmtutor.database import Migration

__all__ = ["Migration", "current_version", "migrate"]


def current_version(con: sqlite3.Connection) -> int | None:
    """The newest applied migration, or None for a database that has never been migrated."""
    return database.current_version(database.Connection(con, "sqlite"))


def migrate(con: sqlite3.Connection, migrations: Sequence[Migration], name: str = "the database") -> int:
    """Apply the pending migrations, each in its own immediate transaction; returns the version.

    `con` must be in autocommit mode (`isolation_level=None`): transactions here are explicit.
    """
    return database.migrate(database.Connection(con, "sqlite"), migrations, name)
