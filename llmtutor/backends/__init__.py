"""Chat backends, by name: llamacpp (embedded default), ollama, openai, hf.

Each backend is a `ChatBackend` subclass with a `from_settings` constructor; `BACKENDS` maps
the name in `LLMTUTOR_BACKEND` to its class. Classes are imported on first use, so choosing
Ollama never imports torch. Add a backend: write `llmtutor/backends/NAME.py` and add one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from llmtutor.errors import ConfigError

if TYPE_CHECKING:
    from llmtutor.backends.base import ChatBackend
    from llmtutor.settings import Settings

BACKENDS: dict[str, str] = {
    "llamacpp": "llmtutor.backends.llamacpp:LlamaCppBackend",
    "ollama": "llmtutor.backends.ollama:OllamaBackend",
    "openai": "llmtutor.backends.openai:OpenAIBackend",
    "hf": "llmtutor.backends.hf:HFBackend",
}


def backend_class(name: str) -> type[ChatBackend]:
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend: {name}", f"use one of: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(settings: Settings) -> ChatBackend:
    """The backend named in the settings (imports only that backend)."""
    return backend_class(settings.backend).from_settings(settings)
