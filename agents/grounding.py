"""Keep a model's text honest: about numbers, and on topic.

Models happily write "needs 1.05E-7 GB" next to a correct table. Every sentence
whose numbers do not appear in the tool result (or the learner's request) is
dropped (`drop_ungrounded_sentences`), and so is every sentence that shares no
key term with the result or the question (`drop_off_topic_sentences`). Only
capable backends' text goes through here: on the default 135M model the
explanations are templates (agents/explain) and the model is not asked.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")
# Sentence ends in English and Chinese; newlines end list items.
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")


def _numbers(text: str, skip_small_integers: bool = False) -> set[float]:
    found = set()
    for raw in _NUMBER.findall(text):
        if skip_small_integers and re.fullmatch(r"[-+]?\d", raw):
            continue  # "2 GPUs", "step 3": wording, not claims
        try:
            found.add(float(raw.replace(",", "")))
        except ValueError:
            continue
    return found


def _grounded(value: float, known: set[float]) -> bool:
    # Within ~1% of a known figure: the model may round 14.61 to 14.6.
    return any(abs(value - k) <= 0.011 * abs(k) or value == k for k in known)


def drop_ungrounded_sentences(explanation: str, *sources: str) -> str:
    known: set[float] = set()
    for source in sources:
        known |= _numbers(source)
    kept = [
        sentence.strip()
        for sentence in _SENTENCE.split(explanation)
        if sentence.strip() and all(_grounded(v, known) for v in _numbers(sentence, skip_small_integers=True))
    ]
    return " ".join(kept)


def _key_terms(text: str) -> set[str]:
    """Content words (retrieval tokenizer: jieba for Chinese, stemmed English, no stop words)."""
    from llmtutor.knowledge.rag.lexical import tokenize

    return {t for t in tokenize(text, bigrams=False) if len(t) > 1 and not t.isdigit()}


# Share of a sentence's key terms that may be missing from its sources: a capable model words
# things its own way ("so it fits comfortably"), but a sentence mostly made of terms the result
# and the passages never use ("Mistral-7A (FloPilot-8)", "FPGAs") is not about them.
MAX_NEW_TERMS = 0.4
NEW_TERMS_ALWAYS_ALLOWED = 3  # "take", "largest", "part": short sentences need their own verbs


def drop_off_topic_sentences(explanation: str, *sources: str) -> str:
    """Keep the sentences whose key terms are the sources' (the result, the passages, the question).

    A sentence goes when it shares no key term with them ("QQLMX is a quantum format…"), or when
    more than MAX_NEW_TERMS of its key terms (and more than three) occur in none of them.
    """
    known: set[str] = set()
    for source in sources:
        known |= _key_terms(source)
    kept = []
    for sentence in _SENTENCE.split(explanation):
        terms = _key_terms(sentence) if sentence.strip() else set()
        new = len(terms - known)
        if terms & known and new <= max(NEW_TERMS_ALWAYS_ALLOWED, MAX_NEW_TERMS * len(terms)):
            kept.append(sentence.strip())
    return " ".join(kept)
