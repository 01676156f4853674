"""`llmtutor sql`: ask the course database a question (text-to-SQL, read-only).

    llmtutor sql "How many resources are listed in the RAG module?" [--json]
    llmtutor sql --batch questions.jsonl          # one {"question": ...} per line -> one JSON result per line

Mount with `register(app)` (it attaches the CLI's typed-error handling). JSON results are
{"sql", "columns", "rows", "answer"} (plus "method", "language"), or {"error": "..."} when the
question is refused or cannot be mapped. Models and the database are loaded once per run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmtutor.errors import LLMTutorError
from llmtutor.ui.cli.batch import read_jsonl_field
from llmtutor.ui.cli.typed_errors import Command

if TYPE_CHECKING:
    from llmtutor.knowledge.catalog.text_to_sql import TextToSQL


def _pipeline(use_llm: bool | None) -> TextToSQL:
    """The pipeline on the workspace database. Questions the parser cannot map go to the chat
    model only when asked (`--llm`) or when the configured backend is capable: a capable model
    writes SQL; a small one (the default SmolLM2-135M) may only pick the intent."""
    from llmtutor.backends import make_backend
    from llmtutor.knowledge.catalog import load_catalog
    from llmtutor.knowledge.catalog.text_to_sql import ChatSQLWriter, IntentPicker, TextToSQL
    from llmtutor.settings import Settings

    settings = Settings()
    settings.ensure_workspace()
    catalog = load_catalog()
    writer = picker = None
    if use_llm is not False:
        try:
            backend = make_backend(settings)
        except LLMTutorError:
            if use_llm:
                raise
            return TextToSQL(settings.catalog_db, catalog=catalog)  # no model here: the parser still works
        llm = lambda: backend.chat_model(temperature=0.0, max_tokens=256)  # noqa: E731
        if backend.supports_native_tools:
            writer = ChatSQLWriter(llm, method=backend.structured_method())
        elif use_llm:
            picker = IntentPicker(llm, catalog, method=backend.structured_method())
    return TextToSQL(settings.catalog_db, catalog=catalog, writer=writer, picker=picker)


def _result(pipe: TextToSQL, question: str) -> dict[str, Any]:
    try:
        a = pipe.ask(question)
    except LLMTutorError as exc:
        return {"error": str(exc)}
    return {
        "sql": a.sql,
        "columns": a.columns,
        "rows": a.rows,
        "answer": a.answer,
        "method": a.method,
        "language": a.language,
    }


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, default=str))


def sql_command(
    question: Annotated[
        str | None, typer.Argument(help="A question about the course or your quiz history.")
    ] = None,
    batch: Annotated[
        Path | None, typer.Option("--batch", help="JSONL file with a 'question' field per line.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
    llm: Annotated[
        bool | None,
        typer.Option(
            "--llm/--no-llm",
            help="Let the chat model write SQL for questions "
            "the parser cannot map (default: only on capable backends).",
        ),
    ] = None,
) -> None:
    """Ask the course database (catalog + your quiz history); shows the SQL it ran. Read-only."""
    if (question is None) == (batch is None):
        raise LLMTutorError(
            "give a QUESTION or --batch FILE", "e.g. llmtutor sql 'How many modules are there?' --json"
        )
    questions = read_jsonl_field(batch, "question") if batch is not None else [question or ""]
    pipe = _pipeline(llm)
    if batch is not None:
        for q in questions:
            _echo_json(_result(pipe, q))
        return
    result = _result(pipe, questions[0])
    if as_json:
        _echo_json(result)
    elif "error" in result:
        typer.echo(f"Error: {result['error']}", err=True)
    else:
        _print_human(result)
    if "error" in result:
        raise typer.Exit(1)


def _print_human(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.table import Table

    console = Console()
    console.print(result["answer"], markup=False, highlight=False)
    console.print(Syntax(result["sql"], "sql", word_wrap=True))
    if result["rows"]:
        table = Table(*result["columns"])
        for row in result["rows"][:20]:
            table.add_row(*("" if v is None else str(v)[:80] for v in row))
        console.print(table)
        if len(result["rows"]) > 20:
            console.print(f"[dim]… {len(result['rows']) - 20} more rows (use --json for all)[/dim]")


def register(app: typer.Typer) -> None:
    app.command("sql", cls=Command)(sql_command)  # its typed errors: exit 2 on any app
