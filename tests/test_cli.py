"""The `llmtutor` command line, run as a user would (subprocesses, real models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "llmtutor"
DEV_ROUTING = Path(__file__).resolve().parents[1].parent / "shared" / "dev" / "routing_dev.jsonl"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    workspace = tmp_path_factory.mktemp("cli-workspace")
    return {**os.environ, "LLMTUTOR_WORKSPACE": str(workspace), "HF_HUB_OFFLINE": "1"}


def run(env, *args, check=True, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"llmtutor {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def test_help_lists_commands_and_imports_nothing_heavy(env):
    out = run(env, "--help").stdout
    for command in ("chat", "ask", "plan", "tools", "ui", "doctor", "personas"):
        assert command in out
    probe = "import sys, llmtutor.ui.cli; print(sorted(m for m in ('torch','gradio','langgraph','transformers') if m in sys.modules))"
    heavy = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert heavy == "[]"


def test_tools_list_json(env):
    tools = json.loads(run(env, "tools", "list", "--json").stdout)
    names = {t["name"] for t in tools}
    assert {"estimate_memory", "compare_decoding"} <= names
    assert all("input_schema" in t and "expensive" in t for t in tools)


def test_tools_run_estimate_memory(env):
    out = run(
        env,
        "tools",
        "run",
        "estimate_memory",
        "--args",
        '{"model": "llama-2-7b", "precision": "fp16"}',
        "--json",
    )
    result = json.loads(out.stdout)
    assert 12 < result["total_gib"] < 20


def test_tools_run_bad_input_is_a_clear_error(env):
    bad_json = run(env, "tools", "run", "estimate_memory", "--args", "{not json", check=False)
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr
    bad_field = run(env, "tools", "run", "estimate_memory", "--args", '{"precision": "fp3"}', check=False)
    assert bad_field.returncode == 2 and "precision" in bad_field.stderr
    unknown = run(env, "tools", "run", "make_coffee", check=False)
    assert unknown.returncode == 2 and "available tools" in unknown.stderr


def test_plan_single_and_batch(env, tmp_path):
    hello = json.loads(run(env, "plan", "Hello!", "--json").stdout)
    assert hello == {"tool": None, "args": {}}
    memory = json.loads(run(env, "plan", "How much VRAM to run a 13B model in 4-bit?", "--json").stdout)
    assert memory["tool"] == "estimate_memory"

    lines = [{"text": "Thanks, bye"}, {"text": "Compare top-k and greedy decoding on 'Once upon a time'"}]
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    decisions = [json.loads(line) for line in run(env, "plan", "--batch", str(batch)).stdout.splitlines()]
    assert [d["tool"] for d in decisions] == [None, "compare_decoding"]
    assert set(decisions[1]["args"]["strategies"]) == {"top_k", "greedy"}


@pytest.mark.skipif(not DEV_ROUTING.exists(), reason="dev routing set not present")
def test_plan_batch_on_dev_set_keeps_order(env):
    items = [
        json.loads(line) for line in DEV_ROUTING.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    decisions = [
        json.loads(line) for line in run(env, "plan", "--batch", str(DEV_ROUTING)).stdout.splitlines()
    ]
    assert len(decisions) == len(items)
    assert all(set(d) == {"tool", "args"} for d in decisions)


def test_ask_json_answers_from_the_embedded_model(env):
    reply = json.loads(run(env, "ask", "What is LoRA?", "--json").stdout)
    assert set(reply) >= {"answer", "citations", "tool_calls", "persona"}
    assert reply["answer"].strip() and reply["persona"] == "tutor"
    assert [c["tool"] for c in reply["tool_calls"]] == ["search_course"]
    assert reply["citations"] and {"source", "heading", "text"} <= set(reply["citations"][0])


def test_personas_and_doctor(env):
    assert "socratic_coach" in run(env, "personas").stdout
    report = json.loads(run(env, "doctor", "--json").stdout)
    assert report["chat_backend"]["ok"] is True
    assert report["gpu"]["cuda"] in (True, False)
    assert report["libraries"]["xllamacpp"]
    assert report["paths"]["workspace"] == env["LLMTUTOR_WORKSPACE"]
