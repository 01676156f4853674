"""Text helpers for quizzes: the notes' key-idea sections, sentences, term matching, keywords.

Shared by question generation (quiz_bank.py) and grading (quiz_grading.py). No LLM calls.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml

from llmtutor.knowledge.catalog import Catalog, GlossaryTerm, _norm
from llmtutor.text import CJK

Lang = Literal["en", "zh"]
_EN_SENTENCE = re.compile(r"(?<=[.!?])(?<!e\.g\.)(?<!i\.e\.)(?<!\bvs\.)(?<!etc\.)\s+(?=[A-Z0-9\"“(])")
# A Chinese sentence ends at 。！？； plus any closing quotes or brackets right after it.
_ZH_SENTENCE = re.compile(r"[^。！？；]+(?:[。！？；]+[”’\"」』）)]*|$)")
# Technical tokens worth a rubric point in any language: FP32, GGUF, Q4_K_M, vLLM, 4-bit.
TECH = re.compile(
    r"(?<![A-Za-z0-9_.-])(?:[A-Z][A-Z0-9]+(?:[_.-][A-Za-z0-9]+)*|[a-z]+[A-Z][A-Za-z0-9]*|\d+-bit)(?![A-Za-z0-9_])"
)
GENERIC_TECH = frozenset(
    {"LLM", "LLMS", "API", "APIS", "GPU", "GPUS", "CPU", "CPUS", "GB", "MB", "TB", "USD"}
)
# ASCII word edges (\b and \w treat Chinese characters as letters); "LLM.int8()" holds no "int8".
LEFT, RIGHT = r"(?<![A-Za-z0-9_.-])", r"(?![A-Za-z0-9_-]|\.[A-Za-z0-9])"
_EN_WORD = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z][A-Za-z-]{3,}[A-Za-z](?![A-Za-z0-9_-])")


@dataclass(frozen=True)
class NoteSection:
    module_id: str
    source: str  # the notes file name, as course search cites it
    language: Lang
    index: int  # position among the module's key ideas: pairs the English and Chinese halves
    heading: str  # the ### title
    path: str  # "Title > Key ideas > heading": the citation label
    text: str


def parse_notes(path: Path, catalog: Catalog) -> list[NoteSection]:
    """The key-idea sections of one notes file (front matter names the module; English half, then Chinese)."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n") or (close := text.find("\n---", 4)) == -1:
        return []  # README.md and other files without front matter are not module notes
    meta = yaml.safe_load(text[4:close]) or {}
    module = next(
        (m for m in catalog.modules() if m.track == meta.get("track") and m.order == meta.get("module")), None
    )
    if module is None:
        return []
    sections: list[NoteSection] = []
    title, h2, h3, body, h1_count = "", "", "", [], 0

    def flush() -> None:
        if h3 and h2 in ("Key ideas", "关键概念") and "".join(body).strip():
            lang: Lang = "en" if h1_count <= 1 else "zh"
            index = sum(1 for s in sections if s.language == lang)
            joined = " ".join(line.strip() for line in body if line.strip())
            sections.append(
                NoteSection(module.id, path.name, lang, index, h3, f"{title} > {h2} > {h3}", joined)
            )

    for line in text[text.find("\n", close + 4) + 1 :].splitlines():
        if line.startswith("#"):
            flush()
            level, heading = len(line) - len(line.lstrip("#")), line.lstrip("#").strip()
            body, h3 = [], ""
            if level == 1:
                h1_count, title, h2 = h1_count + 1, heading.removesuffix("（中文）"), ""
            elif level == 2:
                h2 = heading
            elif level == 3:
                h3 = heading
        else:
            body.append(line)
    flush()
    return sections


def split_sentences(text: str, language: Lang) -> list[str]:
    if language == "zh":
        return [s.strip() for s in _ZH_SENTENCE.findall(text) if s.strip()]
    return [s.strip() for s in _EN_SENTENCE.split(text) if s.strip()]


def bounded(spelling: str) -> str:
    return re.escape(spelling) if CJK.search(spelling) else LEFT + re.escape(spelling) + RIGHT


@lru_cache(maxsize=8192)
def spelling_pattern(spelling: str, plurals: bool = False) -> re.Pattern[str]:
    """Case-insensitive pattern for one spelling; `plurals` also accepts "-s"/"-es" on Latin words."""
    if plurals and not CJK.search(spelling):
        return re.compile(LEFT + re.escape(spelling) + r"(?:e?s)?" + RIGHT, re.I)
    return re.compile(bounded(spelling), re.I)


def mentions(text: str, spellings: Iterable[str], plurals: bool = False) -> bool:
    return any(spelling_pattern(s, plurals).search(text) for s in spellings)


def trie_regex(words: Iterable[str]) -> str:
    """A regex matching any of words, shaped as a trie (a plain alternation of ~500 spellings is
    ~30x slower); greedy, so the longest word wins and backtracks to a shorter one at a bad edge."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict) -> str:
        branches = [re.escape(char) + render(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return render(trie) or "(?!)"


@lru_cache(maxsize=4096)
def words(text: str, language: Lang) -> tuple[str, ...]:
    """Content words: English words of 5+ letters, or Chinese jieba words of 2+ characters; no stopwords."""
    from llmtutor.knowledge.rag.lexical import STOPWORDS, jieba_module

    if language == "en":
        found = [w.lower() for w in _EN_WORD.findall(text)]
    else:
        found = [w for w in jieba_module().lcut(text, HMM=False) if len(w) >= 2 and CJK.search(w)]
    return tuple(w for w in found if w not in STOPWORDS)


def keywords(
    text: str, section: str, corpus: Sequence[str], language: Lang, exclude: str, limit: int
) -> list[str]:
    """Words of text that recur in its section and are rare in the corpus (tf-idf), none in `exclude`.

    Recurring (2+ times in the section) keeps central words and drops one-off names and fillers."""
    docs = [set(words(doc, language)) for doc in corpus]
    counts = Counter(words(section, language))
    excluded = exclude.casefold()

    def weight(word: str) -> float:
        df = sum(word in doc for doc in docs)
        return counts[word] * math.log((1 + len(docs)) / (1 + df))

    candidates = {w for w in words(text, language) if counts[w] >= 2 and w not in excluded}
    return sorted(candidates, key=lambda w: (-weight(w), w))[:limit]


class TermMatcher:
    """Finds glossary spellings in text, longest first, in English and Chinese.

    One trie-shaped regex for all ~500 spellings (a pattern per spelling is ~30x slower);
    spellings are unique across terms (the catalog checks), so each maps back to its term."""

    def __init__(self, glossary: Sequence[GlossaryTerm]):
        spellings = {s.casefold() for t in glossary for s in t.spellings() if len(s) >= 2}
        latin = trie_regex(s for s in spellings if not CJK.search(s))
        chinese = trie_regex(s for s in spellings if CJK.search(s))
        self._pattern = re.compile(f"{LEFT}(?:{latin}){RIGHT}|{chinese}", re.I)
        self._by_spelling = {_norm(s): t for t in glossary for s in t.spellings()}

    def matches(self, text: str) -> list[tuple[int, int, str, GlossaryTerm]]:
        """(start, end, text as written, term) of each non-overlapping mention, in text order."""
        return [
            (m.start(), m.end(), m.group(), self._by_spelling[_norm(m.group())])
            for m in self._pattern.finditer(text)
        ]
