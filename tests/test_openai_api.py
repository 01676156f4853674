"""The OpenAI-compatible API, driven by the official `openai` client (streaming and not): one
model per persona, the learner's key, a resent history continuing its thread, tool results in the
content, an expensive tool's plan approved with "yes", and the exact chunk order of a stream."""

from __future__ import annotations

import openai
import pytest
from fakes import FakeBackend, ScriptedRouter, make_registry
from fastapi.testclient import TestClient
from langgraph.checkpoint.memory import InMemorySaver

from llmtutor.agents.tutor import Tutor
from llmtutor.settings import Settings
from llmtutor.ui.http import conversations
from llmtutor.ui.http.server import create_app
from llmtutor.users import add_user, owned_thread


@pytest.fixture()
def served(tmp_path):
    calls: list[str] = []
    tutor = Tutor(
        Settings(workspace=tmp_path),
        backend=FakeBackend(["ok"] * 40),
        registry=make_registry(calls),
        router=ScriptedRouter(),
        checkpointer=InMemorySaver(),
    )
    users = {name: add_user(tutor.settings.users_db, name) for name in ("ana", "bo")}
    http = TestClient(create_app(tutor), raise_server_exceptions=False)

    def client(name: str | None) -> openai.OpenAI:
        key = users[name][1] if name else "not-a-key"
        return openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0)

    return client, users, calls, tutor


def _threads(tutor: Tutor) -> set[str]:
    import sqlite3

    db = tutor.settings.workspace / conversations.DB_FILE
    return {row[0] for row in sqlite3.connect(db).execute("SELECT thread_id FROM conversation_keys")}


def test_models_are_the_personas_and_need_the_learners_key(served):
    client, _, _, tutor = served
    ids = [m.id for m in client("ana").models.list()]
    assert ids[0] == "llmtutor" and {f"llmtutor-{p}" for p in tutor.personas} <= set(ids)
    with pytest.raises(openai.AuthenticationError):
        client(None).models.list()
    with pytest.raises(openai.AuthenticationError):
        client(None).chat.completions.create(model="llmtutor", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError, match="llmtutor-"):
        client("ana").chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_a_tool_result_is_the_content_and_a_resent_history_continues_the_thread(served):
    client, users, calls, tutor = served
    ana = client("ana")
    first = ana.chat.completions.create(
        model="llmtutor", messages=[{"role": "user", "content": "cheap count"}]
    )
    reply = first.choices[0].message.content
    assert "counter total = 3" in reply and calls == ["cheap"]
    assert first.choices[0].finish_reason == "stop" and first.usage.completion_tokens > 0
    history = [
        {"role": "system", "content": "You are helpful."},  # a client's own system prompt: ignored
        {"role": "user", "content": "cheap count"},
        {"role": "assistant", "content": reply + "\n"},  # whitespace a client adds does not matter
        {"role": "user", "content": [{"type": "text", "text": "cheap again"}]},
    ]
    ana.chat.completions.create(model="llmtutor", messages=history)
    assert len(_threads(tutor)) == 1
    (shown,) = _threads(tutor)
    said = [m.content for m in tutor.history(owned_thread(users["ana"][0], shown)) if m.type == "human"]
    assert said == ["cheap count", "cheap again"]
    # Bo resending Ana's conversation gets a thread of his own; Ana's is unchanged.
    client("bo").chat.completions.create(model="llmtutor", messages=history)
    assert len(_threads(tutor)) == 2
    assert [
        m.content for m in tutor.history(owned_thread(users["ana"][0], shown)) if m.type == "human"
    ] == said


def test_a_stream_comes_in_the_order_clients_rely_on(served):
    client, _, calls, _ = served
    chunks = list(
        client("ana").chat.completions.create(
            model="llmtutor-tutor",
            messages=[{"role": "user", "content": "cheap count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "counter total = 3" in content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0] is chunks[-2] and finals[0].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1 and calls == ["cheap"]
    plain = list(
        client("ana").chat.completions.create(
            model="llmtutor", messages=[{"role": "user", "content": "cheap count"}], stream=True
        )
    )
    assert all(c.usage is None for c in plain) and plain[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_an_expensive_tool_shows_its_plan_and_runs_when_the_learner_says_yes(served, stream):
    client, _, calls, _ = served
    ana = client("ana")

    def say(messages: list[dict]) -> str:
        if not stream:
            return ana.chat.completions.create(model="llmtutor", messages=messages).choices[0].message.content
        parts = ana.chat.completions.create(model="llmtutor", messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in parts if c.choices)

    asked = [{"role": "user", "content": "big count"}]
    plan = say(asked)
    assert "big_count" in plan and "yes" in plan and calls == []  # nothing ran
    ran = say([*asked, {"role": "assistant", "content": plan}, {"role": "user", "content": "yes"}])
    assert calls == ["expensive"] and "counter total = 200" in ran
    # A plan the learner declines runs nothing.
    plan = say(asked)
    say([*asked, {"role": "assistant", "content": plan}, {"role": "user", "content": "no"}])
    assert calls == ["expensive"]


def test_bad_requests_get_openai_shaped_errors(served):
    client, _, _, _ = served
    ana = client("ana")
    with pytest.raises(openai.UnprocessableEntityError):
        ana.chat.completions.create(model="llmtutor", messages=[{"role": "assistant", "content": "hi"}])
    with pytest.raises(openai.UnprocessableEntityError):
        ana.chat.completions.create(model="llmtutor", messages=[{"role": "user", "content": "   "}])
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        ana.chat.completions.create(model="llmtutor", messages=[])
    assert refused.value.response.json()["error"]["message"]
