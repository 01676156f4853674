"""Tutor events folded into the chat's messages.

A tool's result is the assistant's message itself (tables, eval cards, plots at full width); the
tool call is a small collapsible detail whose title shows the progress while it runs; the answer
after it streams as its own message. Cited answers get a collapsible list of their sources
(numbered, module › section, a passage preview, the course link). What the learner typed is shown
as text, never as HTML."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from llmtutor.paths import for_display
from llmtutor.text import clean_display_text, detect_language
from llmtutor.ui.gradio_jobs import EtaTracker, duration, progress_line
from llmtutor.ui.gradio_startup import WAITING

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor, TutorEvent
    from llmtutor.ui.gradio_startup import IndexWarmup

Message = dict[str, Any]
SHOWN_CHARS = 4000  # a longer message is refused anyway; its echo need not fill the screen
SOURCES = {"en": "Sources", "zh": "来源"}
STOPPED = {"en": "⏹ Stopped.", "zh": "⏹ 已停止。"}
_JOB = re.compile(r"^job (\w+) started \((\w+)\)")


def user_bubble(text: str) -> Message:
    """The learner's message as typed: `<img onerror=…>` shows as those characters (HTML-escaped
    before Markdown renders it), not as an element."""
    shown = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + " …"
    return {"role": "user", "content": html.escape(shown, quote=False)}


def tool_detail(data: dict[str, Any], status: str, note: str = "") -> Message:
    """The tool call as a collapsed detail: its name (and progress or time) in the title, the
    exact arguments inside."""
    args = json.dumps(data.get("args") or {}, ensure_ascii=False, indent=1)
    title = f"🛠 {data.get('tool')}" + (f" · {note}" if note else "")
    return {
        "role": "assistant",
        "content": f"```json\n{args}\n```",
        "metadata": {"title": title, "status": status},
    }


def sources_detail(citations: list[dict[str, Any]], language: str) -> Message | None:
    """The cited passages, numbered as in the answer, each with a preview and the course link."""
    if not citations:
        return None
    items = []
    for c in citations:
        label = c.get("label") or c.get("heading") or c.get("source") or ""
        preview = " ".join(str(c.get("text", "")).split())
        preview = preview if len(preview) <= 300 else preview[:300].rsplit(" ", 1)[0] + " …"
        items.append(f"**[{c.get('n')}] {label}**\n\n> {preview}")
    return {
        "role": "assistant",
        "content": clean_display_text("\n\n".join(items)),
        "metadata": {"title": f"📚 {SOURCES.get(language, 'Sources')} ({len(citations)})", "status": "done"},
    }


def in_front(run: dict[str, Any]) -> bool:
    """A lab result is shown as it is, before its explanation; a search's passages, a quiz turn and
    an error are the answer's business (cited, final or explained)."""
    return bool(run.get("markdown")) and not (
        run.get("error") or run.get("final") or run.get("citations") or run.get("found") is False
    )


def _visible(streamed: str, front: str | None) -> str:
    """What to show of the streamed answer: after a result in front, the explanation only (the
    answer's text repeats the result first)."""
    if front is None:
        return streamed
    if streamed.startswith(front):
        return streamed[len(front) :].lstrip()
    return "" if front.startswith(streamed) else streamed


def quiz_parts(text: str, run: dict[str, Any] | None) -> list[str]:
    """A graded answer and the next question as two messages, so the grade is not pushed away by
    the question under it."""
    output = (run or {}).get("output") or {}
    question, feedback = output.get("question"), output.get("feedback")
    if not (run and run.get("tool") == "quiz" and question and feedback):
        return [text]
    n, total = question.get("number"), question.get("total")
    for head in (f"**Question {n} of {total}**", f"**第 {n} 题 / 共 {total} 题**"):
        at = text.find(head)
        if at > 0:
            return [text[:at].strip(), text[at:].strip()]
    return [text]


def _language(history: list[Message]) -> str:
    said = next((m["content"] for m in reversed(history) if m.get("role") == "user"), "")
    return detect_language(html.unescape(str(said))[:2000])


def _progress_note(data: dict[str, Any], tracker: EtaTracker) -> str:
    match = _JOB.match(str(data.get("message", "")))
    if data.get("stage") == "job" and match:
        return f"job {match.group(1)} ({match.group(2)}) started · follow it in the Jobs tab"
    return progress_line(data, tracker.eta("chat", data))


