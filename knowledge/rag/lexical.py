"""Chinese-aware lexical search: a tokenizer and an in-memory BM25 index.

Why our own tokenizer: LanceDB's full-text tokenizer does not split Chinese
(a whole clause becomes one token), so a question never matches. Chinese runs
go through jieba's `cut_for_search` (words plus their sub-words, so
检索增强生成 also matches 检索), and we add character bigrams, which keep a
match when jieba segments the question and the notes differently. Latin runs
become lower-cased words; compounds such as `llama.cpp`, `q4_k_m` or
`gpt-4` are kept whole *and* split, so both spellings match.

Why our own BM25 (60 lines over scipy.sparse) instead of bm25s: query terms
carry weights, so glossary expansions (English ↔ Chinese) count less than
the learner's own words; the scores are the same as bm25s's Lucene variant.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from llmtutor.text import CJK, CJK_CHARS

_JIEBA_LOCK = threading.Lock()
_JIEBA: Any = None

_RUN_RE = re.compile(rf"[{CJK_CHARS}]+|[0-9A-Za-z\u00c0-\u024f]+(?:[._+\-/'][0-9A-Za-z\u00c0-\u024f]+)*")
_PART_RE = re.compile(r"[0-9a-z\u00c0-\u024f]+")
_ALNUM_SPLIT_RE = re.compile(r"[0-9]+|[a-z\u00c0-\u024f]+")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")

# Function words and question words: they match everything and say nothing.
STOPWORDS_EN = frozenset(
    """a an the and or but if of to in on at by for with from as into about over under between through
    is are was were be been being am do does did doing done have has had having can could should would
    will shall may might must this that these those it its they them their there here i me my we our
    you your he she his her what which who whom whose when where why how than then so such not no nor
    too very just also only any some all each both more most other own same few s t don doesn isn
    use used using make makes made get gets give gives mention mentioned explain tell describe
    please thing things way ways much many one two""".split()
)
STOPWORDS_ZH = frozenset(
    """的 了 是 在 和 与 及 或 也 都 就 而 并 吗 呢 吧 啊 呀 么 什么 怎么 怎样 如何 哪些 哪个 哪 为什么
    一下 一个 一种 一些 这个 那个 这些 那些 有 有哪些 是什么 之 其 被 把 让 对 从 中 上 下 我 你 他 它
    我们 你们 可以 能 会 要 需要 请 解释 介绍 讲讲 说说 告诉 什么样 多少 几 个 种 呢 吗 哪种""".split()
)
STOPWORDS = STOPWORDS_EN | STOPWORDS_ZH


def jieba_module() -> Any:
    """jieba, initialised once per process (its dictionary ships in the wheel: works offline).

    The parsed dictionary is cached under the temp dir, which makes later
    processes start in ~0.3 s instead of ~1 s.
    """
    global _JIEBA
    with _JIEBA_LOCK:
        if _JIEBA is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.dt.tmp_dir = str(Path(tempfile.gettempdir()))
            jieba.initialize()
            _JIEBA = jieba
    return _JIEBA


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Plural/possessive stripping only: safe for terms (LoRA, Adam) and cheap."""
    if len(word) <= 3 or not word.isalpha() or word in STOPWORDS_EN:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith(("ss", "is")) or (
        word.endswith("us") and len(word) > 4
    ):  # "class", "basis", "corpus"; but "gpus"
        return word
    if word.endswith("s"):
        return word[:-1]
    return word


def latin_tokens(run: str) -> list[str]:
    """'llama.cpp' → ['llama.cpp', 'llama', 'cpp']; '512x64' → ['512x64', '512', '64']; 'Models' → ['model']."""
    run = _THOUSANDS_RE.sub("", run.lower())
    parts = [stem(p) for p in _PART_RE.findall(run)]
    # Letter/digit boundaries inside a part: "llama2" also matches "Llama 2", "512x64" matches "512 X 64".
    pieces = [q for p in parts for q in _ALNUM_SPLIT_RE.findall(p) if q != p and (q.isdigit() or len(q) > 1)]
    if len(parts) > 1 or pieces:
        return list(dict.fromkeys([run, *parts, *pieces]))
    return parts


