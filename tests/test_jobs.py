"""Durable jobs with the demo kind: real worker processes, SQLite state, cancel, crash, resume."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import job_demo  # noqa: F401 - registers the "demo" job kind
import pytest

from llmtutor import jobs as runner
from llmtutor.errors import ToolInputError
from llmtutor.jobs.resources import InsufficientMemoryError, check_fits
from llmtutor.paths import PathNotAllowedError, resolve_user_path


def _wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_job_succeeds_and_artifacts_move_into_outputs(tmp_path):
    events = []
    job_id = runner.submit(tmp_path, "demo", {"steps": 3, "sleep_s": 0.05, "name": "counted"})
    job = runner.wait(tmp_path, job_id, timeout=60, on_event=events.append, poll_s=0.1)
    assert job.status == "succeeded", runner.tail_log(tmp_path, job_id)
    final = Path(job.output_dir or "")
    assert final == tmp_path / "outputs" / "counted" and (final / "report.json").is_file()
    assert not (tmp_path / "jobs" / job_id / "staging").exists()
    assert job.artifacts["report"].endswith("report.json") and job.summary == "ran steps [1, 2, 3]"
    assert [e["step"] for e in events if e.get("step")] and events[0]["stage"] == "train"
    again = runner.wait(
        tmp_path, runner.submit(tmp_path, "demo", {"steps": 1, "sleep_s": 0, "name": "counted"}), timeout=60
    )
    assert again.output_dir and again.output_dir.endswith("counted-2")  # never overwrites an earlier result


def test_failed_job_records_the_error_and_leaves_nothing_finished(tmp_path):
    job = runner.wait(
        tmp_path, runner.submit(tmp_path, "demo", {"steps": 4, "fail_at": 2, "sleep_s": 0}), timeout=60
    )
    assert job.status == "failed" and "planned failure at step 2" in (job.error or "")
    assert not (tmp_path / "outputs").exists()
    assert any("planned failure" in line for line in runner.tail_log(tmp_path, job.id, 50))


def test_cancel_mid_run(tmp_path):
    job_id = runner.submit(tmp_path, "demo", {"steps": 200, "sleep_s": 0.05})
    assert _wait_for(lambda: (runner.get(tmp_path, job_id).progress or {}).get("step", 0) >= 2)
    job = runner.cancel(tmp_path, job_id, grace_s=10)
    assert job.status == "cancelled" and not (tmp_path / "outputs").exists()
    assert not (tmp_path / "jobs" / job_id / "staging").exists()
    with pytest.raises(runner.JobError, match="already ended"):
        runner.cancel(tmp_path, job_id)


def test_killed_worker_is_interrupted_then_resumes_from_its_checkpoint(tmp_path):
    job_id = runner.submit(tmp_path, "demo", {"steps": 30, "sleep_s": 0.1})
    assert _wait_for(lambda: (runner.get(tmp_path, job_id).progress or {}).get("step", 0) >= 3)
    os.killpg(runner.get(tmp_path, job_id).pid or 0, signal.SIGKILL)  # a crash / OOM kill
    assert _wait_for(
        lambda: runner.recover(tmp_path) == [job_id] or runner.get(tmp_path, job_id).status == "interrupted"
    )
    assert runner.get(tmp_path, job_id).status == "interrupted"
    done_before = int((tmp_path / "jobs" / job_id / "checkpoints" / "step.txt").read_text())
    runner.resume(tmp_path, job_id)
    job = runner.wait(tmp_path, job_id, timeout=60)
    assert job.status == "succeeded" and job.attempts == 2
    assert job.result and job.result["steps_run"][0] == done_before + 1  # continued, not restarted


def test_bad_config_and_kind_are_refused_before_starting(tmp_path):
    with pytest.raises(ToolInputError):
        runner.submit(tmp_path, "nope", {})
    with pytest.raises(ValueError):
        runner.submit(tmp_path, "demo", {"steps": "many"})
    assert runner.list_jobs(tmp_path) == []


def test_paths_stay_inside_the_workspace_or_allowed_folders(tmp_path):
    ws, allowed = tmp_path / "ws", tmp_path / "data"
    ws.mkdir()
    allowed.mkdir()
    (allowed / "d.jsonl").write_text("{}\n")
    assert resolve_user_path("x.jsonl", ws) == (ws / "x.jsonl").resolve()
    assert (
        resolve_user_path(allowed / "d.jsonl", ws, allowed=[allowed], must_exist=True)
        == (allowed / "d.jsonl").resolve()
    )
    for bad in ("../data/d.jsonl", "/etc/passwd", str(allowed / "d.jsonl")):
        with pytest.raises(PathNotAllowedError, match="LLMTUTOR_ALLOWED_DIRS"):
            resolve_user_path(bad, ws)
    (ws / "link").symlink_to("/etc")
    with pytest.raises(PathNotAllowedError):
        resolve_user_path("link/passwd", ws)
    with pytest.raises(ToolInputError, match="does not exist"):
        resolve_user_path("missing.jsonl", ws, must_exist=True)


def test_memory_check_refuses_with_the_numbers():
    with pytest.raises(
        InsufficientMemoryError, match=r"needs about [\d.]+ GiB but only [\d.]+ GiB is free on cpu"
    ):
        check_fits(10**15, "cpu", "full fine-tuning of a 70B model")
    assert check_fits(1, "cpu", "tiny") > 0


def test_cli_and_job_status_tool(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from llmtutor.tools.job_status import TOOL
    from llmtutor.tools.registry import ToolContext
    from llmtutor.ui.cli import app

    monkeypatch.setenv("LLMTUTOR_WORKSPACE", str(tmp_path))
    job_id = runner.submit(tmp_path, "demo", {"steps": 2, "sleep_s": 0})
    cli = CliRunner()
    followed = cli.invoke(app, ["jobs", "logs", job_id, "--follow"])
    assert followed.exit_code == 0 and "succeeded" in followed.stdout
    listed = cli.invoke(app, ["jobs", "list", "--json"])
    assert listed.exit_code == 0 and job_id in listed.stdout
    assert cli.invoke(app, ["jobs", "cancel", job_id]).exit_code == 2  # already ended: a clear error
    out = TOOL.run({"action": "status"}, ToolContext(workspace=tmp_path))
    assert out.jobs[0]["id"] == job_id and "succeeded" in out.to_markdown()
    long_id = runner.submit(tmp_path, "demo", {"steps": 100, "sleep_s": 0.05})
    assert _wait_for(lambda: runner.get(tmp_path, long_id).status == "running")
    cancelled = TOOL.run(TOOL.extract_args("停止正在运行的训练任务"), ToolContext(workspace=tmp_path))  # type: ignore[misc]
    assert cancelled.jobs[0]["id"] == long_id and cancelled.jobs[0]["status"] == "cancelled"


def test_jobs_written_before_kinds_registered_themselves_still_resume(tmp_path):
    """A v1 job table (no kind_module column) is migrated and its rows point at their recipe module."""
    import sqlite3

    from llmtutor.jobs import store

    con = sqlite3.connect(tmp_path / store.DB_FILE, isolation_level=None)
    con.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT, applied_at TEXT)"
    )
    con.executescript(store.MIGRATIONS[0][2])
    con.execute("INSERT INTO schema_version VALUES (1, 'v1', '2026-11-01T00:00:00')")
    con.execute(
        "INSERT INTO jobs (id, kind, config, status, created_at, log_file) "
        "VALUES ('old1', 'merge', '{}', 'interrupted', '2026-11-01T00:00:00', 'x.log')"
    )
    con.close()
    job = runner.get(tmp_path, "old1")
    assert job.kind_module == "llmtutor.training.merge"
    from llmtutor.jobs.kinds import get_kind

    assert get_kind(job.kind, job.kind_module).config.__name__ == "MergeConfig"
