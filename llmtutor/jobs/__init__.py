"""Durable jobs: long lab work (fine-tuning, evaluation, merging) in its own process.

    job_id = submit(workspace, "finetune", FinetuneConfig(...))
    job = wait(workspace, job_id, on_event=print, cancel=event)   # or iter_events(..., follow=True)
    cancel(workspace, job_id); recover(workspace); resume(workspace, job_id)

`workspace` is the workspace folder, or its `Database` (llmtutor/database.py) when the rows live
in Postgres. Jobs are rows in `<workspace>/jobs.sqlite` or the database's `jobs` schema (status,
progress, events, artifacts, errors); each
runs in a worker subprocess (its own session, log in `<workspace>/jobs/<id>/job.log`), so a crash
or OOM of a job cannot take the tutor down. See worker.py for staging and finalizing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmtutor.errors import LLMTutorError
from llmtutor.jobs import store
from llmtutor.jobs.kinds import get_kind, import_root, register_kind
from llmtutor.jobs.resources import check_fits, free_memory
from llmtutor.jobs.store import FINAL, Job, Where
from llmtutor.paths import check_name, resolve_user_path

__all__ = [
    "Job",
    "JobError",
    "JobLimitError",
    "owned",
    "submit",
    "get",
    "list_jobs",
    "wait",
    "iter_events",
    "cancel",
    "recover",
    "resume",
    "start_next",
    "place_in_line",
    "tail_log",
    "resolve_user_path",
    "check_fits",
    "free_memory",
    "register_kind",
]


class JobError(LLMTutorError):
    """A job cannot be found or is in the wrong state for the request."""


class JobLimitError(LLMTutorError):
    """The learner already has as many jobs running as a shared server allows (HTTP 429)."""


def _require(workspace: Where, job_id: str) -> Job:
    job = store.get(workspace, job_id)
    if job is None:
        raise JobError(f"no job {job_id!r}", "see `llmtutor jobs list`")
    return job


def _start(workspace: Where, job_id: str, kind_module: str | None) -> None:
    from llmtutor.database import Database
    from llmtutor.jobs.worker import job_dir

    folder = job_dir(workspace, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The worker finds its row where this process keeps it, whatever this process's own environment says.
    env.pop("LLMTUTOR_DATABASE_URL", None)
    if isinstance(workspace, Database) and workspace.url:
        env["LLMTUTOR_DATABASE_URL"] = workspace.url
    root = import_root(kind_module) if kind_module else None
    if root:  # a kind defined outside the package: the worker imports it from the same folder
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    with open(folder / "job.log", "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own module, our own interpreter
            [sys.executable, "-m", "llmtutor.jobs.worker", str(store.folder(workspace)), job_id],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    store.update(workspace, job_id, pid=process.pid)
    # Reap the child when it exits so it does not linger as a zombie (pid checks see it gone).
    threading.Thread(target=process.wait, daemon=True).start()


# A learner of a shared server runs one job at a time (each fine-tune of the default model peaks
# near 5 GB); up to MAX_WAITING_PER_LEARNER more wait in their line and start, oldest first, when
# the running one ends. Outputs are capped at LEARNER_QUOTA_BYTES. The local learner of a
# single-learner workspace is not limited.
MAX_WAITING_PER_LEARNER = 3
LEARNER_QUOTA_BYTES = 20 * 1024**3


def learner_usage(workspace: Where, learner_id: str) -> int:
    """Bytes the learner keeps: their space (models, outputs, files) and the outputs of jobs
    that finished outside it (before outputs moved into learner spaces)."""
    from llmtutor.paths import learner_space

    space = learner_space(store.folder(workspace), learner_id).resolve()
    folders = [space] + [
        Path(job.output_dir)
        for job in store.list_jobs(workspace, 10_000, learner_id)
        if job.output_dir and not Path(job.output_dir).resolve().is_relative_to(space)
    ]
    return sum(f.stat().st_size for d in folders if d.is_dir() for f in d.rglob("*") if f.is_file())


def submit(workspace: Where, kind: str, config: BaseModel | dict[str, Any], learner_id: str = "local") -> str:
    from llmtutor.jobs.worker import job_dir

    job_kind = get_kind(kind)
    config_cls = job_kind.config
    raw = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
    validated = config_cls.model_validate(raw)  # bad configs are refused before anything starts
    if isinstance(getattr(validated, "name", None), str):  # outputs/<name> must stay inside outputs/
        check_name(validated.name, "output name")
    if learner_id != "local":
        used = learner_usage(workspace, learner_id)
        if used >= LEARNER_QUOTA_BYTES:
            raise JobLimitError(
                f"your outputs take {used / 1024**3:.1f} GB, the limit on this server is "
                f"{LEARNER_QUOTA_BYTES / 1024**3:.0f} GB",
                "ask the server's admin to remove models you no longer need",
            )
        waiting = [j for j in list_jobs(workspace, 50, learner_id) if j.status == "waiting"]
        if len(waiting) >= MAX_WAITING_PER_LEARNER:
            raise JobLimitError(
                f"you already have {len(waiting)} jobs waiting behind your running one, the most "
                "this server keeps in line",
                f"wait for one to start, or cancel one (`job_status` with action cancel, job {waiting[-1].id})",
            )
    job_id = uuid.uuid4().hex[:10]
    log = job_dir(workspace, job_id) / "job.log"
    store.insert(
        workspace,
        Job(
            id=job_id,
            kind=kind,
            kind_module=job_kind.module,
            config=validated.model_dump(mode="json"),
            # A shared server's job joins its learner's line and starts when it is first in it.
            status="queued" if learner_id == "local" else "waiting",
            created_at=store.now(),
            log_file=str(log),
            attempts=1,
            learner_id=learner_id,
        ),
    )
    if learner_id == "local":
        _start(workspace, job_id, job_kind.module)
    else:
        start_next(workspace, learner_id)
    return job_id


def start_next(workspace: Where, learner_id: str) -> str | None:
    """Start the learner's next waiting job if none of theirs is queued or running."""
    job_id = store.promote_next(workspace, learner_id)
    if job_id is not None:
        _start(workspace, job_id, store.get(workspace, job_id).kind_module)
    return job_id


