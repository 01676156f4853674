"""The `update_progress` tool: the learner corrects what the tutor believes. "I already know
Python" marks the concepts it names as known; "reset my progress on RAG" puts them back at the
prior. The concepts come from the concept graph (names, glossary spellings, module titles)."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.errors import ToolInputError
from llmtutor.knowledge.learner import store
from llmtutor.knowledge.learner.graph import load_concept_graph
from llmtutor.knowledge.learner.progress import goal_concepts
from llmtutor.text import detect_language
from llmtutor.tools.registry import ToolContext, ToolSpec

EXAMPLES: tuple[str, ...] = (
    "I already know Python",
    "I know linear algebra already, skip it",
    "Mark transformers as known",
    "Reset my progress on RAG",
    "Forget my progress on quantization",
    "我已经会 Python 了",
    "线性代数我已经掌握了",
    "重置我在 RAG 上的进度",
    "清除我的量化学习记录",
    "I'm already familiar with neural networks",
    "Mark the math module as known",
    "I learned NumPy before, mark it done",
    "Set my tokenization as known",
    "Clear my progress on LoRA",
    "Start over on quantization",
    "Reset my RAG progress",
    "Erase my quiz history on DPO",
    "I already understand attention",
    "Python I know well, skip it",
    "我已经学过神经网络了",
    "把数学模块标记为已掌握",
    "我懂分词，跳过吧",
    "重新开始学量化",
)
_RESET = re.compile(r"\b(?:reset|forget|clear|erase|start over)\b|重置|清除|清空|重新开始|忘掉", re.I)

TEXT = {
    "en": {
        "known": "Noted: {n} concept(s) marked as known — {names}. They count as mastered from now on; "
        "a wrong quiz answer will still lower them.",
        "reset": "Done: {n} concept(s) reset to the starting estimate — {names}. Their past answers stay "
        "in the log.",
    },
    "zh": {
        "known": "好的：已将 {n} 个知识点标记为已掌握——{names}。之后答错相关测验题仍会降低掌握程度。",
        "reset": "已完成：{n} 个知识点重置为初始估计——{names}。以前的作答记录仍保留在日志中。",
    },
}


class UpdateProgressInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str = Field(min_length=1, max_length=300, description="What the learner knows or wants reset.")
    action: Literal["known", "reset"] = "known"
    language: Literal["auto", "en", "zh"] = "auto"


class UpdateProgressOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    final_answer: ClassVar[bool] = True
    action: Literal["known", "reset"]
    concepts: list[str]
    names: list[str]
    language: Literal["en", "zh"]

    def to_markdown(self) -> str:
        t = TEXT[self.language]
        return t[self.action].format(n=len(self.concepts), names=", ".join(self.names))


def run_update(cfg: UpdateProgressInput, ctx: ToolContext) -> UpdateProgressOutput:
    language = cfg.language if cfg.language != "auto" else detect_language(cfg.topic)
    language = "zh" if language == "zh" else "en"
    graph = load_concept_graph()
    ids = goal_concepts(graph, cfg.topic)
    if cfg.action == "reset":  # "reset my progress on RAG": the whole module it names
        from llmtutor.knowledge.catalog import load_catalog

        module = load_catalog().find_module(cfg.topic)
        if module is not None:
            ids = list(dict.fromkeys([*ids, *(c.id for c in graph.of_module(module.id))]))
    if not ids:
        raise ToolInputError(
            f"no course concept or module found in {cfg.topic!r}",
            "name a concept or module, e.g. “I already know Python” or “reset my progress on RAG”",
        )
    store.set_known(ctx.database, ids, known=cfg.action == "known", learner_id=ctx.learner_id)
    return UpdateProgressOutput(
        action=cfg.action, concepts=ids, names=[graph.name(i, language) for i in ids], language=language
    )


def extract_update_args(text: str) -> dict[str, Any]:
    return {"topic": text[:300], "action": "reset" if _RESET.search(text) else "known"}


TOOL = ToolSpec(
    name="update_progress",
    description="The learner corrects the learner model: mark concepts they already know as known, or "
    "reset their progress on a concept or module.",
    input_model=UpdateProgressInput,
    output_model=UpdateProgressOutput,
    func=run_update,
    examples=EXAMPLES,
    writes=True,
    extract_args=extract_update_args,
)
