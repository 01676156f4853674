"""Append-only schema migrations for the project's SQLite files (course database, job store).

A migration is `(version, description, sql)`; a new schema version is a new entry at the end,
never an edit of a released one. Applied versions are rows of `schema_version`, so a database
written by a newer llmtutor is refused instead of being silently misread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from llmtutor.errors import ConfigError

Migration = tuple[int, str, str]


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def current_version(con: sqlite3.Connection) -> int | None:
    """The newest applied migration, or None for a database that has never been migrated."""
    has_table = con.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    return con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] if has_table else None


def migrate(con: sqlite3.Connection, migrations: Sequence[Migration], name: str = "the database") -> int:
    """Apply the pending migrations, each in its own immediate transaction; returns the version.

    `con` must be in autocommit mode (`isolation_level=None`): transactions here are explicit.
    Two processes opening the same file at once are safe: each migration re-checks, inside
    its write lock, that no one applied it meanwhile.
    """
    latest = migrations[-1][0]
    current = current_version(con)
    if current is not None and current > latest:
        raise ConfigError(
            f"{name} has schema version {current}, newer than this llmtutor ({latest})",
            "upgrade llmtutor, or point LLMTUTOR_WORKSPACE at another folder",
        )
    for version, description, sql in migrations:
        if current is not None and version <= current:
            continue
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "description TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            if con.execute("SELECT 1 FROM schema_version WHERE version = ?", (version,)).fetchone() is None:
                for statement in filter(str.strip, sql.split(";")):
                    con.execute(statement)
                con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (version, description, _now()))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return latest
