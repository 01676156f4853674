"""The `learner_progress` tool: what the learner has covered and how well, from the learner
model (knowledge/learner): mastery per module, weak spots, recurring mistakes and the reviews
due in the next 14 days, with a chart. Every number comes from the learner tables."""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.knowledge.learner.progress import MASTERED, Progress, progress
from llmtutor.text import detect_language
from llmtutor.tools.registry import ToolContext, ToolSpec

EXAMPLES: tuple[str, ...] = (
    "What have I learned so far?",
    "Show my progress",
    "How am I doing in the course?",
    "Which topics am I weak at?",
    "What are my weak spots?",
    "Where am I weakest?",
    "What mistakes do I keep making?",
    "Show my mastery per module",
    "How many reviews are due this week?",
    "我学到哪里了？",
    "看看我的学习进度",
    "我哪些知识点比较薄弱？",
    "我的薄弱点是什么？",
    "我已经掌握了哪些内容？",
    "显示我每个模块的掌握程度",
    "Show my learning progress",
    "How much of the course have I mastered?",
    "Which modules have I covered?",
    "Give me a progress report",
    "What do I know well?",
    "How well do I know RAG so far?",
    "Show my stats",
    "How many reviews are due?",
    "我的掌握情况怎么样？",
    "给我一份学习报告",
    "我哪些模块学得比较好？",
    "我有多少张卡片要复习？",
)

TEXT = {
    "en": {
        "title": "**Your progress** ({events} graded answers so far)",
        "head": "| module | mastery | concepts covered | mastered |",
        "weak": "**Weak spots:** {items}",
        "mistakes": "**Recurring mistakes:** {items}",
        "due": "**Reviews:** {now} due now, {week} in the next 7 days, {fortnight} in the next 14.",
        "empty": "No graded answers yet: take a quiz (“Quiz me on LoRA”) and your progress starts here. "
        "Mastery starts at the prior ({prior:.0%}) for every concept.",
        "how": "_Mastery is the probability that you know a concept (Bayesian Knowledge Tracing over your "
        "answers), averaged over the module's concepts; mastered means ≥ {mastered:.0%}._",
    },
    "zh": {
        "title": "**你的学习进度**（已批改 {events} 个回答）",
        "head": "| 模块 | 掌握程度 | 已涉及知识点 | 已掌握 |",
        "weak": "**薄弱环节：** {items}",
        "mistakes": "**反复出错：** {items}",
        "due": "**复习：** 现在到期 {now} 张，未来 7 天 {week} 张，未来 14 天 {fortnight} 张。",
        "empty": "还没有批改过的回答：先做一次测验（“考考我 LoRA”），进度就会从这里开始。"
        "每个知识点的初始掌握程度为 {prior:.0%}。",
        "how": "_掌握程度是你掌握某个知识点的概率（根据你的回答做贝叶斯知识追踪），按模块取平均；"
        "达到 {mastered:.0%} 即算已掌握。_",
    },
}


class ProgressInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: Literal["auto", "en", "zh"] = Field("auto", description="Language of the report.")
    chart: bool = Field(True, description="Draw the mastery and reviews chart (PNG).")


class ProgressOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    final_answer: ClassVar[bool] = True
    progress: Progress
    chart_path: str | None = None

    def images(self) -> list[str]:
        return [self.chart_path] if self.chart_path else []

    def to_markdown(self) -> str:
        from llmtutor.knowledge.learner.tracing import DEFAULT

        p = self.progress
        t = TEXT[p.language]
        if not p.events:
            return t["empty"].format(prior=DEFAULT.prior)
        lines = [t["title"].format(events=p.events), "", t["head"], "|---|---:|---:|---:|"]  # one table
        for m in p.modules:
            if m.covered:
                lines.append(f"| {m.title} | {m.mastery:.0%} | {m.covered}/{m.concepts} | {m.mastered} |")
        paragraphs = ["\n".join(lines)]
        if p.weak:
            paragraphs.append(
                t["weak"].format(items=", ".join(f"{w.name} ({w.p_known:.0%})" for w in p.weak))
            )
        if p.mistakes:
            items = ", ".join(f"{m.name} (×{m.wrong})" for m in p.mistakes)
            paragraphs.append(t["mistakes"].format(items=items))
        due = p.due_next_14_days
        paragraphs.append(t["due"].format(now=p.due_now, week=sum(due[:7]), fortnight=sum(due)))
        paragraphs.append(t["how"].format(mastered=MASTERED))
        return "\n\n".join(paragraphs)


def draw_chart(p: Progress, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zh = p.language == "zh"
    # CJK module titles need a CJK font the machine may lack; module ids read everywhere
    names = [m.module_id if zh else m.title for m in p.modules]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    left.barh(names[::-1], [m.mastery for m in p.modules][::-1], color="#4C72B0")
    left.axvline(MASTERED, color="#999", linestyle="--", linewidth=1)
    left.set_xlim(0, 1)
    left.set_xlabel("mastery (p known, mean over concepts)")
    left.tick_params(axis="y", labelsize=7)
    from matplotlib.ticker import MaxNLocator

    right.bar(range(len(p.due_next_14_days)), p.due_next_14_days, color="#55A868")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_xlabel("days from now")
    right.set_ylabel("reviews due")
    fig.suptitle("Progress" if not zh else "Progress (module ids)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_progress(cfg: ProgressInput, ctx: ToolContext) -> ProgressOutput:
    language = cfg.language if cfg.language != "auto" else "en"
    report = progress(ctx.database, language, learner_id=ctx.learner_id)
    chart = None
    if cfg.chart and report.events:
        folder = ctx.outputs_dir / "progress"
        folder.mkdir(parents=True, exist_ok=True)
        chart = folder / f"progress-{time.strftime('%Y%m%d-%H%M%S')}.png"
        draw_chart(report, chart)
    return ProgressOutput(progress=report, chart_path=str(chart) if chart else None)


def extract_progress_args(text: str) -> dict[str, Any]:
    return {"language": detect_language(text)}


TOOL = ToolSpec(
    name="learner_progress",
    description="What the learner has covered and how well: mastery per module and concept (knowledge "
    "tracing over quiz answers), weak spots, recurring mistakes and reviews due, with a chart.",
    input_model=ProgressInput,
    output_model=ProgressOutput,
    func=run_progress,
    examples=EXAMPLES,
    extract_args=extract_progress_args,
)
