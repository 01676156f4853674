"""Structured output for the transformers backend: prompted JSON, validated, retried once.

llama.cpp, Ollama and OpenAI backends constrain decoding with a grammar built from the JSON
schema, so their output always parses. Plain transformers has no such sampler here, so
`prompted_json` asks for a JSON object shaped like a skeleton of the schema (small models echo
a schema back), starts the reply with "{", parses the first JSON object and validates it, and
on failure asks once more with the error. It fails with `StructuredOutputError`, not junk.
Backs `HFChatModel.with_structured_output` (`hf_chat`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, HumanMessage
from pydantic import BaseModel

from llmtutor.backends.hf_prompt import message_text
from llmtutor.errors import LLMTutorError

if TYPE_CHECKING:
    from llmtutor.backends.hf_chat import HFChatModel


class StructuredOutputError(LLMTutorError):
    """The model's reply did not parse into the requested schema."""


def prompted_json(model: HFChatModel, schema: dict[str, Any] | type, *, include_raw: bool = False):
    """A runnable that returns `schema` parsed from `model`'s reply (see the module docstring)."""
    from langchain_core.runnables import RunnableLambda
    from langchain_core.utils.function_calling import convert_to_json_schema

    is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
    json_schema = schema.model_json_schema() if is_model else convert_to_json_schema(schema)
    title = json_schema.get("title", "the answer")
    # A skeleton, not the schema itself: small models echo a JSON schema back.
    instruction = (
        "Reply with only a JSON object (no prose, no code fences) shaped like this, "
        "with the placeholders filled in:\n" + json.dumps(_skeleton(json_schema), ensure_ascii=False)
    )

    def parse(text: str) -> Any:
        data = _first_json_object(text)
        if is_model:
            return schema.model_validate(data)
        missing = [k for k in json_schema.get("required", []) if k not in data]
        if missing:
            raise ValueError(f"missing required keys: {missing}")
        return data

    def call(value: Any, config: Any = None) -> Any:
        messages = [*model._convert_input(value).to_messages(), HumanMessage(content=instruction)]
        raw: AIMessage | None = None
        error: Exception | None = None
        for _attempt in range(2):
            # no repetition penalty: JSON repeats quotes, braces and keys by design
            raw = model.invoke(messages, config, assistant_prefix="{", repetition_penalty=1.0)
            try:
                parsed = parse(message_text(raw.content))
                return {"raw": raw, "parsed": parsed, "parsing_error": None} if include_raw else parsed
            except Exception as exc:
                error = exc
                messages += [
                    raw,
                    HumanMessage(
                        content=f"That is not valid: {_brief(exc)}. Reply with only the corrected JSON object."
                    ),
                ]
        if include_raw:
            return {"raw": raw, "parsed": None, "parsing_error": error}
        raise StructuredOutputError(
            f"{model.model_name} did not return valid JSON for {title} after 2 tries: {_brief(error)}",
            "use a larger model (LLMTUTOR_CHAT_MODEL) or a backend with grammar-constrained decoding "
            "(llamacpp, ollama, openai)",
        )

    return RunnableLambda(call, name=f"{model._llm_type}-structured")


def _skeleton(schema: dict[str, Any]) -> dict[str, Any]:
    """{"field": "<string>", "choice": "a|b", ...} for the top-level properties."""
    defs = schema.get("$defs", {})
    shape: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        if "$ref" in prop:
            prop = defs.get(prop["$ref"].rsplit("/", 1)[-1], prop)
        options = prop.get("enum") or ([prop["const"]] if "const" in prop else None)
        kind = prop.get("type") or next(
            (p.get("type") for p in prop.get("anyOf", []) if p.get("type") != "null"), ""
        )
        placeholder = {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}.get(kind)
        if options:
            placeholder = "|".join(str(o) for o in options)
        shape[name] = placeholder if placeholder is not None else f"<{prop.get('description') or name}>"
    return shape


def _brief(error: BaseException | None) -> str:
    return " ".join(str(error).split())[:200]


def _first_json_object(text: str) -> Any:
    start = text.find("{")
    data = json.JSONDecoder().raw_decode(text[start:])[0] if start >= 0 else None
    if not isinstance(data, dict):
        raise ValueError("no JSON object in the reply")
    return data
