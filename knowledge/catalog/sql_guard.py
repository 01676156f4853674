"""Static checks on SQL before it runs: one read-only SELECT over known tables and columns.

`validate_sql` parses with sqlglot (SQLite dialect) and accepts exactly one SELECT (set
operations and WITH/CTEs included) that names only known tables and columns and calls no
dangerous function; it returns the SQL that sqlglot regenerates from the checked tree, with
a LIMIT no larger than the cap - so the text that runs is the text that was checked.

This is the first of two independent walls: the read-only connection in
`knowledge.course_db` denies writes, PRAGMA, ATTACH and extension loading even for SQL that
never went through here. Errors split into refusals (`UnsafeSQLError`: a write or an escape
was asked for; never retried) and mistakes (`InvalidSQLError`: unknown column, syntax; the
message is worded so that a model can repair the query).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from llmtutor.errors import LLMTutorError

MAX_LIMIT = 200
MAX_SQL_CHARS = 4_000
# printf/format pad inside one call, where no time limit can stop them (SQLite 3.40 spends
# 5 s on '%.*c' with 2e9): widths and precisions are capped and must be written out.
MAX_FORMAT_WIDTH = 1_000
_FORMAT_SPEC = re.compile(r"%[-+ 0#,!]*(\*|\d+)?(?:\.(\*|\d+))?")
# Functions that read files, load code or allocate without bound. The connection's authorizer
# allow-lists functions as well; naming them here gives a clear refusal instead of a retry.
BLOCKED_FUNCTIONS = frozenset(
    {
        "load_extension",
        "readfile",
        "writefile",
        "edit",
        "fts3_tokenizer",
        "zeroblob",
        "randomblob",
        "sqlite_compileoption_get",
        "sqlite_offset",
    }
)
REFUSAL_HINT = (
    "the course database is read-only here: ask a question about the catalog or your quiz history "
    "(quiz results are recorded by the quiz tool)"
)


class SQLError(LLMTutorError):
    """A query was not run. `repairable`: a model may fix it from the message."""

    repairable = True


class UnsafeSQLError(SQLError):
    """The query would write, escape the database or call a dangerous function: refused."""

    repairable = False


class InvalidSQLError(SQLError):
    """Not parseable, or names a table/column/function that does not exist."""


class SQLExecutionError(InvalidSQLError):
    """SQLite raised an error while running an accepted query."""


class QueryTimeoutError(SQLExecutionError):
    """The query ran past its time limit and was interrupted."""


class GuardedSQL(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str  # what will run: regenerated from the checked tree, LIMIT applied
    tables: list[str]
    limit: int


def validate_sql(sql: str, schema: Mapping[str, Sequence[str]], max_limit: int = MAX_LIMIT) -> GuardedSQL:
    """Check `sql` against `schema` ({table: [columns]}); raise UnsafeSQLError/InvalidSQLError."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import OptimizeError, ParseError, TokenError

    # sqlglot logs a warning for every statement it cannot parse fully (PRAGMA, VACUUM ...);
    # those are refused below with a clear message, so the log line is noise.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    text = (sql or "").strip()
    if not text:
        raise InvalidSQLError("empty SQL", "write one SELECT statement")
    if len(text) > MAX_SQL_CHARS:
        raise InvalidSQLError(f"SQL longer than {MAX_SQL_CHARS} characters", "write a shorter query")
    try:
        statements = [s for s in sqlglot.parse(text, read="sqlite") if s is not None]
    except (ParseError, TokenError) as exc:
        raise InvalidSQLError(f"SQL syntax error: {_first_line(exc)}", "write valid SQLite") from None
    if len(statements) != 1:
        raise UnsafeSQLError(
            f"refused: {len(statements)} statements given, only one SELECT may run", REFUSAL_HINT
        )
    tree = statements[0]
    forbidden = _forbidden_nodes(exp)
    if isinstance(tree, forbidden):
        kind = str(tree.this).upper() if isinstance(tree, exp.Command) else type(tree).__name__.upper()
        raise UnsafeSQLError(f"refused: only SELECT queries may run, not {kind}", REFUSAL_HINT)
    if not isinstance(tree, exp.Query):
        raise InvalidSQLError(f"not a SELECT statement: {text[:80]!r}", "write one SELECT statement")
    _refuse_writes_and_escapes(tree, forbidden, exp)
    tables = _check_tables(tree, schema, exp)
    lowered = {t.lower(): {c.lower(): "TEXT" for c in cols} for t, cols in schema.items()}
    try:
        from sqlglot.optimizer.qualify import qualify

        qualify(
            tree.copy(),
            schema=lowered,
            dialect="sqlite",
            validate_qualify_columns=True,
            quote_identifiers=False,
        )
    except OptimizeError as exc:
        raise InvalidSQLError(
            f"{_first_line(exc)} (use only the columns in the schema; quote text values with single quotes)",
            "fix the column names",
        ) from None
    except (ParseError, ValueError, KeyError) as exc:  # sqlglot cannot analyse it: not our SQL
        raise InvalidSQLError(
            f"cannot analyse the query: {_first_line(exc)}", "write a simpler SELECT"
        ) from None
    limit = _apply_limit(tree, max_limit, exp)
    return GuardedSQL(sql=tree.sql(dialect="sqlite"), tables=sorted(tables), limit=limit)


