"""`llmtutor jobs`: list, follow, cancel and resume long jobs.

    llmtutor jobs list [--json]
    llmtutor jobs show ID [--json]
    llmtutor jobs logs ID [--follow]      # --follow: a progress bar until the job ends
    llmtutor jobs cancel ID
    llmtutor jobs resume ID [--follow]

Mount with ``register(app)``. Only typer is imported at module level.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmtutor.ui.cli.typed_errors import Group

if TYPE_CHECKING:
    from llmtutor.database import Database

jobs_app = typer.Typer(
    help="Long jobs (fine-tuning, evaluation, merging): list, follow, cancel, resume.",
    no_args_is_help=True,
    cls=Group,  # typed errors: one line on stderr, exit 2 (also when mounted on another app)
)
JobId = Annotated[str, typer.Argument(help="Job id (see `llmtutor jobs list`).")]


def _workspace() -> Database:
    """The workspace and where its job rows live (jobs.sqlite, or LLMTUTOR_DATABASE_URL)."""
    from llmtutor.settings import Settings

    settings = Settings()
    settings.ensure_workspace()
    return settings.database


@jobs_app.command("list")
def list_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Recent jobs, newest first (running jobs whose process is gone are marked interrupted)."""
    from llmtutor import jobs as runner
    from llmtutor.tools.job_status import JobStatusOutput

    jobs = runner.list_jobs(_workspace(), limit=50)
    if as_json:
        typer.echo(json.dumps([j.model_dump() for j in jobs], ensure_ascii=False, indent=2))
        return
    fields = {"id", "kind", "status", "progress", "started_at", "output_dir", "model_name", "error"}
    typer.echo(
        JobStatusOutput(action="list", jobs=[j.model_dump(include=fields) for j in jobs]).to_markdown()
    )


@jobs_app.command("show")
def show_command(job_id: JobId, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One job: config, status, progress, artifacts, result summary."""
    from llmtutor import jobs as runner

    job = runner.get(_workspace(), job_id)
    if as_json:
        typer.echo(job.model_dump_json(indent=2))
        return
    typer.echo(f"{job.id}  {job.kind}  {job.status}  attempts {job.attempts}")
    typer.echo(f"progress: {json.dumps(job.progress or {}, ensure_ascii=False)}")
    if job.output_dir:
        typer.echo(f"output: {job.output_dir}")
    if job.model_name:
        typer.echo(f"model: {job.model_name}")
    if job.error:
        typer.echo(f"error: {job.error}")
    if job.summary:
        typer.echo("\n" + job.summary)


def follow(workspace: Path | Database, job_id: str) -> str:
    """A rich progress bar until the job ends; returns the final status."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from llmtutor import jobs as runner

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task(job_id, total=None, info="")
        for event in runner.iter_events(workspace, job_id, follow=True):
            info = " ".join(
                f"{k} {event[k]:.4g}" for k in ("loss", "eval_loss", "tokens_per_s") if event.get(k)
            )
            if event.get("eta_s"):
                info += f" ETA {event['eta_s']:.0f}s"
            bar.update(
                task,
                description=f"{job_id} {event.get('stage', '')}",
                total=event.get("total"),
                completed=event.get("step") or 0,
                info=info or event.get("message", ""),
            )
    return runner.get(workspace, job_id).status


@jobs_app.command("logs")
def logs_command(
    job_id: JobId,
    follow_job: Annotated[
        bool, typer.Option("--follow", "-f", help="Show progress until the job ends.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n")] = 40,
) -> None:
    """The job's log (its last lines), or --follow its progress."""
    from llmtutor import jobs as runner

    workspace = _workspace()
    if follow_job:
        status = follow(workspace, job_id)
        time.sleep(0.2)
        typer.echo(f"job {job_id}: {status}")
    typer.echo("\n".join(runner.tail_log(workspace, job_id, lines)))


@jobs_app.command("cancel")
def cancel_command(job_id: JobId) -> None:
    """Stop a job (SIGTERM, then SIGKILL); its partial outputs are removed, checkpoints kept."""
    from llmtutor import jobs as runner

    typer.echo(f"job {job_id}: {runner.cancel(_workspace(), job_id).status}")


@jobs_app.command("resume")
def resume_command(
    job_id: JobId, follow_job: Annotated[bool, typer.Option("--follow", "-f")] = False
) -> None:
    """Run an interrupted, failed or cancelled job again from its last checkpoint."""
    from llmtutor import jobs as runner

    workspace = _workspace()
    runner.resume(workspace, job_id)
    typer.echo(f"job {job_id} resumed")
    if follow_job:
        typer.echo(f"job {job_id}: {follow(workspace, job_id)}")


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
