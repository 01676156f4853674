"""What a quiz topic means: module ids (and glossary terms to focus on) for a name in English or
Chinese, and finding a topic inside a request ("出一道关于 RAG 的选择题" → "RAG").

Accepted: "all"/"全部" (whole course), a track ("LLM Engineer", "scientist"), a module (id,
"2.7", English or Chinese title, alias), a glossary term (any spelling: "LoRA", "低秩适配"), or
a module topic ("Scaling laws"). Anything else raises `UnknownTopicError` listing close names.
"""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ConfigDict

from llmtutor.errors import LLMTutorError
from llmtutor.knowledge.catalog import Catalog, _norm
from llmtutor.knowledge.quiz.text import TermMatcher, spelling_pattern

_ALL_WORDS = frozenset(
    _norm(w)
    for w in (
        "all",
        "everything",
        "course",
        "the course",
        "whole course",
        "全部",
        "所有",
        "整个课程",
        "全部课程",
        "课程",
    )
)
_TOO_GENERIC = frozenset(_norm(w) for w in ("LLM", "LLMs", "model", "models", "模型", "大模型"))


class UnknownTopicError(LLMTutorError):
    """The quiz topic matches no module, track or glossary term."""


class Topic(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    label_zh: str
    module_ids: list[str]
    focus: list[str] = []  # glossary terms asked for: their questions come first


def resolve_topic(catalog: Catalog, matcher: TermMatcher, topic: str | None) -> Topic:
    """Module ids (and glossary focus) for a topic; UnknownTopicError listing close names otherwise."""
    text = (topic or "").strip()
    query = _norm(text)
    modules = catalog.modules()
    if not query or query in _ALL_WORDS:
        return Topic(label="the whole course", label_zh="整个课程", module_ids=[m.id for m in modules])
    for track in catalog.tracks:
        if query in {_norm(n) for n in (track.id, track.title, track.title_zh, *track.aliases)}:
            return Topic(label=track.title, label_zh=track.title_zh, module_ids=[m.id for m in track.modules])
    orders = {t.id: t.order for t in catalog.tracks}
    for mod in modules:
        names = (mod.id, f"{orders[mod.track]}.{mod.order}", mod.title, mod.title_zh, *mod.aliases)
        if query in {_norm(n) for n in names}:
            return Topic(label=mod.title, label_zh=mod.title_zh, module_ids=[mod.id])
    hits = [h for h in matcher.matches(text) if len(h[2]) >= 3 or h[3].zh == h[2]]
    term = catalog.term(text) or (max(hits, key=lambda h: len(h[2]))[3] if hits else None)
    if term is not None:  # "LoRA fine-tuning" → the longest term named: fine-tuning
        return Topic(label=term.en, label_zh=term.zh, module_ids=list(term.modules), focus=[term.en])
    for mod in modules:
        if query in {_norm(t) for t in (*mod.topics, *mod.topics_zh)}:
            return Topic(label=mod.title, label_zh=mod.title_zh, module_ids=[mod.id])
    if (mod := catalog.find_module(text)) is not None:
        return Topic(label=mod.title, label_zh=mod.title_zh, module_ids=[mod.id])
    raise UnknownTopicError(
        f"no course module or glossary term matches the quiz topic {text!r}",
        f"try one of: {', '.join(close_topics(catalog, text))}",
    )


def close_topics(catalog: Catalog, text: str, limit: int = 6) -> list[str]:
    """Module titles and glossary terms spelled like text (or a spread of module titles)."""
    names = [n for m in catalog.modules() for n in (m.title, m.title_zh)]
    names += [n for t in catalog.glossary for n in (t.en, t.zh, *t.en_alt)]
    by_norm = {_norm(n): n for n in names}
    close = [by_norm[c] for c in difflib.get_close_matches(_norm(text), list(by_norm), n=limit, cutoff=0.5)]
    return close or [m.title for m in catalog.modules()[::3]][:limit]


def find_topic_in(catalog: Catalog, text: str) -> str | None:
    """The longest module/track name, module topic or glossary spelling written in text, as written.

    Ties go to module and track names, then module topics, then glossary terms (deterministic)."""
    ranked: dict[str, int] = {}
    for rank, names in enumerate(
        (
            [n for t in catalog.tracks for n in (t.title, t.title_zh, *t.aliases)]
            + [n for m in catalog.modules() for n in (m.id, m.title, m.title_zh, *m.aliases)],
            [n for m in catalog.modules() for n in (*m.topics, *m.topics_zh)],
            [s for t in catalog.glossary for s in t.spellings()],
        )
    ):
        for name in names:
            ranked.setdefault(name, rank)
    usable = (n for n in ranked if len(n) >= 2 and _norm(n) not in _TOO_GENERIC)
    for name in sorted(usable, key=lambda n: (-len(n), ranked[n], n)):
        if match := spelling_pattern(name).search(text):
            return match.group()
    return None
