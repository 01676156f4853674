"""Chat backends: llamacpp (embedded default), ollama, openai, hf."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmtutor.errors import ConfigError

if TYPE_CHECKING:
    from llmtutor.backends.base import ChatBackend
    from llmtutor.settings import Settings


def make_backend(settings: Settings) -> ChatBackend:
    """The backend named in the settings (imports only that backend)."""
    if settings.backend == "llamacpp":
        from llmtutor.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(
            chat_model=settings.chat_model,
            base_url=settings.base_url,
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            n_gpu_layers=settings.n_gpu_layers,
            timeout=settings.request_timeout,
            models_dir=settings.models_dir,
        )
    if settings.backend == "openai":
        from llmtutor.backends.openai import OpenAIBackend

        return OpenAIBackend(
            settings.chat_model, settings.base_url, settings.api_key, settings.request_timeout
        )
    if settings.backend == "ollama":
        from llmtutor.backends.ollama import OllamaBackend

        return OllamaBackend(settings.chat_model, settings.base_url, settings.request_timeout)
    if settings.backend == "hf":
        from llmtutor.backends.hf import HFBackend

        return HFBackend(model=settings.chat_model, models_dir=settings.models_dir, device=settings.device)
    raise ConfigError(f"unknown backend: {settings.backend}", "use llamacpp, ollama, openai or hf")
