"""A server shared by several learners: keys, 401 for anonymous callers, 404 for another
learner's threads, expensive tools only through an approved plan, learner data kept apart; and
a workspace without users works as before (local, key-free)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fakes import FakeBackend, ScriptedRouter, make_registry
from fastapi.testclient import TestClient
from langgraph.checkpoint.memory import InMemorySaver
from live_server import serving

from llmtutor.agents.tutor import Tutor
from llmtutor.errors import AuthenticationError, ConfigError
from llmtutor.settings import Settings
from llmtutor.tools.registry import ToolRegistry
from llmtutor.ui.http.server import create_app
from llmtutor.users import add_user, authenticate, list_users, revoke


def _tutor(workspace: Path, calls: list[str]) -> Tutor:
    from llmtutor.tools.learner_progress import TOOL as PROGRESS
    from llmtutor.tools.update_progress import TOOL as UPDATE

    registry = ToolRegistry([*make_registry(calls), PROGRESS, UPDATE])
    return Tutor(
        Settings(workspace=workspace),
        backend=FakeBackend(["ok"] * 40),
        registry=registry,
        router=ScriptedRouter(),
        checkpointer=InMemorySaver(),
    )


@pytest.fixture()
def shared(tmp_path):
    calls: list[str] = []
    tutor = _tutor(tmp_path, calls)
    _, ana = add_user(tutor.settings.users_db, "ana")
    _, bo = add_user(tutor.settings.users_db, "bo")
    _, root = add_user(tutor.settings.users_db, "root", admin=True)
    client = TestClient(create_app(tutor), raise_server_exceptions=False)
    keys = {
        name: {"Authorization": f"Bearer {key}"} for name, key in (("ana", ana), ("bo", bo), ("root", root))
    }
    return client, keys, calls, tutor


def test_keys_are_stored_hashed_and_can_be_revoked(tmp_path):
    db = tmp_path / "users.sqlite"
    user, key = add_user(db, "ana")
    assert key.startswith("llt_") and key.encode() not in db.read_bytes()
    assert authenticate(db, key).id == user.id
    with pytest.raises(ConfigError):
        add_user(db, "ana")
    with pytest.raises(ConfigError):
        add_user(db, "local")
    revoke(db, "ana")
    with pytest.raises(AuthenticationError):
        authenticate(db, key)
    assert list_users(db)[0].revoked


ROUTES = [
    ("get", "/tools", None),
    ("post", "/tools/cheap_count", {"n": 1}),
    ("post", "/plan", {"message": "cheap"}),
    ("post", "/ask", {"message": "hello"}),
    ("post", "/chat/stream", {"message": "hello"}),
    ("post", "/threads/t1/resume", {"approved": True}),
    ("get", "/threads/t1", None),
    ("get", "/v1/models", None),
    (
        "post",
        "/v1/chat/completions",
        {"model": "llmtutor", "messages": [{"role": "user", "content": "cheap"}]},
    ),
    ("post", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "cheap_count"}}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_anonymous_and_bad_keys_get_401(shared, method, path, body):
    client, _, calls, _ = shared
    for headers in ({}, {"Authorization": "Bearer llt_not-a-key"}, {"Authorization": "Basic abc"}):
        response = getattr(client, method)(path, headers=headers, **({"json": body} if body else {}))
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    assert calls == [] and client.get("/health").status_code == 200


def test_threads_belong_to_their_learner(shared):
    client, keys, _, tutor = shared
    first = client.post("/ask", json={"message": "hello there", "thread_id": "t1"}, headers=keys["ana"])
    assert first.status_code == 200 and first.json()["thread_id"] == "t1"
    mine = client.get("/threads/t1", headers=keys["ana"])
    assert mine.status_code == 200 and mine.json()["messages"][0]["content"] == "hello there"
    for path, body in (("/threads/t1", None), ("/threads/t1/resume", {"approved": True})):
        theirs = (
            client.post(path, json=body, headers=keys["bo"]) if body else client.get(path, headers=keys["bo"])
        )
        assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
    # bo's own "t1" is a different conversation
    client.post("/ask", json={"message": "bo here", "thread_id": "t1"}, headers=keys["bo"])
    assert [m["content"] for m in client.get("/threads/t1", headers=keys["bo"]).json()["messages"]][
        0
    ] == "bo here"
    assert len(client.get("/threads/t1", headers=keys["ana"]).json()["messages"]) == 2  # unchanged


def test_expensive_tools_run_only_through_an_approved_plan(shared):
    client, keys, calls, _ = shared
    asked = client.post("/tools/big_count", json={"n": 2}, headers=keys["ana"])
    assert asked.status_code == 202 and asked.json()["status"] == "needs_approval" and calls == []
    approval = asked.json()["approval_id"]
    stolen = client.post(f"/tools/big_count?approval_id={approval}", json={"n": 2}, headers=keys["bo"])
    changed = client.post(f"/tools/big_count?approval_id={approval}", json={"n": 9}, headers=keys["ana"])
    assert stolen.status_code == 403 and changed.status_code == 403 and calls == []
    ran = client.post(f"/tools/big_count?approval_id={approval}", json={"n": 2}, headers=keys["ana"])
    assert ran.status_code == 200 and ran.json()["output"] == {"total": 200} and calls == ["expensive"]
    again = client.post(f"/tools/big_count?approval_id={approval}", json={"n": 2}, headers=keys["ana"])
    assert again.status_code == 403  # an approval runs once
    assert client.post("/tools/big_count?approve=true", json={"n": 1}, headers=keys["ana"]).status_code == 202
    assert (
        client.post("/tools/big_count?approve=true", json={"n": 1}, headers=keys["root"]).status_code == 200
    )
    up_front = client.post("/ask", json={"message": "big one", "approve": True}, headers=keys["ana"])
    assert up_front.status_code == 403 and up_front.json()["error"]["code"] == "approval_required"
    # in chat: the plan, then the learner's own approval of their own thread
    paused = client.post("/ask", json={"message": "big one", "thread_id": "b"}, headers=keys["ana"]).json()
    assert paused["pending_approval"]["thread_id"] == "b" and calls == ["expensive", "expensive"]
    assert client.post("/threads/b/resume", json={"approved": True}, headers=keys["bo"]).status_code == 404
    resumed = client.post("/threads/b/resume", json={"approved": True}, headers=keys["ana"])
    assert resumed.status_code == 200 and calls == ["expensive", "expensive", "expensive"]


def test_learner_data_is_kept_apart(shared):
    client, keys, _, _ = shared
    marked = client.post(
        "/tools/update_progress", json={"topic": "I already know Python"}, headers=keys["ana"]
    )
    assert marked.status_code == 200
    ana = client.post("/tools/learner_progress", json={"chart": False}, headers=keys["ana"]).json()
    bo = client.post("/tools/learner_progress", json={"chart": False}, headers=keys["bo"]).json()
    python = next(m for m in ana["output"]["progress"]["modules"] if m["module_id"] == "fundamentals.python")
    assert python["covered"] == 1
    assert all(m["covered"] == 0 for m in bo["output"]["progress"]["modules"])


def test_without_users_the_workspace_stays_local_and_key_free(tmp_path):
    calls: list[str] = []
    client = TestClient(create_app(_tutor(tmp_path, calls)), raise_server_exceptions=False)
    assert client.get("/tools").status_code == 200
    assert client.post("/tools/big_count", json={"n": 1}).status_code == 200  # the caller approves
    assert client.post("/ask", json={"message": "hello", "thread_id": "x"}).json()["thread_id"] == "x"


def test_serve_refuses_a_public_address_without_learners(tmp_path):
    env = {**__import__("os").environ, "LLMTUTOR_WORKSPACE": str(tmp_path)}
    cli = str(Path(sys.executable).parent / "llmtutor")
    refused = subprocess.run(
        [cli, "serve", "--host", "0.0.0.0", "--no-ui"], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0 and "users add" in refused.stderr + refused.stdout
    added = subprocess.run([cli, "users", "add", "ana"], env=env, capture_output=True, text=True, check=True)
    key = added.stdout.splitlines()[1]
    assert (
        key.startswith("llt_")
        and "ana"
        in subprocess.run([cli, "users", "list"], env=env, capture_output=True, text=True, check=True).stdout
    )


def test_jobs_belong_to_their_learner_and_one_runs_at_a_time(tmp_path):
    import job_demo  # noqa: F401 - registers the "demo" job kind

    from llmtutor import jobs as runner
    from llmtutor.jobs import JobError, JobLimitError
    from llmtutor.tools.job_status import TOOL as STATUS
    from llmtutor.tools.registry import ToolContext

    slow = {"steps": 50, "sleep_s": 0.2, "output_dir": str(tmp_path / "out")}
    job = runner.submit(tmp_path, "demo", slow, learner_id="u_ana")
    try:
        # One runs at a time on a shared server; the next ones wait in the learner's line.
        line = [
            runner.submit(tmp_path, "demo", slow, learner_id="u_ana")
            for _ in range(runner.MAX_WAITING_PER_LEARNER)
        ]
        assert [runner.get(tmp_path, j).status for j in line] == ["waiting"] * len(line)
        assert [runner.place_in_line(tmp_path, j) for j in line] == list(range(1, len(line) + 1))
        with pytest.raises(JobLimitError, match="waiting"):
            runner.submit(tmp_path, "demo", slow, learner_id="u_ana")  # the line is bounded
        assert (
            runner.get(tmp_path, runner.submit(tmp_path, "demo", slow, learner_id="u_bo")).status != "waiting"
        )
        runner.cancel(tmp_path, line[-1])  # a waiting job cancels without ever starting
        assert runner.get(tmp_path, line[-1]).status == "cancelled"
        assert runner.get(tmp_path, line[-1]).started_at is None
        for other in line[:-1]:
            runner.cancel(tmp_path, other)
        ana, bo = (
            ToolContext(workspace=tmp_path, learner_id="u_ana"),
            ToolContext(workspace=tmp_path, learner_id="u_bo"),
        )
        assert job in [j["id"] for j in STATUS.run({"action": "list"}, ana).jobs]
        assert all(j["id"] != job for j in STATUS.run({"action": "list"}, bo).jobs)
        for action in ("status", "cancel", "logs"):
            with pytest.raises(JobError, match="no job"):
                STATUS.run({"action": action, "job_id": job}, bo)
        assert runner.get(tmp_path, job).status in ("queued", "running")  # bo's cancel did nothing
        local = ToolContext(workspace=tmp_path)  # the workspace's own (local) view sees every job
        assert job in [j["id"] for j in STATUS.run({"action": "list"}, local).jobs]
    finally:
        for left in runner.list_jobs(tmp_path, 50):
            if left.status not in runner.store.FINAL:
                runner.cancel(tmp_path, left.id)
    assert runner.get(tmp_path, job).learner_id == "u_ana"


def test_a_learners_waiting_job_starts_when_the_running_one_ends(tmp_path):
    import job_demo  # noqa: F401 - registers the "demo" job kind

    from llmtutor import jobs as runner

    quick = {"steps": 2, "sleep_s": 0.05}
    first = runner.submit(tmp_path, "demo", {**quick, "name": "one"}, learner_id="u_ana")
    second = runner.submit(tmp_path, "demo", {**quick, "name": "two"}, learner_id="u_ana")
    assert runner.get(tmp_path, second).status == "waiting"
    # The first job's worker hands over to the second when it ends: nobody else starts it.
    done = runner.wait(tmp_path, second, timeout=120)
    assert done.status == "succeeded", runner.tail_log(tmp_path, second)
    one, two = runner.get(tmp_path, first), runner.get(tmp_path, second)
    assert one.status == "succeeded" and two.started_at >= one.finished_at


def test_quizzes_and_their_records_belong_to_their_learner(shared):
    import sqlite3

    from llmtutor.tools.quiz import TOOL as QUIZ

    client, keys, _, tutor = shared
    tutor.registry.register(QUIZ)  # the real quiz tool next to the test tools
    started = client.post(
        "/tools/quiz", json={"action": "start", "topic": "LoRA", "n": 2, "kind": "mc"}, headers=keys["ana"]
    )
    assert started.status_code == 200 and started.json()["output"]["question"]
    session = started.json()["output"]["session_id"]
    theirs = client.post("/tools/quiz", json={"action": "status", "session_id": session}, headers=keys["bo"])
    assert theirs.status_code == 422 and "no quiz session" in theirs.json()["error"]["message"]
    assert client.post("/tools/quiz", json={"action": "status"}, headers=keys["bo"]).status_code == 422
    answered = client.post(
        "/tools/quiz", json={"action": "answer", "session_id": session, "answer": "A"}, headers=keys["ana"]
    )
    assert answered.status_code == 200 and answered.json()["output"]["feedback"]
    rows = sqlite3.connect(tutor.settings.catalog_db).execute("SELECT DISTINCT learner_id FROM quiz_attempts")
    ana_id = next(u.id for u in list_users(tutor.settings.users_db) if u.name == "ana")
    assert [r[0] for r in rows] == [ana_id]


def test_the_web_ui_asks_learners_to_sign_in_and_keeps_them_apart(tmp_path):

    import gradio as gr
    from fastapi import FastAPI
    from gradio_client import Client

    from llmtutor.ui.gradio_app import allowed_paths, build_app, login

    calls: list[str] = []
    tutor = _tutor(tmp_path, calls)
    ana, ana_key = add_user(tutor.settings.users_db, "ana")
    _, bo_key = add_user(tutor.settings.users_db, "bo")
    app = gr.mount_gradio_app(
        FastAPI(),
        build_app(tutor),
        path="/ui",
        allowed_paths=allowed_paths(tutor),
        auth=login(tutor.settings.users_db),
    )
    with serving(app) as base:
        url = f"{base}/ui/"
        with pytest.raises(ValueError):
            Client(url, auth=("ana", bo_key), verbose=False)  # a key signs in only its own learner
        with pytest.raises(ValueError):
            Client(url, verbose=False)  # no login, no app
        ana_client = Client(url, auth=("ana", ana_key), verbose=False)
        history = ana_client.predict("hello from ana", [], "tutor", api_name="/respond")[0]
        assert history[0]["content"][0]["text"] == "hello from ana" and len(history) == 2
        threads = list(tutor.graph.checkpointer.storage)
        assert threads and all(t.startswith(f"{ana.id}:") for t in threads)  # in ana's own space
        bo_client = Client(url, auth=("bo", bo_key), verbose=False)
        refused = bo_client.predict("big_count", '{"n": 1}', api_name="/run_tool")[0]
        assert "expensive" in refused and calls == []  # no approval-free runs from the Tools tab


def test_stopping_one_conversation_leaves_the_others_running(tmp_path):
    tutor = _tutor(tmp_path, [])
    ana, bo = tutor.cancel_event("u_ana:t"), tutor.cancel_event("u_bo:t")
    tutor.cancel("u_ana:t")
    assert ana.is_set() and not bo.is_set()
    assert list(tutor.stream("hello", thread_id="u_ana:t"))  # a new turn starts un-cancelled
    assert not tutor.cancel_event("u_ana:t").is_set()
    tutor.cancel()  # no thread: everything (the CLI's Ctrl-C)
    assert bo.is_set()


def test_an_overloaded_server_answers_429_with_retry_after(tmp_path):
    import threading

    tutor = _tutor(tmp_path, [])
    tutor.settings.max_concurrent_turns = 1
    client = TestClient(create_app(tutor), raise_server_exceptions=False)
    started, release = threading.Event(), threading.Event()
    original = tutor.stream

    def slow_stream(*args, **kwargs):
        started.set()
        release.wait(10)
        yield from original(*args, **kwargs)

    tutor.stream = slow_stream
    worker = threading.Thread(target=lambda: client.post("/ask", json={"message": "hello"}))
    worker.start()
    assert started.wait(10)
    busy = client.post("/ask", json={"message": "hello again"})
    assert busy.status_code == 429 and busy.headers["retry-after"] == "5"
    assert busy.json()["error"]["code"] == "overloaded"
    release.set()
    worker.join(10)
    tutor.stream = original
    for _ in range(3):  # the place was given back: turns go on, streams included
        assert client.post("/ask", json={"message": "hello"}).status_code == 200
        assert client.post("/chat/stream", json={"message": "hello"}).status_code == 200


def test_a_learner_over_the_disk_quota_starts_no_job(tmp_path, monkeypatch):
    import job_demo  # noqa: F401 - registers the "demo" job kind

    from llmtutor import jobs as runner
    from llmtutor.jobs import JobLimitError

    quick = {"steps": 1, "sleep_s": 0.0, "output_dir": str(tmp_path / "out")}
    job = runner.submit(tmp_path, "demo", quick, learner_id="u_ana")
    done = runner.wait(tmp_path, job)
    assert done.status == "succeeded" and runner.learner_usage(tmp_path, "u_ana") > 0
    monkeypatch.setattr(runner, "LEARNER_QUOTA_BYTES", 1)
    with pytest.raises(JobLimitError, match="limit on this server"):
        runner.submit(tmp_path, "demo", quick, learner_id="u_ana")
    runner.wait(
        tmp_path, runner.submit(tmp_path, "demo", quick, learner_id="u_bo")
    )  # others are not held back