def place_in_line(workspace: Where, job_id: str) -> int | None:
    """1 for the next job to start, 2 after it, ...; None when the job is not waiting."""
    job = _require(workspace, job_id)
    return store.waiting_ahead(workspace, job) + 1 if job.status == "waiting" else None


def get(workspace: Where, job_id: str) -> Job:
    return _require(workspace, job_id)


def list_jobs(workspace: Where, limit: int = 20, learner_id: str | None = None) -> list[Job]:
    recover(workspace)
    return store.list_jobs(workspace, limit, learner_id)


def owned(workspace: Where, job_id: str, learner_id: str) -> Job:
    """The learner's job; another learner's looks exactly like a missing one."""
    job = store.get(workspace, job_id)
    if job is None or (learner_id != "local" and job.learner_id != learner_id):
        raise JobError(f"no job {job_id!r}", "see your jobs with `job_status` (action list)")
    return job


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not running
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def recover(workspace: Where) -> list[str]:
    """Mark running/queued jobs whose worker is gone as interrupted (after a crash or restart)."""
    lost = []
    for job in store.list_jobs(workspace, limit=200):
        if job.status in ("running", "queued") and not _alive(job.pid):
            time.sleep(0.05)
            fresh = store.get(workspace, job.id)
            if fresh and fresh.status in ("running", "queued") and not _alive(fresh.pid):
                store.update(workspace, job.id, status="interrupted", finished_at=store.now(), pid=None)
                lost.append(job.id)
    # After a restart (or a worker killed before it could hand over), the lines move on.
    for learner_id in {j.learner_id for j in store.list_jobs(workspace, limit=200) if j.status == "waiting"}:
        start_next(workspace, learner_id)
    return lost


def iter_events(
    workspace: Where, job_id: str, follow: bool = False, poll_s: float = 0.5
) -> Iterator[dict[str, Any]]:
    seq = 0
    while True:
        for number, event in store.events_after(workspace, job_id, seq):
            seq = number
            yield event
        job = _require(workspace, job_id)
        if not follow or job.status in FINAL:
            for _, event in store.events_after(workspace, job_id, seq):
                yield event
            return
        if job.status == "running" and not _alive(job.pid):
            recover(workspace)
        time.sleep(poll_s)


def wait(
    workspace: Where,
    job_id: str,
    timeout: float | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    cancel: threading.Event | None = None,
    poll_s: float = 0.5,
) -> Job:
    """Block until the job ends; `cancel` (the chat's cancel event) cancels the job itself."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seq = 0
    while True:
        for number, event in store.events_after(workspace, job_id, seq):
            seq = number
            if on_event is not None:
                on_event(event)
        job = _require(workspace, job_id)
        if job.status in FINAL:
            return job
        if cancel is not None and cancel.is_set():
            return globals()["cancel"](workspace, job_id)
        if job.status == "running" and not _alive(job.pid):
            recover(workspace)
        if deadline is not None and time.monotonic() > deadline:
            return job
        time.sleep(poll_s)


def cancel(workspace: Where, job_id: str, grace_s: float = 10.0) -> Job:
    """SIGTERM the job's process group (the recipe stops cleanly), SIGKILL after `grace_s`."""
    job = _require(workspace, job_id)
    if job.status in FINAL:
        raise JobError(f"job {job_id} already ended ({job.status})", "nothing to cancel")
    if job.pid and _alive(job.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGTERM)
        end = time.monotonic() + grace_s
        while _alive(job.pid) and time.monotonic() < end:
            time.sleep(0.1)
        if _alive(job.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGKILL)
    import shutil

    from llmtutor.jobs.worker import job_dir

    shutil.rmtree(job_dir(workspace, job_id) / "staging", ignore_errors=True)
    if _require(workspace, job_id).status not in FINAL:
        store.update(workspace, job_id, status="cancelled", finished_at=store.now(), pid=None)
    if job.learner_id != "local":
        start_next(workspace, job.learner_id)
    return _require(workspace, job_id)


def resume(workspace: Where, job_id: str) -> str:
    """Run an interrupted/failed/cancelled job again from its checkpoints (same id)."""
    recover(workspace)
    job = _require(workspace, job_id)
    if job.status not in ("interrupted", "failed", "cancelled"):
        raise JobError(f"job {job_id} is {job.status}", "only interrupted, failed or cancelled jobs resume")
    config = dict(job.config)
    if "resume" in config:
        config["resume"] = True
    store.update(
        workspace,
        job_id,
        status="queued" if job.learner_id == "local" else "waiting",
        config=config,
        attempts=job.attempts + 1,
        error=None,
        finished_at=None,
    )
    if job.learner_id == "local":
        _start(workspace, job_id, job.kind_module)
    else:
        start_next(workspace, job.learner_id)
    return job_id


def tail_log(workspace: Where, job_id: str, n: int = 20) -> list[str]:
    path = Path(_require(workspace, job_id).log_file)
    if not path.is_file():
        return []
    return path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
