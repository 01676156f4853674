"""Where conversation threads are kept: the LangGraph checkpointer for the settings.

SQLite (`threads.sqlite` in the workspace) by default. With LLMTUTOR_DATABASE_URL, LangGraph's
PostgresSaver on a connection pool, so every server process on the database continues every
learner's thread (its checkpoint tables are in the database's default schema).
"""

from __future__ import annotations

import time
from typing import Any

from llmtutor.errors import ConfigError
from llmtutor.settings import Settings

_SETUP_LOCK = "llmtutor-checkpoint-setup"


def make_checkpointer(settings: Settings) -> Any:
    if settings.database_url:
        return _postgres(settings.database_url, max_size=min(settings.max_concurrent_turns, 16))
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    return SqliteSaver(sqlite3.connect(settings.checkpoint_db, check_same_thread=False))


def _postgres(url: str, max_size: int) -> Any:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    from llmtutor.database import connect_postgres

    # The settings PostgresSaver documents: autocommit, no prepared statements, dict rows.
    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    # The lock connection comes first: an unreachable server fails here with a clear message
    # instead of in the pool's background retries.
    with connect_postgres(url) as lock:
        pool = ConnectionPool(url, min_size=1, max_size=max(max_size, 2), kwargs=kwargs, open=True)
        saver = PostgresSaver(pool)
        # setup() creates LangGraph's tables; two processes starting at once would race on them.
        _take(lock)
        try:
            saver.setup()
        except BaseException:
            pool.close()
            raise
        finally:
            lock.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_SETUP_LOCK,))
    return saver


def _take(lock: Any, timeout_s: float = 120.0) -> None:
    """The setup lock, polled: a session blocked inside pg_advisory_lock holds a snapshot, and
    setup()'s CREATE INDEX CONCURRENTLY in the process that has the lock waits for every such
    snapshot to end, which would never happen."""
    deadline = time.monotonic() + timeout_s
    while not lock.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (_SETUP_LOCK,)).fetchone()[0]:
        if time.monotonic() > deadline:
            raise ConfigError(
                f"another process has been creating the thread tables for {timeout_s:.0f} s",
                "look for a stuck llmtutor process on the same LLMTUTOR_DATABASE_URL, stop it, and retry",
            )
        time.sleep(0.1)


def close_checkpointer(checkpointer: Any) -> None:
    """Close the Postgres pool `make_checkpointer` opened (its threads and connections); the
    SQLite connection stays open, as it always has."""
    pool = getattr(checkpointer, "conn", None)
    if type(pool).__module__.startswith("psycopg_pool"):
        pool.close()