def _forbidden_nodes(exp) -> tuple[type, ...]:
    # Command: a statement sqlglot could not parse (VACUUM, REPLACE ...): never run those.
    return tuple(
        getattr(exp, name)
        for name in (
            "Insert",
            "Update",
            "Delete",
            "Drop",
            "Create",
            "Alter",
            "Merge",
            "Command",
            "Pragma",
            "Attach",
            "Detach",
            "Transaction",
            "Commit",
            "Rollback",
            "Into",
            "Set",
            "LoadData",
            "Copy",
        )
        if hasattr(exp, name)
    )


def _refuse_writes_and_escapes(tree, forbidden: tuple[type, ...], exp) -> None:
    for node in tree.walk():
        if isinstance(node, forbidden):
            raise UnsafeSQLError(f"refused: the query contains {type(node).__name__.upper()}", REFUSAL_HINT)
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in BLOCKED_FUNCTIONS:
                raise UnsafeSQLError(f"refused: the function {name}() is not allowed", REFUSAL_HINT)
            if name in ("printf", "format"):
                _check_format(node, name, exp)


def _check_format(node, name: str, exp) -> None:
    # sqlglot keeps printf() as Anonymous (arguments in `expressions`), format() as Format (`this` first).
    pattern = (node.expressions or [None])[0] if isinstance(node, exp.Anonymous) else node.this
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        raise UnsafeSQLError(
            f"refused: {name}() needs a literal format string", "write the format as a quoted string"
        )
    for width, precision in _FORMAT_SPEC.findall(pattern.name):
        for value in (width, precision):
            if value == "*" or (value and int(value) > MAX_FORMAT_WIDTH):
                raise UnsafeSQLError(
                    f"refused: {name}() widths and precisions must be numbers up to {MAX_FORMAT_WIDTH}",
                    "write the width in the format string, e.g. printf('%.2f', x)",
                )


def _check_tables(tree, schema: Mapping[str, Sequence[str]], exp) -> set[str]:
    known = {t.lower() for t in schema}
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    used: set[str] = set()
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if table.args.get("db") is not None or table.args.get("catalog") is not None:
            qualifier = table.args.get("db") or table.args.get("catalog")
            if str(qualifier.name).lower() != "main":
                raise UnsafeSQLError(
                    f"refused: table {table.sql('sqlite')} is outside the course database", REFUSAL_HINT
                )
            table.set("db", None)  # "main.modules" is just "modules"
        if not name:
            raise InvalidSQLError("a FROM clause names no table", "select FROM one of the schema's tables")
        if name in ctes:
            continue
        if name not in known:
            raise InvalidSQLError(
                f"unknown table {table.name!r}; the tables are: {', '.join(sorted(schema))}",
                "use only the schema's tables",
            )
        used.add(name)
    return used


def _apply_limit(tree, max_limit: int, exp) -> int:
    """Cap the outermost LIMIT at `max_limit` (add it when missing); returns the limit in force."""
    current = tree.args.get("limit")
    value = None
    if current is not None:
        number = current.expression
        if isinstance(number, exp.Literal) and number.is_int:
            value = int(number.this)
    limit = max_limit if value is None or value < 0 or value > max_limit else value
    tree.set("limit", exp.Limit(expression=exp.Literal.number(limit)))
    return limit


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
