"""Start fast: the web app listens at once and prepares the course index in the background.

Building the index on first start takes a minute or more (embedding every course note); done
before `launch()`, the browser saw "connection refused" all that time. Now a thread builds it,
a banner says so, and a course question waits for it with a message in the chat instead."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor

# Tools that read the course index: their turn waits for it (the others never do).
INDEX_TOOLS = frozenset({"search_course"})

WAITING = {
    "en": "⏳ The course index is being prepared (first start only); your question is answered as soon as it is ready.",
    "zh": "⏳ 正在准备课程索引（仅首次启动），准备好后立即回答你的问题。",
}
BANNER = "⏳ **Preparing the course index** (first start only, about a minute): you can chat now; course questions wait for it. · 正在准备课程索引，课程问题稍后回答。"


class IndexWarmup:
    """The course index, prepared once in a background thread by `start()`; `ready` is set when
    it is done (or failed: the question then runs and the search reports the cause itself).
    Until `start()`, nothing waits: the search prepares the index itself, as without the app."""

    def __init__(self, tutor: Tutor, build: Callable[[], None] | None = None) -> None:
        self.tutor = tutor
        self.ready = threading.Event()
        self.ready.set()
        self.error: str | None = None
        self._build_index = build or self._ensure_index
        self._thread: threading.Thread | None = None

    def start(self) -> IndexWarmup:
        if self._thread is None and "search_course" in self.tutor.registry:
            self.ready.clear()
            self._thread = threading.Thread(target=self._run, daemon=True, name="course-index")
            self._thread.start()
        return self

    def _ensure_index(self) -> None:
        from llmtutor.tools.search_course import ensure_course_index

        def report(stage: str, step: int | None = None, total: int | None = None, message: str = "") -> None:
            if step is not None and total and step == total:
                print(f"course index: {stage} {step}/{total} {message}".strip(), flush=True)

        print(f"Preparing the course index in {self.tutor.settings.index_dir} …", flush=True)
        ensure_course_index(self.tutor.settings.index_dir, progress=report)

    def _run(self) -> None:
        try:
            self._build_index()
        except Exception as exc:  # noqa: BLE001 - reported; the search itself says what is wrong
            self.error = f"{type(exc).__name__}: {exc}"
            logging.getLogger(__name__).warning("could not prepare the course index: %s", self.error)
        finally:
            self.ready.set()

    def needed_by(self, tool: str | None) -> bool:
        return tool in INDEX_TOOLS and not self.ready.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout)

    def banner(self) -> str:
        return "" if self.ready.is_set() else BANNER
