"""The job table, shared by the tutor processes and job workers: SQLite in the workspace, or the
`jobs` schema of the Postgres database of `LLMTUTOR_DATABASE_URL` (llmtutor/database.py).

`where` is the workspace folder (jobs.sqlite in it) or the workspace's `Database`. On SQLite,
WAL mode and a busy timeout let a worker append progress while the server reads it.
Migrations are append-only (`schema_version`), like the course database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.database import Connection, Database, location_of
from llmtutor.database import connect as connect_to

# "waiting": in the learner's line behind their running job, not started (no worker yet);
# "queued": its worker has been started and is loading.
Status = Literal["waiting", "queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
FINAL: tuple[str, ...] = ("succeeded", "failed", "cancelled", "interrupted")
DB_FILE = "jobs.sqlite"
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "jobs and their progress events",
        """
CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL, status TEXT NOT NULL,
    progress TEXT, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, pid INTEGER,
    log_file TEXT NOT NULL, output_dir TEXT, artifacts TEXT, result TEXT, summary TEXT, model_name TEXT,
    error TEXT, attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE job_events (job_id TEXT NOT NULL REFERENCES jobs(id), seq INTEGER NOT NULL, at TEXT NOT NULL,
    event TEXT NOT NULL, PRIMARY KEY (job_id, seq));
""",
    ),
    (
        2,
        "the module that registers each job's kind (the worker imports it)",
        # Rows written before kinds registered themselves ran one of these four recipes.
        """
ALTER TABLE jobs ADD COLUMN kind_module TEXT;
UPDATE jobs SET kind_module = CASE kind
    WHEN 'finetune' THEN 'llmtutor.training.finetune'
    WHEN 'evaluate' THEN 'llmtutor.tools.evaluate_model'
    WHEN 'merge' THEN 'llmtutor.training.merge'
    WHEN 'quantize' THEN 'llmtutor.training.quantize' END;
""",
    ),
    (
        3,
        "jobs belong to a learner",
        """
ALTER TABLE jobs ADD COLUMN learner_id TEXT NOT NULL DEFAULT 'local';
CREATE INDEX jobs_by_learner ON jobs (learner_id, created_at);
""",
    ),
    (
        4,
        "submission order (SQLite has it as rowid)",
        {
            "sqlite": "",  # nothing to add: rowid
            "postgres": "ALTER TABLE jobs ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY",
        },
    ),
)
Where = Path | Database


class Job(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    kind: str
    kind_module: str | None = None
    config: dict[str, Any]
    status: Status
    progress: dict[str, Any] | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    pid: int | None = None
    log_file: str
    output_dir: str | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    summary: str | None = None
    model_name: str | None = None
    error: str | None = None
    attempts: int = 0
    learner_id: str = "local"  # whose job (llmtutor/users.py)


def now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def folder(where: Where) -> Path:
    """The workspace folder (job logs, staging and outputs live there with either database)."""
    return Path(where.workspace if isinstance(where, Database) else where)


@contextmanager
def connect(where: Where) -> Iterator[Connection]:
    location = location_of(where, DB_FILE) if isinstance(where, Database) else folder(where) / DB_FILE
    with connect_to(location, MIGRATIONS, schema="jobs", name=str(location), wal=True) as con:
        yield con


_JSON = ("config", "progress", "artifacts", "result")
_COLUMNS = ", ".join(Job.model_fields)


def _order(con: Connection) -> str:
    """The column that keeps submission order within a second (created_at's resolution)."""
    return "rowid" if con.dialect == "sqlite" else "seq"


def _row(row: tuple) -> Job:
    data = dict(zip(Job.model_fields, row, strict=True))
    for key in _JSON:
        data[key] = json.loads(data[key]) if data[key] else ({} if key == "artifacts" else None)
    return Job.model_validate(data)


def insert(workspace: Where, job: Job) -> None:
    with connect(workspace) as con:
        con.execute(
            "INSERT INTO jobs (id, kind, kind_module, config, status, created_at, log_file, attempts, learner_id)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (
                job.id,
                job.kind,
                job.kind_module,
                json.dumps(job.config),
                job.status,
                job.created_at,
                job.log_file,
                job.attempts,
                job.learner_id,
            ),
        )


def update(workspace: Where, job_id: str, **fields: Any) -> None:
    values = {k: json.dumps(v) if k in _JSON and v is not None else v for k, v in fields.items()}
    with connect(workspace) as con:
        con.execute(
            f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
            (*values.values(), job_id),
        )


def get(workspace: Where, job_id: str) -> Job | None:
    with connect(workspace) as con:
        row = con.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return _row(row) if row else None


def list_jobs(workspace: Where, limit: int = 20, learner_id: str | None = None) -> list[Job]:
    """The newest jobs: all of them, or one learner's."""
    where, params = ("WHERE learner_id = ? ", (learner_id,)) if learner_id is not None else ("", ())
    with connect(workspace) as con:
        rows = con.execute(
            f"SELECT {_COLUMNS} FROM jobs {where}ORDER BY created_at DESC, {_order(con)} DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
    return [_row(r) for r in rows]


def add_event(workspace: Where, job_id: str, event: dict[str, Any]) -> None:
    with connect(workspace) as con:
        seq = con.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = ?", (job_id,)
        ).fetchone()[0]
        con.execute("INSERT INTO job_events VALUES (?, ?, ?, ?)", (job_id, seq, now(), json.dumps(event)))
        con.execute("UPDATE jobs SET progress = ? WHERE id = ?", (json.dumps(event), job_id))


def events_after(workspace: Where, job_id: str, seq: int) -> list[tuple[int, dict[str, Any]]]:
    with connect(workspace) as con:
        rows = con.execute(
            "SELECT seq, event FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq", (job_id, seq)
        ).fetchall()
    return [(s, json.loads(e)) for s, e in rows]


def promote_next(workspace: Where, learner_id: str) -> str | None:
    """The learner's oldest waiting job becomes queued when none of theirs is queued or running.

    One statement under the learner's lock (SQLite's write lock; an advisory lock on Postgres,
    whose concurrent UPDATEs would otherwise each see the other's row still waiting), so two
    processes finishing or submitting at once never start two jobs."""
    with connect(workspace) as con, con.transaction(lock=f"jobs:{learner_id}"):
        row = con.execute(
            "UPDATE jobs SET status = 'queued' WHERE status = 'waiting' AND id = (SELECT id FROM jobs WHERE "
            f"learner_id = ? AND status = 'waiting' ORDER BY created_at, {_order(con)} LIMIT 1) AND NOT "
            "EXISTS (SELECT 1 FROM jobs WHERE learner_id = ? AND status IN ('queued', 'running')) RETURNING id",
            (learner_id, learner_id),
        ).fetchone()
    return row[0] if row else None


def waiting_ahead(workspace: Where, job: Job) -> int:
    """How many of the learner's jobs wait in line before this one."""
    with connect(workspace) as con:
        (count,) = con.execute(
            "SELECT COUNT(*) FROM jobs WHERE learner_id = ? AND status = 'waiting' AND "
            f"(created_at, {_order(con)}) < (SELECT created_at, {_order(con)} FROM jobs WHERE id = ?)",
            (job.learner_id, job.id),
        ).fetchone()
    return int(count)
