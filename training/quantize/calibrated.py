"""GPTQ and AWQ: calibrated 4-bit quantization with CUDA kernels (optional extras).

Both quantize layer by layer while running calibration text through the model (GPTQ solves for
the rounding that minimises each layer's output error with second-order information; AWQ scales
the channels that carry large activations before rounding). Their kernels are CUDA-only, so
`check_methods` refuses them on CPU or without the package before any work. Not exercised on
the CPU-only CI; the code follows each library's documented entry point:
- GPTQ: transformers' `GPTQConfig` (backed by the `gptqmodel` package);
- AWQ: AutoAWQ's `AutoAWQForCausalLM.quantize` then `save_quantized`, reloaded by transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def calibration_texts(tokenizer: Any, ids: list[int], n: int = 32, length: int = 256) -> list[str]:
    chunks = [ids[i : i + length] for i in range(0, max(len(ids) - length, 1), length)][:n]
    return [tokenizer.decode(chunk) for chunk in chunks if chunk]


def quantize_gptq(folder: Path, tokenizer: Any, texts: list[str], out: Path, group_size: int) -> Any:
    from transformers import AutoModelForCausalLM, GPTQConfig

    config = GPTQConfig(bits=4, group_size=group_size, dataset=texts, tokenizer=tokenizer, desc_act=False)
    model = AutoModelForCausalLM.from_pretrained(str(folder), quantization_config=config, device_map="cuda")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return model.eval()


def quantize_awq(folder: Path, tokenizer: Any, texts: list[str], out: Path, group_size: int) -> Any:
    from awq import AutoAWQForCausalLM
    from transformers import AutoModelForCausalLM

    model = AutoAWQForCausalLM.from_pretrained(str(folder))
    model.quantize(
        tokenizer,
        quant_config={"zero_point": True, "q_group_size": group_size, "w_bit": 4, "version": "GEMM"},
        calib_data=texts,
    )
    model.save_quantized(str(out))
    tokenizer.save_pretrained(str(out))
    return AutoModelForCausalLM.from_pretrained(str(out), device_map="cuda").eval()


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.glob("*.safetensors")) / 2**20
