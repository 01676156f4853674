"""The `next_step` tool: the one next thing to do, from the learner model and the concept graph:
due reviews first, then (for a goal) the first missing prerequisite of it, then the next concept
in the course order whose prerequisites are mastered. Each step says why and how to act on it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.knowledge.learner.graph import load_concept_graph
from llmtutor.knowledge.learner.progress import MASTERED, NextStep, next_step
from llmtutor.text import detect_language
from llmtutor.tools.registry import ToolContext, ToolSpec

EXAMPLES: tuple[str, ...] = (
    "What should I learn next?",
    "Which module should I study next?",
    "What's my next step?",
    "What do I need to learn before RAG?",
    "Which concepts am I missing for QLoRA?",
    "我下一步该学什么？",
    "接下来应该学哪个模块？",
    "学 RAG 之前我需要先学什么？",
    "学 QLoRA 我还缺哪些知识点？",
    "What should I study now?",
    "What's the next topic for me?",
    "Suggest what to learn next",
    "What should I focus on today?",
    "Which concept should I work on next?",
    "What comes after LoRA for me?",
    "Am I ready for DPO? What do I still need?",
    "我现在应该学什么？",
    "推荐一下下一个学习内容",
    "今天我应该重点学什么？",
    "学 DPO 前我还缺什么？",
    "下一步学习建议",
)

TEXT = {
    "en": {
        "review": "**Next: review {due} card(s).** They are due now, and reviewing on time is what keeps "
        "them in memory. Say “review my cards” (or run `llmtutor review`).",
        "learn": "**Next: {concept}** — module *{module}*.",
        "why": "Why: your estimated mastery of it is {p:.0%} (mastered from {mastered:.0%}), and you have "
        "mastered the {k} concept(s) it builds on.",
        "why_root": "Why: your estimated mastery of it is {p:.0%} (mastered from {mastered:.0%}), and it "
        "builds on nothing else: the path starts here. Already know it? Say “I already know {concept}”.",
        "goal": "For your goal ({goal}), {n} concept(s) are still to master, in this order: {missing}.",
        "act": "How: ask “What is {concept}?” to read the notes, then “Quiz me on {module}” to check it.",
        "done": "Everything here is mastered{goal}. Take a quiz on any module to keep it fresh.",
        "done_goal": " for your goal",
    },
    "zh": {
        "review": "**下一步：复习 {due} 张卡片。** 它们现在到期，按时复习才能记得牢。"
        "说“复习我的卡片”（或运行 `llmtutor review`）。",
        "learn": "**下一步：{concept}** —— 模块《{module}》。",
        "why": "原因：你对它的掌握程度估计为 {p:.0%}（{mastered:.0%} 算掌握），而它依赖的 {k} 个知识点你都已掌握。",
        "why_root": "原因：你对它的掌握程度估计为 {p:.0%}（{mastered:.0%} 算掌握），它不依赖其他知识点，"
        "学习路径从这里开始。已经会了？说“我已经会{concept}了”。",
        "goal": "针对你的目标（{goal}），还有 {n} 个知识点需要掌握，顺序如下：{missing}。",
        "act": "怎么做：先问“什么是{concept}？”读课程笔记，再说“考考我{module}”检验一下。",
        "done": "这里的内容你都已掌握{goal}。可以随时做个模块测验来巩固。",
        "done_goal": "（针对你的目标）",
    },
}


class NextStepInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    goal: str = Field("", max_length=300, description="What the learner wants to be able to do, if said.")
    language: Literal["auto", "en", "zh"] = "auto"


class NextStepOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    final_answer: ClassVar[bool] = True
    step: NextStep
    language: Literal["en", "zh"]

    def to_markdown(self) -> str:
        s, t = self.step, TEXT[self.language]
        graph = load_concept_graph()
        if s.kind == "review":
            return t["review"].format(due=s.due)
        if s.kind == "done":
            return t["done"].format(goal=t["done_goal"] if s.goal else "")
        lines = [t["learn"].format(concept=s.concept, module=s.module), ""]
        why = t["why"] if s.prerequisites else t["why_root"]
        lines.append(why.format(p=s.p_known or 0.0, mastered=MASTERED, k=s.prerequisites, concept=s.concept))
        if s.goal:
            names = [graph.name(c, self.language) for c in s.missing]
            shown = ", ".join(names[:8]) + (" …" if len(names) > 8 else "")
            goal = ", ".join(graph.name(c, self.language) for c in s.goal)
            lines.append(t["goal"].format(goal=goal, n=len(s.missing), missing=shown))
        lines.append(t["act"].format(concept=s.concept, module=s.module))
        return "\n".join(lines)


def run_next_step(cfg: NextStepInput, ctx: ToolContext) -> NextStepOutput:
    language = cfg.language if cfg.language != "auto" else detect_language(cfg.goal or "") or "en"
    language = "zh" if language == "zh" else "en"
    step = next_step(ctx.database, cfg.goal, language, learner_id=ctx.learner_id)
    return NextStepOutput(step=step, language=language)


def extract_next_step_args(text: str) -> dict[str, Any]:
    return {"goal": text[:300], "language": detect_language(text)}


TOOL = ToolSpec(
    name="next_step",
    description="The learner's one next step, prerequisite-aware: due reviews first, then the first "
    "missing prerequisite of their goal, then the next concept of the course; says why and how.",
    input_model=NextStepInput,
    output_model=NextStepOutput,
    func=run_next_step,
    examples=EXAMPLES,
    extract_args=extract_next_step_args,
)
