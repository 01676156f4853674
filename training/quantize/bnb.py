"""bitsandbytes: load a model in LLM.int8() or 4-bit NF4 (optionally double-quantized).

This is quantization at load time, the way QLoRA and most GPU notebooks use it: weights are
quantized as they are loaded and matrix products dequantize on the fly. bitsandbytes >= 0.45
has CPU kernels (measured here: 0.50.2 loads and runs both formats on CPU, slowly); on CUDA the
same code is the fast path. GPTQ and AWQ, by contrast, need calibration and CUDA kernels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def bnb_config(method: str, device: str, double_quant: bool = True) -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    if method == "bnb_int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if device.startswith("cuda") else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=compute,
    )


def load_bnb(path: Path | str, method: str, device: str, double_quant: bool = True) -> Any:
    """The model quantized by bitsandbytes on `device` ("cpu" or "cuda")."""
    import logging

    from transformers import AutoModelForCausalLM

    from llmtutor.hf_models import quiet_transformers

    # LLM.int8() on float32 inputs logs "inputs will be cast to float16" on EVERY matmul:
    # thousands of identical lines in a job log; the cast is expected and said in the report.
    logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)

    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(
            str(path),
            quantization_config=bnb_config(method, device, double_quant),
            device_map={"": 0 if device.startswith("cuda") else "cpu"},
            dtype="auto" if device.startswith("cuda") else None,
        )
    return model.eval()


def bits_per_weight(method: str, double_quant: bool) -> float:
    # int8: one fp32 row scale amortised over a row (~8); NF4: blocks of 64 with an fp32 absmax
    # (4.5 bits), double quantization stores that absmax in 8 bits with a second-level scale
    if method == "bnb_int8":
        return 8.0
    return 4.127 if double_quant else 4.5
