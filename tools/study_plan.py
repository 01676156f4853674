"""The `study_plan` tool: a plan over N days or weeks for a goal ("two weeks to learn RAG"): the
concepts it needs in prerequisite order, with reading, quiz and lab sessions per day, stored
and laid out again as the learner progresses (knowledge/learner/plan.py)."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.errors import ToolInputError
from llmtutor.knowledge.learner.graph import load_concept_graph
from llmtutor.knowledge.learner.labs import labs
from llmtutor.knowledge.learner.plan import StudyPlan, latest_plan, make_plan, refresh, save_plan
from llmtutor.text import detect_language
from llmtutor.tools.registry import ToolContext, ToolSpec

EXAMPLES: tuple[str, ...] = (
    "Make a study plan for me for the next two weeks",
    "Make me a two-week plan to learn RAG",
    "Plan my next month of study",
    "I have 10 days to learn fine-tuning, plan it for me",
    "Show my study plan",
    "帮我制定两周的学习计划",
    "给我做一个一个月学会 RAG 的学习计划",
    "我有 10 天时间学微调，帮我安排一下",
    "看看我的学习计划",
    "Create a one-week study plan",
    "Plan my studies for the next 3 weeks",
    "Schedule my learning for 10 days, 30 minutes a day",
    "I want to learn quantization in two weeks, make a plan",
    "Give me a study schedule to learn DPO",
    "Build me a plan to master the Scientist track in a month",
    "What's my study plan?",
    "Update my study plan",
    "Make a 5-day plan to learn prompt engineering",
    "帮我规划三周的学习",
    "制定一个一周学会量化的计划",
    "我想一个月学完科学家路线，帮我排计划",
)
_NUMBERS = {"one": 1, "a": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "一": 1, "两": 2, "二": 2}
_NUMBERS |= {"三": 3, "四": 4, "五": 5, "六": 6, "十": 10}
_SPAN = re.compile(
    r"(\d+|one|a|two|three|four|five|six|一|两|二|三|四|五|六|十)\s*(?:-|\s)?"
    r"(days?|weeks?|months?|天|周|星期|个月|个星期)",
    re.I,
)
_SHOW = re.compile(r"\b(?:show|see|view|my (?:study )?plan)\b|看看|查看|显示", re.I)
_MAKE = re.compile(r"\b(?:make|create|build|plan (?:my|it)|new)\b|制定|做一个|安排|规划", re.I)

TEXT = {
    "en": {
        "title": "**Study plan{goal}** — {days} days from {start}, {minutes} min a day",
        "goal": ": {names}",
        "read": "Read: {name}",
        "quiz": "Quiz: {module}",
        "lab": "Lab: {request}",
        "progress": "{done} of {total} sessions done.",
        "rest": "{n} session(s) do not fit: at this pace they need {extra} more day(s); give more days or minutes.",
        "empty": "Nothing to plan: you have mastered everything this goal needs.",
        "none": "You have no study plan yet. Ask for one, e.g. “Make me a two-week plan to learn RAG”.",
        "how": "_For a reading session ask “What is …?”, for a quiz “Quiz me on …”, and “show my study "
        "plan” to see it again: built from the course's concept graph and your progress, it ticks off "
        "what you have mastered and moves the rest._",
    },
    "zh": {
        "title": "**学习计划{goal}** —— 从 {start} 起 {days} 天，每天 {minutes} 分钟",
        "goal": "：{names}",
        "read": "阅读：{name}",
        "quiz": "测验：{module}",
        "lab": "实验：{request}",
        "progress": "已完成 {done}/{total} 项。",
        "rest": "还有 {n} 项排不下：按这个节奏还需要 {extra} 天；可以增加天数或每天的时间。",
        "empty": "没有需要安排的内容：这个目标需要的知识点你都已掌握。",
        "none": "你还没有学习计划。可以说“帮我制定两周学会 RAG 的学习计划”。",
        "how": "_阅读时问“什么是……？”，测验时说“考考我……”，说“看看我的学习计划”可再次查看："
        "计划根据课程的知识点图和你的进度生成，会勾掉已掌握的内容并重新安排其余部分。_",
    },
}


class StudyPlanInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["make", "show"] = "make"
    goal: str = Field("", max_length=300, description="What the learner wants to learn or be able to do.")
    days: int = Field(14, ge=1, le=366, description="Days the plan spans (two weeks: 14).")
    minutes_per_day: int = Field(45, ge=10, le=600)
    language: Literal["auto", "en", "zh"] = "auto"


class StudyPlanOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    final_answer: ClassVar[bool] = True
    plan: StudyPlan | None
    language: Literal["en", "zh"]

    def to_markdown(self) -> str:
        t, plan = TEXT[self.language], self.plan
        if plan is None:
            return t["none"]
        if not plan.sessions:
            return t["empty"]
        graph, zh = load_concept_graph(), self.language == "zh"
        names = ", ".join(graph.name(c, self.language) for c in plan.goal_concepts[:4])
        start = plan.schedule[0].day if plan.schedule else plan.created
        lines = [
            t["title"].format(
                goal=t["goal"].format(names=names) if names else "",
                days=plan.days,
                start=start.isoformat(),
                minutes=plan.minutes_per_day,
            ),
            "",
        ]
        titles = _module_titles(self.language)
        for day in plan.schedule:
            items = []
            for s in day.sessions:
                if s.kind == "read":
                    items.append(t["read"].format(name=graph.name(s.concept_id or "", self.language)))
                elif s.kind == "quiz":
                    items.append(t["quiz"].format(module=titles.get(s.module_id, s.module_id)))
                else:
                    lab = labs()[s.module_id]
                    items.append(t["lab"].format(request=lab.request_zh if zh else lab.request))
            lines.append(f"- **{day.day.isoformat()}** — " + " · ".join(items))
        done = sum(s.done for s in plan.sessions)
        lines += ["", t["progress"].format(done=done, total=len(plan.sessions))]
        if plan.unscheduled:
            lines.append(t["rest"].format(n=plan.unscheduled, extra=plan.extra_days))
        lines += ["", t["how"]]
        return "\n".join(lines)


def _module_titles(language: str) -> dict[str, str]:
    from llmtutor.knowledge.catalog import load_catalog

    return {m.id: (m.title_zh if language == "zh" else m.title) for m in load_catalog().modules()}


def run_plan(cfg: StudyPlanInput, ctx: ToolContext) -> StudyPlanOutput:
    language = cfg.language if cfg.language != "auto" else detect_language(cfg.goal or "")
    language = "zh" if language == "zh" else "en"
    db = ctx.database
    if cfg.action == "show":
        plan = latest_plan(db, ctx.learner_id)
        return StudyPlanOutput(plan=refresh(db, plan) if plan else None, language=language)
    plan = make_plan(db, cfg.goal, cfg.days, cfg.minutes_per_day, learner_id=ctx.learner_id)
    if cfg.goal.strip() and not plan.goal_concepts and _names_a_topic(cfg.goal):
        raise ToolInputError(
            f"no course concept found in {cfg.goal!r}", "name a course topic, e.g. RAG or LoRA"
        )
    return StudyPlanOutput(plan=save_plan(db, plan), language=language)


def _names_a_topic(goal: str) -> bool:
    """A goal like "learn to bake bread": words beyond the plan's own ("two weeks", "plan")."""
    rest = _SPAN.sub(" ", goal)
    rest = re.sub(
        r"(?i)\b(?:make|me|a|an|the|for|my|next|study|plan|to|learn|of|i|have|it|please)\b", " ", rest
    )
    rest = re.sub(r"帮我|制定|学习|计划|的|给我|做一个|安排|一下|我有|时间|学会", " ", rest)
    return bool(re.sub(r"[\s\W]+", "", rest))


def days_in(text: str) -> int | None:
    match = _SPAN.search(text)
    if not match:
        return None
    raw, unit = match.group(1).lower(), match.group(2).lower()
    n = int(raw) if raw.isdigit() else _NUMBERS.get(raw, 1)
    if unit.startswith(("week", "周", "星期", "个星期")):
        return n * 7
    if unit.startswith(("month", "个月")):
        return n * 30
    return n


def extract_plan_args(text: str) -> dict[str, Any]:
    args: dict[str, Any] = {"language": detect_language(text)}
    if _SHOW.search(text) and not _MAKE.search(text) and not days_in(text):
        args["action"] = "show"
        return args
    args["goal"] = text[:300]
    if (days := days_in(text)) is not None:
        args["days"] = min(366, days)
    return args


TOOL = ToolSpec(
    name="study_plan",
    description="A study plan over N days or weeks for a goal: the concepts it needs in prerequisite "
    "order with reading, quiz and lab sessions per day, stored and updated as the learner progresses.",
    input_model=StudyPlanInput,
    output_model=StudyPlanOutput,
    func=run_plan,
    examples=EXAMPLES,
    writes=True,
    extract_args=extract_plan_args,
)
