"""The Gradio chat app: streaming chat, persona picker, tool steps as
collapsible messages, approval buttons for expensive tools, plots, and a
generic "Tools" tab built from the registry (ui/gradio_tools.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from llmtutor.errors import LLMTutorError, user_message
from llmtutor.paths import display_dir, for_display
from llmtutor.text import clean_display_text

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor

EXAMPLES = [
    "How much memory does Llama 3 8B need for QLoRA fine-tuning?",
    'Compare greedy, beam search and nucleus sampling on "The key idea of attention is"',
    "7B 模型用 fp16 推理需要多少显存？",
    "What is the difference between LoRA and full fine-tuning?",
]

CSS = ".tool-step {font-size: 0.9em}"


def _tool_step(data: dict[str, Any]) -> dict[str, Any]:
    args = json.dumps(data.get("args", {}), ensure_ascii=False)
    body = data.get("markdown") or f"Error: {data.get('error')}"
    status = "done"
    return {
        "role": "assistant",
        "content": f"`{data.get('tool')}({args})`\n\n{body}",
        "metadata": {"title": f"🛠 Tool: {data.get('tool')}", "status": status},
    }


def apply_events(tutor: Tutor, events, history: list[dict[str, Any]]):
    """Fold tutor events into chat messages; yields (history, pending, plot)."""
    pending = None
    plot = None
    answer_index: int | None = None
    tool_shown = False
    for event in events:
        if event.type == "tool_start":
            history.append(
                {
                    "role": "assistant",
                    "content": f"running `{event.data['tool']}` …",
                    "metadata": {"title": f"🛠 Tool: {event.data['tool']}", "status": "pending"},
                }
            )
        elif (
            event.type == "progress"
            and history
            and history[-1].get("metadata", {}).get("status") == "pending"
        ):
            step = f" {event.data.get('step')}/{event.data.get('total')}" if event.data.get("total") else ""
            history[-1]["content"] = f"{event.data.get('stage', '')}{step} {event.data.get('message', '')}"
        elif event.type == "tool_result":
            step = _tool_step(event.data)
            if event.data.get("final"):
                # The result is the answer itself (a quiz question): a compact step, the text follows.
                step["content"] = step["content"].split("\n\n", 1)[0]
            else:
                tool_shown = True
            if history and history[-1].get("metadata", {}).get("status") == "pending":
                history[-1] = step
            else:
                history.append(step)
            for image in event.data.get("images", []):
                shown = for_display(image, tutor.settings.workspace)
                if shown is not None:
                    plot = str(shown)
                    history.append({"role": "assistant", "content": {"path": plot}})
        elif event.type == "token" and not tool_shown:
            if answer_index is None:
                history.append({"role": "assistant", "content": ""})
                answer_index = len(history) - 1
            history[answer_index]["content"] = clean_display_text(
                history[answer_index]["content"] + event.data["text"]
            )
        elif event.type == "answer":
            # After a tool step, only the (number-checked) explanation is added.
            text = clean_display_text(event.data.get("explanation", "") if tool_shown else event.data["text"])
            if answer_index is not None:
                history[answer_index]["content"] = text
            elif text:
                history.append({"role": "assistant", "content": text})
        elif event.type == "approval":
            pending = event.data
            history.append(
                {
                    "role": "assistant",
                    "content": f"{event.data['message']}\n\n`{json.dumps(event.data['args'], ensure_ascii=False)}`",
                    "metadata": {"title": "⏸ Waiting for your approval"},
                }
            )
        yield history, pending, plot


def _prepare_course_index(tutor: Tutor) -> None:
    """Index the bundled course notes on first start (incremental afterwards), so the
    first course question does not wait for it."""
    if "search_course" not in tutor.registry:
        return
    from llmtutor.tools.search_course import ensure_course_index

    def report(stage: str, step: int | None = None, total: int | None = None, message: str = "") -> None:
        if step is not None and total and step == total:
            print(f"course index: {stage} {step}/{total} {message}".strip(), flush=True)

    print(f"Preparing the course index in {tutor.settings.index_dir} …", flush=True)
    ensure_course_index(tutor.settings.index_dir, progress=report)


def build_app(tutor: Tutor | None = None):
    import gradio as gr

    from llmtutor.agents.tutor import Tutor, new_thread_id
    from llmtutor.ui.gradio_tools import tools_tab

    tutor = tutor or Tutor()
    persona_names = sorted(tutor.personas)
    users_db = tutor.settings.database  # users.sqlite, or Postgres

    def learner(request: Any):
        """The signed-in learner (the app asks for a login when learners exist), else the local one."""
        from llmtutor.errors import AuthenticationError
        from llmtutor.users import LOCAL_USER, get_user, has_users

        if not has_users(users_db):
            if tutor.settings.public_demo:  # each browser session is a visitor of its own
                from llmtutor.users import User

                session = str(getattr(request, "session_hash", "") or "anonymous")
                return User(id="demo_" + "".join(c for c in session if c.isalnum())[:24], name="visitor")
            return LOCAL_USER
        name = getattr(request, "username", None)
        if not name:
            raise AuthenticationError("please sign in", "use your learner name and API key")
        return get_user(users_db, name)

    def with_request(fn):
        # Gradio passes the request to a parameter typed gr.Request; this module's annotations
        # are strings (postponed), so the type is set as an object here.
        fn.__annotations__["request"] = gr.Request
        return fn

    @with_request
    def respond(message: str, history: list, persona: str, thread_id: str, request=None):
        from llmtutor.users import owned_thread

        history = list(history or [])
        if not message.strip():
            yield history, None, gr.update(), thread_id, gr.update(visible=False), ""
            return
        history.append({"role": "user", "content": message})
        yield history, None, gr.update(), thread_id, gr.update(visible=False), ""
        try:
            user = learner(request)
            events = tutor.stream(
                message, thread_id=owned_thread(user, thread_id), persona=persona, learner_id=user.id
            )
            for hist, pending, plot in apply_events(tutor, events, history):
                yield (
                    hist,
                    pending,
                    plot or gr.update(),
                    thread_id,
                    gr.update(visible=pending is not None),
                    "",
                )
        except LLMTutorError as exc:
            history.append({"role": "assistant", "content": user_message(exc)})
            yield history, None, gr.update(), thread_id, gr.update(visible=False), ""

    def decide(approved: bool):
        @with_request
        def handler(history: list, pending: dict | None, thread_id: str, request=None):
            from llmtutor.users import owned_thread

            history = list(history or [])
            if not pending:
                yield history, None, gr.update(), gr.update(visible=False)
                return
            note = "✅ approved" if approved else "❌ declined"
            history.append({"role": "user", "content": note})
            try:
                # The thread is the signed-in learner's own, whatever the browser sent.
                stored = owned_thread(learner(request), thread_id)
                for hist, new_pending, plot in apply_events(tutor, tutor.resume(stored, approved), history):
                    yield hist, new_pending, plot or gr.update(), gr.update(visible=new_pending is not None)
            except LLMTutorError as exc:
                history.append({"role": "assistant", "content": user_message(exc)})
                yield history, None, gr.update(), gr.update(visible=False)

        return handler

    def new_conversation():
        return [], None, new_thread_id(), gr.update(visible=False)

    def greet(persona: str):
        p = tutor.persona(persona)
        return f"**{p.title}** — {p.description}"

    with gr.Blocks(title="llmtutor") as demo:
        thread_state = gr.State(new_thread_id)
        pending_state = gr.State(None)
        gr.Markdown("# llmtutor\nA tutor for the LLM Course that runs the labs.")
        with gr.Tab("Chat"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Tutor", height=520, buttons=["copy"], group_consecutive_messages=False
                    )
                    with gr.Row(visible=False) as approval_row:
                        approve_btn = gr.Button("Approve", variant="primary")
                        decline_btn = gr.Button("Decline", variant="stop")
                    box = gr.Textbox(
                        placeholder="Ask about the course, or ask me to run a lab…", show_label=False
                    )
                    gr.Examples(EXAMPLES, inputs=box)
                with gr.Column(scale=1):
                    persona = gr.Dropdown(persona_names, value=tutor.persona().name, label="Persona")
                    persona_info = gr.Markdown(greet(tutor.persona().name))
                    new_btn = gr.Button("New conversation")
                    plot = gr.Image(label="Latest plot", type="filepath", interactive=False)
        with gr.Tab("Tools"):
            tools_tab(demo, tutor, learner, with_request)  # ui/gradio_tools.py: plan → approve

        outputs = [chatbot, pending_state, plot, thread_state, approval_row, box]
        box.submit(respond, [box, chatbot, persona, thread_state], outputs)
        approve_btn.click(
            decide(True), [chatbot, pending_state, thread_state], [chatbot, pending_state, plot, approval_row]
        )
        decline_btn.click(
            decide(False),
            [chatbot, pending_state, thread_state],
            [chatbot, pending_state, plot, approval_row],
        )
        new_btn.click(new_conversation, None, [chatbot, pending_state, thread_state, approval_row])
        persona.change(greet, persona, persona_info)
    demo.tutor = tutor  # for tests and embedding in the app server
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
    from llmtutor.users import has_users

    demo = build_app()
    _prepare_course_index(demo.tutor)
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