def apply_events(
    tutor: Tutor,
    events: Iterable[TutorEvent],
    history: list[Message],
    warmup: IndexWarmup | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[list[Message], dict[str, Any] | None, str | None]]:
    """Fold tutor events into chat messages; yields (history, pending approval, latest plot)."""
    pending: dict[str, Any] | None = None
    plot: str | None = None
    step: int | None = None  # the running tool's detail
    front: str | None = None  # a result shown in front: the answer repeats it, then explains it
    run: dict[str, Any] | None = None
    answer_at: int | None = None
    streamed = ""
    tracker, started = EtaTracker(), time.monotonic()
    for event in events:
        data = event.data
        if event.type == "tool_start":
            history.append(tool_detail(data, "pending"))
            step, started = len(history) - 1, time.monotonic()
            if warmup is not None and warmup.needed_by(data.get("tool")):
                history[step]["metadata"]["title"] = f"🛠 {data.get('tool')} · {WAITING[_language(history)]}"
                yield history, pending, plot
                while not warmup.wait(0.5):  # the course question waits for the index being prepared
                    if cancel is not None and cancel.is_set():
                        history[step]["metadata"].update(
                            title=f"🛠 {data.get('tool')} · stopped", status="done"
                        )
                        history.append({"role": "assistant", "content": STOPPED[_language(history)]})
                        yield history, pending, plot
                        return  # closing the stream: the search never starts
                history[step]["metadata"]["title"] = f"🛠 {data.get('tool')}"
        elif event.type == "progress" and step is not None:
            note = _progress_note(data, tracker)
            history[step]["metadata"]["title"] = f"🛠 {data.get('tool') or ''} · {note}".replace("🛠  · ", "🛠 ")
        elif event.type == "tool_result":
            run = data
            detail = tool_detail(
                data, "done", duration(time.monotonic() - started) if step is not None else ""
            )
            if step is not None:
                history[step] = detail
            else:
                history.append(detail)
            step = None
            if in_front(data):
                front = data["markdown"]
                history.append({"role": "assistant", "content": clean_display_text(front)})
            for image in data.get("images", []):
                shown = for_display(image, tutor.settings.workspace)
                if shown is not None:
                    plot = str(shown)
                    history.append({"role": "assistant", "content": {"path": plot}})
        elif event.type == "token":
            streamed += data["text"]
            text = clean_display_text(_visible(streamed, front))
            if text:
                answer_at = len(history) if answer_at is None else answer_at
                del history[answer_at:]  # the answer so far, as one message (or a grade and a question)
                history.extend(
                    {"role": "assistant", "content": part} for part in quiz_parts(text, run) if part
                )
        elif event.type == "answer":
            text = clean_display_text(data.get("explanation", "") if front is not None else data["text"])
            parts = [p for p in quiz_parts(text, run) if p]
            if answer_at is not None:
                del history[answer_at:]  # the streamed text, replaced by the final one (same text)
            history.extend({"role": "assistant", "content": part} for part in parts)
            sources = sources_detail(data.get("citations") or [], _language(history))
            if sources is not None:
                history.append(sources)
        elif event.type == "approval":
            pending = data
            history.append(approval_message(data))
        yield history, pending, plot


def approval_message(pending: dict[str, Any]) -> Message:
    args = json.dumps(pending.get("args", {}), ensure_ascii=False)
    return {
        "role": "assistant",
        "content": f"{clean_display_text(str(pending.get('message', '')))}\n\n`{args}`",
        "metadata": {"title": "⏸ Waiting for your approval"},
    }


def messages_from_history(messages: Iterable[Any]) -> list[Message]:
    """A stored conversation (the tutor's checkpointed messages) as chat messages: the learner's
    messages, each tool call as its detail, each answer with its sources. The tool's own message
    is left out: the answer after it repeats the result."""
    shown: list[Message] = []
    for message in messages:
        content = message.content if isinstance(message.content, str) else str(message.content)
        if message.type == "human":
            shown.append(user_bubble(content))
        elif message.type == "ai":
            for call in getattr(message, "tool_calls", None) or []:
                shown.append(tool_detail({"tool": call["name"], "args": call.get("args")}, "done"))
            if content:
                shown.append({"role": "assistant", "content": clean_display_text(content)})
                cited = (message.response_metadata or {}).get("citations") or []
                sources = sources_detail(cited, detect_language(content[:2000]))
                if sources is not None:
                    shown.append(sources)
    return shown
