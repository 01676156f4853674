"""The Jobs tab: the learner's jobs, live (a gr.Timer refreshes it): kind, status (with the place
in line of a waiting job), stage, a progress bar with step/total and an ETA, the model or output a
job made; the selected job's log, Cancel and Resume. Also the progress line the chat shows for a
running tool (one format for both)."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtutor.errors import LLMTutorError, user_message

if TYPE_CHECKING:
    from llmtutor.ui.gradio_session import Session

REFRESH_S = 2.0
_NO_JOBS = "<p class='jobs-empty'>No jobs yet. Ask for a lab in the chat, e.g. “Fine-tune the model on the course dataset for 20 steps”; it shows up here with its progress.</p>"


class EtaTracker:
    """Seconds left in a stage, from the rate of steps since this process first saw the stage (the
    event's own `eta_s` when the recipe reports one)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def eta(self, key: str, progress: dict[str, Any]) -> float | None:
        if progress.get("eta_s"):
            return float(progress["eta_s"])
        step, total = progress.get("step"), progress.get("total")
        if not isinstance(step, int | float) or not isinstance(total, int | float) or not total:
            return None
        now = time.monotonic()
        start = self._seen.setdefault((key, str(progress.get("stage", ""))), (now, int(step)))
        done, elapsed = step - start[1], now - start[0]
        if done <= 0 or elapsed <= 0:
            return None
        return max(0.0, (total - step) * elapsed / done)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def percent(progress: dict[str, Any]) -> int | None:
    step, total = progress.get("step"), progress.get("total")
    if isinstance(step, int | float) and isinstance(total, int | float) and total:
        return max(0, min(100, int(100 * step / total)))
    return None


def progress_line(progress: dict[str, Any], eta: float | None = None) -> str:
    """'train 3/10 (30%) · loss 0.52 · ETA 1m 20s' (plain text: it goes into titles and cells)."""
    parts = [str(progress.get("stage") or "")]
    if progress.get("total"):
        parts[0] += f" {progress.get('step') or 0}/{progress['total']} ({percent(progress)}%)"
    message = str(progress.get("message") or "").strip()
    if message and "ETA" not in message and len(message) < 160:
        parts.append(message)
    if progress.get("loss") is not None:
        parts.append(f"loss {float(progress['loss']):.3g}")
    if eta is not None and (message.find("ETA") < 0):
        parts.append(f"ETA {duration(eta)}")
    return " · ".join(p for p in parts if p)


def _status(job: Any, workspace: Any) -> str:
    if job.status == "waiting":
        from llmtutor import jobs

        place = jobs.place_in_line(workspace, job.id)
        return f"waiting ({'next' if place == 1 else f'#{place}'} in line)"
    return job.status


def _result(job: Any) -> str:
    if job.model_name:
        return f"model <b>{html.escape(job.model_name)}</b>"
    if job.error and job.status in ("failed", "interrupted"):
        return html.escape(job.error.splitlines()[0][:160])
    if job.output_dir:  # the folder's name only: the server's paths are no business of the page
        return f"<code>outputs/{html.escape(Path(job.output_dir).name)}</code>"
    return ""


def jobs_table(jobs_list: list[Any], workspace: Any, tracker: EtaTracker) -> str:
    """The learner's jobs as an HTML table with progress bars (every value escaped)."""
    if not jobs_list:
        return _NO_JOBS
    rows = []
    for job in jobs_list:
        progress = job.progress or {}
        running = job.status in ("running", "queued")
        pct = percent(progress) if running or job.status != "succeeded" else 100
        eta = tracker.eta(job.id, progress) if job.status == "running" else None
        bar = (
            f"<progress value='{pct}' max='100'></progress> {pct}%"
            + (f" · {progress.get('step')}/{progress.get('total')}" if progress.get("total") else "")
            if pct is not None
            else ""
        )
        stage = html.escape(progress_line({k: v for k, v in progress.items() if k not in ("step", "total")}))
        rows.append(
            f"<tr data-job='{html.escape(job.id)}' class='job-{html.escape(job.status)}'>"
            f"<td><code>{html.escape(job.id)}</code></td><td>{html.escape(job.kind)}</td>"
            f"<td>{html.escape(_status(job, workspace))}</td><td>{stage}</td><td>{bar}</td>"
            f"<td>{html.escape(duration(eta))}</td><td>{_result(job)}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("job", "kind", "status", "stage", "progress", "ETA", "result"))
    return f"<table class='jobs-table'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def loss_points(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(step, loss) of a job's training events, in order: the curve the Jobs tab draws."""
    points = []
    for event in events:
        step, loss = event.get("step"), event.get("loss")
        if isinstance(step, int | float) and isinstance(loss, int | float) and loss == loss:  # not NaN
            points.append((float(step), float(loss)))
    return points


def jobs_tab(session: Session) -> dict[str, Any]:
    """The tab's components and events; called inside `gr.Tab("Jobs")`. Returns the timer (the
    app pauses it on other tabs) and the refresh function."""
    import gradio as gr

    from llmtutor import jobs

    tracker = EtaTracker()
    workspace = session.tutor.settings.database

    def mine(request: Any) -> list[Any]:
        return jobs.list_jobs(workspace, 20, session.learner(request).id)

    @session.with_request
    def refresh(selected: str | None, request=None):
        try:
            listed = mine(request)
        except LLMTutorError as exc:
            return user_message(exc), gr.update(), "", gr.update()
        choices = [(f"{j.id} · {j.kind} · {j.status}", j.id) for j in listed]
        ids = [j.id for j in listed]
        chosen = selected if selected in ids else (ids[0] if ids else None)
        return (
            jobs_table(listed, workspace, tracker),
            gr.update(choices=choices, value=chosen),
            log(chosen, request),
            curve(chosen, request),
        )

    def curve(job_id: str | None, request: Any) -> Any:
        """The selected job's training loss per step (hidden when it has none)."""
        import pandas as pd

        points: list[tuple[float, float]] = []
        if job_id:
            try:
                jobs.owned(workspace, job_id, session.learner(request).id)
                points = loss_points(list(jobs.iter_events(workspace, job_id)))
            except LLMTutorError:
                points = []
        frame = pd.DataFrame(points, columns=["step", "loss"])
        return gr.update(value=frame, visible=len(points) > 1)

    def log(job_id: str | None, request: Any) -> str:
        if not job_id:
            return ""
        try:
            jobs.owned(workspace, job_id, session.learner(request).id)
            return "\n".join(jobs.tail_log(workspace, job_id, 40))
        except LLMTutorError as exc:
            return user_message(exc)

    @session.with_request
    def show_log(job_id: str | None, request=None):
        return log(job_id, request), curve(job_id, request)

    def act(action: str):
        @session.with_request
        def handler(job_id: str | None, request=None) -> str:
            if not job_id:
                return "Select a job first."
            try:
                job = jobs.owned(workspace, job_id, session.learner(request).id)
                if action == "cancel":
                    done = jobs.cancel(workspace, job.id)
                    return f"Job {done.id}: {done.status}."
                jobs.resume(workspace, job.id)
                return f"Job {job.id} resumed from its last checkpoint."
            except LLMTutorError as exc:
                return user_message(exc)

        return handler

    table = gr.HTML(_NO_JOBS, label="Jobs", elem_id="jobs-table")
    with gr.Row():
        picked = gr.Dropdown([], label="Job", scale=3, elem_id="job-picked")
        cancel_btn = gr.Button("Cancel job", variant="stop", scale=1, elem_id="job-cancel")
        resume_btn = gr.Button("Resume job", scale=1, elem_id="job-resume")
        refresh_btn = gr.Button("Refresh", scale=1, elem_id="job-refresh")
    note = gr.Markdown(label="Job action", elem_id="job-note")
    logs = gr.Code(label="Log (last 40 lines)", language=None, interactive=False, elem_id="job-log")
    loss_curve = gr.LinePlot(
        x="step", y="loss", title="Training loss", visible=False, elem_id="job-loss", height=260
    )
    timer = gr.Timer(REFRESH_S, active=False)

    outputs = [table, picked, logs, loss_curve]
    timer.tick(refresh, picked, outputs, show_progress="hidden", api_visibility="private")
    refresh_btn.click(refresh, picked, outputs, api_name="jobs")
    picked.input(show_log, picked, [logs, loss_curve], api_name="job_log")
    cancel_btn.click(act("cancel"), picked, note, api_name="cancel_job").then(
        refresh, picked, outputs, api_visibility="private"
    )
    resume_btn.click(act("resume"), picked, note, api_name="resume_job").then(
        refresh, picked, outputs, api_visibility="private"
    )
    return {"timer": timer, "refresh": refresh, "inputs": [picked], "outputs": outputs}
