"""The `llmtutor` command line. Heavy imports happen inside commands so that
`llmtutor --help` stays fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmtutor.errors import LLMTutorError, user_message
from llmtutor.ui.cli.batch import read_jsonl_field
from llmtutor.ui.cli.typed_errors import Group

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor, TutorEvent

app = typer.Typer(
    help="llmtutor: a tutor for the LLM Course that runs the labs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,  # every command's LLMTutorError: one line on stderr, exit 2
)
tools_app = typer.Typer(help="List and run tools directly.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
ollama_app = typer.Typer(help="Manage models on an Ollama server (LLMTUTOR_BASE_URL).", no_args_is_help=True)
app.add_typer(ollama_app, name="ollama")

PersonaOpt = Annotated[
    str | None, typer.Option("--persona", "-p", help="Persona name (see `llmtutor personas`).")
]
ThreadOpt = Annotated[str | None, typer.Option("--thread", "-t", help="Conversation id to resume or create.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Approve expensive tools without asking.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _console():
    from rich.console import Console

    return Console()


def _tutor() -> Tutor:
    from llmtutor.agents.tutor import Tutor

    return Tutor()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, default=str))


# ----- chat / ask -------------------------------------------------------------
def _render_turn(tutor: Tutor, events, console, yes: bool, interactive: bool) -> None:
    """Print a turn's events; ask y/N at an approval (or approve with --yes)."""
    from rich.markdown import Markdown
    from rich.panel import Panel

    while True:
        pending: TutorEvent | None = None
        streamed = tool_shown = False
        for event in events:
            if event.type == "tool_start":
                console.print(
                    f"[dim]▶ running {event.data['tool']} {json.dumps(event.data.get('args', {}), ensure_ascii=False)}[/dim]"
                )
            elif event.type == "progress":
                step = (
                    f" {event.data.get('step')}/{event.data.get('total')}" if event.data.get("total") else ""
                )
                console.print(
                    f"[dim]  … {event.data.get('stage', '')}{step} {event.data.get('message', '')}[/dim]"
                )
            elif event.type == "tool_result" and event.data.get("final"):
                continue  # the result is the answer itself (a quiz question): printed below
            elif event.type == "tool_result":
                body = event.data.get("markdown") or f"Error: {event.data.get('error')}"
                console.print(Panel(Markdown(body), title=f"🛠 {event.data.get('tool')}", expand=False))
                tool_shown = True
                for image in event.data.get("images", []):
                    console.print(f"[dim]plot: {image}[/dim]")
            elif event.type == "token" and not tool_shown:
                # After a tool result the explanation is checked before it is shown.
                console.print(event.data["text"], end="", markup=False, highlight=False)
                streamed = True
            elif event.type == "answer" and not streamed:
                text = event.data.get("explanation") if tool_shown else event.data["text"]
                if text:
                    console.print(text, markup=False, highlight=False)
            elif event.type == "approval":
                pending = event
        if streamed:
            console.print()
        if pending is None:
            return
        console.print(
            f"[yellow]{pending.data['message']}[/yellow] args: {json.dumps(pending.data['args'], ensure_ascii=False)}"
        )
        approved = yes or (interactive and typer.confirm("Approve?", default=False))
        events = tutor.resume(pending.data["thread_id"], approved)


@app.command()
def chat(persona: PersonaOpt = None, thread: ThreadOpt = None, yes: YesOpt = False) -> None:
    """Interactive chat in the terminal (streaming). /exit quits, /persona NAME switches."""
    from llmtutor.agents.tutor import new_thread_id

    console = _console()
    tutor = _tutor()
    current = tutor.persona(persona)
    thread_id = thread or new_thread_id()
    if thread and tutor.history(thread):
        console.print(f"[dim]resumed thread {thread_id} ({len(tutor.history(thread))} messages)[/dim]")
    console.print(f"[bold]{current.title}[/bold] · thread [cyan]{thread_id}[/cyan] · /exit to quit")
    if current.greeting:
        console.print(current.greeting)
    while True:
        try:
            text = console.input("[bold green]you> [/bold green]").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            break
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text.startswith("/persona"):
            current = tutor.persona(text.split(maxsplit=1)[1] if " " in text else None)
            console.print(f"[dim]persona: {current.name}[/dim]")
            continue
        console.print(f"[bold blue]{current.name}>[/bold blue] ", end="")
        try:
            _render_turn(
                tutor, tutor.stream(text, thread_id=thread_id, persona=current.name), console, yes, True
            )
        except LLMTutorError as exc:
            console.print(user_message(exc), style="red")
    console.print(f"[dim]resume with: llmtutor chat --thread {thread_id}[/dim]")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question or request.")],
    persona: PersonaOpt = None,
    thread: ThreadOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """One turn, headless. Expensive tools need --yes (otherwise they are declined)."""
    tutor = _tutor()
    if as_json:
        reply = tutor.ask(question, thread_id=thread, persona=persona, approve=yes)
        _print_json(reply.model_dump(mode="json"))
    else:
        from llmtutor.agents.tutor import new_thread_id

        thread_id = thread or new_thread_id()
        events = tutor.stream(question, thread_id=thread_id, persona=persona)
        _render_turn(tutor, events, _console(), yes, sys.stdin.isatty())


