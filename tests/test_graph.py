"""Graph routing, approval and memory with a scripted fake chat model.

(The end-to-end path with the real SmolLM2 model is in test_e2e.py.)
"""

from __future__ import annotations

import sqlite3

import pytest
from fakes import FakeBackend, PromptRecorder, ScriptedRouter, make_registry
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from llmtutor.agents.routing.router import RouteDecision
from llmtutor.agents.tutor import Tutor
from llmtutor.errors import NothingToResumeError
from llmtutor.settings import Settings


@pytest.fixture
def calls() -> list[str]:
    return []


def make_tutor(tmp_path, calls, replies, checkpointer=None, recorder=None, capable=False) -> Tutor:
    # capable: a backend that may write answers (native tool support, not the default model),
    # routed by the scripted classifier; otherwise the default small model, which never writes.
    settings = (
        Settings(workspace=tmp_path, backend="openai", chat_model="big-model", router="classifier")
        if capable
        else Settings(workspace=tmp_path)
    )
    return Tutor(
        settings,
        backend=FakeBackend(replies, recorder, native_tools=capable),
        registry=make_registry(calls),
        router=ScriptedRouter(),
        checkpointer=checkpointer or InMemorySaver(),
    )


def test_direct_answer_streams_tokens(tmp_path, calls):
    from llmtutor.agents.explain.notices import GENERAL

    tutor = make_tutor(tmp_path, calls, ["Paris is the capital of France."], capable=True)
    events = list(tutor.stream("What is the capital of France?", thread_id="t"))
    kinds = [e.type for e in events]
    assert kinds[0] == "route" and events[0].data["tool"] is None
    assert "token" in kinds
    expected = f"{GENERAL['en']}\n\nParis is the capital of France."  # marked: not from the notes
    assert events[-1].type == "answer" and events[-1].data["text"] == expected
    assert "".join(e.data["text"] for e in events if e.type == "token") == expected
    assert calls == []


def test_small_talk_gets_the_persona_greeting_even_on_a_capable_backend(tmp_path, calls):
    tutor = make_tutor(tmp_path, calls, [], capable=True)  # an empty script: a model call would fail
    assert tutor.ask("hi", thread_id="t").answer == tutor.persona().greeting


def test_small_model_greets_from_the_persona_without_a_model_call(tmp_path, calls):
    tutor = make_tutor(tmp_path, calls, [])  # an empty script: any model call would fail
    events = list(tutor.stream("hi", thread_id="t"))
    assert events[-1].data["text"] == tutor.persona().greeting
    assert "".join(e.data["text"] for e in events if e.type == "token") == tutor.persona().greeting


def test_cheap_tool_runs_and_result_reaches_answer(tmp_path, calls):
    recorder = PromptRecorder()
    tutor = make_tutor(tmp_path, calls, ["The counter total is 3."], recorder=recorder, capable=True)
    events = list(tutor.stream("cheap please", thread_id="t"))
    kinds = [e.type for e in events]
    assert (
        kinds.index("tool_start")
        < kinds.index("progress")
        < kinds.index("tool_result")
        < kinds.index("answer")
    )
    assert calls == ["cheap"]
    result = next(e for e in events if e.type == "tool_result").data
    assert result["output"] == {"total": 3}
    # The model is shown the tool result, and the answer keeps the exact figures.
    system_prompt = recorder.prompts[-1][0].content
    assert "counter total = 3" in system_prompt
    assert events[-1].data["text"] == "counter total = 3\n\nThe counter total is 3."
    assert events[-1].data["explanation"] == "The counter total is 3."


def test_expensive_tool_waits_for_approval_and_runs_once(tmp_path, calls):
    tutor = make_tutor(tmp_path, calls, ["Done.", "Again."])
    first = tutor.ask("big job", thread_id="t1")
    assert first.pending_approval is not None and first.pending_approval["tool"] == "big_count"
    assert calls == []  # nothing ran before approval
    resumed = tutor.collect(tutor.resume("t1", approved=True), "t1")
    assert calls == ["expensive"]
    assert resumed.pending_approval is None
    assert resumed.tool_results[0]["output"] == {"total": 200}
    # Resuming a finished turn again is refused and does not repeat the side effect.
    with pytest.raises(NothingToResumeError):
        list(tutor.resume("t1", approved=True))
    assert calls == ["expensive"]


def test_expensive_tool_shows_its_plan_or_is_refused_before_asking(tmp_path, calls):
    import dataclasses

    from llmtutor.errors import ToolInputError
    from llmtutor.tools.registry import ToolRegistry

    def preview(cfg, ctx) -> str:
        if cfg.n > 5:
            raise ToolInputError(f"n={cfg.n} needs 9.0 GB, 2.0 GB free", "use n <= 5")
        return f"**Plan**: count to {cfg.n * 100}; needs 0.1 GB of 2.0 GB free"

    registry = make_registry(calls)
    big = dataclasses.replace(registry.get("big_count"), preview=preview)
    tutor = Tutor(
        Settings(workspace=tmp_path),
        backend=FakeBackend(["Done."]),
        registry=ToolRegistry([registry.get("cheap_count"), big]),
        router=ScriptedRouter(),
        checkpointer=InMemorySaver(),
    )
    asked = tutor.ask("big job", thread_id="plan")
    assert asked.pending_approval and "count to 200" in asked.pending_approval["message"]
    assert asked.pending_approval["plan"].startswith("**Plan**")
    # A run that cannot fit is refused with the numbers; nothing is asked, nothing runs.
    tutor.router.route = lambda text: RouteDecision(
        tool="big_count", args={"n": 9}, confidence=1.0, method="classifier"
    )
    refused = tutor.ask("big job", thread_id="plan-2")
    assert refused.pending_approval is None and calls == []
    assert "9.0 GB" in refused.answer and "use n <= 5" in refused.answer


