"""Which tutor thread an OpenAI-style conversation continues.

Chat-completions clients (the `openai` SDK, Open WebUI, LiteLLM) keep no id: they resend the
whole history with every request. The tutor keeps history in its own thread, so each answered
turn stores the key of the conversation *as the client will resend it* (the learner, the persona,
every user and assistant message, whitespace-normalised) against its thread. The next request's
history before its last user message has that key, and finds the thread again. A conversation
the tutor has never seen (edited, or from before a restart of another workspace) starts a thread.

SQLite in the workspace, or the `conversations` schema of the Postgres database of
LLMTUTOR_DATABASE_URL: the mapping survives restarts and is shared by server processes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from llmtutor.database import Connection, Database, connect

DB_FILE = "conversations.sqlite"
MIGRATIONS = (
    (
        1,
        "OpenAI-style conversation keys and the tutor thread each continues",
        """
CREATE TABLE conversation_keys (key TEXT PRIMARY KEY, learner_id TEXT NOT NULL, thread_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
""",
    ),
)


def conversation_key(learner_id: str, persona: str, turns: Iterable[tuple[str, str]]) -> str:
    """A digest of who talks to which persona and what was said, in order."""
    normalised = [[role, " ".join(text.split())] for role, text in turns]
    blob = json.dumps([learner_id, persona, normalised], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@contextmanager
def _connect(workspace: Path | Database) -> Iterator[Connection]:
    """`workspace`: the folder (conversations.sqlite in it), or the workspace's Database."""
    location = workspace.location(DB_FILE) if isinstance(workspace, Database) else Path(workspace) / DB_FILE
    with connect(location, MIGRATIONS, schema="conversations", name=str(location), wal=True) as con:
        yield con


def find_thread(workspace: Path | Database, key: str, learner_id: str) -> str | None:
    with _connect(workspace) as con:
        row = con.execute(
            "SELECT thread_id FROM conversation_keys WHERE key = ? AND learner_id = ?", (key, learner_id)
        ).fetchone()
    return row[0] if row else None


def remember(workspace: Path | Database, key: str, learner_id: str, thread_id: str) -> None:
    with _connect(workspace) as con:
        con.execute(
            "INSERT INTO conversation_keys (key, learner_id, thread_id) VALUES (?, ?, ?) ON CONFLICT (key) "
            "DO UPDATE SET learner_id = excluded.learner_id, thread_id = excluded.thread_id, "
            "created_at = CURRENT_TIMESTAMP",
            (key, learner_id, thread_id),
        )
