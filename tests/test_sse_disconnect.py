"""A client that closes a /chat/stream stream cancels the turn: the model's generation stops, the
unfinished answer is not kept, and the server goes on serving (a real uvicorn server)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fakes import ScriptedRouter, SlowBackend, make_registry
from langgraph.checkpoint.memory import InMemorySaver
from live_server import serving

from llmtutor.agents.tutor import Tutor
from llmtutor.settings import Settings
from llmtutor.ui.http.server import create_app

QUESTION = "What is attention in transformers?"  # no tool: the model writes the answer


@pytest.fixture()
def served(tmp_path):

    backend = SlowBackend(words=200, delay_s=0.05)  # a 10 s generation
    tutor = Tutor(
        Settings(workspace=tmp_path, backend="openai", chat_model="big", router="classifier"),
        backend=backend,
        registry=make_registry([]),
        router=ScriptedRouter(),
        checkpointer=InMemorySaver(),
    )
    with serving(create_app(tutor)) as url:
        yield url, tutor, backend


def _events(lines) -> list[tuple[str, dict]]:
    events, kind = [], None
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((kind, json.loads(line.removeprefix("data: "))))
    return events


def test_a_closed_stream_stops_the_generation_and_keeps_no_answer(served):
    url, tutor, backend = served
    body = {"message": QUESTION, "thread_id": "gone"}
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{url}/chat/stream", json=body) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("event: "))
        assert first == "event: route"
        for _ in range(100):  # the model is generating
            if len(backend.pulls) >= 5:
                break
            time.sleep(0.05)
        assert 5 <= len(backend.pulls) < backend.words
    closed = time.monotonic()  # leaving the `with` closed the connection mid-answer

    time.sleep(2.0)
    pulled = len(backend.pulls)
    time.sleep(1.0)
    assert len(backend.pulls) == pulled < backend.words  # no word pulled for the last second
    assert backend.pulls[-1] - closed < 2.0  # the last one came within 2 s of the disconnect

    # The turn was cancelled before its answer: the conversation keeps the question only.
    messages = tutor.history("gone")
    assert [m.type for m in messages] == ["human"] and messages[0].content == QUESTION
    assert not any("word199" in str(m.content) for m in messages)

    # The server goes on serving: the same conversation, a new turn, to its end.
    backend.words, backend.delay_s = 3, 0.0
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    again = httpx.post(f"{url}/chat/stream", json={"message": QUESTION, "thread_id": "gone"}, timeout=30)
    kinds = [kind for kind, _ in _events(again.text.splitlines())]
    assert again.status_code == 200 and kinds[0] == "route" and kinds[-1] == "answer"
    assert [m.type for m in tutor.history("gone")] == ["human", "human", "ai"]
