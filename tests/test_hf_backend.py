"""The transformers ("hf") backend and model resolution: a tiny Llama built
locally (random weights, SmolLM2's tokenizer) for the mechanics, the real
converted SmolLM2 for answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel

from llmtutor import hf_models as models
from llmtutor.backends.hf import HFBackend
from llmtutor.backends.hf_prompt import to_chat
from llmtutor.backends.hf_structured import StructuredOutputError
from llmtutor.errors import ModelNotFoundError
from llmtutor.hf_models import load_causal_lm, resolve_hf_model


class Capital(BaseModel):
    city: str


def test_converted_default_model_folder(smollm2_dir, models_dir):
    assert smollm2_dir == models_dir / "SmolLM2-135M-Instruct"
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json"):
        assert (smollm2_dir / name).is_file(), name
    assert "im_start" in (smollm2_dir / "chat_template.jinja").read_text()
    assert json.loads((smollm2_dir / "config.json").read_text())["dtype"] == "float32"
    assert json.loads((smollm2_dir / models.SOURCE_FILE).read_text())["source"].endswith(".gguf")
    assert not [p for p in models_dir.iterdir() if ".tmp-" in p.name]  # no temp folder left behind
    mtime = (smollm2_dir / "model.safetensors").stat().st_mtime_ns
    for alias in ("", "smollm2", "default", None):
        assert resolve_hf_model(alias, models_dir) == smollm2_dir  # cached, not converted again
    assert (smollm2_dir / "model.safetensors").stat().st_mtime_ns == mtime
    assert resolve_hf_model(str(smollm2_dir), models_dir) == smollm2_dir.resolve()


def test_failed_conversion_leaves_no_half_folder(tmp_path, monkeypatch):
    def crash(gguf, out, progress):
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(models, "_write_hf_folder", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        resolve_hf_model(None, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["/no/such/model.gguf", "./missing-folder", "someone/not-a-real-model-xyz"])
def test_unknown_models_name_the_fix(name, tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"model not found: .*LLMTUTOR_CHAT_MODEL to a local folder"):
        load_causal_lm(name, tmp_path)


def test_messages_map_to_chat_roles():
    chat = to_chat(
        [
            SystemMessage("be brief"),
            HumanMessage("estimate memory"),
            AIMessage("", tool_calls=[{"name": "estimate_memory", "args": {"params_b": 7}, "id": "1"}]),
            ToolMessage("14 GB", tool_call_id="1", name="estimate_memory"),
        ]
    )
    assert [t["role"] for t in chat] == ["system", "user", "assistant", "user"]
    assert "estimate_memory" in chat[2]["content"] and "14 GB" in chat[3]["content"]


def test_tiny_llama_streams_and_invokes(tiny_llama_dir, tmp_path):
    backend = HFBackend(model=str(tiny_llama_dir), models_dir=tmp_path, device="cpu")
    assert backend.supports_native_tools is False
    # Sampling: a random model's greedy path is often one whitespace token repeated.
    llm = backend.chat_model(temperature=1.0, max_tokens=16)
    history = [
        SystemMessage("You are a tutor."),
        HumanMessage("Hi"),
        AIMessage("Hello!"),
        ToolMessage("42", tool_call_id="t1", name="calc"),
        HumanMessage("What is a token?"),
    ]
    chunks = list(llm.stream(history))
    texts = [c.content for c in chunks if c.content]
    assert len(texts) > 1  # streamed piece by piece, not one final blob
    assert chunks[-1].usage_metadata["output_tokens"] <= 16
    assert "".join(texts).strip()
    reply = llm.invoke(history)
    assert isinstance(reply, AIMessage) and reply.content.strip()
    assert reply.usage_metadata["output_tokens"] <= 16
    info = backend.describe()
    assert info["model"] == str(tiny_llama_dir.resolve()) or info["model"] == str(tiny_llama_dir)
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["loaded"]


def test_repetition_penalty_matches_llamacpp_except_for_json(tiny_llama_dir, tmp_path):
    llm = HFBackend(model=str(tiny_llama_dir), models_dir=tmp_path, device="cpu").chat_model(max_tokens=8)
    _, chat_kwargs = llm._prepare([HumanMessage("Hi")], None, {})
    assert chat_kwargs["generation_config"].repetition_penalty == pytest.approx(1.1)
    _, json_kwargs = llm._prepare([HumanMessage("Hi")], None, {"repetition_penalty": 1.0})
    assert json_kwargs["generation_config"].repetition_penalty == 1.0


def test_structured_output_fails_loudly_on_a_random_model(tiny_llama_dir, tmp_path):
    llm = HFBackend(model=str(tiny_llama_dir), models_dir=tmp_path, device="cpu").chat_model(max_tokens=8)
    with pytest.raises(StructuredOutputError, match="grammar-constrained"):
        llm.with_structured_output(Capital).invoke("Capital of France?")
    raw = llm.with_structured_output(Capital, include_raw=True).invoke("Capital of France?")
    assert raw["parsed"] is None and raw["parsing_error"] is not None


@pytest.fixture(scope="module")
def smollm2(models_dir, smollm2_dir):
    return HFBackend(models_dir=models_dir, device="cpu").chat_model(temperature=0.0, max_tokens=24)


def test_real_smollm2_answers_a_question(smollm2):
    reply = smollm2.invoke("What is the capital of France?")
    assert "Paris" in reply.content
    assert reply.response_metadata["finish_reason"] == "stop"
    streamed = "".join(c.content for c in smollm2.stream("What is the capital of France?"))
    assert streamed == reply.content


def test_real_smollm2_stop_strings_and_json(smollm2):
    assert "Paris" not in smollm2.invoke("What is the capital of France?", stop=["Paris"]).content
    streamed = "".join(c.content for c in smollm2.stream("What is the capital of France?", stop=["Paris"]))
    assert streamed.strip() and "Paris" not in streamed
    answer = smollm2.with_structured_output(Capital).invoke("What is the capital of France?")
    assert isinstance(answer, Capital) and "Paris" in answer.city


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_generation_on_cuda(tiny_llama_dir, smollm2_dir, tmp_path):
    backend = HFBackend(model=str(tiny_llama_dir), models_dir=tmp_path, device="cuda")
    reply = backend.chat_model(temperature=0.7, max_tokens=16).invoke("Hello")
    assert reply.content.strip()
    assert backend.describe()["device"].startswith("cuda")
    real = HFBackend(model=str(smollm2_dir), models_dir=tmp_path, device="auto")
    assert (
        "Paris"
        in real.chat_model(temperature=0.0, max_tokens=24).invoke("What is the capital of France?").content
    )
    assert real.describe()["dtype"] in ("bfloat16", "float16")


def test_tiny_llama_folder_is_a_real_llama(tiny_llama_dir):
    config = json.loads((Path(tiny_llama_dir) / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["hidden_size"] == 64
