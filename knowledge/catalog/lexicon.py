"""Catalog values as they appear in questions: the slot vocabulary of the course-DB parser.

Every value a question can name - a module (titles and aliases in both languages, its id or
"2.7" code), a track, a resource kind, a notebook category, an author, a notebook, a
glossary term, a resource title - is compiled from the catalog into a pattern. English
surfaces match on ASCII word edges (so "RAG" is not found inside "average"); Chinese ones
as substrings, with spaces optional between scripts ("运行LLMs" = "运行 LLMs").
`Lexicon.mentions(text)` returns the longest non-overlapping mentions; one span may carry
several readings (Quantization: a module, a notebook category and a glossary term), and
the parser picks by context. No LLM, no heavy imports.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from llmtutor.knowledge.catalog import Catalog, load_catalog
from llmtutor.text import CJK

_PIECES = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+|[^\s\u3400-\u9fff\uf900-\ufaff\-_]+")

# Resource kinds as learners say them. "course" and "model" are left out on purpose: "the
# course" and "models" are everyday words in these questions, not the resource kind.
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "article": ("article", "articles", "blog post", "blog posts", "blogs", "blog", "文章", "博客", "博文"),
    "book": ("book", "books", "ebook", "书籍", "书", "電子書", "图书"),
    "course": ("courses", "online course", "online courses", "网课", "在线课程", "课程资源"),
    "dataset": ("dataset", "datasets", "数据集"),
    "documentation": ("documentation", "docs", "doc pages", "官方文档", "文档"),
    "leaderboard": ("leaderboard", "leaderboards", "排行榜", "榜单"),
    "paper": ("paper", "papers", "论文"),
    "repo": ("repo", "repos", "repository", "repositories", "github repos", "代码仓库", "仓库", "代码库"),
    "tool": ("tool", "工具类资源"),
    "video": ("video", "videos", "youtube", "视频", "影片"),
    "website": ("website", "websites", "site", "sites", "网站"),
}
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "tools": ("tools", "tool", "tooling", "工具"),
    "fine-tuning": ("fine-tuning", "fine tuning", "finetuning", "fine-tune", "微调"),
    "quantization": ("quantization", "quantisation", "quantizing", "量化"),
    "other": ("other", "others", "miscellaneous", "其他", "其它"),
}
TRACK_WORDS: dict[str, tuple[str, ...]] = {
    "fundamentals": ("fundamentals", "fundamental", "basics", "基础部分", "基础路线", "基础篇", "基础"),
    "scientist": ("scientist", "scientists", "科学家"),
    "engineer": ("engineer", "engineers", "engineering", "工程师"),
}
_NOT_AUTHOR_TOKENS = {"python", "academy", "face", "wiki", "al.", "ai", "blog"}


@dataclass(frozen=True)
class Mention:
    slot: str  # module | track | kind | category | author | notebook | term | resource
    value: str  # canonical: module id, track id, kind, category, author, notebook name, term (en), title
    start: int
    end: int
    text: str


def normalize(text: str) -> str:
    """NFKC (full-width letters and punctuation to ASCII) with runs of spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def surface_pattern(surface: str, case_sensitive: bool = False) -> re.Pattern[str] | None:
    """A regex for one surface form: flexible spaces/hyphens, ASCII word edges."""
    surface = normalize(surface).strip()
    pieces = _PIECES.findall(surface)
    if not pieces:
        return None
    body = r"[\s\-_]*".join(re.escape(p) for p in pieces)
    head = r"(?<![A-Za-z0-9])" if re.match(r"[A-Za-z0-9]", surface) else ""
    tail = r"(?![A-Za-z0-9])" if re.search(r"[A-Za-z0-9]$", surface) else ""
    return re.compile(head + body + tail, 0 if case_sensitive else re.IGNORECASE)


