"""What a fine-tuning run is: validated before any model is loaded, serialisable to JSON (the job
runner stores it and re-runs it in a subprocess: `FinetuneConfig.model_validate_json(text)`).
The methods (SFT, DPO, ORPO) and their defaults are registered in `methods.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmtutor.errors import ToolInputError
from llmtutor.model_registry import check_name
from llmtutor.training.finetune.methods import MethodName, choices, get_method

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "datasets"
BUNDLED_SFT = BUNDLED_DIR / "course_sft.jsonl"
BUNDLED_PREFERENCE = BUNDLED_DIR / "course_preference.jsonl"
# Every Llama-style linear layer: attention and MLP (the QLoRA paper's finding: adapting all of
# them matters more than the rank).
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def bundled_dataset(method: str) -> Path:
    """The bundled course data in the format `method` trains on."""
    return BUNDLED_PREFERENCE if get_method(method).data == "preference" else BUNDLED_SFT


class FinetuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str | None = Field(
        None, description="Local HF folder, registered name, .gguf or hub id; None = bundled SmolLM2."
    )
    models_dir: Path = Field(
        default_factory=lambda: Path("~/.llmtutor/models").expanduser(),
        description="Where the converted default model lives.",
    )
    dataset: Path | None = Field(
        None, description="JSONL/JSON/CSV/Parquet file; None = the bundled course data for the method."
    )
    dataset_format: Literal["auto", "alpaca", "chat", "text", "preference"] = "auto"
    method: MethodName = "sft"
    adapter: Literal["lora", "qlora", "full"] = "lora"
    lora_r: int = Field(8, ge=1, le=1024)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, description="None = q,k,v,o,gate,up,down projections.")
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    learning_rate: float | None = Field(
        None, gt=0, lt=1, description="None = a typical value for method and adapter."
    )
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    max_seq_len: int = Field(512, ge=16)
    packing: bool = Field(
        True, description="Pack rows into padding-free batches (no compute spent on padding)."
    )
    gradient_checkpointing: bool = False
    eval_fraction: float = Field(
        0.1, ge=0, lt=0.5, description="Held-out share of rows; 0 disables evaluation."
    )
    eval_steps: int | None = Field(None, ge=1, description="Evaluate every N steps; None = 4 times per run.")
    save_steps: int = Field(
        100, ge=1, description="Checkpoint every N steps (resume continues from the latest)."
    )
    save_total_limit: int = Field(2, ge=1)
    keep_checkpoints: bool = Field(False, description="Keep checkpoint_dir after a successful run.")
    beta: float = Field(
        0.1, gt=0, description="DPO: deviation from the reference; ORPO: weight of the odds-ratio term."
    )
    seed: int = 42
    merge: bool = Field(True, description="Also write merged/ (base + adapter as one plain model).")
    device: str = "auto"
    num_processes: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes training together (data parallel): one per GPU on CUDA (NCCL), CPU "
        "processes (gloo) otherwise; > 1 runs the recipe under accelerate launch / torchrun.",
    )
    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="With num_processes > 1: ddp keeps a full copy of the model per device; fsdp "
        "shards weights, gradients and optimizer state (models too large for one GPU; CUDA only).",
    )
    name: str | None = Field(
        None, description="Model name for the card and registry; None = derived from base and method."
    )
    output_dir: Path = Field(default_factory=lambda: Path("finetune-output"))
    checkpoint_dir: Path | None = Field(None, description="None = output_dir/checkpoints.")
    resume: bool = Field(False, description="Continue from the latest checkpoint in checkpoint_dir.")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        try:
            return None if value is None else check_name(value)
        except ToolInputError as exc:  # pydantic reports ValueErrors as validation errors
            raise ValueError(str(exc)) from None

    @field_validator("target_modules")
    @classmethod
    def _non_empty_targets(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not [v for v in value if v.strip()]:
            raise ValueError("target_modules is empty; leave it unset for all attention and MLP projections")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FinetuneConfig:
        preference = get_method(self.method).data == "preference"
        if preference and self.dataset_format not in ("auto", "preference"):
            raise ValueError(
                f"method {self.method} needs preference data (prompt, chosen, rejected), "
                f"not {self.dataset_format}; use method={choices('sft')} for that data"
            )
        if not preference and self.dataset_format == "preference":
            raise ValueError(f"preference data trains with method={choices('preference')}, not {self.method}")
        if self.distributed == "fsdp" and self.adapter == "qlora" and self.num_processes > 1:
            # sharding 4-bit weights needs bitsandbytes' quant_storage setup, which we do not make
            raise ValueError("QLoRA trains with distributed='ddp' (one 4-bit copy per GPU), not fsdp")
        return self

    @property
    def global_batch_size(self) -> int:
        """Rows per optimizer step over all processes (per-device batch × accumulation × processes)."""
        return self.batch_size * self.grad_accum * self.num_processes

    # ----- resolved values ---------------------------------------------------------------
    @property
    def dataset_path(self) -> Path:
        if self.dataset is not None:
            return Path(self.dataset).expanduser()
        return bundled_dataset(self.method)

    @property
    def checkpoints(self) -> Path:
        return (
            Path(self.checkpoint_dir)
            if self.checkpoint_dir is not None
            else Path(self.output_dir) / "checkpoints"
        )

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        method = get_method(self.method)
        return method.lr_full if self.adapter == "full" else method.lr_adapter

    @property
    def targets(self) -> list[str]:
        return list(self.target_modules or DEFAULT_TARGET_MODULES)

    def model_name(self) -> str:
        if self.name:
            return self.name
        base = Path(self.base_model).name if self.base_model else "smollm2-135m"
        safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in base).strip("-.") or "model"
        return check_name(f"{safe}-{self.method}-{self.adapter}"[:80])
