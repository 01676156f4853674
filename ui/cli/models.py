"""`llmtutor models`: the models the learner made (fine-tuned, merged, exported) and their family tree.

    llmtutor models list [--json]
    llmtutor models tree NAME [--png FILE] [--json]

Mount with ``register(app)``. Only typer is imported at module level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from llmtutor.ui.cli.typed_errors import Group

models_app = typer.Typer(
    help="Models you made: list them and show their family tree.",
    no_args_is_help=True,
    cls=Group,  # typed errors: one line on stderr, exit 2 (also when mounted on another app)
)


def _models_dir() -> Path:
    from llmtutor.settings import Settings

    return Settings().models_dir


@models_app.command("list")
def list_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Registered models: name, kind, path, parents."""
    from llmtutor.model_registry import list_models
    from llmtutor.training.lineage import lineage_of

    models = list_models(_models_dir())
    if as_json:
        typer.echo(json.dumps([m.model_dump() for m in models], ensure_ascii=False, indent=2))
        return
    if not models:
        typer.echo(
            "No models yet: fine-tune, merge or quantize one (e.g. `llmtutor ask 'Fine-tune the model'`)."
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "kind", "made by", "parents", "created", "path")
    for m in models:
        lineage = lineage_of(m)
        table.add_row(
            m.name,
            m.kind,
            str(lineage.get("method", "")),
            ", ".join(map(str, lineage.get("parents", []))),
            m.created_at,
            m.path,
        )
    Console().print(table)


@models_app.command("tree")
def tree_command(
    name: Annotated[str, typer.Argument(help="A registered model name.")],
    png: Annotated[Path | None, typer.Option("--png", help="Also draw the tree into this PNG file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print nodes and edges as JSON.")] = False,
) -> None:
    """The family tree of a model (Mermaid text; --png draws it)."""
    from llmtutor.training.lineage import family_tree, render_png

    tree = family_tree(_models_dir(), name)
    if png is not None:
        render_png(tree, png)
    typer.echo(tree.model_dump_json(indent=2) if as_json else tree.to_mermaid())
    if png is not None and not as_json:
        typer.echo(f"drawn: {png}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
