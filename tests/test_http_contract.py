"""The HTTP error contract: every route and every real tool, fed malformed input, answers 4xx with
`{"error": {"code", "message", "hint"}}`, echoes nothing back, and leaves the server healthy."""

from __future__ import annotations

import json

import pytest
from fakes import FakeBackend, ScriptedRouter
from fastapi.testclient import TestClient
from langgraph.checkpoint.memory import InMemorySaver

from llmtutor.agents.tutor import Tutor
from llmtutor.settings import Settings
from llmtutor.tools.registry import default_registry
from llmtutor.ui.http.server import create_app

MARKER = "ZZ-ECHO-CANARY"


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    tutor = Tutor(
        Settings(workspace=tmp_path_factory.mktemp("http-contract"), max_message_chars=2000),
        backend=FakeBackend(["ok"] * 50),
        registry=default_registry(),
        router=ScriptedRouter(),
        checkpointer=InMemorySaver(),
    )
    return TestClient(create_app(tutor), raise_server_exceptions=False)


def _wrong_values(schema: dict) -> list:
    """Values that cannot validate for a field of this JSON schema (no lax coercion applies)."""
    types = {schema.get("type")} | {option.get("type") for option in schema.get("anyOf", [])}
    values: list = [{"nested": MARKER}]
    if "array" not in types:
        values.append([MARKER, 1])
    if not types & {"string"}:
        values.append(MARKER)
    if types & {"string"} and not types & {"integer", "number"}:
        values.append(12345)
    return values


def _tool_cases() -> list[tuple[str, dict]]:
    cases = []
    for tool in default_registry():
        properties = tool.input_schema().get("properties", {})
        for field, schema in properties.items():
            cases += [(tool.name, {field: value}) for value in _wrong_values(schema)]
        cases.append((tool.name, {"no_such_field": MARKER}))
    return cases


TOOL_CASES = _tool_cases()


def _assert_contract(response, status_range=(400, 500)) -> dict:
    assert status_range[0] <= response.status_code < status_range[1], (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "hint"}, body
    assert MARKER not in response.text  # the input is never echoed
    for leak in ("Traceback", 'File "/', "pydantic_core", "OverflowError", "KeyError"):
        assert leak not in response.text
    return body["error"]


def test_enough_cases():
    assert len(TOOL_CASES) >= 100


@pytest.mark.parametrize(
    ("tool", "args"), TOOL_CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(TOOL_CASES)]
)
def test_every_tool_refuses_malformed_arguments(client: TestClient, tool: str, args: dict):
    _assert_contract(client.post(f"/tools/{tool}", json=args))


RAW_BODIES = [
    b'{"message": NaN}',
    b'{"message": "hi", "x": Infinity}',
    b'{"message": -Infinity}',
    b'{"message": "\\ud800"}',
    b'{"message": "\xff\xfe"}',
    b'{"message": ',
    b"[1, 2",
]


@pytest.mark.parametrize("route", ["/ask", "/plan", "/chat/stream", "/tools/estimate_memory"])
@pytest.mark.parametrize("body", RAW_BODIES)
def test_bodies_that_are_not_strict_json(client: TestClient, route: str, body: bytes):
    error = _assert_contract(client.post(route, content=body, headers={"content-type": "application/json"}))
    assert error["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("method", "route", "payload"),
    [
        ("post", "/ask", [MARKER]),
        ("post", "/ask", {"message": 7}),
        ("post", "/ask", {"message": "hi", "thread_id": "../../" + MARKER}),
        ("post", "/ask", {"message": "hi", "persona": "nobody"}),  # its name is echoed: it is a name
        ("post", "/plan", {}),
        ("post", "/chat/stream", {"message": "hi", "extra": MARKER}),
        ("post", "/threads/t1/resume", {"approved": "maybe-" + MARKER}),
        ("post", "/threads/t1/resume", {}),
        ("get", "/no/such/route", None),
        ("delete", "/tools", None),
        ("post", "/tools/no_such_tool", {}),
        ("post", "/tools/estimate_memory", [MARKER]),
    ],
)
def test_routes_refuse_malformed_requests(client: TestClient, method: str, route: str, payload):
    response = (
        getattr(client, method)(route, json=payload)
        if payload is not None
        else getattr(client, method)(route)
    )
    _assert_contract(response)


def test_limits_blank_long_and_oversized(client: TestClient):
    for route in ("/ask", "/plan", "/chat/stream"):
        assert _assert_contract(client.post(route, json={"message": "   \n"}))["code"] == "invalid_input"
        long = _assert_contract(client.post(route, json={"message": "x" * 2001}))
        assert long["code"] == "invalid_input" and "2001" in long["message"]
    chinese = _assert_contract(client.post("/ask", json={"message": "量化" * 1001}))
    assert "超过上限" in chinese["message"]
    huge = client.post(
        "/ask", content=json.dumps({"message": "x" * 2_000_000}), headers={"content-type": "application/json"}
    )
    assert _assert_contract(huge)["code"] == "payload_too_large"


def test_resume_only_when_an_approval_is_pending(client: TestClient):
    error = _assert_contract(client.post("/threads/never-existed/resume", json={"approved": True}))
    assert error["code"] == "not_found"  # no such conversation (for this learner)
    assert client.post("/ask", json={"message": "hello", "thread_id": "idle"}).status_code == 200
    error = _assert_contract(client.post("/threads/idle/resume", json={"approved": True}))
    assert error["code"] == "nothing_to_resume"


def test_server_is_healthy_after_the_sweep(client: TestClient):
    assert client.get("/health").status_code == 200
    ran = client.post("/tools/estimate_memory", json={"model": "llama-3-8b", "mode": "qlora"})
    assert ran.status_code == 200 and ran.json()["output"]["total_gib"] > 0
    assert client.post("/ask", json={"message": "hello"}).status_code == 200
