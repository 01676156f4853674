"""The application server: the tutor and every registered tool over HTTP.
(`llmtutor serve` also mounts the Gradio app at /ui.)

    llmtutor serve --port 8000
    curl -s localhost:8000/tools
    curl -s localhost:8000/tools/estimate_memory -d '{"model": "7B", "mode": "qlora"}' -H 'content-type: application/json'
    curl -N localhost:8000/chat/stream -d '{"message": "Compare greedy and beam search"}' -H 'content-type: application/json'

Streams are server-sent events, one `TutorEvent` (type, data) per event; an error after the
stream started is an `error` event with the same body as an HTTP error. Every error is
`{"error": {"code", "message", "hint"}}` (ui/http/errors.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.errors import LLMTutorError
from llmtutor.ui.http.errors import (
    BadJSONError,
    error_body,
    log,
    parse_strict_json,
    typed_error,
    validation_message,
)

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor


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
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    from llmtutor.agents.tutor import Tutor, new_thread_id

    tutor = tutor or Tutor()
    app = FastAPI(title="llmtutor", version="0.1.0")
    app.add_middleware(BodyGuard, max_bytes=tutor.settings.max_request_bytes)

    @app.exception_handler(LLMTutorError)
    async def tutor_error(_: Request, exc: LLMTutorError):
        status, payload = typed_error(exc)
        return JSONResponse(payload, status_code=status)

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

    def sse(events) -> StreamingResponse:
        def body():
            try:
                for event in events:
                    data = json.dumps(event.data, ensure_ascii=False, default=str)
                    yield f"event: {event.type}\ndata: {data}\n\n"
            except LLMTutorError as exc:  # the stream has started: the error becomes its last event
                yield f"event: error\ndata: {json.dumps(typed_error(exc)[1], ensure_ascii=False)}\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "tools": tutor.registry.names(), "personas": sorted(tutor.personas)}

    @app.get("/tools")
    def list_tools() -> list[dict[str, Any]]:
        return [tool.summary() for tool in tutor.registry]

    # Plain `def` handlers run in FastAPI's thread pool: tools and models block.
    @app.post("/tools/{name}")
    def run_tool(name: str, args: dict[str, Any]) -> dict[str, Any]:
        from llmtutor.tools.registry import output_images, render_markdown

        output = tutor.run_tool(name, args)
        return {
            "output": output.model_dump(mode="json"),
            "markdown": render_markdown(output),
            "images": output_images(output),
        }

    @app.post("/plan")
    def plan(request: PlanRequest) -> dict[str, Any]:
        return tutor.plan(request.message, persona=request.persona).model_dump(mode="json")

    @app.post("/ask")
    def ask(request: ChatRequest) -> dict[str, Any]:
        reply = tutor.ask(
            request.message, thread_id=request.thread_id, persona=request.persona, approve=request.approve
        )
        return reply.model_dump(mode="json")

    @app.post("/chat/stream")
    def chat_stream(request: ChatRequest):
        thread_id = request.thread_id or new_thread_id()
        tutor.persona(request.persona)  # fail before the stream starts
        tutor.check_message(request.message)
        return sse(
            tutor.stream(
                request.message, thread_id=thread_id, persona=request.persona, approve=request.approve
            )
        )

    @app.post("/threads/{thread_id}/resume")
    def resume(thread_id: str, request: ResumeRequest):
        tutor.require_pending(thread_id)  # a 409 before the stream starts
        return sse(tutor.resume(thread_id, request.approved))

    @app.get("/threads/{thread_id}")
    def thread(thread_id: str) -> dict[str, Any]:
        messages = tutor.history(thread_id)
        return {
            "thread_id": thread_id,
            "messages": [{"type": m.type, "content": m.content} for m in messages],
        }

    return app
