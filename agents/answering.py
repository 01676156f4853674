"""How a turn's answer is put together from the model's text and the tool's result.

Three shapes:
- lab tools (memory estimate, decoding, …): the tool's own result (exact
  numbers) followed by the model's explanation, whose unsupported numbers are
  dropped (see grounding.py);
- cited tools (course search): the model answers from numbered passages and
  cites them inline ([1], [2]); a Sources list follows. When the model's text
  cites nothing (small models rarely do), the answer is extractive instead:
  the passages' sentences that best match the question, each with its number;
- nothing relevant found: a plain "not in the course notes" in the learner's
  language, with no model call, so nothing gets invented;
- final results (a quiz question or its grading, a database answer with its SQL): shown
  exactly as the tool wrote them, with no model call (an explanation could leak the next
  answer or misread the rows);
- a tool error (a refused write, an unknown name): its message, which names the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from llmtutor.agents.grounding import drop_ungrounded_sentences
from llmtutor.text import detect_language

NOT_FOUND = {
    "en": "I could not find this in the course notes, so I won't guess. Try rephrasing, "
    "or ask about a module (for example quantization, RAG or fine-tuning).",
    "zh": "课程笔记里没有找到相关内容，我不想凭空编造。可以换个说法，或者问某个模块（例如 量化、RAG、微调）。",
}
SOURCES = {"en": "Sources", "zh": "来源"}
_CITE = re.compile(r"\[(\d+)\]")
_SENTENCES = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；])|\n+")
_WORD = re.compile(r"[a-z0-9][a-z0-9\-_.]*")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_STOP = frozenset(
    "a an the is are was what which how why when who does do did of in on to for and or with about from by "
    "this that it its be can i me my you your course notes say tell explain".split()
)


@dataclass
class ComposedAnswer:
    text: str
    explanation: str  # what the UIs show after a tool step (the tool's result is already on screen)
    citations: list[dict[str, Any]] = field(default_factory=list)


def is_cited(run: dict[str, Any] | None) -> bool:
    return bool(run) and (bool(run.get("citations")) or run.get("found") is False)


def needs_model(run: dict[str, Any] | None) -> bool:
    """Whether the answer needs a model call at all."""
    if run and run.get("error"):
        # The typed error already says what went wrong and how to fix it (a refused write, an
        # unknown module); a small model retelling it tends to contradict it.
        return False
    return not (run and (run.get("found") is False or run.get("final")))


def system_addition(run: dict[str, Any] | None, declined_tool: str | None) -> str:
    if run and run.get("error"):
        return f"\n\nThe tool {run['tool']} did not run: {run['error']}\nTell the learner briefly and suggest a fix."
    if run and is_cited(run):
        passages = "\n\n".join(
            f"[{c['n']}] ({c['source']} › {c['heading']})\n{c['text']}" for c in run["citations"]
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
    if declined_tool:
        return f"\n\nThe learner declined to run {declined_tool}. Acknowledge it and offer alternatives."
    return ""


def compose(run: dict[str, Any] | None, model_text: str, question: str, language: str) -> ComposedAnswer:
    model_text = model_text.strip()
    if run and run.get("error"):
        text = f"⚠️ {run['tool']}: {run['error']}"
        return ComposedAnswer(f"{text}\n\n{model_text}".strip(), text)
    if not run:
        return ComposedAnswer(model_text, model_text)
    if run.get("found") is False:
        return ComposedAnswer(NOT_FOUND[language], NOT_FOUND[language])
    if run.get("final"):
        return ComposedAnswer(run.get("markdown", ""), run.get("markdown", ""))
    if is_cited(run):
        return _cited(run["citations"], model_text, question, language)
    # A lab tool: the exact result first, then the explanation of it.
    explanation = drop_ungrounded_sentences(
        model_text, run.get("markdown", ""), str(run.get("args", {})), question
    )
    return ComposedAnswer(f"{run.get('markdown', '')}\n\n{explanation}".strip(), explanation)


def _cited(citations: list[dict[str, Any]], model_text: str, question: str, language: str) -> ComposedAnswer:
    known = {c["n"] for c in citations}
    body = drop_ungrounded_sentences(model_text, *(c["text"] for c in citations), question)
    cited = {int(n) for n in _CITE.findall(body)}
    if not cited or not cited <= known:
        body = extractive_answer(question, citations, language)
        cited = {int(n) for n in _CITE.findall(body)}
    used = [c for c in citations if c["n"] in cited]
    footer = "\n".join(f"[{c['n']}] {c['source']} — {c['heading']}" for c in used)
    text = f"{body}\n\n**{SOURCES[language]}**\n{footer}"
    return ComposedAnswer(text, text, used)  # shown whole after the search step


def _terms(text: str) -> set[str]:
    lowered = text.lower()
    words = {w.strip(".-_") for w in _WORD.findall(lowered)} - _STOP
    han = "".join(_HAN.findall(lowered))
    bigrams = {han[i : i + 2] for i in range(len(han) - 1)}
    return {w for w in words if len(w) > 1} | bigrams


def extractive_answer(
    question: str, citations: list[dict[str, Any]], language: str, max_sentences: int = 3
) -> str:
    """The passage sentences that share the most terms with the question, each cited."""
    wanted = _terms(question)
    scored: list[tuple[float, int, int, str]] = []
    for rank, citation in enumerate(citations):
        for position, sentence in enumerate(s.strip() for s in _SENTENCES.split(citation["text"])):
            if len(sentence) < 12 or sentence.startswith(("#", "- [", "|", "[instructions")):
                continue
            overlap = len(wanted & _terms(sentence))
            same_language = 0.5 if detect_language(sentence) == language else 0.0
            # Prefer better-ranked passages and earlier sentences on ties.
            score = overlap + same_language - 0.1 * rank - 0.01 * position
            scored.append((score, rank, position, sentence))
    if not scored:
        return ""
    best = sorted(scored, reverse=True)[:max_sentences]
    best.sort(key=lambda item: (item[1], item[2]))  # read in passage order
    return " ".join(f"{sentence} [{citations[rank]['n']}]" for _, rank, _, sentence in best)
