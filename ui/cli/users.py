"""`llmtutor users add|list|revoke|key`: the learners of a shared server and their API keys.

Keys are printed once and stored hashed (llmtutor/users.py). Only typer is imported at load time.
"""

from __future__ import annotations

from typing import Annotated

import typer

from llmtutor.ui.cli.typed_errors import Group

users_app = typer.Typer(cls=Group, help="Learners and API keys for a shared server.", no_args_is_help=True)


def _db():
    from llmtutor.settings import Settings

    settings = Settings()
    settings.ensure_workspace()
    return settings.database  # users.sqlite, or the users of LLMTUTOR_DATABASE_URL


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Learner name (letters, digits, . _ -).")],
    admin: Annotated[bool, typer.Option("--admin", help="May approve expensive tools for anyone.")] = False,
) -> None:
    """Create a learner and print their API key (shown once)."""
    from llmtutor.users import add_user

    user, key = add_user(_db(), name, admin=admin)
    typer.echo(f"learner {user.name} ({'admin' if user.admin else 'learner'}) created; API key (shown once):")
    typer.echo(key)
    typer.echo("use it as `Authorization: Bearer KEY`")


@users_app.command("key")
def key(name: Annotated[str, typer.Argument()]) -> None:
    """Print a new API key for a learner (their other keys keep working until revoked)."""
    from llmtutor.users import new_key

    typer.echo(new_key(_db(), name))


@users_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The learners (never their keys)."""
    import json

    from llmtutor.users import list_users

    users = list_users(_db())
    if as_json:
        typer.echo(json.dumps([u.model_dump() for u in users], indent=2))
        return
    for u in users:
        flags = ", ".join(f for f, on in (("admin", u.admin), ("revoked", u.revoked)) if on)
        typer.echo(f"{u.name}\t{u.id}\t{u.created_at}" + (f"\t{flags}" if flags else ""))
    if not users:
        typer.echo("no learners: the workspace is single-learner (local only)")


@users_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument()]) -> None:
    """Revoke a learner's access (all keys); their data stays."""
    from llmtutor.users import revoke as revoke_user

    revoke_user(_db(), name)
    typer.echo(f"{name}: access revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
