"""Course modules for the learner: the ones nearest to a question, and the module a course-notes
file belongs to (so a citation reads "Supervised Fine-Tuning › LoRA …", not a file path).

Both read the catalog (knowledge/course/catalog.yaml) only.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from llmtutor.agents.explain.similarity import Embed, Spelled, concepts, covered, embed_rows
from llmtutor.text import detect_language

if TYPE_CHECKING:
    from llmtutor.knowledge.catalog import Module

# knowledge/course/notes/<track>-<order>-<slug>.md (see the notes' README)
_NOTE = re.compile(r"(?:^|[/\\])(fundamentals|scientist|engineer)-(\d+)-[\w.-]+\.md$")
LEXICAL_WEIGHT = 0.3  # per covered concept, on top of the cosine (see _ranked)
MIN_COSINE = 0.25  # below this (and with no shared concept) a question relates to no module


@lru_cache(maxsize=1)
def _catalog() -> Any:
    from llmtutor.knowledge.catalog import load_catalog

    return load_catalog()


def course_module(source: str) -> Module | None:
    """The catalog module a course-notes file is about, or None for other files."""
    match = _NOTE.search(str(source))
    if not match:
        return None
    track, order = match.group(1), int(match.group(2))
    return next((m for m in _catalog().modules() if m.track == track and m.order == order), None)


def track_title(module: Module, language: str) -> str:
    track = next(t for t in _catalog().tracks if t.id == module.track)
    return track.title_zh if language == "zh" else track.title


def course_url() -> str | None:
    return _catalog().course.url


def source_name(source: str) -> str:
    """A file outside the course notes, by its name only (the learner's own path is no citation)."""
    return PurePosixPath(str(source).replace("\\", "/")).name or str(source)


def _module_texts(module: Module) -> tuple[str, str]:
    glossary = [t for t in _catalog().glossary if module.id in t.modules]
    en = f"{module.title}. {module.summary} Topics: {', '.join(module.topics)}. " + ", ".join(
        t.en for t in glossary
    )
    zh = f"{module.title_zh}。{module.summary_zh} 主题：{'、'.join(module.topics_zh)}。" + "、".join(
        t.zh for t in glossary
    )
    return en, zh


_MODULE_VECTORS: dict[Any, np.ndarray] = {}


@lru_cache(maxsize=1)
def _titles() -> list[Spelled]:
    return [Spelled.of(" ".join((m.title, m.title_zh, *m.aliases))) for m in _catalog().modules()]


@lru_cache(maxsize=1)
def _spelled() -> list[Spelled]:
    return [Spelled.of(" ".join(_module_texts(m))) for m in _catalog().modules()]


def nearest_modules(question: str, k: int = 2, embed: Embed | None = None) -> list[Module]:
    """The `k` modules nearest to the question; [] when nothing in the catalog relates to it."""
    modules, matched = _ranked(question, embed)
    return modules[:k] if matched else []


def starting_modules() -> list[Module]:
    """Where the two main tracks start (LLM Scientist, LLM Engineer): suggestions with no match."""
    tracks = {t.id: t for t in _catalog().tracks}
    return [min(tracks[track].modules, key=lambda m: m.order) for track in ("scientist", "engineer")]


def _ranked(question: str, embed: Embed | None) -> tuple[list[Module], bool]:
    """Modules by score, and whether anything matched at all.

    Score = LEXICAL_WEIGHT per question concept (glossary terms in both languages, other words)
    the module's description spells out, IDF-weighted and doubled in its title, plus for English
    questions the best cosine between the question and the module's English or Chinese
    description (title, summary, topics, glossary terms). Measured on 40 hand-labelled course
    questions, top-2 hits: English 20/21 with both (19/21 cosine alone, 20/21 concepts alone);
    Chinese 18/19 with concepts alone, 6/19 with the cosine: MiniLM embeds Chinese poorly, so
    Chinese questions go by concepts only.
    """
    modules = _catalog().modules()
    found = concepts(question)
    hits = np.array([[covered(c, spelled) for c in found] for spelled in _spelled()], dtype=np.float32)
    hits = hits.reshape(len(modules), len(found))
    titled = np.array([[covered(c, spelled) for c in found] for spelled in _titles()], dtype=np.float32)
    hits = hits + titled.reshape(len(modules), len(found))  # named in the title: counts twice
    # A concept most modules mention (量化, "model") says less about which one is meant: IDF.
    idf = np.log1p(len(modules) / np.maximum((hits > 0).sum(axis=0), 1.0)) / np.log1p(len(modules))
    lexical = hits @ (np.array([c.weight for c in found], dtype=np.float32) * idf)
    scores = LEXICAL_WEIGHT * lexical
    matched = bool(lexical.max(initial=0.0) > 0)
    if detect_language(question) == "en":
        texts = [text for m in modules for text in _module_texts(m)]
        similar = _module_cosines(embed, question, texts)
        if similar is not None:
            best = similar.reshape(len(modules), 2).max(axis=1)
            scores = scores + best
            matched = matched or bool(best.max() >= MIN_COSINE)
    order = sorted(range(len(modules)), key=lambda i: (-scores[i], i))
    return [modules[i] for i in order], matched


def _module_cosines(embed: Embed | None, question: str, texts: list[str]) -> np.ndarray | None:
    if embed is None:
        return None
    owner = getattr(embed, "__self__", embed)
    key = getattr(owner, "key", None) or id(owner)  # Embedder.key: its model, shared by instances
    if key not in _MODULE_VECTORS:  # the catalog's texts are embedded once per process and model
        vectors = embed_rows(embed, texts)
        if vectors is None:
            return None
        _MODULE_VECTORS[key] = vectors
    query = embed_rows(embed, [question])
    return None if query is None else _MODULE_VECTORS[key] @ query[0]
