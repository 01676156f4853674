"""The `finetune_model` tool: SFT (LoRA, QLoRA, full), DPO or ORPO on the learner's data, as a job.

Before approval the preview validates the dataset (format detected, row-level errors), estimates
memory against what is free, and shows the plan; the job (outside the chat process) reports
progress, can be cancelled and resumed, and registers the merged model so the learner can
evaluate it, merge it, quantize it or chat with it. The recipe is `llmtutor.training.finetune`;
the methods, their descriptions, data and defaults come from `llmtutor.training.finetune.methods`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmtutor.paths import check_name
from llmtutor.tools.lab_jobs import JobOutput, check_memory, check_model_ref, resolve_input_path, run_lab_job
from llmtutor.tools.registry import ToolContext, ToolSpec
from llmtutor.training.finetune.methods import MethodName, get_method, list_methods

BUNDLED = ("course", "bundled", "default", "")


def _describe_lr(schema: dict[str, Any]) -> None:
    # built with the schema, so methods registered later are described too
    rates = ", ".join(f"{m.name} {m.lr_adapter:.0e} / {m.lr_full:.0e}" for m in list_methods())
    schema["description"] = f"Default per method, adapter / full fine-tuning: {rates}.".replace("e-0", "e-")


class FinetuneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(
        "course",
        description="Path to JSONL/JSON/CSV/Parquet (Alpaca, chat messages, text or "
        "prompt/chosen/rejected), inside the workspace or an allowed folder; 'course' = the bundled set.",
    )
    base_model: str | None = Field(
        None, description="Base model: a registered name, an HF folder, or empty for SmolLM2."
    )
    method: MethodName = "sft"
    adapter: Literal["lora", "qlora", "full"] = "lora"
    lora_r: int = Field(8, ge=1, le=256)
    lora_alpha: int | None = Field(None, ge=1, le=1024, description="Default: 2 × rank.")
    epochs: float = Field(1.0, gt=0, le=50)
    max_steps: int | None = Field(None, ge=1, le=100_000)
    learning_rate: float | None = Field(None, gt=0, le=1, json_schema_extra=_describe_lr)
    batch_size: int = Field(4, ge=1, le=512)
    grad_accum: int = Field(1, ge=1, le=512)
    max_seq_len: int = Field(256, ge=16, le=32_768)
    gradient_checkpointing: bool = False
    num_processes: int = Field(
        1,
        ge=1,
        le=64,
        description="Devices to train on together (data parallel): one process per GPU, or CPU "
        "processes; batch_size is per device, so the global batch grows with it.",
    )
    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="With several processes: ddp (a model copy per GPU) or fsdp (weights sharded "
        "over the GPUs, for models too large for one; CUDA only).",
    )
    merge: bool = Field(True, description="Also write the merged model (chat-ready).")
    name: str | None = Field(None, description="Name to register the result under.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "output name")

    @model_validator(mode="after")
    def _qlora_with_ddp(self) -> FinetuneRequest:
        if self.adapter == "qlora" and self.distributed == "fsdp" and self.num_processes > 1:
            raise ValueError("QLoRA trains with distributed='ddp' (one 4-bit copy per GPU), not fsdp")
        return self

    seed: int = 42
    evaluate: bool = Field(
        True,
        description="Afterwards, compare base and fine-tuned model in an eval card "
        "(perplexity on the course notes, the course quiz).",
    )


def _dataset_path(req: FinetuneRequest, ctx: ToolContext) -> Path:
    from llmtutor.training.finetune.config import bundled_dataset

    if req.dataset.strip().lower() in BUNDLED:
        return bundled_dataset(req.method)
    return resolve_input_path(req.dataset, ctx)


def build_config(req: FinetuneRequest, ctx: ToolContext, output_dir: Path) -> Any:
    from llmtutor.training.finetune import FinetuneConfig

    name = req.name or f"{Path(str(req.base_model or 'smollm2')).name.lower()}-{req.method}-{req.adapter}"
    return FinetuneConfig(
        base_model=check_model_ref(req.base_model, ctx) if req.base_model else None,
        models_dir=ctx.models_dir,
        dataset=_dataset_path(req, ctx),
        method=req.method,
        adapter=req.adapter,
        lora_r=req.lora_r,
        lora_alpha=req.lora_alpha or 2 * req.lora_r,
        epochs=req.epochs,
        max_steps=req.max_steps,
        batch_size=req.batch_size,
        grad_accum=req.grad_accum,
        learning_rate=req.learning_rate,
        max_seq_len=req.max_seq_len,
        gradient_checkpointing=req.gradient_checkpointing,
        num_processes=req.num_processes,
        distributed=req.distributed,
        merge=req.merge,
        name=name[:80],
        seed=req.seed,
        device=ctx.device,
        output_dir=output_dir,
        # a checkpoint every ~fifth of a short run, so `jobs resume` after a crash loses little
        save_steps=max(5, min(100, (req.max_steps or 100) // 5)),
    )


def _training_bytes(req: FinetuneRequest, ctx: ToolContext) -> tuple[int, str]:
    """Memory estimate of the run from the base model's config (training/memory.py)."""
    from llmtutor.hf_models import gguf_params, pick_device, source_without_writing
    from llmtutor.training.memory import MemoryEstimateConfig
    from llmtutor.training.memory import run as estimate

    # The plan reads the model as it is on disk: a GGUF is converted only by the approved job.
    base = check_model_ref(req.base_model, ctx) if req.base_model else None
    source = source_without_writing(base, ctx.models_dir)
    device = pick_device(ctx.device)
    mode = {"lora": "lora", "qlora": "qlora" if device.startswith("cuda") else "lora", "full": "full"}[
        req.adapter
    ]
    precision = "nf4" if mode == "qlora" else ("fp32" if device == "cpu" else "bf16")
    est = estimate(
        MemoryEstimateConfig(
            config_path=str(source) if source is not None and source.is_dir() else None,
            params=gguf_params(source) if source is not None and source.is_file() else None,
            model=None if source is not None else str(base),
            mode=mode,
            precision=precision,
            context_length=req.max_seq_len,
            batch_size=req.batch_size,
            lora_rank=req.lora_r,
            gradient_checkpointing=req.gradient_checkpointing,
        )
    )
    # e.g. DPO/ORPO run chosen and rejected through the model: ~2x activations
    return int(est.total_bytes * get_method(req.method).memory_factor), device