@app.command()
def plan(
    message: Annotated[str | None, typer.Argument(help="Message to route.")] = None,
    batch: Annotated[
        Path | None, typer.Option("--batch", help="JSONL file with a 'text' field per line.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the routing decision (tool and arguments) without running anything."""
    if (message is None) == (batch is None):
        raise LLMTutorError(
            "give a MESSAGE or --batch FILE", "e.g. llmtutor plan 'How much VRAM for 7B?' --json"
        )
    tutor = _tutor()
    if batch is not None:
        texts = read_jsonl_field(batch, "text")
        for decision in tutor.plan_batch(texts):
            _print_json({"tool": decision.tool, "args": decision.args})
        return
    decision = tutor.plan(message or "")
    if as_json:
        _print_json({"tool": decision.tool, "args": decision.args})
    else:
        typer.echo(
            f"tool: {decision.tool or '(none: answer directly)'}  via {decision.method} "
            f"(confidence {decision.confidence:.2f})"
        )
        typer.echo(f"args: {json.dumps(decision.args, ensure_ascii=False)}")


# ----- tools ------------------------------------------------------------------
@tools_app.command("list")
def tools_list(as_json: JsonOpt = False) -> None:
    """The registered tools with their flags and input fields."""
    from llmtutor.tools.registry import default_registry

    registry = default_registry()
    if as_json:
        _print_json([tool.summary() for tool in registry])
        return
    from rich.table import Table

    table = Table("tool", "flags", "inputs", "description")
    for tool in registry:
        flags = ", ".join(f for f, on in (("expensive", tool.expensive), ("writes", tool.writes)) if on)
        inputs = ", ".join(tool.input_schema().get("properties", {}))
        table.add_row(tool.name, flags or "-", inputs, tool.description)
    _console().print(table)


@tools_app.command("run")
def tools_run(
    name: Annotated[str, typer.Argument(help="Tool name (see `llmtutor tools list`).")],
    args: Annotated[str, typer.Option("--args", help="Arguments as a JSON object.")] = "{}",
    as_json: JsonOpt = False,
) -> None:
    """Run a tool directly with JSON arguments (no approval prompt: you are the approver)."""
    try:
        parsed = json.loads(args)
    except json.JSONDecodeError as exc:
        raise LLMTutorError(
            f"--args is not valid JSON: {exc}", 'pass a JSON object, e.g. --args \'{"model": "7B"}\''
        ) from None
    if not isinstance(parsed, dict):
        raise LLMTutorError("--args must be a JSON object", 'e.g. --args \'{"model": "7B"}\'')
    from llmtutor.settings import Settings
    from llmtutor.tools.registry import ToolContext, default_registry, render_markdown

    settings = Settings()
    console = _console()
    ctx = ToolContext(
        workspace=settings.ensure_workspace(), device=settings.device, database_url=settings.database_url
    )
    if not as_json:
        ctx.progress = lambda e: console.print(
            f"[dim]… {e.stage} {e.step or ''}/{e.total or ''} {e.message}[/dim]"
        )
    output = default_registry().get(name).run(parsed, ctx)
    if as_json:
        _print_json(output.model_dump(mode="json"))
    else:
        from rich.markdown import Markdown

        console.print(Markdown(render_markdown(output)))
    if getattr(output, "status", None) in ("failed", "cancelled", "interrupted"):
        raise typer.Exit(1)  # a job that did not succeed is a failed command, for scripts too


# ----- ollama ---------------------------------------------------------------------
def _ollama():
    from llmtutor.backends.ollama import OllamaBackend
    from llmtutor.settings import Settings

    settings = Settings()
    return OllamaBackend(settings.chat_model if settings.backend == "ollama" else "", settings.base_url)


@ollama_app.command("list")
def ollama_list(as_json: JsonOpt = False) -> None:
    """Models available on the Ollama server."""
    models = _ollama().list_models()
    if as_json:
        _print_json(models)
        return
    for model in models:
        typer.echo(f"{model.get('name', '?'):40} {model.get('size', 0) / 2**30:6.2f} GiB")


@ollama_app.command("pull")
def ollama_pull(name: Annotated[str, typer.Argument(help="Model tag, e.g. qwen2.5:7b.")]) -> None:
    """Pull a model onto the Ollama server, with progress."""

    def show(event: dict) -> None:
        done, total = event.get("completed"), event.get("total")
        suffix = f" {100 * done / total:5.1f}%" if done and total else ""
        typer.echo(f"{event.get('status', '')}{suffix}")

    _ollama().pull_model(name, on_progress=show)


# ----- personas, doctor, ui, serve ---------------------------------------------
@app.command()
def personas(as_json: JsonOpt = False) -> None:
    """List the personas (add one by adding a YAML file)."""
    from llmtutor.agents.personas import load_personas
    from llmtutor.settings import Settings

    found = load_personas(Settings().personas_dir)
    if as_json:
        _print_json([p.model_dump() for p in found.values()])
        return
    for p in found.values():
        typer.echo(f"{p.name:16} {p.title}: {p.description}")


@app.command()
def doctor(as_json: JsonOpt = False) -> None:
    """Backends reachable, models found, library versions, GPU, and the paths in use."""
    from llmtutor.ui.cli.doctor import run_doctor

    report = run_doctor()
    if as_json:
        _print_json(report)
        return
    from rich.pretty import pprint

    pprint(report, expand_all=True)


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 7860,
    share: Annotated[bool, typer.Option(help="Create a public Gradio share link.")] = False,
) -> None:
    """The Gradio chat app (with learners configured, it asks them to sign in)."""
    from llmtutor.settings import Settings
    from llmtutor.ui.gradio_app import launch
    from llmtutor.users import has_users

    if not share:
        settings = Settings()
        check_bind(host, has_users(settings.database), settings.public_demo)

    launch(host=host, port=port, share=share)


def check_bind(host: str, shared: bool, public_demo: bool = False) -> None:
    """A server other machines can reach needs learners with keys: refuse to open it without."""
    import ipaddress

    from llmtutor.errors import ConfigError

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not shared and not public_demo:
        raise ConfigError(
            f"refusing to listen on {host}: no learners are configured, so anyone who can reach it "
            "could read every conversation and start jobs",
            "add one with `llmtutor users add NAME` (it prints their API key), bind 127.0.0.1, or "
            "run the public demo (LLMTUTOR_PUBLIC_DEMO=1: tiny jobs only, outputs expire)",
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    with_ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Mount the Gradio app at /ui.")] = True,
) -> None:
    """The HTTP API (tools, plan, ask, streaming chat as server-sent events)."""
    import uvicorn

    from llmtutor.agents.tutor import Tutor
    from llmtutor.ui.http.server import create_app
    from llmtutor.users import has_users

    tutor = Tutor()
    shared = has_users(tutor.settings.database)
    check_bind(host, shared)  # the public demo is the web UI only: the API needs learners
    api = create_app(tutor)
    if with_ui:
        import gradio as gr

        from llmtutor.ui.gradio_app import CSS, allowed_paths, build_app, login

        web = build_app(tutor)
        web.warmup.start()  # the course index in the background: the server listens at once
        api = gr.mount_gradio_app(
            api,
            web,
            path="/ui",
            allowed_paths=allowed_paths(tutor),
            auth=login(tutor.settings.database) if shared else None,  # learners sign in with their key
            css=CSS,
        )
    uvicorn.run(api, host=host, port=port)


def _mount_subcommands() -> None:
    # Each lives in its own module and imports only typer at load time.
    from llmtutor.ui.cli import jobs, knowledge, lab, learner, mcp, models, quiz, sql, users

    for group in (jobs, knowledge, lab, learner, mcp, models, quiz, sql, users):
        group.register(app)


_mount_subcommands()


def main() -> None:
    """The console script. Typed errors are handled inside `app` (see typed_errors.py)."""
    import contextlib

    from llmtutor.settings import Settings

    # Before any command imports the hub libraries; a bad setting is reported by the command.
    with contextlib.suppress(Exception):
        Settings().apply_download_policy()
    app()


if __name__ == "__main__":
    main()
