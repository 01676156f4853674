"""The `check` policy (the tutor's): after a cited explanation, one check question on the
concept from the quiz bank, graded on the learner's next reply.

The question comes from the same module as the passage the answer cited, prefers one whose
focus is the concept, and is multiple choice (gradable without a model). The state is a plain
dict in the thread; any reply that is not an answer closes it and is routed as usual.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llmtutor.knowledge.quiz.grading import LETTERS, grade
from llmtutor.knowledge.quiz.questions import Question

Language = Literal["en", "zh"]

TEXT = {
    "en": {
        "ask": "**Check yourself:** {prompt}",
        "how": "_Reply with a letter (A–D); anything else carries on as usual._",
        "right": "✅ Right: **{answer}**.",
        "wrong": "❌ Not quite: the answer is **{answer}**.",
        "source": "Source: {heading}",
    },
    "zh": {
        "ask": "**自测一下：** {prompt}",
        "how": "_回复字母（A–D）作答；其他内容照常处理。_",
        "right": "✅ 回答正确：**{answer}**。",
        "wrong": "❌ 不太对，正确答案是 **{answer}**。",
        "source": "来源：{heading}",
    },
}


class CheckState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: Literal["check"] = "check"
    language: Language
    question: Question


def module_of(source: str) -> str | None:
    """The catalog module a course notes file belongs to: files are named TRACK-ORDER-….md."""
    from llmtutor.knowledge.catalog import load_catalog

    parts = source.rsplit("/", 1)[-1].split("-", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    track, order = parts[0], int(parts[1])
    return next((m.id for m in load_catalog().modules() if m.track == track and m.order == order), None)


def check_question(
    citations: list[dict[str, Any]], concept: str, language: Language, asked: str = ""
) -> CheckState | None:
    """A multiple-choice question on the cited passage's module: one whose focus is the concept
    first, then the one whose text and answer cover most of the learner's question."""
    from llmtutor.agents.explain.similarity import concepts, coverage
    from llmtutor.knowledge.quiz.bank import default_bank

    wanted = concept.casefold()
    asked_concepts = concepts(asked or concept)
    for citation in citations[:2]:
        module_id = citation.get("module_id") or module_of(str(citation.get("source", "")))
        if not module_id:
            continue
        try:
            questions = [q for q in default_bank().questions(module_id, language) if q.kind == "mc"]
        except KeyError:
            continue
        if not questions:
            continue

        def fit(q: Question) -> tuple[bool, float]:
            about = f"{q.prompt} {q.answer} {q.passage.heading} {' '.join(q.focus)}"
            return any(wanted == f.casefold() for f in q.focus), coverage(asked_concepts, about)[0]

        best = max(questions, key=fit)  # max keeps the bank's order among equals
        return CheckState(language=language, question=best)
    return None


def render_options(question: Question) -> str:
    return "\n".join(f"{LETTERS[i]}) {option}" for i, option in enumerate(question.options))


def render_question(state: CheckState) -> str:
    t, q = TEXT[state.language], state.question
    return f"{t['ask'].format(prompt=q.prompt)}\n\n{render_options(q)}\n\n{t['how']}"


_LETTER_ONLY = re.compile(r"[(（\[]?[A-Da-d1-4][)）\].:：、]?")


def is_answer(state: CheckState, reply: str) -> bool:
    """A letter, or an option's exact text: an option word inside a new request is not an answer."""
    text = reply.strip()
    return bool(_LETTER_ONLY.fullmatch(text)) or text.casefold() in {
        o.casefold() for o in state.question.options
    }


def grade_reply(state: CheckState, reply: str) -> str:
    """The verdict, the right option and its source; the dialogue ends here."""
    t, q = TEXT[state.language], state.question
    result = grade(q, reply)
    answer = (
        f"{LETTERS[q.answer_index]}) {q.options[q.answer_index]}" if q.answer_index is not None else q.answer
    )
    lines = [t["right" if result.correct else "wrong"].format(answer=answer)]
    if q.explanation:
        lines.append(q.explanation)
    lines.append(t["source"].format(heading=q.passage.heading))
    return "\n\n".join(lines)