def preview(req: FinetuneRequest, ctx: ToolContext) -> str:
    from llmtutor.training.finetune import load_dataset_rows

    data = _dataset_path(req, ctx)
    report = load_dataset_rows(data)  # raises DatasetError with row-level problems
    pairs = get_method(req.method).data == "preference"
    if pairs != (report.format == "preference"):
        from llmtutor.training.finetune import DatasetError

        raise DatasetError(
            f"{data.name} is {report.format} data but {req.method.upper()} needs "
            f"{'preference (prompt/chosen/rejected)' if pairs else 'instruction, chat or text'} rows",
            "pick the matching method or dataset",
        )
    need, device = _training_bytes(req, ctx)
    sharing = req.num_processes if device == "cpu" else 1  # CPU processes share the RAM; GPUs have their own
    free = check_memory(need * sharing, device, f"{req.method} {req.adapter} fine-tuning")
    cfg = build_config(req, ctx, ctx.outputs_dir / "preview")
    if cfg.num_processes > 1:
        from llmtutor.training.finetune.launch import launch_device

        launch_device(cfg)  # enough GPUs, FSDP not on the CPU: refused before approval
    steps = req.max_steps or max(1, int(len(report.rows) * (1 - 0.1) * req.epochs / cfg.global_batch_size))
    notes = []
    if req.adapter == "qlora" and device == "cpu":
        notes.append(
            "QLoRA's 4-bit NF4 base needs CUDA (bitsandbytes' CPU path is slow); this run uses LoRA on CPU."
        )
    lines = [
        f"**Plan: {req.method.upper()} with {req.adapter} → `{cfg.name}`**",
        "",
        "| setting | value |",
        "|---|---|",
        f"| base model | {req.base_model or 'SmolLM2-135M-Instruct (bundled)'} |",
        f"| data | `{data.name}`: {len(report.rows)} rows, {report.source_format} format |",
        f"| LoRA | r={cfg.lora_r}, alpha={cfg.lora_alpha} |"
        if req.adapter != "full"
        else "| weights | all trained |",
        f"| schedule | {req.epochs:g} epoch(s), ~{steps} steps, batch {req.batch_size}×{req.grad_accum}, "
        f"lr {cfg.learning_rate or 'auto'}, max {req.max_seq_len} tokens |",
        f"| processes | {_processes(cfg, device)} |",
        f"| memory | ~{need / 2**30:.2f} GiB needed{' per process' if cfg.num_processes > 1 else ''}, "
        f"{free / 2**30:.1f} GiB free on {device}{' (shared)' if sharing > 1 else ''} |",
        f"| output | adapter{', merged model' if req.merge else ''}, loss curve, metrics, model card"
        f"{'; then an eval card: base vs fine-tuned' if req.evaluate else ''} |",
    ]
    return "\n".join(lines + ([""] + notes if notes else []))


