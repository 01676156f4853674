"""A quiz as a sequence of graded questions: start, answer, status, stop.

The session lives in `<workspace>/quizzes/<id>.json` (session.py); questions come from the bank
(bank.py, no model needed). With an LLM factory (a capable backend) the LLM may rewrite
multiple-choice questions from the same passages and judge short answers; both are checked and
fall back to the rubric. Each graded answer goes to the learner tables through `record_attempt`
(by default `learner.record_quiz_attempt`, which also refreshes the module's mastery).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from llmtutor.database import Database, database_errors
from llmtutor.errors import LLMTutorError, ToolInputError
from llmtutor.knowledge.learner.evidence import record_question
from llmtutor.knowledge.quiz import session as store
from llmtutor.knowledge.quiz.bank import default_bank
from llmtutor.knowledge.quiz.grading import CORRECT_AT, LETTERS, PARTIAL_AT, grade, is_skip
from llmtutor.knowledge.quiz.questions import Question
from llmtutor.knowledge.quiz.session import AnswerRecord, QuizSession, active_session

LLMFactory = Callable[[], Any]


class QuestionView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: int
    total: int
    kind: Literal["mc", "short"]
    module_id: str
    prompt: str
    options: list[str] = []


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: int
    kind: Literal["mc", "short"]
    prompt: str
    answer: str
    verdict: Literal["correct", "partial", "wrong", "unrecognised"]
    correct: bool
    score: float
    correct_answer: str  # "B) GPTQ" or the reference answer
    explanation: str = ""
    matched_terms: list[str] = []
    missing_terms: list[str] = []
    contradictions: list[tuple[str, str]] = []  # (what the answer said, what the notes say)
    judge: str = ""
    module_id: str
    module_title: str
    source: str
    heading: str
    passage: str
    mastery: float | None = None


class ModuleScore(BaseModel):
    model_config = ConfigDict(extra="forbid")
    module_id: str
    title: str
    answered: int
    correct: int
    mastery: float | None = None


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answered: int
    correct: int
    total: int
    average_score: float
    modules: list[ModuleScore] = []
    review: list[str] = []  # headings of the passages behind wrong answers


class QuizOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The question/feedback is the answer itself: no model explains it (it could leak the next answer).
    final_answer: ClassVar[bool] = True
    session_id: str
    action: str
    status: Literal["asking", "finished", "stopped"]
    language: Literal["en", "zh"]
    topic: str
    question: QuestionView | None = None  # the question to answer now
    feedback: Feedback | None = None  # the grade of the answer just given
    summary: Summary | None = None  # when the quiz is over
    notes: list[str] = []

    def to_markdown(self) -> str:
        from llmtutor.knowledge.quiz.render import render

        return render(self)

    def citations(self) -> list[dict[str, Any]]:
        """The graded question's source passage. Never the pending question's: it holds the answer."""
        if self.feedback is None or self.feedback.verdict == "unrecognised":
            return []
        fb = self.feedback
        return [
            {
                "n": 1,
                "source": fb.source,
                "heading": fb.heading,
                "text": fb.passage,
                "module_id": fb.module_id,
            }
        ]


class AttemptRecorder(Protocol):
    """Stores one graded answer in the learner tables; returns the module's mastery (0-1) or None."""

    def __call__(
        self, workspace: Path, session: QuizSession, question: Question, record: AnswerRecord
    ) -> float | None: ...


def record_in_course_db(
    workspace: Path | Database, session: QuizSession, question: Question, record: AnswerRecord
) -> float | None:
    """The default recorder: `learner.record_quiz_attempt` (which refreshes the module's mastery).
    `workspace`: the folder (its course.sqlite), or the workspace's Database (rows maybe in Postgres)."""
    from llmtutor.knowledge.catalog import learner

    db_path = workspace if isinstance(workspace, Database) else Path(workspace) / "course.sqlite"
    expected = (
        question.options[question.answer_index] if question.answer_index is not None else question.answer
    )
    learner.record_quiz_attempt(
        db_path,
        question=question.prompt,
        answer=record.answer,
        correct=record.grade.correct,
        module_id=question.module_id,
        topic=session.topic_label,
        expected=expected,
        score=record.grade.score,
        learner_id=session.learner_id,
    )
    trace_answer(db_path, question, record, session.learner_id)
    return learner.update_mastery(db_path, question.module_id, learner_id=session.learner_id).mastery


def records_in(database: Database) -> AttemptRecorder:
    """The default recorder, writing where `database` keeps the learner rows (whatever folder
    the quiz session itself is in)."""
    return lambda _workspace, session, question, record: record_in_course_db(
        database, session, question, record
    )


def trace_answer(
    db_path: Path | Database, question: Question, record: AnswerRecord, learner_id: str = "local"
) -> None:
    """The answer as learner-model evidence (its concepts and its review card)."""
    kind = "quiz_mc" if question.kind == "mc" else "quiz_short"
    record_question(db_path, question, record.grade.score, record.grade.correct, kind, learner_id=learner_id)


