"""The application server: the tutor and every registered tool over HTTP.
(`llmtutor serve` also mounts the Gradio app at /ui.)

    llmtutor serve --port 8000
    curl -s localhost:8000/tools
    curl -s localhost:8000/tools/estimate_memory -d '{"model": "7B", "mode": "qlora"}' -H 'content-type: application/json'
    curl -N localhost:8000/chat/stream -d '{"message": "Compare greedy and beam search"}' -H 'content-type: application/json'

Streams are server-sent events, one `TutorEvent` (type, data) per event.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.errors import (
    LLMTutorError,
    PersonaNotFoundError,
    ToolInputError,
    ToolNotFoundError,
    user_message,
)

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1)
    thread_id: str | None = None
    persona: str | None = None
    approve: bool | None = Field(
        None, description="Approve (true) or decline (false) expensive tools up front."
    )


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approved: bool


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1)
    persona: str | None = None


def _status(exc: LLMTutorError) -> int:
    if isinstance(exc, ToolNotFoundError | PersonaNotFoundError):
        return 404
    if isinstance(exc, ToolInputError):
        return 422
    return 400


def create_app(tutor: Tutor | None = None):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    from llmtutor.agents.tutor import Tutor, new_thread_id

    tutor = tutor or Tutor()
    app = FastAPI(title="llmtutor", version="0.1.0")

    @app.exception_handler(LLMTutorError)
    async def tutor_error(_: Request, exc: LLMTutorError):
        return JSONResponse({"error": user_message(exc)}, status_code=_status(exc))

    def sse(events) -> StreamingResponse:
        def body():
            for event in events:
                yield f"event: {event.type}\ndata: {json.dumps(event.data, ensure_ascii=False, default=str)}\n\n"

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
        return sse(
            tutor.stream(
                request.message, thread_id=thread_id, persona=request.persona, approve=request.approve
            )
        )

    @app.post("/threads/{thread_id}/resume")
    def resume(thread_id: str, request: ResumeRequest):
        return sse(tutor.resume(thread_id, request.approved))

    @app.get("/threads/{thread_id}")
    def thread(thread_id: str) -> dict[str, Any]:
        messages = tutor.history(thread_id)
        return {
            "thread_id": thread_id,
            "messages": [{"type": m.type, "content": m.content} for m in messages],
        }

    return app
