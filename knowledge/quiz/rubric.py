"""Short-answer rubrics: a reference answer as points, and how much of each point an answer covers.

A question's rubric is data derived from its reference answers (English and Chinese): each
sentence (or `;` part) is a point, each comma-level piece a clause (misconceptions.py compares
answer clauses with them). An answer covers a point by two kinds of evidence, the larger wins:
- content: the point's content grams the answer uses, weighted by rarity in the course notes
  (idf), so "softmax", "SRAM", "过拟合" count more than "model"; English words are stemmed,
  Chinese is compared by characters and character pairs (paraphrases share most characters
  even when jieba cuts them differently), and glossary/lexicon concepts link both languages;
- meaning: MiniLM cosine between an answer sentence or clause and the point (English only:
  the model is English-only and puts all Chinese text close together).
Why content leads: MiniLM sees topic more than content (a vague sentence on the right topic
reaches 0.55-0.7), so meaning only counts when it is clearly high, for a paraphrase that shares
no words; content is what separates a full answer from a vague one (docs/benchmarks.md has the
measurements). No LLM; the embedding model is optional (`vectors=None`: content alone).
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from llmtutor.knowledge.quiz.questions import Question
from llmtutor.knowledge.quiz.text import Lang, split_sentences, trie_regex
from llmtutor.text import CJK, CJK_CHARS, detect_language

Vectors = Callable[[Sequence[str]], "np.ndarray | None"]

# Saturation: a point whose idf-weighted content recall reaches this counts as fully covered. An
# answer restates a point in fewer words than the notes do, so half the content is plenty; Chinese
# grams (characters and pairs) overlap more by chance, so they need a little less than words.
CONTENT_FULL = {"en": 0.45, "zh": 0.3}
# MiniLM cosine: at MEANING_FROM an answer sentence starts to count as restating a point, at
# MEANING_FULL it fully does. High on purpose: on-topic but vague sentences reach ~0.55.
MEANING_FROM, MEANING_FULL = 0.6, 0.8
ASKED_WEIGHT = 0.3  # grams of the question itself: repeating the question is weak evidence

_EN_STOP = frozenset(
    """a an the and or but if of to in on at by for with from as into about over under between through
    is are was were be been being am do does did doing done have has had having can could should would
    will shall may might must this that these those it its they them their there here i me my we our
    you your he she his her what which who whom whose when where why how than then so such not no nor
    too very just also only any some all each both other own same s t don doesn isn like
    basically really thing things way ways get gets got one e g i.e etc""".split()
)
# Function characters: alone they say nothing (pairs that contain them still count).
_ZH_STOP = frozenset("的了是在和与及或也都就而并吗呢吧啊呀么这那其之被把让对从中个一些有着过于来去所为以将")
_EN_WORD = re.compile(r"[a-z][a-z0-9]*(?:[-'][a-z0-9]+)*|\d+(?:\.\d+)?%?")
_CJK_RUN = re.compile(f"[{CJK_CHARS}]+")
_BRITISH = re.compile(r"is(e|ed|es|ing|ation|ations)$")
_SUFFIXES = ("ations", "ation", "ments", "ment", "ingly", "ing", "edly", "ed", "ies", "es", "s", "ly", "er")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light English stemmer: both sides go through it, so consistency matters, not linguistics."""
    if len(word) <= 4 or not word.isalpha():
        return word
    word = _BRITISH.sub(r"iz\1", word)  # memorise / memorize
    if word.endswith(("ings", "ers")):
        word = word[:-1]  # plural first: "embeddings" → "embedding" → "embedd"
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]  # stopped → stopp → stop
    return word.removesuffix("e") if len(word) > 4 else word


# ----- concepts: glossary terms and everyday field words, in both languages ------------------
@lru_cache(maxsize=1)
def _concepts() -> tuple[re.Pattern[str], dict[str, str]]:
    from llmtutor.knowledge.catalog import load_catalog
    from llmtutor.knowledge.rag.bilingual_words import lexicon_entries

    ids: dict[str, str] = {}
    for term in load_catalog().glossary:
        for spelling in term.spellings():
            ids.setdefault(spelling.casefold(), term.en.casefold())
    for entry in lexicon_entries():
        for spelling in (entry.en, *entry.en_alt, entry.zh, *entry.zh_alt):
            ids.setdefault(spelling.casefold(), entry.en.casefold())
    spellings = [s for s in ids if len(s) >= 2]
    latin = trie_regex(s for s in spellings if not CJK.search(s))
    chinese = trie_regex(s for s in spellings if CJK.search(s))
    pattern = re.compile(rf"(?<![a-z0-9_-])(?:{latin})(?![a-z0-9_-])|{chinese}")
    return pattern, ids


