"""`llmtutor index build|status` and `llmtutor search`: the course index from the terminal.

Mount with ``register(app)`` (adds the `index` group and the `search` command).
Only typer is imported at module level: `llmtutor --help` stays fast.

    llmtutor index build PATH... [--index DIR]      # Markdown, HTML, text, PDF, JSON; incremental
    llmtutor index status [--index DIR] [--json]
    llmtutor search "QUERY" [--index DIR] [--k 5] [--json]
    llmtutor search --batch FILE.jsonl [--index DIR] [--k 5]   # {"query": ...} per line → one JSON list per line

Without --index, the workspace index is used (LLMTUTOR_WORKSPACE/index); for
`search` it is built from the bundled course notes on first use, as the
`search_course` tool does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from llmtutor.ui.cli.batch import read_jsonl_field
from llmtutor.ui.cli.typed_errors import Command, Group

index_app = typer.Typer(
    help="Build and inspect the course search index.",
    no_args_is_help=True,
    cls=Group,  # typed errors: one line on stderr, exit 2 (also when mounted on another app)
)

IndexOpt = Annotated[
    str | None,
    typer.Option("--index", help="Index folder or LanceDB URI (default: the workspace index)."),
]


def _default_index() -> Path:
    from llmtutor.settings import Settings

    return Settings().ensure_workspace() / "index"


def _embedder():
    from llmtutor.knowledge.rag.embeddings import Embedder
    from llmtutor.settings import Settings

    return Embedder(Settings().embed_model or None)


@contextmanager
def _progress_bar(disable: bool = False) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr, one row per build stage (read, embed, write)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description:<6}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[dim]{task.fields[note]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=disable, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(
            stage: str, step: int | None = None, total: int | None = None, message: str = ""
        ) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or 1, note="")
            bar.update(tasks[stage], completed=step or 0, total=total or 1, note=message[-50:])

        yield progress


@index_app.command("build")
def build(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.")],
    index: IndexOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the build report as JSON.")] = False,
) -> None:
    """Index files (re-running embeds only changed files; deleted files leave the index)."""
    from rich.console import Console

    from llmtutor.knowledge.rag.index import build_index

    location = index or str(_default_index())
    with _progress_bar(disable=as_json) as progress:
        report = build_index([str(p) for p in paths], location, embedder=_embedder(), progress=progress)
    from llmtutor.tools.search_course import forget_index

    forget_index(location)
    if as_json:
        typer.echo(report.model_dump_json())
        return
    out = Console()
    out.print(
        f"[bold]{report.documents}[/bold] documents, [bold]{report.chunks}[/bold] chunks in {location} "
        f"({report.seconds:.1f} s)"
    )
    out.print(
        f"added {len(report.added)}, updated {len(report.updated)}, unchanged {report.unchanged}, "
        f"removed {len(report.removed)}; {report.chunks_embedded} chunks embedded"
    )
    for problem in report.skipped:
        out.print(f"[yellow]skipped[/yellow] {problem.source}: {problem.reason}")
    for problem in report.failed:
        out.print(f"[red]failed[/red]  {problem.source}: {problem.reason}")


@index_app.command("status")
def status(
    index: IndexOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")] = False,
) -> None:
    """Documents, chunks, languages and last build of an index."""
    from llmtutor.knowledge.rag.index import index_status

    info = index_status(index or _default_index())
    if as_json:
        typer.echo(info.model_dump_json())
        return
    if not info.exists:
        typer.echo(f"no index at {info.uri}; build one with `llmtutor index build PATH...`")
        return
    languages = ", ".join(f"{lang} {n}" for lang, n in sorted(info.languages.items()))
    formats = ", ".join(f"{fmt} {n}" for fmt, n in sorted(info.formats.items()))
    typer.echo(
        f"index:      {info.uri}\ndocuments:  {info.documents} ({formats})\nchunks:     {info.chunks}"
        f" ({languages})\nmodel:      {info.embed_model}\nlast build: {info.last_build}"
    )


def _hit_json(hit: Any) -> dict[str, Any]:
    return {
        "text": hit.text,
        "source": hit.source,
        "heading": hit.heading,
        "score": hit.score,
        "chunk_id": hit.chunk_id,
    }


def search(
    query: Annotated[str | None, typer.Argument(help="Question, English or Chinese.")] = None,
    index: IndexOpt = None,
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="Number of passages.")] = 5,
    as_json: Annotated[
        bool, typer.Option("--json", help='JSON list of {"text", "source", "heading", "score", "chunk_id"}.')
    ] = False,
    batch: Annotated[
        Path | None, typer.Option("--batch", help='JSONL file with a "query" field per line.')
    ] = None,
) -> None:
    """Search the course index (hybrid BM25 + vectors, English ↔ Chinese)."""
    from llmtutor.errors import LLMTutorError

    if (query is None) == (batch is None):
        raise LLMTutorError("give a QUERY or --batch FILE", "e.g. llmtutor search 'What is LoRA?' --json")
    queries = read_jsonl_field(batch, "query") if batch is not None else [query or ""]
    from llmtutor.knowledge.rag.retrieval import Retriever
    from llmtutor.tools.search_course import ensure_course_index

    if index is None:  # the workspace index: built from the bundled notes on first use
        location: str | Path = _default_index()
        with _progress_bar() as progress:
            ensure_course_index(location, progress=progress)
    else:
        location = index
    retriever = Retriever(location)
    results = [retriever.search(q, k=k, only_relevant=False) for q in queries]
    if batch is not None or as_json:
        for result in results:
            typer.echo(json.dumps([_hit_json(h) for h in result.hits], ensure_ascii=False))
        return
    _print_results(results[0])


def _print_results(result: Any) -> None:
    from rich.console import Console

    console = Console()
    if not result.found:
        console.print("[yellow]Nothing in the index clearly answers this; closest passages:[/yellow]")
    for number, hit in enumerate(result.hits, start=1):
        where = f"{hit.source} › {hit.heading}" if hit.heading else hit.source
        console.print(f"[bold][{number}][/bold] [cyan]{where}[/cyan] [dim](score {hit.score:.4f})[/dim]")
        console.print(" ".join(hit.text.split())[:600], markup=False, highlight=False)
        console.print()


def register(app: typer.Typer) -> None:
    """Add `index build|status` and `search` to the main CLI."""
    app.add_typer(index_app, name="index")
    app.command("search", cls=Command)(search)  # its typed errors: exit 2 on any app
