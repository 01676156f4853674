"""Splitting documents into retrieval chunks along headings and sentences.

A chunk is a run of whole sentences (Chinese 。！？； or English . ! ? before
a space) inside one section, sized between `min_chars` and `max_chars`
(target `target_chars`). Consecutive chunks of a section share their last
sentence(s), up to `overlap_chars`, so an answer that straddles a boundary
is still found whole. Tiny sections are merged with the next one instead
of producing 20-character chunks. The only cut inside a sentence is a
"sentence" longer than `max_chars` (a table row or a run-on line with no
punctuation), which is split at a comma or space.

Offsets (`start`, `end`) index `Document.text`, the extracted text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmtutor.knowledge.rag.ingest import Document
from llmtutor.text import detect_language

_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# Numbered headings of plain-text notes: "1.2 Attention", "一、基础", "壹. LLM基础", "第三章 ...".
_PLAIN_HEADING = re.compile(
    r"^(?:(?P<arabic>\d{1,2}(?:\.\d{1,2}){0,3})(?:\.\s*|\s+)|(?P<upper>[壹贰叁肆伍陆柒捌玖拾]+)[.、．]"
    r"|(?P<lower>[一二三四五六七八九十]{1,3})[.、．]|(?P<chapter>第[一二三四五六七八九十\d]+[章节部分篇]))"
    r"\s*(?P<title>\S.{0,60})$"
)
_SENTENCE_END = re.compile(
    r"[。！？；!?;]+[”’\"'）)】」』]*"  # Chinese and full-width ends (no space needed after them)
    r"|…+|\.{3}"
    r"|(?<![A-Z])(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bvs)(?<!\bal)(?<!\bFig)\.[”’\"')\]]*(?=\s|$)"
)
_SOFT_BREAK = re.compile(r"[，,、：:]\s*|\s+")


class ChunkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    target_chars: int = Field(500, ge=50, description="Preferred chunk size in characters.")
    min_chars: int = Field(200, ge=0, description="Smaller chunks are merged with what follows.")
    max_chars: int = Field(800, ge=80, description="Hard upper bound (except one over-long sentence split).")
    overlap_chars: int = Field(
        100, ge=0, description="Trailing sentences repeated at the next chunk's start."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ChunkConfig:
        if not self.min_chars <= self.target_chars <= self.max_chars:
            raise ValueError("need min_chars <= target_chars <= max_chars")
        if self.overlap_chars >= self.target_chars:
            raise ValueError("overlap_chars must be smaller than target_chars")
        return self


class Chunk(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunk_id: str
    path: str
    source: str
    heading: str  # heading path, "Part > Section > Subsection"
    language: str  # "zh" or "en"
    start: int
    end: int
    text: str

    @property
    def search_text(self) -> str:
        """What is embedded and tokenized: the heading path gives a bare paragraph its topic."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


@dataclass
class _Section:
    path: tuple[str, ...]
    start: int
    end: int


def split_sections(text: str, fmt: str = "markdown") -> list[_Section]:
    """Sections with their heading paths. The heading line belongs to its section.

    Markdown `#` headings when the text has any; otherwise numbered lines
    ("1.2 ...", "一、...") count as headings, as in notes pasted from web pages.
    """
    fmt = "markdown" if re.search(r"^#{1,6}[ \t]+\S", text, re.M) else "text"
    sections: list[_Section] = []
    stack: list[tuple[int, str]] = []
    in_fence = False
    offset = 0
    current = _Section((), 0, 0)
    if text.startswith("---\n"):  # YAML front matter: metadata, not content
        close = text.find("\n---", 4)
        if close != -1:
            offset = text.find("\n", close + 4) + 1 or len(text)
            current = _Section((), offset, offset)
    previous = ""  # the line before: a real heading follows a blank line or another heading
    for line in text[offset:].splitlines(keepends=True):
        stripped = line.strip()
        if _FENCE.match(line):
            in_fence = not in_fence
        # "# comment" lines of code pasted without fences follow code, not a blank line.
        after_break = not previous or _ATX.match(previous) is not None or fmt == "text"
        level_title = None if in_fence or not after_break else _heading_of(stripped, fmt)
        previous = stripped
        if level_title is not None:
            level, title = level_title
            current.end = offset
            if current.end > current.start:
                sections.append(current)
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            current = _Section(tuple(t for _, t in stack), offset, offset)
        offset += len(line)
    current.end = len(text)
    if current.end > current.start:
        sections.append(current)
    return sections


def _heading_of(line: str, fmt: str) -> tuple[int, str] | None:
    match = _ATX.match(line)
    if match:
        return len(match.group(1)), match.group(2).strip()
    if fmt != "text" or len(line) > 60 or line[-1:] in "。！？；.!?;，,:：":
        return None
    match = _PLAIN_HEADING.match(line)
    if not match:
        return None
    if match.group("arabic"):
        return match.group("arabic").count(".") + 1, line
    return (1 if match.group("upper") or match.group("chapter") else 2), line


