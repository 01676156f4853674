"""Build the bundled fine-tuning datasets from the course catalog (deterministic, rerunnable).

    python training/datasets/build_datasets.py          # rewrites course_sft.jsonl and course_preference.jsonl
    python training/datasets/build_datasets.py --check  # exit 1 if the committed files are out of date

Every fact comes from `knowledge/course/catalog.yaml` (via `load_catalog()`); the sentences around
the facts are written here. English and Chinese questions are mixed so a fine-tune keeps both.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from llmtutor.knowledge.catalog import Catalog, Module, load_catalog

HERE = Path(__file__).resolve().parent
SFT_FILE = HERE / "course_sft.jsonl"
PREFERENCE_FILE = HERE / "course_preference.jsonl"
SEED = 20240801

KIND_ZH = {
    "article": "文章",
    "book": "书籍",
    "course": "课程",
    "dataset": "数据集",
    "documentation": "文档",
    "leaderboard": "排行榜",
    "model": "模型",
    "notebook": "笔记本",
    "paper": "论文",
    "repo": "代码仓库",
    "tool": "工具",
    "video": "视频",
    "website": "网站",
}
CATEGORY_ZH = {"tools": "工具类", "fine-tuning": "微调类", "quantization": "量化类", "other": "其他类"}
UNHELPFUL = (
    "I don't know.",
    "You can search the internet for that.",
    "That is not important for learning LLMs.",
    "我不知道。",
    "这个问题不重要，跳过吧。",
)


def _a(instruction: str, output: str, input_: str = "") -> dict[str, str]:
    return {"instruction": instruction, "input": input_, "output": output}


def _an(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _low(text: str) -> str:
    """Lower-case a sentence start after a colon, but not an acronym ("LLM", "GPU")."""
    return text if text[1:2].isupper() else text[:1].lower() + text[1:]


def _track_of(catalog: Catalog, module: Module) -> Any:
    return next(t for t in catalog.tracks if t.id == module.track)


def _code(catalog: Catalog, module: Module) -> str:
    return f"{_track_of(catalog, module).order}.{module.order}"


def _names(items: list[str], limit: int = 4, zh: bool = False) -> str:
    shown = items[:limit]
    if zh:
        return "、".join(shown) + ("等" if len(items) > limit else "")
    text = ", ".join(shown[:-1]) + (f" and {shown[-1]}" if len(shown) > 1 else shown[0])
    return text + (" among others" if len(items) > limit else "")


def module_rows(catalog: Catalog) -> list[dict[str, str]]:
    rows = []
    for mod in catalog.modules():
        track = _track_of(catalog, mod)
        code = _code(catalog, mod)
        titles = [r.title for r in mod.resources]
        rows += [
            _a(
                f'What does the module "{mod.title}" cover?',
                f"{mod.summary} Its topics are {_names(mod.topics, 6)}. It is module {code} of the LLM Course, "
                f"in the {track.title} track.",
            ),
            _a(
                f"「{mod.title_zh}」模块讲什么？",
                f"{mod.summary_zh}主要主题包括：{_names(mod.topics_zh, 6, zh=True)}。它是课程中的第 {code} 个模块，属于{track.title_zh}部分。",
            ),
            _a(
                f"Which resources does the LLM Course recommend for {mod.title}?",
                f"The course lists {len(titles)} resources for {mod.title}, for example {_names(titles, 3)}. "
                "Start with the first one: the list is in the order the course suggests.",
            ),
            _a(
                f"{mod.title_zh}模块推荐了多少个学习资源？",
                f"课程为{mod.title_zh}模块列出了 {len(titles)} 个资源，例如：{_names(titles, 3, zh=True)}。",
            ),
            _a(
                f"Where is {mod.title} in the course?",
                f"{mod.title} is module {code}: number {mod.order} of the "
                f"{track.title} track ({track.title_zh}), which is part {track.order} of the course.",
            ),
        ]
    return rows


def resource_rows(catalog: Catalog) -> list[dict[str, str]]:
    rows = []
    for i, (mod, res) in enumerate(catalog.resources()):
        if i % 3 == 2:  # every third question in Chinese
            who = f"的作者是 {res.author}" if res.author else "在课程中没有注明作者"
            rows.append(
                _a(
                    f"《{res.title}》是谁写的？",
                    f"《{res.title}》{who}。它是「{mod.title_zh}」模块列出的{KIND_ZH[res.kind]}资源。",
                )
            )
        else:
            who = f"is by {res.author}" if res.author else "has no author named in the course"
            rows.append(
                _a(
                    f'Who made "{res.title}"?',
                    f'"{res.title}" {who}. The course lists it as {_an(res.kind)} in the {mod.title} module '
                    f"({_code(catalog, mod)}).",
                )
            )
    return rows


def notebook_rows(catalog: Catalog) -> list[dict[str, str]]:
    rows = []
    for nb in catalog.notebooks:
        mods = [catalog.module(m) for m in nb.modules]
        related = _names([m.title for m in mods], 3) if mods else "no specific module"
        rows += [
            _a(
                f'What does the "{nb.name}" notebook do?',
                f"{nb.description} It is one of the course's {nb.category} notebooks and goes with {related}.",
            ),
            _a(
                f"「{nb.name}」笔记本是做什么的？",
                f"{nb.description_zh}它属于课程的{CATEGORY_ZH[nb.category]}笔记本。",
            ),
        ]
    return rows


def glossary_rows(catalog: Catalog) -> list[dict[str, str]]:
    rows = []
    for i, term in enumerate(catalog.glossary):
        mod = catalog.module(term.modules[0])
        kind = i % 3
        if kind == 0:
            rows.append(
                _a(
                    f'How do you say "{term.en}" in Chinese?',
                    f'"{term.en}" is {term.zh} in Chinese. Meaning: {term.definition}',
                )
            )
        elif kind == 1:
            rows.append(
                _a(
                    f"「{term.zh}」用英文怎么说？",
                    f"「{term.zh}」的英文是 {term.en}，在「{mod.title_zh}」模块中会讲到。",
                )
            )
        else:
            rows.append(
                _a(
                    f"Explain {term.en} in one sentence.",
                    f"{_cap(term.en)}: {_low(term.definition)} The course covers it in {mod.title}.",
                )
            )
    return rows


def course_rows(catalog: Catalog) -> list[dict[str, str]]:
    c = catalog.course
    tracks = sorted(catalog.tracks, key=lambda t: t.order)
    rows = [
        _a("Who wrote the LLM Course?", f"The {c.title} was written by {c.author}; it lives at {c.url}."),
        _a("LLM 课程的作者是谁？", f"《{c.title_zh}》的作者是 {c.author}，地址是 {c.url}。"),
        _a(
            "What are the parts of the LLM Course?",
            "It has three parts: " + "; ".join(f"{t.title} ({t.summary})" for t in tracks),
        ),
        _a(
            "LLM 课程分为哪几个部分？",
            "课程分为三部分：" + "；".join(f"{t.title_zh}（{t.summary_zh}）" for t in tracks),
        ),
        _a(
            "How many notebooks does the course have?",
            f"The course lists {len(catalog.notebooks)} notebooks: "
            + ", ".join(f"{sum(nb.category == k for nb in catalog.notebooks)} {k}" for k in CATEGORY_ZH)
            + ".",
        ),
        _a(
            "How many modules are in the LLM Course?",
            f"{len(catalog.modules())} modules: "
            + ", ".join(f"{len(t.modules)} in {t.title}" for t in tracks)
            + ".",
        ),
    ]
    for t in tracks:
        rows += [
            _a(
                f"Which modules are in {t.title}?",
                f"{t.title} has {len(t.modules)} modules: "
                + "; ".join(f"{t.order}.{m.order} {m.title}" for m in t.modules)
                + ".",
            ),
            _a(
                f"{t.title_zh}包含哪些模块？",
                f"{t.title_zh}共有 {len(t.modules)} 个模块："
                + "；".join(f"{t.order}.{m.order} {m.title_zh}" for m in t.modules)
                + "。",
            ),
        ]
    return rows


def sft_rows(catalog: Catalog) -> list[dict[str, str]]:
    rows = course_rows(catalog) + module_rows(catalog) + notebook_rows(catalog)
    rows += resource_rows(catalog) + glossary_rows(catalog)
    random.Random(SEED).shuffle(rows)  # mixed order: a short run still sees every kind of question
    return rows


def _pref(prompt: str, chosen: str, rejected: str) -> dict[str, str]:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def preference_rows(catalog: Catalog) -> list[dict[str, str]]:
    rng = random.Random(SEED)
    rows: list[dict[str, str]] = []
    authored = [(m, r) for m, r in catalog.resources() if r.author]
    authors = sorted({r.author for _, r in authored if r.author})
    for mod, res in authored[::2][:40]:  # a wrong author is the classic hallucination
        wrong = rng.choice([a for a in authors if a != res.author])
        rows.append(
            _pref(
                f'Who made "{res.title}"?',
                f'"{res.title}" is by {res.author}; the course lists it in {mod.title}.',
                f'"{res.title}" was written by {wrong}.',
            )
        )
    terms = catalog.glossary
    for i, term in enumerate(terms[::4][:40]):  # a confident wrong translation
        other = terms[(terms.index(term) + 7) % len(terms)]
        if i % 2:
            rows.append(
                _pref(
                    f"「{term.zh}」用英文怎么说？",
                    f"「{term.zh}」的英文是 {term.en}。",
                    f"「{term.zh}」的英文是 {other.en}。",
                )
            )
        else:
            rows.append(
                _pref(
                    f'How do you say "{term.en}" in Chinese?',
                    f'"{term.en}" is {term.zh}. Meaning: {term.definition}',
                    f'"{term.en}" is {other.zh}.',
                )
            )
    tracks = {t.id: t for t in catalog.tracks}
    for mod in catalog.modules():  # the right place in the course vs a wrong track
        wrong = next(t for tid, t in tracks.items() if tid != mod.track)
        rows.append(
            _pref(
                f"Which part of the LLM Course teaches {mod.title}?",
                f"{mod.title} is module {_code(catalog, mod)}, in {tracks[mod.track].title}. {mod.summary}",
                f"{mod.title} is taught in {wrong.title}.",
            )
        )
    for i, nb in enumerate(catalog.notebooks):  # a helpful answer vs a dismissive one
        rows.append(
            _pref(
                f'What does the "{nb.name}" notebook do?'
                if i % 2 == 0
                else f"「{nb.name}」笔记本是做什么的？",
                nb.description if i % 2 == 0 else nb.description_zh,
                UNHELPFUL[i % len(UNHELPFUL)],
            )
        )
    rng.shuffle(rows)
    return rows


def _dump(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main(argv: list[str]) -> int:
    catalog = load_catalog()
    outputs = {SFT_FILE: _dump(sft_rows(catalog)), PREFERENCE_FILE: _dump(preference_rows(catalog))}
    if "--check" in argv:
        stale = [
            p.name for p, text in outputs.items() if not p.is_file() or p.read_text(encoding="utf-8") != text
        ]
        print("out of date: " + ", ".join(stale) if stale else "up to date")
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.name}: {text.count(chr(10))} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
