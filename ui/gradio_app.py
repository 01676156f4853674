"""The Gradio app: layout and wiring. A chat (welcome screen, persona and model pickers, Send and
Stop, results in front, approvals) with the learner's conversations in a sidebar, and tabs for
their jobs, their datasets, their progress and every tool.

The parts live in their own modules: gradio_chat.py (events → messages), gradio_history.py
(conversations), gradio_jobs.py, gradio_upload.py, gradio_progress.py, gradio_models.py (the
chat model picker), gradio_tools.py (the Tools tab), gradio_startup.py (the course index,
prepared in the background), gradio_welcome.py, gradio_session.py (who the learner is; errors
as text). Every event has an `api_name` or is private to the page (README: gradio_client)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmtutor.errors import LLMTutorError
from llmtutor.paths import display_dir
from llmtutor.ui.gradio_chat import apply_events, user_bubble
from llmtutor.ui.gradio_session import Session, edge_text
from llmtutor.ui.gradio_startup import IndexWarmup
from llmtutor.ui.gradio_welcome import EXAMPLES, welcome_markdown

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor
    from llmtutor.settings import Settings

__all__ = ["CSS", "EXAMPLES", "allowed_paths", "apply_events", "build_app", "launch", "login"]

CSS = """
#index-banner {background: #fff4d6; border: 1px solid #f0c36d; border-radius: 8px; padding: 4px 12px;}
#chat .message img, #chat .message-content img, #chat .image-container img {max-width: 100% !important; width: 100%; height: auto;}
#chat .message table {display: block; overflow-x: auto;}
.jobs-table {width: 100%; border-collapse: collapse;} .jobs-table td, .jobs-table th {padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left;}
.jobs-table progress {width: 110px; vertical-align: middle;}
#chat .message-row:has(img) .flex-wrap, #chat .message-row:has(img) .message {width: 100% !important; max-width: 100% !important;}
#chat .placeholder-content {align-items: flex-start; justify-content: flex-start; overflow-y: auto;}
#chat .placeholder {height: auto !important; display: block !important; padding-top: 28px;}
#send-btn, #stop-btn {min-width: 64px; max-width: 110px;}
"""

# On a phone the sidebar would cover the chat: it starts closed there (its toggle opens it).
CLOSE_SIDEBAR_ON_PHONES = """() => {
  const bar = document.querySelector('#sidebar');
  if (window.innerWidth < 768 && bar && bar.classList.contains('open')) {
    bar.querySelector('.toggle-button')?.click();
  }
}"""


# Runs in the browser as the message is sent (also for a message that waited for the running turn):
# the inputs go on unchanged and the box empties at once, ready for the next message.
CLEAR_BOX_JS = """(...args) => {
  const box = document.querySelector('#message textarea');
  if (box) { box.value = ''; box.dispatchEvent(new Event('input', { bubbles: true })); }
  return args;
}"""


def build_app(
    tutor: Tutor | None = None,
    *,
    warmup: IndexWarmup | None = None,
    make_tutor: Callable[[Settings, Tutor], Tutor] | None = None,
):
    import gradio as gr

    from llmtutor.agents.tutor import Tutor, new_thread_id
    from llmtutor.ui import gradio_history as chats
    from llmtutor.ui.gradio_jobs import jobs_tab
    from llmtutor.ui.gradio_progress import progress_tab
    from llmtutor.ui.gradio_tools import tools_tab
    from llmtutor.ui.gradio_upload import upload_tab

    tutor = tutor or Tutor()
    session = Session(tutor, warmup, make_tutor)
    past = chats.HistoryHandlers(session)
    with_request = session.with_request
    db = tutor.settings.database
    hidden, shown = gr.update(visible=False), gr.update(visible=True)

    def run_turn(
        events_of: Callable[[Tutor, str], Any], said: str, history: list, stored: str, model: str, request
    ):
        """Stream one turn (a message, or an approval's answer) into the chat."""
        user = session.learner(request)
        chosen = session.models.tutor_for(model, user.id)
        cancel = chosen.cancel_event(stored)
        try:
            for hist, pending, _ in apply_events(
                chosen, events_of(chosen, stored), history, session.warmup, cancel
            ):
                yield hist, pending
        except LLMTutorError as exc:
            history.append({"role": "assistant", "content": edge_text(exc, said)})
            yield history, None

    @with_request
    def respond(
        message: str, history: list, persona: str, model: str | None = None, thread_id: str = "", request=None
    ):
        history = list(history or [])
        thread_id = thread_id or new_thread_id()
        if not (message or "").strip():
            yield history, None, thread_id, hidden, gr.update()
            return
        history.append(user_bubble(message))
        # The box is cleared in the browser when the message is sent (CLEAR_BOX_JS), never from
        # here: by the time this runs the learner may already be typing the next message.
        yield history, None, thread_id, hidden, gr.update()
        try:
            user = session.learner(request)
            stored = session.stored(request, thread_id)
            session.models.tutor_for(model, user.id).check_message(message)
            chats.touch(db, user.id, thread_id, message, persona or "")
            turn = run_turn(
                lambda t, s: t.stream(message, thread_id=s, persona=persona, learner_id=user.id),
                message,
                history,
                stored,
                model or "",
                request,
            )
            for hist, pending in turn:
                yield hist, pending, thread_id, shown if pending else hidden, gr.update()
        except LLMTutorError as exc:
            history.append({"role": "assistant", "content": edge_text(exc, message)})
            yield history, None, thread_id, hidden, gr.update()

    def decide(approved: bool):
        @with_request
        def handler(
            history: list, pending: dict | None, thread_id: str, model: str | None = None, request=None
        ):
            history = list(history or [])
            if not pending:
                yield history, None, hidden
                return
            history.append(user_bubble("✅ approved" if approved else "❌ declined"))
            try:
                stored = session.stored(request, thread_id)  # the learner's own thread, whatever was sent
                turn = run_turn(lambda t, s: t.resume(s, approved), "", history, stored, model or "", request)
                for hist, new_pending in turn:
                    yield hist, new_pending, shown if new_pending else hidden
            except LLMTutorError as exc:
                history.append({"role": "assistant", "content": edge_text(exc)})
                yield history, None, hidden

        return handler

    @with_request
    def stop(thread_id: str, request=None) -> None:
        """The turn's tool stops at its next check (a job is cancelled), the model stops writing."""
        with contextlib.suppress(LLMTutorError):  # not signed in: nothing of theirs runs
            session.cancel(session.stored(request, thread_id))

    @with_request
    def model_choices(current: str | None, request=None):
        """The picker's choices again: a job that just finished may have registered a model."""
        try:
            options = session.models.options(session.learner(request).id)
        except LLMTutorError:
            return gr.update()
        return gr.update(choices=options, value=current if current in {k for _, k in options} else "default")

    def greet(persona: str) -> str:
        p = tutor.persona(persona)
        return f"**{p.title}** — {p.description} _“{p.greeting}”_"

    def new_conversation():
        return [], None, new_thread_id(), hidden

    def banner_tick():
        text = session.warmup.banner()
        return gr.update(value=text, visible=bool(text)), gr.Timer(active=bool(text))

    private = {"api_visibility": "private"}
    with gr.Blocks(title="llmtutor") as demo:
        banner = gr.Markdown(
            session.warmup.banner(), visible=bool(session.warmup.banner()), elem_id="index-banner"
        )
        banner_timer = gr.Timer(1.0, active=bool(session.warmup.banner()))
        thread_state = gr.State("")  # set on load (restored or new) and by the first message
        pending_state = gr.State(None)
        last_thread = gr.BrowserState(None, storage_key="llmtutor-last-thread")
        with gr.Sidebar(label="Conversations", open=True, width=260, elem_id="sidebar"):
            new_btn = gr.Button("+ New conversation", variant="secondary", elem_id="new-chat")
            conversations = gr.Radio([], label="Your conversations", elem_id="conversations")
            with gr.Accordion("Rename or delete", open=False):
                title_box = gr.Textbox(label="New title", max_lines=1, elem_id="chat-title")
                with gr.Row():
                    rename_btn = gr.Button("Rename", size="sm", elem_id="chat-rename")
                    delete_btn = gr.Button("Delete", size="sm", variant="stop", elem_id="chat-delete")
        with gr.Tabs(selected="chat") as tabs:
            with gr.Tab("Chat", id="chat") as chat_tab:
                with gr.Row(equal_height=True):
                    persona = gr.Dropdown(
                        sorted(tutor.personas),
                        value=tutor.persona().name,
                        label="Persona",
                        scale=1,
                        min_width=150,
                    )
                    model = gr.Dropdown(
                        session.models.options(None),
                        value="default",
                        label="Chat model",
                        scale=2,
                        min_width=200,
                        elem_id="model-picker",
                    )
                persona_info = gr.Markdown(greet(tutor.persona().name), elem_id="persona-info")
                chatbot = gr.Chatbot(
                    label="Tutor",
                    height="62vh",
                    min_height=360,
                    buttons=["copy"],
                    group_consecutive_messages=False,
                    placeholder=welcome_markdown(tutor),
                    sanitize_html=True,
                    elem_id="chat",
                )
                with gr.Row(visible=False) as approval_row:
                    approve_btn = gr.Button("Approve", variant="primary", elem_id="approve-btn")
                    decline_btn = gr.Button("Decline", variant="stop", elem_id="decline-btn")
                with gr.Row(equal_height=True):
                    box = gr.Textbox(
                        placeholder="Ask about the course, or ask me to run a lab… (/help lists the commands)",
                        label="Message",
                        show_label=False,
                        scale=8,
                        min_width=140,
                        lines=1,
                        max_lines=6,
                        elem_id="message",
                    )
                    send_btn = gr.Button("Send", variant="primary", scale=1, min_width=64, elem_id="send-btn")
                    stop_btn = gr.Button("Stop", variant="stop", scale=1, min_width=64, elem_id="stop-btn")
                gr.Examples(EXAMPLES, inputs=box, label="Examples · 示例", api_visibility="private")
            with gr.Tab("Jobs", id="jobs") as jobs_tab_ui:
                jobs = jobs_tab(session)
            with gr.Tab("Data", id="data"):
                upload = upload_tab(session)
            with gr.Tab("Progress", id="progress") as progress_tab_ui:
                progress = progress_tab(session)
            with gr.Tab("Tools", id="tools"):
                tools_tab(demo, tutor, session.learner, with_request)  # ui/gradio_tools.py: plan → approve

        chat_out = [chatbot, pending_state, thread_state, approval_row, box]
        chat_in = [box, chatbot, persona, model, thread_state]
        listed_out = [conversations, last_thread]
        # One event for Enter and Send: a message sent while a turn runs is sent when it ends
        # ("always_last"), so two turns never write the same chat at the same time.
        gr.on(
            [box.submit, send_btn.click],
            respond,
            chat_in,
            chat_out,
            api_name="respond",
            trigger_mode="always_last",
            js=CLEAR_BOX_JS,
        ).then(past.listing, thread_state, listed_out, show_progress="hidden", **private)
        decided_out = [chatbot, pending_state, approval_row]
        decided_in = [chatbot, pending_state, thread_state, model]
        # An approved tool may follow a job for minutes: no new message meanwhile (Stop ends it).
        for button, approved, name in ((approve_btn, True, "approve"), (decline_btn, False, "decline")):
            button.click(lambda: [gr.update(interactive=False)] * 2, None, [box, send_btn], **private).then(
                decide(approved), decided_in, decided_out, api_name=name
            ).then(lambda: [gr.update(interactive=True)] * 2, None, [box, send_btn], **private).then(
                model_choices, model, model, show_progress="hidden", **private
            )
        stop_btn.click(stop, thread_state, None, api_name="stop", queue=False)

        restored = [chatbot, pending_state, thread_state, approval_row, conversations, model, last_thread]
        demo.load(past.restore, last_thread, restored, show_progress="hidden", **private)
        demo.load(None, None, None, js=CLOSE_SIDEBAR_ON_PHONES, **private)
        new_btn.click(new_conversation, None, chat_out[:4], **private).then(
            past.listing, thread_state, listed_out, **private
        )
        conversations.input(past.open_chat, conversations, [*chat_out[:4], last_thread], **private)
        rename_btn.click(past.rename_chat, [thread_state, title_box], title_box, **private).then(
            past.listing, thread_state, listed_out, **private
        )
        delete_btn.click(past.delete_chat, thread_state, chat_out[:4], **private).then(
            past.listing, thread_state, listed_out, **private
        )
        persona.change(greet, persona, persona_info, **private)
        banner_timer.tick(banner_tick, None, [banner, banner_timer], show_progress="hidden", **private)

        # The jobs table refreshes while its tab is open; the progress view each time it is opened.
        jobs_tab_ui.select(lambda: gr.Timer(active=True), None, jobs["timer"], **private).then(
            jobs["refresh"], jobs["inputs"], jobs["outputs"], **private
        )
        for other in (chat_tab, progress_tab_ui):
            other.select(lambda: gr.Timer(active=False), None, jobs["timer"], **private)
        progress_tab_ui.select(progress["refresh"], None, progress["outputs"], **private)
        upload["use"].click(
            lambda path: (f"Fine-tune the model on {path} for 20 steps", gr.Tabs(selected="chat")),
            upload["path"],
            [box, tabs],
            **private,
        )
    demo.tutor = tutor  # for tests and embedding in the app server
    demo.warmup = session.warmup
    demo.session = session
    return demo


def allowed_paths(tutor: Tutor) -> list[str]:
    """The only folder the app may serve files from: copies of the plots it showed. The rest of
    the workspace (threads, jobs, logs, models) is never reachable over HTTP."""
    folder = display_dir(tutor.settings.workspace)
    folder.mkdir(parents=True, exist_ok=True)
    return [str(folder)]


def _expire_demo_outputs(workspace: Any) -> None:
    """Now and every hour: visitors' outputs and folders older than a day go."""
    import threading

    from llmtutor.demo import expire

    def loop() -> None:
        import time

        while True:
            expire(workspace)
            time.sleep(3600)

    threading.Thread(target=loop, daemon=True, name="demo-expiry").start()


def login(users_db: Any):
    """Gradio's login check when learners exist: the learner's name and one of their API keys."""

    def check(username: str, password: str) -> bool:
        from llmtutor.errors import AuthenticationError
        from llmtutor.users import authenticate

        try:
            return authenticate(users_db, password).name == username
        except AuthenticationError:
            return False

    return check


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """Listen at once; the course index is prepared in the background (a banner says so)."""
    from llmtutor.users import has_users

    demo = build_app()
    demo.warmup.start()
    shared = has_users(demo.tutor.settings.database)
    if demo.tutor.settings.public_demo:
        _expire_demo_outputs(demo.tutor.settings.workspace)
    demo.queue(default_concurrency_limit=8).launch(
        server_name=host,
        server_port=port,
        share=share,
        allowed_paths=allowed_paths(demo.tutor),
        css=CSS,
        auth=login(demo.tutor.settings.database) if shared else None,
    )
