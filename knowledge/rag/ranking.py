"""Re-ranking steps after fusion: near-duplicate removal, MMR diversity, query-term coverage.

Similarity between chunks is measured on character shingles rather than
MiniLM vectors: it works the same for Chinese and English text and catches
the case that matters here, the same paragraph pasted into several notes
(or several translations of the course that kept the English terms).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_NOISE_RE = re.compile(r"[\W_]+")
SHINGLE = 4


def shingles(text: str, size: int = SHINGLE) -> frozenset[str]:
    """Character n-grams of the text without spaces and punctuation, lower-cased."""
    compact = _NOISE_RE.sub("", text.lower())
    if len(compact) <= size:
        return frozenset({compact}) if compact else frozenset()
    return frozenset(compact[i : i + size] for i in range(len(compact) - size + 1))


class PairSimilarity:
    """Jaccard and containment between items of a small pool, each pair computed once."""

    def __init__(self, sets: Sequence[frozenset[str]]):
        self.sets = sets
        self._cache: dict[tuple[int, int], tuple[float, float]] = {}

    def __call__(self, i: int, j: int) -> tuple[float, float]:
        key = (i, j) if i < j else (j, i)
        found = self._cache.get(key)
        if found is None:
            a, b = self.sets[i], self.sets[j]
            inter = len(a & b) if a and b else 0
            found = (inter / (len(a) + len(b) - inter), inter / min(len(a), len(b))) if inter else (0.0, 0.0)
            self._cache[key] = found
        return found


def near_duplicates(similarity: PairSimilarity, threshold: float) -> list[int]:
    """Indices to keep, in order: each dropped item is near-identical to an earlier kept one
    (Jaccard above `threshold`, or 95% of it contained in the other)."""
    kept: list[int] = []
    for i in range(len(similarity.sets)):
        if all(similarity(i, j)[0] < threshold and similarity(i, j)[1] < 0.95 for j in kept):
            kept.append(i)
    return kept


def mmr(
    scores: Sequence[float], items: Sequence[int], similarity: PairSimilarity, k: int, lam: float
) -> list[int]:
    """Maximal marginal relevance over `items` (indices into `similarity`); returns positions in `items`."""
    if not scores:
        return []
    # Min-max, not s/max: fused RRF scores differ by a few percent, which the
    # redundancy term would swamp.
    low, high = min(scores), max(scores)
    relevance = [(s - low) / (high - low) if high > low else 1.0 for s in scores]
    chosen: list[int] = []
    rest = list(range(len(scores)))
    while rest and len(chosen) < k:

        def gain(i: int) -> float:
            redundancy = max((similarity(items[i], items[j])[0] for j in chosen), default=0.0)
            return lam * relevance[i] - (1 - lam) * redundancy

        best = max(rest, key=gain)
        chosen.append(best)
        rest.remove(best)
    return chosen


@dataclass(frozen=True)
class TermGroup:
    """One concept of the question: a word, or a glossary term with all its spellings."""

    weight_tokens: tuple[str, ...]  # the question's own tokens: their IDF is the concept's weight
    token_spellings: tuple[tuple[str, ...], ...]  # found when all tokens of one spelling are in the chunk
    text_spellings: tuple[str, ...] = ()  # Chinese spellings, found as substrings of the chunk text
    known: bool = True  # some spelling occurs in the corpus at all
    weight: float = 1.0  # lower for everyday words (see knowledge/query.py)


def coverage(
    groups: Sequence[TermGroup],
    tokens: frozenset[str],
    text: str,
    idf: Callable[[str], float],
    known_only: bool = False,
) -> float:
    """Share of the question's concepts present in a chunk, weighted by IDF.

    Words absent from the corpus get the highest IDF: "pizza" weighs a lot
    and matches nothing (unless `known_only` leaves them out). `text` is the
    chunk's lower-cased text without spaces.
    """
    total = hit = 0.0
    for group in groups:
        if known_only and not group.known:
            continue
        weight = group.weight * max((idf(t) for t in group.weight_tokens), default=0.0)
        total += weight
        if holds(group, tokens, text):
            hit += weight
    return hit / total if total else 0.0


def holds(group: TermGroup, tokens: frozenset[str], text: str) -> bool:
    """True when the chunk (its tokens, its lower-cased text without spaces) holds one spelling of the concept."""
    return any(all(t in tokens for t in spelling) for spelling in group.token_spellings if spelling) or any(
        s in text for s in group.text_spellings
    )


def known_share(groups: Sequence[TermGroup]) -> float:
    """Share of the question's concepts (by count, everyday words discounted) that occur in the corpus at all.

    By count, not IDF: an everyday word missing from the notes ("三样东西")
    should not outweigh the course terms next to it, while a question made
    mostly of words the notes never use ("best pizza in Naples") is off-topic.
    """
    total = sum(g.weight for g in groups)
    return sum(g.weight for g in groups if g.known) / total if total else 0.0
