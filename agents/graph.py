"""The tutor as a LangGraph StateGraph.

    START → route ─┬─ (no tool) ───────────────────────────→ answer → END
                   ├─ (cheap tool) ──────────→ run_tool ──→ answer
                   └─ (expensive tool) → approve ─┬→ run_tool
                                                   └→ answer (declined)

`approve` holds nothing but the `interrupt`: LangGraph re-runs an interrupted
node from its start on resume, so the tool's side effect lives in its own node
(`run_tool`), which only runs once the approval is checkpointed.

`answer` composes the reply (answering.py: templates, extractive answers, fixed texts, and a
capable model's checked text) and streams only that composed text, as "custom" events keyed
ANSWER_TOKEN; the model's raw tokens are never shown.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from llmtutor.agents import answering, teaching
from llmtutor.agents.personas import Persona, get_persona
from llmtutor.agents.state import ToolRun, TutorState
from llmtutor.errors import CancelledError, LLMTutorError
from llmtutor.text import detect_language
from llmtutor.tools.registry import (
    ToolContext,
    ToolRegistry,
    output_citations,
    output_images,
    output_is_final,
    render_markdown,
)

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from llmtutor.agents.routing.router import RouteDecision


# Key of the answer's text pieces in the "custom" stream (tool progress events use other keys).
ANSWER_TOKEN = "answer_token"


@dataclass
class GraphDeps:
    registry: ToolRegistry
    personas: dict[str, Persona]
    default_persona: str
    # (text, allowed tool names, history, learner id) -> decision
    route: Callable[[str, list[str], list[AnyMessage], str], RouteDecision]
    # (temperature, max_tokens or None for the default) -> chat model
    llm: Callable[[float, int | None], BaseChatModel]
    tool_context: Callable[[], ToolContext]
    history_chars: int = 12_000  # ~3k tokens of earlier conversation sent back to the model
    explanation_tokens: int = 160  # a tool result needs a short explanation, not an essay
    # Whether the chat model may write answers (a capable backend, checked like every other
    # text). False on the default 135M model: templates, extractive answers and fixed texts only.
    capable: bool = False
    # texts -> unit vectors (the shipped MiniLM) for choosing passage sentences and course topics;
    # None: word overlap alone.
    embed: Callable[[Sequence[str]], Any] | None = None
    # (tool, args) -> raises when this deployment will not run it (the public demo's limits)
    guard: Callable[[str, dict[str, Any]], None] | None = None
    # thread id -> the conversation's cancel event (its tool runs stop when it is set)
    cancel_event: Callable[[str], Any] | None = None
    # (graded dialogue step, learner id) -> the learner model; None: not kept.
    record_outcome: Callable[[teaching.Outcome, str], None] | None = None
    # A tool run that finished (tool, the learner's request, args, learner): lab evidence.
    record_lab: Callable[[str, str, dict[str, Any], str], None] | None = None


def last_human_text(messages: list[AnyMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text if hasattr(message, "text") else str(message.content)
    return ""


def last_ai_text(messages: list[AnyMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, AIMessage) and not message.tool_calls:
            return message.text if hasattr(message, "text") else str(message.content)
    return ""


def conversation_for_model(messages: list[AnyMessage], budget_chars: int) -> list[AnyMessage]:
    """Human/AI text turns only, newest first until the budget is spent.

    Tool-call plumbing is dropped: small chat templates (SmolLM2's) have no tool
    role, and each answer already carries its tool's result in its text.
    """
    kept: list[AnyMessage] = []
    used = 0
    for message in reversed(messages):
        if isinstance(message, ToolMessage) or (isinstance(message, AIMessage) and message.tool_calls):
            continue
        if not isinstance(message, HumanMessage | AIMessage):
            continue
        size = len(str(message.content))
        if kept and used + size > budget_chars:
            break
        # Fresh messages: metadata and ids stay in the checkpoint, not in the prompt.
        kept.append(
            HumanMessage(content=message.content)
            if isinstance(message, HumanMessage)
            else AIMessage(content=message.content)
        )
        used += size
    return list(reversed(kept))


def generate(model: BaseChatModel, messages: list[AnyMessage], config: Any, cancel: Any = None) -> AIMessage:
    """The model's reply, read as a stream so that a cancelled turn (a closed SSE stream, Stop)
    stops the generation itself: backends stop generating when their stream is closed."""
    if cancel is None:
        return model.invoke(messages, config)
    reply = None
    stream = model.stream(messages, config)
    try:
        for chunk in stream:
            if cancel.is_set():
                break
            reply = chunk if reply is None else reply + chunk
    finally:
        stream.close()
    if cancel.is_set():
        raise CancelledError("cancelled by the user", "send the message again for a new answer")
    return reply if reply is not None else AIMessage(content="")


def build_graph(deps: GraphDeps, checkpointer: Any = None):
    def persona_of(state: TutorState) -> Persona:
        return get_persona(deps.personas, state.get("persona") or deps.default_persona)

    def route(state: TutorState) -> dict[str, Any]:
        persona = persona_of(state)
        text = last_human_text(state["messages"])
        fresh = {"approved": None, "tool_run": None, "plan": None}
        allowed = persona.tool_names(deps.registry.names())
        if teaching.continues(state.get("teaching"), text):  # the learner answers the open dialogue
            if (offered := teaching.accepted_lab(state.get("teaching"))) and offered[0] in allowed:
                decision = {"tool": offered[0], "args": offered[1], "confidence": 1.0, "method": "offer"}
                return {"route": decision, "teaching": None, **fresh}
            return {"route": {"tool": None, "args": {}, "confidence": 1.0, "method": "continuation"}, **fresh}
        decision = deps.route(text, allowed, state["messages"], state.get("learner_id") or "local")
        return {"route": decision.model_dump(mode="json"), "teaching": None, **fresh}

    def after_route(state: TutorState) -> str:
        tool = (state.get("route") or {}).get("tool")
        if not tool:
            return "answer"
        return "prepare" if deps.registry.get(tool).expensive else "run_tool"

    def prepare(state: TutorState) -> dict[str, Any]:
        """The plan to approve; a run that cannot work is refused here, before asking."""
        decision = state["route"] or {}
        tool = deps.registry.get(decision["tool"])
        args = decision.get("args", {})
        try:
            if deps.guard is not None:
                deps.guard(tool.name, args)
            if tool.preview is None:
                return {"plan": None}
            ctx = deps.tool_context()
            # the plan resolves models and paths in the learner's own space, as the run will
            ctx.learner_id = state.get("learner_id") or "local"
            plan = tool.preview(tool.validate(args), ctx)
        except LLMTutorError as exc:
            run: ToolRun = {"tool": tool.name, "args": args, "error": str(exc), "refused": True}
            return {"plan": None, "tool_run": run}
        return {"plan": plan}

    def after_prepare(state: TutorState) -> str:
        return "answer" if state.get("tool_run") else "approve"

    def approve(state: TutorState) -> dict[str, Any]:
        decision = state["route"] or {}
        tool = deps.registry.get(decision["tool"])
        plan = state.get("plan")
        question = f"{tool.name} is an expensive tool (it may run for minutes and write files). Run it?"
        reply = interrupt(
            {
                "type": "approval",
                "tool": tool.name,
                "args": decision.get("args", {}),
                "plan": plan,
                "message": f"{plan}\n\n{question}" if plan else question,
            }
        )
        approved = reply.get("approved", False) if isinstance(reply, dict) else bool(reply)
        return {"approved": approved}

    def after_approve(state: TutorState) -> str:
        return "run_tool" if state.get("approved") else "answer"

    def run_tool(state: TutorState, config) -> dict[str, Any]:
        decision = state["route"] or {}
        tool = deps.registry.get(decision["tool"])
        args = decision.get("args", {})
        run: ToolRun = {"tool": tool.name, "args": args}
        ctx = deps.tool_context()
        ctx.learner_id = state.get("learner_id") or "local"
        thread_id = (config or {}).get("configurable", {}).get("thread_id")
        if deps.cancel_event is not None and thread_id:
            ctx.cancel_event = deps.cancel_event(thread_id)
        writer = get_stream_writer()  # progress events reach Tutor.stream as "progress"
        ctx.progress = lambda event: writer({"tool": tool.name, **event.model_dump()})
        try:
            output = tool.run(args, ctx)
            run.update(
                markdown=render_markdown(output),
                images=output_images(output),
                output=output.model_dump(mode="json"),
                citations=output_citations(output),
            )
            if getattr(output, "found", None) is False:
                run["found"] = False
            if output_is_final(output):
                run["final"] = True
            # A lab counts once it has finished (a job that failed or was cancelled does not).
            if deps.record_lab is not None and getattr(output, "status", "succeeded") == "succeeded":
                request = last_human_text(state["messages"])
                deps.record_lab(tool.name, request, dict(args), ctx.learner_id)
        except LLMTutorError as exc:
            run["error"] = str(exc)
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        messages = [
            AIMessage(content="", tool_calls=[{"name": tool.name, "args": args, "id": call_id}]),
            ToolMessage(
                content=run.get("markdown") or f"Error: {run.get('error')}",
                tool_call_id=call_id,
                name=tool.name,
            ),
        ]
        return {"tool_run": run, "messages": messages}

    def answer(state: TutorState, config) -> dict[str, Any]:
        persona = persona_of(state)
        question = last_human_text(state["messages"])
        language = detect_language(question)
        run = state.get("tool_run")
        decision = state.get("route") or {}
        declined = decision.get("tool") if state.get("approved") is False and not run else None
        model_text, metadata = "", {}
        # A continued dialogue and a Socratic opening show no model text: skip the call.
        policy_turn = decision.get("method") == "continuation" or (
            persona.policy in ("socratic", "quiz") and answering.is_cited(run)
        )
        if not policy_turn and answering.needs_model(run, declined, deps.capable, question):
            system = persona.system_message(language) + answering.system_addition(run, declined)
            history = conversation_for_model(state["messages"], deps.history_chars)
            budget = deps.explanation_tokens if run and not answering.is_cited(run) else None
            thread_id = (config or {}).get("configurable", {}).get("thread_id")
            cancel = deps.cancel_event(thread_id) if deps.cancel_event is not None and thread_id else None
            response = generate(
                deps.llm(persona.temperature, budget),
                [SystemMessage(content=system), *history],
                config,
                cancel,
            )
            model_text = response.content if isinstance(response.content, str) else str(response.content)
            metadata = dict(response.response_metadata)
        update: dict[str, Any] = {}
        if decision.get("method") == "continuation" and state.get("teaching"):
            graded = teaching.outcome(state["teaching"], question)
            composed, update["teaching"] = teaching.go_on(state["teaching"], question, cited_answer)
            if graded is not None and deps.record_outcome is not None:
                deps.record_outcome(graded, state.get("learner_id") or "local")
        else:
            composed = answering.compose(
                run, model_text, question, language, declined=declined, persona=persona, embed=deps.embed
            )
            allowed = persona.tool_names(deps.registry.names())
            composed, update["teaching"] = teaching.open_with(
                persona, run, composed, question, language, allowed
            )
        # The learner sees only what is kept: the composed text, streamed in pieces (never the
        # model's draft, which the checks may cut or replace).
        writer = get_stream_writer()
        for piece in answering.stream_pieces(composed.text):
            writer({ANSWER_TOKEN: piece})
        metadata.update(explanation=composed.explanation, citations=composed.citations)
        return {"messages": [AIMessage(content=composed.text, response_metadata=metadata)], **update}

    def cited_answer(
        citations: list[dict[str, Any]], question: str, language: str
    ) -> answering.ComposedAnswer:
        run = {"tool": "search_course", "citations": citations, "found": True}
        return answering.compose(run, "", question, language, embed=deps.embed)

    graph = StateGraph(TutorState)
    graph.add_node("route", route)
    graph.add_node("prepare", prepare)
    graph.add_node("approve", approve)
    graph.add_node("run_tool", run_tool)
    graph.add_node("answer", answer)
    graph.add_edge(START, "route")
    graph.add_conditional_edges("route", after_route, ["answer", "prepare", "run_tool"])
    graph.add_conditional_edges("prepare", after_prepare, ["answer", "approve"])
    graph.add_conditional_edges("approve", after_approve, ["run_tool", "answer"])
    graph.add_edge("run_tool", "answer")
    graph.add_edge("answer", END)
    return graph.compile(checkpointer=checkpointer)
