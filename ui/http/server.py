"""The application server: the tutor and every registered tool over HTTP.
(`llmtutor serve` also mounts the Gradio app at /ui.)

    llmtutor serve --port 8000
    curl -s localhost:8000/tools
    curl -s localhost:8000/tools/estimate_memory -d '{"model": "7B", "mode": "qlora"}' -H 'content-type: application/json'
    curl -N localhost:8000/chat/stream -d '{"message": "Compare greedy and beam search"}' -H 'content-type: application/json'

Streams are server-sent events, one `TutorEvent` (type, data) per event; an error after the
stream started is an `error` event with the same body as an HTTP error. Every error is
`{"error": {"code", "message", "hint"}}` (ui/http/errors.py).

Learners: when the workspace has users (`llmtutor users add NAME`), every route but /health needs
`Authorization: Bearer KEY` (401 otherwise); threads and learner data are the caller's own (another
learner's thread is a 404); an expensive tool called directly answers 202 with its plan and an
approval id, and runs when the same learner sends the id back (`?approval_id=…`; admins may pass
`?approve=true`). Without users the workspace is single-learner and nothing changes.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.errors import LLMTutorError, OverloadedError
from llmtutor.ui.approvals import Approvals, tool_plan
from llmtutor.ui.http.errors import (
    BadJSONError,
    error_body,
    log,
    parse_strict_json,
    typed_error,
    validation_message,
)
from llmtutor.ui.http.openai_api import add_routes as add_openai_routes
from llmtutor.ui.http.streaming import sse_response
from llmtutor.users import User

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor


RETRY_AFTER_S = 5  # what an overloaded server tells clients to wait
ThreadId = Field(None, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
PersonaName = Field(None, max_length=64)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str  # length and blankness are checked by Tutor.check_message, in the learner's language
    thread_id: str | None = ThreadId
    persona: str | None = PersonaName
    approve: bool | None = Field(
        None, description="Approve (true) or decline (false) expensive tools up front."
    )


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approved: bool


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str
    persona: str | None = PersonaName


class BodyGuard:
    """Reads each request body once: at most `max_bytes`, and strict JSON when it is JSON.

    Pure ASGI so the checked body is replayed to the route unchanged. The Gradio app mounted
    under `skip_prefix` has its own upload limits and protocol.
    """

    def __init__(self, app: Any, max_bytes: int, skip_prefix: str = "/ui"):
        self.app, self.max_bytes, self.skip_prefix = app, max_bytes, skip_prefix

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] in ("GET", "HEAD", "OPTIONS")
            or (path == self.skip_prefix or path.startswith(self.skip_prefix + "/"))
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        too_large = error_body(
            "payload_too_large",
            f"the request body is over {self.max_bytes} bytes",
            "send less (LLMTUTOR_MAX_REQUEST_BYTES sets the limit)",
        )
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await _reply(send, 413, too_large)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _reply(send, 413, too_large)
                return
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").lower()
        if body and (not content_type or b"json" in content_type):
            try:
                parse_strict_json(body)
            except BadJSONError as exc:
                await _reply(
                    send,
                    400,
                    error_body("invalid_json", f"the body is not valid JSON ({exc})", "send strict JSON"),
                )
                return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _reply(send: Any, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(tutor: Tutor | None = None):
    from fastapi import Depends, FastAPI, Header, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from llmtutor.agents.tutor import Tutor, new_thread_id
    from llmtutor.errors import ApprovalRequiredError, NotFoundForLearnerError
    from llmtutor.users import LOCAL_USER, authenticate, has_users, owned_thread

    tutor = tutor or Tutor()
    app = FastAPI(title="llmtutor", version="0.1.0")
    app.add_middleware(BodyGuard, max_bytes=tutor.settings.max_request_bytes)
    users_db = tutor.settings.database  # users.sqlite, or Postgres
    approvals = Approvals()
    turns = threading.BoundedSemaphore(tutor.settings.max_concurrent_turns)

    def take_turn() -> None:
        """A place among the turns running now, or 429: a client retries instead of queueing forever."""
        if not turns.acquire(blocking=False):
            raise OverloadedError(
                "the tutor is answering as many learners as it can right now",
                f"try again in {RETRY_AFTER_S} seconds",
            )

    def learner(authorization: str | None = Header(None)) -> User:
        """The caller: the local learner without users, else the owner of the bearer key (401)."""
        if not has_users(users_db):
            return LOCAL_USER
        scheme, _, key = (authorization or "").partition(" ")
        return authenticate(users_db, key.strip() if scheme.lower() == "bearer" else None)

    def multi_user() -> bool:
        return has_users(users_db)

    def own_thread(user: User, thread_id: str) -> str:
        stored = owned_thread(user, thread_id)
        if not tutor.history(stored) and not tutor.pending_approval(stored):
            raise NotFoundForLearnerError(
                f"no conversation {thread_id[:64]!r}", "start one with POST /ask or /chat/stream"
            )
        return stored

    def check_up_front_approval(user: User, approve: bool | None) -> None:
        if approve and multi_user() and not user.admin:
            raise ApprovalRequiredError(
                "approving expensive tools up front is for admins",
                "leave `approve` out: the reply shows the plan; approve it with /threads/{id}/resume",
            )

    @app.exception_handler(LLMTutorError)
    async def tutor_error(_: Request, exc: LLMTutorError):
        status, payload = typed_error(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(exc, OverloadedError):
            headers = {"Retry-After": str(RETRY_AFTER_S)}
        return JSONResponse(payload, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError):
        message = validation_message(list(exc.errors()))
        return JSONResponse(
            error_body("invalid_request", message, "see GET /tools or the README for the fields"), 422
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return JSONResponse(error_body(code, detail), exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception):
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse(
            error_body("internal_error", "the server hit an unexpected error", "see the server's log"), 500
        )

    def sse(events, stored: str | None = None, shown: str | None = None, release=None):
        """The tutor's events as SSE (ui/http/streaming.py: keep-alive, a disconnect cancels)."""

        def render(event: Any) -> dict[str, Any]:
            payload = event.data
            if stored and isinstance(payload, dict) and payload.get("thread_id") == stored:
                payload = {**payload, "thread_id": shown}  # the learner's own id, not the stored one
            return {"event": event.type, "data": json.dumps(payload, ensure_ascii=False, default=str)}

        def on_error(exc: LLMTutorError) -> list[dict[str, Any]]:
            return [{"event": "error", "data": json.dumps(typed_error(exc)[1], ensure_ascii=False)}]

        return sse_response(tutor, events, render, on_error, stored=stored, release=release)

    def openai_stream(chunks, stored: str, release) -> Any:
        """OpenAI chunks as `data:` lines, `[DONE]` last (an error: its body, then `[DONE]`)."""
        done = {"data": "[DONE]"}

        def render(chunk: dict[str, Any]) -> dict[str, Any]:
            return {"data": json.dumps(chunk, ensure_ascii=False)}

        def on_error(exc: LLMTutorError) -> list[dict[str, Any]]:
            return [{"data": json.dumps(typed_error(exc)[1], ensure_ascii=False)}, done]

        return sse_response(tutor, chunks, render, on_error, stored=stored, release=release, closing=[done])

    from llmtutor.ui import mcp_server

    mcp_server.mount(app, tutor, approvals)  # /mcp: every tool over MCP (streamable HTTP)
    add_openai_routes(
        app,
        tutor,
        learner=learner,
        owned_thread=owned_thread,
        take_turn=take_turn,
        release=turns.release,
        stream_response=openai_stream,
    )

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "tools": tutor.registry.names(), "personas": sorted(tutor.personas)}

    @app.get("/tools")
    def list_tools(user: User = Depends(learner)) -> list[dict[str, Any]]:
        return [tool.summary() for tool in tutor.registry]

    # Plain `def` handlers run in FastAPI's thread pool: tools and models block.
    @app.post("/tools/{name}")
    def run_tool(
        name: str,
        args: dict[str, Any],
        approval_id: str | None = None,
        approve: bool = False,
        user: User = Depends(learner),
    ):
        from llmtutor.tools.registry import output_images, render_markdown

        tool = tutor.registry.get(name)
        if tool.expensive and multi_user():
            approved = (approve and user.admin) or (
                approval_id is not None and approvals.redeem(approval_id, user.id, name, args)
            )
            if not approved:
                if approval_id is not None:
                    raise ApprovalRequiredError(
                        "that approval id is unknown, expired, used, or for another request",
                        f"POST /tools/{name} without it to get a new plan",
                    )
                body = {
                    "status": "needs_approval",
                    "tool": name,
                    "plan": tool_plan(tutor, name, args, user.id),
                    "approval_id": approvals.issue(user.id, name, args),
                    "hint": f"send the same request to POST /tools/{name}?approval_id=… to run it",
                }
                return JSONResponse(body, status_code=202)
        output = tutor.run_tool(name, args, learner_id=user.id)
        return {
            "output": output.model_dump(mode="json"),
            "markdown": render_markdown(output),
            "images": output_images(output),
        }

    @app.post("/plan")
    def plan(request: PlanRequest, user: User = Depends(learner)) -> dict[str, Any]:
        return tutor.plan(request.message, persona=request.persona).model_dump(mode="json")

    @app.post("/ask")
    def ask(request: ChatRequest, user: User = Depends(learner)) -> dict[str, Any]:
        check_up_front_approval(user, request.approve)
        shown = request.thread_id or new_thread_id()
        take_turn()
        try:
            reply = tutor.ask(
                request.message,
                thread_id=owned_thread(user, shown),
                persona=request.persona,
                approve=request.approve,
                learner_id=user.id,
            )
        finally:
            turns.release()
        body = reply.model_dump(mode="json")
        body["thread_id"] = shown
        if body.get("pending_approval"):
            body["pending_approval"]["thread_id"] = shown
        return body

    @app.post("/chat/stream")
    def chat_stream(request: ChatRequest, user: User = Depends(learner)):
        check_up_front_approval(user, request.approve)
        shown = request.thread_id or new_thread_id()
        stored = owned_thread(user, shown)
        tutor.persona(request.persona)  # fail before the stream starts
        tutor.check_message(request.message)
        take_turn()
        events = tutor.stream(
            request.message,
            thread_id=stored,
            persona=request.persona,
            approve=request.approve,
            learner_id=user.id,
        )
        return sse(events, stored, shown, release=turns.release)

    @app.post("/threads/{thread_id}/resume")
    def resume(thread_id: str, request: ResumeRequest, user: User = Depends(learner)):
        stored = own_thread(user, thread_id)  # another learner's thread: 404
        tutor.require_pending(stored)  # a 409 before the stream starts
        take_turn()
        return sse(tutor.resume(stored, request.approved), stored, thread_id, release=turns.release)

    @app.get("/threads/{thread_id}")
    def thread(thread_id: str, user: User = Depends(learner)) -> dict[str, Any]:
        messages = tutor.history(own_thread(user, thread_id))
        return {
            "thread_id": thread_id,
            "messages": [{"type": m.type, "content": m.content} for m in messages],
        }

    return app
