"""The chat model picker: the configured model (the embedded SmolLM2 by default), the learner's
registered models (merged or full fine-tunes, GGUF exports) and the embedded model when another
backend is configured, chosen per browser session without environment variables.

Each choice is a Tutor of its own (settings with that backend and model), sharing the app tutor's
tools, router and checkpointer: a conversation keeps its thread when the model changes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtutor.errors import ModelNotFoundError

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor
    from llmtutor.settings import Settings

DEFAULT = "default"
EMBEDDED = "embedded"
# Registered kinds a backend can chat with: GGUF files through llama.cpp, HF folders through
# transformers (a LoRA adapter needs merging first, a bitsandbytes model a GPU).
_BACKEND_OF = {"gguf": "llamacpp", "merged": "hf", "full": "hf"}


def describe(settings: Settings) -> str:
    if settings.uses_default_chat_model():
        return "SmolLM2-135M (embedded)"
    model = Path(settings.chat_model).name if settings.chat_model else "default model"
    return f"{model} ({settings.backend})"


def make_tutor(settings: Settings, base: Tutor) -> Tutor:
    from llmtutor.agents.tutor import Tutor

    return Tutor(settings, registry=base.registry, router=base._router, checkpointer=base.graph.checkpointer)


class ModelChoices:
    """The choices for a learner and the Tutor for each (built on first use, then kept)."""

    def __init__(self, base: Tutor, factory: Callable[[Settings, Tutor], Tutor] | None = None) -> None:
        self.base = base
        self.factory = factory or make_tutor
        self._tutors: dict[tuple[str, str, str], Tutor] = {}
        self._lock = threading.Lock()

    def _registered(self, learner_id: str) -> list[Any]:
        from llmtutor.model_registry import list_models
        from llmtutor.paths import learner_space

        models_dir = learner_space(self.base.settings.workspace, learner_id) / "models"
        return [m for m in list_models(models_dir) if m.kind in _BACKEND_OF and Path(m.path).exists()]

    def options(self, learner_id: str | None) -> list[tuple[str, str]]:
        """(label, key) pairs; keys: "default", "embedded", "model:NAME" (None: nobody's models,
        the page's first render before it knows the learner)."""
        settings = self.base.settings
        choices = [(f"{describe(settings)} — configured", DEFAULT)]
        if not settings.uses_default_chat_model() and settings.backend != "llamacpp":
            choices.append(("SmolLM2-135M (embedded)", EMBEDDED))
        choices += [
            (f"{m.name} — your {m.kind} model ({_BACKEND_OF[m.kind]})", f"model:{m.name}")
            for m in (self._registered(learner_id) if learner_id else [])
        ]
        return choices

    def settings_for(self, key: str, learner_id: str) -> Settings:
        settings = self.base.settings
        if key == EMBEDDED:
            return settings.model_copy(update={"backend": "llamacpp", "chat_model": "", "base_url": ""})
        name = key.removeprefix("model:")
        found = next((m for m in self._registered(learner_id) if m.name == name), None)
        if found is None:  # another learner's name looks exactly like a missing one
            raise ModelNotFoundError(
                f"no model {name!r} of yours to chat with", "pick one from the list, or fine-tune one first"
            )
        update = {"backend": _BACKEND_OF[found.kind], "chat_model": found.path, "base_url": ""}
        return settings.model_copy(update=update)

    def tutor_for(self, key: str | None, learner_id: str) -> Tutor:
        if not key or key == DEFAULT:
            return self.base
        settings = self.settings_for(key, learner_id)
        cache_key = (key, settings.backend, settings.chat_model)
        with self._lock:
            if cache_key not in self._tutors:
                self._tutors[cache_key] = self.factory(settings, self.base)
            return self._tutors[cache_key]

    def all(self) -> list[Tutor]:
        with self._lock:
            return [self.base, *self._tutors.values()]
