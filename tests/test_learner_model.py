"""The learner model: BKT updates against hand computations, the learner tables in a real SQLite
course database (migration from a version-1 workspace included), and FSRS review cards."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmtutor.errors import ConfigError
from llmtutor.knowledge.catalog.course_db import MIGRATIONS, ensure_course_db
from llmtutor.knowledge.catalog.learner import record_quiz_attempt
from llmtutor.knowledge.learner import store, tracing

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_bkt_update_matches_the_formula_by_hand():
    params = tracing.BKTParams(prior=0.2, learn=0.15, slip=0.1, guess=0.25)
    # right: 0.2*0.9 / (0.2*0.9 + 0.8*0.25) = 0.18/0.38; then + (1 - that) * 0.15
    right = 0.18 / 0.38
    assert tracing.update(0.2, 1.0, params) == pytest.approx(right + (1 - right) * 0.15)
    # wrong: 0.2*0.1 / (0.2*0.1 + 0.8*0.75) = 0.02/0.62
    wrong = 0.02 / 0.62
    assert tracing.update(0.2, 0.0, params) == pytest.approx(wrong + (1 - wrong) * 0.15)
    half = 0.5 * right + 0.5 * wrong
    assert tracing.update(0.2, 0.5, params) == pytest.approx(half + (1 - half) * 0.15)
    with pytest.raises(ValueError):
        tracing.update(0.2, 1.5, params)


def test_bkt_rises_with_right_answers_and_a_guessable_question_counts_less():
    p_mc = p_free = 0.2
    for _ in range(4):
        p_mc = tracing.update(p_mc, 1.0, tracing.params_for("quiz_mc"))
        p_free = tracing.update(p_free, 1.0, tracing.params_for("socratic"))
    assert 0.9 < p_mc < p_free < 1.0
    assert tracing.update(0.9, 0.0) < 0.9  # a wrong answer lowers a high estimate


def _version_1_db(path: Path) -> None:
    """A workspace from before learner identities: schema version 1 with one quiz attempt."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for statement in filter(str.strip, MIGRATIONS[0][2].split(";")):
        con.execute(statement)
    con.execute("INSERT INTO schema_version VALUES (1, 'catalog and learner tables', '2026-01-01T00:00:00')")
    con.execute(
        "INSERT INTO quiz_attempts (taken_at, module_id, topic, question, answer, expected, correct, score) "
        "VALUES ('2026-01-02T00:00:00', NULL, 'rag', 'What is RAG?', 'retrieval', 'retrieval', 1, 1.0)"
    )
    con.execute("INSERT INTO module_mastery VALUES ('engineer.rag', 1, 1, 1.0, NULL, '2026-01-02T00:00:00')")
    con.close()


def test_an_old_workspace_upgrades_in_place_and_keeps_its_rows(tmp_path):
    db = tmp_path / "course.sqlite"
    _version_1_db(db)
    ensure_course_db(db)
    con = sqlite3.connect(db)
    assert con.execute("SELECT learner_id, question FROM quiz_attempts").fetchall() == [
        ("local", "What is RAG?")
    ]
    assert con.execute("SELECT learner_id, module_id, mastery FROM module_mastery").fetchall() == [
        ("local", "engineer.rag", 1.0)
    ]
    assert max(v for (v,) in con.execute("SELECT version FROM schema_version")) == MIGRATIONS[-1][0]


def test_learners_are_kept_apart(tmp_path):
    db = tmp_path / "course.sqlite"
    for learner, correct in (("ana", True), ("bo", False)):
        record_quiz_attempt(
            db, question="q", answer="a", correct=correct, module_id="engineer.rag", learner_id=learner
        )
    con = sqlite3.connect(db)
    rows = dict(con.execute("SELECT learner_id, mastery FROM module_mastery").fetchall())
    assert rows == {"ana": 1.0, "bo": 0.0}
    store.record_evidence(db, ["rag_pipeline"], 1.0, "quiz_mc", learner_id="ana", now=NOW)
    assert "rag_pipeline" in store.concept_states(db, "ana")
    assert store.concept_states(db, "bo") == {}


