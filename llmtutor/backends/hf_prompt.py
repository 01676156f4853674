"""LangChain messages -> the prompt text a transformers chat template makes of them (backend "hf").

`to_chat` turns messages into chat-template turns: tool calls are written into the assistant
turn and tool results become user turns, since small chat templates (SmolLM2's included) have
no tool role. `render_prompt` applies the tokenizer's template with the generation prompt,
merging turns for strict templates (no system role, strict alternation), and writes a plain
transcript for base models without one. Used by `hf_chat.HFChatModel` and `hf_structured`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, SystemMessage, ToolMessage


def message_text(content: Any) -> str:
    """The text of a message's content: the string itself, or its text parts joined."""
    if isinstance(content, str):
        return content
    parts = [p if isinstance(p, str) else p.get("text", "") for p in content if isinstance(p, str | dict)]
    return "".join(parts)


def to_chat(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages → chat-template turns. Tool results become user turns:
    small chat templates (SmolLM2's included) have no tool role."""
    chat: list[dict[str, str]] = []
    for msg in messages:
        role, text = "user", message_text(msg.content)  # human messages and anything unknown
        if isinstance(msg, SystemMessage):
            role = "system"
        elif isinstance(msg, AIMessage):
            role = "assistant"
            if msg.tool_calls:
                calls = [{"name": c["name"], "arguments": c["args"]} for c in msg.tool_calls]
                text = (text + "\n" if text else "") + "Tool calls: " + json.dumps(calls, ensure_ascii=False)
        elif isinstance(msg, ToolMessage):
            text = f"Result of tool {msg.name or msg.tool_call_id}:\n{text}"
        elif isinstance(msg, ChatMessage) and msg.role in ("system", "user", "assistant"):
            role = msg.role
        chat.append({"role": role, "content": text})
    return chat


def _merge_turns(chat: list[dict[str, str]]) -> list[dict[str, str]]:
    """For strict templates: no system role, user/assistant alternation."""
    merged: list[dict[str, str]] = []
    for turn in chat:
        role = "user" if turn["role"] == "system" else turn["role"]
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"] += "\n\n" + turn["content"]
        else:
            merged.append({"role": role, "content": turn["content"]})
    return merged


def render_prompt(tokenizer: Any, chat: list[dict[str, str]]) -> str:
    if not getattr(tokenizer, "chat_template", None):  # base models: a plain transcript
        lines = [f"{t['role'].capitalize()}: {t['content']}" for t in chat]
        return "\n".join(lines) + "\nAssistant:"
    try:
        return tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    except Exception:  # templates that raise on system turns or repeated roles
        return tokenizer.apply_chat_template(_merge_turns(chat), add_generation_prompt=True, tokenize=False)
