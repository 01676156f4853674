"""Read-only access to the course database: the only way questions touch it.

`readonly_connection` stacks independent walls - the file opened `mode=ro`, `query_only`,
and an authorizer that allows only SELECT, reads of the known tables and pure functions
(no PRAGMA, ATTACH, DDL/DML, load_extension) - plus memory limits and a time limit.
`run_readonly` turns SQLite's errors into typed ones (`sql_guard`), and `schema_prompt`
renders the schema with sample rows for a model.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llmtutor.errors import ConfigError
from llmtutor.knowledge.catalog.course_db import QUERYABLE_TABLES, describe_schema
from llmtutor.knowledge.catalog.sql_guard import QueryTimeoutError, SQLExecutionError, UnsafeSQLError

# Pure functions a read-only query may call (lower-case, as SQLite's authorizer names them).
# Anything else - load_extension, zeroblob, randomblob, fts3_tokenizer, ... - is denied.
ALLOWED_FUNCTIONS = frozenset(
    {
        "count",
        "sum",
        "total",
        "avg",
        "min",
        "max",
        "group_concat",
        "string_agg",
        "lower",
        "upper",
        "length",
        "substr",
        "substring",
        "trim",
        "ltrim",
        "rtrim",
        "replace",
        "instr",
        "like",
        "glob",
        "coalesce",
        "ifnull",
        "nullif",
        "iif",
        "if",
        "round",
        "abs",
        "typeof",
        "printf",
        "format",
        "char",
        "unicode",
        "date",
        "time",
        "datetime",
        "julianday",
        "strftime",
        "unixepoch",
        "row_number",
        "rank",
        "dense_rank",
        "percent_rank",
        "cume_dist",
        "ntile",
        "lag",
        "lead",
        "first_value",
        "last_value",
        "nth_value",
    }
)


class QueryResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False  # more rows existed than max_rows


def table_columns(db_path: Path) -> dict[str, list[str]]:
    """{table: [columns]} of the queryable tables, read from the file (read-only)."""
    con = _open_readonly(db_path)
    try:
        return {t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")] for t in QUERYABLE_TABLES}
    finally:
        con.close()


def schema_prompt(db_path: Path, sample_rows: int = 2, width: int = 40) -> str:
    """The schema for a model: the description above, then each table's columns and sample rows."""
    lines = ["Tables (SQLite):", describe_schema(), "", "Sample rows:"]
    con = _open_readonly(db_path)
    try:
        for table in QUERYABLE_TABLES:
            cur = con.execute(f"SELECT * FROM {table} LIMIT {int(sample_rows)}")  # noqa: S608 - fixed names
            columns = [d[0] for d in cur.description]
            lines.append(f"{table}({', '.join(columns)})")
            for row in cur.fetchall():
                cells = [
                    repr(v if not isinstance(v, str) or len(v) <= width else v[: width - 1] + "…")
                    for v in row
                ]
                lines.append("  (" + ", ".join(cells) + ")")
        lines.append(
            "Module ids: "
            + "; ".join(
                f"{i} = {t} / {z}"
                for i, t, z in con.execute("SELECT id, title, title_zh FROM modules ORDER BY ordinal")
            )
        )
    finally:
        con.close()
    return "\n".join(lines)


def _open_readonly(db_path: Path) -> sqlite3.Connection:
    path = Path(db_path).resolve()
    if not path.is_file():
        raise ConfigError(f"course database not found: {path}", "build it with ensure_course_db() first")
    con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5.0)
    con.execute("PRAGMA query_only = ON")
    return con


@contextmanager
def readonly_connection(
    db_path: Path, timeout_s: float | None = None, ctes: frozenset[str] = frozenset()
) -> Iterator[sqlite3.Connection]:
    """A connection that cannot change anything, however the SQL was written.

    Layers, each sufficient for writes on its own: the file is opened `mode=ro`; `query_only`
    is on; and an authorizer allows only SELECT, reads of the known tables and pure functions
    (no PRAGMA, ATTACH, DDL/DML, load_extension). Limits keep one query from eating memory,
    and a progress handler interrupts it after `timeout_s`. `ctes` are the query's own WITH
    names: SQLite reports reading a materialized CTE as a table read.
    """
    con = _open_readonly(db_path)
    try:
        con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1_000_000)
        con.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 20_000)
        con.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1_000)  # LIKE/GLOB match inside one step
        readable = frozenset(QUERYABLE_TABLES) | {name.lower() for name in ctes}
        con.set_authorizer(
            lambda action, arg1, arg2, db, trigger: _authorize(action, arg1, arg2, db, trigger, readable)
        )
        if timeout_s is not None:
            deadline = time.monotonic() + timeout_s
            con.set_progress_handler(lambda: int(time.monotonic() > deadline), 2_000)
        yield con
    finally:
        con.close()


def _authorize(
    action: int,
    arg1: str | None,
    arg2: str | None,
    db: str | None,
    _trigger: str | None,
    readable: frozenset[str] = frozenset(QUERYABLE_TABLES),
) -> int:
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if (
        action == sqlite3.SQLITE_READ and (arg1 or "").lower() in readable and db in ("main", None)
    ):  # None: COUNT(*)
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in ALLOWED_FUNCTIONS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _cte_names(sql: str) -> frozenset[str]:
    """Names the query defines with WITH (parsed, so a string that looks like one is not taken)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (ParseError, TokenError):
        return frozenset()
    return frozenset(cte.alias_or_name for cte in tree.find_all(exp.CTE)) if tree else frozenset()


def run_readonly(db_path: Path, sql: str, *, timeout_s: float = 2.0, max_rows: int = 200) -> QueryResult:
    """Execute one query on a read-only connection; typed errors say what went wrong."""
    with readonly_connection(db_path, timeout_s=timeout_s, ctes=_cte_names(sql)) as con:
        try:
            cur = con.execute(sql)
            rows = cur.fetchmany(max_rows + 1)
        except (sqlite3.Warning, sqlite3.DatabaseError) as exc:
            message = str(exc)
            if "one statement at a time" in message:
                raise UnsafeSQLError(f"refused: {message}", "send exactly one SELECT statement") from None
            if message == "interrupted":
                raise QueryTimeoutError(
                    f"the query ran longer than {timeout_s:g} s and was stopped",
                    "simplify it: fewer joins; a recursive CTE needs a WHERE that ends it",
                ) from None
            if any(
                k in message
                for k in ("not authorized", "authorization denied", "prohibited", "readonly", "read-only")
            ):
                raise UnsafeSQLError(
                    f"refused: the course database is read-only ({message})",
                    "ask a question about the catalog or your quiz history; only SELECT queries run here",
                ) from None
            raise SQLExecutionError(f"SQLite error: {message}", "fix the query and try again") from None
        columns = [d[0] for d in cur.description or ()]
    return QueryResult(
        columns=columns, rows=[list(r) for r in rows[:max_rows]], truncated=len(rows) > max_rows
    )