def test_evidence_is_logged_and_the_learner_can_correct_it(tmp_path):
    db = tmp_path / "course.sqlite"
    first = store.record_evidence(db, ["lora", "lora"], 1.0, "quiz_mc", detail="Q: LoRA trains…", now=NOW)
    assert len(first) == 1 and first[0].p_before == tracing.DEFAULT.prior and first[0].p_after > 0.5
    store.record_evidence(db, ["lora"], 0.0, "quiz_mc", now=NOW + timedelta(minutes=1))
    state = store.concept_states(db)["lora"]
    assert state.events == 2 and state.correct == 1 and state.source == "traced"
    log = store.evidence(db, "lora")
    assert [e["score"] for e in log] == [0.0, 1.0] and log[1]["detail"] == "Q: LoRA trains…"
    assert log[0]["p_before"] == pytest.approx(first[0].p_after)
    assert store.set_known(db, ["python_basics", "numpy"], known=True, now=NOW) == 2
    assert store.concept_states(db)["numpy"].p_known == tracing.KNOWN
    store.set_known(db, ["lora"], known=False, now=NOW)
    assert store.concept_states(db)["lora"].p_known == tracing.DEFAULT.prior
    assert store.evidence(db, "lora")[0]["kind"] == "reset"


def test_fsrs_intervals_grow_when_remembered_and_shrink_on_a_lapse(tmp_path):
    db = tmp_path / "course.sqlite"
    assert store.ensure_card(db, "q:lora-1", concept_id="lora", now=NOW)
    assert not store.ensure_card(db, "q:lora-1", concept_id="lora", now=NOW)  # one card per item
    assert [c.card_key for c in store.due_cards(db, now=NOW)] == ["q:lora-1"]
    when, intervals = NOW, []
    for _ in range(4):
        intervals.append(store.review(db, "q:lora-1", 3, now=when))
        when += timedelta(days=intervals[-1])
    assert all(b > a for a, b in zip(intervals[1:], intervals[2:], strict=False)), intervals
    lapse = store.review(db, "q:lora-1", 1, now=when)
    assert lapse < intervals[-1]
    assert store.due_cards(db, now=NOW + timedelta(days=1)) == []  # reviewed: not due tomorrow
    forecast = store.due_forecast(db, now=when, days=14)
    assert sum(forecast) == 1 and forecast[0] == 1  # due again within the day after the lapse
    with pytest.raises(ConfigError):
        store.review(db, "q:lora-1", 5, now=when)
    with pytest.raises(ConfigError):
        store.review(db, "no-such-card", 3, now=when)


def test_a_graded_quiz_answer_updates_the_concepts_it_tests_and_its_review_card(tmp_path):
    from llmtutor.knowledge.learner.evidence import concepts_tested
    from llmtutor.knowledge.learner.graph import load_concept_graph
    from llmtutor.knowledge.quiz.flow import answer_quiz, start_quiz
    from llmtutor.knowledge.quiz.session import load as load_session

    started = start_quiz(tmp_path, topic="quantization", n=2, kind="mc", language="en", seed=3)
    session = load_session(tmp_path, started.session_id)
    question = session.question
    tested = concepts_tested(question)
    graph = load_concept_graph()
    assert tested and all(graph.concept(c).module == question.module_id for c in tested)
    wrong = "ABCD"[(question.answer_index + 1) % 4]
    answer_quiz(tmp_path, started.session_id, wrong)
    db = tmp_path / "course.sqlite"
    states = store.concept_states(db)
    assert set(tested) <= set(states) and all(states[c].p_known < tracing.DEFAULT.prior for c in tested)
    assert store.evidence(db, tested[0])[0]["detail"] == question.prompt
    card = store.card_state(db, f"quiz:{question.id}")
    assert card and store.due_cards(db, now=datetime.now(UTC) + timedelta(hours=1))  # a lapse: due again soon


def test_no_quiz_question_shows_the_answer_to_another():
    from llmtutor.knowledge.catalog import _norm
    from llmtutor.knowledge.quiz.bank import default_bank

    bank = default_bank()
    checked = 0
    for topic in ("LoRA", "quantization", "RAG", "scientist", "engineer", "量化", "微调"):
        for seed in range(4):
            for language in ("en", "zh"):
                quiz = bank.select(bank.resolve(topic), 8, "mixed", language, seed=seed)
                for i, earlier in enumerate(quiz):
                    for later in quiz[i + 1 :]:  # asked one at a time: only earlier prompts are seen first
                        answer = _norm(later.answer)
                        assert len(answer) < 3 or answer not in _norm(earlier.prompt), (
                            earlier.prompt,
                            answer,
                        )
                        checked += 1
    assert checked > 500
