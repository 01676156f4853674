"""Chat backends against real servers: the embedded llama.cpp server running
SmolLM2, the OpenAI client pointed at it, and the Ollama client against an
Ollama-protocol shim backed by the same model (see ollama_shim.py)."""

from __future__ import annotations

from typing import Literal

import pytest
from ollama_shim import MODEL_TAG, OllamaShim
from pydantic import BaseModel

from llmtutor.backends.llamacpp import LlamaCppBackend
from llmtutor.backends.ollama import OllamaBackend
from llmtutor.backends.openai import OpenAIBackend
from llmtutor.errors import ConfigError, ModelNotFoundError


class Pick(BaseModel):
    tool: Literal["estimate_memory", "compare_decoding", "none"]
    confidence: int


@pytest.fixture(scope="module")
def llama() -> LlamaCppBackend:
    return LlamaCppBackend(n_ctx=2048, n_threads=2)


def test_llamacpp_streams_a_real_answer(llama):
    llm = llama.chat_model(temperature=0.0, max_tokens=24)
    chunks = [c.content for c in llm.stream("What is a large language model?")]
    assert len([c for c in chunks if c]) > 3
    assert "".join(chunks).strip()
    info = llama.describe()
    assert info["server"].startswith("embedded") and info["model_size_mb"] > 50


def test_llamacpp_constrained_json_is_always_valid(llama):
    llm = llama.chat_model(temperature=0.8, max_tokens=64).with_structured_output(Pick, method="json_schema")
    for question in ["How much memory for a 7B model?", "tell me a joke", "beam search vs greedy"]:
        pick = llm.invoke(f"Pick a tool for: {question}")
        assert isinstance(pick, Pick)


def test_openai_backend_against_llama_server(llama):
    backend = OpenAIBackend(model="smollm2", base_url=llama.endpoint())
    reply = backend.chat_model(temperature=0.0, max_tokens=12).invoke("Say hello.")
    assert reply.content.strip()


def test_openai_backend_needs_a_key_or_url(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="LLMTUTOR_BASE_URL"):
        OpenAIBackend().chat_model()


def test_llamacpp_missing_model_names_the_fix(tmp_path):
    with pytest.raises(ModelNotFoundError, match="LLMTUTOR_CHAT_MODEL"):
        LlamaCppBackend(chat_model=str(tmp_path / "nope.gguf"))


def test_ollama_client_against_ollama_protocol(llama):
    with OllamaShim(llama.endpoint()) as shim:
        backend = OllamaBackend(model=MODEL_TAG, base_url=shim.url + "/v1")  # /v1 is stripped
        assert backend.base_url == shim.url
        assert MODEL_TAG in [m["name"] for m in backend.list_models()]
        assert backend.describe()["model_present"] is True

        events = []
        backend.pull_model("qwen2.5:0.5b", on_progress=events.append)
        assert events[-1]["status"] == "success" and "qwen2.5:0.5b" in shim.pulled
        with pytest.raises(ModelNotFoundError):
            backend.pull_model("does-not-exist")

        llm = backend.chat_model(temperature=0.0, max_tokens=24)
        chunks = [c.content for c in llm.stream("What is a token?")]
        assert len(chunks) > 2 and "".join(chunks).strip()
        pick = llm.with_structured_output(Pick, method="json_schema").invoke("Pick a tool for: memory of 7B")
        assert isinstance(pick, Pick)


def test_ollama_unreachable_is_a_clear_error():
    backend = OllamaBackend(base_url="http://127.0.0.1:9")
    info = backend.describe()
    assert info["reachable"] is False and "ollama serve" in info["error"]


def test_cli_lists_and_pulls_ollama_models(llama, monkeypatch):
    from typer.testing import CliRunner

    from llmtutor.ui.cli import app

    with OllamaShim(llama.endpoint()) as shim:
        monkeypatch.setenv("LLMTUTOR_BASE_URL", shim.url)
        runner = CliRunner()
        listed = runner.invoke(app, ["ollama", "list"])
        assert listed.exit_code == 0 and MODEL_TAG in listed.output
        pulled = runner.invoke(app, ["ollama", "pull", "phi3:mini"])
        assert pulled.exit_code == 0 and "success" in pulled.output and "phi3:mini" in shim.pulled
        missing = runner.invoke(app, ["ollama", "pull", "does-not-exist"])
        assert missing.exit_code == 2
