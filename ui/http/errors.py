"""One error contract for every HTTP route: ``{"error": {"code", "message", "hint"}}``.

Typed errors keep their message and hint (they name the fix); request validation errors say
which field and why, never echoing the input; anything unexpected is a plain 500 whose
details stay in the server log. Bodies are read once, bounded, and parsed as strict JSON
(no NaN/Infinity, valid UTF-8, no lone surrogates) before any route runs.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from llmtutor.errors import (
    ApprovalRequiredError,
    AuthenticationError,
    InputLimitError,
    LLMTutorError,
    NotFoundForLearnerError,
    NothingToResumeError,
    OverloadedError,
    PersonaNotFoundError,
    ToolInputError,
    ToolNotFoundError,
)
from llmtutor.jobs import JobLimitError
from llmtutor.ui.http.openai_api import UnknownModelError

log = logging.getLogger("llmtutor.http")

# (error class, HTTP status, code): the first match wins, so subclasses come first.
_TYPED: tuple[tuple[type[LLMTutorError], int, str], ...] = (
    (AuthenticationError, 401, "unauthorized"),
    (JobLimitError, 429, "too_many_jobs"),
    (OverloadedError, 429, "overloaded"),
    (ApprovalRequiredError, 403, "approval_required"),
    (NotFoundForLearnerError, 404, "not_found"),
    (UnknownModelError, 404, "model_not_found"),  # OpenAI's code for it
    (ToolNotFoundError, 404, "not_found"),
    (PersonaNotFoundError, 404, "not_found"),
    (NothingToResumeError, 409, "nothing_to_resume"),
    (InputLimitError, 422, "invalid_input"),
    (ToolInputError, 422, "invalid_input"),
)


def error_body(code: str, message: str, hint: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "hint": hint or ""}}


def typed_error(exc: LLMTutorError) -> tuple[int, dict[str, Any]]:
    for cls, status, code in _TYPED:
        if isinstance(exc, cls):
            return status, error_body(code, exc.message, exc.hint)
    return 400, error_body("tool_error", exc.message, exc.hint)


def validation_message(errors: list[dict[str, Any]]) -> str:
    """'field: reason' for each problem, without the values that were sent."""
    parts = []
    for error in errors[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body",)) or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


class BadJSONError(ValueError):
    """The body is not strict JSON."""


def _reject_constant(name: str) -> Any:
    raise BadJSONError(f"{name} is not valid JSON")


def _check_strings(value: Any) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # a lone surrogate ("\ud800") raises UnicodeEncodeError
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def parse_strict_json(body: bytes) -> Any:
    """The body as JSON, or BadJSONError: invalid UTF-8, NaN/Infinity, lone surrogates."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        _check_strings(value)
    except (UnicodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadJSONError(str(exc).split(":")[0]) from None
    return value
