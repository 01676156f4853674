"""Where the tables that several server processes share live, and one way to reach them.

By default each store keeps its tables in a SQLite file of the workspace, as before
(users.sqlite, jobs.sqlite, the learner tables of course.sqlite, conversations.sqlite and
threads.sqlite). With `LLMTUTOR_DATABASE_URL=postgresql://…` they live in one PostgreSQL
database instead, each store in its own schema (`users`, `jobs`, `learner`, `conversations`;
LangGraph's checkpoint tables in the default one), so several `llmtutor serve` processes see
the same learners, threads, progress and jobs. The course catalog stays in SQLite: it is
built from bundled files and only read.

Stores take `Path | Database`: a path is a SQLite file (or workspace folder) as before, so
scripts and tests that pass paths are unchanged; entry points pass `Settings.database`.

SQL is written once, with `?` placeholders and syntax both dialects accept (ON CONFLICT
upserts, RETURNING); a migration whose SQL differs gives one text per dialect. Migrations are
append-only and recorded in each store's `schema_version` table, on both dialects.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from llmtutor.errors import ConfigError

Dialect = Literal["sqlite", "postgres"]
# (version, description, SQL): one text for both dialects, or one per dialect where they differ.
Migration = tuple[int, str, str | Mapping[str, str]]
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_postgres_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


@dataclass(frozen=True)
class Database:
    """The workspace's shared tables: SQLite files in `workspace`, or the Postgres database `url`."""

    workspace: Path
    url: str | None = None

    def location(self, sqlite_file: str) -> Path | str:
        """A store's tables: its SQLite file in the workspace, or the Postgres URL."""
        return self.url or Path(self.workspace) / sqlite_file

    def __repr__(self) -> str:  # never show the password
        return f"Database(workspace={str(self.workspace)!r}, url={redact(self.url) if self.url else None!r})"


def database_errors() -> tuple[type[Exception], ...]:
    """The drivers' error classes, for code that survives a failed write (psycopg's only once
    loaded: a workspace on SQLite never imports it)."""
    import sys

    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error, psycopg.Error) if psycopg is not None else (sqlite3.Error,)


def location_of(where: Path | str | Database, sqlite_file: str) -> Path | str:
    """A Database's location for a store, or the path a caller gave (as before)."""
    return where.location(sqlite_file) if isinstance(where, Database) else where


class Connection:
    """One connection in autocommit mode outside `transaction()`; `?` placeholders on both dialects."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.dialect == "sqlite":
            return self.raw.execute(sql, params)
        return self.raw.execute(_pyformat(sql), params) if params else self.raw.execute(sql)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.dialect == "sqlite":
            self.raw.executemany(sql, rows)
        elif rows:
            with self.raw.cursor() as cur:
                cur.executemany(_pyformat(sql), rows)

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[None]:
        """One transaction. SQLite takes its write lock at once (BEGIN IMMEDIATE), which orders
        every writer; Postgres takes the advisory lock `lock` when given, for read-then-write
        sequences that two processes must not interleave."""
        if self.dialect == "sqlite":
            self.raw.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.raw.execute("ROLLBACK")
                raise
            self.raw.execute("COMMIT")
            return
        with self.raw.transaction():
            if lock is not None:
                self.raw.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
            yield

    def close(self) -> None:
        self.raw.close()


@lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    """`?` to psycopg's `%s`, and a literal `%` doubled (outside quoted strings too: psycopg
    reads every `%` of a query with parameters)."""
    out, quote = [], ""
    for ch in sql:
        if ch == "%":
            out.append("%%")
        elif quote:
            quote = "" if ch == quote else quote
            out.append(ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        else:
            out.append("%s" if ch == "?" else ch)
    return "".join(out)


@contextmanager
def connect(
    location: Path | str, migrations: Sequence[Migration], *, schema: str, name: str, wal: bool = False
) -> Iterator[Connection]:
    """A migrated connection to a store's tables: the SQLite file `location`, or the Postgres
    database at a `postgresql://` URL (the store's tables in its own `schema`)."""
    if is_postgres_url(location):
        con = _open_postgres(str(location), schema, migrations)
    else:
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        con = Connection(sqlite3.connect(path, timeout=30, isolation_level=None), "sqlite")
        try:
            if wal:  # a worker appends progress while the server reads
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA busy_timeout=30000")
            migrate(con, migrations, name or str(path))
        except BaseException:
            con.close()
            raise
    try:
        yield con
    finally:
        con.close()


# (url, schema, newest version) already migrated by this process: later connections skip the
# check. A cache of work done, not configuration; a new process checks again.
_MIGRATED: set[tuple[str, str, int]] = set()


def connect_postgres(url: str, **kwargs: Any) -> Any:
    """A psycopg connection in autocommit mode; typed errors for what the learner can fix."""
    try:
        import psycopg
    except ImportError as exc:
        raise ConfigError(
            "LLMTUTOR_DATABASE_URL names a Postgres database but psycopg is not installed",
            "pip install 'psycopg[binary]' (a dependency of llmtutor), or unset LLMTUTOR_DATABASE_URL",
        ) from exc
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        raise ConfigError(
            f"cannot reach the Postgres database {redact(url)}: {str(exc).strip()[:300]}",
            "start the server or fix LLMTUTOR_DATABASE_URL (postgresql://USER:PASSWORD@HOST:PORT/DB)",
        ) from None


def _open_postgres(url: str, schema: str, migrations: Sequence[Migration]) -> Connection:
    if not _SCHEMA.match(schema):
        raise ValueError(f"bad schema name {schema!r}")
    con = Connection(connect_postgres(url, options=f"-c search_path={schema}"), "postgres")
    key = (url, schema, migrations[-1][0])
    if key not in _MIGRATED:
        try:
            with con.transaction(lock=f"llmtutor-migrate:{schema}"):
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            migrate(
                con, migrations, f"the {schema} tables of {redact(url)}", lock=f"llmtutor-migrate:{schema}"
            )
        except BaseException:
            con.close()
            raise
        _MIGRATED.add(key)
    return con


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def current_version(con: Connection) -> int | None:
    """The newest applied migration, or None for a database that has never been migrated."""
    if con.dialect == "sqlite":
        exists = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
    else:
        exists = con.execute("SELECT to_regclass('schema_version')").fetchone()[0]
    return con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] if exists else None


def migrate(
    con: Connection, migrations: Sequence[Migration], name: str = "the database", lock: str | None = None
) -> int:
    """Apply the pending migrations, each in its own transaction; returns the version.

    Two processes migrating at once are safe: each migration re-checks, inside its write lock
    (SQLite's, or the advisory `lock` on Postgres), that no one applied it meanwhile.
    """
    latest = migrations[-1][0]
    current = current_version(con)
    if current is not None and current > latest:
        raise ConfigError(
            f"{name} has schema version {current}, newer than this llmtutor ({latest})",
            "upgrade llmtutor, or point LLMTUTOR_WORKSPACE (or LLMTUTOR_DATABASE_URL) elsewhere",
        )
    for version, description, sql in migrations:
        if current is not None and version <= current:
            continue
        with con.transaction(lock=lock):
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "description TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            if con.execute("SELECT 1 FROM schema_version WHERE version = ?", (version,)).fetchone() is None:
                text = sql if isinstance(sql, str) else sql[con.dialect]
                for statement in filter(str.strip, text.split(";")):
                    con.execute(statement)
                con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (version, description, _now()))
    return latest
