"""`llmtutor quiz`: a quiz in the terminal, one question at a time.

Mount with ``register(app)`` (it attaches the CLI's typed-error handling). The quiz is the `quiz` tool's
session, so Ctrl-D leaves it open and ``llmtutor quiz --resume`` (or the chat) continues it.
Only typer is imported at module level: `llmtutor --help` stays fast.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from llmtutor.ui.cli.typed_errors import Command


class Kind(StrEnum):  # an Enum: typer turns it into a choice on every version
    mc = "mc"
    short = "short"
    mixed = "mixed"


class Language(StrEnum):
    auto = "auto"
    en = "en"
    zh = "zh"


def _llm_factory(settings: Any, console: Any):
    """The configured chat model for writing questions and judging answers, if it is capable."""
    if settings.uses_default_chat_model():
        console.print(
            "[yellow]The default 135M model cannot write sound questions; using the course's "
            "questions. Set LLMTUTOR_CHAT_MODEL (or another backend) to use --llm.[/yellow]"
        )
        return None
    from llmtutor.backends import make_backend

    backend = make_backend(settings)
    return lambda: backend.chat_model(temperature=0.2, max_tokens=600)


def quiz(
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic",
            "-t",
            help="Module, track or glossary term, "
            "English or Chinese (quantization, 量化, engineer.rag, LoRA). "
            "Empty: the whole course.",
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=20, help="Number of questions.")] = 5,
    kind: Annotated[
        Kind, typer.Option("--kind", "-k", help="Multiple choice, short answer, or both.")
    ] = Kind.mixed,
    language: Annotated[
        Language, typer.Option("--language", "-l", help="Question language (auto: from the topic).")
    ] = Language.auto,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the open quiz instead of starting one.")
    ] = False,
    use_llm: Annotated[
        bool,
        typer.Option(
            "--llm/--no-llm",
            help="Let the configured chat model write questions "
            "and judge short answers (capable models only).",
        ),
    ] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Fix the choice of questions.")] = None,
) -> None:
    """Take a quiz on a course topic: answer A-D or in a few sentences; 'skip', 'stop', Ctrl-D to pause."""
    from rich.console import Console
    from rich.markdown import Markdown

    from llmtutor.settings import Settings
    from llmtutor.tools.quiz import make_tool
    from llmtutor.tools.registry import ToolContext

    console = Console()
    settings = Settings()
    ctx = ToolContext(
        workspace=settings.ensure_workspace(), device=settings.device, database_url=settings.database_url
    )
    tool = make_tool(llm=_llm_factory(settings, console) if use_llm else None)
    if resume:
        out = tool.run({"action": "status"}, ctx)
    else:
        args = {
            "action": "start",
            "topic": topic,
            "n": n,
            "kind": kind.value,
            "language": language.value,
            "seed": seed,
        }
        out = tool.run(args, ctx)
    console.print(Markdown(out.to_markdown()))
    while out.status == "asking":
        try:
            text = console.input("[bold green]answer> [/bold green]")
        except (EOFError, KeyboardInterrupt):
            console.print("\n[dim]Quiz paused; continue with `llmtutor quiz --resume`.[/dim]")
            return
        if not text.strip():
            continue
        out = tool.run({"action": "answer", "session_id": out.session_id, "answer": text}, ctx)
        console.print(Markdown(out.to_markdown()))


def register(app: typer.Typer) -> None:
    app.command("quiz", cls=Command)(quiz)  # its typed errors: exit 2 on any app