def tokenize(text: str, *, keep_stopwords: bool = False, bigrams: bool = True) -> list[str]:
    """Index/query tokens for mixed Chinese-English text (`bigrams=False`: words only)."""
    tokens: list[str] = []
    jieba = None
    for match in _RUN_RE.finditer(_THOUSANDS_RE.sub("", text)):
        run = match.group()
        if CJK.match(run):
            jieba = jieba or jieba_module()
            for word in jieba.cut_for_search(run, HMM=False):
                tokens.append(word)
                # Bigrams of long words: a match survives a different segmentation of the same phrase.
                if bigrams and len(word) >= 3:
                    tokens.extend(word[i : i + 2] for i in range(len(word) - 1))
        else:
            tokens.extend(latin_tokens(run))
    if keep_stopwords:
        return tokens
    return [t for t in tokens if t not in STOPWORDS]


class BM25Index:
    """Okapi BM25 (Lucene idf) over pre-tokenized documents, as a sparse matrix.

    Scoring a query is one sparse column gather and a dot product: ~0.1 ms
    for a thousand chunks, a few ms for 100k.
    """

    def __init__(self, docs: Sequence[Sequence[str]], *, k1: float = 1.2, b: float = 0.75):
        from scipy import sparse

        self.vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        lengths = np.zeros(len(docs), dtype=np.float32)
        for row, tokens in enumerate(docs):
            counts: dict[int, int] = {}
            for token in tokens:
                col = self.vocab.setdefault(token, len(self.vocab))
                counts[col] = counts.get(col, 0) + 1
            lengths[row] = len(tokens)
            rows.extend([row] * len(counts))
            cols.extend(counts)
            vals.extend(counts.values())
        n = len(docs)
        tf = sparse.csr_matrix((vals, (rows, cols)), shape=(n, max(len(self.vocab), 1)), dtype=np.float32)
        df = np.bincount(tf.indices, minlength=tf.shape[1]).astype(np.float32)
        self.idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        avg = float(lengths.mean()) if n else 1.0
        norm = k1 * (1 - b + b * lengths / max(avg, 1e-6))
        # Per-entry BM25 weight: idf * tf*(k1+1) / (tf + k1*(1-b+b*len/avg)).
        tf = tf.tocoo()
        weights = self.idf[tf.col] * tf.data * (k1 + 1) / (tf.data + norm[tf.row])
        self.matrix = sparse.csc_matrix((weights, (tf.row, tf.col)), shape=tf.shape, dtype=np.float32)
        self.size = n

    def term_weights(self, tokens: Iterable[str], weight: float = 1.0) -> dict[str, float]:
        weights: dict[str, float] = {}
        for token in tokens:
            if token in self.vocab:
                weights[token] = weights.get(token, 0.0) + weight
        return weights

    def scores(self, weights: Mapping[str, float]) -> np.ndarray:
        """BM25 score of every document for weighted query terms."""
        known = [(self.vocab[t], w) for t, w in weights.items() if t in self.vocab]
        if not known or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        cols = np.fromiter((c for c, _ in known), dtype=np.int64)
        qw = np.fromiter((w for _, w in known), dtype=np.float32)
        return np.asarray(self.matrix[:, cols] @ qw, dtype=np.float32).ravel()

    def max_idf(self, tokens: Iterable[str]) -> float:
        return max((float(self.idf[self.vocab[t]]) for t in tokens if t in self.vocab), default=0.0)

    def idf_of(self, token: str) -> float:
        """IDF of a token; an unseen token gets the largest possible value."""
        col = self.vocab.get(token)
        return float(self.idf[col]) if col is not None else math.log(1.0 + (self.size + 0.5) / 0.5)
