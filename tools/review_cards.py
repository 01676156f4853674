"""The `review_cards` tool: the learner's due spaced-review cards (FSRS, knowledge/learner/store),
asked again as a quiz. Answers go through the quiz like any other (graded, recorded), and each
one reschedules its card: remembered cards come back later, lapses sooner."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.knowledge.learner import store
from llmtutor.knowledge.learner.graph import load_concept_graph
from llmtutor.knowledge.quiz.flow import QuizOutput, start_review
from llmtutor.text import detect_language
from llmtutor.tools.registry import ToolContext, ToolSpec

EXAMPLES: tuple[str, ...] = (
    "Review my cards",
    "Let's do my reviews",
    "Start my spaced repetition review",
    "Quiz me on what is due for review",
    "复习",
    "复习我的卡片",
    "开始今天的复习",
    "Review my flashcards",
    "Time for my reviews",
    "Which cards are due? Let's review them",
    "Start a review session",
    "Spaced repetition please",
    "Let's review what I learned",
    "Practice my due cards",
    "Show me my due review questions",
    "Run my daily review",
    "I want to review",
    "Review what's due today",
    "复习一下到期的卡片",
    "今天有哪些要复习？开始吧",
    "闪卡复习",
    "间隔重复复习",
)

TEXT = {
    "en": {
        "none": "No reviews are due now. {later}",
        "later": "The next card is due in {when}.",
        "empty": "You have no review cards yet: every quiz question you answer becomes one.",
        "head": "**Review: {n} card(s) due.**",
    },
    "zh": {
        "none": "现在没有到期的复习卡片。{later}",
        "later": "下一张卡片{when}后到期。",
        "empty": "你还没有复习卡片：每答一道测验题，就会生成一张。",
        "head": "**复习：{n} 张卡片到期。**",
    },
}


class ReviewInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(10, ge=1, le=50, description="At most this many due cards in one review.")
    language: Literal["auto", "en", "zh"] = "auto"


class ReviewOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    final_answer: ClassVar[bool] = True
    language: Literal["en", "zh"]
    due: int
    next_due_days: float | None = None
    quiz: QuizOutput | None = None

    def to_markdown(self) -> str:
        t = TEXT[self.language]
        if self.quiz is not None:
            return f"{t['head'].format(n=self.due)}\n\n{self.quiz.to_markdown()}"
        if self.next_due_days is None:
            return t["empty"]
        return t["none"].format(later=t["later"].format(when=_span(self.next_due_days, self.language)))


def _span(days: float, language: str) -> str:
    """0.007 days → "10 minutes" / "10 分钟": a due date the learner can picture."""
    minutes = round(days * 24 * 60)
    if minutes < 120:
        return f" {max(1, minutes)} 分钟" if language == "zh" else f"{max(1, minutes)} minute(s)"
    if days < 2:
        hours = round(days * 24)
        return f" {hours} 小时" if language == "zh" else f"{hours} hours"
    return f" {days:.0f} 天" if language == "zh" else f"{days:.0f} days"


def run_review(cfg: ReviewInput, ctx: ToolContext) -> ReviewOutput:
    language = "zh" if cfg.language == "zh" else "en"
    db = ctx.database
    due = store.due_cards(db, learner_id=ctx.learner_id, limit=cfg.n)
    graph = load_concept_graph()
    pairs = [
        (graph.concept(c.concept_id).module, c.question_id)
        for c in due
        if c.concept_id in graph.concepts and c.question_id
    ]
    quiz = start_review(ctx.workspace, pairs, language, ctx.learner_id) if pairs else None
    if quiz is not None:
        return ReviewOutput(language=language, due=len(pairs), quiz=quiz)
    upcoming = store.next_due_in_days(db, ctx.learner_id)
    return ReviewOutput(language=language, due=0, next_due_days=upcoming)


def extract_review_args(text: str) -> dict[str, Any]:
    return {"language": detect_language(text)}


TOOL = ToolSpec(
    name="review_cards",
    description="The learner's due spaced-review cards (FSRS), asked again as a quiz; each answer "
    "reschedules its card.",
    input_model=ReviewInput,
    output_model=ReviewOutput,
    func=run_review,
    examples=EXAMPLES,
    writes=True,  # starts a quiz session; answers update the cards
    extract_args=extract_review_args,
)
