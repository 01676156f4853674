"""The HTTP API and the Gradio app's event handling, over a scripted tutor."""

from __future__ import annotations

import json

import pytest
from fakes import FakeBackend, ScriptedRouter, make_registry
from fastapi.testclient import TestClient
from langgraph.checkpoint.memory import InMemorySaver
from live_server import serving

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
    step, result = final[1], final[2]
    # The call is a small detail (its arguments inside); the result is the message itself.
    assert step["metadata"]["title"].startswith("🛠 cheap_count") and step["metadata"]["status"] == "done"
    assert '"n": 3' in step["content"] and "counter total" not in step["content"]
    assert result == {"role": "assistant", "content": "counter total = 3"}
    # The default small model writes no explanation, and this toy tool has no template: the
    # result is the whole reply (no model text under it).
    assert len(final) == 3

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


# ----- the Gradio Tools tab: expensive tools go through plan → approve -------------------------


def _tools_tab(tmp_path, calls: list[str]):
    """A Tools tab over the counting tools and the real evaluate/merge tools (their plans are
    cheap; their runs would start jobs): the tab's event handlers by their api_name."""
    from llmtutor.tools.evaluate_model import TOOL as EVALUATE
    from llmtutor.tools.merge_models import TOOL as MERGE
    from llmtutor.tools.registry import ToolRegistry

    tutor = Tutor(
        Settings(workspace=tmp_path),
        backend=FakeBackend([]),
        registry=ToolRegistry([*make_registry(calls), EVALUATE, MERGE]),
        router=ScriptedRouter(),
        checkpointer=InMemorySaver(),
    )
    fns = {f.api_name: f.fn for f in build_app(tutor).fns.values()}
    return tutor, fns["run_tool"], fns["approve_tool"], fns["cancel_tool"]


def _as(name: str | None = None, session: str = "s1"):
    from types import SimpleNamespace

    return SimpleNamespace(username=name, session_hash=session)


def _no_jobs(tutor: Tutor) -> bool:
    from llmtutor import jobs

    return jobs.list_jobs(tutor.settings.workspace) == []


def test_tools_tab_runs_an_expensive_tool_only_once_its_learner_approved_its_plan(tmp_path):
    from llmtutor.ui.gradio_tools import CHANGED
    from llmtutor.users import add_user

    calls: list[str] = []
    tutor, run, approve, _ = _tools_tab(tmp_path, calls)
    for name, admin in (("ana", False), ("bo", False), ("root", True)):
        add_user(tutor.settings.users_db, name, admin=admin)
    ana, bo, root = _as("ana"), _as("bo", "s2"), _as("root", "s3")

    text, _, state, row = run("cheap_count", '{"n": 5}', None, request=ana)  # cheap: runs at once
    assert text == "counter total = 5" and state is None and row["visible"] is False and calls == ["cheap"]

    text, _, plan, row = run("big_count", '{"n": 2}', None, request=ana)
    assert "big_count** is an expensive tool" in text and '`{"n": 2}`' in text and row["visible"] is True
    assert plan["tool"] == "big_count" and calls == ["cheap"] and _no_jobs(tutor)  # nothing started

    text, _, theirs, _ = approve("big_count", '{"n": 2}', plan, request=bo)  # another learner
    assert text.startswith(CHANGED) and theirs["approval_id"] != plan["approval_id"] and calls == ["cheap"]
    text, _, changed, row = approve("big_count", '{"n": 9}', plan, request=ana)  # other arguments
    assert text.startswith(CHANGED) and '`{"n": 9}`' in text and row["visible"] is True
    assert changed["approval_id"] != plan["approval_id"] and calls == ["cheap"]
    # The plan on screen is now the one for n=9: the first plan no longer runs anything.
    assert approve("big_count", '{"n": 2}', plan, request=ana)[0].startswith(CHANGED) and calls == ["cheap"]

    text, _, state, row = approve("big_count", ' {"n":9} ', changed, request=ana)  # same arguments
    assert text == "counter total = 900" and state is None and row["visible"] is False
    assert calls == ["cheap", "expensive"]
    again = approve("big_count", '{"n": 9}', changed, request=ana)  # a used approval
    assert again[0].startswith(CHANGED) and calls == ["cheap", "expensive"]
    assert approve("big_count", '{"n": 9}', None, request=ana)[0].startswith("Nothing to approve")

    text, _, plan, _ = run("big_count", '{"n": 1}', None, request=root)  # admins approve like others
    assert "expensive tool" in text and calls == ["cheap", "expensive"]
    assert approve("big_count", '{"n": 1}', plan, request=root)[0] == "counter total = 100"
    assert calls == ["cheap", "expensive", "expensive"]


