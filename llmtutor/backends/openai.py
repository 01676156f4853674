"""Any OpenAI-compatible endpoint: OpenAI, vLLM, TGI, llama.cpp server, Ollama's /v1."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from llmtutor.backends.base import ChatBackend
from llmtutor.errors import ConfigError

if TYPE_CHECKING:
    from llmtutor.settings import Settings


class OpenAIBackend(ChatBackend):
    name = "openai"
    supports_native_tools = True

    def __init__(self, model: str = "", base_url: str = "", api_key: str = "", timeout: float = 120.0):
        self.model = model or "gpt-4o-mini"
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY", "")
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIBackend:
        return cls(settings.chat_model, settings.base_url, settings.api_key, settings.request_timeout)

    def endpoint(self) -> str:
        return self.base_url

    def chat_model(self, temperature: float | None = None, max_tokens: int | None = None):
        from langchain_openai import ChatOpenAI

        base_url = self.endpoint() or None
        if base_url is None and not self.api_key:
            raise ConfigError(
                "the openai backend needs an API key or a server URL",
                "set OPENAI_API_KEY / LLMTUTOR_API_KEY, or LLMTUTOR_BASE_URL=http://host:port/v1",
            )
        kwargs: dict[str, Any] = {
            "model": self.model,
            "base_url": base_url,
            "api_key": self.api_key or "not-needed",
            "timeout": self.timeout,
            "max_retries": 1,
            "streaming": True,
            "stream_usage": True,
        }
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_completion_tokens"] = max_tokens
        if self.sampling_extras():
            kwargs["extra_body"] = self.sampling_extras()
        return ChatOpenAI(**kwargs)

    def sampling_extras(self) -> dict[str, Any]:
        """Server-specific sampling fields sent with every request."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": self.base_url or "https://api.openai.com/v1",
        }
