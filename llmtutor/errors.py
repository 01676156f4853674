"""Typed errors shared by every layer.

Each error carries a message that names the fix. Layers raise these; only the
edges (CLI, HTTP API, Gradio) turn them into user-facing text via `user_message`.
"""

from __future__ import annotations


class LLMTutorError(Exception):
    """Base class. `hint` says what the user can do about it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class ConfigError(LLMTutorError):
    """Settings are invalid or inconsistent."""


class ModelNotFoundError(LLMTutorError):
    """A model name/path could not be resolved to weights on this machine."""


class BackendUnavailableError(LLMTutorError):
    """A chat backend (server, library) cannot be reached or loaded."""


class ToolNotFoundError(LLMTutorError):
    """No tool with that name is registered."""


class ToolInputError(LLMTutorError):
    """Arguments given to a tool do not validate."""


class ToolExecutionError(LLMTutorError):
    """A tool failed while running."""


class PersonaNotFoundError(LLMTutorError):
    """No persona YAML with that name."""


class CancelledError(LLMTutorError):
    """Long work was cancelled by the user."""


class InputLimitError(LLMTutorError):
    """A message or request is empty or over a configured limit; nothing was run or stored."""


class NothingToResumeError(LLMTutorError):
    """A resume was asked for a conversation that is not waiting for an approval."""


class AuthenticationError(LLMTutorError):
    """No valid API key where the server has users (HTTP 401)."""


class NotFoundForLearnerError(LLMTutorError):
    """The thing asked for does not exist for this learner (HTTP 404; another learner's looks the same)."""


class OverloadedError(LLMTutorError):
    """The server is answering as many turns as it allows; try again shortly (HTTP 429)."""


class ApprovalRequiredError(LLMTutorError):
    """An expensive tool was called without an approved plan (HTTP 403)."""


class DemoLimitError(ApprovalRequiredError):
    """The public demo does not run this (HTTP 403)."""


def user_message(exc: BaseException) -> str:
    """The one place where exceptions become text for people."""
    if isinstance(exc, LLMTutorError):
        return f"Error: {exc}"
    return f"Unexpected error ({type(exc).__name__}): {exc}"
