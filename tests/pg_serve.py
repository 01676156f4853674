"""One tutor server process for tests/test_postgres.py: `python pg_serve.py PORT WORKSPACE`.

What `llmtutor serve` runs (the real Tutor, HTTP app and uvicorn, its settings from LLMTUTOR_*,
so LLMTUTOR_DATABASE_URL), with a scripted chat backend and router instead of a model, and a
`demo_job` tool that starts the cheap demo job (tests/job_demo.py) without waiting for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fakes import FakeBackend, ScriptedRouter, make_registry
from pydantic import BaseModel, ConfigDict

from llmtutor.agents.tutor import Tutor
from llmtutor.settings import Settings
from llmtutor.tools.registry import ToolContext, ToolRegistry, ToolSpec
from llmtutor.ui.http.server import create_app


class DemoJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = 300
    sleep_s: float = 0.2


class DemoJobOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_id: str
    status: str

    def to_markdown(self) -> str:
        return f"job {self.job_id}: {self.status}"


def submit_demo(cfg: DemoJobIn, ctx: ToolContext) -> DemoJobOut:
    import job_demo  # noqa: F401 - registers the "demo" job kind

    from llmtutor import jobs

    config = {"steps": cfg.steps, "sleep_s": cfg.sleep_s, "output_dir": str(ctx.outputs_dir / "pending")}
    job_id = jobs.submit(ctx.database, "demo", config, learner_id=ctx.learner_id)
    return DemoJobOut(job_id=job_id, status=jobs.get(ctx.database, job_id).status)


def main(port: int, workspace: Path) -> None:
    from llmtutor.tools.job_status import TOOL as STATUS
    from llmtutor.tools.learner_progress import TOOL as PROGRESS
    from llmtutor.tools.update_progress import TOOL as UPDATE

    demo = ToolSpec("demo_job", "Starts a demo job.", DemoJobIn, DemoJobOut, submit_demo)
    registry = ToolRegistry([*make_registry([]), STATUS, PROGRESS, UPDATE, demo])
    settings = Settings(workspace=workspace)
    assert settings.database_url, "LLMTUTOR_DATABASE_URL is not set"
    tutor = Tutor(settings, backend=FakeBackend(["ok"] * 200), registry=registry, router=ScriptedRouter())
    uvicorn.run(create_app(tutor), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
