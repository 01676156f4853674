"""Quiz sessions on disk: `<workspace>/quizzes/<id>.json`, one file per quiz, written atomically.

The quiz tool is stateless per call; the session file is the state (questions with their
answers and sources, the learner's answers and grades), so a quiz survives a restart and two
processes see the same quiz. At most one session is open ("asking") at a time: starting a new
quiz closes the others, so "the open quiz" is unambiguous for the chat.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from llmtutor.errors import ToolInputError
from llmtutor.knowledge.quiz.grading import Grade, is_skip, parse_choice
from llmtutor.knowledge.quiz.questions import Question
from llmtutor.paths import learner_space

Status = Literal["asking", "finished", "stopped"]
SESSION_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_OPEN_AGE = timedelta(hours=24)  # an older unfinished quiz no longer captures the learner's messages
_STOP = re.compile(
    r"^\s*(?:/?stop|/?quit|/?exit|end(?: the)? quiz|stop(?: the)? quiz|quit(?: the)? quiz|"
    r"结束|退出|停止|结束测验|退出测验|不做了)\s*[.!。！]*\s*$",
    re.I,
)


class AnswerRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question_id: str
    answer: str
    grade: Grade
    judge_feedback: str = ""  # the optional LLM judge's comment on a short answer
    answered_at: str
    recorded: bool = False  # written to the learner tables (course_db)
    mastery: float | None = None  # the module's mastery after this answer


class QuizSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    topic: str  # as the learner asked
    topic_label: str
    module_ids: list[str]
    language: Literal["en", "zh"]
    kind: Literal["mc", "short", "mixed"]
    generator: Literal["catalog", "llm"]
    status: Status = "asking"
    created_at: str
    updated_at: str
    questions: list[Question]
    current: int = 0  # index of the question being asked
    answers: list[AnswerRecord] = []
    llm_tried: list[str] = []  # question ids the LLM writer already had a go at
    learner_id: str = "local"  # whose quiz: answers are recorded for them

    @property
    def question(self) -> Question | None:
        return (
            self.questions[self.current]
            if self.status == "asking" and self.current < len(self.questions)
            else None
        )


def now_text() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def new_session_id() -> str:
    return uuid.uuid4().hex[:12]


def quizzes_dir(workspace: Path) -> Path:
    return Path(workspace) / "quizzes"


def session_path(workspace: Path, session_id: str) -> Path:
    if not SESSION_ID.match(session_id or ""):  # also keeps ids from naming files elsewhere
        raise ToolInputError(
            f"invalid quiz session id {session_id!r}", "use the 12-character id the quiz printed"
        )
    return quizzes_dir(workspace) / f"{session_id}.json"


def save(workspace: Path, session: QuizSession) -> None:
    """Write the session atomically: a crash leaves the old file or the new one, never half of one."""
    session.updated_at = now_text()
    path = session_path(workspace, session.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{session.id}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(session.model_dump_json(indent=1))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(workspace: Path, session_id: str) -> QuizSession:
    path = session_path(workspace, session_id)
    try:
        return QuizSession.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToolInputError(
            f"no quiz session {session_id!r} in {path.parent}", "start a quiz with action='start' and a topic"
        ) from None
    except (ValidationError, ValueError) as exc:
        raise ToolInputError(
            f"quiz session file {path} is damaged: {exc}", "start a new quiz; delete the file to clean up"
        ) from None


def _headers(workspace: Path) -> list[tuple[str, dict]]:
    """(id, raw JSON) of the saved sessions, newest first; unreadable files are skipped."""
    found = []
    for path in quizzes_dir(workspace).glob("*.json"):
        try:
            found.append((path.stem, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda item: str(item[1].get("updated_at", "")), reverse=True)


def active_session(workspace: Path, max_age: timedelta | None = MAX_OPEN_AGE) -> str | None:
    """Id of the open quiz (the newest one still asking, updated within `max_age`), else None."""
    found = open_sessions(workspace, max_age)
    return found[0] if found else None


def asked_before(workspace: Path, limit: int = 50) -> frozenset[str]:
    """Question ids of the learner's recent quizzes: new quizzes prefer questions not yet seen."""
    return frozenset(
        q.get("id", "") for _, data in _headers(workspace)[:limit] for q in data.get("questions", [])
    )


def is_stop(text: str) -> bool:
    return _STOP.match(text or "") is not None


def open_sessions(workspace: Path, max_age: timedelta | None = MAX_OPEN_AGE) -> list[str]:
    """Ids of the quizzes still asking, updated within `max_age`, newest first."""
    cutoff = (datetime.now(UTC).replace(tzinfo=None) - max_age).isoformat() if max_age else ""
    return [
        session_id
        for session_id, data in _headers(workspace)
        if data.get("status") == "asking"
        and str(data.get("updated_at", "")) >= cutoff
        and SESSION_ID.match(session_id)
    ]


def continuation(
    workspace: Path, text: str, shown: str | None = None, learner_id: str = "local"
) -> dict | None:
    """Arguments for the quiz tool when the learner's message answers an open quiz, else None.

    `shown` is the conversation's last reply: when given, only a quiz whose id it shows can take
    the message (several tabs or threads may each have a quiz open); without it, the newest.
    A multiple-choice question takes a letter, an option's text, "skip" or "stop"; anything
    else (a new question to the tutor) is left to the router and the quiz stays open. A short
    -answer question takes any message except a /command.
    """
    if not text.strip() or text.lstrip().startswith("/") and not is_stop(text):
        return None
    space = learner_space(workspace, learner_id)
    candidates = open_sessions(space)
    if shown is not None:
        candidates = [session_id for session_id in candidates if session_id in shown]
    if not candidates:
        return None
    session_id = candidates[0]
    question = load(space, session_id).question
    if question is None:
        return None
    if question.kind == "mc" and not (
        is_stop(text) or is_skip(text) or parse_choice(text, question.options) is not None
    ):
        return None
    return {"action": "stop" if is_stop(text) else "answer", "session_id": session_id, "answer": text}
