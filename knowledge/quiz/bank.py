"""The question bank: every question the catalog and notes support, and the pick for one quiz.

`QuestionBank` builds the notes' sections and the glossary matcher once, has
`generate.QuestionGenerator` write each module's questions on first use (per module and
language, then cached), resolves a learner's topic (English or Chinese) to module ids, and
`select`s n questions for a quiz: unseen and on-focus first, spread over sections, multiple
choice and short answers interleaved, deterministic for a seed. `default_bank` is the one bank
over the bundled catalog and notes. No LLM.
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

from llmtutor.knowledge import NOTES_DIR
from llmtutor.knowledge.catalog import Catalog, Module, _norm, load_catalog
from llmtutor.knowledge.quiz.generate import QuestionGenerator
from llmtutor.knowledge.quiz.questions import Question
from llmtutor.knowledge.quiz.text import Lang, NoteSection, TermMatcher, parse_notes
from llmtutor.knowledge.quiz.topics import Topic, UnknownTopicError, find_topic_in, resolve_topic

__all__ = ["QuestionBank", "Topic", "UnknownTopicError", "default_bank"]


class QuestionBank:
    """All questions the catalog and notes support, per module and language (cached)."""

    def __init__(self, catalog: Catalog | None = None, notes_dir: Path | None = None):
        self.catalog = catalog or load_catalog()
        self.notes_dir = notes_dir or NOTES_DIR
        self._modules = {m.id: m for m in self.catalog.modules()}
        sections = [s for p in sorted(self.notes_dir.glob("*.md")) for s in parse_notes(p, self.catalog)]
        self.matcher = TermMatcher(self.catalog.glossary)
        self._generator = QuestionGenerator(self.catalog, sections, self.matcher)
        self._cache: dict[tuple[str, str], list[Question]] = {}

    # ----- topics -------------------------------------------------------------
    def resolve(self, topic: str | None) -> Topic:
        """Module ids (and glossary focus) for a topic in English or Chinese; UnknownTopicError otherwise."""
        return resolve_topic(self.catalog, self.matcher, topic)

    def find_topic(self, text: str) -> str | None:
        """The topic named inside a request, as written ("Quiz me on LoRA" → "LoRA")."""
        return find_topic_in(self.catalog, text)

    def module(self, module_id: str) -> Module:
        return self._modules[module_id]

    # ----- questions ----------------------------------------------------------
    def questions(self, module_id: str, language: Lang) -> list[Question]:
        key = (module_id, language)
        if key not in self._cache:
            self._cache[key] = self._generator.questions(module_id, language)
        return self._cache[key]

    def counts(self) -> dict[str, dict[str, int]]:
        """Questions per module: {"scientist.quantization": {"mc_en": …, "short_en": …, "mc_zh": …, …}}."""
        out: dict[str, dict[str, int]] = {}
        for mid in self._modules:
            row = out.setdefault(mid, {})
            for lang in ("en", "zh"):
                qs = self.questions(mid, lang)  # type: ignore[arg-type]
                row[f"mc_{lang}"] = sum(q.kind == "mc" for q in qs)
                row[f"short_{lang}"] = sum(q.kind == "short" for q in qs)
        return out

    def select(
        self,
        topic: Topic,
        n: int,
        kind: str,
        language: Lang,
        seed: int = 0,
        avoid: frozenset[str] = frozenset(),
    ) -> list[Question]:
        """n questions for a quiz: unseen and on-focus first, spread over sections, mc/short interleaved."""
        rng = random.Random(seed)
        pool = [q for mid in topic.module_ids for q in self.questions(mid, language)]
        focus = {_norm(f) for f in topic.focus}

        def ordered(items: list[Question]) -> list[Question]:
            rng.shuffle(items)
            items.sort(key=lambda q: (q.id in avoid, not focus & {_norm(f) for f in q.focus}))
            groups: dict[tuple[str, str], list[Question]] = {}
            for q in items:
                groups.setdefault((q.module_id, q.passage.heading), []).append(q)
            spread, queues = [], list(groups.values())
            while queues:  # round-robin over sections: no three questions on one paragraph
                spread += [queue.pop(0) for queue in queues]
                queues = [queue for queue in queues if queue]
            return spread

        mc = ordered([q for q in pool if q.kind == "mc"]) if kind in ("mc", "mixed") else []
        short = ordered([q for q in pool if q.kind == "short"]) if kind in ("short", "mixed") else []
        chosen: list[Question] = []
        while len(chosen) < n and (mc or short):
            want_short = kind == "short" or (kind == "mixed" and len(chosen) % 2 == 1)
            source = (short or mc) if want_short else (mc or short)
            candidate = source.pop(0)
            if not any(_gives_away(earlier, candidate) for earlier in chosen):
                chosen.append(candidate)
        return chosen

    def key_sentences(self, section: NoteSection, limit: int = 3) -> str:
        """The section's first sentence plus its most term-dense ones, in reading order."""
        return self._generator.key_sentences(section, limit)


@lru_cache(maxsize=4)
def default_bank(notes_dir: str | None = None) -> QuestionBank:
    """The bank over the bundled catalog and notes, built once per process (~0.1 s)."""
    return QuestionBank(load_catalog(), Path(notes_dir) if notes_dir else None)


def _gives_away(earlier: Question, later: Question) -> bool:
    """Whether a question asked earlier shows a later one's answer in its prompt (two blanks cut
    from one sentence, a definition whose term is the next answer): the later one is skipped.
    The other way round is harmless: the earlier question is answered before the later is shown."""
    answer = _norm(later.answer)
    return len(answer) >= 3 and answer in _norm(earlier.prompt)  # an option is only a distractor