def test_tools_tab_plans_for_the_local_learner_too_and_shows_refusals(tmp_path):
    calls: list[str] = []
    tutor, run, approve, cancel = _tools_tab(tmp_path, calls)
    local = _as()

    # A real expensive tool: its plan, and no job row until it is approved.
    args = '{"models": ["smollm2"], "metrics": ["perplexity"]}'
    text, _, plan, row = run("evaluate_model", args, None, request=local)
    assert text.startswith("**Plan: evaluate 1 model(s) on perplexity**") and row["visible"] is True
    assert _no_jobs(tutor)
    text, state, row = cancel(plan, request=local)
    assert text == "Cancelled: nothing was run." and state is None and row["visible"] is False
    text, _, fresh, _ = approve("evaluate_model", args, plan, request=local)  # a cancelled plan
    assert "Plan: evaluate" in text and fresh["approval_id"] != plan["approval_id"] and _no_jobs(tutor)

    # A plan that cannot work is the typed error's text: nothing to approve.
    text, _, state, row = run("merge_models", "{}", None, request=local)
    assert text.startswith("Error: there is no model of yours to merge yet") and state is None
    assert row["visible"] is False and _no_jobs(tutor)
    assert run("big_count", '{"n": "many"}', None, request=local)[0].startswith("Error: invalid arguments")
    assert run("big_count", "{oops", None, request=local)[0].startswith("Error: arguments are not valid JSON")

    _, _, plan, _ = run("big_count", "{}", None, request=local)
    assert calls == []
    assert approve("big_count", "{}", plan, request=local)[0] == "counter total = 100" and calls == [
        "expensive"
    ]


def test_tools_tab_approval_over_the_web_stays_in_its_browser_session(tmp_path):

    import gradio as gr
    from fastapi import FastAPI
    from gradio_client import Client

    from llmtutor.ui.gradio_app import allowed_paths

    calls: list[str] = []
    tutor, *_ = _tools_tab(tmp_path, calls)
    app = gr.mount_gradio_app(FastAPI(), build_app(tutor), path="/ui", allowed_paths=allowed_paths(tutor))
    with serving(app) as base:
        url = f"{base}/ui/"
        mine, other = Client(url, verbose=False), Client(url, verbose=False)
        assert "expensive tool" in mine.predict("big_count", '{"n": 1}', api_name="/run_tool")[0]
        assert other.predict("big_count", '{"n": 1}', api_name="/approve_tool")[0].startswith(
            "Nothing to approve"
        )
        assert calls == []
        assert mine.predict("big_count", '{"n": 1}', api_name="/approve_tool")[0] == "counter total = 100"
        assert mine.predict("big_count", '{"n": 1}', api_name="/approve_tool")[0].startswith(
            "Nothing to approve"
        )
        assert calls == ["expensive"]


def test_gradio_api_endpoints_are_named_and_internal_ones_private(tutor):
    """gradio_client users (Spaces demos) get named endpoints, documented in the README; the page's
    own events (timers, restoring, pickers, examples) are not callable from outside."""
    demo = build_app(tutor)
    public = sorted(f.api_name for f in demo.fns.values() if f.api_visibility != "private")
    assert public == sorted(
        [
            "respond",
            "approve",
            "decline",
            "stop",
            "jobs",
            "job_log",
            "cancel_job",
            "resume_job",
            "upload_dataset",
            "progress",
            "run_tool",
            "approve_tool",
            "cancel_tool",
        ]
    )
    info = demo.get_api_info()["named_endpoints"]
    assert set(info) == {f"/{name}" for name in public}
    assert [p["parameter_name"] for p in info["/respond"]["parameters"]] == [
        "message",
        "history",
        "persona",
        "model",
    ]


def test_web_conversations_are_listed_per_learner(tmp_path):
    from llmtutor.ui import gradio_history as chats

    chats.touch(tmp_path, "u_a", "t1", "What is LoRA and why does it save memory? " * 3, "tutor")
    chats.touch(tmp_path, "u_b", "t2", "hi")
    (mine,) = chats.list_chats(tmp_path, "u_a")
    assert mine.thread_id == "t1" and mine.title.endswith("…") and len(mine.title) == chats.TITLE_CHARS
    assert not chats.rename(tmp_path, "u_a", "t2", "mine")  # another learner's conversation
    assert (
        chats.rename(tmp_path, "u_a", "t1", "LoRA") and chats.list_chats(tmp_path, "u_a")[0].title == "LoRA"
    )
    assert not chats.delete(tmp_path, "u_b", "t1")
    assert chats.delete(tmp_path, "u_a", "t1") and chats.list_chats(tmp_path, "u_a") == []
    assert [c.thread_id for c in chats.list_chats(tmp_path, "u_b")] == ["t2"]


def test_the_jobs_tab_draws_the_loss_of_training_events_only():
    from llmtutor.ui.gradio_jobs import loss_points

    events = [
        {"stage": "load", "message": "model"},
        {"stage": "train", "step": 1, "total": 3, "loss": 2.5},
        {"stage": "train", "step": 2, "total": 3, "loss": float("nan")},
        {"stage": "train", "step": 3, "total": 3, "loss": 1.25},
    ]
    assert loss_points(events) == [(1.0, 2.5), (3.0, 1.25)]
