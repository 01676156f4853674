"""`llmtutor lab`: run a whole lab pipeline from a recipe.

    llmtutor lab run [RECIPE.yaml] [--force] [--json]   # default: the bundled course recipe
    llmtutor lab recipe                                   # print the bundled recipe to start your own

Mount with ``register(app)``. Only typer is imported at module level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from llmtutor.ui.cli.typed_errors import Group

lab_app = typer.Typer(
    help="Lab pipelines: fine-tune → merge → quantize → evaluate, from a recipe.",
    no_args_is_help=True,
    cls=Group,  # typed errors: one line on stderr, exit 2 (also when mounted on another app)
)


@lab_app.command("run")
def run_command(
    recipe: Annotated[
        Path | None, typer.Argument(help="Recipe YAML (default: the bundled course lab).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Run every step again, even those already done.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run the recipe's steps as jobs; a failed step stops it, a re-run skips finished steps."""
    from rich.console import Console

    from llmtutor.agents.lab_pipeline import load_recipe, run_pipeline
    from llmtutor.settings import Settings
    from llmtutor.tools.registry import ToolContext, default_registry

    settings = Settings()
    console = Console(stderr=as_json)
    ctx = ToolContext(
        workspace=settings.ensure_workspace(),
        device=settings.device,
        allowed_dirs=tuple(settings.allowed_dirs),
        database_url=settings.database_url,
    )
    ctx.progress = lambda e: console.print(
        f"[dim]… {e.stage} {e.step or ''}/{e.total or ''} {e.message}[/dim]"
    )
    result = run_pipeline(load_recipe(recipe), default_registry(), ctx, force=force)
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), ensure_ascii=False))
    else:
        from rich.markdown import Markdown

        console.print(Markdown(result.to_markdown()))
    if result.status != "succeeded":
        raise typer.Exit(1)


@lab_app.command("recipe")
def recipe_command() -> None:
    """Print the bundled recipe (copy it to write your own)."""
    from llmtutor.agents.lab_pipeline import BUNDLED_RECIPE

    typer.echo(BUNDLED_RECIPE.read_text(encoding="utf-8"))


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")
