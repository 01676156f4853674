"""How much GPU memory a model needs to run or fine-tune: pure arithmetic, no torch.

`run(MemoryEstimateConfig) -> MemoryEstimate`. Every component carries the
formula that produced it, so the learner can redo the sum by hand.

Sources behind the numbers:
* Mixed-precision Adam costs 16 bytes/param: 2 (16-bit weights) + 2 (16-bit
  grads) + 12 (fp32 master weights, momentum, variance) — Rajbhandari et al.,
  "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models", 2020.
* Activations per layer follow Korthikanti et al., "Reducing Activation
  Recomputation in Large Transformer Models", 2022: s·b·h·(34 + 5·a·s/h) bytes
  for a GPT block. We count the same saved tensors for a gated-MLP/GQA block,
  without dropout masks, and drop the 5·a·s/h score term because
  FlashAttention/SDPA never stores the s×s attention matrix.
* NF4 with double quantization stores 4 + 0.127 bits/param (one fp8 absmax per
  64 weights plus one fp32 constant per 256 blocks) — Dettmers et al.,
  "QLoRA: Efficient Finetuning of Quantized LLMs", 2023.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmtutor.training.model_shapes import (
    Architecture,
    parse_param_count,
    resolve_architecture,
)

GIB = 1024**3
CUDA_CONTEXT_BYTES = GIB // 2  # CUDA context + kernels: ~0.3–1 GiB depending on GPU/libraries
ALLOCATOR_SLACK = 0.05  # PyTorch caching-allocator fragmentation, as a share of everything else
LOSS_BYTES_PER_LOGIT = 12  # logits upcast to fp32, log-softmax kept for backward, its gradient
COMMON_GPUS: tuple[tuple[int, str], ...] = (
    (8, "RTX 4060"),
    (12, "RTX 3060/4070"),
    (16, "T4/RTX 4080"),
    (24, "RTX 3090/4090, L4"),
    (40, "A100 40GB"),
    (80, "A100/H100 80GB"),
)

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

# bits per weight, and whether only the transformer blocks' linear layers are
# quantized (bitsandbytes/fp8 keep embeddings, lm_head and norms in 16-bit).
# GGUF figures are effective bits over a whole file (block scales plus the
# higher-precision tensors llama.cpp mixes in), from published 7B file sizes.
_PRECISIONS: dict[str, tuple[float, bool, str]] = {
    "fp32": (32, False, "fp32"),
    "fp16": (16, False, "fp16"),
    "bf16": (16, False, "bf16"),
    "F16": (16, False, "GGUF F16"),
    "fp8": (8, True, "fp8"),
    "int8": (8, True, "bitsandbytes LLM.int8"),
    "nf4": (4.127, True, "NF4 + double quant"),
    "int4": (4.127, True, "bitsandbytes 4-bit, double quant"),
    "Q8_0": (8.5, False, "GGUF Q8_0"),
    "Q6_K": (6.56, False, "GGUF Q6_K"),
    "Q5_K_M": (5.69, False, "GGUF Q5_K_M"),
    "Q5_0": (5.54, False, "GGUF Q5_0"),
    "Q4_K_M": (4.85, False, "GGUF Q4_K_M"),
    "Q4_1": (5.05, False, "GGUF Q4_1"),
    "Q4_0": (4.55, False, "GGUF Q4_0"),
    "Q3_K_M": (3.91, False, "GGUF Q3_K_M"),
    "Q2_K": (3.35, False, "GGUF Q2_K"),
}
_GGUF = {"Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_1", "Q4_0", "Q3_K_M", "Q2_K", "F16"}
_KV_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "q8_0": 8.5 / 8, "q4_0": 4.5 / 8}
# Optimizer state bytes per trainable param, beyond the fp32 master copy.
_OPT_BYTES = {"adamw": 8.0, "adamw_8bit": 2.0, "sgd": 4.0}
_OPT_LABEL = {"adamw": "AdamW m+v fp32", "adamw_8bit": "8-bit AdamW m+v", "sgd": "SGD momentum fp32"}

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
        exact = {p.lower().replace("_", ""): p for p in _PRECISIONS}
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
        if self.mode == "lora" and (self.precision in _GGUF or self.precision == "fp8"):
            raise ValueError(
                f"LoRA training needs a PyTorch base (bf16, fp16, int8 or nf4), not {self.precision}; "
                "GGUF files are for inference"
            )
        return self


class MemoryComponent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["weights", "gradients", "optimizer states", "activations", "KV cache", "overhead"]
    bytes: int
    gib: float
    formula: str


class MemoryEstimate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    source: Literal["built-in table", "config.json", "parameter count", "name"]
    architecture: Architecture
    mode: Mode
    precision: Precision
    context_length: int
    batch_size: int
    trainable_params: int
    breakdown: list[MemoryComponent]
    total_bytes: int
    total_gib: float
    bytes_per_param: float
    approximate: bool
    fits_gpus_gb: list[int]
    verdict: str
    assumptions: list[str]

    def to_markdown(self) -> str:
        mark = "≈ " if self.approximate else ""
        setting = f"{self.mode}, {self.precision}, context {self.context_length}, batch {self.batch_size}"
        lines = [
            f"**Memory estimate — {self.model} ({mark}{_sci(self.architecture.params)} params; {setting})**",
            "",
        ]
        lines += ["| Component | GiB | Share |", "|---|---:|---:|"]
        for part in self.breakdown:
            lines.append(f"| {part.name} | {part.gib:.2f} | {part.bytes / self.total_bytes:.0%} |")
        lines.append(f"| **total** | **{self.total_gib:.2f}** | {self.bytes_per_param:.2f} B/param |")
        lines += ["", *(f"- {part.name}: {part.formula}" for part in self.breakdown), ""]
        lines.append(f"**Verdict:** {self.verdict}")
        if self.assumptions:
            lines += ["", "Assumptions: " + "; ".join(self.assumptions) + "."]
        return "\n".join(lines)


def run(config: MemoryEstimateConfig) -> MemoryEstimate:
    """Add up weights, gradients, optimizer states, activations, KV cache and overhead."""
    arch, source, approximate, notes = resolve_architecture(
        config.model, config.params, config.params_billion, config.config_path
    )
    parts, trainable, more_notes = _components(config, arch)
    total = _add_overhead(parts)
    total_gib = total / GIB
    fits = [size for size, _ in COMMON_GPUS if total_gib <= size]
    verdict = _verdict(config, total_gib, fits)
    short = not fits or (config.gpu_memory_gb is not None and total_gib > config.gpu_memory_gb)
    if short and config.mode != "inference" and not config.gradient_checkpointing and config.mode != "qlora":
        # The cheapest fix is usually recomputation: say what it would buy.
        alt_parts = _components(config.model_copy(update={"gradient_checkpointing": True}), arch)[0]
        verdict += f" With gradient_checkpointing: ≈{_add_overhead(alt_parts) / GIB:.1f} GiB."
    return MemoryEstimate(
        model=arch.name,
        source=source,
        architecture=arch,
        mode=config.mode,
        precision="nf4" if config.mode == "qlora" else config.precision,
        context_length=config.context_length,
        batch_size=config.batch_size,
        trainable_params=trainable,
        breakdown=[
            MemoryComponent(name=n, bytes=b, gib=round(b / GIB, 3), formula=f)  # type: ignore[arg-type]
            for n, b, f in parts
        ],
        total_bytes=total,
        total_gib=round(total_gib, 3),
        bytes_per_param=round(total / arch.params, 3),
        approximate=approximate,
        fits_gpus_gb=fits,
        verdict=verdict,
        assumptions=notes + more_notes,
    )


# ----- the components -----------------------------------------------------------
Part = tuple[str, int, str]


def _add_overhead(parts: list[Part]) -> int:
    """Append the overhead component; return the total bytes."""
    total = sum(b for _, b, _ in parts)
    overhead = int(CUDA_CONTEXT_BYTES + ALLOCATOR_SLACK * total)
    parts.append(("overhead", overhead, f"0.5 GiB CUDA context + {ALLOCATOR_SLACK:.0%} allocator slack"))
    return total + overhead


def _components(cfg: MemoryEstimateConfig, arch: Architecture) -> tuple[list[Part], int, list[str]]:
    notes: list[str] = []
    precision = cfg.precision
    act_bytes = 4 if precision == "fp32" else 2  # activations live in the compute dtype
    if cfg.mode == "qlora":
        if precision not in ("nf4", "int4", "bf16", "fp16"):
            notes.append(f"precision {precision} ignored: QLoRA always loads the base in NF4")
        act_bytes, precision = 2, "nf4"
    parts: list[Part] = [("weights", *_weights(arch, precision))]
    tokens = cfg.context_length * cfg.batch_size
    if cfg.mode == "inference":
        kv_name = cfg.kv_cache_precision
        if kv_name == "auto":  # the compute dtype; quantized weights still compute in 16-bit
            kv_name = precision if precision in ("fp32", "fp16", "bf16") else "fp16"
        kv = 2 * arch.layers * arch.kv_dim * tokens * _KV_BYTES[kv_name]
        parts.append(
            (
                "KV cache",
                int(kv),
                f"2 (K,V) × {arch.layers} layers × {arch.kv_heads} KV heads × {arch.head_dim} head dim × "
                f"{cfg.context_length} tokens × batch {cfg.batch_size} × {_KV_BYTES[kv_name]:g} bytes ({kv_name})",
            )
        )
        # Prefill: one layer's intermediate tensors are alive at a time, plus
        # last-position logits in fp32.
        act = arch.activation_elements_per_token() * act_bytes * tokens + 4 * arch.vocab_size * cfg.batch_size
        parts.append(
            (
                "activations",
                int(act),
                f"one layer's buffers during prefill: {tokens:,} tokens × "
                f"{arch.activation_elements_per_token() * act_bytes:,} bytes + last-token logits",
            )
        )
        notes.append(
            "inference keeps the full KV cache for context_length tokens (no paging or sliding window)"
        )
        return parts, 0, notes

    ckpt = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else cfg.mode == "qlora"
    if cfg.mode == "full":
        trainable = arch.params
        grad = 4 if precision == "fp32" else 2
        master = 0 if precision == "fp32" else 4  # fp32 training needs no separate master copy
        opt = master + _OPT_BYTES[cfg.optimizer]
        parts.append(
            ("gradients", trainable * grad, f"{_sci(trainable)} params × {grad} bytes ({precision})")
        )
        master_txt = "" if not master else "4 (fp32 master weights) + "
        parts.append(
            (
                "optimizer states",
                int(trainable * opt),
                f"{_sci(trainable)} params × ({master_txt}"
                f"{_OPT_BYTES[cfg.optimizer]:g} {_OPT_LABEL[cfg.optimizer]}) bytes",
            )
        )
        if precision != "fp32" and cfg.optimizer == "adamw":
            notes.append("mixed-precision AdamW = 16 bytes/param before activations (ZeRO paper)")
    else:
        trainable = arch.lora_params(cfg.lora_rank, cfg.lora_targets)
        if cfg.mode == "lora" and precision in ("nf4", "int4"):
            notes.append("LoRA on a 4-bit base is QLoRA; set mode 'qlora' for its defaults")
        # PEFT keeps adapters in fp32 even on a 16-bit base (autocast_adapter_dtype).
        lora_w = trainable * 4
        weights_bytes = parts[0][1] + lora_w
        parts[0] = (
            "weights",
            weights_bytes,
            parts[0][2] + f" + {_sci(trainable)} LoRA params × 4 bytes (fp32)",
        )
        parts.append(("gradients", trainable * 4, f"{_sci(trainable)} LoRA params × 4 bytes (fp32)"))
        parts.append(
            (
                "optimizer states",
                int(trainable * _OPT_BYTES[cfg.optimizer]),
                f"{_sci(trainable)} LoRA params × {_OPT_BYTES[cfg.optimizer]:g} bytes "
                f"({_OPT_LABEL[cfg.optimizer]})",
            )
        )
        notes.append(f"LoRA r={cfg.lora_rank} on {', '.join(cfg.lora_targets)} in every layer")
        if cfg.mode == "qlora":
            notes.append("QLoRA: paged optimizer spills to CPU RAM on spikes but does not shrink this total")
    parts.append(("activations", *_training_activations(arch, cfg, act_bytes, ckpt)))
    notes.append(
        f"training length {cfg.context_length} tokens × batch {cfg.batch_size}, FlashAttention/SDPA, "
        f"gradient checkpointing {'on' if ckpt else 'off'}"
    )
    return parts, trainable, notes


def _weights(arch: Architecture, precision: str) -> tuple[int, str]:
    bits, linear_only, label = _PRECISIONS[precision]
    if not linear_only:
        return int(arch.params * bits / 8), f"{_sci(arch.params)} params × {bits / 8:g} bytes ({label})"
    linear = min(arch.params, arch.layers * arch.linear_params_per_layer())
    rest = arch.params - linear
    total = linear * bits / 8 + rest * 2
    return int(total), (
        f"{_sci(linear)} linear params × {bits / 8:.4g} bytes ({label}) + "
        f"{_sci(rest)} embedding/norm params × 2 bytes (bf16)"
    )


def _training_activations(
    arch: Architecture, cfg: MemoryEstimateConfig, nbytes: int, ckpt: bool
) -> tuple[int, str]:
    tokens = cfg.context_length * cfg.batch_size
    per_layer = arch.activation_elements_per_token() * nbytes  # bytes per token per layer
    loss = LOSS_BYTES_PER_LOGIT * arch.vocab_size * tokens
    if ckpt:
        # Only each layer's input is kept; one layer is recomputed at a time.
        kept = arch.layers * arch.hidden_size * nbytes * tokens + per_layer * tokens
        how = (
            f"checkpointed: {arch.layers} layer inputs × {tokens:,} tokens × {arch.hidden_size} × "
            f"{nbytes} bytes + one layer recomputed ({per_layer:,} bytes/token)"
        )
    else:
        kept = arch.layers * per_layer * tokens
        how = f"{arch.layers} layers × {tokens:,} tokens × {per_layer:,} bytes/token/layer"
    return int(
        kept + loss
    ), how + f" + loss {tokens:,} tokens × {arch.vocab_size} vocab × {LOSS_BYTES_PER_LOGIT} bytes"


def _verdict(cfg: MemoryEstimateConfig, total_gib: float, fits: list[int]) -> str:
    size = f"≈{total_gib:.1f} GiB"
    if cfg.gpu_memory_gb is not None:
        gap = cfg.gpu_memory_gb - total_gib
        if gap >= 0:
            return f"{size}: fits your {cfg.gpu_memory_gb:g} GB GPU with ≈{gap:.1f} GiB to spare."
        return f"{size}: does not fit your {cfg.gpu_memory_gb:g} GB GPU (≈{-gap:.1f} GiB short). {_tip(cfg)}"
    if not fits:
        split = "tensor parallelism" if cfg.mode == "inference" else "FSDP/ZeRO-3"
        return f"{size}: too big for one 80 GB GPU; split it across GPUs ({split}). {_tip(cfg)}"
    smallest = next(name for gb, name in COMMON_GPUS if gb == fits[0])
    too_small = [str(gb) for gb, _ in COMMON_GPUS if gb < fits[0]]
    tail = f" (not {'/'.join(too_small)} GB)" if too_small else ""
    return f"{size}: fits {fits[0]} GB GPUs ({smallest}) and larger{tail}."


def _tip(cfg: MemoryEstimateConfig) -> str:
    return {
        "inference": "To shrink it: int8/nf4 or a GGUF Q4_K_M, or a shorter context.",
        "full": "To shrink it: LoRA/QLoRA, adamw_8bit or gradient checkpointing.",
        "lora": "To shrink it: QLoRA or gradient checkpointing.",
        "qlora": "To shrink it: a shorter sequence, a smaller batch or a smaller model.",
    }[cfg.mode]


def _sci(x: float) -> str:
    """7241732096 -> '7.24e9' (readable, and the learner can type it into a calculator)."""
    if x < 1000:
        return f"{x:g}"
    exp = int(math.floor(math.log10(x)))
    return f"{x / 10**exp:.3g}e{exp}"
