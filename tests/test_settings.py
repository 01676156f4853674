from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmtutor.assets import default_embed_path, default_gguf_path
from llmtutor.errors import ToolInputError, ToolNotFoundError, user_message
from llmtutor.settings import Settings
from llmtutor.tools.registry import ToolRegistry, default_registry


def test_settings_read_the_llmtutor_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMTUTOR_BACKEND", "openai")
    monkeypatch.setenv("LLMTUTOR_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("LLMTUTOR_MAX_TOKENS", "99")
    settings = Settings()
    assert settings.backend == "openai" and settings.max_tokens == 99
    assert settings.checkpoint_db == tmp_path / "threads.sqlite"


def test_bad_settings_are_rejected(monkeypatch):
    monkeypatch.setenv("LLMTUTOR_BACKEND", "gpt5-magic")
    with pytest.raises(ValidationError):
        Settings()


def test_bundled_models_are_found_offline():
    assert default_gguf_path().stat().st_size > 50_000_000
    assert (default_embed_path() / "model.safetensors").exists()


def test_registry_holds_only_real_tools_with_examples():
    registry = default_registry()
    assert {"estimate_memory", "compare_decoding"} <= set(registry.names())
    for tool in registry:
        assert tool.description and len(tool.examples) >= 20
        assert tool.input_schema()["type"] == "object"
        assert tool.openai_schema()["function"]["name"] == tool.name


def test_unknown_tool_and_bad_args_are_typed_errors():
    registry = default_registry()
    with pytest.raises(ToolNotFoundError, match="estimate_memory"):
        registry.get("make_coffee")
    with pytest.raises(ToolInputError) as info:
        registry.get("estimate_memory").validate({"no_such_field": 1})
    assert "no_such_field" in user_message(info.value)


def test_registering_twice_is_refused():
    tool = next(iter(default_registry()))
    with pytest.raises(ValueError):
        ToolRegistry([tool, tool])


def test_allowed_dirs_from_env(monkeypatch, tmp_path):
    from llmtutor.settings import Settings

    monkeypatch.setenv("LLMTUTOR_ALLOWED_DIRS", f"{tmp_path}/data, {tmp_path}/models")
    assert Settings().allowed_dirs == [tmp_path / "data", tmp_path / "models"]
    monkeypatch.setenv("LLMTUTOR_ALLOWED_DIRS", f'["{tmp_path}/data"]')
    assert Settings().allowed_dirs == [tmp_path / "data"]
