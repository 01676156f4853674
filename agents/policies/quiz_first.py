"""The `quiz` policy (the quiz master's): retrieval practice first. A course question gets a
multiple-choice question on its concept from the quiz bank before any explanation; the
learner's answer is graded, and then the cited answer is shown.

    question from the bank ──(a letter, or "just tell me")──▶ verdict + cited answer (closed)
                           └─(anything else)────────────────▶ routed as usual, the quiz dropped
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llmtutor.agents.policies import check, socratic
from llmtutor.knowledge.quiz.questions import Question

Language = Literal["en", "zh"]

TEXT = {
    "en": {
        "first": "**Before I explain, try this one.**",
        "how": "_Reply with a letter (A–D), or “just tell me” for the explanation._",
    },
    "zh": {"first": "**讲解之前，先试一题。**", "how": "_回复字母（A–D）作答，或者说“直接告诉我”看讲解。_"},
}


class QuizFirstState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: Literal["quiz"] = "quiz"
    language: Language
    question: Question
    asked: str  # the learner's course question, answered after the quiz
    citations: list[dict[str, Any]]


def open_quiz(
    citations: list[dict[str, Any]], asked: str, language: Language
) -> tuple[str, QuizFirstState] | None:
    state = check.check_question(citations, socratic.concept_of(asked), language, asked)
    if state is None:
        return None
    t = TEXT[language]
    prompt = check.TEXT[language]["ask"].format(prompt=state.question.prompt)
    text = f"{t['first']}\n\n{prompt}\n\n{check.render_options(state.question)}\n\n{t['how']}"
    return text, QuizFirstState(language=language, question=state.question, asked=asked, citations=citations)


def is_answer(state: QuizFirstState, reply: str) -> bool:
    as_check = check.CheckState(language=state.language, question=state.question)
    return check.is_answer(as_check, reply) or socratic.asks_for_answer(reply)


def verdict(state: QuizFirstState, reply: str) -> str:
    """The grade (none when the learner asked for the answer instead)."""
    if socratic.asks_for_answer(reply):
        return ""
    return check.grade_reply(check.CheckState(language=state.language, question=state.question), reply)