def _processes(cfg: Any, device: str) -> str:
    """The plan's line on devices and batch sizes."""
    n = cfg.num_processes
    per_device = f"batch {cfg.batch_size}×{cfg.grad_accum} per device, global batch {cfg.global_batch_size} rows per step"
    if n == 1:
        return f"1 ({device}), {per_device}"
    where = f"{n} GPUs, NCCL" if device.startswith("cuda") else f"{n} CPU processes, gloo"
    launcher = "accelerate launch" if device.startswith("cuda") else "torchrun"
    return f"{n} × {cfg.distributed.upper()} ({where}, {launcher}), {per_device}"


def run_finetune(req: FinetuneRequest, ctx: ToolContext) -> JobOutput:
    trained = run_lab_job("finetune", lambda out: build_config(req, ctx, out), ctx)
    if not (req.evaluate and trained.status == "succeeded" and trained.model_name):
        return trained
    from llmtutor.tools.evaluate_model import EvaluateRequest
    from llmtutor.tools.evaluate_model import build_config as eval_config

    # The eval card the learner needs to judge the run: base vs fine-tuned, same data, same job runner.
    base = req.base_model or "base"
    request = EvaluateRequest(
        models=[base, trained.model_name], metrics=["perplexity", "lm_eval"], quick=True
    )
    card = run_lab_job("evaluate", lambda out: eval_config(request, ctx, out), ctx)
    if card.status != "succeeded":
        trained.summary += (
            f"\n\nThe eval card could not be made (job {card.job_id}: {card.error or card.status})."
        )
        return trained
    trained.summary += f"\n\n{card.summary}"
    trained.plots += card.plots
    trained.metrics["eval"] = card.metrics
    return trained


# ----- routing examples and argument extraction -------------------------------------
# The default chat model (SmolLM2-135M) cannot fill tool arguments reliably, so a request like
# "用 LoRA 微调，学习率 2e-4，训练 2 个 epoch" is parsed here; capable backends fill the same
# fields through native tool calling.
EXAMPLES: tuple[str, ...] = (
    "Fine-tune the model on my data with LoRA rank 16",
    "Fine-tune SmolLM2 on data/chat.jsonl",
    "Train a LoRA adapter on the course dataset",
    "Run supervised fine-tuning on my instructions file",
    "Start an SFT job with learning rate 1e-4 for 2 epochs",
    "Fine-tune with QLoRA on my dataset",
    "Do a full fine-tune of the base model for 100 steps",
    "Align the model with DPO on the preference pairs",
    "Preference-tune my chat model with DPO on chosen/rejected answers",
    "Run ORPO on my preference data",
    "Train the model on train.csv with batch size 8",
    "Fine-tune the model on my chat transcripts in messages format",
    "Launch a fine-tuning run with LoRA r=8 and alpha 16",
    "Continue training the tutor model on my notes",
    "Teach the model my Alpaca-style dataset",
    "Can you train an adapter on my notes for 2 epochs?",
    "Fine-tune on the bundled course Q&A and merge the adapter",
    "LoRA 微调三个 epoch，学习率设为 1e-4",
    "在我的数据上微调模型",
    "用我的数据集训练一个 LoRA 适配器",
    "用 QLoRA 微调这个模型",
    "对模型做全参数微调，训练 100 步",
    "用 DPO 对齐模型",
    "用偏好数据做 ORPO 训练",
    "在课程问答数据上做监督微调",
    "开始一个微调任务，秩设为 16",
    "用 data/train.jsonl 微调 SmolLM2",
    "帮我训练一个模型，批大小 8",
    "能用我的数据帮我微调一下吗？",
    "微调模型并合并 LoRA 权重",
)

