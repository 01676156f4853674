"""The HTTP API and the Gradio app's event handling, over a scripted tutor."""

from __future__ import annotations

import json

import pytest
from fakes import FakeBackend, ScriptedRouter, make_registry
from fastapi.testclient import TestClient
from langgraph.checkpoint.memory import InMemorySaver

from llmtutor.agents.tutor import Tutor
from llmtutor.settings import Settings
from llmtutor.ui.gradio_app import apply_events, build_app
from llmtutor.ui.http.server import create_app


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def tutor(tmp_path, calls) -> Tutor:
    return Tutor(
        Settings(workspace=tmp_path),
        backend=FakeBackend(["one", "two", "three", "four"]),
        registry=make_registry(calls),
        router=ScriptedRouter(),
        checkpointer=InMemorySaver(),
    )


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_api_tools_plan_and_errors(tutor, calls):
    client = TestClient(create_app(tutor))
    assert client.get("/health").json()["tools"] == ["cheap_count", "big_count"]
    assert [t["name"] for t in client.get("/tools").json()] == ["cheap_count", "big_count"]
    ran = client.post("/tools/cheap_count", json={"n": 5}).json()
    assert ran["output"] == {"total": 5} and ran["markdown"] == "counter total = 5" and calls == ["cheap"]
    assert client.post("/plan", json={"message": "cheap"}).json()["tool"] == "cheap_count"
    bad = client.post("/tools/cheap_count", json={"n": "many"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
    assert "n" in bad.json()["error"]["message"]
    missing = client.post("/tools/nope", json={})
    assert missing.status_code == 404 and "available tools" in missing.json()["error"]["hint"]
    assert client.post("/ask", json={"message": "hi", "persona": "nobody"}).status_code == 404


def test_api_stream_approval_and_resume(tutor, calls):
    client = TestClient(create_app(tutor))
    first = sse_events(client.post("/chat/stream", json={"message": "big", "thread_id": "api"}).text)
    assert [e for e, _ in first][-1] == "approval" and calls == []
    resumed = sse_events(client.post("/threads/api/resume", json={"approved": True}).text)
    kinds = [e for e, _ in resumed]
    assert "tool_result" in kinds and kinds[-1] == "answer" and calls == ["expensive"]
    messages = client.get("/threads/api").json()["messages"]
    assert messages[0] == {"type": "human", "content": "big"}


def test_gradio_folds_events_into_chat_messages(tutor):
    history = [{"role": "user", "content": "cheap"}]
    *_, (final, pending, plot) = apply_events(tutor, tutor.stream("cheap", thread_id="ui"), history)
    assert pending is None and plot is None
    step = final[1]
    assert step["metadata"]["title"] == "🛠 Tool: cheap_count" and step["metadata"]["status"] == "done"
    assert "counter total = 3" in step["content"]
    # The default small model writes no explanation, and this toy tool has no template: the
    # result is the whole reply (no model text under it).
    assert final[-1] is step and len(final) == 2

    *_, (final, pending, _) = apply_events(tutor, tutor.stream("big", thread_id="ui2"), [])
    assert pending["tool"] == "big_count" and "approval" in final[-1]["metadata"]["title"]


def test_gradio_and_sse_show_the_streamed_text_they_keep(tmp_path, tutor):
    """Tokens carry the final text only: the chat bubble built from them is the answer."""
    events = apply_events(tutor, tutor.stream("hi", thread_id="g"), [])
    states = [h[-1]["content"] if h else "" for h, _, _ in events]
    assert states[-1] == tutor.persona().greeting
    assert all(tutor.persona().greeting.startswith(s) for s in states if s)  # never a discarded draft
    capable = Tutor(
        Settings(workspace=tmp_path, backend="openai", chat_model="big", router="classifier"),
        backend=FakeBackend(["The counter total is 3, as asked."], native_tools=True),
        registry=make_registry([]),
        router=ScriptedRouter(),
        checkpointer=InMemorySaver(),
    )
    *_, (final, _, _) = apply_events(capable, capable.stream("cheap", thread_id="g2"), [])
    assert final[-1] == {"role": "assistant", "content": "The counter total is 3, as asked."}
    events = sse_events(
        TestClient(create_app(tutor)).post("/chat/stream", json={"message": "你好", "thread_id": "sse"}).text
    )
    tokens = "".join(data["text"] for kind, data in events if kind == "token")
    assert events[-1][0] == "answer" and tokens == events[-1][1]["text"] and tokens.startswith("你好")


def test_gradio_app_builds(tutor):
    demo = build_app(tutor)
    assert demo.tutor is tutor
