"""Writes course_quiz.jsonl, the four-option questions of the local lm-eval task, from the
course catalog (knowledge/course/catalog.yaml). Deterministic: the same catalog gives the
same file, so scores stay comparable across runs.

    .venv/bin/python training/evaluate/tasks/build_course_quiz.py

Three kinds of question, all answerable from the course material alone:
- definition -> term (English): the glossary definition, four glossary terms; the wrong
  options come from the same module first (harder), then the same track;
- Chinese term -> English term (the course is bilingual);
- topic -> module ("Which module lists 'LoRA' among its key topics?"), in English and Chinese.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

N_DEFINITION, N_ZH_TERM, N_TOPIC_EN, N_TOPIC_ZH = 36, 12, 8, 4
SEED = 20240801
OUT = Path(__file__).with_name("course_quiz.jsonl")


def _options(rng: random.Random, right: str, near: list[str], far: list[str]) -> tuple[list[str], int]:
    pool = [x for x in dict.fromkeys(near) if x != right]
    rng.shuffle(pool)
    rest = [x for x in dict.fromkeys(far) if x != right and x not in pool]
    rng.shuffle(rest)
    options = [right, *(pool + rest)[:3]]
    rng.shuffle(options)
    return options, options.index(right)


def build() -> list[dict]:
    from llmtutor.knowledge.catalog import load_catalog

    catalog = load_catalog()
    rng = random.Random(SEED)
    track_of = {m.id: m.track for m in catalog.modules()}
    terms = [t for t in catalog.glossary if t.definition and len(t.definition) > 30]
    items: list[dict] = []

    def near_terms(term, field: str) -> tuple[list[str], list[str]]:
        mods = set(term.modules)
        tracks = {track_of[m] for m in mods}
        near = [getattr(t, field) for t in terms if set(t.modules) & mods]
        far = [getattr(t, field) for t in terms if {track_of[m] for m in t.modules} & tracks]
        return near, far

    # Spread over the whole glossary (course order) rather than its first modules.
    picks = rng.sample(range(len(terms)), N_DEFINITION + N_ZH_TERM)
    for i in sorted(picks[:N_DEFINITION]):
        term = terms[i]
        options, answer = _options(rng, term.en, *near_terms(term, "en"))
        items.append(
            {
                "kind": "definition",
                "language": "en",
                "module": term.modules[0],
                "question": f"Which term of the LLM Course matches this definition: {term.definition}",
                "choices": options,
                "answer": answer,
            }
        )
    for i in sorted(picks[N_DEFINITION:]):
        term = terms[i]
        options, answer = _options(rng, term.en, *near_terms(term, "en"))
        items.append(
            {
                "kind": "zh_term",
                "language": "zh",
                "module": term.modules[0],
                "question": f"课程术语「{term.zh}」对应的英文术语是哪一个？",
                "choices": options,
                "answer": answer,
            }
        )

    # Topics that name exactly one module and are not themselves a module title.
    modules = catalog.modules()
    titles = {m.title.casefold() for m in modules}
    owners: dict[str, list] = {}
    for m in modules:
        for en, zh in zip(m.topics, m.topics_zh, strict=True):
            owners.setdefault(en.casefold(), []).append((m, en, zh))
    topics = [v[0] for k, v in owners.items() if len(v) == 1 and k not in titles and len(k) > 4]
    chosen = rng.sample(topics, N_TOPIC_EN + N_TOPIC_ZH)
    for n, (mod, en, zh) in enumerate(chosen):
        same_track = [m for m in modules if m.track == mod.track]
        if n < N_TOPIC_EN:
            options, answer = _options(
                rng, mod.title, [m.title for m in same_track], [m.title for m in modules]
            )
            question = f"Which module of the LLM Course lists '{en}' among its key topics?"
            lang = "en"
        else:
            options, answer = _options(
                rng, mod.title_zh, [m.title_zh for m in same_track], [m.title_zh for m in modules]
            )
            question = f"在 LLM 课程中，哪个模块把「{zh}」列为关键主题？"
            lang = "zh"
        items.append(
            {
                "kind": "topic",
                "language": lang,
                "module": mod.id,
                "question": question,
                "choices": options,
                "answer": answer,
            }
        )
    for n, item in enumerate(items, 1):
        item["id"] = f"cq-{n:03d}"
        assert len(item["choices"]) == 4 and len(set(item["choices"])) == 4, item
    return items


def main() -> None:
    items = build()
    OUT.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in items), encoding="utf-8")
    print(f"wrote {len(items)} questions to {OUT}")


if __name__ == "__main__":
    main()
