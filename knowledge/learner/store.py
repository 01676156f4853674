"""What the tutor believes the learner knows, in the course database (one SQLite file per
workspace, tables from migration 2 of `knowledge.catalog.course_db`):

- `learner_events`: every graded piece of evidence (a quiz answer, a check question, a Socratic
  outcome, a lab, a review, "I already know this"), with p(known) before and after: the
  evidence behind each estimate, shown to the learner.
- `concept_mastery`: the current p(known) per learner and concept (Bayesian Knowledge Tracing,
  `tracing.py`); a module's mastery is the mean over its concepts, unseen ones at the prior.
- `review_cards` / `review_log`: FSRS cards (PyPI `fsrs`), one per quiz item or concept, due
  dates and every review with its interval.

Every row has a `learner_id` ("local" for the single learner of a workspace without users).
`db_path` is the course database file, or the workspace's `Database`: with a Postgres URL these
tables live there (knowledge/catalog/learner_db.py), shared by several server processes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llmtutor.database import Database
from llmtutor.knowledge.catalog.learner import LOCAL_LEARNER
from llmtutor.knowledge.catalog.learner_db import open_learner_tables, writer_lock
from llmtutor.knowledge.learner import tracing


class ConceptUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    concept_id: str
    p_before: float
    p_after: float


class ConceptState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    concept_id: str
    p_known: float
    events: int
    correct: int
    source: str  # "traced" (from graded events), "self_report", "prior"


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid")
    card_key: str
    concept_id: str | None
    question_id: str | None
    due: datetime
    reviews: int
    lapses: int


# Insert or replace a learner's estimate of a concept (both dialects accept this upsert).
_SET_MASTERY = (
    "INSERT INTO concept_mastery (learner_id, concept_id, p_known, events, correct, source, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (learner_id, concept_id) DO UPDATE SET p_known = excluded.p_known, "
    "events = excluded.events, correct = excluded.correct, source = excluded.source, "
    "updated_at = excluded.updated_at"
)


def _text(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _now(now: datetime | None) -> datetime:
    return now.astimezone(UTC) if now else datetime.now(UTC)


# ----- knowledge tracing ------------------------------------------------------------------
def record_evidence(
    db_path: Path | Database,
    concept_ids: Iterable[str],
    score: float,
    kind: str,
    *,
    learner_id: str = LOCAL_LEARNER,
    module_id: str | None = None,
    detail: str = "",
    now: datetime | None = None,
) -> list[ConceptUpdate]:
    """One graded event on the concepts it tests: BKT update of each, logged with its evidence."""
    params, at = tracing.params_for(kind), _text(_now(now))
    updates = []
    with open_learner_tables(db_path) as con, con.transaction(lock=writer_lock(learner_id)):
        for concept_id in dict.fromkeys(concept_ids):
            row = con.execute(
                "SELECT p_known, events, correct FROM concept_mastery WHERE learner_id = ? AND concept_id = ?",
                (learner_id, concept_id),
            ).fetchone()
            before, events, correct = row if row else (params.prior, 0, 0)
            after = tracing.update(before, score, params)
            con.execute(
                _SET_MASTERY,
                (learner_id, concept_id, round(after, 6), events + 1, correct + (score >= 0.5), "traced", at),
            )
            con.execute(
                "INSERT INTO learner_events (learner_id, at, kind, concept_id, module_id, score, p_before, "
                "p_after, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (learner_id, at, kind, concept_id, module_id, score, before, after, detail[:500]),
            )
            updates.append(ConceptUpdate(concept_id=concept_id, p_before=before, p_after=after))
    return updates


def set_known(
    db_path: Path | Database,
    concept_ids: Iterable[str],
    known: bool,
    *,
    learner_id: str = LOCAL_LEARNER,
    now: datetime | None = None,
) -> int:
    """The learner corrects the tutor: "I already know Python" (known) or "reset my progress on
    RAG" (back to the prior, events kept in the log as a reset). Returns the concepts changed."""
    at, value = _text(_now(now)), tracing.KNOWN if known else tracing.DEFAULT.prior
    kind, source = ("self_report", "self_report") if known else ("reset", "prior")
    ids = list(dict.fromkeys(concept_ids))
    with open_learner_tables(db_path) as con, con.transaction(lock=writer_lock(learner_id)):
        for concept_id in ids:
            row = con.execute(
                "SELECT p_known FROM concept_mastery WHERE learner_id = ? AND concept_id = ?",
                (learner_id, concept_id),
            ).fetchone()
            con.execute(_SET_MASTERY, (learner_id, concept_id, value, 0, 0, source, at))
            con.execute(
                "INSERT INTO learner_events (learner_id, at, kind, concept_id, p_before, p_after) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (learner_id, at, kind, concept_id, row[0] if row else None, value),
            )
    return len(ids)


def concept_states(db_path: Path | Database, learner_id: str = LOCAL_LEARNER) -> dict[str, ConceptState]:
    with open_learner_tables(db_path) as con:
        rows = con.execute(
            "SELECT concept_id, p_known, events, correct, source FROM concept_mastery WHERE learner_id = ?",
            (learner_id,),
        ).fetchall()
    return {
        r[0]: ConceptState(concept_id=r[0], p_known=r[1], events=r[2], correct=r[3], source=r[4])
        for r in rows
    }


def evidence(
    db_path: Path | Database, concept_id: str, learner_id: str = LOCAL_LEARNER, limit: int = 5
) -> list[dict]:
    """The latest events behind a concept's estimate, newest first."""
    with open_learner_tables(db_path) as con:
        rows = con.execute(
            "SELECT at, kind, score, p_before, p_after, detail FROM learner_events "
            "WHERE learner_id = ? AND concept_id = ? ORDER BY id DESC LIMIT ?",
            (learner_id, concept_id, limit),
        ).fetchall()
    keys = ("at", "kind", "score", "p_before", "p_after", "detail")
    return [dict(zip(keys, row, strict=True)) for row in rows]


