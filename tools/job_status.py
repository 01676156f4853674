"""The `job_status` tool: how the learner's jobs are going (status, progress, last log lines), or cancel one."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.tools.registry import ToolContext, ToolSpec

EXAMPLES: tuple[str, ...] = (
    "Are my jobs done yet?",
    "Check on the running job",
    "What is the loss of the current training run?",
    "Resume status: did the job fail?",
    "How is my fine-tuning job going?",
    "Is the training finished?",
    "Show the progress of the running job",
    "Cancel the training job",
    "Stop the running job",
    "Show the logs of my last job",
    "List my jobs",
    "Has the quantization job finished running?",
    "Is the SFT run still in progress?",
    "训练进度怎么样了？",
    "把训练停下来",
    "训练任务现在到哪一步了？",
    "任务失败了吗？看看状态",
    "当前训练的损失是多少？",
    "取消这个任务",
    "我的任务完成了吗？",
    "查看任务日志",
    "列出我的所有任务",
    "合并任务还在运行吗？",
    "微调跑到第几步了？",
)


class JobStatusInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["status", "list", "cancel", "logs"] = "status"
    job_id: str | None = Field(None, description="Job id; empty = the most recent job.")


class JobStatusOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str
    jobs: list[dict[str, Any]]
    log_tail: list[str] = Field(default_factory=list)

    def to_markdown(self) -> str:
        if not self.jobs:
            return "No jobs yet. Start one, e.g. “Fine-tune the model on the course dataset”."
        lines = ["| job | kind | status | progress | started | result |", "|---|---|---|---|---|---|"]
        for j in self.jobs:
            p = j.get("progress") or {}
            prog = f"{p.get('stage', '')} {p.get('step', '')}/{p.get('total', '')}".strip(" /")
            if p.get("loss") is not None:
                prog += f", loss {p['loss']:.3g}"
            result = j.get("model_name") or j.get("output_dir") or j.get("error") or ""
            lines.append(
                f"| `{j['id']}` | {j['kind']} | {j['status']} | {prog} | {j.get('started_at') or ''} | {result} |"
            )
        if self.log_tail:
            lines += ["", "```", *self.log_tail, "```"]
        return "\n".join(lines)


def run_status(cfg: JobStatusInput, ctx: ToolContext) -> JobStatusOutput:
    from llmtutor import jobs as runner

    fields = (
        "id",
        "kind",
        "status",
        "progress",
        "started_at",
        "finished_at",
        "output_dir",
        "model_name",
        "error",
    )
    # A shared server's learner sees and cancels only their own jobs; the local learner, all.
    mine = None if ctx.learner_id == "local" else ctx.learner_id
    jobs = runner.list_jobs(ctx.database, limit=20, learner_id=mine)
    if cfg.action == "list":
        return JobStatusOutput(action="list", jobs=[j.model_dump(include=set(fields)) for j in jobs])
    job_id = cfg.job_id or (jobs[0].id if jobs else None)
    if job_id is None:
        return JobStatusOutput(action=cfg.action, jobs=[])
    if cfg.action == "cancel":
        active = cfg.job_id or next((j.id for j in jobs if j.status in ("running", "queued")), job_id)
        runner.owned(ctx.database, active, ctx.learner_id)
        job = runner.cancel(ctx.database, active)
    else:
        job = runner.owned(ctx.database, job_id, ctx.learner_id)
    tail = runner.tail_log(ctx.database, job.id, 15 if cfg.action == "logs" else 5)
    return JobStatusOutput(action=cfg.action, jobs=[job.model_dump(include=set(fields))], log_tail=tail)


def extract_status_args(text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if re.search(r"cancel|stop|kill|abort|取消|停止|终止", text, re.I):
        args["action"] = "cancel"
    elif re.search(r"\blogs?\b|日志", text, re.I):
        args["action"] = "logs"
    elif re.search(r"\blist\b|all (?:my )?jobs|所有任务|列出", text, re.I):
        args["action"] = "list"
    if match := re.search(r"\b([0-9a-f]{10})\b", text):
        args["job_id"] = match.group(1)
    return args


TOOL = ToolSpec(
    name="job_status",
    description="Status, progress and last log lines of the learner's long jobs (fine-tuning, evaluation, merging); "
    "list them, show logs, or cancel the running one.",
    input_model=JobStatusInput,
    output_model=JobStatusOutput,
    func=run_status,
    examples=EXAMPLES,
    writes=True,  # cancel
    extract_args=extract_status_args,
)