def concepts(text: str) -> set[str]:
    """Language-free ids ("c:attention") of the glossary and lexicon spellings in text."""
    pattern, ids = _concepts()
    return {"c:" + ids[m.group()] for m in pattern.finditer(text.casefold())}


# ----- content grams and their weights -------------------------------------------------------
@lru_cache(maxsize=16384)
def grams(text: str) -> frozenset[str]:
    """Content grams: English stems, Chinese characters and character pairs, concept ids."""
    lowered = text.casefold()
    found = {stem(w) for w in _EN_WORD.findall(lowered) if w not in _EN_STOP and len(w) > 1}
    for part in {p for w in _EN_WORD.findall(lowered) if "-" in w for p in w.split("-")}:
        if part not in _EN_STOP and len(part) > 1:
            found.add(stem(part))  # "pre-trained" also matches "trained"
    for run in _CJK_RUN.findall(lowered):
        found.update(c for c in run if c not in _ZH_STOP)
        found.update(run[i : i + 2] for i in range(len(run) - 1))
    return frozenset(found | concepts(text))


@lru_cache(maxsize=1)
def _document_frequency() -> tuple[Counter[str], int]:
    """In how many sentences of the course notes each gram occurs (the idf corpus)."""
    from llmtutor.knowledge import NOTES_DIR
    from llmtutor.knowledge.catalog import load_catalog
    from llmtutor.knowledge.quiz.text import parse_notes

    catalog = load_catalog()
    counts: Counter[str] = Counter()
    n = 0
    for path in sorted(NOTES_DIR.glob("*.md")):
        for section in parse_notes(path, catalog):
            for sentence in split_sentences(section.text, section.language):
                counts.update(grams(sentence))
                n += 1
    return counts, n


def idf(gram: str) -> float:
    counts, n = _document_frequency()
    return math.log((n + 1) / (counts[gram] + 0.5))


# ----- the rubric ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    text: str
    language: Lang
    grams: frozenset[str]


@dataclass(frozen=True)
class Rubric:
    points: dict[str, tuple[Point, ...]]  # per language: the reference in that language, split
    clauses: dict[str, tuple[str, ...]]  # per language: the same reference in comma-level pieces
    clause_point: dict[str, int]  # each clause's point (its index in the clause's language)
    asked: frozenset[str]  # grams of the question (prompt and section heading)

    def points_for(self, language: str) -> tuple[Point, ...]:
        """The points in the answer's language, else the other language's (concepts still link)."""
        return self.points.get(language) or next((p for p in self.points.values() if p), ())


_CLAUSE_BREAK = re.compile(r"(?<=[,;:，；：、])\s*|\s+-\s+|\s+(?=(?:so|because|but|while|whereas|then)\s)")


def sentences(text: str) -> list[str]:
    language: Lang = "zh" if detect_language(text) == "zh" else "en"
    return [p.strip() for s in split_sentences(text, language) for p in re.split(r"[;；]", s) if p.strip()]


def clauses(text: str) -> list[str]:
    """Comma-level pieces of a text; short ones stay with their neighbour."""
    return [c for sentence in sentences(text) for c in _pieces(sentence)]


def _pieces(sentence: str) -> list[str]:
    pieces = [p.strip(" ,;:，；：、()（）.。") for p in _CLAUSE_BREAK.split(sentence)]
    merged: list[str] = []
    short = False  # the last piece is too short to stand alone: the next one joins it
    for piece in (p for p in pieces if p):
        relative = re.match(r"(?:which|that|who|whose)\s", piece, re.I)  # belongs to its noun
        if merged and (short or relative or len(grams(piece) - concepts(piece)) < 2):
            merged[-1] += " " + piece  # "(HBM)" or "HyDE" alone is no statement
        else:
            merged.append(piece)
        short = len(grams(merged[-1]) - concepts(merged[-1])) < 2
    return merged


