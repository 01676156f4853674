"""Keep a model's explanation of a tool result honest about numbers.

Small models (the 135M default) happily write "needs 1.05E-7 GB" next to a
correct table. Every sentence of the explanation whose numbers do not appear
in the tool result (or the learner's request) is dropped; what remains is the
model's wording around the real figures.
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
