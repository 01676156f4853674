"""`llmtutor mcp`: every tool over MCP on stdin/stdout, for desktop clients and other agents."""

from __future__ import annotations

import typer


def mcp() -> None:
    """Serve every tool over MCP on stdin/stdout (Claude Desktop, Cursor, other agents).

    Expensive tools answer with a plan and an approval_id first; the same call with that id runs
    them. The HTTP server offers the same at /mcp (with the learner's key)."""
    from llmtutor.agents.tutor import Tutor
    from llmtutor.settings import Settings
    from llmtutor.ui.mcp_server import run_stdio

    run_stdio(Tutor(Settings()))


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
