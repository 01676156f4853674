"""The learner-model tools (learner_progress, next_step, review_cards, update_progress) on a real
course database, from chat (the real router, no model call: their results are the answer) and
from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmtutor.knowledge.catalog.course_db import open_writer
from llmtutor.knowledge.learner import store
from llmtutor.knowledge.learner.graph import load_concept_graph
from llmtutor.knowledge.learner.progress import MASTERED, next_step, p_known_all
from llmtutor.knowledge.quiz.flow import answer_quiz, start_quiz
from llmtutor.knowledge.quiz.session import load as load_session
from llmtutor.tools.registry import ToolContext, default_registry, render_markdown


@pytest.fixture()
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(workspace=tmp_path)


def run(name: str, args: dict, ctx: ToolContext):
    return default_registry().get(name).run(args, ctx)


def _answer(ctx: ToolContext, topic: str, right: bool) -> str:
    started = start_quiz(ctx.workspace, topic=topic, n=1, kind="mc", language="en", seed=7)
    question = load_session(ctx.workspace, started.session_id).question
    letter = "ABCD"[question.answer_index if right else (question.answer_index + 1) % 4]
    answer_quiz(ctx.workspace, started.session_id, letter)
    return question.id


def test_progress_starts_empty_then_shows_modules_weak_spots_and_a_chart(ctx):
    empty = run("learner_progress", {}, ctx)
    assert empty.progress.events == 0 and "No graded answers yet" in render_markdown(empty)
    for _ in range(2):
        _answer(ctx, "LoRA", right=False)
    report = run("learner_progress", {"language": "zh"}, ctx)
    text = render_markdown(report)
    assert "**你的学习进度**" in text and "监督式微调" in text and "薄弱环节" in text
    assert report.progress.mistakes and report.progress.mistakes[0].wrong >= 2  # a recurring mistake
    chart = Path(report.chart_path)
    assert chart.read_bytes().startswith(b"\x89PNG") and report.images() == [str(chart)]
    assert sum(report.progress.due_next_14_days) >= 1


def test_next_step_never_skips_a_prerequisite(ctx):
    db = ctx.workspace / "course.sqlite"
    graph = load_concept_graph()
    # A learner who knows the Fundamentals and nothing else, working toward QLoRA.
    fundamentals = [c for c in graph.concepts.values() if c.module.startswith("fundamentals.")]
    store.set_known(db, [c.id for c in fundamentals], known=True)
    for goal in ("", "QLoRA", "retrieval-augmented generation", "量化"):
        step = next_step(db, goal)
        assert step.kind == "learn" and not step.concept_id.startswith(("linear", "python"))
        known = p_known_all(graph, store.concept_states(db))
        assert all(known[p] >= MASTERED for p in graph.prerequisites(step.concept_id)), (goal, step)
        if goal:
            assert step.concept_id in step.missing and step.goal
    out = run("next_step", {"goal": "QLoRA"}, ctx)
    assert "**Next:" in render_markdown(out) and "For your goal" in render_markdown(out)


def test_due_reviews_come_first_and_a_review_reschedules_the_card(ctx):
    question_id = _answer(ctx, "quantization", right=False)  # a lapse: due again in minutes
    db = ctx.workspace / "course.sqlite"
    assert store.due_cards(db, now=datetime.now(UTC) + timedelta(hours=1))
    card = f"quiz:{question_id}"
    # make it due now (the relearning step is ten minutes)
    with open_writer(db) as con:
        con.execute("UPDATE review_cards SET due = '2000-01-01T00:00:00' WHERE card_key = ?", (card,))
    assert next_step(db).kind == "review"
    review = run("review_cards", {}, ctx)
    assert (
        review.quiz is not None
        and review.due == 1
        and "**Review: 1 card(s) due.**" in render_markdown(review)
    )
    question = load_session(ctx.workspace, review.quiz.session_id).question
    assert question.id == question_id  # the same question again
    before = store.card_state(db, card)
    answer_quiz(ctx.workspace, review.quiz.session_id, "ABCD"[question.answer_index])
    after = store.card_state(db, card)
    assert after["due"] > before["due"] and not store.due_cards(db)
    none_due = render_markdown(run("review_cards", {}, ctx))
    assert none_due.startswith("No reviews are due now. The next card is due in")


def test_the_learner_corrects_the_model(ctx):
    db = ctx.workspace / "course.sqlite"
    known = run("update_progress", {"topic": "I already know Python"}, ctx)
    assert known.concepts == ["python_basics"] and "marked as known" in render_markdown(known)
    assert store.concept_states(db)["python_basics"].p_known >= MASTERED
    _answer(ctx, "RAG", right=True)
    reset = run("update_progress", {"topic": "重置我在 RAG 上的进度", "action": "reset"}, ctx)
    assert "rag_pipeline" in reset.concepts and len(reset.concepts) > 1  # the whole module
    assert all(store.concept_states(db)[c].p_known < MASTERED for c in reset.concepts)
    with pytest.raises(Exception, match="no course concept"):
        run("update_progress", {"topic": "I already know how to bake bread"}, ctx)


@pytest.mark.parametrize(
    ("message", "tool", "marker"),
    [
        ("What have I learned so far?", "learner_progress", "No graded answers yet"),
        ("我下一步该学什么？", "next_step", "下一步"),
        ("Review my cards", "review_cards", "no review cards yet"),
        ("I already know Python", "update_progress", "marked as known"),
    ],
)
def test_learner_requests_from_chat(tmp_path, message, tool, marker):
    from fakes import FakeBackend

    from llmtutor import Tutor
    from llmtutor.settings import Settings

    tutor = Tutor(Settings(workspace=tmp_path), backend=FakeBackend([]))  # any model call would fail
    reply = tutor.ask(message, thread_id="t")
    assert [c["tool"] for c in reply.tool_calls] == [tool] and marker in reply.answer


def test_cli_progress_json_and_next(tmp_path):
    env = {**__import__("os").environ, "LLMTUTOR_WORKSPACE": str(tmp_path)}
    cli = [str(Path(sys.executable).parent / "llmtutor")]
    shown = subprocess.run([*cli, "progress", "--json"], env=env, capture_output=True, text=True, check=True)
    report = json.loads(shown.stdout)
    assert report["progress"]["events"] == 0 and len(report["progress"]["modules"]) == 19
    step = subprocess.run([*cli, "next", "--json"], env=env, capture_output=True, text=True, check=True)
    assert json.loads(step.stdout)["step"]["kind"] == "learn"


def test_a_study_plan_orders_prerequisites_fits_the_days_and_follows_progress(ctx):
    from datetime import date

    from llmtutor.knowledge.learner.plan import latest_plan, make_plan, refresh
    from llmtutor.tools.study_plan import extract_plan_args

    db = ctx.workspace / "course.sqlite"
    graph = load_concept_graph()
    store.set_known(db, [c.id for c in graph.concepts.values() if c.module.startswith("fundamentals.")], True)
    plan = make_plan(db, "Make me a two-week plan to learn RAG", 14, 45, today=date(2026, 12, 7))
    reads = [s.concept_id for s in plan.sessions if s.kind == "read"]
    assert "rag_pipeline" in reads and not any(c.startswith("linear") for c in reads)  # known ones skipped
    order = graph.order()
    assert reads == sorted(reads, key=order.index)  # prerequisites first
    for day in plan.schedule:
        assert sum(s.minutes for s in day.sessions) <= 45 or len(day.sessions) == 1
    assert len(plan.schedule) <= 14
    quiz_after = [i for i, s in enumerate(plan.sessions) if s.kind == "quiz"]
    assert quiz_after and all(plan.sessions[i - 1].kind == "read" for i in quiz_after)
    # through the tool: stored, shown again, and done sessions ticked off after progress
    out = run("study_plan", extract_plan_args("帮我制定两周学会 RAG 的学习计划"), ctx)
    assert out.plan.id and out.plan.days == 14 and "**学习计划" in render_markdown(out)
    store.set_known(db, reads[:2], True)
    shown = refresh(db, latest_plan(db), today=date(2026, 12, 8))
    assert sum(s.done for s in shown.sessions) >= 2 and shown.schedule[0].day == date(2026, 12, 8)
    assert all(s.concept_id not in reads[:2] for d in shown.schedule for s in d.sessions)
    tight = make_plan(db, "RAG", 1, 20, today=date(2026, 12, 7))
    assert tight.unscheduled > 0 and tight.extra_days > 0  # says what does not fit
    with pytest.raises(Exception, match="no course concept"):
        run("study_plan", {"goal": "learn to bake sourdough bread in two weeks"}, ctx)


def test_quiz_me_without_a_topic_targets_the_weakest_concept(ctx):
    from llmtutor.tools.quiz import TOOL as QUIZ

    first = run("quiz", {"action": "start", "n": 1}, ctx)  # nothing known yet: the whole course
    assert first.session_id
    run("quiz", {"action": "stop", "session_id": first.session_id}, ctx)
    db = ctx.workspace / "course.sqlite"
    store.record_evidence(db, ["rag_pipeline"], 0.0, "quiz_mc")  # a wrong answer on RAG
    store.record_evidence(db, ["lora"], 1.0, "quiz_mc")
    targeted = QUIZ.run({"action": "start", "n": 2}, ctx)
    session = load_session(ctx.workspace, targeted.session_id)
    assert session.module_ids == ["engineer.rag"]


def test_a_finished_lab_is_weak_evidence_on_the_concepts_it_practises(tmp_path):
    from llmtutor.knowledge.learner.evidence import record_lab
    from llmtutor.knowledge.learner.tracing import DEFAULT

    db = tmp_path / "course.sqlite"
    lab = record_lab(db, "estimate_memory", "Estimate the GPU memory to fine-tune Llama-3-8B with QLoRA", {})
    assert "qlora" in [u.concept_id for u in lab]
    quiz = store.record_evidence(tmp_path / "other.sqlite", ["qlora"], 1.0, "quiz_mc")[0]
    gained = next(u for u in lab if u.concept_id == "qlora")
    assert DEFAULT.prior < gained.p_after < quiz.p_after  # practice counts, less than a right answer
    assert store.evidence(db, "qlora")[0]["kind"] == "lab"
    # a tool that is no lab, and a lab of several modules that names none of them: nothing recorded
    assert record_lab(db, "search_course", "What is LoRA?", {}) == []
    assert record_lab(db, "estimate_memory", "How much memory do I need?", {}) == []
    assert [u.concept_id for u in record_lab(db, "merge_models", "merge my models", {})] == ["model_merging"]


def test_a_lab_run_from_chat_is_recorded_for_its_learner(tmp_path):
    from fakes import FakeBackend

    from llmtutor import Tutor
    from llmtutor.settings import Settings

    settings = Settings(workspace=tmp_path)
    tutor = Tutor(settings, backend=FakeBackend([]))
    reply = tutor.ask("Estimate the GPU memory to fine-tune Llama-3-8B with QLoRA", thread_id="t")
    assert [c["tool"] for c in reply.tool_calls] == ["estimate_memory"]
    log = store.evidence(settings.catalog_db, "qlora")
    assert [e["kind"] for e in log] == ["lab"] and log[0]["score"] == 1.0
    assert "qlora" not in store.concept_states(settings.catalog_db, learner_id="u_other")
