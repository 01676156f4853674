"""`llmtutor progress`, `next`, `review`, `plan-study`: the learner model in the terminal.

Each command runs its registered tool (learner_progress, next_step, review_cards, study_plan), so the
chat, the HTTP API and the CLI show the same result. Only typer is imported at load time.
"""

from __future__ import annotations

from typing import Annotated

import typer

from llmtutor.ui.cli.quiz import Language
from llmtutor.ui.cli.typed_errors import Command


def _run(tool: str, args: dict, as_json: bool) -> object:
    from rich.console import Console
    from rich.markdown import Markdown

    from llmtutor.settings import Settings
    from llmtutor.tools.registry import ToolContext, default_registry

    settings = Settings()
    ctx = ToolContext(
        workspace=settings.ensure_workspace(), device=settings.device, database_url=settings.database_url
    )
    out = default_registry().get(tool).run(args, ctx)
    if as_json:
        typer.echo(out.model_dump_json(indent=2))
    else:
        Console().print(Markdown(out.to_markdown()))
        for image in getattr(out, "images", lambda: [])():
            Console().print(f"[dim]chart: {image}[/dim]")
    return out


def progress(
    language: Annotated[Language, typer.Option("--language", "-l")] = Language.en,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """What you have covered and how well: mastery per module, weak spots, reviews due (and a chart)."""
    lang = "en" if language == Language.auto else language.value
    _run("learner_progress", {"language": lang, "chart": not as_json}, as_json)


def next_step(
    goal: Annotated[str, typer.Argument(help="What you want to be able to do (optional).")] = "",
    language: Annotated[Language, typer.Option("--language", "-l")] = Language.auto,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The one next thing to study, prerequisite-aware (due reviews first)."""
    _run("next_step", {"goal": goal, "language": language.value}, as_json)


def review(
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=50, help="At most this many cards.")] = 10,
    language: Annotated[Language, typer.Option("--language", "-l")] = Language.en,
) -> None:
    """Review your due cards (spaced repetition): answer each like a quiz question."""
    from rich.console import Console
    from rich.markdown import Markdown

    from llmtutor.settings import Settings
    from llmtutor.tools.quiz import make_tool
    from llmtutor.tools.registry import ToolContext

    lang = "en" if language == Language.auto else language.value
    out = _run("review_cards", {"n": n, "language": lang}, False)
    quiz = getattr(out, "quiz", None)
    if quiz is None:
        return
    console, settings = Console(), Settings()
    ctx = ToolContext(
        workspace=settings.ensure_workspace(), device=settings.device, database_url=settings.database_url
    )
    tool = make_tool()
    while quiz.status == "asking":
        try:
            text = console.input("[bold green]answer> [/bold green]")
        except (EOFError, KeyboardInterrupt):
            console.print("\n[dim]Review paused; continue with `llmtutor quiz --resume`.[/dim]")
            return
        if text.strip():
            quiz = tool.run({"action": "answer", "session_id": quiz.session_id, "answer": text}, ctx)
            console.print(Markdown(quiz.to_markdown()))


def plan_study(
    goal: Annotated[
        str, typer.Argument(help='What you want to learn, e.g. "RAG" or "fine-tune Llama 3".')
    ] = "",
    weeks: Annotated[int | None, typer.Option("--weeks", "-w", min=1, max=52)] = None,
    days: Annotated[int | None, typer.Option("--days", "-d", min=1, max=366)] = None,
    minutes: Annotated[int, typer.Option("--minutes", "-m", min=10, max=600, help="Minutes a day.")] = 45,
    show: Annotated[bool, typer.Option("--show", help="Show the latest plan, updated.")] = False,
    language: Annotated[Language, typer.Option("--language", "-l")] = Language.auto,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A study plan for a goal over the days given, stored and updated as you progress."""
    if show:
        _run("study_plan", {"action": "show", "language": language.value}, as_json)
        return
    span = days if days is not None else (weeks or 2) * 7
    args = {"goal": goal, "days": span, "minutes_per_day": minutes, "language": language.value}
    _run("study_plan", args, as_json)


def register(app: typer.Typer) -> None:
    app.command("plan-study", cls=Command)(plan_study)
    app.command("progress", cls=Command)(progress)
    app.command("next", cls=Command)(next_step)
    app.command("review", cls=Command)(review)