def test_declined_tool_never_runs(tmp_path, calls):
    tutor = make_tutor(tmp_path, calls, ["Okay, not running it."], capable=True)
    reply = tutor.ask("big job", thread_id="t2", approve=False)
    assert calls == []
    # A fixed, truthful text, even on a capable backend: nothing for a model to add.
    assert reply.answer.startswith("OK, I did not run `big_count`: you declined the approval")
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
    tutor = Tutor(
        settings,
        backend=FakeBackend(["Plain answer."]),
        registry=make_registry(calls),
        router=ScriptedRouter(),
        checkpointer=InMemorySaver(),
    )
    reply = tutor.ask("cheap please", persona="narrow")
    assert calls == [] and reply.tool_calls == [] and reply.persona == "narrow"


def test_thread_resumes_from_sqlite_checkpoint(tmp_path, calls):
    db = tmp_path / "threads.sqlite"
    first = make_tutor(
        tmp_path,
        calls,
        ["Nice to meet you, Ada."],
        checkpointer=SqliteSaver(sqlite3.connect(db, check_same_thread=False)),
        capable=True,
    )
    first.ask("My name is Ada.", thread_id="resume-me")

    # A new process: new Tutor, same database file.
    recorder = PromptRecorder()
    second = make_tutor(
        tmp_path,
        calls,
        ["Your name is Ada."],
        recorder=recorder,
        checkpointer=SqliteSaver(sqlite3.connect(db, check_same_thread=False)),
        capable=True,
    )
    reply = second.ask("What is my name?", thread_id="resume-me")
    # No tool answered it: the model's answer is marked as not from the course notes.
    assert reply.answer.endswith("\n\nYour name is Ada.") and "Not from the course notes" in reply.answer
    sent = [m.content for m in recorder.prompts[-1]]
    assert "My name is Ada." in sent and any(m.endswith("Nice to meet you, Ada.") for m in sent)
    assert len(second.history("resume-me")) == 4
    # Another thread knows nothing of it.
    assert second.history("other") == []


def test_native_tool_calling_on_a_capable_backend(tmp_path, calls):
    from langchain_core.messages import AIMessage

    script = [
        AIMessage(content="", tool_calls=[{"name": "cheap_count", "args": {"n": 7}, "id": "c1"}]),
        "Seven it is.",
        AIMessage(content="", tool_calls=[{"name": "cheap_count", "args": {"n": "lots"}, "id": "c2"}]),
        "Counted with defaults.",
        "Just chatting.",  # no tool call: answer directly
        "Hello!",
    ]
    backend = FakeBackend(script, native_tools=True)
    settings = Settings(workspace=tmp_path, backend="openai", chat_model="big-model")
    tutor = Tutor(
        settings,
        backend=backend,
        registry=make_registry(calls),
        router=ScriptedRouter(),
        checkpointer=InMemorySaver(),
    )
    assert tutor.uses_native_routing()

    reply = tutor.ask("please count to seven")
    assert reply.tool_results[0]["output"] == {"total": 7} and reply.answer.endswith("Seven it is.")
    bound = backend.models[0].__dict__["bound_tools"]
    assert {t["function"]["name"] for t in bound} == {"cheap_count", "big_count"}

    # Bad arguments from the model fall back to the tool's defaults instead of failing.
    reply = tutor.ask("count a lot")
    assert reply.tool_results[0]["output"] == {"total": 1}

    reply = tutor.ask("how are you?")  # small talk: the persona's greeting, not the model's words
    assert reply.tool_calls == [] and reply.answer == tutor.persona().greeting


def test_auto_router_keeps_the_classifier_for_the_small_default_model(tmp_path, calls):
    tutor = make_tutor(tmp_path, calls, [])
    assert not tutor.uses_native_routing()


def test_help_and_bad_commands_touch_no_state(tmp_path, calls):
    from llmtutor.agents.routing.router import Router
    from llmtutor.errors import ToolNotFoundError

    settings = Settings(workspace=tmp_path)
    registry = make_registry(calls)
    tutor = Tutor(
        settings,
        backend=FakeBackend([]),
        registry=registry,
        router=Router(registry),
        checkpointer=InMemorySaver(),
    )
    reply = tutor.ask("/help", thread_id="h")
    assert "/cheap_count" in reply.answer and "socratic_coach" in reply.answer
    with pytest.raises(ToolNotFoundError):
        tutor.ask("/make_coffee now", thread_id="h")
    assert tutor.history("h") == [] and calls == []


def test_langgraph_json_factory_builds_the_graph(tmp_path, monkeypatch):
    import json
    from pathlib import Path

    from llmtutor.agents.tutor import langgraph_graph

    config = json.loads((Path(__file__).parents[1] / "langgraph.json").read_text())
    assert config["graphs"]["tutor"].endswith("agents/tutor.py:langgraph_graph")
    monkeypatch.setenv("LLMTUTOR_WORKSPACE", str(tmp_path))
    graph = langgraph_graph()
    assert {"route", "approve", "run_tool", "answer"} <= set(graph.get_graph().nodes)
