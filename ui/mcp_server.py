"""Every registered tool as an MCP tool: stdio (`llmtutor mcp`, for desktop clients) and
streamable HTTP (`/mcp` on `llmtutor serve`, with the learner's key).

Schemas come from the same tool definitions as the CLI and HTTP API (the input model's JSON
schema; `readOnlyHint` from the `writes` flag). A long tool reports progress notifications when
the client sends a progress token. An expensive tool runs only through an approved plan, on every
transport: the first call answers with the plan and an `approval_id` (nothing runs), and the same
call with that id, from the same learner, runs it once; agents must show the plan to their user.

mcp 1.x, not 2.x: Gradio's `mcp` extra pins `mcp<2`, and one environment must be able to hold
both (Gradio's own MCP server and this one); the low-level `Server` API used here is in both.
"""

from __future__ import annotations

import base64
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtutor.errors import AuthenticationError, LLMTutorError, user_message
from llmtutor.ui.approvals import Approvals, tool_plan
from llmtutor.users import LOCAL_USER, User, authenticate, has_users

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor

APPROVAL_FIELD = "approval_id"
USER_KEY = "llmtutor.user"  # where the HTTP endpoint leaves the authenticated learner in the scope


def input_schema(spec: Any) -> dict[str, Any]:
    schema = spec.input_model.model_json_schema()
    if spec.expensive:
        schema.setdefault("properties", {})[APPROVAL_FIELD] = {
            "type": "string",
            "description": "Leave out to get the plan; send the approval_id it gave, with the same "
            "arguments, once the user approved the plan.",
        }
    return schema


def build_server(tutor: Tutor, approvals: Approvals, user_of: Callable[[Any], User]):
    """A low-level MCP server over the tutor's registry; `user_of(request_context)` is the caller."""
    import anyio
    import mcp.types as types
    from mcp.server.lowlevel import Server

    from llmtutor.tools.registry import output_images, render_markdown

    server = Server("llmtutor", instructions="Tools of the LLM Course tutor: course answers and real labs.")

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return [
            types.Tool(
                name=spec.name,
                description=spec.description
                + (" Expensive: the first call returns a plan to approve." if spec.expensive else ""),
                inputSchema=input_schema(spec),
                annotations=types.ToolAnnotations(
                    readOnlyHint=not spec.writes, destructiveHint=False, openWorldHint=False
                ),
            )
            for spec in tutor.registry
        ]

    def text(body: str, error: bool = False, data: dict[str, Any] | None = None) -> types.CallToolResult:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=body)], structuredContent=data, isError=error
        )

    def needs_approval(user: User, name: str, args: dict[str, Any]) -> types.CallToolResult:
        plan = tool_plan(tutor, name, args, user.id)
        approval_id = approvals.issue(user.id, name, args)
        how = (
            f"Nothing has run. Show this plan to the user; if they approve, call `{name}` again with "
            f'the same arguments and "{APPROVAL_FIELD}": "{approval_id}".'
        )
        data = {"status": "needs_approval", "tool": name, "plan": plan, APPROVAL_FIELD: approval_id}
        return text(f"{plan}\n\n{how}", data=data)

    @server.call_tool(validate_input=False)  # the tool's own model validates, with typed errors
    async def call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        context = server.request_context
        try:
            user = user_of(context)
            args = dict(arguments or {})
            approval_id = args.pop(APPROVAL_FIELD, None)
            spec = tutor.registry.get(name)
            if spec.expensive:
                if approval_id is None:
                    return needs_approval(user, name, args)
                if not approvals.redeem(str(approval_id), user.id, name, args):
                    return text(
                        "That approval_id is unknown, expired, already used, or for other arguments: "
                        f"call {name} without it to get a new plan.",
                        error=True,
                    )
            token = context.meta.progressToken if context.meta else None
            session = context.session

            def progress(event: Any) -> None:
                if token is None:
                    return
                step = float(event.step or 0)
                message = " ".join(filter(None, [event.stage, event.message]))
                total = float(event.total) if event.total else None
                # related to this request: on HTTP it travels on the call's own response stream
                anyio.from_thread.run(
                    functools.partial(
                        session.send_progress_notification,
                        token,
                        step,
                        total,
                        message,
                        related_request_id=str(context.request_id),
                    )
                )

            output = await anyio.to_thread.run_sync(
                lambda: tutor.run_tool(name, args, progress=progress, learner_id=user.id)
            )
        except LLMTutorError as exc:
            return text(user_message(exc), error=True)
        content: list[Any] = [types.TextContent(type="text", text=render_markdown(output))]
        for image in output_images(output):
            if Path(image).suffix.lower() == ".png" and Path(image).is_file():
                data = base64.b64encode(Path(image).read_bytes()).decode("ascii")
                content.append(types.ImageContent(type="image", data=data, mimeType="image/png"))
        return types.CallToolResult(content=content, structuredContent=output.model_dump(mode="json"))

    return server


def run_stdio(tutor: Tutor) -> None:
    """Serve on stdin/stdout as the local learner. Anything else the process prints (libraries,
    llama.cpp) goes to stderr: stdout carries only the protocol."""
    import io

    import anyio
    from mcp.server.stdio import stdio_server

    protocol_fd = os.dup(1)
    os.dup2(2, 1)  # fd 1 (C libraries' printf included) now writes to stderr
    sys.stdout = sys.stderr
    out = anyio.wrap_file(io.TextIOWrapper(os.fdopen(protocol_fd, "wb", buffering=0), encoding="utf-8"))
    server = build_server(tutor, Approvals(), lambda _: LOCAL_USER)

    async def main() -> None:
        async with stdio_server(stdout=out) as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)


class HttpEndpoint:
    """`/mcp` on the application server: the learner's key (401 otherwise), then the MCP
    streamable-HTTP transport. Stateless, so several server processes can share the load."""

    def __init__(self, tutor: Tutor, approvals: Approvals):
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        self.users_db = tutor.settings.database  # users.sqlite, or Postgres
        server = build_server(tutor, approvals, self._user)
        self.manager = StreamableHTTPSessionManager(app=server, stateless=True)

    @staticmethod
    def _user(context: Any) -> User:
        request = getattr(context, "request", None)
        user = request.scope.get(USER_KEY) if request is not None else None
        if user is None:
            raise AuthenticationError("no learner for this MCP request", "send Authorization: Bearer KEY")
        return user

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from starlette.responses import JSONResponse

        try:
            scope[USER_KEY] = self.authenticate(scope)
        except AuthenticationError as exc:
            body = {"error": {"code": "unauthorized", "message": exc.message, "hint": exc.hint}}
            await JSONResponse(body, 401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)

    def authenticate(self, scope: dict[str, Any]) -> User:
        if not has_users(self.users_db):
            return LOCAL_USER
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, key = header.partition(" ")
        return authenticate(self.users_db, key.strip() if scheme.lower() == "bearer" else None)


def mount(app: Any, tutor: Tutor, approvals: Approvals) -> None:
    """Serve `/mcp` on the FastAPI app; its session manager runs for the app's lifetime."""
    from contextlib import asynccontextmanager

    from starlette.routing import Route

    endpoint = HttpEndpoint(tutor, approvals)
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any):
        async with endpoint.manager.run(), previous(application) as state:
            yield state

    app.router.lifespan_context = lifespan
    app.router.routes.append(Route("/mcp", endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
