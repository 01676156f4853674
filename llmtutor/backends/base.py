"""The chat-backend interface.

Every backend hands the graph a LangChain `BaseChatModel` (streaming, and
structured output through the backend's own constrained decoding), plus a
short description for `doctor`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from llmtutor.settings import Settings


# Small models loop ("A cat." forever, "X is a variant of X…") without a mild repetition
# penalty; the local backends share one value so a model answers alike on each.
REPEAT_PENALTY = 1.1


class ChatBackend(ABC):
    name: str = "base"
    # True when the model is big enough to pick tools and fill arguments itself
    # (router "auto" then uses native tool calling).
    supports_native_tools: bool = False

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> ChatBackend:
        """The backend configured by `LLMTUTOR_*` settings."""

    @abstractmethod
    def chat_model(self, temperature: float | None = None, max_tokens: int | None = None) -> BaseChatModel:
        """A LangChain chat model for this backend."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Model, endpoint and status, for `llmtutor doctor`."""

    def structured_method(self) -> str:
        """How `with_structured_output` constrains decoding on this backend."""
        return "json_schema"

    def close(self) -> None:
        """Release servers/processes. Safe to call twice."""
