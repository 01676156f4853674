"""The public demo mode (a Space): visitors are learners of their own, expensive tools run only
tiny jobs on the bundled model (checked before a plan is shown and before any direct run), and
visitors' outputs expire."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fakes import FakeBackend
from langgraph.checkpoint.memory import InMemorySaver
from live_server import serving

from llmtutor.agents.routing.router import RouteDecision
from llmtutor.agents.tutor import Tutor
from llmtutor.demo import DEMO_MAX_STEPS, demo_refusal, expire
from llmtutor.errors import DemoLimitError
from llmtutor.settings import Settings
from llmtutor.tools.registry import default_registry


def test_the_demo_runs_only_tiny_fine_tunes_of_the_bundled_model():
    tiny = {"dataset": "course", "max_steps": DEMO_MAX_STEPS}
    assert demo_refusal("finetune_model", tiny, expensive=True) is None
    assert demo_refusal("estimate_memory", {}, expensive=False) is None
    for args in (
        {"dataset": "course"},  # no step cap
        {**tiny, "max_steps": 500},
        {**tiny, "base_model": "meta-llama/Llama-3-8B"},
        {**tiny, "dataset": "my.jsonl"},
        {**tiny, "adapter": "full"},
    ):
        assert demo_refusal("finetune_model", args, expensive=True)
    for tool in ("merge_models", "quantize_model", "evaluate_model"):
        assert "does not run in the public demo" in demo_refusal(tool, {}, expensive=True)


class _Route:
    def __init__(self, decision):
        self.decision = decision

    def parse_command(self, text):
        return None

    def route(self, text):
        return self.decision

    def route_batch(self, texts):
        return [self.decision for _ in texts]


def test_chat_refuses_before_the_plan_and_direct_runs_are_refused(tmp_path):
    merge = RouteDecision(
        tool="merge_models",
        args={"method": "slerp", "models": ["base", "latest"]},
        confidence=1.0,
        method="classifier",
    )
    tutor = Tutor(
        Settings(workspace=tmp_path, public_demo=True),
        backend=FakeBackend([]),
        registry=default_registry(),
        router=_Route(merge),
        checkpointer=InMemorySaver(),
    )
    reply = tutor.ask("SLERP merge the base with my fine-tune", thread_id="d")
    assert reply.pending_approval is None and "public demo" in reply.answer  # refused, nothing to approve
    with pytest.raises(DemoLimitError):
        tutor.run_tool("finetune_model", {"dataset": "course", "max_steps": 5000})
    assert tutor.run_tool("estimate_memory", {"model": "7B"}).total_gib > 0  # cheap tools as usual
    local = Tutor(Settings(workspace=tmp_path), backend=FakeBackend([]), registry=default_registry())
    local.guard("merge_models", {})  # outside the demo nothing is limited


def test_visitors_outputs_expire_and_registered_learners_data_stays(tmp_path):
    old, new = tmp_path / "outputs" / "old-run", tmp_path / "outputs" / "new-run"
    visitor, learner = tmp_path / "learners" / "demo_abc", tmp_path / "learners" / "u_ana"
    for folder in (old, new, visitor, learner):
        folder.mkdir(parents=True)
        (folder / "file.txt").write_text("x")
    day_ago = time.time() - 25 * 3600
    for path in (old, old / "file.txt", visitor, visitor / "file.txt", learner, learner / "file.txt"):
        os.utime(path, (day_ago, day_ago))
    assert expire(tmp_path) == 2
    assert not old.exists() and not visitor.exists() and new.exists() and learner.exists()


def test_each_browser_session_is_its_own_visitor(tmp_path):

    import gradio as gr
    from fastapi import FastAPI
    from gradio_client import Client

    from llmtutor.ui.gradio_app import build_app

    tutor = Tutor(
        Settings(workspace=tmp_path, public_demo=True),
        backend=FakeBackend(["ok"] * 10),
        registry=default_registry(),
        router=_Route(RouteDecision(tool=None, args={}, confidence=1.0, method="classifier")),
        checkpointer=InMemorySaver(),
    )
    app = gr.mount_gradio_app(FastAPI(), build_app(tutor), path="/ui")
    with serving(app) as base:
        url = f"{base}/ui/"
        for n in range(2):
            Client(url, verbose=False).predict(f"hello {n}", [], "tutor", api_name="/respond")
        owners = {thread.split(":", 1)[0] for thread in tutor.graph.checkpointer.storage}
        assert len(owners) == 2 and all(o.startswith("demo_") for o in owners)


def test_the_app_for_spaces_is_the_demo():
    source = (Path(__file__).resolve().parents[1] / "app.py").read_text(encoding="utf-8")
    assert 'os.environ.setdefault("LLMTUTOR_PUBLIC_DEMO", "1")' in source
