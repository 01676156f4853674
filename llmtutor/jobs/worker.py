"""A job's own process: `python -m llmtutor.jobs.worker WORKSPACE JOB_ID`.

Its job row is in the workspace's jobs.sqlite, or in the Postgres database named by the
LLMTUTOR_DATABASE_URL its parent set (an environment variable, not an argument: the URL may
hold a password, and arguments are visible to every user in `ps`).

Runs the kind's recipe with output_dir set to a staging folder (and checkpoint_dir to a folder
that survives failures, for `resume`); on success the staging folder is moved into the job's
learner's outputs/ in one rename and the produced model is registered in that learner's models/
(`llmtutor.paths.learner_space`: the workspace itself for the local learner); on failure or
cancel, staging is deleted so nothing that looks finished is left behind. SIGTERM sets the recipe's cancel event.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from llmtutor.database import Database
from llmtutor.jobs import store
from llmtutor.jobs.kinds import get_kind
from llmtutor.jobs.store import Where
from llmtutor.paths import LOCAL_LEARNER, learner_space, output_dir


def job_dir(workspace: Where, job_id: str) -> Path:
    return store.folder(workspace) / "jobs" / job_id


def _final_dir(space: Path, name: str) -> Path:
    base = output_dir(space, name)
    target, n = base, 2
    while target.exists():  # never overwrite an earlier result
        target, n = base.with_name(f"{base.name}-{n}"), n + 1
    return target


def _models_dir(workspace: Where, learner_id: str, config: Any) -> Path:
    """The registry a job's models join: on a shared server always the learner's own, whatever
    the config says; the local learner's config may name another (scripts, tests)."""
    if learner_id != LOCAL_LEARNER:
        return learner_space(store.folder(workspace), learner_id) / "models"
    return Path(getattr(config, "models_dir", store.folder(workspace) / "models"))


def _register(
    workspace: Where, job_id: str, config: Any, result: Any, final: Path, learner_id: str = LOCAL_LEARNER
) -> str | None:
    """Register the job's model(s); returns the first name (a quantization may produce several)."""
    registrations = list(getattr(result, "registrations", None) or [])
    if not registrations and getattr(result, "registration", None):
        registrations = [result.registration]
    from llmtutor.model_registry import RegisteredModel, find_model, register_model

    models_dir = _models_dir(workspace, learner_id, config)
    names = []
    for registration in registrations:
        name, n = registration["name"], 2
        while find_model(models_dir, name) is not None:
            name, n = f"{registration['name']}-{n}", n + 1
        register_model(
            models_dir,
            RegisteredModel(
                name=name,
                path=str(final / registration.get("path", "")),
                kind=registration.get("kind", "merged"),
                base=registration.get("base"),
                job_id=job_id,
                meta={"lineage": registration.get("lineage") or {}},
            ),
        )
        names.append(name)
    return names[0] if names else None


def main(workspace: Where, job_id: str) -> int:
    job = store.get(workspace, job_id)
    if job is None:
        return 2
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    folder = job_dir(workspace, job_id)
    staging = folder / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    kind = get_kind(job.kind, job.kind_module)
    config_cls, run = kind.config, kind.run
    raw = dict(job.config, output_dir=str(staging))
    if job.learner_id != LOCAL_LEARNER and "models_dir" in config_cls.model_fields:
        # names resolve in the learner's own registry, whatever the stored config says
        raw["models_dir"] = str(_models_dir(workspace, job.learner_id, None))
    if "checkpoint_dir" in config_cls.model_fields:
        raw["checkpoint_dir"] = str(folder / "checkpoints")
    config = config_cls.model_validate(raw)
    store.update(workspace, job_id, status="running", started_at=store.now(), pid=os_pid(), error=None)
    last = [0.0, ""]

    def progress(event: Any) -> None:
        data = event.model_dump(exclude_none=True) if hasattr(event, "model_dump") else dict(event)
        stage_changed = data.get("stage") != last[1]
        if stage_changed or time.monotonic() - last[0] >= 0.5:
            last[0], last[1] = time.monotonic(), str(data.get("stage"))
            store.add_event(workspace, job_id, data)
        print(
            f"[{data.get('stage')}] step {data.get('step')}/{data.get('total')} {data.get('message', '')}",
            flush=True,
        )

    try:
        result = run(config, progress=progress, cancel=cancel)
    except BaseException as exc:  # noqa: BLE001 - any failure ends the job, the tutor keeps running
        shutil.rmtree(staging, ignore_errors=True)
        from llmtutor.errors import CancelledError

        cancelled = isinstance(exc, CancelledError) or cancel.is_set()
        traceback.print_exc()
        store.update(
            workspace,
            job_id,
            status="cancelled" if cancelled else "failed",
            finished_at=store.now(),
            error=None if cancelled else f"{type(exc).__name__}: {exc}",
            pid=None,
        )
        return 1
    try:
        _finalize(workspace, job, config, result, staging, folder)
    except Exception as exc:  # noqa: BLE001 - saving failed: the job failed, nothing half-saved stays
        traceback.print_exc()
        shutil.rmtree(staging, ignore_errors=True)
        # Checkpoints stay: a resume continues from them instead of redoing the work.
        store.update(
            workspace,
            job_id,
            status="failed",
            finished_at=store.now(),
            error=f"the work finished but saving its results failed: {type(exc).__name__}: {exc}",
            pid=None,
        )
        return 1
    return 0


def _finalize(workspace: Where, job: Any, config: Any, result: Any, staging: Path, folder: Path) -> None:
    """Move staging into the learner's outputs/ in one rename, register the model(s) in their
    registry, record the result."""
    name = (
        (getattr(result, "registration", None) or {}).get("name")
        or getattr(config, "name", None)
        or f"{job.kind}-{job.id}"
    )
    learner_id = getattr(job, "learner_id", LOCAL_LEARNER)
    final = _final_dir(learner_space(store.folder(workspace), learner_id), str(name))
    final.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(final)  # one rename: the folder is either absent or complete
    try:
        model_name = _register(workspace, job.id, config, result, final, learner_id)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)  # an unregistered folder must not look finished
        raise
    data = result.model_dump(mode="json")
    artifacts = {k: str(final / v) for k, v in data.items() if isinstance(v, str) and (final / v).is_file()}
    artifacts.update({k: str(final / v) for k, v in (data.get("files") or {}).items() if isinstance(v, str)})
    summary = result.to_markdown() if hasattr(result, "to_markdown") else ""
    summary = summary.replace(str(staging), str(final))
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    store.update(
        workspace,
        job.id,
        status="succeeded",
        finished_at=store.now(),
        output_dir=str(final),
        artifacts=artifacts,
        result=data,
        summary=summary,
        model_name=model_name,
        pid=None,
    )


def os_pid() -> int:
    return os.getpid()


def hand_over(workspace: Where, job_id: str) -> None:
    """The job ended: its learner's next waiting job (shared servers) starts now."""
    job = store.get(workspace, job_id)
    if job is not None and job.learner_id != "local":
        from llmtutor.jobs import start_next

        start_next(workspace, job.learner_id)


if __name__ == "__main__":
    where = Database(Path(sys.argv[1]), os.environ.get("LLMTUTOR_DATABASE_URL") or None)
    try:
        code = main(where, sys.argv[2])
    finally:
        hand_over(where, sys.argv[2])
    sys.exit(code)
