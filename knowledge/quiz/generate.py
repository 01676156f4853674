"""Quiz questions generated deterministically from the course catalog and notes (no LLM).

`QuestionGenerator.questions(module_id, language)` writes every question one module supports,
from three sources:
- fill-in-the-blank multiple choice ("cloze") from the notes' key-idea sections: a sentence with
  a glossary term blanked; the distractors are other glossary terms of the same or neighbouring
  modules, written the way the blanked term was (Chinese, abbreviation or English), so the
  options do not give the answer away (`distractors.py`);
- glossary multiple choice: which term matches a definition, and what a term means;
- short answer, one per key-idea section: explain the idea; the reference is the section's key
  sentences and the rubric its key terms, each with all its English and Chinese spellings.
Ids are hashes of the source, so the same notes give the same questions in every run. Why no
LLM: the default chat model (SmolLM2-135M) cannot write sound questions. An optional LLM writer
(`llm.py`) falls back to these. Caching and choosing questions for a quiz is `bank.py`.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter

from llmtutor.knowledge.catalog import Catalog, GlossaryTerm, _norm
from llmtutor.knowledge.quiz.distractors import DistractorPicker, display, is_abbr
from llmtutor.knowledge.quiz.questions import KeyTerm, Passage, Question
from llmtutor.knowledge.quiz.text import (
    GENERIC_TECH,
    TECH,
    Lang,
    NoteSection,
    TermMatcher,
    keywords,
    mentions,
    spelling_pattern,
    split_sentences,
)
from llmtutor.text import CJK


def _stable_id(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:12]


class QuestionGenerator:
    """Writes the questions of one module and language from the notes' sections and the glossary."""

    def __init__(self, catalog: Catalog, sections: list[NoteSection], matcher: TermMatcher):
        self.catalog = catalog
        self.sections = sections
        self.matcher = matcher
        self.distractors = DistractorPicker(catalog, matcher)
        self._modules = {m.id: m for m in catalog.modules()}

    def questions(self, module_id: str, language: Lang) -> list[Question]:
        """Cloze, glossary and short-answer questions, in that order, without duplicate ids."""
        sections = [s for s in self.sections if s.module_id == module_id and s.language == language]
        freq = Counter(h[3].en for s in sections for h in self._matches(s.text))
        found = [q for s in sections for q in self._cloze(s, freq)]
        found += self._glossary_questions(module_id, language)
        found += [q for s in sections if (q := self._short(s)) is not None]
        unique = {q.id: q for q in found}
        return list(unique.values())

    def _matches(self, text: str) -> list[tuple[int, int, str, GlossaryTerm]]:
        return self.matcher.matches(text)

    def _mc(
        self,
        qid: str,
        module_id: str,
        language: Lang,
        origin: str,
        prompt: str,
        answer: str,
        wrong: list[str],
        passage: Passage,
        explanation: str,
        focus: list[str],
    ) -> Question:
        options = [answer, *wrong]
        random.Random(qid).shuffle(options)  # the right letter varies, the same for every run
        return Question(
            id=qid,
            kind="mc",
            origin=origin,
            module_id=module_id,
            language=language,
            prompt=prompt,
            options=options,
            answer_index=options.index(answer),
            answer=answer,
            passage=passage,
            explanation=explanation,
            focus=focus,
        )  # type: ignore[arg-type]

    def _cloze(self, section: NoteSection, freq: Counter[str]) -> list[Question]:
        out = []
        zh = section.language == "zh"
        passage = Passage(
            source=section.source,
            heading=section.path,
            text=section.text,
            module_id=section.module_id,
            language=section.language,
        )
        for sentence in split_sentences(section.text, section.language):
            if not (20 if zh else 60) <= len(sentence) <= (160 if zh else 320):
                continue
            hits = self._matches(sentence)
            # The best blank is one of the module's own terms, and a specific one: "absmax" rather
            # than "quantization", which the quantization notes use everywhere. One blank per sentence.
            hits.sort(key=lambda h: (section.module_id not in h[3].modules, freq[h[3].en], -len(h[2])))
            for start, end, spelling, term in hits:
                shown = sentence[start:end]
                others = [s for s in term.spellings() if _norm(s) != _norm(spelling)]
                if any(spelling_pattern(s).search(sentence) for s in others):
                    continue  # "FP32, FP16, INT8" all spell one term: the blank would be ambiguous
                blanked = spelling_pattern(spelling).sub("____", sentence)
                if shown.casefold() in blanked.casefold():
                    continue  # still visible, e.g. "quantization" in "quantization-aware"
                if len(blanked) - blanked.count("____") * 4 < (15 if zh else 40):
                    continue
                style = "zh" if CJK.search(spelling) else "abbr" if is_abbr(spelling) else "en"
                qid = _stable_id("cloze", section.source, section.heading, sentence, spelling)
                wrong = self.distractors.pick(term, section.module_id, random.Random(qid), 3, sentence, style)
                if len(wrong) < 3:
                    continue
                title = (
                    self._modules[section.module_id].title_zh
                    if zh
                    else self._modules[section.module_id].title
                )
                prompt = (
                    f"填空（课程笔记《{title}》）：\n\n> {blanked}"
                    if zh
                    else f"Fill in the blank (course notes, {title}):\n\n> {blanked}"
                )
                explanation = f"笔记原文：“{sentence}”" if zh else f"The notes say: “{sentence}”"
                out.append(
                    self._mc(
                        qid,
                        section.module_id,
                        section.language,
                        "cloze",
                        prompt,
                        shown,
                        [display(t, style) for t in wrong],
                        passage,
                        explanation,
                        [term.en],
                    )
                )
                break
        return out

    def _glossary_questions(self, module_id: str, language: Lang) -> list[Question]:
        out = []
        zh = language == "zh"
        for term in (t for t in self.catalog.glossary if module_id in t.modules):
            shown = f"{term.zh}（{term.en}）" if zh else term.en
            alts = " / ".join(term.en_alt)
            passage = Passage(
                source="catalog.yaml",
                heading=f"{'术语表' if zh else 'Glossary'} > {shown}",
                text=f"{shown}{f' ({alts})' if alts else ''}: {term.definition}",
                module_id=module_id,
                language=language,
            )
            explanation = f"{shown}：{term.definition}" if zh else f"{term.en} ({term.zh}): {term.definition}"
            own = [spelling_pattern(s) for s in term.spellings()]
            if not any(p.search(term.definition) for p in own):  # the definition must not name its term
                qid = _stable_id("definition", module_id, language, term.en)
                wrong = self.distractors.pick(term, module_id, random.Random(qid), 3, term.definition, "en")
                prompt = (
                    f"下面的定义描述的是哪个术语？\n\n> {term.definition}"
                    if zh
                    else f"Which term matches this definition?\n\n> {term.definition}"
                )
                if len(wrong) == 3:
                    out.append(
                        self._mc(
                            qid,
                            module_id,
                            language,
                            "definition",
                            prompt,
                            shown,
                            [f"{t.zh}（{t.en}）" if zh else t.en for t in wrong],
                            passage,
                            explanation,
                            [term.en],
                        )
                    )
            qid = _stable_id("meaning", module_id, language, term.en)
            wrong_terms = self.distractors.pick(term, module_id, random.Random(qid), 6, "", "en")
            wrong = [t.definition for t in wrong_terms if not any(p.search(t.definition) for p in own)][:3]
            if len(wrong) == 3:
                prompt = f"“{term.zh}”（{term.en}）指的是什么？" if zh else f"What does “{term.en}” mean?"
                out.append(
                    self._mc(
                        qid,
                        module_id,
                        language,
                        "meaning",
                        prompt,
                        term.definition,
                        wrong,
                        passage,
                        explanation,
                        [term.en],
                    )
                )
        return out

    def _short(self, section: NoteSection) -> Question | None:
        zh = section.language == "zh"
        mod = self._modules[section.module_id]
        subject, _, detail = section.heading.partition("：" if "：" in section.heading else ": ")
        if zh:
            prompt = f"简答（模块《{mod.title_zh}》）：请用几句话解释“{section.heading}”的核心内容，并提到关键术语。"
        elif detail:
            prompt = f"Short answer ({mod.title}): explain {subject} ({detail}) in a few sentences, with the key terms."
        else:
            prompt = (
                f"Short answer ({mod.title}): explain “{subject}” in a few sentences, with the key terms."
            )
        reference = self.key_sentences(section)
        other = next(
            (
                s
                for s in self.sections
                if s.module_id == section.module_id
                and s.index == section.index
                and s.language != section.language
            ),
            None,
        )
        terms = self._key_terms(reference, prompt, section)
        if len(terms) < 2:
            return None
        passage = Passage(
            source=section.source,
            heading=section.path,
            text=section.text,
            module_id=section.module_id,
            language=section.language,
        )
        return Question(
            id=_stable_id("short", section.source, section.heading),
            kind="short",
            origin="key_idea",
            module_id=section.module_id,
            language=section.language,
            prompt=prompt,
            answer=reference,
            reference_alt=self.key_sentences(other) if other else "",
            key_terms=terms,
            explanation=("参考答案取自笔记“" + section.heading + "”一节。")
            if zh
            else f"The reference comes from the notes section “{section.heading}”.",
            passage=passage,
            focus=[t.label for t in terms],
        )

    def key_sentences(self, section: NoteSection, limit: int = 3) -> str:
        """The section's first sentence plus its most term-dense ones, in reading order."""
        sentences = split_sentences(section.text, section.language)

        def density(sentence: str) -> float:
            terms = {h[3].en: section.module_id in h[3].modules for h in self._matches(sentence)}
            return sum(2 if own else 1 for own in terms.values()) + 0.5 * len(set(TECH.findall(sentence)))

        scored = sorted(range(1, len(sentences)), key=lambda i: -density(sentences[i]))
        keep = sorted([0, *scored[: limit - 1]]) if sentences else []
        return (" " if section.language == "en" else "").join(sentences[i] for i in keep)

    def _key_terms(self, reference: str, prompt: str, section: NoteSection, limit: int = 6) -> list[KeyTerm]:
        """Rubric terms, none the prompt names: glossary terms (the module's own first, every spelling),
        technical tokens (FP16, Q4_K_M), then, when fewer than 3, the section's tf-idf keywords."""
        terms: dict[str, KeyTerm] = {}
        hits = sorted(self._matches(reference), key=lambda h: section.module_id not in h[3].modules)
        for _, _, _, term in hits:
            generic = any(s.upper() in GENERIC_TECH for s in term.en_alt)  # "LLM" is in every answer
            if not generic and not mentions(prompt, term.spellings()):
                terms.setdefault(_norm(term.en), KeyTerm(label=term.en, spellings=list(term.spellings())))
        covered = {_norm(s) for t in terms.values() for s in t.spellings}
        for token in TECH.findall(reference):
            if (
                _norm(token) not in covered
                and len(token) >= 3
                and token.upper() not in GENERIC_TECH
                and not mentions(prompt, [token])
            ):
                terms.setdefault(_norm(token), KeyTerm(label=token, spellings=[token]))
        if len(terms) < 3:
            corpus = [s.text for s in self.sections if s.language == section.language]
            for word in keywords(reference, section.text, corpus, section.language, prompt, limit=3):
                if len(terms) < 3 and _norm(word) not in covered:
                    terms.setdefault(_norm(word), KeyTerm(label=word, spellings=[word]))
        if len(terms) < 2:  # the heading's own terms, as a last resort: the answer should use them too
            for _, _, _, term in hits:
                terms.setdefault(_norm(term.en), KeyTerm(label=term.en, spellings=list(term.spellings())))
        return list(terms.values())[:limit]
