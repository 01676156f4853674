"""Ingestion and chunking: formats sniffed by content, legacy Chinese encodings, binaries, sentence-safe chunks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmtutor.knowledge.rag.chunking import ChunkConfig, chunk_document, sentence_spans, split_sections
from llmtutor.knowledge.rag.ingest import (
    BinaryFileError,
    IngestError,
    decode_bytes,
    load_document,
    sniff_format,
)

SEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"
TAG_RE = re.compile(r"</?(div|span|a|p|svg|path|h\d|article|li|ul)\b[^>]*>", re.I)

ZH = (
    "低秩适配（LoRA）是一种参数高效的微调方法。它冻结预训练权重，只训练两个小矩阵。"
    "这样可以显著降低显存占用！训练完成后，适配器可以合并回原模型吗？当然可以。"
)
TW = "低秩適配（LoRA）是一種參數高效的微調方法。它凍結預訓練權重，只訓練兩個小矩陣。這樣可以顯著降低記憶體佔用。"
EN = (
    "Attention lets every token look at every other token. The scores come from scaled dot products, "
    "e.g. between queries and keys. A softmax turns them into weights! Is that all? Mostly, yes."
)


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with a text layer (Helvetica), written by hand so no PDF writer is needed."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="seed corpus not present")
def test_all_seed_files_load_as_clean_text():
    files = sorted(SEEDS.iterdir())
    assert len(files) >= 5
    formats = {}
    for path in files:
        doc = load_document(path, f"seeds/{path.name}")
        formats[path.name] = doc.format
        assert doc.encoding == "utf-8" and len(doc.text) > 3000
        assert not TAG_RE.search(doc.text), f"HTML tags left in {path.name}"
        assert "大型语言模型" in doc.text or "大型語言模型" in doc.text or "LLM" in doc.text
        chunks = chunk_document(doc)
        assert chunks and all(doc.text[c.start : c.end] == c.text for c in chunks)
    # One seed is a saved HTML page named .txt: recognized by content.
    assert "html" in formats.values()
    html_doc = load_document(next(p for p in files if formats[p.name] == "html"))
    assert "# " in html_doc.text and "_msthash" not in html_doc.text and "octicon" not in html_doc.text


@pytest.mark.parametrize(
    ("text", "encoding"), [(ZH, "gb18030"), (ZH, "gbk"), (TW, "big5"), ("你好世界，模型", "gb18030")]
)
def test_legacy_chinese_encodings_are_detected(tmp_path, text, encoding):
    path = tmp_path / f"notes-{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    doc = load_document(path)
    assert doc.text.strip() == text
    assert doc.encoding in ({"gbk": "gb18030"}.get(encoding, encoding), encoding)


def test_utf8_bom_and_utf16_decode():
    assert decode_bytes("\ufeff标题".encode()) == ("标题", "utf-8-sig")
    assert decode_bytes("注意力".encode("utf-16"))[0] == "注意力"


def test_binary_files_are_refused(tmp_path):
    png = tmp_path / "figure.md"  # the extension lies; the bytes do not
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(BinaryFileError, match="binary"):
        load_document(png)
    blob = tmp_path / "weights.txt"
    blob.write_bytes(b"abc\x00\x01\x02" * 100)
    with pytest.raises(BinaryFileError):
        load_document(blob)


def test_formats_by_content(tmp_path):
    page = tmp_path / "saved_page.txt"
    page.write_text(
        "<!DOCTYPE html><html><head><title>x</title><script>var a=1;</script></head><body>"
        "<nav>Home | About</nav><h1>Quantization</h1><p>Lower precision &amp; smaller models.</p>"
        "<h2>GGUF</h2><ul><li>Runs on CPUs.</li><li>Made for llama.cpp.</li></ul></body></html>",
        encoding="utf-8",
    )
    doc = load_document(page)
    assert doc.format == "html"
    assert "# Quantization" in doc.text and "## GGUF" in doc.text and "- Runs on CPUs." in doc.text
    assert "var a" not in doc.text and "Home | About" not in doc.text and "&amp;" not in doc.text
    assert [s.path for s in split_sections(doc.text)][-1] == ("Quantization", "GGUF")

    data = tmp_path / "glossary.json"
    data.write_text(
        json.dumps([{"title": "LoRA", "body": "Low-rank adapters on frozen weights."}]), encoding="utf-8"
    )
    doc = load_document(data)
    assert doc.format == "json" and "# LoRA" in doc.text and "Low-rank adapters" in doc.text

    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(minimal_pdf("Scaling laws relate loss to compute."))
    doc = load_document(pdf)
    assert doc.format == "pdf" and "Scaling laws relate loss to compute." in doc.text
    assert sniff_format(b"# Title\n", "# Title\n\n- a\n- b\n- c\n", ".txt") == "markdown"


def test_broken_files_raise_typed_errors(tmp_path):
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"title": "LoRA", ', encoding="utf-8")
    with pytest.raises(IngestError, match="invalid JSON"):
        load_document(bad_json)
    bad_pdf = tmp_path / "broken.pdf"
    bad_pdf.write_bytes(b"%PDF-1.4\nthis is not a pdf at all\n")
    with pytest.raises(IngestError, match="PDF"):
        load_document(bad_pdf)


def _ends_sentence(text: str, end: int) -> bool:
    return end == len(text) or text[end - 1] in "。！？；.!?;…" or text[end] == "\n" or text[end - 1] == "\n"


@pytest.mark.parametrize("body", [ZH * 12, EN * 10, (ZH + "\n\n" + EN) * 6])
def test_chunks_never_cut_a_sentence(tmp_path, body):
    path = tmp_path / "notes.md"
    path.write_text(
        f"# Course\n\n## Section A\n\n{body}\n\n## Section B\n\n{body[: len(body) // 3]}\n", encoding="utf-8"
    )
    doc = load_document(path)
    config = ChunkConfig(target_chars=300, min_chars=120, max_chars=500, overlap_chars=80)
    chunks = chunk_document(doc, config)
    assert len(chunks) > 3
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert len(chunk.text) <= config.max_chars
        assert _ends_sentence(doc.text, chunk.end), repr(chunk.text[-30:])
        before = doc.text[: chunk.start].rstrip(" ")
        assert not before or before[-1] in "。！？；.!?;…\n", repr(before[-20:])
        assert chunk.heading.startswith("Course > Section")
        assert chunk.language in ("en", "zh")
    # Consecutive chunks of one section overlap by whole sentences.
    same = [(a, b) for a, b in zip(chunks, chunks[1:], strict=False) if a.heading == b.heading]
    assert any(b.start < a.end for a, b in same)


def test_sentence_spans_keep_abbreviations_and_decimals():
    text = "Use e.g. Llama 3.1 with llama.cpp. It runs fast. 这是第一句。这是第二句！"
    spans = [text[a:b] for a, b in sentence_spans(text, 0, len(text))]
    assert spans == ["Use e.g. Llama 3.1 with llama.cpp.", "It runs fast.", "这是第一句。", "这是第二句！"]


def test_plain_text_numbered_headings_and_code_comments(tmp_path):
    notes = tmp_path / "roadmap.txt"
    notes.write_text(
        "1. LLM 基础\n1.1 数学\n线性代数很重要。\n1.2 Python\nNumPy 用于数值计算。\n", encoding="utf-8"
    )
    headings = {
        c.heading
        for c in chunk_document(
            load_document(notes), ChunkConfig(min_chars=0, target_chars=50, overlap_chars=0)
        )
    }
    assert {"1. LLM 基础 > 1.1 数学", "1. LLM 基础 > 1.2 Python"} <= headings
    md = tmp_path / "deploy.md"
    md.write_text("# Deploy\n\nFROM python:3.11\n# install deps\nRUN pip install x\n", encoding="utf-8")
    assert [s.path for s in split_sections(load_document(md).text)] == [("Deploy",)]
