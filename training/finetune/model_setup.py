"""Loading the base model for training (full, LoRA, QLoRA) and merging an adapter back into it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmtutor.errors import ModelNotFoundError, ToolInputError
from llmtutor.hf_models import pick_device, quiet_transformers
from llmtutor.training.finetune.config import FinetuneConfig

# Measured on this project's 2-core CPU box with SmolLM2-135M, batch 4 x 128 tokens: LoRA on a
# bitsandbytes 4-bit model ran ~64 s/step vs ~1.5 s/step for LoRA on float32 weights. bitsandbytes'
# CPU 4-bit path dequantizes on every matmul without fused kernels, so QLoRA only pays off on CUDA.
QLORA_CPU_NOTE = (
    "QLoRA needs a CUDA GPU (bitsandbytes 4-bit training on CPU measured ~40x slower than LoRA "
    "here); trained a plain LoRA adapter on float32 weights instead - same adapter format"
)


def load_tokenizer(path: Path | str) -> Any:
    from transformers import AutoTokenizer

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:  # batching needs one; labels mask padding, so EOS is a safe stand-in
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def resolve_adapter(config: FinetuneConfig, device: str) -> tuple[str, list[str]]:
    """(adapter actually trained, notes): QLoRA falls back to LoRA off CUDA."""
    if config.adapter == "qlora" and not device.startswith("cuda"):
        return "lora", [QLORA_CPU_NOTE]
    return config.adapter, []


def mixed_precision(device: str) -> dict[str, bool]:
    """bf16 autocast on GPUs that have it, fp16 on older ones; plain float32 on CPU (TRL's
    configs default to bf16=True, which on CPU is slower and loses precision)."""
    import torch

    if not device.startswith("cuda"):
        return {"bf16": False, "fp16": False}
    bf16 = torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "fp16": not bf16}


def load_model(path: Path | str, config: FinetuneConfig, adapter: str, device: str) -> Any:
    """The model ready for a trainer: full weights trainable, or wrapped in a PEFT LoRA adapter."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32}  # master weights in fp32; autocast does bf16 on GPU
    sharded = config.num_processes > 1 and config.distributed == "fsdp"
    if adapter == "qlora":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        kwargs = {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute,
            ),
            "dtype": compute,
            "device_map": {"": device},
        }
    elif adapter == "lora" and device.startswith("cuda") and not sharded:
        # Frozen base weights can live in half precision; the adapters stay fp32 (peft autocasts them).
        # Not under FSDP, which shards a block's parameters together and wants one dtype for them.
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"cannot load base model {path}: {str(exc).splitlines()[0][:200]}",
            "pass a local HF folder with config.json and weights, or leave base_model empty",
        ) from None
    model.config.use_cache = False  # no KV cache in training (and packed batches need it off)
    if adapter == "full":
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if adapter == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=_targets(model, config),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:
        raise ToolInputError(
            f"LoRA could not attach: {exc}",
            "set target_modules to linear layer names of this model, or leave it unset",
        ) from None
    if config.gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed blocks need a grad-carrying input with frozen embeddings
    return model


def _targets(model: Any, config: FinetuneConfig) -> list[str] | str:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    wanted = config.targets
    if config.target_modules is None and not names & set(wanted):
        return "all-linear"  # not a Llama-style model (e.g. GPT-2's c_attn): let peft find the linears
    missing = [t for t in wanted if t not in names]
    if config.target_modules is not None and missing:
        raise ToolInputError(
            f"target_modules not in this model: {', '.join(missing)}",
            f"choose among its layers, e.g. {', '.join(sorted(names)[:12])}",
        )
    return [t for t in wanted if t in names]


def merge_adapter(base_path: Path | str, adapter_dir: Path, out_dir: Path, tokenizer: Any) -> None:
    """Base + adapter as one plain model folder (loadable without peft). The base is reloaded
    unquantized so QLoRA adapters merge into full-precision weights, not into 4-bit ones."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    device = pick_device("auto")
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    with quiet_transformers():
        base = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=dtype)
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
        save_model(merged, tokenizer, out_dir)


def save_model(model: Any, tokenizer: Any, out_dir: Path, state_dict: dict[str, Any] | None = None) -> None:
    """A plain HF folder ready for chat: KV cache back on, pad token set for generate().
    `state_dict`: the full weights gathered from FSDP shards (None: the model's own)."""
    model.config.use_cache = True
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    with quiet_transformers():
        model.save_pretrained(str(out_dir), state_dict=state_dict)
        tokenizer.save_pretrained(str(out_dir))
