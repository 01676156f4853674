"""The learner's tables of the course database: the only code that writes them.

`record_quiz_attempt` stores one answered quiz question in `quiz_attempts` and refreshes that
module's row of `module_mastery`; `update_mastery` recomputes (or sets) a module's mastery.
Mastery is a recency-weighted mean of the scores (`MASTERY_DECAY`), so what the learner knows
now counts more than their first tries. Both build the catalog tables first when the database
is new (`course_db.ensure_course_db`), check `module_id` against them, and write in one
transaction; catalog rebuilds never touch these rows, and text-to-SQL only reads them. The rows
are in the course database, or in Postgres when given a `Database` with a URL (learner_db.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llmtutor.database import Connection, Database
from llmtutor.errors import ConfigError
from llmtutor.knowledge.catalog.course_db import utc_now_text
from llmtutor.knowledge.catalog.learner_db import check_module, open_learner_tables, writer_lock

MASTERY_DECAY = 0.7  # weight of an answer relative to the next, more recent one
LOCAL_LEARNER = "local"  # the one learner of a workspace without users


class MasteryRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    module_id: str
    attempts: int
    correct: int
    mastery: float
    last_attempt_at: str | None


def record_quiz_attempt(
    db_path: Path | Database,
    *,
    question: str,
    answer: str,
    correct: bool,
    module_id: str | None = None,
    topic: str | None = None,
    expected: str | None = None,
    score: float | None = None,
    taken_at: datetime | None = None,
    learner_id: str = LOCAL_LEARNER,
) -> int:
    """Store one answered quiz question (and refresh that module's mastery); returns its id.

    `score` defaults to 1.0/0.0 from `correct`; `taken_at` to now (UTC). The catalog tables are
    built first if the database is new, so `module_id` can be checked against them.
    """
    if score is None:
        score = 1.0 if correct else 0.0
    if not 0.0 <= score <= 1.0:
        raise ConfigError(
            f"quiz score must be between 0 and 1, got {score}", "pass score=correct answers/total"
        )
    when = _utc_text(taken_at) if taken_at else utc_now_text()
    with open_learner_tables(db_path) as con:
        check_module(db_path, module_id)
        with con.transaction(lock=writer_lock(learner_id)):
            (attempt_id,) = con.execute(
                "INSERT INTO quiz_attempts (taken_at, module_id, topic, question, answer, expected, correct, "
                "score, learner_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    when,
                    module_id,
                    topic,
                    question,
                    answer,
                    expected,
                    int(bool(correct)),
                    float(score),
                    learner_id,
                ),
            ).fetchone()
            if module_id is not None:
                _refresh_mastery(con, module_id, None, learner_id)
    return int(attempt_id)


def update_mastery(
    db_path: Path | Database, module_id: str, mastery: float | None = None, learner_id: str = LOCAL_LEARNER
) -> MasteryRow:
    """Recompute a module's mastery from its quiz attempts, or set it (0-1) explicitly.

    Recomputed mastery is a recency-weighted mean of the scores (each older answer weighs
    `MASTERY_DECAY` times the next): what the learner knows now matters more than their
    first tries.
    """
    if mastery is not None and not 0.0 <= mastery <= 1.0:
        raise ConfigError(f"mastery must be between 0 and 1, got {mastery}", "pass a fraction such as 0.75")
    with open_learner_tables(db_path) as con:
        check_module(db_path, module_id)
        with con.transaction(lock=writer_lock(learner_id)):
            return _refresh_mastery(con, module_id, mastery, learner_id)


def _refresh_mastery(
    con: Connection, module_id: str, explicit: float | None, learner_id: str = LOCAL_LEARNER
) -> MasteryRow:
    scores = con.execute(
        "SELECT score, correct, taken_at FROM quiz_attempts WHERE module_id = ? AND learner_id = ? "
        "ORDER BY taken_at DESC, id DESC",
        (module_id, learner_id),
    ).fetchall()
    weights = [MASTERY_DECAY**i for i in range(len(scores))]
    value = (
        explicit
        if explicit is not None
        else (
            sum(w * s for w, (s, _, _) in zip(weights, scores, strict=True)) / sum(weights) if scores else 0.0
        )
    )
    row = MasteryRow(
        module_id=module_id,
        attempts=len(scores),
        correct=sum(c for _, c, _ in scores),
        mastery=round(value, 4),
        last_attempt_at=scores[0][2] if scores else None,
    )
    con.execute(
        "INSERT INTO module_mastery (learner_id, module_id, attempts, correct, mastery, last_attempt_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (learner_id, module_id) DO UPDATE SET "
        "attempts = excluded.attempts, correct = excluded.correct, mastery = excluded.mastery, "
        "last_attempt_at = excluded.last_attempt_at, updated_at = excluded.updated_at",
        (
            learner_id,
            row.module_id,
            row.attempts,
            row.correct,
            row.mastery,
            row.last_attempt_at,
            utc_now_text(),
        ),
    )
    return row


def _utc_text(when: datetime) -> str:
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat(timespec="seconds")
