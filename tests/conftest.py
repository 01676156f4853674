"""Shared fixtures. Tests use real components offline: the Hugging Face hub is
never contacted, models come from the bundled GGUF or are built locally."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything imports huggingface_hub: it reads these once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session workspace; its `models/` holds the converted SmolLM2 (ToolContext.models_dir)."""
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session")
def models_dir(workspace: Path) -> Path:
    return workspace / "models"


@pytest.fixture(scope="session")
def smollm2_dir(models_dir: Path) -> Path:
    """The bundled SmolLM2-135M-Instruct converted from its GGUF, once per session (~25 s)."""
    from llmtutor.hf_models import resolve_hf_model

    path = resolve_hf_model(None, models_dir)
    assert isinstance(path, Path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: Path) -> Path:
    """A 2-layer, hidden-64 Llama with random weights and SmolLM2's tokenizer (chat
    template included): real transformers code paths in a second of CPU time."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    from llmtutor.hf_models import quiet_transformers

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_dir))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    with quiet_transformers():
        model.save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))
    return path
