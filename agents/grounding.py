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


def drop_off_topic_sentences(explanation: str, *sources: str) -> str:
    """Keep the sentences that share a key term with the sources (the result, the question).

    A capable model's sentence about something else ("QQLMX is a quantum format…") names
    nothing the learner asked or the tool returned, so it goes, whatever its numbers.
    """
    known: set[str] = set()
    for source in sources:
        known |= _key_terms(source)
    kept = [
        sentence.strip()
        for sentence in _SENTENCE.split(explanation)
        if sentence.strip() and _key_terms(sentence) & known
    ]
    return " ".join(kept)