# ----- actions ----------------------------------------------------------------------
def start_quiz(
    workspace: Path,
    *,
    topic: str | None = None,
    n: int = 5,
    kind: Literal["mc", "short", "mixed"] = "mixed",
    language: Literal["auto", "en", "zh"] = "auto",
    generator: Literal["auto", "catalog", "llm"] = "auto",
    seed: int | None = None,
    llm: LLMFactory | None = None,
    learner_id: str = "local",
) -> QuizOutput:
    """A new quiz on `topic` (English or Chinese; None = the whole course): its first question."""
    from llmtutor.text import CJK

    bank = default_bank()
    resolved = bank.resolve(topic)
    language = language if language != "auto" else ("zh" if CJK.search(topic or "") else "en")
    if generator == "llm" and llm is None:
        raise ToolInputError(
            "no LLM is available to write quiz questions",
            "use generator='catalog' (or 'auto'), or run with a capable chat backend",
        )
    session_id = store.new_session_id()
    seed = seed if seed is not None else zlib.crc32(session_id.encode())
    space = store.learner_space(workspace, learner_id)
    questions = bank.select(resolved, n, kind, language, seed=seed, avoid=store.asked_before(space))
    if not questions:
        raise ToolInputError(
            f"no {kind} questions on {resolved.label!r} in {language}", "try kind='mixed' or another topic"
        )
    now = store.now_text()
    session = QuizSession(
        id=session_id,
        topic=topic or "",
        topic_label=resolved.label_zh if language == "zh" else resolved.label,
        module_ids=resolved.module_ids,
        language=language,
        kind=kind,
        generator="llm" if llm is not None and generator != "catalog" else "catalog",
        created_at=now,
        updated_at=now,
        questions=questions,
        learner_id=learner_id,
    )
    notes = [] if len(questions) == n else [f"only {len(questions)} questions available"]
    notes += _prepare(session, llm)
    store.save(space, session)
    return _output(session, "start", notes=notes)


def start_review(
    workspace: Path,
    cards: list[tuple[str, str]],
    language: Literal["en", "zh"] = "en",
    learner_id: str = "local",
) -> QuizOutput | None:
    """A quiz of the learner's due review cards, given (module id, question id) pairs: the same
    questions again (in the language they were asked in), graded like any quiz, and each
    answer reschedules its card. None when no card's question is in the bank any more."""
    bank = default_bank()
    questions = []
    for module_id, question_id in cards:
        pool = [q for lang in ("en", "zh") for q in bank.questions(module_id, lang)]  # type: ignore[arg-type]
        found = next((q for q in pool if q.id == question_id), None)
        if found is not None:
            questions.append(found)
    if not questions:
        return None
    now = store.now_text()
    session = QuizSession(
        id=store.new_session_id(),
        topic="review",
        topic_label="复习" if language == "zh" else "review",
        module_ids=list(dict.fromkeys(q.module_id for q in questions)),
        language=language,
        kind="mixed",
        generator="catalog",
        created_at=now,
        updated_at=now,
        questions=questions,
        learner_id=learner_id,
    )
    store.save(store.learner_space(workspace, learner_id), session)
    return _output(session, "start")


def answer_quiz(
    workspace: Path,
    session_id: str | None,
    answer: str | None,
    *,
    llm: LLMFactory | None = None,
    recorder: AttemptRecorder | None = None,
    learner_id: str = "local",
) -> QuizOutput:
    """Grade `answer` to the quiz's current question (session_id None = the open quiz)."""
    recorder = recorder or record_in_course_db
    space = store.learner_space(workspace, learner_id)
    session = _session(space, session_id)
    question, number = session.question, session.current + 1
    if question is None:
        return _output(session, "answer", notes=["this quiz is over; start a new one"])
    answer = answer or ""
    if not answer.strip():
        raise ToolInputError(
            "answer is empty", "send the learner's answer as `answer` (a letter A-D or free text)"
        )
    if store.is_stop(answer):
        return _stop(session, space)
    result = grade(question, answer)
    judge = ""
    if question.kind == "short" and session.generator == "llm" and llm is not None and not is_skip(answer):
        from llmtutor.knowledge.quiz.llm import judge_answer

        if (verdict := judge_answer(llm, question, answer)) is not None:
            # Half rubric, half judge: neither a missed synonym nor a lenient model decides alone.
            score = round(0.5 * result.score + 0.5 * verdict.score / 5, 2)
            name = "correct" if score >= CORRECT_AT else "partial" if score >= PARTIAL_AT else "wrong"
            result = result.model_copy(update={"score": score, "verdict": name, "correct": name == "correct"})
            judge = verdict.feedback
    record = AnswerRecord(
        question_id=question.id,
        answer=answer,
        grade=result,
        judge_feedback=judge,
        answered_at=store.now_text(),
    )
    if result.verdict == "unrecognised":  # ask again; nothing is recorded
        return _output(session, "answer", feedback=_feedback(session, question, record, number))
    notes: list[str] = []
    try:
        record.mastery = recorder(workspace, session, question, record)
        record.recorded = True
    except (
        LLMTutorError,
        OSError,
        ValueError,
        *database_errors(),
    ) as exc:  # the quiz goes on; the grade stays
        notes.append(f"could not record the attempt: {exc}")
    session.answers.append(record)
    session.current += 1
    if session.current >= len(session.questions):
        session.status = "finished"
    notes += _prepare(session, llm)
    store.save(space, session)
    return _output(session, "answer", feedback=_feedback(session, question, record, number), notes=notes)


