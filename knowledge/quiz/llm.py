"""Optional LLM help for quizzes: writing a multiple-choice question from a passage, and judging
a short answer. Both use structured output (grammar-constrained on llama.cpp) and both are
checked; on any failure the caller keeps the deterministic question or the rubric grade.

A written question is kept only when the evidence it quotes is really in the passage and the
correct option is supported by that evidence, so a model cannot invent facts into a quiz.
Only used with a capable backend (the quiz tool is given an LLM factory by the agent); the
default SmolLM2-135M is not asked.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.knowledge.quiz.questions import Question
from llmtutor.knowledge.quiz.text import words
from llmtutor.text import CJK, detect_language

LLMFactory = Callable[[], Any]  # returns a LangChain chat model (with_structured_output)


class WrittenQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(description="The question, answerable from the passage alone.")
    options: list[str] = Field(
        min_length=4, max_length=4, description="Four answer options; exactly one is right."
    )
    correct_option: int = Field(ge=0, le=3, description="Index (0-3) of the right option.")
    evidence: str = Field(
        description="One sentence copied word for word from the passage that proves the answer."
    )
    explanation: str = Field(description="Why the right option is right, in one or two sentences.")


class JudgeVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: int = Field(ge=0, le=5, description="0 = wrong or empty, 5 = complete and correct.")
    feedback: str = Field(description="One or two sentences to the learner: what was right, what is missing.")


_LANG = {"en": "English", "zh": "Simplified Chinese"}


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


def _supported(option: str, evidence: str, language: str) -> bool:
    """Most of the option's content words (or Chinese characters) appear in the evidence."""
    lang = "zh" if CJK.search(option) else "en"
    wanted = set(words(option, lang)) if lang == "en" else set(re.findall(r"[\u3400-\u9fff]", option))
    if not wanted:
        return _flat(option) in _flat(evidence)
    found = set(words(evidence, lang)) if lang == "en" else set(re.findall(r"[\u3400-\u9fff]", evidence))
    return len(wanted & found) / len(wanted) >= 0.5


def check_written(written: WrittenQuestion, base: Question) -> str | None:
    """Why a written question must be rejected, or None when it is sound."""
    evidence, passage = _flat(written.evidence), _flat(base.passage.text)
    if len(evidence) < (8 if base.language == "zh" else 20) or evidence not in passage:
        return "its evidence is not a quote from the passage"
    options = [_flat(o) for o in written.options]
    if any(not o for o in options) or len(set(options)) < 4:
        return "its options are empty or repeated"
    if not _supported(written.options[written.correct_option], written.evidence, base.language):
        return "the evidence does not support the marked answer"
    if detect_language(written.question) != base.language:
        return f"it is not written in {_LANG[base.language]}"
    return None


def write_question(llm: LLMFactory, base: Question) -> tuple[Question | None, str]:
    """A multiple-choice question on base's passage written by the LLM, or (None, why not)."""
    language = _LANG[base.language]
    system = (
        f"You write one multiple-choice quiz question in {language} for a learner of the LLM Course. "
        "Use only the passage. Give exactly four short options, one right and three plausible but wrong "
        "according to the passage. Copy the evidence sentence word for word from the passage."
    )
    user = f"Passage ({base.passage.heading}):\n{base.passage.text}"
    try:
        model = llm().with_structured_output(WrittenQuestion, method="json_schema")
        written = model.invoke([("system", system), ("human", user)])
        if isinstance(written, dict):
            written = WrittenQuestion.model_validate(written)
    except Exception as exc:  # a backend or parsing failure: the deterministic question stays
        return None, f"the model could not write a question ({type(exc).__name__})"
    if (problem := check_written(written, base)) is not None:
        return None, f"the model's question was rejected: {problem}"
    qid = "llm-" + hashlib.sha1(f"{base.id}\x1f{written.question}".encode()).hexdigest()[:12]
    options = list(written.options)
    right = options[written.correct_option]
    random.Random(qid).shuffle(options)  # models like to put the answer first
    return base.model_copy(
        update={
            "id": qid,
            "origin": "llm",
            "prompt": written.question,
            "options": options,
            "answer_index": options.index(right),
            "answer": right,
            "explanation": f"{written.explanation} — “{written.evidence}”",
        }
    ), ""


def judge_answer(llm: LLMFactory, question: Question, answer: str) -> JudgeVerdict | None:
    """The LLM's 0-5 grade of a short answer against the reference, or None on any failure."""
    language = _LANG[question.language]
    system = (
        "You grade a learner's short answer against the reference answer from the course notes. "
        "Judge meaning, not wording; answers in English or Chinese are equally fine. "
        f"Write the feedback in {language}, addressed to the learner."
    )
    user = f"Question: {question.prompt}\n\nReference answer: {question.answer}\n\nLearner's answer: {answer}"
    try:
        model = llm().with_structured_output(JudgeVerdict, method="json_schema")
        verdict = model.invoke([("system", system), ("human", user)])
        return JudgeVerdict.model_validate(verdict) if isinstance(verdict, dict) else verdict
    except Exception:  # the rubric grade stands
        return None
