"""The tutor graph's state."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


class ToolRun(TypedDict, total=False):
    tool: str
    args: dict[str, Any]
    markdown: str  # how the result reads in chat
    images: list[str]  # plots to show
    output: dict[str, Any]  # the typed output, dumped
    error: str  # set instead of output when the tool failed or was refused
    refused: bool  # the error came from the plan, before asking: nothing was started
    citations: list[dict[str, Any]]  # numbered passages a cited answer may refer to
    found: bool  # False when a search found nothing relevant
    final: bool  # the result is the whole answer (a quiz question), shown as it is


class TutorState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    persona: str
    learner_id: str  # whose conversation (llmtutor/users.py); "local" without users
    route: dict[str, Any] | None  # RouteDecision for the current turn
    plan: str | None  # what an expensive tool will do, shown when asking for approval
    approved: bool | None
    tool_run: ToolRun | None  # result of the current turn's tool, if any
    teaching: dict[str, Any] | None  # an open dialogue of the persona's policy (agents/teaching.py)
