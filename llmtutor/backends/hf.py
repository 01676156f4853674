"""transformers generation as a LangChain chat model (backend "hf").

Runs any causal LM that `llmtutor.hf_models` resolves (the bundled
SmolLM2 converted from its GGUF, an HF folder, a hub id) in this process, on
CPU or GPU: e.g. the models you fine-tune in the labs.

Structured output is prompted JSON with validation and one retry, not
grammar-constrained decoding: see `HFChatModel.with_structured_output`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import BaseModel, ConfigDict, Field

from llmtutor.backends.base import REPEAT_PENALTY, ChatBackend
from llmtutor.errors import LLMTutorError

if TYPE_CHECKING:
    from llmtutor.settings import Settings

DEFAULT_MAX_TOKENS = 384
# Same truncation as the llama.cpp server's defaults, so backends sample alike.
SAMPLING_TOP_K, SAMPLING_TOP_P = 40, 0.95


class StructuredOutputError(LLMTutorError):
    """The model's reply did not parse into the requested schema."""


# ----- messages → chat template -------------------------------------------------
def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [p if isinstance(p, str) else p.get("text", "") for p in content if isinstance(p, str | dict)]
    return "".join(parts)


def to_chat(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages → chat-template turns. Tool results become user turns:
    small chat templates (SmolLM2's included) have no tool role."""
    chat: list[dict[str, str]] = []
    for msg in messages:
        role, text = "user", _text(msg.content)  # human messages and anything unknown
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


# ----- the LangChain chat model ---------------------------------------------------
class HFChatModel(BaseChatModel):
    """A loaded transformers model and tokenizer behind LangChain's chat interface."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    hf_model: Any = Field(exclude=True)
    tokenizer: Any = Field(exclude=True)
    model_name: str = "hf"
    temperature: float | None = None  # None or 0 = greedy
    max_tokens: int = DEFAULT_MAX_TOKENS
    repetition_penalty: float = REPEAT_PENALTY

    @property
    def _llm_type(self) -> str:
        return "llmtutor-hf"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _prepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        from transformers import GenerationConfig

        prompt = render_prompt(self.tokenizer, to_chat(messages)) + kwargs.get("assistant_prefix", "")
        device = next(self.hf_model.parameters()).device
        # The template already holds BOS/role tokens: add no others.
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        max_new = int(kwargs.get("max_tokens") or self.max_tokens)
        limit = getattr(self.hf_model.config, "max_position_embeddings", None)
        if limit and inputs["input_ids"].shape[1] + max_new > limit:  # keep the most recent context
            keep = max(limit - max_new, 1)
            inputs = {k: v[:, -keep:] for k, v in inputs.items()}
        inputs = {k: v.to(device) for k, v in inputs.items()}
        gen = self.hf_model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        pad = gen.pad_token_id if gen.pad_token_id is not None else self.tokenizer.pad_token_id
        temperature = kwargs.get("temperature", self.temperature)
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature:
            sampling = dict(
                do_sample=True, temperature=temperature, top_k=SAMPLING_TOP_K, top_p=SAMPLING_TOP_P
            )
        config = GenerationConfig(
            max_new_tokens=max_new,
            eos_token_id=eos,
            pad_token_id=pad if pad is not None else eos,
            stop_strings=list(stop) if stop else None,
            repetition_penalty=kwargs.get("repetition_penalty", self.repetition_penalty),
            **sampling,
        )
        return inputs, {"generation_config": config, "tokenizer": self.tokenizer}

    def _finish(self, prompt_tokens: int, output_ids: list[int]) -> dict[str, Any]:
        eos = self.hf_model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos, self.tokenizer.eos_token_id])
        reason = "stop" if output_ids and output_ids[-1] in eos_ids else "length"
        n = len(output_ids)
        usage = {"input_tokens": prompt_tokens, "output_tokens": n, "total_tokens": prompt_tokens + n}
        return {
            "usage_metadata": usage,
            "response_metadata": {"finish_reason": reason, "model_name": self.model_name},
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        import torch

        inputs, gen_kwargs = self._prepare(messages, stop, kwargs)
        with torch.inference_mode():
            out = self.hf_model.generate(**inputs, **gen_kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        new_ids = out[0, prompt_len:].tolist()
        text = kwargs.get("assistant_prefix", "") + self.tokenizer.decode(new_ids, skip_special_tokens=True)
        message = AIMessage(content=_cut_at_stop(text, stop), **self._finish(prompt_len, new_ids))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        inputs, gen_kwargs = self._prepare(messages, stop, kwargs)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        halt = threading.Event()  # set when the consumer stops reading: generation stops too
        result: dict[str, Any] = {}

        def work() -> None:
            import torch

            try:
                with torch.inference_mode():
                    result["ids"] = self.hf_model.generate(
                        **inputs,
                        **gen_kwargs,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_Halt(halt)]),
                    )
            except BaseException as exc:  # re-raised in the consumer's thread
                result["error"] = exc
                streamer.end()  # unblock the iterator below

        thread = threading.Thread(target=work, name="hf-generate", daemon=True)
        thread.start()
        prefix = kwargs.get("assistant_prefix", "")
        pending, hold = prefix, max((len(s) for s in stop or []), default=1) - 1
        try:
            for piece in streamer:
                pending += piece
                cut = _cut_at_stop(pending, stop)
                if cut != pending:  # a stop string arrived: flush what precedes it and end
                    pending = cut
                    halt.set()
                    break
                # Hold back a possible stop-string prefix until the next piece decides it.
                split = max(len(pending) - hold, 0)
                ready, pending = pending[:split], pending[split:]
                if ready:
                    yield self._chunk(ready, run_manager)
            if pending:
                yield self._chunk(pending, run_manager)
        finally:
            halt.set()
            thread.join()
        if "error" in result:
            raise result["error"]
        prompt_len = inputs["input_ids"].shape[1]
        new_ids = result["ids"][0, prompt_len:].tolist() if "ids" in result else []
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", chunk_position="last", **self._finish(prompt_len, new_ids))
        )

    def _chunk(self, text: str, run_manager: CallbackManagerForLLMRun | None) -> ChatGenerationChunk:
        chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
        if run_manager is not None:
            run_manager.on_llm_new_token(text, chunk=chunk)
        return chunk

    # -- structured output --
    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ):
        """Prompted JSON, parsed and validated, retried once with the error.

        llama.cpp, Ollama and OpenAI backends constrain decoding with a grammar built from
        the JSON schema, so their output always parses. Plain transformers has no such
        sampler here: this is best effort, and fails with `StructuredOutputError`, not junk.
        """
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
            messages = [*self._convert_input(value).to_messages(), HumanMessage(content=instruction)]
            raw: AIMessage | None = None
            error: Exception | None = None
            for _attempt in range(2):
                # no repetition penalty: JSON repeats quotes, braces and keys by design
                raw = self.invoke(messages, config, assistant_prefix="{", repetition_penalty=1.0)
                try:
                    parsed = parse(_text(raw.content))
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
                f"{self.model_name} did not return valid JSON for {title} after 2 tries: {_brief(error)}",
                "use a larger model (LLMTUTOR_CHAT_MODEL) or a backend with grammar-constrained decoding "
                "(llamacpp, ollama, openai)",
            )

        return RunnableLambda(call, name=f"{self._llm_type}-structured")


class _Halt:
    """Stopping criterion that ends generation when the stream's reader goes away."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        stop = self.event.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


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


def _cut_at_stop(text: str, stop: list[str] | None) -> str:
    cuts = [text.find(s) for s in stop or [] if s and s in text]
    return text[: min(cuts)] if cuts else text


def _first_json_object(text: str) -> Any:
    start = text.find("{")
    data = json.JSONDecoder().raw_decode(text[start:])[0] if start >= 0 else None
    if not isinstance(data, dict):
        raise ValueError("no JSON object in the reply")
    return data


# ----- the backend ----------------------------------------------------------------
class HFBackend(ChatBackend):
    name = "hf"
    supports_native_tools = False  # no tool-call parser for arbitrary chat templates

    @classmethod
    def from_settings(cls, settings: Settings) -> HFBackend:
        return cls(model=settings.chat_model, models_dir=settings.models_dir, device=settings.device)

    def __init__(self, model: str = "", *, models_dir: Path, device: str = "auto", dtype: Any = None):
        self.model, self.models_dir, self.device, self.dtype = model, Path(models_dir), device, dtype
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from llmtutor.hf_models import load_causal_lm

            self._loaded = load_causal_lm(self.model or None, self.models_dir, self.device, self.dtype)
        return self._loaded

    def chat_model(self, temperature: float | None = None, max_tokens: int | None = None) -> HFChatModel:
        hf_model, tokenizer = self._load()
        return HFChatModel(
            hf_model=hf_model,
            tokenizer=tokenizer,
            model_name=Path(str(hf_model.name_or_path)).name or "hf",
            temperature=temperature,
            max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
        )

    def describe(self) -> dict[str, Any]:
        from llmtutor.hf_models import default_hf_dir, is_default_model, pick_device, pick_dtype

        if self._loaded is not None:
            hf = self._loaded[0]
            model, device, dtype = str(hf.name_or_path), str(hf.device), str(hf.dtype)
        else:  # describe without loading (or converting) anything
            model = str(default_hf_dir(self.models_dir)) if is_default_model(self.model) else self.model
            device = pick_device(self.device)
            dtype = str(pick_dtype(self.dtype, device))
        return {
            "backend": self.name,
            "model": model,
            "device": device,
            "dtype": dtype.removeprefix("torch."),
            "loaded": self._loaded is not None,
            "structured_output": self.structured_method(),
        }

    def structured_method(self) -> str:
        return "prompted JSON + validation retry (no grammar)"

    def close(self) -> None:
        self._loaded = None  # the process-wide cache in training.models keeps the weights
