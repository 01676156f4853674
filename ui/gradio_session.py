"""What every part of the web app shares: the tutor, who the learner is (signed in, the public
demo's visitor, or the local learner), the course index warm-up and the chat model choices, and
the one place where typed errors become the learner's text, in their language."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmtutor.errors import LLMTutorError, user_message
from llmtutor.text import detect_language
from llmtutor.ui.gradio_models import ModelChoices
from llmtutor.ui.gradio_startup import IndexWarmup

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor
    from llmtutor.settings import Settings
    from llmtutor.users import User


def edge_text(exc: BaseException, said: str = "") -> str:
    """A typed error as the learner's text; in Chinese when they wrote Chinese (the errors that
    depend on the message, like the length limit, already are)."""
    text = user_message(exc)
    if said and detect_language(said[:2000]) == "zh" and text.startswith("Error: "):
        return "出错了：" + text.removeprefix("Error: ")
    return text


class Session:
    def __init__(
        self,
        tutor: Tutor,
        warmup: IndexWarmup | None = None,
        make_tutor: Callable[[Settings, Tutor], Tutor] | None = None,
    ) -> None:
        self.tutor = tutor
        self.users_db = tutor.settings.database  # users.sqlite, or Postgres
        self.warmup = warmup or IndexWarmup(tutor)
        self.models = ModelChoices(tutor, make_tutor)

    def learner(self, request: Any) -> User:
        """The signed-in learner (the app asks for a login when learners exist), else the local one."""
        from llmtutor.errors import AuthenticationError
        from llmtutor.users import LOCAL_USER, User, get_user, has_users

        if not has_users(self.users_db):
            if self.tutor.settings.public_demo:  # each browser session is a visitor of its own
                session = str(getattr(request, "session_hash", "") or "anonymous")
                return User(id="demo_" + "".join(c for c in session if c.isalnum())[:24], name="visitor")
            return LOCAL_USER
        name = getattr(request, "username", None)
        if not name:
            raise AuthenticationError("please sign in", "use your learner name and API key")
        return get_user(self.users_db, name)

    def stored(self, request: Any, thread_id: str) -> str:
        """The learner's own stored thread id, whatever the browser sent."""
        from llmtutor.users import owned_thread

        return owned_thread(self.learner(request), thread_id)

    @staticmethod
    def with_request(fn: Callable) -> Callable:
        # Gradio passes the request to a parameter typed gr.Request; this package's annotations
        # are strings (postponed), so the type is set as an object here.
        import gradio as gr

        fn.__annotations__["request"] = gr.Request
        return fn

    def cancel(self, stored_thread: str) -> None:
        """Stop the conversation's turn (and the job its tool follows), whichever model runs it."""
        for tutor in self.models.all():
            tutor.cancel(stored_thread)

    def safe(self, fn: Callable[[], Any], said: str = "") -> tuple[Any, str | None]:
        try:
            return fn(), None
        except LLMTutorError as exc:
            return None, edge_text(exc, said)
