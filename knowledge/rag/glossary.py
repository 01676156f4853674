"""Cross-lingual query expansion from the bilingual course glossary.

The course notes mix Chinese prose with English terms, and learners ask in
either language. The bundled MiniLM embeds only English well, so an English
question about 灾难性遗忘 finds nothing by vectors alone. Expansion adds,
for every glossary term found in the question, its other spellings (English
↔ Simplified/Traditional Chinese, abbreviations) as lower-weighted BM25
terms.

The glossary source is pluggable: any callable returning entries with `en`,
`zh` and optional `en_alt`/`zh_alt` (the catalog's `GlossaryTerm` fits), or
a plain {term: translation} mapping. The default reads the course catalog
(`llmtutor.knowledge.catalog`) and falls back to a small built-in list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.knowledge.rag.lexical import stem
from llmtutor.text import has_cjk

_WORD_RE = re.compile(r"[0-9a-z\u00c0-\u024f]+")
_MAX_WORDS = 6


class GlossaryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    en: str
    zh: str
    en_alt: tuple[str, ...] = ()
    zh_alt: tuple[str, ...] = ()
    kind: Literal["term", "word"] = "term"  # a course term, or an everyday word of the field

    def spellings(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(s.strip() for s in (self.en, *self.en_alt, self.zh, *self.zh_alt) if s.strip())
        )


GlossarySource = Callable[[], Iterable[Any]]

# Used when the course catalog cannot be loaded (and by tests): a few core terms.
FALLBACK_GLOSSARY: tuple[GlossaryEntry, ...] = tuple(
    GlossaryEntry(en=en, zh=zh, en_alt=tuple(ea), zh_alt=tuple(za))
    for en, zh, ea, za in (
        ("attention mechanism", "注意力机制", ["attention"], ["注意力機制"]),
        ("self-attention", "自注意力", [], ["自注意力機制"]),
        ("grouped-query attention", "分组查询注意力", ["GQA"], ["分組查詢注意力"]),
        ("catastrophic forgetting", "灾难性遗忘", [], ["災難性遺忘"]),
        ("fine-tuning", "微调", ["fine-tune", "finetuning"], ["微調"]),
        ("low-rank adaptation", "低秩适配", ["LoRA"], ["低秩適配", "低秩自适应"]),
        ("quantization", "量化", ["quantize", "quantizing"], []),
        ("retrieval-augmented generation", "检索增强生成", ["RAG"], ["檢索增強生成"]),
        ("vector database", "向量数据库", ["vector store"], ["向量資料庫", "向量存储"]),
        ("embedding", "嵌入", ["embeddings"], ["词嵌入"]),
        ("tokenizer", "分词器", ["tokenization"], ["分詞器"]),
        ("key-value cache", "KV 缓存", ["KV cache"], ["KV快取", "kv cache"]),
        ("inference", "推理", [], []),
        ("deployment", "部署", ["deploy"], []),
        ("evaluation", "评估", ["evaluate"], ["評估"]),
        ("instruction dataset", "指令数据集", [], ["指令資料集"]),
        ("regular expression", "正则表达式", ["regex"], ["正規表示式"]),
        ("preference alignment", "偏好对齐", ["RLHF"], ["偏好對齊"]),
    )
)


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def as_entries(items: Iterable[Any] | Mapping[str, Any]) -> list[GlossaryEntry]:
    """Normalize catalog terms, dicts or a {term: translation} map to `GlossaryEntry`s."""
    if isinstance(items, Mapping):
        pairs = [(k, v) for k, v in items.items() if isinstance(v, str)]
        return [GlossaryEntry(en=v, zh=k) if has_cjk(k) else GlossaryEntry(en=k, zh=v) for k, v in pairs]
    entries = []
    for item in items:
        if isinstance(item, GlossaryEntry):
            entries.append(item)
            continue
        en, zh = _field(item, "en"), _field(item, "zh")
        if en and zh:
            entries.append(
                GlossaryEntry(
                    en=str(en),
                    zh=str(zh),
                    en_alt=_as_tuple(_field(item, "en_alt")),
                    zh_alt=_as_tuple(_field(item, "zh_alt")),
                )
            )
    return entries


def catalog_glossary() -> list[GlossaryEntry]:
    """The course catalog's glossary, or the built-in fallback when the catalog is unavailable."""
    try:
        from llmtutor.knowledge.catalog import load_catalog

        entries = as_entries(load_catalog().glossary)
    except Exception:  # catalog missing or invalid: retrieval still works, with fewer terms
        return list(FALLBACK_GLOSSARY)
    return entries or list(FALLBACK_GLOSSARY)


def default_glossary() -> list[GlossaryEntry]:
    """The course glossary's terms, then the general bilingual word list (knowledge/bilingual_words.py)."""
    from llmtutor.knowledge.rag.bilingual_words import lexicon_entries

    return [*catalog_glossary(), *lexicon_entries()]


def _words(text: str) -> tuple[str, ...]:
    return tuple(stem(w) for w in _WORD_RE.findall(text.lower()))


class Expansion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matched: str  # the spelling found in the query
    kind: Literal["term", "word"] = "term"
    alternatives: list[str] = Field(description="The term's other spellings, to add to the query.")


class QueryExpander:
    """Finds glossary terms in a query (longest match first) and lists their other spellings."""

    def __init__(self, entries: Iterable[GlossaryEntry]):
        self.entries = list(entries)
        self._latin: dict[tuple[str, ...], list[int]] = {}
        self._cjk: list[tuple[str, int]] = []
        for index, entry in enumerate(self.entries):
            for spelling in entry.spellings():
                if has_cjk(spelling):
                    key = re.sub(r"\s+", "", spelling.lower())
                    if len(key) >= 2:
                        self._cjk.append((key, index))
                else:
                    words = _words(spelling)
                    # One-letter or one-digit "terms" would fire on any question.
                    if words and len(words) <= _MAX_WORDS and len("".join(words)) >= 2:
                        self._latin.setdefault(words, []).append(index)
        self._cjk.sort(key=lambda item: -len(item[0]))

    def expand(self, query: str) -> list[Expansion]:
        found: dict[int, str] = {}
        # Chinese spellings: substring matches, longest first, non-overlapping.
        compact = re.sub(r"\s+", "", query.lower())
        taken = [False] * len(compact)
        for key, index in self._cjk:
            start = compact.find(key)
            while start != -1:
                if not any(taken[start : start + len(key)]):
                    taken[start : start + len(key)] = [True] * len(key)
                    found.setdefault(index, key)
                start = compact.find(key, start + 1)
        # English spellings: word n-grams, longest first, non-overlapping.
        words = _words(query)
        used = [False] * len(words)
        for size in range(min(_MAX_WORDS, len(words)), 0, -1):
            for begin in range(len(words) - size + 1):
                gram = words[begin : begin + size]
                if gram in self._latin and not any(used[begin : begin + size]):
                    used[begin : begin + size] = [True] * size
                    for index in self._latin[gram]:
                        found.setdefault(index, " ".join(gram))
        expansions = []
        for index, matched in found.items():
            others = [s for s in self.entries[index].spellings() if _norm(s) != _norm(matched)]
            if others:
                expansions.append(
                    Expansion(matched=matched, alternatives=others, kind=self.entries[index].kind)
                )
        return expansions


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text.lower()) if has_cjk(text) else " ".join(_words(text))
