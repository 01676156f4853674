"""OpenAI-compatible chat completions over the tutor: `POST /v1/chat/completions`, `GET /v1/models`.

    from openai import OpenAI
    client = OpenAI(base_url="http://localhost:8000/v1", api_key="llt_…")   # the learner's key
    client.chat.completions.create(model="llmtutor-socratic_coach", messages=[...], stream=True)

One model per persona (`llmtutor-<persona>`; plain `llmtutor` is the default persona). The
conversation maps to a tutor thread (ui/http/conversations.py): a client that resends the whole
history continues its thread. Tool results are part of the content (the tutor's answer holds the
tables and figures it read). An expensive tool answers with its plan; the learner's next message
"yes" (or "no") approves (or declines) it in the same conversation, as in the tutor's own chat.

Sampling fields (temperature, top_p, max_tokens, …) are accepted and ignored: the persona and the
tutor's grounding decide what is said. `usage` counts are estimates (words and CJK characters of
the text shown): the answer is composed from tool results and passages, not all generated.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.errors import ToolInputError
from llmtutor.ui.http import conversations

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor, TutorEvent

MODEL_PREFIX = "llmtutor"
_YES = re.compile(
    r"^\s*(?:y|yes|yep|ok|okay|sure|approve[d]?|go(?: ahead)?|run it|do it|是|好|好的|可以|批准|确认|运行吧?)\s*[.!。！]*\s*$",
    re.I,
)
_NO = re.compile(
    r"^\s*(?:n|no|nope|cancel|decline|stop|don'?t|否|不|不要|取消|拒绝|算了)\s*[.!。！]*\s*$", re.I
)


class UnknownModelError(ToolInputError):
    """The request names a model that is no persona of this tutor (HTTP 404 model_not_found)."""


class ChatMessage(BaseModel):
    # Clients add fields of their own (name, tool_call_id, …): kept out of the tutor's way.
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    # OpenAI clients send many sampling fields (temperature, top_p, n, seed, …): accepted, unused.
    model_config = ConfigDict(extra="ignore")
    model: str = Field(max_length=128)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: StreamOptions | None = None


def text_of(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    parts = message.content or []
    return "\n".join(str(p.get("text", "")) for p in parts if p.get("type") in ("text", "input_text"))


def approx_tokens(text: str) -> int:
    """Words plus CJK characters: an estimate of tokens for `usage` (see the module's note)."""
    return len(re.findall(r"[\u3400-\u9fff]|[^\s\u3400-\u9fff]+", text))


def persona_of(tutor: Tutor, model: str) -> str:
    name = model.strip()
    if name == MODEL_PREFIX:
        return tutor.settings.persona
    if name.startswith(MODEL_PREFIX + "-") and name[len(MODEL_PREFIX) + 1 :] in tutor.personas:
        return name[len(MODEL_PREFIX) + 1 :]
    known = ", ".join(model_ids(tutor))
    raise UnknownModelError(
        f"no model {name[:64]!r} here; the models are {known}", "GET /v1/models lists them"
    )


def model_ids(tutor: Tutor) -> list[str]:
    return [MODEL_PREFIX] + [f"{MODEL_PREFIX}-{name}" for name in sorted(tutor.personas)]


class Turn(BaseModel):
    """What one request asks of the tutor, and where its answer will be remembered."""

    model_config = ConfigDict(extra="forbid")
    shown: str  # the thread id the learner's conversation has
    persona: str
    text: str  # the last user message
    history: list[tuple[str, str]]  # user/assistant turns before it (the conversation's key)
    approval: bool | None = None  # an answer to a pending plan: approve / decline


def plan_turn(tutor: Tutor, request: ChatCompletionRequest, learner_id: str) -> Turn:
    persona = persona_of(tutor, request.model)
    turns = [(m.role, text_of(m)) for m in request.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user":
        raise ToolInputError("the last message must be the learner's (role user)", "end `messages` with it")
    history, text = turns[:-1], turns[-1][1]
    key = conversation_key(learner_id, persona, history)
    shown = (history and conversations.find_thread(tutor.settings.database, key, learner_id)) or (
        "oai-" + uuid.uuid4().hex[:12]
    )
    return Turn(shown=shown, persona=persona, text=text, history=history)


def conversation_key(learner_id: str, persona: str, turns: list[tuple[str, str]]) -> str:
    return conversations.conversation_key(learner_id, persona, turns)


def turn_events(tutor: Tutor, turn: Turn, stored: str, learner_id: str) -> Iterator[TutorEvent]:
    """The tutor's events for the turn: a reply to a waiting plan resumes it, anything else is a
    new message (a waiting plan the learner talks past is declined first, as in the chat UI)."""
    if tutor.pending_approval(stored):
        if _YES.match(turn.text) or _NO.match(turn.text):
            yield from tutor.resume(stored, approved=bool(_YES.match(turn.text)))
            return
        yield from tutor.resume(stored, approved=False)
    yield from tutor.stream(turn.text, thread_id=stored, persona=turn.persona, learner_id=learner_id)


def approval_text(data: dict[str, Any]) -> str:
    message = str(data.get("message") or f"{data.get('tool')} needs your approval.")
    zh = bool(re.search(r"[\u4e00-\u9fff]", message))
    hint = "回复“是”运行，或回复“否”取消。" if zh else "Reply **yes** to run it, or **no** to cancel."
    return f"{message}\n\n{hint}"


class Completion:
    """Builds the OpenAI payloads of one answer (a whole response, or stream chunks)."""

    def __init__(self, model: str, prompt: str):
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.model = model
        self.prompt_tokens = approx_tokens(prompt)
        self.text: list[str] = []

    def usage(self) -> dict[str, int]:
        completion = approx_tokens("".join(self.text))
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def chunk(self, delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> dict[str, Any]:
        choices = [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if usage:
            body["usage"] = self.usage()
        return body

    def deltas(self, events: Iterable[TutorEvent]) -> Iterator[str]:
        """The content pieces of the tutor's events, in order (recorded for `usage`)."""
        streamed = False
        for event in events:
            piece = ""
            if event.type == "token":
                piece, streamed = str(event.data.get("text", "")), True
            elif event.type == "answer" and not streamed:
                piece = str(event.data.get("text", ""))
            elif event.type == "approval":
                piece = approval_text(event.data)
            if piece:
                self.text.append(piece)
                yield piece

    def response(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(self.text), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": self.usage(),
        }


def add_routes(
    app: Any,
    tutor: Tutor,
    *,
    learner: Callable[..., Any],
    owned_thread: Callable[[Any, str], str],
    take_turn: Callable[[], None],
    release: Callable[[], None],
    stream_response: Callable[..., Any],
) -> None:
    """Mount the routes on the server's app, with its authentication, thread ownership, turn
    limit and SSE machinery (keep-alive, a disconnect cancels the turn)."""
    from fastapi import Depends

    def remember(turn: Turn, learner_id: str, completion: Completion) -> None:
        answered = [*turn.history, ("user", turn.text), ("assistant", "".join(completion.text))]
        key = conversation_key(learner_id, turn.persona, answered)
        conversations.remember(tutor.settings.database, key, learner_id, turn.shown)

    @app.get("/v1/models")
    def list_models(user: Any = Depends(learner)) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "llmtutor"} for m in model_ids(tutor)
            ],
        }

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatCompletionRequest, user: Any = Depends(learner)):
        turn = plan_turn(tutor, request, user.id)
        stored = owned_thread(user, turn.shown)
        tutor.check_message(turn.text)  # too long or blank: an error before anything runs
        completion = Completion(request.model, turn.text)
        take_turn()
        if not request.stream:
            try:
                for _ in completion.deltas(turn_events(tutor, turn, stored, user.id)):
                    pass
            finally:
                release()
            remember(turn, user.id, completion)
            return completion.response()

        usage = bool(request.stream_options and request.stream_options.include_usage)

        def chunks() -> Iterator[dict[str, Any]]:
            # The order clients rely on: the role, content deltas, the finish reason, usage, [DONE].
            yield completion.chunk({"role": "assistant", "content": ""})
            for piece in completion.deltas(turn_events(tutor, turn, stored, user.id)):
                yield completion.chunk({"content": piece})
            remember(turn, user.id, completion)
            yield completion.chunk({}, finish="stop")
            if usage:
                yield completion.chunk({}, usage=True)

        return stream_response(chunks(), stored, release)
