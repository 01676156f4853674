"""The course index: documents → chunks → vectors and tokens in LanceDB, built incrementally.

Storage is plain LanceDB (embedded: a directory; or any LanceDB URI such as
`s3://bucket/index` or `db://...` for remote storage). Three tables:

* `documents`: one row per source file with the SHA-256 of its bytes;
* `chunks`: text, metadata, the embedding (`vector`) and the BM25 tokens
  (`tokens`, so opening the index does not re-run jieba over the corpus);
* `meta`: embedding model, chunking config, last build time.

Why not llama-index: its LanceDB vector store writes one table with its own
node schema and re-embeds through its own embedding wrappers; we need per-file
content hashes, our Chinese tokens stored next to the vectors, and the
project's Embedder. Plain lancedb does all of that in a few calls.

A rebuild re-embeds only files whose bytes changed; files that disappeared
from the folders given are removed. A file that fails to load is reported
and never aborts the build.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llmtutor.errors import LLMTutorError
from llmtutor.knowledge.rag.chunking import Chunk, ChunkConfig, chunk_document
from llmtutor.knowledge.rag.ingest import (
    BinaryFileError,
    IngestError,
    file_sha256,
    iter_source_files,
    load_document,
)
from llmtutor.knowledge.rag.lexical import tokenize

SCHEMA_VERSION = 1
ANN_MIN_ROWS = 50_000  # below this, exact search over an in-memory matrix is faster than any ANN index
Progress = Callable[..., None]  # (stage, step, total, message): `ToolContext.report` fits


class CourseIndexError(LLMTutorError):
    """The index is missing, unreadable, or was built with another embedding model."""


class EmbedderLike(Protocol):
    key: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str] | str) -> np.ndarray: ...


class FileProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    reason: str


class BuildReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = Field(default_factory=list)
    skipped: list[FileProblem] = Field(default_factory=list, description="Binary files (not text).")
    failed: list[FileProblem] = Field(default_factory=list, description="Files that could not be read.")
    chunks_embedded: int = 0
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0


class IndexStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uri: str
    exists: bool
    documents: int = 0
    chunks: int = 0
    languages: dict[str, int] = Field(default_factory=dict, description="Chunks per language.")
    formats: dict[str, int] = Field(default_factory=dict, description="Documents per format.")
    embed_model: str = ""
    last_build: str | None = None
    sources: list[str] = Field(default_factory=list)


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def connect(location: str | Path) -> Any:
    """A LanceDB connection; a local folder is created if needed."""
    # lance logs a WARN line on stderr for every table it creates; keep the CLI quiet.
    os.environ.setdefault("LANCEDB_LOG", "error")
    os.environ.setdefault("LANCE_LOG", "error")
    import lancedb

    if not is_uri(location):
        Path(location).expanduser().mkdir(parents=True, exist_ok=True)
        location = str(Path(location).expanduser())
    return lancedb.connect(str(location))


def _tables(db: Any) -> set[str]:
    return set(db.list_tables().tables)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def read_meta(db: Any) -> dict[str, Any]:
    if "meta" not in _tables(db):
        return {}
    rows = db.open_table("meta").to_arrow().to_pylist()
    return {row["key"]: json.loads(row["value"]) for row in rows}


def _write_meta(db: Any, meta: dict[str, Any]) -> None:
    import pyarrow as pa

    data = pa.table({"key": list(meta), "value": [json.dumps(v, ensure_ascii=False) for v in meta.values()]})
    db.create_table("meta", data=data, mode="overwrite")


def _chunk_schema(dim: int) -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("chunk_id", pa.string()),
            ("path", pa.string()),
            ("source", pa.string()),
            ("heading", pa.string()),
            ("language", pa.string()),
            ("start", pa.int32()),
            ("end", pa.int32()),
            ("text", pa.string()),
            ("tokens", pa.list_(pa.string())),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
    )


def _doc_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("source", pa.string()),
            ("sha256", pa.string()),
            ("format", pa.string()),
            ("encoding", pa.string()),
            ("title", pa.string()),
            ("chunks", pa.int32()),
            ("indexed_at", pa.string()),
        ]
    )


def _open_or_create(db: Any, name: str, schema: Any) -> Any:
    if name in _tables(db):
        return db.open_table(name)
    return db.create_table(name, schema=schema)


def _chunk_rows(chunks: Sequence[Chunk], vectors: np.ndarray) -> Any:
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
    columns = {
        "chunk_id": [c.chunk_id for c in chunks],
        "path": [c.path for c in chunks],
        "source": [c.source for c in chunks],
        "heading": [c.heading for c in chunks],
        "language": [c.language for c in chunks],
        "start": [c.start for c in chunks],
        "end": [c.end for c in chunks],
        "text": [c.text for c in chunks],
        "tokens": [tokenize(c.search_text) for c in chunks],
    }
    arrays = [pa.array(v) for v in columns.values()] + [
        pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    ]
    return pa.Table.from_arrays(arrays, schema=_chunk_schema(vectors.shape[1]))


def _embed(
    embedder: EmbedderLike, chunks: Sequence[Chunk], progress: Progress | None, batch: int = 64
) -> np.ndarray:
    parts = []
    for begin in range(0, len(chunks), batch):
        parts.append(embedder.embed([c.search_text for c in chunks[begin : begin + batch]]))
        if progress:
            progress("embed", min(begin + batch, len(chunks)), len(chunks), "embedding chunks")
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)


def _under(path: str, roots: Sequence[Path]) -> bool:
    p = Path(path)
    return any(p == root or root in p.parents for root in roots)


def build_index(
    paths: Iterable[str | Path],
    location: str | Path,
    *,
    embedder: EmbedderLike | None = None,
    chunking: ChunkConfig | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    """Index the files under `paths` into `location` (a folder or LanceDB URI), incrementally."""
    started = time.perf_counter()
    if embedder is None:
        from llmtutor.knowledge.rag.embeddings import Embedder

        embedder = Embedder()
    chunking = chunking or ChunkConfig()
    paths = list(paths)
    report = BuildReport()
    roots: list[Path] = []
    files: list[tuple[Path, str]] = []
    for path in paths:
        try:
            files.extend(iter_source_files([path]))
        except IngestError as exc:  # a missing folder: reported; what it held stays indexed
            report.failed.append(FileProblem(source=str(path), reason=exc.message))
            continue
        roots.append(Path(path).expanduser().resolve())
    db = connect(location)
    meta = read_meta(db)
    settings = {"embed_model": embedder.key, "chunking": chunking.model_dump(), "schema": SCHEMA_VERSION}
    fresh = any(meta.get(k) != v for k, v in settings.items()) or "chunks" not in _tables(db)
    if fresh:  # another model or chunking: nothing stored can be reused
        for name in ("chunks", "documents"):
            if name in _tables(db):
                db.drop_table(name)
    docs_table = _open_or_create(db, "documents", _doc_schema())
    known = {row["path"]: row for row in docs_table.to_arrow().to_pylist()}
    new_chunks: list[Chunk] = []
    doc_rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    now = datetime.now(UTC).isoformat(timespec="seconds")

    for step, (path, source) in enumerate(files, start=1):
        key = str(path)
        seen.add(key)
        if progress:
            progress("read", step, len(files), source)
        try:
            digest = file_sha256(path)
            if key in known and known[key]["sha256"] == digest:
                report.unchanged += 1
                continue
            doc = load_document(path, source)
            chunks = chunk_document(doc, chunking)
        except BinaryFileError as exc:
            report.skipped.append(FileProblem(source=source, reason=exc.message))
            continue
        except (IngestError, OSError, UnicodeError, ValueError, RecursionError) as exc:
            report.failed.append(
                FileProblem(source=source, reason=getattr(exc, "message", None) or repr(exc))
            )
            continue
        (report.updated if key in known else report.added).append(source)
        new_chunks.extend(chunks)
        doc_rows.append(
            {
                "path": key,
                "source": source,
                "sha256": digest,
                "format": doc.format,
                "encoding": doc.encoding,
                "title": doc.title,
                "chunks": len(chunks),
                "indexed_at": now,
            }
        )

    vectors = _embed(embedder, new_chunks, progress)
    report.chunks_embedded = len(new_chunks)
    gone = [p for p in known if p not in seen and (_under(p, roots) or not Path(p).exists())]
    failed_paths = [str(p) for p, s in files if s in {f.source for f in report.failed + report.skipped}]
    stale = [row["path"] for row in doc_rows] + gone + [p for p in failed_paths if p in known]
    report.removed = [known[p]["source"] for p in gone]

    if progress:
        progress("write", 0, 1, "writing the index")
    chunks_table = _open_or_create(db, "chunks", _chunk_schema(embedder.dim))
    for begin in range(0, len(stale), 200):  # IN lists stay short enough for the SQL parser
        where = "path IN (" + ", ".join(_quote(p) for p in stale[begin : begin + 200]) + ")"
        chunks_table.delete(where)
        docs_table.delete(where)
    if new_chunks:
        chunks_table.add(_chunk_rows(new_chunks, vectors))
    if doc_rows:
        import pyarrow as pa

        docs_table.add(pa.Table.from_pylist(doc_rows, schema=_doc_schema()))
    if stale or new_chunks:
        ensure_vector_index(chunks_table)
    _write_meta(db, {**settings, "last_build": now, "dim": embedder.dim})
    report.documents = docs_table.count_rows()
    report.chunks = chunks_table.count_rows()
    report.seconds = round(time.perf_counter() - started, 2)
    if progress:
        progress("write", 1, 1, f"{report.documents} documents, {report.chunks} chunks")
    return report


def ensure_vector_index(
    table: Any, *, min_rows: int = ANN_MIN_ROWS, replace: bool = False, index_type: str = "IVF_SQ"
) -> bool:
    """An ANN index on `vector` once the table is large enough to need one.

    IVF_SQ (IVF partitions, int8 scalar-quantized vectors) by default: on
    100k MiniLM-sized vectors it builds in ~17 s on 2 cores and keeps recall@10
    ≈ 0.96 at `nprobes=20`, where IVF_PQ (48 sub-vectors) took ~150 s to build
    and needed re-ranking to pass 0.7 (benchmarks/retrieval.py measures both).
    """
    from lancedb.index import IvfFlat, IvfPq, IvfSq

    rows = table.count_rows()
    if rows < min_rows:
        return False
    if not replace and any("vector" in idx.columns for idx in table.list_indices()):
        table.optimize()  # folds new rows into the existing index
        return True
    partitions = max(16, int(rows**0.5))
    dim = table.schema.field("vector").type.list_size
    configs = {
        "IVF_SQ": lambda: IvfSq(distance_type="cosine", num_partitions=partitions),
        "IVF_PQ": lambda: IvfPq(
            distance_type="cosine", num_partitions=partitions, num_sub_vectors=_sub_vectors(dim)
        ),
        "IVF_FLAT": lambda: IvfFlat(distance_type="cosine", num_partitions=partitions),
    }
    if index_type not in configs:
        raise CourseIndexError(
            f"unknown vector index type {index_type!r}", f"use one of {', '.join(configs)}"
        )
    table.create_index("vector", config=configs[index_type](), replace=True)
    return True


def _sub_vectors(dim: int) -> int:
    for size in (8, 16, 4, 2, 1):
        if dim % size == 0:
            return dim // size
    return 1


def read_columns(table: Any, columns: list[str]) -> Any:
    """Some columns of a table as Arrow, without reading the vectors when the backend allows it."""
    try:
        return table.to_lance().to_table(columns=columns)
    except (AttributeError, NotImplementedError, ImportError):  # remote tables have no local dataset
        return table.to_arrow().select(columns)


def index_status(location: str | Path) -> IndexStatus:
    uri = str(location)
    if not is_uri(location) and not Path(location).expanduser().is_dir():
        return IndexStatus(uri=uri, exists=False)
    db = connect(location)
    names = _tables(db)
    if "chunks" not in names or "documents" not in names:
        return IndexStatus(uri=uri, exists=False)
    docs = db.open_table("documents").to_arrow().to_pylist()
    languages = read_columns(db.open_table("chunks"), ["language"]).column("language").to_pylist()
    meta = read_meta(db)
    counts: dict[str, int] = {}
    for lang in languages:
        counts[lang] = counts.get(lang, 0) + 1
    formats: dict[str, int] = {}
    for doc in docs:
        formats[doc["format"]] = formats.get(doc["format"], 0) + 1
    return IndexStatus(
        uri=uri,
        exists=True,
        documents=len(docs),
        chunks=len(languages),
        languages=counts,
        formats=formats,
        embed_model=str(meta.get("embed_model", "")),
        last_build=meta.get("last_build"),
        sources=sorted(d["source"] for d in docs),
    )
