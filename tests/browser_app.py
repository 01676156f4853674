"""The web app over scripted parts, served for a real browser (tests/test_browser.py and
docs/screenshots.py): the counting tools of fakes.py, a lab tool that runs a real job (the cheap
`demo` kind of job_demo.py, in a worker process), a course search over a fixed passage, a plot,
and a quiz turn that grades an answer and asks the next question."""

from __future__ import annotations

import importlib
import socket
import threading
from pathlib import Path
from typing import Any, ClassVar

from fakes import CountIn, FakeBackend, make_registry
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel, ConfigDict

from llmtutor.agents.routing.router import RouteDecision
from llmtutor.agents.tutor import Tutor
from llmtutor.settings import Settings
from llmtutor.tools.lab_jobs import JobOutput
from llmtutor.tools.registry import ToolRegistry, ToolSpec
from llmtutor.tools.search_course import Passage, SearchCourseInput, SearchCourseResult

CHROMIUM = "/usr/bin/chromium"
LORA = (
    "LoRA freezes the pre-trained weights and trains two small matrices A and B next to selected "
    "weight matrices; their product has the shape of the original matrix, so only a fraction of a "
    "percent of the parameters is trained."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = 6
    sleep_s: float = 0.3


def _lab(cfg: LabIn, ctx) -> Any:
    import job_demo  # registers the "demo" job kind (its worker imports it from tests/)

    from llmtutor.tools.lab_jobs import run_lab_job

    def build(output_dir: Path) -> Any:
        return job_demo.DemoConfig(steps=cfg.steps, sleep_s=cfg.sleep_s, output_dir=output_dir, name="demo")

    return run_lab_job("demo", build, ctx)


def _search(cfg: SearchCourseInput, ctx) -> SearchCourseResult:
    passage = Passage(
        text=LORA,
        source="notes/scientist-4-sft.md",
        heading="Supervised Fine-Tuning > LoRA: low-rank adapters",
        score=0.9,
        chunk_id="sft-lora",
    )
    return SearchCourseResult(query=cfg.query, found=True, passages=[passage])


class PlotOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str

    def to_markdown(self) -> str:
        return "| model | memory |\n|---|---|\n| 7B fp16 | 14.0 GiB |"

    def images(self) -> list[str]:
        return [self.path]


def _plot(cfg: CountIn, ctx) -> PlotOut:
    from PIL import Image, ImageDraw

    path = ctx.outputs_dir / "plots" / "memory.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (900, 300), "white")
    draw = ImageDraw.Draw(image)
    for i, height in enumerate((120, 200, 260)):
        draw.rectangle([60 + i * 280, 290 - height, 260 + i * 280, 290], fill=(76, 114, 176))
    image.save(path)
    return PlotOut(path=str(path))


class QuizTurn(BaseModel):
    """The shape of a graded quiz turn (the real quiz's output fields the web app reads)."""

    model_config = ConfigDict(extra="forbid")
    final_answer: ClassVar[bool] = True
    question: dict[str, Any]
    feedback: dict[str, Any]

    def to_markdown(self) -> str:
        return (
            "✅ **Correct!**\n\nRight answer: **B) GPTQ**\n\nMastery of Quantization: 62%\n\n"
            "**Question 2 of 3** · quantization\n\n" + "Which format does llama.cpp load?\n\n" * 6
        )


def _quiz(cfg: CountIn, ctx) -> QuizTurn:
    return QuizTurn(question={"number": 2, "total": 3}, feedback={"verdict": "correct", "score": 1.0})


def registry(calls: list[str]) -> ToolRegistry:
    tools = list(make_registry(calls))
    tools += [
        ToolSpec("demo_lab", "Runs a small job.", LabIn, JobOutput, _lab, expensive=True, writes=True),
        ToolSpec("search_course", "Searches the notes.", SearchCourseInput, SearchCourseResult, _search),
        ToolSpec("plot_memory", "Draws a plot.", CountIn, PlotOut, _plot),
        ToolSpec("quiz", "A quiz turn.", CountIn, QuizTurn, _quiz),
    ]
    # The real reports of the Progress tab (they read the learner tables) and a real lab for the
    # welcome's list; nothing routes to them.
    for module in ("learner_progress", "next_step", "study_plan", "estimate_memory"):
        tools.append(importlib.import_module(f"llmtutor.tools.{module}").TOOL)
    return ToolRegistry(tools)


class BrowserRouter:
    """'cheap'/'big' count, 'lab' runs a job ('slow lab' a long one), 'plot' draws, 'quiz' grades,
    'what is …' searches the notes; anything else is small talk."""

    def parse_command(self, text: str):
        return None

    def route(self, text: str) -> RouteDecision:
        low = text.lower()
        table = (
            ("cheap", "cheap_count", {"n": 3}),
            ("big", "big_count", {"n": 2}),
            ("slow lab", "demo_lab", {"steps": 60, "sleep_s": 0.5}),
            ("lab", "demo_lab", {"steps": 6, "sleep_s": 0.3}),
            ("plot", "plot_memory", {}),
            ("quiz", "quiz", {}),
            ("what is", "search_course", {"query": text}),
        )
        for prefix, tool, args in table:
            if low.startswith(prefix):
                return RouteDecision(tool=tool, args=args, confidence=1.0, method="classifier")
        return RouteDecision(tool=None, args={}, confidence=1.0, method="classifier")

    def route_batch(self, texts):
        return [self.route(t) for t in texts]


def scripted_tutor(workspace: Path, calls: list[str] | None = None) -> Tutor:
    return Tutor(
        Settings(workspace=workspace),
        backend=FakeBackend([]),
        registry=registry(calls if calls is not None else []),
        router=BrowserRouter(),
        checkpointer=InMemorySaver(),
    )


def picked_model_tutor(made: list[Settings]):
    """The model picker's factory: a Tutor whose capable fake model says who it is."""

    def make(settings: Settings, base: Tutor) -> Tutor:
        made.append(settings)
        backend = FakeBackend(["I am your fine-tuned model, happy to help."] * 20, native_tools=True)
        return Tutor(
            settings,
            backend=backend,
            registry=base.registry,
            router=base.router,
            checkpointer=base.graph.checkpointer,
        )

    return make


def serve(tutor: Tutor, **build: Any) -> tuple[Any, str]:
    """The app listening on a free port: (demo, url)."""
    from llmtutor.ui.gradio_app import CSS, allowed_paths, build_app

    demo = build_app(tutor, **build)
    port = free_port()
    demo.queue(default_concurrency_limit=8).launch(
        prevent_thread_lock=True,
        server_name="127.0.0.1",
        server_port=port,
        allowed_paths=allowed_paths(tutor),
        css=CSS,
        quiet=True,
    )
    return demo, f"http://127.0.0.1:{port}/"


def gate() -> tuple[threading.Event, Any]:
    """An index build that lasts until the event is set (the banner and waiting flows)."""
    release = threading.Event()
    return release, lambda: release.wait(60)
