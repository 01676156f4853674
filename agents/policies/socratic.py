"""The Socratic policy: a small state machine over course passages, no model needed.

    open ──(learner replies)──▶ judge ─┬─ right ─────────────────▶ confirm + cited answer (closed)
                                       ├─ asks for the answer ───▶ cited answer (closed)
                                       └─ not yet ─▶ hint 1 ▶ hint 2 ▶ hint 3 ▶ cited answer (closed)

The first reply never gives the answer: it asks one guiding question about the concept, in the
learner's language. Each later reply is judged against the retrieved passages (their key terms,
and meaning through the shipped sentence embedder when the text is English); hints come from
the same passages, each revealing a little more. The state is a plain dict stored in the thread,
so a reload continues the dialogue.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.text import CJK

Language = Literal["en", "zh"]

_ASKS_FOR_ANSWER = re.compile(
    r"\b(?:just (?:tell|give|show) me|give me the answer|tell me the answer|show me the answer|"
    r"i give up|i don'?t know|no idea|reveal)\b|告诉我答案|直接告诉我|给我答案|不知道|我放弃|公布答案",
    re.IGNORECASE,
)
_WHY = re.compile(r"\bwhy\b|为什么|为何", re.IGNORECASE)
_HOW = re.compile(r"\bhow\b|怎么|如何|怎样", re.IGNORECASE)
_WORD = re.compile(r"[a-z][a-z0-9-]{2,}")
_STOP = frozenset(
    "the and for with that this from into are was were can will its their which what when where how why "
    "does than then them they you your our not but has have had use used using also more most such "
    # too general to show that a learner knows the concept
    "model models llm llms language large data training train trained one two each every other same "
    "about into over only like make makes made many much very well".split()
)
_ZH_STOP = frozenset(
    {"模型", "一个", "可以", "这个", "我们", "他们", "以及", "因为", "所以", "如果", "就是", "通过", "进行"}
)

OPENING = {
    "en": {
        "what": "Let's work it out together before I show you the notes. What problem do you think {concept} "
        "solves, and what would you expect it to change in a model?",
        "why": "Let's reason about it first. What do you think would go wrong without {concept}?",
        "how": "Let's take it step by step. Which part of the model or the pipeline do you think {concept} "
        "acts on, and what does it do there?",
    },
    "zh": {
        "what": "先别急着看答案，我们一起想一想：你觉得{concept}是为了解决什么问题？它会让模型发生什么变化？",
        "why": "先推理一下：如果没有{concept}，你觉得会出现什么问题？",
        "how": "我们一步一步来：你觉得{concept}作用在模型或流程的哪个环节？它在那里做了什么？",
    },
}
TEXT = {
    "en": {
        "hint1": "Not quite yet. Hint 1 of 3: the notes describe {concept} together with “{term}”. "
        "How might that be related?",
        "hint2": "Getting closer? Hint 2 of 3 — fill the gaps in this line from the notes: “{cloze}”",
        "hint3": "Last hint (3 of 3): the notes begin the explanation like this: “{start}…” What comes next?",
        "right": "Yes — that's the idea. Here is how the course notes put it:",
        "reveal": "Here is the answer from the course notes:",
        "partial": "Part of it is right ({terms}).",
    },
    "zh": {
        "hint1": "还不完全对。提示 1/3：笔记里把{concept}和“{term}”放在一起讲。它们之间有什么关系？",
        "hint2": "再想想。提示 2/3：补全笔记里的这句话：“{cloze}”",
        "hint3": "最后一个提示（3/3）：笔记的解释是这样开头的：“{start}……”接下来是什么？",
        "right": "对，就是这个意思。课程笔记是这样讲的：",
        "reveal": "下面是课程笔记里的答案：",
        "partial": "有一部分是对的（{terms}）。",
    },
}


class SocraticState(BaseModel):
    """One dialogue on one concept; stored in the thread as a dict (`model_dump`)."""

    model_config = ConfigDict(extra="forbid")
    policy: Literal["socratic"] = "socratic"
    question: str
    concept: str
    language: Language
    citations: list[dict[str, Any]]
    key_terms: list[str] = Field(default_factory=list)
    hints_given: int = 0
    max_hints: int = 3


class Step(BaseModel):
    """What the policy says now, and the state to keep (None: the dialogue is over)."""

    model_config = ConfigDict(extra="forbid")
    text: str
    state: SocraticState | None
    reveal: bool = False  # True: append the cited answer built from `state.citations`


def asks_for_answer(text: str) -> bool:
    return bool(_ASKS_FOR_ANSWER.search(text))


def _kind(question: str) -> str:
    return "why" if _WHY.search(question) else "how" if _HOW.search(question) else "what"


def _sentences(citations: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for citation in citations[:3]:
        for sentence in re.split(r"(?<=[.!?。！？])\s*", str(citation.get("text", ""))):
            sentence = sentence.strip()
            if len(sentence) >= 12 and not sentence.startswith(("#", "|", "- [", "[instructions")):
                out.append(sentence)
    return out


def _terms(text: str, language: Language) -> list[str]:
    """Content words of a passage: Latin words and, for Chinese, jieba words with characters."""
    found = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
    if language == "zh" or CJK.search(text):
        from llmtutor.knowledge.rag.lexical import jieba_module

        found += [w for w in jieba_module().lcut(text) if len(w) >= 2 and CJK.search(w) and w not in _ZH_STOP]
    return list(dict.fromkeys(found))


def open_dialogue(
    question: str,
    concept: str,
    citations: list[dict[str, Any]],
    language: Language,
    max_hints: int = 3,
) -> Step:
    """The first reply: one guiding question, nothing of the answer."""
    sentences = _sentences(citations)
    concept_terms = set(_terms(concept, language))
    key_terms = [t for t in _terms(" ".join(sentences[:2]), language) if t not in concept_terms][:12]
    state = SocraticState(
        question=question,
        concept=concept,
        language=language,
        citations=citations,
        key_terms=key_terms,
        max_hints=max_hints,
    )
    return Step(text=OPENING[language][_kind(question)].format(concept=concept), state=state)


def _similarity(reply: str, sentences: list[str]) -> float:
    """Best cosine between the reply and a passage sentence (English text only: the shipped
    embedder is English); 0 when the embedder is unavailable."""
    if not sentences or CJK.search(reply):
        return 0.0
    try:
        from llmtutor.knowledge.rag.embeddings import Embedder

        vectors = Embedder().embed([reply, *sentences])
    except Exception:  # noqa: BLE001 - no embedder: judge on key terms alone
        return 0.0
    return float(max(vectors[1:] @ vectors[0]))


def judge(state: SocraticState, reply: str) -> tuple[bool, list[str]]:
    """(right, key terms the reply used). Right: two key terms of the passages, or close in meaning."""
    lowered = reply.lower()
    used = [t for t in state.key_terms if t in lowered]
    english = [s for s in _sentences(state.citations) if not CJK.search(s)]
    close = _similarity(reply, english[:6]) >= 0.6
    return (len(used) >= 2 or close), used


def _cloze(sentence: str, terms: list[str]) -> str:
    blanked = sentence
    for term in terms[:3]:
        blanked = re.sub(re.escape(term), "____", blanked, flags=re.IGNORECASE)
    return blanked if blanked != sentence else re.sub(r"\b(\w{5,})\b", "____", sentence, count=2)


def continue_dialogue(state: SocraticState, reply: str) -> Step:
    """The learner answered: confirm, hint, or reveal; a revealed answer closes the dialogue."""
    t = TEXT[state.language]
    if asks_for_answer(reply):
        return Step(text=t["reveal"], state=None, reveal=True)
    right, used = judge(state, reply)
    if right:
        return Step(text=t["right"], state=None, reveal=True)
    if state.hints_given >= state.max_hints:
        return Step(text=t["reveal"], state=None, reveal=True)
    sentences = _sentences(state.citations) or [state.concept]
    number = state.hints_given + 1
    prefix = t["partial"].format(terms=", ".join(used)) + " " if used else ""
    if number == 1:
        term = next((k for k in state.key_terms if k not in state.concept.lower()), state.concept)
        text = t["hint1"].format(concept=state.concept, term=term)
    elif number == 2:
        text = t["hint2"].format(cloze=_cloze(sentences[0], state.key_terms))
    else:
        words = sentences[0].split()
        start = (
            " ".join(words[: max(3, len(words) // 2)])
            if len(words) > 3
            else sentences[0][: len(sentences[0]) // 2]
        )
        text = t["hint3"].format(start=start)
    return Step(text=prefix + text, state=state.model_copy(update={"hints_given": number}))


def concept_of(question: str) -> str:
    """The course concept a question is about, as the learner wrote it (catalog names and
    glossary spellings first), else the question's last noun phrase."""
    from llmtutor.knowledge.catalog import load_catalog
    from llmtutor.knowledge.quiz.topics import find_topic_in

    if found := find_topic_in(load_catalog(), question):
        return found
    tail = re.split(r"\b(?:is|are|does|do|of|about)\b|是|什么|怎么|为什么", question)[-1]
    return re.sub(r"[?？!！。.:：]", "", tail).strip() or question.strip()
