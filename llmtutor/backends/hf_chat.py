"""transformers generation as a LangChain chat model: `HFChatModel` (backend "hf").

A loaded causal LM and its tokenizer behind LangChain's chat interface, in this process, on
CPU or GPU. Messages become a prompt through the tokenizer's chat template (`hf_prompt`);
generation is greedy or samples like the llama.cpp server's defaults (top-k 40, top-p 0.95),
keeps the most recent context when the prompt is too long, honours stop strings and reports
token usage and the finish reason. `_stream` generates in a thread and stops it when the reader
goes away. Structured output is prompted JSON with validation and one retry (`hf_structured`).
Loading the model is `hf.HFBackend`'s job.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from llmtutor.backends.base import REPEAT_PENALTY
from llmtutor.backends.hf_prompt import render_prompt, to_chat
from llmtutor.backends.hf_structured import prompted_json

DEFAULT_MAX_TOKENS = 384
# Same truncation as the llama.cpp server's defaults, so backends sample alike.
SAMPLING_TOP_K, SAMPLING_TOP_P = 40, 0.95


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
        return prompted_json(self, schema, include_raw=include_raw)


class _Halt:
    """Stopping criterion that ends generation when the stream's reader goes away."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        stop = self.event.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


def _cut_at_stop(text: str, stop: list[str] | None) -> str:
    cuts = [text.find(s) for s in stop or [] if s and s in text]
    return text[: min(cuts)] if cuts else text
