"""MCP with the `mcp` client SDK: `llmtutor mcp` over stdio (a real process, real tools) and `/mcp`
on a real uvicorn server (learners' keys, progress notifications, plan → approval_id → run)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from fakes import FakeBackend, ScriptedRouter, make_registry
from langgraph.checkpoint.memory import InMemorySaver
from live_server import serving

from llmtutor.agents.tutor import Tutor
from llmtutor.settings import Settings
from llmtutor.ui.http.server import create_app
from llmtutor.users import add_user


def test_stdio_serves_every_tool_with_its_schema_and_runs_them(tmp_path):
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from llmtutor.tools.registry import default_registry

    env = {**os.environ, "LLMTUTOR_WORKSPACE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    command = str(Path(sys.executable).parent / "llmtutor")
    params = StdioServerParameters(command=command, args=["mcp"], env=env)

    async def session_run():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            estimate = await session.call_tool("estimate_memory", {"model": "Llama-3-8B", "mode": "qlora"})
            plan = await session.call_tool("quantize_model", {"methods": ["absmax"]})
            wrong = await session.call_tool("quantize_model", {"methods": ["absmax"], "approval_id": "nope"})
            bad = await session.call_tool("estimate_memory", {"model": "Llama-3-8B", "mode": "juggling"})
            return tools, estimate, plan, wrong, bad

    tools, estimate, plan, wrong, bad = anyio.run(session_run)
    registry = default_registry()
    assert set(tools) == set(registry.names())
    for name, tool in tools.items():
        spec = registry.get(name)
        assert set(spec.input_model.model_fields) <= set(tool.inputSchema.get("properties", {}))
        assert tool.annotations.readOnlyHint is (not spec.writes)
        assert ("approval_id" in tool.inputSchema.get("properties", {})) is spec.expensive
    assert not estimate.isError and "14.6" in estimate.content[0].text  # the real estimate
    assert estimate.structuredContent["total_gib"] == pytest.approx(14.62, abs=0.05)
    # An expensive tool: the plan and an approval id; nothing ran, nothing was written.
    assert not plan.isError and plan.structuredContent["status"] == "needs_approval"
    assert plan.structuredContent["approval_id"] and "absmax" in plan.content[0].text
    assert not (tmp_path / "jobs.sqlite").exists() and not (tmp_path / "outputs").exists()
    assert wrong.isError and "approval_id" in wrong.content[0].text
    assert bad.isError and "mode" in bad.content[0].text


@pytest.fixture()
def server(tmp_path):

    calls: list[str] = []
    tutor = Tutor(
        Settings(workspace=tmp_path),
        backend=FakeBackend([]),
        registry=make_registry(calls),
        router=ScriptedRouter(),
        checkpointer=InMemorySaver(),
    )
    keys = {name: add_user(tutor.settings.users_db, name)[1] for name in ("ana", "bo")}
    with serving(create_app(tutor)) as url:
        yield f"{url}/mcp", keys, calls


def _session(url: str, key: str):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    class Session:
        async def __aenter__(self):
            self._http = streamablehttp_client(url, headers={"Authorization": f"Bearer {key}"})
            read, write, _ = await self._http.__aenter__()
            self._session = ClientSession(read, write)
            session = await self._session.__aenter__()
            await session.initialize()
            return session

        async def __aexit__(self, *exc):
            await self._session.__aexit__(*exc)
            await self._http.__aexit__(*exc)

    return Session()


def test_http_needs_a_key_and_reports_progress(server):
    url, keys, calls = server
    assert httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 401
    bad = httpx.post(url, json={}, headers={"Authorization": "Bearer llt_wrong"})
    assert bad.status_code == 401
    progress: list[tuple[float, float | None, str | None]] = []

    async def run():
        async with _session(url, keys["ana"]) as session:
            names = [t.name for t in (await session.list_tools()).tools]

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append((done, total, message))

            result = await session.call_tool("cheap_count", {"n": 4}, progress_callback=on_progress)
            return names, result

    names, result = anyio.run(run)
    assert names == ["cheap_count", "big_count"]
    assert not result.isError and result.content[0].text == "counter total = 4" and calls == ["cheap"]
    assert result.structuredContent == {"total": 4}
    assert progress == [(1.0, 1.0, "counting")]


def test_http_expensive_tools_run_only_with_the_same_learners_approval(server):
    url, keys, calls = server

    async def run():
        async with _session(url, keys["ana"]) as ana, _session(url, keys["bo"]) as bo:
            plan = await ana.call_tool("big_count", {"n": 2})
            approval = plan.structuredContent["approval_id"]
            stolen = await bo.call_tool("big_count", {"n": 2, "approval_id": approval})
            other_args = await ana.call_tool("big_count", {"n": 5, "approval_id": approval})
            plan = await ana.call_tool("big_count", {"n": 2})  # the failed tries used nothing up?
            approval = plan.structuredContent["approval_id"]
            ran = await ana.call_tool("big_count", {"n": 2, "approval_id": approval})
            again = await ana.call_tool("big_count", {"n": 2, "approval_id": approval})
            return stolen, other_args, ran, again

    stolen, other_args, ran, again = anyio.run(run)
    assert stolen.isError and other_args.isError
    assert not ran.isError and ran.content[0].text == "counter total = 200"
    assert again.isError  # an approval runs once
    assert calls == ["expensive"]
