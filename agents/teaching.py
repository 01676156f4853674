"""How a persona's teaching policy shapes a turn (agents/policies/): the graph asks here whether a
message continues an open dialogue, and what the learner reads when a policy opens or goes on.

The dialogue's state is a plain dict in the thread (`TutorState["teaching"]`), so a reload or
another process continues it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmtutor.agents.answering import ComposedAnswer, is_cited
from llmtutor.agents.personas import Persona
from llmtutor.agents.policies import check, lab, quiz_first, research, socratic
from llmtutor.knowledge.quiz.questions import Question

Teaching = dict[str, Any]
# (citations, question, language) -> the cited answer, composed like any course answer
CitedAnswer = Callable[[list[dict[str, Any]], str, str], ComposedAnswer]


@dataclass(frozen=True)
class Outcome:
    """A graded step of a dialogue, as evidence for the learner model: the concepts it tests
    (a quiz-bank question, or the concept the dialogue is about) and a score in [0, 1]."""

    kind: str  # "check" (multiple choice) or "socratic" (the learner's own words)
    score: float
    question: Question | None = None
    about: str = ""


def outcome(teaching: Teaching, reply: str) -> Outcome | None:
    """What the learner's reply to the open dialogue shows, or None when it shows nothing
    (a hint was given and the dialogue goes on)."""
    policy = teaching.get("policy")
    if policy in ("check", "quiz"):
        question = Question.model_validate(teaching["question"])
        if policy == "quiz" and socratic.asks_for_answer(reply):
            return Outcome("check", 0.0, question)  # asked for the answer: not known yet
        return Outcome("check", float(check.grade(question, reply).score), question)
    if policy == "socratic":
        state = socratic.SocraticState.model_validate(teaching)
        if socratic.asks_for_answer(reply):
            return Outcome("socratic", 0.0, about=state.concept)
        right, _ = socratic.judge(state, reply)
        if right:  # hints taken lower the credit: the learner got there with help
            return Outcome("socratic", max(0.4, 1.0 - 0.2 * state.hints_given), about=state.concept)
        if state.hints_given >= state.max_hints:
            return Outcome("socratic", 0.0, about=state.concept)
    return None


def continues(teaching: Teaching | None, text: str) -> bool:
    """Whether the message answers the open dialogue (a /command never does)."""
    if not teaching or text.lstrip().startswith("/"):
        return False
    policy = teaching.get("policy")
    if policy == "socratic":
        return True
    if policy == "check":
        return check.is_answer(check.CheckState.model_validate(teaching), text)
    if policy == "quiz":
        return quiz_first.is_answer(quiz_first.QuizFirstState.model_validate(teaching), text)
    if policy == "lab":
        return lab.accepts(text)
    return False


def accepted_lab(teaching: Teaching | None) -> tuple[str, dict[str, Any]] | None:
    """The offered lab (tool, args) when the open dialogue is a lab offer."""
    if not teaching or teaching.get("policy") != "lab":
        return None
    offer = lab.LabOffer.model_validate(teaching)
    return offer.tool, offer.args


def go_on(
    teaching: Teaching, reply: str, cited_answer: CitedAnswer
) -> tuple[ComposedAnswer, Teaching | None]:
    """The open dialogue's next step: a hint, a verdict, or the revealed cited answer."""
    if teaching.get("policy") == "check":
        text = check.grade_reply(check.CheckState.model_validate(teaching), reply)
        return ComposedAnswer(text, text), None
    if teaching.get("policy") == "quiz":
        quiz = quiz_first.QuizFirstState.model_validate(teaching)
        answer = cited_answer(quiz.citations, quiz.asked, quiz.language)
        text = "\n\n".join(part for part in (quiz_first.verdict(quiz, reply), answer.text) if part)
        return ComposedAnswer(text, text, answer.citations), None
    state = socratic.SocraticState.model_validate(teaching)
    step = socratic.continue_dialogue(state, reply)
    if not step.reveal:
        return ComposedAnswer(step.text, step.text), step.state.model_dump() if step.state else None
    answer = cited_answer(state.citations, state.question, state.language)
    text = f"{step.text}\n\n{answer.text}"
    return ComposedAnswer(text, text, answer.citations), None


def open_with(
    persona: Persona,
    run: dict[str, Any] | None,
    composed: ComposedAnswer,
    question: str,
    language: str,
    allowed: list[str] | None = None,
) -> tuple[ComposedAnswer, Teaching | None]:
    """The turn as the persona's policy teaches it, given the grounded answer already composed."""
    if not run or not is_cited(run) or run.get("found") is False or not run.get("citations"):
        return composed, None
    lang = "zh" if language == "zh" else "en"
    if persona.policy == "socratic":
        step = socratic.open_dialogue(
            question,
            socratic.concept_of(question),
            run["citations"],
            lang,
            max_hints=int(persona.policy_params.get("max_hints", 3)),
        )
        return ComposedAnswer(step.text, step.text), step.state.model_dump() if step.state else None
    if not composed.citations:  # the policies below build on an answer that cites
        return composed, None
    if persona.policy == "quiz":
        opened = quiz_first.open_quiz(composed.citations, question, lang)
        if opened is not None:
            text, quiz = opened
            return ComposedAnswer(text, text), quiz.model_dump()
    if persona.policy == "check":
        state = check.check_question(composed.citations, socratic.concept_of(question), lang, question)
        if state is not None:
            text = f"{composed.text}\n\n{check.render_question(state)}"
            return ComposedAnswer(text, composed.explanation, composed.citations), state.model_dump()
    if persona.policy == "research":
        papers = research.references(composed.citations, question, lang)
        if papers:
            text = f"{composed.text}\n\n{papers}"
            return ComposedAnswer(text, text, composed.citations), None
    if persona.policy == "lab":
        offered = lab.offer(composed.citations, lang, allowed or [])
        if offered is not None:
            text = f"{composed.text}\n\n{offered[0]}"
            return ComposedAnswer(text, text, composed.citations), offered[1].model_dump()
    return composed, None