def stop_quiz(workspace: Path, session_id: str | None, learner_id: str = "local") -> QuizOutput:
    """End the quiz (session_id None = the open quiz): its summary."""
    space = store.learner_space(workspace, learner_id)
    return _stop(_session(space, session_id), space)


def quiz_status(workspace: Path, session_id: str | None, learner_id: str = "local") -> QuizOutput:
    """The open question again, or the summary of a quiz that is over."""
    return _output(_session(store.learner_space(workspace, learner_id), session_id), "status")


def _stop(session: QuizSession, workspace: Path) -> QuizOutput:
    if session.status == "asking":
        session.status = "stopped"
        store.save(workspace, session)
    return _output(session, "stop")


def _session(workspace: Path, session_id: str | None) -> QuizSession:
    session_id = session_id or active_session(workspace, max_age=None)
    if session_id is None:
        raise ToolInputError(
            "no quiz is open", "start one with action='start' and a topic, e.g. 'quantization'"
        )
    return store.load(workspace, session_id)


def _prepare(session: QuizSession, llm: LLMFactory | None) -> list[str]:
    """Before a multiple-choice question is shown: let the LLM rewrite it from the same passage."""
    question = session.question
    if question is None or llm is None or session.generator != "llm" or question.kind != "mc":
        return []
    if question.id in session.llm_tried:
        return []
    from llmtutor.knowledge.quiz.llm import write_question

    session.llm_tried.append(question.id)
    written, why = write_question(llm, question)
    if written is None:
        return [f"kept the course question: {why}"]
    session.questions[session.current] = written
    session.llm_tried.append(written.id)
    return []


# ----- output -----------------------------------------------------------------------
def _feedback(session: QuizSession, question: Question, record: AnswerRecord, number: int) -> Feedback:
    if question.answer_index is not None:
        right = f"{LETTERS[question.answer_index]}) {question.options[question.answer_index]}"
    else:
        right = question.answer
    return Feedback(
        number=number,
        kind=question.kind,
        prompt=question.prompt,
        answer=record.answer,
        verdict=record.grade.verdict,
        correct=record.grade.correct,
        score=record.grade.score,
        correct_answer=right,
        explanation=question.explanation,
        matched_terms=record.grade.matched_terms,
        missing_terms=record.grade.missing_terms,
        contradictions=record.grade.contradictions,
        judge=record.judge_feedback,
        module_id=question.module_id,
        module_title=_title(default_bank(), question.module_id, session.language),
        source=question.passage.source,
        heading=question.passage.heading,
        passage=question.passage.text,
        mastery=record.mastery,
    )


def _summary(session: QuizSession) -> Summary:
    bank = default_bank()
    by_id = {q.id: q for q in session.questions}
    modules: dict[str, ModuleScore] = {}
    for rec in session.answers:
        mid = by_id[rec.question_id].module_id if rec.question_id in by_id else "?"
        row = modules.setdefault(
            mid, ModuleScore(module_id=mid, title=_title(bank, mid, session.language), answered=0, correct=0)
        )
        row.answered += 1
        row.correct += int(rec.grade.correct)
        row.mastery = rec.mastery if rec.mastery is not None else row.mastery
    wrong = [
        by_id[r.question_id].passage.heading
        for r in session.answers
        if not r.grade.correct and r.question_id in by_id
    ]
    scores = [r.grade.score for r in session.answers]
    return Summary(
        answered=len(session.answers),
        correct=sum(r.grade.correct for r in session.answers),
        total=len(session.questions),
        average_score=round(sum(scores) / len(scores), 2) if scores else 0.0,
        modules=list(modules.values()),
        review=list(dict.fromkeys(wrong)),
    )


def _title(bank, module_id: str, language: str) -> str:
    try:
        module = bank.module(module_id)
    except KeyError:
        return module_id
    return module.title_zh if language == "zh" else module.title


def _output(
    session: QuizSession, action: str, feedback: Feedback | None = None, notes: list[str] | None = None
) -> QuizOutput:
    question = session.question
    view = None
    if question is not None:
        view = QuestionView(
            number=session.current + 1,
            total=len(session.questions),
            kind=question.kind,
            module_id=question.module_id,
            prompt=question.prompt,
            options=question.options,
        )
    return QuizOutput(
        session_id=session.id,
        action=action,
        status=session.status,
        language=session.language,
        topic=session.topic_label,
        question=view,
        feedback=feedback,
        summary=_summary(session) if session.status != "asking" else None,
        notes=notes or [],
    )
