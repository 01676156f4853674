"""The `quiz` tool: quizzes on a course topic, one question per call, graded and recorded.

Stateless per call (the quiz itself is `llmtutor.knowledge.quiz.flow`):
- ``action="start"`` + topic (English or Chinese: "quantization", "量化", a module id, a glossary
  term; empty = the whole course), n, kind (mc | short | mixed), language → the first question;
- ``action="answer"`` + the learner's text (session_id defaults to the open quiz) → the grade of
  the current question (right answer, explanation, source) and the next question or a summary;
- ``action="status"`` → the open question again, or the summary; ``action="stop"`` ends the quiz.

How the chat continues an open quiz: before routing a message, call
``continuation(workspace, text, shown, learner_id)``; when it returns arguments, run this tool with them and show
its markdown as is (the feedback already holds the right answer and its source).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.knowledge.quiz.flow import (
    AttemptRecorder,
    QuizOutput,
    answer_quiz,
    quiz_status,
    records_in,
    start_quiz,
    stop_quiz,
)
from llmtutor.knowledge.quiz.session import active_session, continuation
from llmtutor.tools.registry import ToolContext, ToolSpec

__all__ = ["TOOL", "QuizInput", "QuizOutput", "make_tool", "run_quiz", "active_session", "continuation"]


class QuizInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["start", "answer", "status", "stop"] = Field(
        "start", description="start a quiz, answer its current question, show its status, or stop it."
    )
    topic: str | None = Field(
        None,
        description="start: module, track or glossary term, English or Chinese "
        "(e.g. 'quantization', '量化', 'engineer.rag', 'LoRA'); empty = whole course.",
    )
    n: int = Field(5, ge=1, le=20, description="start: number of questions.")
    kind: Literal["mc", "short", "mixed"] = Field(
        "mixed", description="start: multiple choice, short answer, or both."
    )
    language: Literal["auto", "en", "zh"] = Field(
        "auto", description="start: question language; auto follows the topic."
    )
    generator: Literal["auto", "catalog", "llm"] = Field(
        "auto",
        description="start: catalog = deterministic questions; llm = let a capable model write them; "
        "auto = llm if available.",
    )
    seed: int | None = Field(None, description="start: fixes the question choice (default: random per quiz).")
    session_id: str | None = Field(None, description="answer/status/stop: the quiz; default = the open quiz.")
    answer: str | None = Field(
        None, description="answer: the learner's answer (a letter A-D, the option's text, or free text)."
    )


# Requests that should start a quiz. Written for this tool; about half Chinese.
EXAMPLES: tuple[str, ...] = (
    "Quiz me on quantization",
    "Test my knowledge of LoRA",
    "Give me 3 multiple-choice questions about RAG",
    "Can you quiz me on the attention mechanism?",
    "I'd like a short-answer question on DPO",
    "Ask me five questions about vector databases",
    "Check my understanding of tokenization with a quick quiz",
    "Start a quiz on the LLM Engineer track",
    "Quiz me about GGUF and llama.cpp",
    "Let's do a mixed quiz on preference alignment",
    "Give me one question on the KV cache",
    "Test me on evaluation benchmarks",
    "Quiz me on model merging, 4 questions",
    "I want to practise with questions about supervised fine-tuning",
    "Drill me on prompt engineering",
    "A multiple choice quiz on neural networks, please",
    "Quiz me on scientist.pretraining",
    "Test my understanding of speculative decoding",
    "出一道关于 RAG 的选择题",
    "考考我量化的知识",
    "给我出三道关于 LoRA 的题",
    "来几道注意力机制的选择题",
    "测试一下我对向量数据库的掌握",
    "出两道简答题考我 DPO",
    "我想做个关于分词的小测验",
    "用五个问题测测我对 LLM 工程师路线的理解",
    "考我一下推测性解码",
    "出一套关于模型合并的混合题",
    "帮我复习一下预训练，出几道题",
    "来一道关于 KV 缓存的简答题",
    "检验一下我对提示工程的理解",
    "出 4 道神经网络的选择题",
    "给我一个关于 GGUF 的测验",
    "测一测我对评估基准的了解",
)

# ----- argument extraction ------------------------------------------------------
_MC = re.compile(r"multiple[\s-]*choice|\bmcqs?\b|\bchoice questions?|选择题|单选|多选|选项题", re.I)
_SHORT = re.compile(
    r"short[\s-]*answers?|open[\s-]*(?:ended\s*)?questions?|free[\s-]*text|简答|问答题|主观题|解释题", re.I
)
_MIXED = re.compile(r"\bmixed\b|\bboth\b|混合|都要|两种", re.I)
_EN_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "single": 1,
    "two": 2,
    "couple of": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_ZH_NUMBERS = {
    "一": 1,
    "两": 2,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}
_COUNT_EN = re.compile(
    r"(?<![\w-])(\d{1,2}|a|an|one|single|two|couple of|three|four|five|six|seven|eight|nine|ten)\s+"
    r"(?:more\s+|quick\s+|short\s+|multiple[\s-]*choice\s+|short[\s-]*answer\s+|mc\s+)?(?:questions?|qs|quiz questions?)\b",
    re.I,
)
# "一个测验" is one quiz, not one question: 个 counts only before 问题/题.
_COUNT_ZH = re.compile(r"(\d{1,2}|[一两二三四五六七八九十])\s*(?:道|个(?=\s*(?:问题|\S{0,3}题))|题)")
_TOPIC_AFTER = re.compile(
    r"(?:\b(?:on|about|of|regarding|covering)\s+(?:the\s+)?|关于|有关|考我|测测我对|我对)"
    r"(?P<t>[^,，.。!?！？;；]+)",
    re.I,
)
_TOPIC_TAIL = re.compile(
    r"\s*(?:please|questions?|quiz|module|track|topic|的?(?:知识|理解|掌握|了解|题|小测验|测验)).*$", re.I
)


def extract_quiz_args(text: str) -> dict[str, Any]:
    """Rule-based start arguments from a request (English or Chinese); only the fields found."""
    from llmtutor.knowledge.quiz.bank import default_bank
    from llmtutor.text import detect_language

    args: dict[str, Any] = {}
    topic = default_bank().find_topic(text)
    if topic is None and (match := _TOPIC_AFTER.search(text)):
        topic = _TOPIC_TAIL.sub("", match.group("t")).strip() or None  # unknown: the tool lists close topics
    if topic:
        args["topic"] = topic
    if match := _COUNT_EN.search(text):
        word = match.group(1).lower()
        args["n"] = int(word) if word.isdigit() else _EN_NUMBERS[word]
    elif match := _COUNT_ZH.search(text):
        word = match.group(1)
        args["n"] = int(word) if word.isdigit() else _ZH_NUMBERS[word]
    if _MIXED.search(text):
        args["kind"] = "mixed"
    elif _MC.search(text):
        args["kind"] = "mc"
    elif _SHORT.search(text):
        args["kind"] = "short"
    args["language"] = detect_language(text)
    return args


# ----- the tool ---------------------------------------------------------------------
def run_quiz(
    cfg: QuizInput,
    ctx: ToolContext,
    llm: Callable[[], Any] | None = None,
    recorder: AttemptRecorder | None = None,
) -> QuizOutput:
    if cfg.action == "start":
        return start_quiz(
            ctx.workspace,
            topic=cfg.topic or focus_topic(ctx),
            n=cfg.n,
            kind=cfg.kind,
            language=cfg.language,
            generator=cfg.generator,
            seed=cfg.seed,
            llm=llm,
            learner_id=ctx.learner_id,
        )
    if cfg.action == "answer":
        # Sessions are files in the workspace; the graded answer goes where the learner rows live.
        recorder = recorder or records_in(ctx.database)
        return answer_quiz(
            ctx.workspace, cfg.session_id, cfg.answer, llm=llm, recorder=recorder, learner_id=ctx.learner_id
        )
    if cfg.action == "stop":
        return stop_quiz(ctx.workspace, cfg.session_id, ctx.learner_id)
    return quiz_status(ctx.workspace, cfg.session_id, ctx.learner_id)


def focus_topic(ctx: ToolContext) -> str | None:
    """ "Quiz me" without a topic: the module of the learner's weakest traced concept, else of their
    next step; None (the whole course) for a learner the tutor knows nothing about yet. Asking
    where the estimate is low or uncertain is what moves it (the learner model's evidence)."""
    from llmtutor.knowledge.learner import store
    from llmtutor.knowledge.learner.graph import load_concept_graph
    from llmtutor.knowledge.learner.progress import MASTERED, next_step

    db = ctx.database
    states = store.concept_states(db, ctx.learner_id)
    if not any(s.events for s in states.values()):
        return None
    graph = load_concept_graph()
    weak = [
        s
        for s in states.values()
        if s.source == "traced" and s.p_known < MASTERED and s.concept_id in graph.concepts
    ]
    if weak:
        return graph.concept(min(weak, key=lambda s: s.p_known).concept_id).module
    step = next_step(db, learner_id=ctx.learner_id)
    return step.module_id


def make_tool(llm: Callable[[], Any] | None = None, recorder: AttemptRecorder | None = None) -> ToolSpec:
    """The quiz tool; `llm` (a factory returning a LangChain chat model) only for capable backends."""
    return ToolSpec(
        name="quiz",
        description=(
            "Quiz the learner on a course topic (module, track or glossary term, English or Chinese): "
            "multiple-choice and short-answer questions from the course notes, one at a time, graded with "
            "the right answer and its source, recorded in the learner's quiz history and module mastery. "
            "action=start (topic, n, kind, language), answer (the learner's reply), status, stop."
        ),
        input_model=QuizInput,
        output_model=QuizOutput,
        func=lambda cfg, ctx: run_quiz(cfg, ctx, llm=llm, recorder=recorder),
        examples=EXAMPLES,
        expensive=False,
        writes=True,
        extract_args=extract_quiz_args,
        continues=continuation,
    )


TOOL = make_tool()
