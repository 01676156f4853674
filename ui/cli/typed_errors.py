"""The CLI's one handler for typed errors: `LLMTutorError` → one line on stderr, exit code 2.

Commands just raise; nothing catches `LLMTutorError` only to print it. Usage errors, `--help`,
`typer.Exit` and Ctrl-C pass through untouched, so typer keeps their output and exit codes.

The handler sits in `invoke` of the click classes, not around `app()` in `main()`, because tests
and other callers run the app through typer's `CliRunner` (and mount single commands on their own
`typer.Typer()` via `register(app)`), and every one of those paths goes through `invoke`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from llmtutor.errors import LLMTutorError, user_message

TYPED_ERROR_EXIT_CODE = 2


@contextmanager
def typed_errors() -> Iterator[None]:
    """Turn a typed error into its one-line message (it names the fix) and exit code 2."""
    try:
        yield
    except LLMTutorError as exc:
        typer.echo(user_message(exc), err=True)
        raise typer.Exit(TYPED_ERROR_EXIT_CODE) from None


class Group(TyperGroup):
    """Group class for the CLI's Typer apps: covers every subcommand and nested group below it."""

    def invoke(self, ctx: Any) -> Any:
        with typed_errors():
            return super().invoke(ctx)


class Command(TyperCommand):
    """Command class for commands that `register()` adds to an app that may not use `Group`."""

    def invoke(self, ctx: Any) -> Any:
        with typed_errors():
            return super().invoke(ctx)
