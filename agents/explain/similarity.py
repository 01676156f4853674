"""How close a text is to a question: the shipped MiniLM embedder (meaning) and the question's
key concepts (which words must be addressed), each usable without the other.

Concepts come from the retrieval tokenizer (jieba for Chinese, stemmed English words, question
words dropped) and the bilingual glossary: "显存" in a Chinese question is also covered by
"GPU memory" or "VRAM" in a sentence. A concept of everyday words weighs less than a course
term, so "why can LoRA reduce memory" needs LoRA more than it needs "reduce".
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from llmtutor.text import has_cjk

# texts -> L2-normalised rows (`Embedder.embed`)
Embed = Callable[[Sequence[str]], np.ndarray]
SMALL_BATCH = 8  # knowledge/rag/embeddings.py: up to this many texts embed on one thread
EVERYDAY_WEIGHT = 0.3
_ZH_EVERYDAY_FREQ = 1000  # jieba dictionary count above which a Chinese word is everyday (as retrieval)


@dataclass(frozen=True)
class Concept:
    spellings: frozenset[str]  # lower-cased spellings: token tuples joined by " ", or Chinese strings
    weight: float


def make_embed(model_path: str | None = None) -> Embed:
    """The embedder's `embed` (the model loads on first use, shared with routing and retrieval)."""
    from llmtutor.knowledge.rag.embeddings import Embedder

    return Embedder(model_path or None).embed


# Sentence vectors already computed, per embedder: answers are composed from the same course
# passages again and again (every learner, every persona), and embedding their sentences was most
# of an answer's time to first token. ~6k course sentences × 384 floats ≈ 9 MB at most.
_ROW_CACHE_SIZE = 20_000
_row_cache: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
_row_cache_lock = threading.Lock()
_owners: dict[int, object] = {}  # keeps each embedder alive, so its id is never another's


def embed_rows(embed: Embed | None, texts: Sequence[str]) -> np.ndarray | None:
    """Unit vectors of the texts, or None when no embedder can run (callers fall back to words)."""
    if embed is None or not texts:
        return None
    texts = list(texts)
    model = getattr(embed, "__self__", embed)  # a bound `Embedder.embed`: its embedder
    owner = id(model)
    with _row_cache_lock:
        _owners.setdefault(owner, model)
        known = {t: _row_cache[(owner, t)] for t in texts if (owner, t) in _row_cache}
    missing = list(dict.fromkeys(t for t in texts if t not in known))
    try:
        # Batches of SMALL_BATCH run on one torch thread: with the cores busy (llama.cpp, a tool,
        # retrieval) that is several times faster than one big multi-threaded batch (measured).
        for i in range(0, len(missing), SMALL_BATCH):
            batch = missing[i : i + SMALL_BATCH]
            rows = np.asarray(embed(batch), dtype=np.float32)
            known.update(zip(batch, rows, strict=True))
    except Exception:  # a missing or broken embedding model must not break an answer
        return None
    with _row_cache_lock:
        for text in missing:
            _row_cache[(owner, text)] = known[text]
        for text in texts:
            _row_cache.move_to_end((owner, text))
        while len(_row_cache) > _ROW_CACHE_SIZE:
            _row_cache.popitem(last=False)
    return np.stack([known[t] for t in texts])


@lru_cache(maxsize=1)
def _expander() -> Any:
    from llmtutor.knowledge.rag.glossary import QueryExpander, default_glossary

    return QueryExpander(default_glossary())


@lru_cache(maxsize=1)
def _english_everyday() -> frozenset[str]:
    from llmtutor.knowledge.rag.query import english_vocabulary, find_vocab_file

    vocab = find_vocab_file(None)
    return english_vocabulary(vocab) if vocab else frozenset()


def _everyday(token: str) -> bool:
    if token.isdigit():
        return True
    if has_cjk(token):
        from llmtutor.knowledge.rag.lexical import jieba_module

        return len(token) == 1 or jieba_module().dt.FREQ.get(token, 0) >= _ZH_EVERYDAY_FREQ
    return token in _english_everyday()


def words(text: str) -> list[str]:
    """The retrieval tokenizer's words (no bigrams, no stop words)."""
    from llmtutor.knowledge.rag.lexical import tokenize

    return tokenize(text, bigrams=False)


def _spelling(text: str) -> str:
    return re.sub(r"\s+", "", text.lower()) if has_cjk(text) else " ".join(words(text))


def concepts(question: str) -> list[Concept]:
    """The question's concepts: glossary terms (all their spellings) first, then its other words."""
    found: list[Concept] = []
    by_match: dict[str, int] = {}  # one word of the question is one concept, whatever its senses
    own = list(dict.fromkeys(words(question)))
    for expansion in _expander().expand(question):
        # The term's other spellings in the question are the same concept: "零点量化（zero-point）".
        matched = set(words(expansion.matched)).union(*(words(a) for a in expansion.alternatives))
        own = [w for w in own if w not in matched and not set(w.split("-")) <= matched]  # "fine-tuned"
        spellings = {_spelling(s) for s in (expansion.matched, *expansion.alternatives)} - {""}
        everyday = expansion.kind == "word" and all(_everyday(t) for t in words(expansion.matched))
        concept = Concept(frozenset(spellings), EVERYDAY_WEIGHT if everyday else 1.0)
        key = _spelling(expansion.matched)
        if key in by_match:  # "memory": VRAM and conversation memory are one word to cover
            same = found[by_match[key]]
            found[by_match[key]] = Concept(
                same.spellings | concept.spellings, max(same.weight, concept.weight)
            )
            continue
        by_match[key] = len(found)
        found.append(concept)
    for word in own:
        if len(word) > 1:  # one letter, or one Chinese character ("做", "的"): wording, not a concept
            found.append(Concept(frozenset({word}), EVERYDAY_WEIGHT if _everyday(word) else 1.0))
    return found


@dataclass(frozen=True)
class Spelled:
    """A text prepared for `covered` (tokenize once, test many concepts)."""

    words: frozenset[str]
    compact: str  # lower-cased, no spaces: Chinese spellings match inside it
    joined: str  # " w1 w2 … ": multi-word English spellings match inside it

    @classmethod
    def of(cls, text: str) -> Spelled:
        tokens = words(text)
        return cls(frozenset(tokens), re.sub(r"\s+", "", text.lower()), " " + " ".join(tokens) + " ")


def covered(concept: Concept, text: str | Spelled) -> bool:
    """Whether `text` spells the concept (Chinese by substring, English by whole words)."""
    spelled = text if isinstance(text, Spelled) else Spelled.of(text)
    for spelling in concept.spellings:
        if has_cjk(spelling):
            if spelling in spelled.compact:
                return True
        elif " " in spelling:
            if f" {spelling} " in spelled.joined:
                return True
        elif spelling in spelled.words:
            return True
    return False


def coverage(found: list[Concept], text: str) -> tuple[float, float]:
    """(share of the concepts' weight the text covers, weight of its specific concepts covered)."""
    total = sum(c.weight for c in found)
    if not total:
        return 0.0, 0.0
    spelled = Spelled.of(text)
    hit = [c for c in found if covered(c, spelled)]
    return sum(c.weight for c in hit) / total, sum(c.weight for c in hit if c.weight >= 1.0)