def sentence_spans(text: str, start: int, end: int, max_chars: int = 800) -> list[tuple[int, int]]:
    """Whole sentences of text[start:end] as (start, end) offsets, whitespace trimmed.

    Line breaks end a sentence too (list items, table rows, headings), except
    inside fenced code, which stays one block.
    """
    spans: list[tuple[int, int]] = []
    pos = start
    in_fence = False
    block_start = None
    for line in text[start:end].splitlines(keepends=True):
        line_start, pos = pos, pos + len(line)
        if _FENCE.match(line):
            if not in_fence:
                block_start = line_start
            in_fence = not in_fence
            if in_fence:
                continue
            spans.extend(_fit(text, block_start or line_start, pos, max_chars, code=True))
            block_start = None
            continue
        if in_fence:
            continue
        cursor = line_start
        for match in _SENTENCE_END.finditer(text, line_start, pos):
            spans.extend(_fit(text, cursor, match.end(), max_chars))
            cursor = match.end()
        spans.extend(_fit(text, cursor, pos, max_chars))
    if in_fence and block_start is not None:
        spans.extend(_fit(text, block_start, end, max_chars, code=True))
    return spans


def _fit(text: str, a: int, b: int, max_chars: int, code: bool = False) -> list[tuple[int, int]]:
    """Trim whitespace; split a span longer than max_chars at soft breaks (or lines, for code)."""
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if a >= b:
        return []
    if b - a <= max_chars:
        return [(a, b)]
    pieces: list[tuple[int, int]] = []
    breaker = re.compile(r"\n") if code else _SOFT_BREAK
    while b - a > max_chars:
        window = text[a : a + max_chars]
        cut = max((m.end() for m in breaker.finditer(window) if m.end() > max_chars // 2), default=max_chars)
        pieces.extend(_fit(text, a, a + cut, max_chars))
        a += cut
    pieces.extend(_fit(text, a, b, max_chars))
    return pieces


def _chunk_id(doc: Document, start: int, end: int) -> str:
    return hashlib.sha1(f"{doc.sha256}:{start}:{end}".encode()).hexdigest()[:16]


def chunk_document(doc: Document, config: ChunkConfig | None = None) -> list[Chunk]:
    config = config or ChunkConfig()
    units: list[tuple[int, int, int]] = []  # (start, end, section index)
    sections = split_sections(doc.text, doc.format)
    for index, section in enumerate(sections):
        units.extend(
            (a, b, index) for a, b in sentence_spans(doc.text, section.start, section.end, config.max_chars)
        )

    chunks: list[Chunk] = []
    current: list[tuple[int, int, int]] = []

    def size(items: list[tuple[int, int, int]]) -> int:
        return items[-1][1] - items[0][0] if items else 0

    carried = 0  # leading units of `current` already emitted (the overlap)
    last: list[tuple[int, int, int]] = []  # units of the last chunk emitted

    def emit(keep_overlap: bool) -> None:
        nonlocal current, carried, last
        if len(current) > carried:  # a chunk of only repeated sentences adds nothing
            chunks.append(_make_chunk(doc, sections, current))
            last = current
        tail: list[tuple[int, int, int]] = []
        if keep_overlap:
            for unit in reversed(current[1:]):
                if size([unit, *tail]) > config.overlap_chars:
                    break
                tail.insert(0, unit)
        current, carried = tail, len(tail)

    for unit in units:
        if current and unit[2] != current[-1][2]:
            fresh = current[carried:]
            same_section = bool(last) and last[-1][2] == current[-1][2]
            if (
                fresh
                and same_section
                and size(current) < config.min_chars
                and size([*last, *fresh]) <= config.max_chars
            ):
                # A section's short tail joins its previous chunk rather than the next section.
                chunks[-1] = _make_chunk(doc, sections, [*last, *fresh])
                current, carried = [], 0
            elif size(current) >= config.min_chars or not fresh:
                emit(keep_overlap=False)  # a new section starts a new chunk; small leftovers merge into it
        grown = size([*current, unit]) if current else unit[1] - unit[0]
        if current and (
            grown > config.max_chars or (grown > config.target_chars and size(current) >= config.min_chars)
        ):
            emit(keep_overlap=unit[2] == current[-1][2])
            if current and size([*current, unit]) > config.max_chars:
                current, carried = [], 0
        current.append(unit)
    emit(keep_overlap=False)
    return chunks


def _make_chunk(doc: Document, sections: list[_Section], units: list[tuple[int, int, int]]) -> Chunk:
    start, end = units[0][0], units[-1][1]
    weight: dict[int, int] = {}
    for a, b, index in units:
        weight[index] = weight.get(index, 0) + (b - a)
    main = max(weight, key=lambda i: (weight[i], -i))
    text = doc.text[start:end]
    return Chunk(
        chunk_id=_chunk_id(doc, start, end),
        path=doc.path,
        source=doc.source,
        heading=" > ".join(sections[main].path),
        language=detect_language(text),
        start=start,
        end=end,
        text=text,
    )
