"""How a turn's answer is put together: every sentence the learner sees comes from a tool
result, a course passage or the catalog, or passed a check against them.

Shapes:
- lab tools (memory estimate, decoding, jobs): the tool's own result (exact numbers), then an
  explanation. On the default small model it is a template reading the result's numbers
  (`agents/explain`), with no model call; a capable backend writes it, its sentences are kept
  only when their numbers are in the result and they share a key term with the result or the
  question (grounding.py), and the template stands in when nothing survives;
- cited tools (course search): a capable model answers from the numbered passages and cites
  them ([1], [2]); otherwise (and always on the small model) the answer is extractive: the
  passage sentences closest in meaning to the question that cover its key terms. Citations are
  renumbered 1..n in order of use; the Sources list names each passage's course module and
  section;
- nothing relevant found, a final result (a quiz question, a database answer), a tool error or
  refusal, a declined approval: fixed texts (or the tool's own), no model call;
- no tool: small talk gets the persona's greeting; other questions, on the small model, a "not
  in the course notes" with the two nearest course modules; a capable model's answer is shown
  marked as not from the course notes, without citations or claims about the course.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from llmtutor.agents.explain import explain, notices
from llmtutor.agents.explain.similarity import Embed, concepts, coverage, embed_rows
from llmtutor.agents.explain.topics import course_module, course_url, source_name
from llmtutor.agents.grounding import drop_off_topic_sentences, drop_ungrounded_sentences
from llmtutor.text import detect_language

NOT_FOUND = {
    "en": "I could not find this in the course notes, so I won't guess. Try rephrasing, "
    "or ask about a module (for example quantization, RAG or fine-tuning).",
    "zh": "课程笔记里没有找到相关内容，我不想凭空编造。可以换个说法，或者问某个模块（例如 量化、RAG、微调）。",
}
SOURCES = {"en": "Sources", "zh": "来源"}
_CITE = re.compile(r"\[(\d+)\]")
_CITE_MARK = re.compile(r"\s*\[\d+\]")
# "e.g." and friends end no sentence (a split there leaves "… special tokens, e.g [1].").
_SENTENCES = re.compile(r"(?<=[.!?])(?<!e\.g\.)(?<!i\.e\.)(?<!\bvs\.)(?<!etc\.)\s+|(?<=[。！？；])|\n+")
_ENDS = ".!?。！？；"
# Claims about the course in a model's general answer (it saw no passage, so they are unchecked).
_ABOUT_COURSE = re.compile(
    r"(?<!of )\bcourses?\b|\bnotes\b|\bsyllabus\b|\bmodules? \d|课程|笔记|第.{1,3}(?:章|模块)",
    re.IGNORECASE,
)
_SOURCES_BLOCK = re.compile(r"\n\s*\**\s*(?:sources?|references?|来源|参考)\s*\**\s*:?\s*\n.*", re.I | re.S)
_PIECE = re.compile(r"\s*\S{1,24}|\s+")
# Extractive selection, tuned on course questions (EN/ZH) against the bundled notes. MiniLM's
# cosine alone ranks short, vague sentences first and is weak in Chinese, so it only ranks the
# sentences that pass the key-term threshold; neighbours of a chosen sentence read as a paragraph.
MIN_SHARE = 0.34  # a sentence (with its section heading) covers at least this share of the question
NEAR_BEST = 0.6  # ... and at least this fraction of the best sentence's share
RANK_PENALTY = 0.05  # per place down the retrieval ranking
NEIGHBOUR_BONUS = 0.5  # next to a chosen sentence in the same passage
DUPLICATE_COSINE = 0.9
# Sentences that lean on the one before ("This …", "Both …", "它…"): only right after it.
_ANAPHOR = re.compile(
    r"(?:this|that|these|those|it|its|they|their|both|such|here)\b|(?:这|那|它|其|此|该|两者)", re.I
)


@dataclass
class ComposedAnswer:
    text: str
    explanation: str  # what the UIs show after a tool step (the tool's result is already on screen)
    citations: list[dict[str, Any]] = field(default_factory=list)


def is_cited(run: dict[str, Any] | None) -> bool:
    return bool(run) and (bool(run.get("citations")) or run.get("found") is False)


def needs_model(
    run: dict[str, Any] | None, declined_tool: str | None = None, capable: bool = False, question: str = ""
) -> bool:
    """Whether the answer needs a model call at all: only a capable backend writes, and only where
    there is something to write (never after an error, a refusal, a decline or a final result,
    nor for small talk, which gets the persona's fixed greeting)."""
    if not capable or declined_tool or (not run and notices.small_talk(question)):
        return False
    return not (run and (run.get("error") or run.get("found") is False or run.get("final")))


def system_addition(run: dict[str, Any] | None, declined_tool: str | None = None) -> str:
    if run and is_cited(run):
        passages = "\n\n".join(
            f"[{c['n']}] ({source_label(c, 'en', link=False)})\n{c['text']}" for c in run["citations"]
        )
        return (
            "\n\nAnswer the learner's question using only these course passages. "
            "Cite the passages you use inline as [1], [2]. If they do not answer the question, say so.\n\n"
            + passages
        )
    if run:
        return (
            f"\n\nThe tool {run['tool']} was just run for the learner. Its result:\n{run.get('markdown', '')}\n"
            "Explain in two or three sentences what the result shows. Use only numbers from the result."
        )
    return (
        "\n\nNo course passage was retrieved for this message. Answer briefly from general knowledge and "
        "do not describe what the course or its notes contain."
    )


def compose(
    run: dict[str, Any] | None,
    model_text: str,
    question: str,
    language: str,
    *,
    declined: str | None = None,
    persona: Any = None,
    embed: Embed | None = None,
) -> ComposedAnswer:
    model_text = model_text.strip()
    if model_text and detect_language(model_text) != language:
        model_text = ""  # an English reply to a Chinese question is not the learner's answer
    if declined and not run:
        text = notices.declined(declined, language)
        return ComposedAnswer(text, text)
    if run and run.get("error"):
        text = notices.tool_error(run, language)
        return ComposedAnswer(text, text)
    if not run:
        return _no_tool(model_text, question, language, persona, embed)
    if run.get("found") is False:
        return ComposedAnswer(NOT_FOUND[language], NOT_FOUND[language])
    if run.get("final"):
        return ComposedAnswer(run.get("markdown", ""), run.get("markdown", ""))
    if is_cited(run):
        return _cited(run["citations"], model_text, question, language, embed)
    # A lab tool: the exact result first, then the explanation of it.
    markdown = run.get("markdown", "")
    explanation = ""
    if model_text:
        result = (
            markdown,
            json.dumps(run.get("output", {}), ensure_ascii=False),
            json.dumps(run.get("args", {})),
        )
        checked = drop_ungrounded_sentences(model_text, *result, question)
        explanation = drop_off_topic_sentences(checked, markdown, question)
    explanation = explanation or explain(run["tool"], run.get("output"), run.get("args"), language)
    return ComposedAnswer(f"{markdown}\n\n{explanation}".strip(), explanation)


def _no_tool(
    model_text: str, question: str, language: str, persona: Any, embed: Embed | None
) -> ComposedAnswer:
    chat = notices.small_talk(question)
    if model_text and not chat:  # small talk gets the persona's own words, whatever the model
        body = _SOURCES_BLOCK.sub("", model_text)
        body = " ".join(
            s.strip()
            for s in _SENTENCES.split(_CITE_MARK.sub("", body))
            if s.strip() and not _ABOUT_COURSE.search(s)
        )
        if body:  # general knowledge, unchecked: marked, without citations or claims about the course
            text = f"{notices.GENERAL[language]}\n\n{body}"
            return ComposedAnswer(text, text)
    text = (
        notices.small_talk_reply(chat, persona, language)
        if chat
        else notices.off_course(question, language, embed)
    )
    return ComposedAnswer(text, text)


def _cited(
    citations: list[dict[str, Any]], model_text: str, question: str, language: str, embed: Embed | None
) -> ComposedAnswer:
    known = {c["n"] for c in citations}
    body = drop_ungrounded_sentences(model_text, *(c["text"] for c in citations), question)
    body = drop_off_topic_sentences(body, *(c["text"] for c in citations), question)
    cited = {int(n) for n in _CITE.findall(body)}
    if not cited or not cited <= known:
        body = extractive_answer(question, citations, language, embed=embed)
    if not body:
        return ComposedAnswer(NOT_FOUND[language], NOT_FOUND[language])
    body, used = renumber(body, citations, language)
    footer = "\n".join(f"[{c['n']}] {c['label']}" for c in used)
    text = f"{body}\n\n**{SOURCES[language]}**\n{footer}"
    return ComposedAnswer(text, text, used)  # shown whole after the search step


def renumber(body: str, citations: list[dict[str, Any]], language: str) -> tuple[str, list[dict[str, Any]]]:
    """Citations numbered 1..n in order of first use (passages of one section share a number);
    the used passages, described, in that order."""
    canonical: dict[int, int] = {}  # passage number -> the first passage of its section
    first: dict[tuple[str, str], int] = {}
    for c in citations:
        canonical[c["n"]] = first.setdefault((str(c.get("source")), str(c.get("heading"))), c["n"])
    order: dict[int, int] = {}
    for raw in _CITE.findall(body):
        if int(raw) in canonical:
            order.setdefault(canonical[int(raw)], len(order) + 1)

    def new_number(match: re.Match[str]) -> str:
        n = int(match.group(1))
        return f"[{order[canonical[n]]}]" if n in canonical else ""

    text = _CITE.sub(new_number, body)
    used = []
    for old, new in order.items():
        merged = [c for c in citations if canonical[c["n"]] == old]
        text_of = "\n\n".join(c["text"] for c in merged)  # the whole section's passages, for a preview
        used.append(
            describe_citation(
                {**merged[0], "n": new, "text": text_of, "passages": [c["n"] for c in merged]}, language
            )
        )
    return text, used


def describe_citation(citation: dict[str, Any], language: str) -> dict[str, Any]:
    """The citation with its course module, section and a label for the Sources list (the
    passage text stays in it, for a preview in the UI)."""
    module = course_module(citation.get("source", ""))
    described = dict(citation, section=_section(citation))
    if module is not None:
        title = module.title_zh if language == "zh" else module.title
        described.update(module_id=module.id, module_title=title, url=course_url())
    described["label"] = source_label(described, language)
    return described


def _section(citation: dict[str, Any]) -> str:
    """The passage's own heading: the last part of its heading path ("SFT > Key ideas > LoRA …")."""
    return str(citation.get("heading", "")).replace(" › ", " > ").split(" > ")[-1].strip()


def source_label(citation: dict[str, Any], language: str, link: bool = True) -> str:
    """'Supervised Fine-Tuning › LoRA: low-rank adapters …' (a course module, linked to the course),
    or 'my-notes.md › …' (another indexed file, by name: its path is no citation)."""
    if "section" not in citation:
        citation = describe_citation(citation, language)
    title = citation.get("module_title") or source_name(citation.get("source", ""))
    if link and citation.get("url"):
        title = f"[{title}]({citation['url']})"
    section = citation.get("section")
    return f"{title} › {section}" if section and section != citation.get("module_title") else title


def extractive_answer(
    question: str,
    citations: list[dict[str, Any]],
    language: str,
    max_sentences: int = 3,
    embed: Embed | None = None,
) -> str:
    """The passage sentences that answer the question, each cited with its passage's number.

    A sentence qualifies when, read with its section heading, it covers a course term or other
    specific word of the question and enough of all its key terms (the threshold); sentences in
    the learner's language are preferred when any qualifies. The qualifying ones are ranked by
    cosine with the question (the shipped MiniLM; without it, coverage alone) plus coverage, and
    picked as a short paragraph with no near-duplicates. None qualifying: "".
    """
    found = concepts(question)
    candidates: list[tuple[int, int, str, str]] = []  # rank, position, sentence, heading
    for rank, citation in enumerate(citations):
        heading = str(citation.get("heading", ""))  # the whole path: the module names the topic
        for position, sentence in enumerate(s.strip() for s in _SENTENCES.split(citation["text"])):
            if _usable(sentence):
                candidates.append((rank, position, sentence, heading))
    if not candidates or not found:
        return ""
    # Sentences come from the passages about the whole question: a passage on Flash Attention
    # that mentions memory does not answer "why does LoRA reduce memory", however well one of
    # its sentences covers "memory".
    topical = [coverage(found, f"{c.get('heading', '')} {c['text']}")[1] for c in citations]
    candidates = [c for c in candidates if topical[c[0]] >= max(topical)]
    shares = [coverage(found, f"{c[2]} {c[3]}") for c in candidates]
    floor = max(MIN_SHARE, NEAR_BEST * max(share for share, _ in shares))
    # A question of everyday words only ("为什么要做模型评估？") has no specific concept to require.
    needs_specific = any(c.weight >= 1.0 for c in found)
    passing = [
        i
        for i, (share, specific) in enumerate(shares)
        if (specific > 0 or not needs_specific) and share >= floor
    ]
    same = [i for i in passing if detect_language(candidates[i][2]) == language]
    passing = same or passing  # a translation only when the learner's language is missing
    if not passing:
        return ""
    # Only the qualifying sentences are embedded: that is the cost of an answer on a busy CPU.
    vectors = embed_rows(embed, [question, *(candidates[i][2] for i in passing)])
    rows = {i: row for row, i in enumerate(passing, start=1)}
    scored = {
        i: (float(vectors[rows[i]] @ vectors[0]) if vectors is not None else 0.0)
        + shares[i][0]
        - RANK_PENALTY * candidates[i][0]
        for i in passing
    }
    chosen = _select(candidates, scored, vectors, rows, max_sentences)
    chosen.sort(key=lambda i: candidates[i][:2])  # read in passage order
    joiner = "" if language == "zh" else " "
    return joiner.join(_cite(candidates[i][2], citations[candidates[i][0]]["n"], language) for i in chosen)


def _select(
    candidates: list[tuple[int, int, str, str]],
    scored: dict[int, float],
    vectors: Any,
    rows: dict[int, int],
    limit: int,
) -> list[int]:
    """Greedy picks: the best score, plus a bonus next to a sentence already chosen (so the
    answer reads as a paragraph); "This …" only right after its sentence; no near-duplicates."""
    chosen: list[int] = []
    while scored and len(chosen) < limit:
        at = {candidates[i][:2] for i in chosen}
        gains = {}
        for i, score in scored.items():
            rank, position = candidates[i][:2]
            if _ANAPHOR.match(candidates[i][2]) and (rank, position - 1) not in at:
                continue
            near = (rank, position - 1) in at or (rank, position + 1) in at
            gains[i] = score + (NEIGHBOUR_BONUS if near else 0.0)
        if not gains:
            break
        best = max(gains, key=lambda i: gains[i])
        del scored[best]
        if not any(_duplicate(candidates, vectors, rows, best, j) for j in chosen):
            chosen.append(best)
    return chosen


_COMPLETE = re.compile(r"[.!?。！？；:：][\"'”’」』)）`*]*$")


def _usable(sentence: str) -> bool:
    if sentence.startswith(("#", "- [", "|", "[instructions", "!")) or sentence[:1].islower():
        return False  # headings, lists, tables, removed text, a chunk that starts mid-sentence
    if not _COMPLETE.search(sentence):
        return False  # a chunk that ends mid-sentence ("… special tokens, e.g. `<|im_start|>user …")
    return len(sentence) >= (8 if detect_language(sentence) == "zh" else 20)


def _duplicate(
    candidates: list[tuple[int, int, str, str]], vectors: Any, rows: dict[int, int], i: int, j: int
) -> bool:
    if vectors is not None:
        return float(vectors[rows[i]] @ vectors[rows[j]]) >= DUPLICATE_COSINE
    a, b = set(candidates[i][2].lower().split()), set(candidates[j][2].lower().split())
    return len(a & b) / max(1, len(a | b)) >= 0.7


def _cite(sentence: str, n: int, language: str) -> str:
    """'… weights [1].' / '…权重[1]。': the mark inside the sentence it supports."""
    sentence = sentence.rstrip()
    if sentence.endswith("；"):
        sentence = sentence[:-1] + "。"
    mark = f"[{n}]" if language == "zh" else f" [{n}]"
    if sentence and sentence[-1] in _ENDS:
        return f"{sentence[:-1]}{mark}{sentence[-1]}"
    return f"{sentence}{mark}" + ("。" if language == "zh" else ".")


def stream_pieces(text: str) -> list[str]:
    """The final text in small pieces for token events; they concatenate to exactly `text`."""
    return _PIECE.findall(text)
