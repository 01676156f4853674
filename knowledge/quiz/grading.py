"""Grading quiz answers without an LLM: exact for multiple choice, a rubric for short answers.

Multiple choice accepts a letter ("B", "b", "B)", "(b)", "answer: B", "选B", "答案是 B"), the
option's number (1-4), or the option's text (exact or close). Anything else is "unrecognised":
the learner is asked again instead of being marked wrong for a typo.

Short answers are graded on the question's rubric (rubric.py: the reference split into points,
each covered by content or meaning, MiniLM when it loads) with a check for statements that turn
the reference around (misconceptions.py): correct when most of the points are covered and
nothing contradicts the reference, partial when some are, wrong when almost none are or a
misconception outweighs them. The Grade lists the covered and missed points and the
misconceptions found. Without the embedding model the rubric still grades on content.

`grade_short_lexical` is the earlier grader, kept as the benchmark's baseline:
- coverage: the share of the question's key terms the answer uses, any English or Chinese
  spelling counting (so a Chinese answer to an English question still earns them);
- recall: how many of the reference's content words the answer uses (English words or Chinese
  jieba words, not counting words of the question itself), against the reference in either
  language, saturating at 8 words: a short but on-point answer can reach full marks.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from llmtutor.knowledge.quiz.misconceptions import find_misconceptions
from llmtutor.knowledge.quiz.questions import Question
from llmtutor.knowledge.quiz.rubric import clauses, coverage, relevance, rubric_for
from llmtutor.knowledge.quiz.text import Lang, mentions, words
from llmtutor.text import detect_language

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

Verdict = Literal["correct", "partial", "wrong", "unrecognised"]
CORRECT_AT = 0.6  # short answers: score for "correct"
PARTIAL_AT = 0.3  # and for "partly correct"
# Rubric coverage (mean over the reference's points) for "correct" and for "partial".
COVERED_CORRECT = 0.46
COVERED_PARTIAL = 0.15
# Share of the answer's content found in the reference or the question: below this an answer is
# about something else, and the few words it shares with the reference by chance earn nothing.
RELEVANT = 0.2
POINT_COVERED = 0.5  # a point this covered is listed as covered
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
    covered_points: list[str] = []  # short answers: reference points the answer covers
    missed_points: list[str] = []
    misconceptions: list[str] = []  # answer statements that contradict the reference
    # the same, as (the answer's clause, the reference clause it contradicts), for the feedback
    contradictions: list[tuple[str, str]] = []
    method: Literal["", "rubric", "rubric_content", "lexical"] = ""  # rubric_content: no embedding model


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


def grade_short_lexical(question: Question, answer: str) -> Grade:
    """The earlier short-answer grader: key-term coverage and reference word recall."""
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
        method="lexical",
    )


# ----- the rubric grader -------------------------------------------------------------------------
_EMBED_LOCK = threading.Lock()
_EMBED_STATE: dict[str, object] = {}  # "embedder" once loaded, "failed" once it could not load


def sentence_vectors(texts: Sequence[str]) -> np.ndarray | None:
    """MiniLM vectors from the bundled model (loaded on first use, cached with the other users of
    it by knowledge/rag/embeddings.py); None when it cannot load, and it is not tried again."""
    with _EMBED_LOCK:
        if "failed" in _EMBED_STATE:
            return None
        embedder = _EMBED_STATE.get("embedder")
    try:
        if embedder is None:
            from llmtutor.knowledge.rag.embeddings import Embedder

            # The bundled model always: the rubric's thresholds are measured on it.
            embedder = Embedder(None)
            embedder.model  # noqa: B018 - load now, so a missing model fails here
            with _EMBED_LOCK:
                _EMBED_STATE["embedder"] = embedder
        import numpy as np

        from llmtutor.knowledge.rag.embeddings import SMALL_BATCH

        # Small batches run on one torch thread: on two busy cores 64 texts in one call took
        # ~1.2 s, in batches of 8 ~0.2 s (see SMALL_BATCH in embeddings.py).
        texts = list(texts)
        parts = [embedder.embed(texts[i : i + SMALL_BATCH]) for i in range(0, len(texts), SMALL_BATCH)]  # type: ignore[attr-defined]
        return np.concatenate(parts) if parts else None
    except Exception as exc:  # noqa: BLE001 - any failure to load means: grade on content only
        log.warning("quiz grading without the embedding model (%s): content evidence only", exc)
        with _EMBED_LOCK:
            _EMBED_STATE["failed"] = True
        return None


def disable_embeddings() -> None:
    """Grade on content evidence only from now on (what happens when the model cannot load)."""
    with _EMBED_LOCK:
        _EMBED_STATE["failed"] = True


def _score(covered: float) -> float:
    """Coverage on the flow's score scale: COVERED_CORRECT → CORRECT_AT, COVERED_PARTIAL → PARTIAL_AT."""
    if covered >= COVERED_CORRECT:
        value = CORRECT_AT + (1 - CORRECT_AT) * (covered - COVERED_CORRECT) / (1 - COVERED_CORRECT)
    elif covered >= COVERED_PARTIAL:
        value = PARTIAL_AT + (CORRECT_AT - PARTIAL_AT) * (covered - COVERED_PARTIAL) / (
            COVERED_CORRECT - COVERED_PARTIAL
        )
    else:
        value = PARTIAL_AT * covered / COVERED_PARTIAL
    return round(min(1.0, value), 2)


def grade_short(question: Question, answer: str) -> Grade:
    """Rubric points covered, minus the points a misconception contradicts."""
    terms = grade_short_lexical(question, answer)  # key terms, still shown to the learner
    if is_skip(answer):
        return terms.model_copy(update={"method": "rubric"})
    rubric = rubric_for(question)
    vectors = sentence_vectors
    points = coverage(rubric, answer, vectors)
    method = "rubric_content" if "failed" in _EMBED_STATE else "rubric"
    language = detect_language(answer)
    reference = rubric.clauses.get(language) or next(iter(rubric.clauses.values()), ())
    found = find_misconceptions(clauses(answer), reference)
    # A point whose clause the answer contradicts earns nothing, however many words it shares.
    contradicted = {rubric.clause_point.get(m.reference) for m in found}
    scores = [0.0 if i in contradicted else s for i, (_, s) in enumerate(points)]
    covered = sum(scores) / len(scores) if scores else 0.0
    if relevance(rubric, answer) < RELEVANT:
        covered = min(covered, COVERED_PARTIAL / 2)
    if found:
        verdict: Verdict = "partial" if covered >= COVERED_CORRECT else "wrong"
    else:
        verdict = (
            "correct" if covered >= COVERED_CORRECT else "partial" if covered >= COVERED_PARTIAL else "wrong"
        )
    score = _score(covered)
    score = min(score, {"correct": 1.0, "partial": CORRECT_AT - 0.01, "wrong": PARTIAL_AT - 0.01}[verdict])
    return terms.model_copy(
        update={
            "verdict": verdict,
            "correct": verdict == "correct",
            "score": score,
            "covered_points": [
                p.text for (p, _), s in zip(points, scores, strict=True) if s >= POINT_COVERED
            ],
            "missed_points": [p.text for (p, _), s in zip(points, scores, strict=True) if s < POINT_COVERED],
            "misconceptions": [m.describe() for m in found],
            "contradictions": [(m.answer, m.reference) for m in found],
            "method": method,
        }
    )


def grade(question: Question, answer: str) -> Grade:
    return grade_mc(question, answer) if question.kind == "mc" else grade_short(question, answer)
