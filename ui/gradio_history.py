"""The learner's conversations in the web app: which threads are theirs, with a title (their first
message, or a name they gave), newest first; kept across reloads and restarts.

The messages themselves are the tutor's checkpointed thread (threads.sqlite or Postgres); this
table only lists them. SQLite in the workspace, or the `webchats` schema of the Postgres database
of LLMTUTOR_DATABASE_URL (llmtutor/database.py), like the other shared tables."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from llmtutor.database import Connection, Database, connect
from llmtutor.errors import LLMTutorError
from llmtutor.ui.gradio_session import edge_text

if TYPE_CHECKING:
    from llmtutor.ui.gradio_session import Session

DB_FILE = "webchats.sqlite"
TITLE_CHARS = 60
MIGRATIONS = (
    (
        1,
        "the web app's conversations per learner",
        """
CREATE TABLE chats (learner_id TEXT NOT NULL, thread_id TEXT NOT NULL, title TEXT NOT NULL,
    persona TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (learner_id, thread_id));
CREATE INDEX chats_by_learner ON chats (learner_id, updated_at);
""",
    ),
)


class Chat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thread_id: str
    title: str
    persona: str = ""
    updated_at: str = ""


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def title_of(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= TITLE_CHARS else one_line[: TITLE_CHARS - 1] + "…"


@contextmanager
def _connect(where: Path | Database) -> Iterator[Connection]:
    location = where.location(DB_FILE) if isinstance(where, Database) else Path(where) / DB_FILE
    with connect(location, MIGRATIONS, schema="webchats", name=str(location), wal=True) as con:
        yield con


def touch(
    where: Path | Database, learner_id: str, thread_id: str, first_message: str, persona: str = ""
) -> None:
    """The conversation was used now: listed (titled by its first message) or moved to the top."""
    now = _now()
    with _connect(where) as con:
        con.execute(
            "INSERT INTO chats (learner_id, thread_id, title, persona, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (learner_id, thread_id) DO UPDATE SET "
            "updated_at = excluded.updated_at, persona = excluded.persona",
            (learner_id, thread_id, title_of(first_message) or "conversation", persona, now, now),
        )


def list_chats(where: Path | Database, learner_id: str, limit: int = 50) -> list[Chat]:
    with _connect(where) as con:
        rows = con.execute(
            "SELECT thread_id, title, persona, updated_at FROM chats WHERE learner_id = ? "
            "ORDER BY updated_at DESC, created_at DESC LIMIT ?",
            (learner_id, limit),
        ).fetchall()
    return [Chat(thread_id=r[0], title=r[1], persona=r[2], updated_at=r[3]) for r in rows]


def find_chat(where: Path | Database, learner_id: str, thread_id: str) -> Chat | None:
    return next((c for c in list_chats(where, learner_id, 500) if c.thread_id == thread_id), None)


def rename(where: Path | Database, learner_id: str, thread_id: str, title: str) -> bool:
    with _connect(where) as con:
        found = con.execute(
            "UPDATE chats SET title = ? WHERE learner_id = ? AND thread_id = ? RETURNING thread_id",
            (title_of(title) or "conversation", learner_id, thread_id),
        ).fetchone()
    return found is not None


def delete(where: Path | Database, learner_id: str, thread_id: str) -> bool:
    with _connect(where) as con:
        found = con.execute(
            "DELETE FROM chats WHERE learner_id = ? AND thread_id = ? RETURNING thread_id",
            (learner_id, thread_id),
        ).fetchone()
    return found is not None


def forget_thread(checkpointer: Any, stored_thread: str) -> None:
    """Drop a deleted conversation's checkpoints too, where the checkpointer can."""
    remove = getattr(checkpointer, "delete_thread", None)
    if callable(remove):
        with contextlib.suppress(Exception):  # the listing is gone already; this is tidying
            remove(stored_thread)


class HistoryHandlers:
    """The sidebar's events: restore the browser's last conversation on (re)load, open, list,
    rename and delete conversations. A conversation reopens with its pending approval, if any."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.db = session.tutor.settings.database
        for name in ("restore", "open_chat", "listing", "rename_chat", "delete_chat"):
            setattr(self, name, session.with_request(getattr(self, name)))

    def conversation(
        self, request: Any, thread_id: str
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        from llmtutor.ui.gradio_chat import approval_message, messages_from_history

        tutor = self.session.tutor
        stored = self.session.stored(request, thread_id)
        history = messages_from_history(tutor.history(stored))
        pending = tutor.pending_request(stored)  # resumable mid-approval
        if pending:
            history.append(approval_message(pending))
        return history, pending

    def _choices(self, listed: list[Chat]) -> list[tuple[str, str]]:
        return [(c.title, c.thread_id) for c in listed]

    def restore(self, last: str | None, request=None):
        """(chat, pending, thread, approval row, conversations, model picker, browser's last thread)."""
        import gradio as gr

        from llmtutor.agents.tutor import new_thread_id

        hidden = gr.update(visible=False)
        try:
            user = self.session.learner(request)
            listed = list_chats(self.db, user.id)
            options = self.session.models.options(user.id)
        except LLMTutorError as exc:
            error = [{"role": "assistant", "content": edge_text(exc)}]
            return error, None, new_thread_id(), hidden, gr.update(), gr.update(), None
        thread_id = last if last and any(c.thread_id == last for c in listed) else None
        radio = gr.update(choices=self._choices(listed), value=thread_id)
        models = gr.update(choices=options, value=options[0][1])
        if thread_id is None:
            return [], None, new_thread_id(), hidden, radio, models, None
        history, pending = self.conversation(request, thread_id)
        return history, pending, thread_id, gr.update(visible=bool(pending)), radio, models, thread_id

    def open_chat(self, thread_id: str | None, request=None):
        """(chat, pending, thread, approval row, browser's last thread)."""
        import gradio as gr

        if not thread_id:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        try:
            history, pending = self.conversation(request, thread_id)
        except LLMTutorError as exc:
            return (
                [{"role": "assistant", "content": edge_text(exc)}],
                None,
                thread_id,
                gr.update(visible=False),
                None,
            )
        return history, pending, thread_id, gr.update(visible=bool(pending)), thread_id

    def listing(self, thread_id: str, request=None):
        """(conversations, browser's last thread): the list, the current one selected if listed."""
        import gradio as gr

        try:
            listed = list_chats(self.db, self.session.learner(request).id)
        except LLMTutorError:
            return gr.update(), None
        current = thread_id if any(c.thread_id == thread_id for c in listed) else None
        return gr.update(choices=self._choices(listed), value=current), current

    def rename_chat(self, thread_id: str, title: str, request=None) -> str:
        with contextlib.suppress(LLMTutorError):
            if title.strip():
                rename(self.db, self.session.learner(request).id, thread_id, title)
        return ""

    def delete_chat(self, thread_id: str, request=None):
        """(chat, pending, thread, approval row): a new conversation after the deleted one."""
        import gradio as gr

        from llmtutor.agents.tutor import new_thread_id

        with contextlib.suppress(LLMTutorError):
            if delete(self.db, self.session.learner(request).id, thread_id):
                forget_thread(self.session.tutor.graph.checkpointer, self.session.stored(request, thread_id))
        return [], None, new_thread_id(), gr.update(visible=False)
