"""Grading quiz answers without a model: exact for multiple choice, a rubric for short answers.

Multiple choice accepts a letter ("B", "b", "B)", "(b)", "answer: B", "选B", "答案是 B"), the
option's number (1-4), or the option's text (exact or close). Anything else is "unrecognised":
the learner is asked again instead of being marked wrong for a typo.

Short answers score 0.6 x key-term coverage + 0.4 x content recall:
- coverage: the share of the question's key terms the answer uses, any English or Chinese
  spelling counting (so a Chinese answer to an English question still earns them);
- recall: how many of the reference's content words the answer uses (English words or Chinese
  jieba words, not counting words of the question itself), against the reference in either
  language, saturating at 8 words: a short but on-point answer can reach full marks.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict

from llmtutor.knowledge.quiz.questions import Question
from llmtutor.knowledge.quiz.text import Lang, mentions, words

Verdict = Literal["correct", "partial", "wrong", "unrecognised"]
CORRECT_AT = 0.6  # short answers: score for "correct"
PARTIAL_AT = 0.3  # and for "partly correct"
_RECALL_WORDS = 8
LETTERS = "ABCD"

_SKIP = re.compile(
    r"^\s*(?:i\s*don'?t\s*know|idk|no\s*idea|pass|skip|不知道|不会|跳过|不清楚|\?+|？+)\s*[.!。！]*\s*$", re.I
)
_LETTER = re.compile(
    r"^\s*(?:(?:i\s+think|i\s+(?:choose|pick|go\s+with)|i'?ll\s+go\s+with|it'?s|(?:my|the)\s+answer\s+is|"
    r"(?:answer|option|choice)(?:\s+is)?)\s*[:：]?\s*|(?:我选|选|答案是?|答案[:：])\s*)?"
    r"[(（\[]?\s*([A-Da-d1-4])\s*[)）\].:：、,，]?\s*(?:选项)?\s*$",
    re.I,
)
_LETTER_THEN_TEXT = re.compile(r"^\s*[(（\[]?([A-Da-d])\s*[)）\].:：、,，]\s*\S")


class Grade(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Verdict
    correct: bool
    score: float  # 0..1
    chosen_index: int | None = None  # multiple choice: the option the learner picked
    matched_terms: list[str] = []  # short answers: key terms the answer used
    missing_terms: list[str] = []


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\s\"'“”‘’`.,;:!?。，；：！？、()（）\[\]]+", " ", text).strip()


def _few_words(rest: str, limit: int = 3) -> bool:
    """At most `limit` words (or, without spaces, 6 CJK characters) outside the named option."""
    rest = rest.strip()
    return len(rest.split()) <= limit and (" " in rest or len(rest) <= 6 or rest.isascii())


def parse_choice(answer: str, options: list[str]) -> int | None:
    """The option index an answer names, or None when it names none."""
    if match := _LETTER.match(answer):
        char = match.group(1).upper()
        index = LETTERS.index(char) if char in LETTERS else int(char) - 1
        return index if index < len(options) else None
    if match := _LETTER_THEN_TEXT.match(answer):  # "B) absmax": the explicit letter decides
        index = LETTERS.index(match.group(1).upper())
        return index if index < len(options) else None
    said = _clean(answer)
    if not said:
        return None
    cleaned = [_clean(o) for o in options]
    if said in cleaned:
        return cleaned.index(said)
    # Part of one option only ("absmax" for "absmax quantization"), or one option inside a short
    # reply ("I think absmax"); never a word shared by several, and never an option word inside a
    # longer message ("quiz me on quantization" is a request, not the answer "quantization").
    inside = [
        i
        for i, o in enumerate(cleaned)
        if len(said) >= 3 and (said in o or (len(o) >= 3 and o in said and _few_words(said.replace(o, " "))))
    ]
    if len(inside) == 1:
        return inside[0]
    ratios = [difflib.SequenceMatcher(None, said, o).ratio() for o in cleaned]
    best = max(range(len(options)), key=lambda i: ratios[i])
    return best if ratios[best] >= 0.8 else None


def is_skip(answer: str) -> bool:
    return not answer.strip() or _SKIP.match(answer) is not None


def grade_mc(question: Question, answer: str) -> Grade:
    if is_skip(answer):
        return Grade(verdict="wrong", correct=False, score=0.0)
    chosen = parse_choice(answer, question.options)
    if chosen is None:
        return Grade(verdict="unrecognised", correct=False, score=0.0)
    right = chosen == question.answer_index
    return Grade(
        verdict="correct" if right else "wrong", correct=right, score=float(right), chosen_index=chosen
    )


def _recall(answer: str, reference: str, language: Lang, prompt: str) -> float:
    asked = set(words(prompt, language))
    wanted = {w for w in words(reference, language) if w not in asked}
    if not wanted:
        return 0.0
    said = set(words(answer, language))
    return min(1.0, len(wanted & said) / min(_RECALL_WORDS, len(wanted)))


def grade_short(question: Question, answer: str) -> Grade:
    if is_skip(answer):
        missing = [t.label for t in question.key_terms]
        return Grade(verdict="wrong", correct=False, score=0.0, missing_terms=missing)
    matched = [t.label for t in question.key_terms if mentions(answer, t.spellings, plurals=True)]
    missing = [t.label for t in question.key_terms if t.label not in matched]
    coverage = len(matched) / len(question.key_terms) if question.key_terms else 0.0
    other: Lang = "en" if question.language == "zh" else "zh"
    recall = max(
        _recall(answer, question.answer, question.language, question.prompt),
        _recall(answer, question.reference_alt, other, question.prompt) if question.reference_alt else 0.0,
    )
    score = round(0.6 * coverage + 0.4 * recall, 2)
    verdict: Verdict = "correct" if score >= CORRECT_AT else "partial" if score >= PARTIAL_AT else "wrong"
    return Grade(
        verdict=verdict,
        correct=verdict == "correct",
        score=score,
        matched_terms=matched,
        missing_terms=missing,
    )


def grade(question: Question, answer: str) -> Grade:
    return grade_mc(question, answer) if question.kind == "mc" else grade_short(question, answer)