@lru_cache(maxsize=1024)
def _rubric(answer: str, alt: str, language: str, prompt: str, heading: str) -> Rubric:
    other = "zh" if language == "en" else "en"
    texts = {lang: text for lang, text in ((language, answer), (other, alt)) if text.strip()}
    points: dict[str, tuple[Point, ...]] = {}
    pieces: dict[str, tuple[str, ...]] = {}
    clause_point: dict[str, int] = {}
    for lang, text in texts.items():
        split = sentences(text)
        points[lang] = tuple(Point(s, lang, grams(s)) for s in split)  # type: ignore[arg-type]
        pieces[lang] = tuple(c for s in split for c in _pieces(s))
        clause_point.update({c: i for i, s in enumerate(split) for c in _pieces(s)})
    return Rubric(
        points=points, clauses=pieces, clause_point=clause_point, asked=grams(prompt) | grams(heading)
    )


def rubric_for(question: Question) -> Rubric:
    heading = question.passage.heading.rsplit(">", 1)[-1]
    return _rubric(question.answer, question.reference_alt, question.language, question.prompt, heading)


# ----- coverage --------------------------------------------------------------------------------
def content_recall(point: Point, said: frozenset[str], asked: frozenset[str]) -> float:
    """Share of the point's content (idf-weighted) the answer uses; question words count less."""
    weight = {g: idf(g) * (ASKED_WEIGHT if g in asked else 1.0) for g in point.grams}
    total = sum(weight.values())
    return sum(w for g, w in weight.items() if g in said) / total if total else 0.0


def relevance(rubric: Rubric, answer: str) -> float:
    """Share of the answer's content (idf-weighted) that the reference or the question contains."""
    language = detect_language(answer)
    known = frozenset().union(*(p.grams for p in rubric.points_for(language))) | rubric.asked
    weight = {g: idf(g) for g in grams(answer)}
    total = sum(weight.values())
    return sum(w for g, w in weight.items() if g in known) / total if total else 0.0


_POINT_VECTORS: dict[str, np.ndarray] = {}  # reference points come back with their question
_POINT_LOCK = threading.Lock()


def _point_vectors(points: Sequence[Point], vectors: Vectors) -> np.ndarray | None:
    with _POINT_LOCK:
        missing = [p.text for p in points if p.text not in _POINT_VECTORS]
    if missing:
        found = vectors(missing)
        if found is None:
            return None
        with _POINT_LOCK:
            if len(_POINT_VECTORS) > 20_000:  # the bank has ~1,000 points: only a leak gets here
                _POINT_VECTORS.clear()
            _POINT_VECTORS.update(zip(missing, found, strict=True))
    with _POINT_LOCK:
        return np.stack([_POINT_VECTORS[p.text] for p in points])


def meaning_similarity(points: Sequence[Point], answer: str, vectors: Vectors) -> np.ndarray | None:
    """Best cosine between each point and any answer sentence or clause (None: no model)."""
    units = list(dict.fromkeys(sentences(answer) + clauses(answer)))
    known = _point_vectors(points, vectors) if units else None
    said = vectors(units) if known is not None else None
    if known is None or said is None:
        return None
    return (said @ known.T).max(axis=0)


def coverage(rubric: Rubric, answer: str, vectors: Vectors | None = None) -> list[tuple[Point, float]]:
    """Each point of the rubric (in the answer's language) with how much the answer covers it (0-1)."""
    language = detect_language(answer)
    points = rubric.points_for(language)
    said = grams(answer)
    scores = [min(1.0, content_recall(p, said, rubric.asked) / CONTENT_FULL[p.language]) for p in points]
    if vectors is not None and language == "en" and points and points[0].language == "en":
        similar = meaning_similarity(points, answer, vectors)
        if similar is not None:
            meaning = np.clip((similar - MEANING_FROM) / (MEANING_FULL - MEANING_FROM), 0.0, 1.0)
            scores = [max(s, float(m)) for s, m in zip(scores, meaning, strict=True)]
    return list(zip(points, scores, strict=True))
