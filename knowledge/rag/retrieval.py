"""Hybrid retrieval over the course index: BM25 (Chinese-aware) + dense vectors, fused.

The pipeline (`method="hybrid"`), per query:

1. the question's concepts and BM25 terms (`knowledge/query.py`): jieba and
   bigram tokens, plus glossary expansions (English ↔ Chinese spellings of
   course terms and field words) as lower-weighted extra terms;
2. BM25 scores times the chunk's IDF-weighted share of the question's
   concepts (a coordination factor), so chunks holding every concept win;
3. MiniLM cosine search, for English questions over English chunks only
   (MiniLM does not understand Chinese: elsewhere it only adds noise and
   ~15 ms); exact over an in-memory matrix, or LanceDB's ANN index for
   50k+ chunks;
4. weighted reciprocal rank fusion of the two rankings;
5. near-duplicate removal (the same paragraph in two translations of the
   course, or pasted twice) by character-shingle overlap;
6. MMR re-ranking so the top k are not overlapping windows of one section;
7. a relevance check: most of the question's concepts must exist in the
   corpus and the best chunk must hold most of them, including a specific
   (not everyday) one, or an English chunk must be close by cosine. Else
   `found` is False and the tutor says the notes do not cover it.

`method` "bm25", "dense" and "rrf" (naive fusion: no expansion, no
coverage, no dedupe, no MMR) exist for the benchmark.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llmtutor.knowledge.rag.glossary import (
    GlossaryEntry,
    GlossarySource,
    QueryExpander,
    as_entries,
    default_glossary,
)
from llmtutor.knowledge.rag.index import (
    ANN_MIN_ROWS,
    CourseIndexError,
    EmbedderLike,
    connect,
    read_columns,
    read_meta,
)
from llmtutor.knowledge.rag.lexical import BM25Index, jieba_module
from llmtutor.knowledge.rag.query import QueryAnalyzer, find_vocab_file
from llmtutor.knowledge.rag.ranking import (
    PairSimilarity,
    TermGroup,
    coverage,
    holds,
    known_share,
    mmr,
    near_duplicates,
    shingles,
)
from llmtutor.text import detect_language

Method = Literal["hybrid", "bm25", "dense", "rrf"]


class RetrievalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    candidates: int = Field(40, ge=5, description="Candidates taken from each ranking before fusion.")
    rrf_k: float = Field(60.0, gt=0)
    lexical_weight: float = Field(1.0, ge=0)
    dense_weight: float = Field(0.6, ge=0)
    expansion_weight: float = Field(
        0.6, ge=0, description="Weight of a glossary spelling relative to the query's words."
    )
    dedupe_jaccard: float = Field(
        0.8, gt=0, le=1, description="Shingle overlap above which two chunks are one."
    )
    mmr_lambda: float = Field(0.85, ge=0, le=1, description="1 = pure relevance, 0 = pure diversity.")
    min_coverage: float = Field(
        0.5, ge=0, le=1, description="Share of the query's known terms (by IDF) a relevant chunk holds."
    )
    min_cosine: float = Field(
        0.5, ge=-1, le=1, description="Dense similarity that alone makes a chunk relevant."
    )
    coord_power: float = Field(1.0, ge=0, description="Exponent of the query-term coverage factor on BM25.")
    language_bonus: float = Field(
        0.1,
        ge=0,
        description="Fused-score bonus of a chunk in the query's language (bilingual notes: a Chinese "
        "question reads the Chinese section first when it is about as relevant).",
    )
    nprobes: int = Field(20, ge=1, description="IVF partitions searched when the ANN index is used.")
    dense_backend: Literal["auto", "exact", "ann"] = Field(
        "auto",
        description="exact: in-memory matrix; ann: LanceDB's vector index; auto: ann from 50k chunks if indexed.",
    )


class SearchHit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    source: str
    heading: str
    score: float
    chunk_id: str
    language: str = ""
    start: int = 0
    end: int = 0
    relevance: float = Field(0.0, description="Query-term coverage (0..1) or cosine, whichever is higher.")


class SearchResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str
    hits: list[SearchHit]
    found: bool
    expansions: list[str] = Field(default_factory=list, description="Glossary spellings added to the query.")


class Retriever:
    """An opened index: chunk metadata, BM25 and the vector matrix in memory. Thread-safe to query."""

    def __init__(
        self,
        location: str | Path,
        *,
        embedder: EmbedderLike | None = None,
        glossary: GlossarySource | Sequence[GlossaryEntry] | None = None,
        config: RetrievalConfig | None = None,
    ):
        self.location = str(location)
        self.config = config or RetrievalConfig()
        db = connect(location)
        if "chunks" not in set(db.list_tables().tables):
            raise CourseIndexError(
                f"no course index at {location}", "build it with `llmtutor index build PATH...`"
            )
        meta = read_meta(db)
        if embedder is None:
            from llmtutor.knowledge.rag.embeddings import Embedder

            embedder = Embedder(meta.get("embed_model") or None)
        elif meta.get("embed_model") not in (None, embedder.key):
            raise CourseIndexError(
                f"the index at {location} was built with {meta.get('embed_model')!r}, not {embedder.key!r}",
                "rebuild it with `llmtutor index build` or use the same embedding model",
            )
        self.embedder = embedder
        self.table = db.open_table("chunks")
        cols = ["chunk_id", "source", "heading", "language", "start", "end", "text", "tokens"]
        data = read_columns(self.table, cols).to_pydict()
        self.rows: list[dict[str, Any]] = [
            dict(zip(cols, values, strict=True)) for values in zip(*data.values(), strict=True)
        ]
        self._position = {row["chunk_id"]: i for i, row in enumerate(self.rows)}
        self.bm25 = BM25Index(data["tokens"])
        self._token_sets = [frozenset(tokens) for tokens in data["tokens"]]
        self._shingles: dict[int, frozenset[str]] = {}
        self._lowered: dict[int, str] = {}  # lower-cased chunk texts, filled as chunks become candidates
        self._english = np.array([row["language"] == "en" for row in self.rows], dtype=bool)
        jieba_module()  # load the dictionary now, not during the first Chinese question
        indexed = any("vector" in i.columns for i in self.table.list_indices())
        backend = self.config.dense_backend
        if backend == "ann" and not indexed:
            raise CourseIndexError(
                f"the index at {location} has no vector index", "rebuild it (50k+ chunks) or use exact search"
            )
        self.use_ann = backend == "ann" or (backend == "auto" and indexed and len(self.rows) >= ANN_MIN_ROWS)
        self.vectors: np.ndarray | None = None
        if not self.use_ann:
            vec = read_columns(self.table, ["vector"]).column("vector")
            flat = vec.combine_chunks().flatten().to_numpy(zero_copy_only=False) if len(vec) else np.zeros(0)
            self.vectors = np.ascontiguousarray(flat, dtype=np.float32).reshape(len(self.rows), -1)
        entries = (
            glossary() if callable(glossary) else glossary if glossary is not None else default_glossary()
        )
        self.expander = QueryExpander(as_entries(entries))
        vocab = find_vocab_file(getattr(embedder, "model_path", None))
        self.analyzer = QueryAnalyzer(self.bm25, self.expander, vocab, self.config.expansion_weight)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="embed-query")

    def __len__(self) -> int:
        return len(self.rows)

    # ----- the two rankings ---------------------------------------------------------
    def _query_terms(self, query: str, expand: bool) -> tuple[dict[str, float], list[TermGroup], list[str]]:
        analysis = self.analyzer.analyze(query, expand)
        return analysis.weights, analysis.groups, analysis.added

    def _dense(self, vector: np.ndarray, n: int, english_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(row positions, cosine similarities), best first."""
        if self.vectors is not None:
            sims = self.vectors @ vector
            if english_only:
                sims = np.where(self._english, sims, -2.0)
                n = min(n, int(self._english.sum()))
                if not n:
                    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            n = min(n, len(sims))
            top = np.argpartition(-sims, n - 1)[:n] if n < len(sims) else np.arange(len(sims))
            top = top[np.argsort(-sims[top])]
            return top, sims[top]
        search = self.table.search(vector, vector_column_name="vector").distance_type("cosine")
        if english_only:
            search = search.where("language = 'en'", prefilter=True)
        hits = search.nprobes(self.config.nprobes).limit(n).select(["chunk_id"]).to_arrow()
        ids = hits.column("chunk_id").to_pylist()
        return np.array([self._position[i] for i in ids], dtype=np.int64), 1.0 - hits.column(
            "_distance"
        ).to_numpy()

    def cosine(self, vector: np.ndarray, positions: Sequence[int]) -> np.ndarray:
        if self.vectors is not None:
            return self.vectors[list(positions)] @ vector
        ids = ", ".join("'" + self.rows[p]["chunk_id"] + "'" for p in positions)
        rows = (
            self.table.search()
            .where(f"chunk_id IN ({ids})")
            .select(["chunk_id", "vector"])
            .to_arrow()
            .to_pylist()
        )
        by_id = {r["chunk_id"]: np.asarray(r["vector"], dtype=np.float32) for r in rows}
        return np.array(
            [float(by_id[self.rows[p]["chunk_id"]] @ vector) for p in positions], dtype=np.float32
        )

    # ----- search ------------------------------------------------------------------
    def _lexical(
        self, weights: dict[str, float], groups: list[TermGroup], coord: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """(row positions, scores) of the BM25 ranking, best first.

        With `coord`, scores are multiplied by the chunk's IDF-weighted share
        of the question's terms (Lucene's old coordination factor): a chunk
        that holds every concept of the question beats one that repeats one
        frequent word many times.
        """
        scores = self.bm25.scores(weights)
        n = min(self.config.candidates * (2 if coord else 1), int((scores > 0).sum()))
        if not n:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.flatnonzero(scores > 0)
        values = scores[top]
        if coord:
            cover = np.array([self._coverage(groups, p) for p in top.tolist()])
            values = values * cover**self.config.coord_power
        order = np.argsort(-values)[: self.config.candidates]
        return top[order], values[order]

    def search(
        self, query: str, k: int = 5, method: Method = "hybrid", *, only_relevant: bool = True
    ) -> SearchResult:
        """The k best chunks. `only_relevant=False` keeps weak hits (a search box shows
        its best matches anyway); `found` is computed either way."""
        query = query.strip()
        if not query or not self.rows:
            return SearchResult(query=query, hits=[], found=False)
        cfg = self.config
        hybrid = method == "hybrid"
        # MiniLM only understands English: in the pipeline, Chinese questions skip the
        # vector search (saving ~15 ms) and English ones rank only English chunks by it.
        # The query is embedded on a worker thread (torch releases the GIL) while BM25 runs.
        english = detect_language(query) == "en" and bool(self._english.any())
        pending = (
            self._pool.submit(self.embedder.embed, query)
            if method != "bm25" and (english or not hybrid)
            else None
        )
        weights, groups, added = self._query_terms(query, expand=hybrid)
        lexical_order, lexical_scores = (np.zeros(0, dtype=np.int64), None)
        if method != "dense":
            lexical_order, lexical_scores = self._lexical(weights, groups, coord=hybrid)
            if method == "bm25":
                return self._result(
                    query,
                    list(zip(lexical_order[:k].tolist(), lexical_scores[:k].tolist(), strict=True)),
                    groups,
                    None,
                    added,
                )
        vector = pending.result()[0] if pending is not None else None
        dense_order = np.zeros(0, dtype=np.int64)
        if vector is not None:
            dense_order, dense_sims = self._dense(vector, cfg.candidates, english_only=hybrid)
            if method == "dense":
                return self._result(
                    query,
                    list(zip(dense_order[:k].tolist(), dense_sims[:k].tolist(), strict=True)),
                    groups,
                    vector,
                    added,
                )
        fused: dict[int, float] = {}
        lw, dw = (1.0, 1.0) if method == "rrf" else (cfg.lexical_weight, cfg.dense_weight)
        for weight, order in ((lw, lexical_order), (dw, dense_order)):
            for rank, position in enumerate(order.tolist()):
                fused[position] = fused.get(position, 0.0) + weight / (cfg.rrf_k + rank + 1)
        if hybrid and cfg.language_bonus:
            language = "en" if english else detect_language(query)
            for position in fused:
                if self.rows[position]["language"] == language:
                    fused[position] *= 1.0 + cfg.language_bonus
        ranked = sorted(fused.items(), key=lambda item: -item[1])
        if method == "rrf":
            return self._result(query, ranked[:k], groups, vector, added)
        pool = ranked[: max(3 * k, 15)]
        similarity = PairSimilarity([self._shingle(p) for p, _ in pool])
        keep = near_duplicates(similarity, cfg.dedupe_jaccard)
        chosen = mmr([pool[i][1] for i in keep], keep, similarity, k, cfg.mmr_lambda)
        return self._result(
            query, [pool[keep[i]] for i in chosen], groups, vector, added, filter_relevance=only_relevant
        )

    def _coverage(self, groups: list[TermGroup], position: int, known_only: bool = False) -> float:
        text = self._lowered.get(position)
        if text is None:
            text = self._lowered[position] = self.rows[position]["text"].lower().replace(" ", "")
        return coverage(groups, self._token_sets[position], text, self.bm25.idf_of, known_only)

    def _anchored(self, groups: list[TermGroup], position: int) -> bool:
        """The chunk holds a specific (not everyday) concept of the question, or nearly all of three or more.

        The second case is a name made of everyday words ("Hugging Face Hub").
        """
        self._coverage([], position)  # fills the lower-cased text cache
        held = [g for g in groups if holds(g, self._token_sets[position], self._lowered[position])]
        if any(g.weight == 1.0 for g in held):
            return True
        return len(held) >= 3 and self._coverage(groups, position, known_only=True) >= 0.75

    def _shingle(self, position: int) -> frozenset[str]:
        cached = self._shingles.get(position)
        if cached is None:
            cached = shingles(self.rows[position]["text"])
            with self._lock:
                self._shingles[position] = cached
        return cached

    def _result(
        self,
        query: str,
        scored: Sequence[tuple[int, float]],
        groups: list[TermGroup],
        vector: np.ndarray | None,
        added: list[str],
        filter_relevance: bool = False,
    ) -> SearchResult:
        """Hits with their relevance; `found` says whether the notes answer the question at all.

        Found when most of the question's concepts exist in the corpus and the
        best chunk holds most of those (IDF-weighted), or when an English
        chunk is close by MiniLM cosine. Other hits are kept if they hold
        at least one concept or are close by cosine.
        """
        cfg = self.config
        positions = [p for p, _ in scored]
        sims = (
            self.cosine(vector, positions) if vector is not None and positions else np.zeros(len(positions))
        )
        sims = np.where(self._english[positions], sims, 0.0) if positions else sims
        known = known_share(groups)
        hits, found = [], False
        for (position, score), sim in zip(scored, sims.tolist(), strict=True):
            cov = self._coverage(groups, position, known_only=True)
            strong = (
                known > 0.5 and cov >= cfg.min_coverage and self._anchored(groups, position)
            ) or sim >= cfg.min_cosine
            found = found or strong
            if filter_relevance and not (strong or cov > 0 or sim >= cfg.min_cosine / 2):
                continue
            row = self.rows[position]
            hits.append(
                SearchHit(
                    text=row["text"],
                    source=row["source"],
                    heading=row["heading"],
                    score=round(score, 6),
                    chunk_id=row["chunk_id"],
                    language=row["language"],
                    start=row["start"],
                    end=row["end"],
                    relevance=round(max(cov * min(1.0, known / 0.5), sim), 4),
                )
            )
        if filter_relevance and not found:
            hits = []
        return SearchResult(query=query, hits=hits, found=found, expansions=added)
