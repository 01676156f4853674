"""Scripted stand-ins for graph tests: a fake chat backend, a slow streaming one, a scripted
router, and two counting tools (one cheap, one expensive) that record their runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import BaseModel, ConfigDict

from llmtutor.agents.routing.router import RouteDecision
from llmtutor.tools.registry import ToolRegistry, ToolSpec


class CountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 1


class CountOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total: int

    def to_markdown(self) -> str:
        return f"counter total = {self.total}"


def make_registry(calls: list[str]) -> ToolRegistry:
    def cheap(cfg: CountIn, ctx) -> CountOut:
        calls.append("cheap")
        ctx.report("counting", 1, 1)
        return CountOut(total=cfg.n)

    def expensive(cfg: CountIn, ctx) -> CountOut:
        calls.append("expensive")
        return CountOut(total=cfg.n * 100)

    return ToolRegistry(
        [
            ToolSpec("cheap_count", "Counts cheaply.", CountIn, CountOut, cheap, examples=("count",)),
            ToolSpec(
                "big_count",
                "Counts expensively.",
                CountIn,
                CountOut,
                expensive,
                examples=("big",),
                expensive=True,
                writes=True,
            ),
        ]
    )


class ScriptedRouter:
    """Routes 'cheap …' / 'big …' to the test tools; anything else to no tool."""

    def parse_command(self, text: str):
        return None

    def route(self, text: str) -> RouteDecision:
        if text.startswith("cheap"):
            return RouteDecision(tool="cheap_count", args={"n": 3}, confidence=1.0, method="classifier")
        if text.startswith("big"):
            return RouteDecision(tool="big_count", args={"n": 2}, confidence=1.0, method="classifier")
        return RouteDecision(tool=None, args={}, confidence=1.0, method="classifier")

    def route_batch(self, texts):
        return [self.route(t) for t in texts]


class PromptRecorder(BaseCallbackHandler):
    def __init__(self):
        self.prompts: list[list] = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.prompts.append(messages[0])


class ToolCallingFake(GenericFakeChatModel):
    """A scripted model that accepts `bind_tools` (as capable backends do)."""

    def bind_tools(self, tools, **kwargs):
        self.__dict__["bound_tools"] = tools
        # The fake cannot stream tool calls; the copy shares the script iterator.
        return self.model_copy(update={"disable_streaming": True})


class FakeBackend:
    """Every chat model it hands out reads the same script, in order."""

    name = "fake"

    def __init__(self, replies, recorder=None, native_tools: bool = False):
        self._script = iter(r if isinstance(r, AIMessage) else AIMessage(content=r) for r in replies)
        self.recorder = recorder
        self.supports_native_tools = native_tools
        self.models: list[ToolCallingFake] = []

    def chat_model(self, temperature=None, max_tokens=None):
        callbacks = [self.recorder] if self.recorder else None
        model = ToolCallingFake(messages=self._script, callbacks=callbacks)
        self.models.append(model)
        return model

    def describe(self):
        return {"backend": "fake"}

    def close(self):
        pass


class SlowChatModel(BaseChatModel):
    """Streams `backend.words` words, one every `backend.delay_s` seconds, recording when each is
    pulled (a generation the reader stopped stops being pulled)."""

    backend: Any

    @property
    def _llm_type(self) -> str:
        return "slow-fake"

    def _stream(self, messages, stop=None, run_manager=None, **kwargs) -> Iterator[ChatGenerationChunk]:
        for i in range(self.backend.words):
            time.sleep(self.backend.delay_s)
            self.backend.pulls.append(time.monotonic())
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=f"word{i} "))
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        text = "".join(chunk.text for chunk in self._stream(messages, stop, run_manager))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


class SlowBackend:
    """A capable backend (native tools) whose models generate slowly."""

    name = "slow-fake"
    supports_native_tools = True

    def __init__(self, words: int = 200, delay_s: float = 0.05):
        self.words, self.delay_s = words, delay_s
        self.pulls: list[float] = []

    def chat_model(self, temperature=None, max_tokens=None):
        return SlowChatModel(backend=self)

    def describe(self):
        return {"backend": self.name}

    def close(self):
        pass
