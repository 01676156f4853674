"""Graph routing, approval and memory with a scripted fake chat model.

(The end-to-end path with the real SmolLM2 model is in test_e2e.py.)
"""

from __future__ import annotations

import sqlite3

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from pydantic import BaseModel, ConfigDict

from llmtutor.agents.router import RouteDecision
from llmtutor.agents.tutor import Tutor
from llmtutor.tools.registry import ToolRegistry, ToolSpec
from llmtutor.tools.settings import Settings


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
            ToolSpec("big_count", "Counts expensively.", CountIn, CountOut, expensive, examples=("big",), expensive=True, writes=True),
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


class FakeBackend:
    name = "fake"
    supports_native_tools = False

    def __init__(self, replies, recorder=None):
        self.replies = replies
        self.recorder = recorder

    def chat_model(self, temperature=None, max_tokens=None):
        callbacks = [self.recorder] if self.recorder else None
        return GenericFakeChatModel(messages=iter(AIMessage(content=r) for r in self.replies), callbacks=callbacks)

    def describe(self):
        return {"backend": "fake"}

    def close(self):
        pass


@pytest.fixture
def calls() -> list[str]:
    return []


def make_tutor(tmp_path, calls, replies, checkpointer=None, recorder=None) -> Tutor:
    settings = Settings(workspace=tmp_path)
    return Tutor(
        settings,
        backend=FakeBackend(replies, recorder),
        registry=make_registry(calls),
        router=ScriptedRouter(),
        checkpointer=checkpointer or InMemorySaver(),
    )


def test_direct_answer_streams_tokens(tmp_path, calls):
    tutor = make_tutor(tmp_path, calls, ["Hello there, learner"])
    events = list(tutor.stream("hi", thread_id="t"))
    kinds = [e.type for e in events]
    assert kinds[0] == "route" and events[0].data["tool"] is None
    assert "token" in kinds
    assert events[-1].type == "answer" and events[-1].data["text"] == "Hello there, learner"
    assert calls == []


def test_cheap_tool_runs_and_result_reaches_answer(tmp_path, calls):
    recorder = PromptRecorder()
    tutor = make_tutor(tmp_path, calls, ["It counted three."], recorder=recorder)
    events = list(tutor.stream("cheap please", thread_id="t"))
    kinds = [e.type for e in events]
    assert kinds.index("tool_start") < kinds.index("progress") < kinds.index("tool_result") < kinds.index("answer")
    assert calls == ["cheap"]
    result = next(e for e in events if e.type == "tool_result").data
    assert result["output"] == {"total": 3}
    # The model is shown the tool result, and the answer keeps the exact figures.
    system_prompt = recorder.prompts[-1][0].content
    assert "counter total = 3" in system_prompt
    assert events[-1].data["text"].startswith("counter total = 3")


def test_expensive_tool_waits_for_approval_and_runs_once(tmp_path, calls):
    tutor = make_tutor(tmp_path, calls, ["Done.", "Again."])
    first = tutor.ask("big job", thread_id="t1")
    assert first.pending_approval is not None and first.pending_approval["tool"] == "big_count"
    assert calls == []  # nothing ran before approval
    resumed = tutor.collect(tutor.resume("t1", approved=True), "t1")
    assert calls == ["expensive"]
    assert resumed.pending_approval is None
    assert resumed.tool_results[0]["output"] == {"total": 200}
    # Resuming a finished turn again must not repeat the side effect.
    list(tutor.resume("t1", approved=True))
    assert calls == ["expensive"]


def test_declined_tool_never_runs(tmp_path, calls):
    tutor = make_tutor(tmp_path, calls, ["Okay, not running it."])
    reply = tutor.ask("big job", thread_id="t2", approve=False)
    assert calls == []
    assert reply.answer == "Okay, not running it."
    assert reply.pending_approval is None


def test_approve_flag_runs_headlessly(tmp_path, calls):
    tutor = make_tutor(tmp_path, calls, ["Finished."])
    reply = tutor.ask("big job", thread_id="t3", approve=True)
    assert calls == ["expensive"]
    assert reply.tool_calls == [{"tool": "big_count", "args": {"n": 2}}]
    assert "counter total = 200" in reply.answer


def test_persona_without_the_tool_answers_directly(tmp_path, calls):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "narrow.yaml").write_text(
        "name: narrow\ntitle: Narrow\ndescription: no tools\nsystem_prompt: You explain.\nallowed_tools: []\n",
        encoding="utf-8",
    )
    settings = Settings(workspace=tmp_path, personas_dir=tmp_path / "p")
    tutor = Tutor(settings, backend=FakeBackend(["Plain answer."]), registry=make_registry(calls),
                  router=ScriptedRouter(), checkpointer=InMemorySaver())
    reply = tutor.ask("cheap please", persona="narrow")
    assert calls == [] and reply.tool_calls == [] and reply.persona == "narrow"


def test_thread_resumes_from_sqlite_checkpoint(tmp_path, calls):
    db = tmp_path / "threads.sqlite"
    first = make_tutor(tmp_path, calls, ["Nice to meet you, Ada."],
                       checkpointer=SqliteSaver(sqlite3.connect(db, check_same_thread=False)))
    first.ask("My name is Ada.", thread_id="resume-me")

    # A new process: new Tutor, same database file.
    recorder = PromptRecorder()
    second = make_tutor(tmp_path, calls, ["Your name is Ada."], recorder=recorder,
                        checkpointer=SqliteSaver(sqlite3.connect(db, check_same_thread=False)))
    reply = second.ask("What is my name?", thread_id="resume-me")
    assert reply.answer == "Your name is Ada."
    sent = [m.content for m in recorder.prompts[-1]]
    assert "My name is Ada." in sent and "Nice to meet you, Ada." in sent
    assert len(second.history("resume-me")) == 4
    # Another thread knows nothing of it.
    assert second.history("other") == []
