"""Server-sent events over a turn's blocking event iterator (sse-starlette).

A keep-alive comment every 15 s. A client that goes away cancels the turn at once: its
conversation's cancel event stops the model's generation (and a tool at its next check), and the
turn's iterator is closed, so no further graph step runs for it. The tutor's own stream and the
OpenAI-compatible one share this; each renders its items its own way.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from llmtutor.errors import LLMTutorError

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor

Message = dict[str, Any]  # what sse-starlette sends: {"event"?, "data"}


def sse_response(
    tutor: Tutor,
    items: Iterable[Any],
    render: Callable[[Any], Message],
    on_error: Callable[[LLMTutorError], list[Message]],
    *,
    stored: str | None = None,
    release: Callable[[], None] | None = None,
    closing: Iterable[Message] = (),
):
    """`render` turns each item into an SSE message; a typed error after the stream started
    becomes `on_error`'s messages; `closing` follows a stream that ended normally."""
    import anyio
    from sse_starlette.sse import EventSourceResponse
    from starlette.background import BackgroundTask

    done = object()

    async def body():
        iterator = iter(items)
        left = threading.Event()  # the stream ended (or its client left)

        def close() -> None:
            # ValueError: a step is still running in another thread; `step` closes after it
            with contextlib.suppress(ValueError):
                getattr(iterator, "close", lambda: None)()

        def step() -> Any:
            try:
                return next(iterator, done)
            finally:
                if left.is_set():  # the client left while this step ran
                    close()

        try:
            # abandon_on_cancel: a client that leaves ends this body now, not after the running
            # step (which the cancel below cuts short)
            while (item := await anyio.to_thread.run_sync(step, abandon_on_cancel=True)) is not done:
                yield render(item)
            for message in closing:
                yield message
        except LLMTutorError as exc:  # the stream has started: the error becomes its last message
            for message in on_error(exc):
                yield message
        finally:
            left.set()
            give_back()
            if stored:  # the client left (or the turn ended): stop this conversation's turn
                tutor.cancel(stored)
            # Shielded: after a disconnect this scope is cancelled, and the close must still run
            # (in a thread: it waits for the graph's running node, which the cancel ends).
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close)

    # The turn's place is given back once: when the stream ends, or after the response if the
    # body never ran (a client gone before the first byte).
    once = threading.Lock()

    def give_back() -> None:
        if release is not None and once.acquire(blocking=False):
            release()

    return EventSourceResponse(body(), ping=15, sep="\n", background=BackgroundTask(give_back))
