"""A small job kind for the runner tests: counts steps, checkpoints each one, honours cancel/resume.

Imported by the tests (registering it); job workers import it from this folder."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llmtutor.jobs.kinds import register_kind
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit


class DemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = 5
    sleep_s: float = 0.1
    fail_at: int | None = None
    name: str = "demo"
    output_dir: Path = Path("demo-output")
    checkpoint_dir: Path | None = None
    resume: bool = False
    result_name: str | None = None  # a name the result asks to be saved under (finalization tests)


class DemoResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps_run: list[int]
    report: str = "report.json"
    registration: dict[str, str] | None = None

    def to_markdown(self) -> str:
        return f"ran steps {self.steps_run}"


def run(
    config: DemoConfig, progress: ProgressCallback | None = None, cancel: threading.Event | None = None
) -> DemoResult:
    ckpt = config.checkpoint_dir or config.output_dir / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    start = 0
    if config.resume and (ckpt / "step.txt").is_file():
        start = int((ckpt / "step.txt").read_text())
    ran = []
    for step in range(start + 1, config.steps + 1):
        check_cancelled(cancel)
        if config.fail_at == step:
            raise RuntimeError(f"planned failure at step {step}")
        time.sleep(config.sleep_s)
        # write-then-rename: a kill mid-write must leave the previous checkpoint, not an empty file
        (ckpt / "step.txt.tmp").write_text(str(step))
        (ckpt / "step.txt.tmp").replace(ckpt / "step.txt")
        ran.append(step)
        emit(progress, "train", step=step, total=config.steps, loss=1.0 / step)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    (config.output_dir / "report.json").write_text(json.dumps({"steps": ran}))
    registration = {"name": config.result_name, "path": ""} if config.result_name else None
    return DemoResult(steps_run=ran, registration=registration)


register_kind("demo", DemoConfig, run)
