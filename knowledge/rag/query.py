"""What a question asks for: weighted BM25 terms, its concepts, and how specific each one is.

A concept is one word of the question, or one glossary term with all its
spellings (English, Simplified and Traditional Chinese, abbreviations).
Concepts drive two decisions after BM25: ranking chunks by how many of the
question's concepts they hold, and deciding whether the notes answer the
question at all.

Everyday words ("popular", "now", 东西, 今天) weigh less than specific ones
(LoRA, 古德哈特, pizza): in a mostly-Chinese corpus an English "top" is
rare, so IDF alone would call it the most important word of "What does
QLoRA add on top of LoRA?". Everyday = a whole word of MiniLM's English
WordPiece vocabulary (a list of common English words, shipped with the
model) or a frequent word of jieba's Chinese dictionary. Course terms from
the glossary are never everyday words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from llmtutor.knowledge.rag.glossary import QueryExpander
from llmtutor.knowledge.rag.lexical import BM25Index, jieba_module, tokenize
from llmtutor.knowledge.rag.ranking import TermGroup
from llmtutor.text import has_cjk

EVERYDAY_WEIGHT = 0.3  # an everyday word counts this much of a specific one
_ZH_EVERYDAY_FREQ = 1000  # jieba dictionary count above which a Chinese word is everyday


@lru_cache(maxsize=4)
def english_vocabulary(vocab_file: str) -> frozenset[str]:
    """Whole, alphabetic words of a WordPiece vocabulary (BERT's: ~20k common English words)."""
    path = Path(vocab_file)
    if not path.is_file():
        return frozenset()
    words = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(w for w in words if len(w) > 1 and w.isascii() and w.isalpha())


def find_vocab_file(model_path: str | None) -> str:
    """vocab.txt of the embedding model, or of the bundled MiniLM."""
    if model_path and (Path(model_path) / "vocab.txt").is_file():
        return str(Path(model_path) / "vocab.txt")
    try:
        from llmtutor.assets import default_embed_path

        return str(default_embed_path() / "vocab.txt")
    except Exception:  # no bundled model: every English word counts as specific
        return ""


@dataclass(frozen=True)
class QueryAnalysis:
    weights: dict[str, float]  # BM25 term → weight
    groups: list[TermGroup]  # the question's concepts
    added: list[str]  # glossary spellings added to the question


class QueryAnalyzer:
    def __init__(self, bm25: BM25Index, expander: QueryExpander, vocab_file: str, expansion_weight: float):
        self.bm25 = bm25
        self.expander = expander
        self.english = english_vocabulary(vocab_file) if vocab_file else frozenset()
        self.expansion_weight = expansion_weight
        self._freq = jieba_module().dt.FREQ

    def everyday(self, token: str) -> bool:
        if token.isdigit():
            return True
        if has_cjk(token):
            return len(token) == 1 or self._freq.get(token, 0) >= _ZH_EVERYDAY_FREQ
        return token in self.english

    def _known(self, spellings: Iterable[str]) -> bool:
        for spelling in spellings:
            tokens = tokenize(spelling)
            if tokens and all(t in self.bm25.vocab for t in tokens):
                return True
        return False

    def analyze(self, query: str, expand: bool = True) -> QueryAnalysis:
        own = tokenize(query)
        weights = self.bm25.term_weights(own)
        words = list(dict.fromkeys(tokenize(query, bigrams=False)))
        groups: list[TermGroup] = []
        added: list[str] = []
        for expansion in self.expander.expand(query) if expand else []:
            matched = tokenize(expansion.matched, bigrams=False)
            words = [w for w in words if w not in set(matched)]
            spellings = [expansion.matched, *expansion.alternatives]
            for spelling in expansion.alternatives:
                tokens = tokenize(spelling)
                added.append(spelling)
                # A spelling's tokens share one weight: a long spelling must not outvote the question.
                share = self.expansion_weight / max(1.0, len(tokens) ** 0.5)
                for token, w in self.bm25.term_weights(tokens, share).items():
                    weights[token] = max(weights.get(token, 0.0), w)
            everyday = expansion.kind == "word" and all(self.everyday(t) for t in matched)
            groups.append(
                TermGroup(
                    weight_tokens=tuple(matched),
                    token_spellings=tuple(
                        tuple(tokenize(s, bigrams=False)) for s in spellings if not has_cjk(s)
                    ),
                    text_spellings=tuple(s.lower().replace(" ", "") for s in spellings if has_cjk(s)),
                    known=self._known(spellings),
                    weight=EVERYDAY_WEIGHT if everyday else 1.0,
                )
            )
        for word in words:
            groups.append(
                TermGroup(
                    weight_tokens=(word,),
                    token_spellings=((word,),) if not has_cjk(word) else (),
                    text_spellings=(word,) if has_cjk(word) else (),
                    known=word in self.bm25.vocab,
                    weight=EVERYDAY_WEIGHT if self.everyday(word) else 1.0,
                )
            )
        return QueryAnalysis(weights=weights, groups=[g for g in groups if g.weight_tokens], added=added)