# ----- spaced review (FSRS) ---------------------------------------------------------------
def _scheduler():
    from fsrs import Scheduler

    # No fuzzing: the same reviews give the same dates (tests, and a plan the learner can trust).
    return Scheduler(enable_fuzzing=False)


def ensure_card(
    db_path: Path | Database,
    card_key: str,
    *,
    concept_id: str | None = None,
    question_id: str | None = None,
    learner_id: str = LOCAL_LEARNER,
    now: datetime | None = None,
) -> bool:
    """A new card, due now, unless the learner has it already. Returns whether it was added."""
    from fsrs import Card as FsrsCard

    card = FsrsCard(due=_now(now))
    with open_learner_tables(db_path) as con:
        cur = con.execute(
            "INSERT INTO review_cards (learner_id, card_key, concept_id, question_id, due, card) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (learner_id, card_key, concept_id, question_id, _text(card.due), card.to_json()),
        )
        return cur.rowcount == 1


def review(
    db_path: Path | Database,
    card_key: str,
    rating: int,
    *,
    learner_id: str = LOCAL_LEARNER,
    now: datetime | None = None,
) -> float:
    """Grade a card 1 (again) .. 4 (easy); returns the days until it is due again."""
    from fsrs import Card as FsrsCard
    from fsrs import Rating

    from llmtutor.errors import ConfigError

    if rating not in (1, 2, 3, 4):
        raise ConfigError(f"rating must be 1-4, got {rating}", "use 1 again, 2 hard, 3 good, 4 easy")
    at = _now(now)
    with open_learner_tables(db_path) as con, con.transaction(lock=writer_lock(learner_id)):
        row = con.execute(
            "SELECT card FROM review_cards WHERE learner_id = ? AND card_key = ?", (learner_id, card_key)
        ).fetchone()
        if row is None:
            raise ConfigError(f"no review card {card_key!r}", "answer a quiz question first to get cards")
        card, _ = _scheduler().review_card(FsrsCard.from_json(row[0]), Rating(rating), at)
        days = (card.due - at).total_seconds() / 86400
        con.execute(
            "UPDATE review_cards SET due = ?, card = ?, reviews = reviews + 1, lapses = lapses + ? "
            "WHERE learner_id = ? AND card_key = ?",
            (_text(card.due), card.to_json(), int(rating == 1), learner_id, card_key),
        )
        con.execute(
            "INSERT INTO review_log (learner_id, card_key, at, rating, interval_days) VALUES (?, ?, ?, ?, ?)",
            (learner_id, card_key, _text(at), rating, days),
        )
    return days


def due_cards(
    db_path: Path | Database, *, learner_id: str = LOCAL_LEARNER, now: datetime | None = None, limit: int = 20
) -> list[Card]:
    with open_learner_tables(db_path) as con:
        rows = con.execute(
            "SELECT card_key, concept_id, question_id, due, reviews, lapses FROM review_cards "
            "WHERE learner_id = ? AND due <= ? ORDER BY due LIMIT ?",
            (learner_id, _text(_now(now)), limit),
        ).fetchall()
    return [
        Card(card_key=r[0], concept_id=r[1], question_id=r[2], due=_when(r[3]), reviews=r[4], lapses=r[5])
        for r in rows
    ]


def due_forecast(
    db_path: Path | Database, *, learner_id: str = LOCAL_LEARNER, now: datetime | None = None, days: int = 14
) -> list[int]:
    """Cards due on each of the next `days` days (day 0 includes everything overdue)."""
    start = _now(now)
    with open_learner_tables(db_path) as con:
        dues = [
            _when(r[0])
            for r in con.execute("SELECT due FROM review_cards WHERE learner_id = ?", (learner_id,))
        ]
    counts = [0] * days
    for due in dues:
        offset = max(0, int((due - start) / timedelta(days=1)))  # whole days from now; overdue: 0
        if offset < days:
            counts[offset] += 1
    return counts


def card_state(db_path: Path | Database, card_key: str, learner_id: str = LOCAL_LEARNER) -> dict:
    """The FSRS card as stored (stability, difficulty, due), for tests and the progress view."""
    with open_learner_tables(db_path) as con:
        row = con.execute(
            "SELECT card FROM review_cards WHERE learner_id = ? AND card_key = ?", (learner_id, card_key)
        ).fetchone()
    return json.loads(row[0]) if row else {}


def wrong_counts(db_path: Path | Database, learner_id: str = LOCAL_LEARNER) -> dict[str, int]:
    """Wrong answers (score below one half) per concept: the learner's recurring mistakes."""
    with open_learner_tables(db_path) as con:
        rows = con.execute(
            "SELECT concept_id, COUNT(*) FROM learner_events WHERE learner_id = ? AND score < 0.5 "
            "GROUP BY concept_id",
            (learner_id,),
        ).fetchall()
    return dict(rows)


def next_due_in_days(
    db_path: Path | Database, learner_id: str = LOCAL_LEARNER, now: datetime | None = None
) -> float | None:
    """Days until the learner's next card is due (0 when one is due now); None without cards."""
    with open_learner_tables(db_path) as con:
        row = con.execute("SELECT MIN(due) FROM review_cards WHERE learner_id = ?", (learner_id,)).fetchone()
    if not row or row[0] is None:
        return None
    return max(0.0, (_when(row[0]) - _now(now)) / timedelta(days=1))
