"""A local Ollama server through its native API (langchain-ollama).

Structured output uses Ollama's `format` (a JSON schema), which Ollama turns
into grammar-constrained decoding. Model management (list, pull) talks to the
REST API directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from llmtutor.backends.base import ChatBackend
from llmtutor.errors import BackendUnavailableError, ModelNotFoundError

if TYPE_CHECKING:
    from llmtutor.settings import Settings

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
DEFAULT_OLLAMA_MODEL = "smollm2:135m"


class OllamaBackend(ChatBackend):
    name = "ollama"
    supports_native_tools = True

    @classmethod
    def from_settings(cls, settings: Settings) -> OllamaBackend:
        return cls(settings.chat_model, settings.base_url, settings.request_timeout)

    def __init__(self, model: str = "", base_url: str = "", timeout: float = 120.0):
        self.model = model or DEFAULT_OLLAMA_MODEL
        self.base_url = (base_url or DEFAULT_OLLAMA_URL).rstrip("/")
        if self.base_url.endswith("/v1"):  # people paste the OpenAI-compatible URL
            self.base_url = self.base_url[: -len("/v1")]
        self.timeout = timeout
        # Tiny models pick tools badly (measured with SmolLM2); let the classifier route them.
        self.supports_native_tools = not any(tag in self.model for tag in ("135m", "360m"))

    def chat_model(self, temperature: float | None = None, max_tokens: int | None = None):
        from langchain_ollama import ChatOllama

        kwargs: dict[str, Any] = {
            "model": self.model,
            "base_url": self.base_url,
            "client_kwargs": {"timeout": self.timeout},
        }
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["num_predict"] = max_tokens
        return ChatOllama(**kwargs)

    # ----- model management --------------------------------------------
    def _client(self):
        import httpx

        return httpx.Client(base_url=self.base_url, timeout=self.timeout)

    def list_models(self) -> list[dict[str, Any]]:
        try:
            with self._client() as client:
                response = client.get("/api/tags")
                response.raise_for_status()
        except Exception as exc:
            raise BackendUnavailableError(
                f"Ollama server not reachable at {self.base_url}: {exc}",
                "start it with `ollama serve`, or set LLMTUTOR_BASE_URL to its address",
            ) from exc
        return response.json().get("models", [])

    def pull_model(self, name: str, on_progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Pull a model, reporting Ollama's streamed status lines."""
        try:
            with (
                self._client() as client,
                client.stream("POST", "/api/pull", json={"model": name}) as response,
            ):
                if response.status_code == 404:
                    raise ModelNotFoundError(
                        f"model not found: {name}", "check the tag on the Ollama library"
                    )
                response.raise_for_status()
                for event in _ndjson(response.iter_lines()):
                    if "error" in event:
                        raise ModelNotFoundError(
                            f"ollama could not pull {name}: {event['error']}", "check the tag"
                        )
                    if on_progress:
                        on_progress(event)
        except (ModelNotFoundError, BackendUnavailableError):
            raise
        except Exception as exc:
            raise BackendUnavailableError(
                f"Ollama server not reachable at {self.base_url}: {exc}", "start it with `ollama serve`"
            ) from exc

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.name, "model": self.model, "base_url": self.base_url}
        try:
            names = [m.get("name") for m in self.list_models()]
            info["reachable"] = True
            info["model_present"] = self.model in names or f"{self.model}:latest" in names
        except BackendUnavailableError as exc:
            info["reachable"] = False
            info["error"] = str(exc)
        return info


def _ndjson(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.strip():
            yield json.loads(line)
