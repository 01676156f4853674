"""The `quiz` tool: quizzes on a course topic, one question per call, graded and recorded.

Stateless per call; the session lives in `<workspace>/quizzes/<id>.json` (tools/quiz_session.py):
- ``action="start"`` + topic (English or Chinese: "quantization", "量化", a module id, a glossary
  term; empty = the whole course), n, kind (mc | short | mixed), language → the first question;
- ``action="answer"`` + the learner's text (session_id defaults to the open quiz) → the grade of
  the current question (right answer, explanation, source) and the next question or a summary;
- ``action="status"`` → the open question again, or the summary; ``action="stop"`` ends the quiz.

How the chat continues an open quiz: before routing a message, call
``continuation(workspace, text, shown)``; when it returns arguments, run this tool with them and show
its markdown as is (the feedback already holds the right answer and its source).

Questions come from knowledge/quiz_bank.py (no model needed). With an LLM factory
(``make_tool(llm=...)``, for a capable backend) the LLM may rewrite multiple-choice questions from
the same passages and judge short answers; both are checked and fall back to the rubric.
Each graded answer goes to the learner tables through `course_db.record_quiz_attempt`, which
also refreshes the module's mastery.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.errors import LLMTutorError, ToolInputError
from llmtutor.knowledge.quiz import session as store
from llmtutor.knowledge.quiz.bank import Question, default_bank
from llmtutor.knowledge.quiz.grading import CORRECT_AT, LETTERS, PARTIAL_AT, grade, is_skip
from llmtutor.knowledge.quiz.session import AnswerRecord, QuizSession, active_session, continuation
from llmtutor.tools.quiz_chat import EXAMPLES, extract_quiz_args, render
from llmtutor.tools.registry import ToolContext, ToolSpec

__all__ = ["TOOL", "QuizInput", "QuizOutput", "make_tool", "run_quiz", "active_session", "continuation"]


class QuizInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["start", "answer", "status", "stop"] = Field(
        "start", description="start a quiz, answer its current question, show its status, or stop it."
    )
    topic: str | None = Field(
        None,
        description="start: module, track or glossary term, English or Chinese "
        "(e.g. 'quantization', '量化', 'engineer.rag', 'LoRA'); empty = whole course.",
    )
    n: int = Field(5, ge=1, le=20, description="start: number of questions.")
    kind: Literal["mc", "short", "mixed"] = Field(
        "mixed", description="start: multiple choice, short answer, or both."
    )
    language: Literal["auto", "en", "zh"] = Field(
        "auto", description="start: question language; auto follows the topic."
    )
    generator: Literal["auto", "catalog", "llm"] = Field(
        "auto",
        description="start: catalog = deterministic questions; llm = let a capable model write them; "
        "auto = llm if available.",
    )
    seed: int | None = Field(None, description="start: fixes the question choice (default: random per quiz).")
    session_id: str | None = Field(None, description="answer/status/stop: the quiz; default = the open quiz.")
    answer: str | None = Field(
        None, description="answer: the learner's answer (a letter A-D, the option's text, or free text)."
    )


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
    workspace: Path, session: QuizSession, question: Question, record: AnswerRecord
) -> float | None:
    """The default recorder: `course_db.record_quiz_attempt` (which refreshes the module's mastery)."""
    from llmtutor.knowledge.catalog import course_db

    db_path = Path(workspace) / "course.sqlite"  # Settings.catalog_db
    expected = (
        question.options[question.answer_index] if question.answer_index is not None else question.answer
    )
    course_db.record_quiz_attempt(
        db_path,
        question=question.prompt,
        answer=record.answer,
        correct=record.grade.correct,
        module_id=question.module_id,
        topic=session.topic_label,
        expected=expected,
        score=record.grade.score,
    )
    return course_db.update_mastery(db_path, question.module_id).mastery


# ----- actions ----------------------------------------------------------------------
def _start(cfg: QuizInput, ctx: ToolContext, llm: Callable[[], Any] | None) -> QuizOutput:
    from llmtutor.text import CJK

    bank = default_bank()
    topic = bank.resolve(cfg.topic)
    language = cfg.language if cfg.language != "auto" else ("zh" if CJK.search(cfg.topic or "") else "en")
    if cfg.generator == "llm" and llm is None:
        raise ToolInputError(
            "no LLM is available to write quiz questions",
            "use generator='catalog' (or 'auto'), or run with a capable chat backend",
        )
    session_id = store.new_session_id()
    seed = cfg.seed if cfg.seed is not None else zlib.crc32(session_id.encode())
    questions = bank.select(
        topic, cfg.n, cfg.kind, language, seed=seed, avoid=store.asked_before(ctx.workspace)
    )
    if not questions:
        raise ToolInputError(
            f"no {cfg.kind} questions on {topic.label!r} in {language}", "try kind='mixed' or another topic"
        )
    now = store.now_text()
    session = QuizSession(
        id=session_id,
        topic=cfg.topic or "",
        topic_label=topic.label_zh if language == "zh" else topic.label,
        module_ids=topic.module_ids,
        language=language,
        kind=cfg.kind,
        generator="llm" if llm is not None and cfg.generator != "catalog" else "catalog",
        created_at=now,
        updated_at=now,
        questions=questions,
    )
    notes = [] if len(questions) == cfg.n else [f"only {len(questions)} questions available"]
    notes += _prepare(session, llm)
    store.save(ctx.workspace, session)
    return _output(session, "start", notes=notes)


def _answer(
    cfg: QuizInput, ctx: ToolContext, llm: Callable[[], Any] | None, recorder: AttemptRecorder
) -> QuizOutput:
    session = _session(cfg, ctx)
    question, number = session.question, session.current + 1
    if question is None:
        return _output(session, "answer", notes=["this quiz is over; start a new one"])
    if not (cfg.answer or "").strip():
        raise ToolInputError(
            "answer is empty", "send the learner's answer as `answer` (a letter A-D or free text)"
        )
    if store.is_stop(cfg.answer or ""):
        return _stop(session, ctx)
    result = grade(question, cfg.answer or "")
    judge = ""
    if (
        question.kind == "short"
        and session.generator == "llm"
        and llm is not None
        and not is_skip(cfg.answer or "")
    ):
        from llmtutor.knowledge.quiz.llm import judge_answer

        if (verdict := judge_answer(llm, question, cfg.answer or "")) is not None:
            # Half rubric, half judge: neither a missed synonym nor a lenient model decides alone.
            score = round(0.5 * result.score + 0.5 * verdict.score / 5, 2)
            name = "correct" if score >= CORRECT_AT else "partial" if score >= PARTIAL_AT else "wrong"
            result = result.model_copy(update={"score": score, "verdict": name, "correct": name == "correct"})
            judge = verdict.feedback
    record = AnswerRecord(
        question_id=question.id,
        answer=cfg.answer or "",
        grade=result,
        judge_feedback=judge,
        answered_at=store.now_text(),
    )
    if result.verdict == "unrecognised":  # ask again; nothing is recorded
        return _output(session, "answer", feedback=_feedback(session, question, record, number))
    notes: list[str] = []
    try:
        record.mastery = recorder(ctx.workspace, session, question, record)
        record.recorded = True
    except (LLMTutorError, OSError, ValueError, sqlite3.Error) as exc:  # the quiz goes on; the grade stays
        notes.append(f"could not record the attempt: {exc}")
    session.answers.append(record)
    session.current += 1
    if session.current >= len(session.questions):
        session.status = "finished"
    notes += _prepare(session, llm)
    store.save(ctx.workspace, session)
    return _output(session, "answer", feedback=_feedback(session, question, record, number), notes=notes)


def _stop(session: QuizSession, ctx: ToolContext) -> QuizOutput:
    if session.status == "asking":
        session.status = "stopped"
        store.save(ctx.workspace, session)
    return _output(session, "stop")


def _session(cfg: QuizInput, ctx: ToolContext) -> QuizSession:
    session_id = cfg.session_id or active_session(ctx.workspace, max_age=None)
    if session_id is None:
        raise ToolInputError(
            "no quiz is open", "start one with action='start' and a topic, e.g. 'quantization'"
        )
    return store.load(ctx.workspace, session_id)


def _prepare(session: QuizSession, llm: Callable[[], Any] | None) -> list[str]:
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


# ----- the tool ---------------------------------------------------------------------
def run_quiz(
    cfg: QuizInput,
    ctx: ToolContext,
    llm: Callable[[], Any] | None = None,
    recorder: AttemptRecorder | None = None,
) -> QuizOutput:
    if cfg.action == "start":
        return _start(cfg, ctx, llm)
    if cfg.action == "answer":
        return _answer(cfg, ctx, llm, recorder or record_in_course_db)
    session = _session(cfg, ctx)
    return _stop(session, ctx) if cfg.action == "stop" else _output(session, "status")


def make_tool(llm: Callable[[], Any] | None = None, recorder: AttemptRecorder | None = None) -> ToolSpec:
    """The quiz tool; `llm` (a factory returning a LangChain chat model) only for capable backends."""
    return ToolSpec(
        name="quiz",
        description=(
            "Quiz the learner on a course topic (module, track or glossary term, English or Chinese): "
            "multiple-choice and short-answer questions from the course notes, one at a time, graded with "
            "the right answer and its source, recorded in the learner's quiz history and module mastery. "
            "action=start (topic, n, kind, language), answer (the learner's reply), status, stop."
        ),
        input_model=QuizInput,
        output_model=QuizOutput,
        func=lambda cfg, ctx: run_quiz(cfg, ctx, llm=llm, recorder=recorder),
        examples=EXAMPLES,
        expensive=False,
        writes=True,
        extract_args=extract_quiz_args,
        continues=continuation,
    )


TOOL = make_tool()