class Lexicon:
    def __init__(self, entries: Iterable[tuple[str, str, str, bool]]):
        """entries: (slot, canonical value, surface, case_sensitive)."""
        self._patterns: list[tuple[str, str, re.Pattern[str]]] = []
        seen: set[tuple[str, str, str]] = set()
        for slot, value, surface, case_sensitive in entries:
            key = (slot, value, surface if case_sensitive else surface.casefold())
            pattern = surface_pattern(surface, case_sensitive) if key not in seen else None
            if pattern is not None:
                seen.add(key)
                self._patterns.append((slot, value, pattern))

    def mentions(self, text: str, slots: Iterable[str] | None = None) -> list[Mention]:
        """Longest non-overlapping mentions in `text`, in reading order (ties keep every reading)."""
        wanted = set(slots) if slots is not None else None
        found = [
            Mention(slot, value, m.start(), m.end(), m.group())
            for slot, value, pattern in self._patterns
            if wanted is None or slot in wanted
            for m in pattern.finditer(text)
        ]
        found.sort(key=lambda m: (-(m.end - m.start), m.start))
        kept: list[Mention] = []
        for mention in found:
            clash = [k for k in kept if k.start < mention.end and mention.start < k.end]
            same_span = all(k.start == mention.start and k.end == mention.end for k in clash)
            duplicate = any(
                (k.slot, k.value, k.start) == (mention.slot, mention.value, mention.start) for k in kept
            )
            if (not clash or same_span) and not duplicate:  # a second reading of the same span is kept
                kept.append(mention)
        return sorted(kept, key=lambda m: (m.start, m.slot))


def build_lexicon(catalog: Catalog) -> Lexicon:
    entries: list[tuple[str, str, str, bool]] = []
    orders = {t.id: t.order for t in catalog.tracks}
    for track in catalog.tracks:
        for surface in (track.title, track.title_zh, *track.aliases, *TRACK_WORDS.get(track.id, ())):
            entries.append(("track", track.id, surface, False))
        for mod in track.modules:
            names = (mod.title, mod.title_zh, *mod.aliases, mod.id, mod.id.split(".", 1)[1].replace("-", " "))
            entries += [("module", mod.id, n, _short_abbreviation(n)) for n in names]
            entries.append(("module", mod.id, f"module {orders[track.id]}.{mod.order}", False))
            entries.append(("module", mod.id, f"模块 {orders[track.id]}.{mod.order}", False))
    for kind, words in KIND_WORDS.items():
        entries += [("kind", kind, w, False) for w in words]
    for category, words in CATEGORY_WORDS.items():
        entries += [("category", category, w, False) for w in words]
    entries += [("author", author, surface, cs) for author, surface, cs in _author_surfaces(catalog)]
    for nb in catalog.notebooks:
        entries += [
            ("notebook", nb.name, n, False) for n in (nb.name, *nb.aliases) if len(n) >= 4 or CJK.search(n)
        ]
    for term in catalog.glossary:
        for spelling in term.spellings():
            if len(spelling) >= 2:
                entries.append(("term", term.en, spelling, _short_abbreviation(spelling)))
    for _mod, res in catalog.resources():
        for surface in {res.title, res.title.split(" - ", 1)[-1]}:
            if len(surface) >= 6:  # short titles ("nanoGPT") only as written, so words stay words
                entries.append(("resource", res.title, surface, len(surface) < 10))
    return Lexicon(entries)


def _short_abbreviation(surface: str) -> bool:
    """'SFT', 'MoE', 'MLE': matched case-sensitively, so 'sft' in prose or 'moe' stay words."""
    return len(surface) <= 4 and surface.isascii() and any(c.isupper() for c in surface)


def _author_surfaces(catalog: Catalog) -> Iterable[tuple[str, str, bool]]:
    authors = sorted({r.author for _, r in catalog.resources() if r.author})
    last_names: dict[str, list[str]] = {}
    for author in authors:
        yield author, author, False
        tokens = author.split()
        if len(tokens) >= 2 and len(tokens[-1]) >= 4 and tokens[-1].lower() not in _NOT_AUTHOR_TOKENS:
            last_names.setdefault(tokens[-1], []).append(author)
    for last, owners in last_names.items():
        if len(owners) == 1:  # "Karpathy" alone is Andrej Karpathy; a shared surname is not a name
            yield owners[0], last, True


_CACHE: list[tuple[Catalog, Lexicon]] = []  # (catalog, its lexicon); identity-keyed, newest last


def lexicon(catalog: Catalog | None = None) -> Lexicon:
    """The lexicon of `catalog` (default: the bundled one), built once per catalog object."""
    catalog = catalog or load_catalog()
    for known, built in _CACHE:
        if known is catalog:
            return built
    built = build_lexicon(catalog)
    _CACHE[:] = [*_CACHE[-3:], (catalog, built)]
    return built
