"""The architecture-independent numbers of the memory estimate: bytes per weight, per cached
token element and per trainable parameter, and the fixed overheads.

`PRECISIONS` gives bits per weight for each weight format (NF4 with double quantization is
4 + 0.127 bits: Dettmers et al., QLoRA, 2023; GGUF figures are effective bits over a whole
file) and whether only the blocks' linear layers are quantized; `KV_BYTES` the bytes of one
KV-cache element per cache dtype; `OPTIMIZER_BYTES` the optimizer state per trainable
parameter (mixed-precision AdamW totals 16 bytes/param with weights, grads and the fp32 master
copy: Rajbhandari et al., ZeRO, 2020). Multiplying them by a model's shape is `memory.py`;
`sci` writes the counts the way the formulas show them. Pure arithmetic, no torch.
"""

from __future__ import annotations

import math

GIB = 1024**3
CUDA_CONTEXT_BYTES = GIB // 2  # CUDA context + kernels: ~0.3–1 GiB depending on GPU/libraries
ALLOCATOR_SLACK = 0.05  # PyTorch caching-allocator fragmentation, as a share of everything else
LOSS_BYTES_PER_LOGIT = 12  # logits upcast to fp32, log-softmax kept for backward, its gradient

# bits per weight, and whether only the transformer blocks' linear layers are
# quantized (bitsandbytes/fp8 keep embeddings, lm_head and norms in 16-bit).
# GGUF figures are effective bits over a whole file (block scales plus the
# higher-precision tensors llama.cpp mixes in), from published 7B file sizes.
PRECISIONS: dict[str, tuple[float, bool, str]] = {
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
GGUF_TYPES = {"Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_1", "Q4_0", "Q3_K_M", "Q2_K", "F16"}
KV_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "q8_0": 8.5 / 8, "q4_0": 4.5 / 8}
# Optimizer state bytes per trainable param, beyond the fp32 master copy.
OPTIMIZER_BYTES = {"adamw": 8.0, "adamw_8bit": 2.0, "sgd": 4.0}
OPTIMIZER_LABEL = {"adamw": "AdamW m+v fp32", "adamw_8bit": "8-bit AdamW m+v", "sgd": "SGD momentum fp32"}


def sci(x: float) -> str:
    """7241732096 -> '7.24e9' (readable, and the learner can type it into a calculator)."""
    if x < 1000:
        return f"{x:g}"
    exp = int(math.floor(math.log10(x)))
    return f"{x / 10**exp:.3g}e{exp}"
