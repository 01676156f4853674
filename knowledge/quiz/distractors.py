"""Wrong options for multiple-choice questions: other glossary terms, from near to far.

A distractor must be plausible but not a second right answer. Candidates come in tiers - terms
of the same module, then of neighbouring modules, then of the same track, then any - and are
written the way the blanked term was (`display`: Chinese, abbreviation or English), so the
options do not give the answer away by their form. Near-duplicates of the answer ("LoRA" /
"QLoRA") and terms the prompt itself mentions are skipped. Used by the generators in
`generate.py`; deterministic for a given random generator.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from llmtutor.knowledge.catalog import Catalog, GlossaryTerm, _norm
from llmtutor.knowledge.quiz.text import TermMatcher


def is_abbr(spelling: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9.\-]+", spelling)) and sum(c.isupper() for c in spelling) >= 2


def display(term: GlossaryTerm, style: str) -> str:
    if style == "zh":
        return term.zh
    if style == "abbr":
        return next((s for s in (term.en, *term.en_alt) if is_abbr(s)), term.en)
    return term.en


class DistractorPicker:
    """Picks `count` wrong terms for an answer term, per module (tiers are cached per module)."""

    def __init__(self, catalog: Catalog, matcher: TermMatcher):
        self.catalog = catalog
        self.matcher = matcher
        self._modules = {m.id: m for m in catalog.modules()}

    @lru_cache(maxsize=64)  # noqa: B019 - one picker per bank, one bank per process
    def tiers(self, module_id: str) -> tuple[tuple[GlossaryTerm, ...], ...]:
        order = [m.id for m in self.catalog.modules()]
        here, track = order.index(module_id), self._modules[module_id].track
        near = {order[i] for i in (here - 1, here + 1, here - 2, here + 2) if 0 <= i < len(order)}
        tiers: list[list[GlossaryTerm]] = [[], [], [], []]
        for term in self.catalog.glossary:
            tier = (
                0
                if module_id in term.modules
                else 1
                if near & set(term.modules)
                else 2
                if any(m.startswith(track + ".") for m in term.modules)
                else 3
            )
            tiers[tier].append(term)
        return tuple(tuple(t) for t in tiers)

    def pick(
        self,
        answer: GlossaryTerm,
        module_id: str,
        rng: random.Random,
        count: int,
        exclude_text: str,
        style: str,
    ) -> list[GlossaryTerm]:
        """Other terms of the same module, then neighbouring modules, then the track, then any."""
        shown = _norm(display(answer, style))
        mentioned = {h[3].en for h in self.matcher.matches(exclude_text)}
        picked: list[GlossaryTerm] = []
        for tier in self.tiers(module_id):
            tier = list(tier)
            rng.shuffle(tier)
            if style == "abbr":  # "AWQ, GPTQ, EXL2" rather than "AWQ, GPTQ, absmax quantization"
                tier.sort(key=lambda t: not is_abbr(display(t, "abbr")))
            for term in tier:
                text = _norm(display(term, style))
                if len(picked) == count:
                    return picked
                if (
                    term is answer
                    or text in shown
                    or shown in text
                    or any(text == _norm(display(p, style)) for p in picked)
                ):
                    continue  # near-duplicates ("LoRA" / "QLoRA") make two right answers
                if term.en in mentioned:
                    continue  # a term the prompt itself mentions would be a giveaway or a trap
                picked.append(term)
        return picked
