"""What the memory estimator is asked: `MemoryEstimateConfig`, and the names it accepts.

A model (by name, parameter count or config.json), a mode (inference, full fine-tune, LoRA,
QLoRA), a weight precision, context length and batch size, the KV-cache dtype, LoRA rank and
targets, the optimizer and gradient checkpointing, optionally a GPU size to check against.
Validators accept what learners type ("4bit", "q4km", "bfloat16"; "attn", "all-linear") and
refuse combinations that cannot run (full fine-tuning of quantized weights, LoRA on a GGUF
file). The estimate itself is `memory.run`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmtutor.training.memory_formulas import GGUF_TYPES, PRECISIONS
from llmtutor.training.model_shapes import parse_param_count

Mode = Literal["inference", "full", "lora", "qlora"]
Precision = Literal[
    "fp32",
    "fp16",
    "bf16",
    "fp8",
    "int8",
    "int4",
    "nf4",
    "Q8_0",
    "Q6_K",
    "Q5_K_M",
    "Q5_0",
    "Q4_K_M",
    "Q4_0",
    "Q4_1",
    "Q3_K_M",
    "Q2_K",
    "F16",
]
KVPrecision = Literal["auto", "fp32", "fp16", "bf16", "fp8", "int8", "q8_0", "q4_0"]
Optimizer = Literal["adamw", "adamw_8bit", "sgd"]
LoraTarget = Literal["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ALL_LINEAR: tuple[LoraTarget, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)

_PRECISION_ALIASES = {
    "float32": "fp32",
    "f32": "fp32",
    "32bit": "fp32",
    "full": "fp32",
    "float16": "fp16",
    "half": "fp16",
    "16bit": "fp16",
    "bfloat16": "bf16",
    "f16": "F16",
    "float8": "fp8",
    "e4m3": "fp8",
    "8bit": "int8",
    "llmint8": "int8",
    "bnb8bit": "int8",
    "4bit": "nf4",
    "bnb4bit": "nf4",
    "qlora": "nf4",
    "q80": "Q8_0",
    "q6k": "Q6_K",
    "q5km": "Q5_K_M",
    "q5k": "Q5_K_M",
    "q50": "Q5_0",
    "q4km": "Q4_K_M",
    "q4k": "Q4_K_M",
    "q41": "Q4_1",
    "q40": "Q4_0",
    "q3km": "Q3_K_M",
    "q3k": "Q3_K_M",
    "q2k": "Q2_K",
}
_TARGET_ALIASES: dict[str, tuple[LoraTarget, ...]] = {
    "q": ("q_proj",),
    "query": ("q_proj",),
    "k": ("k_proj",),
    "key": ("k_proj",),
    "v": ("v_proj",),
    "value": ("v_proj",),
    "o": ("o_proj",),
    "out_proj": ("o_proj",),
    "gate": ("gate_proj",),
    "up": ("up_proj",),
    "down": ("down_proj",),
    "qkv_proj": ("q_proj", "k_proj", "v_proj"),
    "gate_up_proj": ("gate_proj", "up_proj"),
    "attn": ALL_LINEAR[:4],
    "attention": ALL_LINEAR[:4],
    "mlp": ALL_LINEAR[4:],
    "ffn": ALL_LINEAR[4:],
    "all": ALL_LINEAR,
    "all_linear": ALL_LINEAR,
    "all-linear": ALL_LINEAR,
}


class MemoryEstimateConfig(BaseModel):
    """What to estimate. Give `model`, `params`/`params_billion` or `config_path`;
    with none, the tutor's default SmolLM2-135M is used."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None,
        description="Model name or hub id, e.g. 'Llama-3-8B', 'qwen2.5 7b', 'mistralai/Mistral-7B-v0.1'.",
    )
    params: float | str | None = Field(
        None,
        description="Parameter count when the model is not known: '3B', '135M', 7e9 (bare numbers < 1e5 are billions).",
    )
    params_billion: float | None = Field(None, gt=0, description="Parameter count in billions, e.g. 7.")
    config_path: str | None = Field(
        None, description="Path to a local Hugging Face config.json (or its folder)."
    )
    mode: Mode = Field("inference", description="inference, full (full fine-tune), lora or qlora.")
    precision: Precision = Field(
        "bf16",
        description="Weight precision: fp32, fp16, bf16, fp8, int8, int4/nf4 (bitsandbytes) or a GGUF type (Q4_K_M…).",
    )
    context_length: int = Field(
        4096, ge=1, le=10_000_000, description="Tokens per sequence (prompt + output, or training length)."
    )
    batch_size: int = Field(1, ge=1, le=100_000, description="Sequences processed together.")
    kv_cache_precision: KVPrecision = Field(
        "auto", description="KV cache dtype; auto = 16-bit (fp32 for fp32 models)."
    )
    lora_rank: int = Field(16, ge=1, le=65_536, description="LoRA rank r.")
    lora_targets: list[LoraTarget] = Field(
        default_factory=lambda: list(ALL_LINEAR),
        description="Modules with LoRA adapters; also accepts q, v, attn, mlp, all-linear.",
    )
    optimizer: Optimizer = Field(
        "adamw", description="adamw, adamw_8bit (bitsandbytes) or sgd (with momentum)."
    )
    gradient_checkpointing: bool | None = Field(
        None, description="Recompute activations; default on for qlora only."
    )
    gpu_memory_gb: float | None = Field(
        None, gt=0, description="Check the result against a GPU with this much memory."
    )

    @field_validator("params", mode="before")
    @classmethod
    def _parse_params(cls, value: object) -> float | None:
        return None if value is None else parse_param_count(value)  # type: ignore[arg-type]

    @field_validator("precision", mode="before")
    @classmethod
    def _normalize_precision(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        key = value.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
        exact = {p.lower().replace("_", ""): p for p in PRECISIONS}
        return exact.get(key) or _PRECISION_ALIASES.get(key, value)

    @field_validator("kv_cache_precision", mode="before")
    @classmethod
    def _normalize_kv(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("lora_targets", mode="before")
    @classmethod
    def _normalize_targets(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, list | tuple):
            return value
        out: list[str] = []
        for item in value:
            key = str(item).strip().lower()
            for name in _TARGET_ALIASES.get(key, (key,)):
                if name not in out:
                    out.append(name)
        return out

    @model_validator(mode="after")
    def _check_combination(self) -> MemoryEstimateConfig:
        if not self.lora_targets:
            raise ValueError("lora_targets is empty; name at least one module, e.g. ['q_proj', 'v_proj']")
        if self.mode == "full" and self.precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(
                f"full fine-tuning cannot update {self.precision} weights; use precision bf16 (or fp32), "
                "or mode 'qlora'/'lora' to train adapters on a quantized base"
            )
        if self.mode == "lora" and (self.precision in GGUF_TYPES or self.precision == "fp8"):
            raise ValueError(
                f"LoRA training needs a PyTorch base (bf16, fp16, int8 or nf4), not {self.precision}; "
                "GGUF files are for inference"
            )
        return self
