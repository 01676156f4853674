"""The progress/cancel contract between long training jobs and whoever runs them.

Every job in `training/` has the shape ``run(config, progress=None, cancel=None) -> Result``:
`progress` receives `TrainingEvent`s (the job runner forwards them to the CLI progress bar,
the UI and the API); `cancel` is a `threading.Event` the job checks between steps, raising
`CancelledError` when it is set (the job runner sets it on SIGTERM).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from llmtutor.errors import CancelledError


class TrainingEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: str  # "load", "data", "train", "eval", "save", "merge", ...
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    message: str = ""


ProgressCallback = Callable[[TrainingEvent], None]


def emit(
    progress: ProgressCallback | None, stage: str, message: str = "", **fields: float | int | None
) -> None:
    if progress is not None:
        progress(TrainingEvent(stage=stage, message=message, **fields))


def check_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise CancelledError(
            "cancelled by the user", "resume it with `llmtutor jobs resume ID` or start again"
        )
