"""Loading course material from disk: format sniffing, encoding detection, text extraction.

Formats are recognized by content, not by extension: course pages saved from a
browser often end in `.txt` but hold HTML, and notes may come in legacy
Chinese encodings (GB18030/GBK on the mainland, Big5 in Taiwan/Hong Kong).
Every loader returns plain text in which headings are written as Markdown
`#` lines, so the chunker has one heading syntax to follow.

Failures are per file: `load_document` raises `BinaryFileError` or
`IngestError` (both name the file and the fix) and the index builder reports
them and goes on with the other files.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llmtutor.errors import LLMTutorError
from llmtutor.knowledge.rag.html_text import html_to_text, looks_like_html, strip_stray_tags

Format = Literal["markdown", "html", "text", "pdf", "json"]

# Folders that never hold course material (and can be huge).
_SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".ipynb_checkpoints"}
_BINARY_MAGIC = (
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",
    b"PK\x03\x04",
    b"\x7fELF",
    b"\x1f\x8b",
    b"BZh",
    b"7z\xbc\xaf",
    b"Rar!",
    b"MZ",
    b"\x00asm",
    b"SQLite format",
    b"RIFF",
    b"OggS",
    b"ID3",
    b"fLaC",
    b"\xca\xfe\xba\xbe",
)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_MD_SIGNS = re.compile(r"^(#{1,6} \S|```|\s*[-*] \S|\s*\d+\. \S|\[[^\]]+\]\([^)]+\))", re.M)


class IngestError(LLMTutorError):
    """One file could not be read or converted to text."""


class BinaryFileError(IngestError):
    """The file is not text (an image, archive, executable...)."""


class Document(BaseModel):
    """One source file as text. `text` is what offsets in chunks refer to."""

    model_config = ConfigDict(extra="forbid")
    path: str  # absolute path: the document's identity in the index
    source: str  # short display name used in citations, e.g. "seeds/000.txt"
    text: str
    format: Format
    encoding: str
    sha256: str  # of the raw bytes: unchanged files are not re-embedded
    title: str = ""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def iter_source_files(paths: Iterable[str | Path]) -> Iterator[tuple[Path, str]]:
    """(absolute path, display name) of every file under the given files/folders.

    The display name is relative to the folder given (prefixed by that
    folder's name), or the bare file name for a file given directly.
    Hidden files and tool folders (.git, node_modules, ...) are skipped.
    """
    for raw in paths:
        root = Path(raw).expanduser().resolve()
        if root.is_file():
            yield root, root.name
            continue
        if not root.is_dir():
            raise IngestError(f"path not found: {raw}", "give existing files or folders to index")
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if any(part.startswith(".") or part in _SKIP_DIRS for part in rel.parts):
                continue
            if path.is_file():
                yield path, f"{root.name}/{rel.as_posix()}"


# ----- encodings ------------------------------------------------------------------
def _cjk_word_coverage(text: str) -> float:
    """Share of Chinese characters that fall in multi-character dictionary words.

    Big5 bytes decoded as GB18030 (or the reverse) give valid but random
    characters that jieba cannot group into words; the right decoding can.
    """
    from llmtutor.knowledge.rag.lexical import jieba_module

    words = [
        w for w in jieba_module().lcut(text[:4000], HMM=False) if any("\u4e00" <= c <= "\u9fff" for c in w)
    ]
    total = sum(len(w) for w in words)
    return sum(len(w) for w in words if len(w) > 1) / total if total else 0.0


def decode_bytes(raw: bytes) -> tuple[str, str]:
    """(text, encoding name). UTF-8/16/32 first, then GB18030 vs Big5, then charset-normalizer."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            return raw.decode(name), name
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # GB18030 accepts almost any byte sequence, so "it decodes" proves little:
    # among the CJK encodings that decode strictly, pick the one whose text
    # reads as words.
    candidates = []
    for name in ("gb18030", "big5"):
        try:
            candidates.append((raw.decode(name), name))
        except UnicodeDecodeError:
            continue
    if len(candidates) == 1 and candidates[0][1] == "big5":
        return candidates[0]
    if candidates:
        scored = [(_cjk_word_coverage(text), -i, text, name) for i, (text, name) in enumerate(candidates)]
        best = max(scored)
        if best[0] >= 0.3:
            return best[2], best[3]
    from charset_normalizer import from_bytes

    match = from_bytes(raw).best()
    if match is not None:
        return str(match), match.encoding
    if candidates:
        return candidates[0]
    raise IngestError("cannot detect the text encoding", "convert the file to UTF-8")


def is_binary(raw: bytes) -> bool:
    head = raw[:8192]
    if any(head.startswith(bom) for bom, _ in _BOMS):
        return False
    if head.startswith(_BINARY_MAGIC) or b"\x00" in head:
        return True
    # Many control characters (other than tab/newline/form feed) = not text.
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    return bool(head) and controls / len(head) > 0.05


# ----- format sniffing ------------------------------------------------------------
def sniff_format(raw: bytes, text: str, suffix: str) -> Format:
    """The format from the bytes and decoded text; the extension only breaks ties (.md, .json)."""
    if raw.startswith(b"%PDF-"):
        return "pdf"
    stripped = text.lstrip()
    if stripped[:1] in "{[" and suffix in (".json", ".jsonl", ".ndjson", ""):
        return "json"
    if stripped[:1] in "{[" and _parse_json(text) is not None:
        return "json"
    if looks_like_html(text):
        return "html"
    if suffix in (".md", ".markdown", ".mdx") or len(_MD_SIGNS.findall(text[:20000])) >= 3:
        return "markdown"
    return "text"


def _parse_json(text: str) -> Any | None:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:  # JSON Lines
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
        return None


# ----- converters -----------------------------------------------------------------
_TITLE_KEYS = ("title", "name", "heading", "question", "topic")


def json_to_text(data: Any) -> str:
    """Objects become sections: a title-like field is the heading, other strings the body."""
    lines: list[str] = []

    def walk(node: Any, depth: int, key: str = "") -> None:
        if isinstance(node, dict):
            title = next((str(node[k]) for k in _TITLE_KEYS if isinstance(node.get(k), str)), "")
            if title or key:
                lines.append(f"\n{'#' * min(depth, 6)} {title or key}\n")
            for k, value in node.items():
                if isinstance(value, str) and value == title:
                    continue
                walk(value, depth + 1, str(k))
        elif isinstance(node, list):
            for item in node:
                walk(item, depth, key)
        elif isinstance(node, str) and node.strip():
            text = node.strip()
            # Short scalars keep their key as a label ("difficulty: easy"); prose stands alone.
            lines.append(f"{key}: {text}" if key and len(text) < 80 else text)
        elif node is not None and not isinstance(node, bool) and key:
            lines.append(f"{key}: {node}")

    walk(data, 1)
    return "\n".join(lines).strip() + "\n"


def pdf_to_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            reader.decrypt("")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise IngestError(
            f"{path.name}: unreadable PDF ({exc})", "re-export the PDF or save it as text"
        ) from exc
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise IngestError(
            f"{path.name}: the PDF has no text layer", "run OCR on it first or add a text version"
        )
    return text + "\n"


def _normalize(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ").replace("\ufeff", "")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text)


def _title(text: str, fallback: str) -> str:
    match = re.search(r"^#{1,6} (.+)$", text, re.M)
    if match:
        return match.group(1).strip()[:200]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first[:120] or fallback


def load_document(path: str | Path, source: str | None = None) -> Document:
    """Read one file into a `Document`. Raises BinaryFileError / IngestError."""
    path = Path(path).expanduser().resolve()
    source = source or path.name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise IngestError(
            f"{source}: cannot read ({exc.strerror or exc})", "check the file's permissions"
        ) from exc
    if raw.startswith(b"%PDF-"):
        text, fmt, encoding = pdf_to_text(path), "pdf", "binary"
    elif is_binary(raw):
        raise BinaryFileError(
            f"{source}: binary file skipped", "only Markdown, HTML, text, PDF and JSON are indexed"
        )
    else:
        decoded, encoding = decode_bytes(raw)
        fmt = sniff_format(raw, decoded, path.suffix.lower())
        if fmt == "json":
            data = _parse_json(decoded)
            if data is None:
                raise IngestError(f"{source}: invalid JSON", "fix the JSON syntax or rename it to .txt")
            text = json_to_text(data)
        elif fmt == "html":
            text = html_to_text(decoded)
        else:
            text = strip_stray_tags(decoded)
    text = _normalize(text)
    if not text.strip():
        raise IngestError(f"{source}: no text found", "the file is empty or holds only markup")
    return Document(
        path=str(path),
        source=source,
        text=text,
        format=fmt,
        encoding=encoding,
        sha256=hashlib.sha256(raw).hexdigest(),
        title=_title(text, path.stem),
    )
