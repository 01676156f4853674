"""How a persona's teaching policy shapes a turn (agents/policies/): the graph asks here whether a
message continues an open dialogue, and what the learner reads when a policy opens or goes on.

The dialogue's state is a plain dict in the thread (`TutorState["teaching"]`), so a reload or
another process continues it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmtutor.agents.answering import ComposedAnswer, is_cited
from llmtutor.agents.personas import Persona
from llmtutor.agents.policies import check, socratic

Teaching = dict[str, Any]
# (citations, question, language) -> the cited answer, composed like any course answer
CitedAnswer = Callable[[list[dict[str, Any]], str, str], ComposedAnswer]


def continues(teaching: Teaching | None, text: str) -> bool:
    """Whether the message answers the open dialogue (a /command never does)."""
    if not teaching or text.lstrip().startswith("/"):
        return False
    if teaching.get("policy") == "socratic":
        return True
    if teaching.get("policy") == "check":
        return check.is_answer(check.CheckState.model_validate(teaching), text)
    return False


def go_on(
    teaching: Teaching, reply: str, cited_answer: CitedAnswer
) -> tuple[ComposedAnswer, Teaching | None]:
    """The open dialogue's next step: a hint, a verdict, or the revealed cited answer."""
    if teaching.get("policy") == "check":
        text = check.grade_reply(check.CheckState.model_validate(teaching), reply)
        return ComposedAnswer(text, text), None
    state = socratic.SocraticState.model_validate(teaching)
    step = socratic.continue_dialogue(state, reply)
    if not step.reveal:
        return ComposedAnswer(step.text, step.text), step.state.model_dump() if step.state else None
    answer = cited_answer(state.citations, state.question, state.language)
    text = f"{step.text}\n\n{answer.text}"
    return ComposedAnswer(text, text, answer.citations), None


def open_with(
    persona: Persona, run: dict[str, Any] | None, composed: ComposedAnswer, question: str, language: str
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
    if persona.policy == "check" and composed.citations:  # only after an answer that cites
        state = check.check_question(
            composed.citations or run["citations"], socratic.concept_of(question), lang
        )
        if state is not None:
            text = f"{composed.text}\n\n{check.render_question(state)}"
            return ComposedAnswer(text, composed.explanation, composed.citations), state.model_dump()
    return composed, None
