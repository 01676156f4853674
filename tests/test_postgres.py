"""LLMTUTOR_DATABASE_URL=postgresql://…: threads, learners, progress, conversation keys and the
job queue in a real PostgreSQL server (started by these tests in a temporary folder,
tests/postgres_server.py), shared by two server processes that have nothing else in common
(not even a workspace folder, so nothing can pass through SQLite files)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from postgres_server import find_bin_dir, running_postgres

from llmtutor import database
from llmtutor.database import Database
from llmtutor.errors import AuthenticationError, ConfigError

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def postgres():
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb, pg_ctl on PATH or in /usr/lib/postgresql/*/bin): "
            "install Debian's postgresql package (`.ci/run` does)"
        )
    with running_postgres(bin_dir) as server:
        yield server


@pytest.fixture()
def url(postgres, monkeypatch) -> str:
    """A fresh database for the test, in LLMTUTOR_DATABASE_URL."""
    fresh = postgres.new_database()
    monkeypatch.setenv("LLMTUTOR_DATABASE_URL", fresh)
    return fresh


def _stores():
    from llmtutor import users
    from llmtutor.jobs import store as jobs
    from llmtutor.knowledge.catalog.learner_db import POSTGRES_MIGRATIONS
    from llmtutor.ui.http import conversations

    return {
        "users": users.MIGRATIONS,
        "jobs": jobs.MIGRATIONS,
        "learner": POSTGRES_MIGRATIONS,
        "conversations": conversations.MIGRATIONS,
    }


def test_migrations_apply_once_and_a_newer_schema_is_refused(url):
    for _ in range(2):  # twice, as a second process would: nothing is applied again
        database._MIGRATED.clear()
        for schema, migrations in _stores().items():
            with database.connect(url, migrations, schema=schema, name=schema) as con:
                versions = [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY version")]
                assert versions == [m[0] for m in migrations], schema
    with database.connect(url, _stores()["users"], schema="users", name="users") as con:
        con.execute("INSERT INTO schema_version VALUES (99, 'from the future', 'now')")
    database._MIGRATED.clear()
    with pytest.raises(ConfigError, match="newer than this llmtutor"):
        with database.connect(url, _stores()["users"], schema="users", name="users"):
            pass


def test_processes_starting_at_once_set_up_the_tables_once(url, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from llmtutor.agents.checkpointer import close_checkpointer, make_checkpointer
    from llmtutor.jobs import store
    from llmtutor.settings import Settings

    def start(_: int) -> int:
        # LangGraph's tables (setup() runs CREATE INDEX CONCURRENTLY), then one store's
        saver = make_checkpointer(Settings(workspace=tmp_path))
        close_checkpointer(saver)
        with database.connect(url, store.MIGRATIONS, schema="jobs", name="jobs") as con:
            return con.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]

    with ThreadPoolExecutor(3) as pool:  # a lock wait here once deadlocked against setup()
        assert list(pool.map(start, range(3))) == [len(store.MIGRATIONS)] * 3


def test_learners_and_keys_live_in_postgres(url, tmp_path):
    from llmtutor.users import add_user, authenticate, has_users, list_users, new_key, revoke

    one, other = Database(tmp_path / "a", url), Database(tmp_path / "b", url)  # two workspaces
    assert not has_users(one)
    user, key = add_user(one, "ana")
    assert authenticate(other, key).id == user.id and has_users(other)
    with pytest.raises(ConfigError, match="exists"):
        add_user(other, "ana")
    second = new_key(other, "ana")
    revoke(one, "ana")
    for stale in (key, second):
        with pytest.raises(AuthenticationError):
            authenticate(other, stale)
    assert [u.revoked for u in list_users(other)] == [True]
    assert not (tmp_path / "a" / "users.sqlite").exists()


def test_progress_written_through_one_tutor_is_read_by_another(url, tmp_path):
    from fakes import FakeBackend, ScriptedRouter
    from langgraph.checkpoint.memory import InMemorySaver

    from llmtutor.agents.tutor import Tutor
    from llmtutor.knowledge.catalog.learner import record_quiz_attempt
    from llmtutor.knowledge.learner import store
    from llmtutor.knowledge.learner.plan import latest_plan, make_plan, save_plan
    from llmtutor.settings import Settings

    def tutor(folder: str) -> Tutor:
        settings = Settings(workspace=tmp_path / folder)  # the URL comes from the environment
        backend, router = FakeBackend(["ok"]), ScriptedRouter()
        return Tutor(settings, backend=backend, router=router, checkpointer=InMemorySaver())

    first, second = tutor("a"), tutor("b")
    assert first.settings.database_url == url
    first.run_tool("update_progress", {"topic": "I already know Python"}, learner_id="u_ana")
    seen = second.run_tool("learner_progress", {"chart": False}, learner_id="u_ana")
    python = next(m for m in seen.progress.modules if m.module_id == "fundamentals.python")
    assert python.covered == 1
    theirs = second.run_tool("learner_progress", {"chart": False}, learner_id="u_bo")
    assert all(m.covered == 0 for m in theirs.progress.modules)

    a, b = first.settings.database, second.settings.database
    attempt = record_quiz_attempt(
        a, question="q", answer="A", correct=True, module_id="engineer.rag", learner_id="u_ana"
    )
    assert attempt >= 1
    with pytest.raises(ConfigError, match="unknown course module"):
        record_quiz_attempt(b, question="q", answer="A", correct=True, module_id="nope", learner_id="u_ana")
    assert store.ensure_card(a, "card-1", concept_id="lora", learner_id="u_ana")
    assert not store.ensure_card(b, "card-1", concept_id="lora", learner_id="u_ana")  # one card
    days = store.review(b, "card-1", 3, learner_id="u_ana")
    assert days > 0 and store.card_state(a, "card-1", "u_ana")["stability"] > 0
    plan = save_plan(a, make_plan(a, "RAG", days=5, learner_id="u_ana"))
    assert latest_plan(b, "u_ana").id == plan.id
    # The learner rows are in Postgres only: the workspaces' course.sqlite hold the catalog.
    import sqlite3

    for folder in ("a", "b"):
        con = sqlite3.connect(tmp_path / folder / "course.sqlite")
        assert con.execute("SELECT COUNT(*) FROM concept_mastery").fetchone() == (0,)
        assert con.execute("SELECT COUNT(*) FROM quiz_attempts").fetchone() == (0,)
        con.close()


def test_conversation_keys_are_shared(url, tmp_path):
    from llmtutor.ui.http import conversations

    conversations.remember(Database(tmp_path / "a", url), "k1", "u_ana", "thread-1")
    conversations.remember(Database(tmp_path / "a", url), "k1", "u_ana", "thread-2")  # replaced
    assert conversations.find_thread(Database(tmp_path / "b", url), "k1", "u_ana") == "thread-2"
    assert conversations.find_thread(Database(tmp_path / "b", url), "k1", "u_bo") is None


def test_the_job_line_on_postgres(url, tmp_path):
    import job_demo  # noqa: F401 - registers the "demo" job kind

    from llmtutor import jobs as runner

    one, other = Database(tmp_path / "a", url), Database(tmp_path / "b", url)
    slow = {"steps": 300, "sleep_s": 0.2, "output_dir": str(tmp_path / "out")}
    first = runner.submit(one, "demo", slow, learner_id="u_ana")
    line = [runner.submit(other, "demo", slow, learner_id="u_ana") for _ in range(2)]
    try:
        assert runner.get(other, first).status in ("queued", "running")
        assert [runner.get(one, j).status for j in line] == ["waiting", "waiting"]
        assert [runner.place_in_line(one, j) for j in line] == [1, 2]
        assert runner.store.promote_next(one, "u_ana") is None  # one at a time
        runner.cancel(other, first)  # the next in line starts
        assert runner.get(one, line[0]).status in ("queued", "running")
        assert runner.place_in_line(one, line[1]) == 1
    finally:
        for job in runner.list_jobs(one, 50):
            if job.status not in runner.store.FINAL:
                runner.cancel(one, job.id)
    assert [j.status for j in runner.list_jobs(other, 10, "u_ana")] == ["cancelled"] * 3
    # The worker process finds its row in Postgres too: progress events, the result, the hand-over.
    quick = {"steps": 2, "sleep_s": 0.05, "output_dir": str(tmp_path / "out")}
    done = runner.wait(other, runner.submit(one, "demo", quick, learner_id="u_ana"), timeout=120)
    assert done.status == "succeeded", runner.tail_log(one, done.id)
    assert [e["stage"] for e in runner.iter_events(other, done.id)][:1] == ["train"]
    assert not (tmp_path / "a" / "jobs.sqlite").exists() and not (tmp_path / "b" / "jobs.sqlite").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(workspace: Path, url: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "LLMTUTOR_DATABASE_URL": url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(  # noqa: S603 - our own test server
        [sys.executable, str(TESTS / "pg_serve.py"), str(port), str(workspace)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


def _wait_up(process: subprocess.Popen, base: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stdout.read().decode(errors='replace')}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not start")


def test_two_server_processes_serve_one_learner(url, tmp_path):
    from llmtutor.users import add_user

    _, key = add_user(Database(tmp_path / "setup", url), "ana")
    ana = {"Authorization": f"Bearer {key}"}
    servers = [_serve(tmp_path / name, url) for name in ("one", "two")]
    try:
        for process, base in servers:
            _wait_up(process, base)
        (_, one), (_, two) = servers
        with httpx.Client(timeout=60) as http:
            # A conversation started on one process continues on the other.
            assert http.post(
                f"{one}/ask", json={"message": "hello", "thread_id": "t1"}, headers=ana
            ).is_success
            assert http.post(
                f"{two}/ask", json={"message": "again", "thread_id": "t1"}, headers=ana
            ).is_success
            messages = http.get(f"{one}/threads/t1", headers=ana).json()["messages"]
            assert [m["content"] for m in messages if m["type"] == "human"] == ["hello", "again"]
            assert http.get(f"{two}/tools", headers={"Authorization": "Bearer llt_nope"}).status_code == 401

            # Progress marked through one is the learner's progress on the other.
            marked = http.post(f"{one}/tools/update_progress", json={"topic": "I know Python"}, headers=ana)
            assert marked.is_success, marked.text
            seen = http.post(f"{two}/tools/learner_progress", json={"chart": False}, headers=ana).json()
            modules = seen["output"]["progress"]["modules"]
            assert next(m for m in modules if m["module_id"] == "fundamentals.python")["covered"] == 1

            # A job started through one is listed and cancelled through the other; the next in
            # the learner's line then starts.
            first = http.post(f"{one}/tools/demo_job", json={}, headers=ana).json()["output"]
            second = http.post(f"{one}/tools/demo_job", json={}, headers=ana).json()["output"]
            assert first["status"] == "queued" and second["status"] == "waiting"
            listed = http.post(f"{two}/tools/job_status", json={"action": "list"}, headers=ana).json()
            assert {first["job_id"], second["job_id"]} <= {j["id"] for j in listed["output"]["jobs"]}
            for job in (first, second):
                cancel = {"action": "cancel", "job_id": job["job_id"]}
                done = http.post(f"{two}/tools/job_status", json=cancel, headers=ana)
                assert done.is_success and done.json()["output"]["jobs"][0]["status"] == "cancelled", (
                    done.text
                )
            shown = http.post(f"{one}/tools/job_status", json={"action": "list"}, headers=ana).json()
            assert [j["status"] for j in shown["output"]["jobs"]] == ["cancelled", "cancelled"]
        for name in ("one", "two"):  # nothing went through the workspaces' SQLite files
            assert not [p.name for p in (tmp_path / name).glob("*.sqlite") if p.name != "course.sqlite"]
    finally:
        for process, _ in servers:
            process.terminate()
        for process, _ in servers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
