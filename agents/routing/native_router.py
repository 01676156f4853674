"""Routing by the chat model's own tool calling, for capable backends
(OpenAI-compatible servers, larger Ollama models).

Small local models call a tool for almost anything (SmolLM2 even for "tell me a
joke", measured), so `router=auto` uses this only when the backend says it
supports native tools; otherwise the embedding classifier routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_core.messages import AnyMessage, SystemMessage

from llmtutor.agents.graph import conversation_for_model
from llmtutor.agents.routing.router import RouteDecision
from llmtutor.errors import ToolInputError
from llmtutor.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

ROUTER_PROMPT = (
    "You decide whether the learner's last message asks for one of the tools. "
    "Call a tool only when the learner asks for what it does; for greetings, thanks and "
    "questions you can answer from knowledge, reply with plain text and call no tool."
)


def native_route(
    llm: BaseChatModel, registry: ToolRegistry, allowed: list[str], history: list[AnyMessage]
) -> RouteDecision:
    tools = [registry.get(name) for name in allowed]
    if not tools:
        return RouteDecision(tool=None, args={}, confidence=1.0, method="native")
    bound = llm.bind_tools([tool.openai_schema() for tool in tools])
    reply = bound.invoke([SystemMessage(content=ROUTER_PROMPT), *conversation_for_model(history, 4000)])
    calls = [call for call in reply.tool_calls if call["name"] in allowed]
    if not calls:
        return RouteDecision(tool=None, args={}, confidence=1.0, method="native")
    tool = registry.get(calls[0]["name"])
    try:
        args = tool.validate(calls[0].get("args") or {}).model_dump(mode="json", exclude_defaults=True)
    except ToolInputError:
        # The model named the right tool but filled it badly: fall back to the rules.
        text = history[-1].content if history else ""
        args = tool.extract_args(str(text)) if tool.extract_args else {}
    return RouteDecision(tool=tool.name, args=args, confidence=1.0, method="native")
