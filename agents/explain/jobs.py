"""Lab jobs (finetune, evaluate, merge, quantize → `JobOutput`) and `job_status`.

Only values of the job record are read: its id, kind, status, error, the registered model and,
for fine-tuning, the loss figures in `metrics`. The next step is a fixed command with the
model's name filled in, the same commands the job's own report names.
"""

from __future__ import annotations

from typing import Any

from llmtutor.agents.explain.wording import fixed, number, sentences

KINDS = {
    "en": {"finetune": "fine-tuning", "evaluate": "evaluation", "merge": "merge", "quantize": "quantization"},
    "zh": {"finetune": "微调", "evaluate": "评估", "merge": "合并", "quantize": "量化"},
}
STATUS = {
    "en": {
        "waiting": "is waiting in line behind your running job",
        "queued": "is queued",
        "running": "is running",
        "succeeded": "succeeded",
        "failed": "failed",
        "cancelled": "was cancelled",
        "interrupted": "was interrupted",
    },
    "zh": {
        "waiting": "在你正在运行的任务之后排队等候",
        "queued": "正在排队",
        "running": "正在运行",
        "succeeded": "已完成",
        "failed": "失败了",
        "cancelled": "已取消",
        "interrupted": "被中断了",
    },
}


def _job(job_id: Any, kind: Any, status: Any, language: str) -> str:
    kind_word = KINDS[language].get(str(kind), str(kind))
    state = STATUS[language].get(str(status), str(status))
    if language == "zh":
        return f"任务 `{job_id}`（{kind_word}）{state}"
    return f"Job `{job_id}` ({kind_word}) {state}"


def _end(text: str, zh: bool) -> str:
    """A sentence that ends like one (errors may come without a full stop)."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?", "。", "！", "？")) else text + ("。" if zh else ".")


def explain_job(output: dict[str, Any], args: dict[str, Any], language: str) -> str:
    """A finished (or failed) lab job: what happened, its losses, the new model, what to do next."""
    job_id, status = output.get("job_id"), output.get("status")
    if not job_id or not status:
        return ""
    zh = language == "zh"
    head = _job(job_id, output.get("kind"), status, language)
    error = output.get("error")
    if status != "succeeded":
        said = [_end(f"{head}：{error}" if zh else f"{head}: {error}", zh) if error else _end(head, zh)]
        if zh:
            said.append(f"查看日志：`llmtutor jobs show {job_id}`。")
        else:
            said.append(f"See its log with `llmtutor jobs show {job_id}`.")
        return sentences(said, language)
    said = [_end(head, zh)]
    said.append(_losses(output.get("metrics") or {}, language))
    name, kind = output.get("model_name"), output.get("model_kind")
    if name:
        said.append(f"新模型已注册为 **{name}**。" if zh else f"The new model is registered as **{name}**.")
        if kind == "gguf":
            command = f"LLMTUTOR_CHAT_MODEL={name} llmtutor chat"
        elif kind in ("merged", "full"):
            command = f"LLMTUTOR_BACKEND=hf LLMTUTOR_CHAT_MODEL={name} llmtutor chat"
        else:  # an adapter or a bitsandbytes model is no chat model by itself
            said.append(
                f"下一步：评估它（“evaluate {name}”），或把它合并进基础模型后再对话。"
                if zh
                else f"Next: evaluate it (“evaluate {name}”), or merge it into its base to chat with it."
            )
            return sentences(said, language)
        said.append(
            f"下一步：在网页的模型菜单里选它对话（或 `{command}`），或者评估它（“evaluate {name}”）。"
            if zh
            else f"Next: chat with it (pick it in the web app's model menu, or `{command}`) or evaluate "
            f"it (“evaluate {name}”)."
        )
    elif output.get("kind") == "evaluate":
        said.append(
            "上面的评估卡在同一份数据上比较了各个模型。"
            if zh
            else "The eval card above compares the models on the same data."
        )
    return sentences(said, language)


def _losses(metrics: dict[str, Any], language: str) -> str:
    first, last = number(metrics.get("train_loss_first")), number(metrics.get("train_loss_last"))
    steps, evaluated = metrics.get("steps"), number(metrics.get("eval_loss"))
    if first is None or last is None:
        return ""
    zh = language == "zh"
    over = (f"，共 {steps} 步" if zh else f" over {steps} steps") if isinstance(steps, int) else ""
    if zh:
        text = f"训练损失从 {fixed(first, 4)} 变为 {fixed(last, 4)}{over}"
        return text + (f"；验证损失 {fixed(evaluated, 4)}。" if evaluated is not None else "。")
    text = f"The training loss went from {fixed(first, 4)} to {fixed(last, 4)}{over}"
    return text + (f"; the eval loss is {fixed(evaluated, 4)}." if evaluated is not None else ".")


def explain_job_status(output: dict[str, Any], args: dict[str, Any], language: str) -> str:
    """States and progress straight from the job store's rows."""
    jobs = [j for j in output.get("jobs") or [] if isinstance(j, dict) and j.get("id")]
    if not jobs:
        return ""  # the table already says there are no jobs
    zh = language == "zh"
    said = []
    shown = (
        jobs
        if output.get("action") != "list"
        else [jobs[0]] + [j for j in jobs[1:] if j.get("status") in ("running", "queued", "waiting")]
    )
    for job in shown:
        said.append(_state(job, language))
    if output.get("action") == "list" and not any(
        j.get("status") in ("running", "queued", "waiting") for j in jobs
    ):
        said.append("现在没有正在运行的任务。" if zh else "Nothing is running now.")
    if output.get("action") == "logs" and output.get("log_tail"):
        said.append("最后几行日志在上面。" if zh else "The last lines of its log are above.")
    return sentences(said, language)


def _state(job: dict[str, Any], language: str) -> str:
    zh = language == "zh"
    head = _job(job["id"], job.get("kind"), job.get("status"), language)
    progress = job.get("progress") or {}
    extra = []
    if job.get("status") in ("running", "queued") and progress:
        step, total = progress.get("step"), progress.get("total")
        if progress.get("stage"):
            extra.append(str(progress["stage"]))
        if step is not None and total:
            extra.append(f"{step}/{total}")
        loss = number(progress.get("loss"))
        if loss is not None:
            extra.append(f"loss {loss:.3g}")
    if job.get("status") == "succeeded" and job.get("model_name"):
        extra.append(f"模型 {job['model_name']}" if zh else f"model {job['model_name']}")
    if job.get("status") == "failed" and job.get("error"):
        extra.append(str(job["error"]))
    if not extra:
        return _end(head, zh)
    return f"{head}（{'，'.join(extra)}）。" if zh else f"{head} ({', '.join(extra)})."