_A = r"(?<![A-Za-z])"  # ASCII word edges: \b treats Chinese characters as letters
_Z = r"(?![A-Za-z])"
_DATA_FILE = re.compile(r"([\w./~-]+\.(?:jsonl|json|csv|parquet|txt))", re.I)
_RANK = re.compile(_A + r"(?:rank|r)\s*[=:]?\s*(\d{1,4})" + r"|秩\s*(?:设为|为|=)?\s*(\d{1,4})", re.I)
_ALPHA = re.compile(_A + r"alpha\s*[=:]?\s*(\d{1,4})", re.I)
_LR = re.compile(r"(?:learning[ _-]?rate|lr|学习率)\s*(?:of|=|:|为|设为)?\s*(\d+(?:\.\d+)?(?:e-?\d+)?)", re.I)
_EPOCHS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:个\s*)?(?:epochs?|轮)" + _Z, re.I)
_STEPS = re.compile(r"(\d{1,6})\s*(?:steps?|步)" + _Z, re.I)
_BATCH = re.compile(r"(?:batch[ _-]?size|批大小|批量大小|batch)\s*(?:of|=|:|为|设为)?\s*(\d{1,4})", re.I)
_SEQ = re.compile(
    r"(?:max[ _-]?(?:seq(?:uence)?[ _-]?len(?:gth)?|length)|序列长度|最大长度)\s*(?:of|=|:|为)?\s*(\d{2,6})",
    re.I,
)
_PROCESSES = re.compile(
    r"(\d{1,2})\s*(?:GPUs|devices|processes|(?:张|块|个)\s*(?:GPU|显卡|卡)|个进程)" + _Z, re.I
)
_BASE = re.compile(
    r"(?:fine-?tune|train|微调|训练)\s+([A-Za-z0-9][\w./-]{1,79})\s+(?:on|with|using|在|用)", re.I
)
_NOT_A_MODEL = {"the", "my", "this", "it", "a", "model", "smollm2", "default", "base", "our", "your", "an"}
_NAME = re.compile(
    r"(?:call(?:ed)? it|name(?:d)? it|named|命名为|叫做?)\s*[\"'“]?([A-Za-z0-9][\w.-]{0,79})", re.I
)


def extract_finetune_args(text: str) -> dict[str, Any]:
    """Fields named in an English or Chinese request; only those found."""
    args: dict[str, Any] = {}
    if match := _DATA_FILE.search(text):
        args["dataset"] = match.group(1)
    lowered = text.lower()
    if re.search(_A + r"dpo" + _Z, text, re.I):
        args["method"] = "dpo"
    elif re.search(_A + r"orpo" + _Z, text, re.I):
        args["method"] = "orpo"
    if re.search(_A + r"qlora" + _Z, text, re.I):
        args["adapter"] = "qlora"
    elif re.search(r"full[ -]?(?:parameter )?fine[ -]?tun|full fine|全参数|全量", lowered):
        args["adapter"] = "full"
    if match := _RANK.search(text):
        args["lora_r"] = int(match.group(1) or match.group(2))
    if match := _ALPHA.search(text):
        args["lora_alpha"] = int(match.group(1))
    if match := _LR.search(text):
        args["learning_rate"] = float(match.group(1))
    if match := _EPOCHS.search(text):
        args["epochs"] = float(match.group(1))
    if match := _STEPS.search(text):
        args["max_steps"] = int(match.group(1))
    if match := _BATCH.search(text):
        args["batch_size"] = int(match.group(1))
    if match := _SEQ.search(text):
        args["max_seq_len"] = int(match.group(1))
    if match := _PROCESSES.search(text):
        args["num_processes"] = int(match.group(1))
    if re.search(_A + r"fsdp" + _Z, text, re.I):
        args["distributed"] = "fsdp"
    if (match := _BASE.search(text)) and match.group(1).lower() not in _NOT_A_MODEL:
        args["base_model"] = match.group(1)
    if match := _NAME.search(text):
        args["name"] = match.group(1).rstrip(".")
    if re.search(r"(?:don'?t|do not|without|no)\s+merg|不(?:要)?合并", lowered):
        args["merge"] = False
    return args


TOOL = ToolSpec(
    name="finetune_model",
    description=(
        "Fine-tune a model on the learner's data (or the bundled course dataset) as a job with one of the methods "
        f"{', '.join(m.name for m in list_methods())} (SFT, or preference alignment on chosen/rejected pairs) and "
        "LoRA (default), QLoRA on CUDA or full fine-tuning. Shows the plan and memory "
        "estimate first, reports progress, and produces the adapter, merged model, loss curve and model card."
    ),
    input_model=FinetuneRequest,
    output_model=JobOutput,
    func=run_finetune,
    examples=EXAMPLES,
    expensive=True,
    writes=True,
    extract_args=extract_finetune_args,
    preview=preview,
)
