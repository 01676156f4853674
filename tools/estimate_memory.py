"""The `estimate_memory` tool: how much GPU memory a model needs to run or fine-tune.

The arithmetic lives in `llmtutor.training.memory`; this module adds the tool
spec, routing examples and a rule-based, bilingual argument extractor.
"""

from __future__ import annotations

import re
from typing import Any

from llmtutor.paths import resolve_user_path
from llmtutor.tools.registry import ToolContext, ToolSpec
from llmtutor.training.memory import run
from llmtutor.training.memory_config import MemoryEstimateConfig
from llmtutor.training.memory_report import MemoryEstimate
from llmtutor.training.model_shapes import FAMILY_DEFAULTS, FAMILY_WORDS, lookup, name_key

# Requests that should route here. Written for this tool; about half Chinese.
EXAMPLES: tuple[str, ...] = (
    "How much VRAM do I need to run Llama 3 8B in fp16?",
    "What are the hardware requirements to fine-tune a 7 billion parameter model?",
    "What's the largest model I can train on one T4?",
    "我只有一张 T4，能训练多大的模型？",
    "Will Mistral 7B fit on a 24 GB GPU for LoRA training?",
    "Estimate memory for a 3B model full fine-tune",
    "How many GB of GPU memory does Qwen2.5-7B need for inference at 8k context?",
    "Can I QLoRA a 13B model on a 16 GB card?",
    "What's the memory footprint of Llama-2-70B in 4-bit?",
    "How much memory to serve Mixtral 8x7B as GGUF Q4_K_M?",
    "Is 12 GB enough to fine-tune Phi-3-mini with LoRA rank 8?",
    "Estimate the KV cache size for Llama 3.1 8B with 32k tokens and batch size 4",
    "How much VRAM does full fine-tuning of SmolLM2-360M take?",
    "Memory needed for a 1.5B model in bf16 with a 4096 context?",
    "Can my RTX 4090 run Gemma 2 27B in int8?",
    "What GPU do I need to train a 7B model with Adam?",
    "How much RAM to load a 70B model at Q2_K?",
    "Calculate the GPU memory for QLoRA on Llama-3-8B with gradient checkpointing",
    "Does Qwen2.5-0.5B fit on an 8 GB GPU for full training?",
    "How much GPU memory for batch inference of a 7B model, 16 sequences of 2048 tokens?",
    "Llama 3 8B 用 fp16 推理要多少显存？",
    "7B 模型 QLoRA 微调需要多少显存？",
    "24G 显卡能跑 Mistral 7B 的 LoRA 训练吗？",
    "估算一下 3B 模型全量微调的显存占用",
    "Qwen2.5-14B 4 位量化推理需要多大显存？",
    "70B 模型用 Q4_K_M 跑起来要多少内存？",
    "全参数微调 1.7B 的模型需要多少 GPU 内存？",
    "帮我算一下 Llama-2-13B 半精度加载要多少显存",
    "上下文 8192、批大小 4 时 Llama 3.1 8B 的 KV 缓存有多大？",
    "16GB 的显卡够不够做 8B 模型的 QLoRA？",
    "Gemma-2-9B 用 int8 部署需要几张卡？",
    "135M 的小模型训练要多少显存？",
    "Mixtral 8x7B 推理显存需求是多少？",
    "我的 4090 能不能全量微调 Qwen2.5-1.5B？",
    "估计 Phi-3-mini 在 bf16 下 LoRA 微调的显存",
    "运行 72B 模型需要多少显存？",
    "显存不够，13B 模型用 QLoRA 要多少 GB？",
)

# ----- argument extraction ------------------------------------------------------
# ASCII-only word edges: \b and \w treat Chinese characters (模, 型) as letters.
_A = r"(?<![A-Za-z])"
_Z = r"(?![A-Za-z])"
_N = r"(?<![A-Za-z0-9_.])"  # a number starts here

# Ordered: specific before general. Each pattern -> precision value.
_PRECISION_RULES: tuple[tuple[str, str], ...] = (
    (r"(?<![A-Za-z0-9])(q8_0|q6_k|q5_k_m|q5_0|q4_k_m|q4_0|q4_1|q3_k_m|q2_k)(?![A-Za-z0-9_])", "gguf"),
    (_A + r"nf4" + _Z, "nf4"),
    (_A + r"int4" + _Z, "int4"),
    (_A + r"(fp8|float8)" + _Z, "fp8"),
    (_A + r"(bf16|bfloat16)" + _Z, "bf16"),
    (_A + r"(fp16|float16|half[- ]precision)" + _Z + r"|半精度", "fp16"),
    (_A + r"(fp32|float32|full[- ]precision|single[- ]precision)" + _Z + r"|单精度|全精度", "fp32"),
    (_A + r"int8" + _Z + r"|(?<!\d)8\s*-?\s*(bits?|位|比特)", "int8"),
    (r"(?<!\d)4\s*-?\s*(bits?|位|比特)", "nf4"),
    (r"(?<!\d)16\s*-?\s*(bits?|位|比特)", "fp16"),
    (r"(?<!\d)32\s*-?\s*(bits?|位|比特)", "fp32"),
    (_A + r"gguf" + _Z, "Q4_K_M"),  # a GGUF without a type: llama.cpp's usual pick
)
_QLORA = re.compile(_A + r"q-?lora" + _Z, re.I)
_LORA = re.compile(_A + r"lora" + _Z, re.I)
_TRAIN_WORDS = re.compile(
    _A
    + r"(fine[- ]?tun\w*|finetun\w*|train|training|trains|pre-?train\w*|sft|from scratch)"
    + _Z
    + r"|微调|训练|全量|全参",
    re.I,
)
_INFER_WORDS = re.compile(
    _A
    + r"(inference|infer|run|running|serve|serving|generate|generation|deploy\w*|load|loading)"
    + _Z
    + r"|推理|部署|运行|跑|加载|生成",
    re.I,
)
_EIGHT_BIT_ADAM = re.compile(r"(paged_)?adamw?_8bit|8\s*-?\s*(bit|位)\s*adamw?", re.I)
_PARAMS = re.compile(
    _N + r"(\d+(?:\.\d+)?)\s*(billion|million|b|m|十亿|亿)(?![A-Za-z])(?!\s*(context|tokens?|上下文))", re.I
)
_CTX_WORDS = r"(context|ctx|window|上下文|长度)"
_CONTEXT = (  # (pattern, group of the number, group of the k/m suffix or None)
    (re.compile(_N + r"(\d+(?:\.\d+)?)\s*(k|m)?\s*-?\s*(tokens?\s*)?" + _CTX_WORDS, re.I), 1, 2),
    (re.compile(_N + r"(\d+(?:\.\d+)?)\s*(k|m)\s*-?\s*(tokens?|个?\s*token)", re.I), 1, 2),
    (re.compile(_N + r"(\d{2,8})\s*-?\s*(个\s*)?(tokens?|tok)" + _Z, re.I), 1, None),
    (
        re.compile(
            _A
            + r"(context(?: length| window)?|ctx|seq(?:uence)?[ _-]?len(?:gth)?|max_seq_length|sequence length|"
            r"上下文(?:长度)?|序列长度)\s*(?:of|=|:|is|为|是|设为)?\s*(\d+(?:\.\d+)?)\s*(k|m)?(?![A-Za-z])",
            re.I,
        ),
        2,
        3,
    ),
)
_BATCH = re.compile(
    _A + r"(?:batch(?:[ _-]?size)?|bs|批大小|批量大小|批次大小|批量)\s*(?:of|=|:|is|为|是|设为)?\s*(\d+)"
    r"|(?:批大小|批量大小|批次大小|批量|并发)\s*(?:为|是|设为)?\s*(\d+)"
    r"|" + _N + r"(\d+)\s*(?:concurrent|parallel|simultaneous)?\s*(?:users|requests|sequences)",
    re.I,
)
_RANK = re.compile(
    _A + r"(?:lora[ _-]?)?(?:rank|r)\s*(?:=|of|:|为|是|设为)?\s*(\d+)|秩\s*(?:为|是)?\s*(\d+)", re.I
)
_GPU_SIZE = re.compile(_N + r"(\d{1,3}(?:\.\d+)?)\s*(?:GB|GiB|G)(?![A-Za-z])", re.I)
_GPU_NAMES = {
    "4090": 24,
    "3090": 24,
    "4080": 16,
    "4070": 12,
    "3060": 12,
    "4060": 8,
    "t4": 16,
    "l4": 24,
    "a10": 24,
    "a100": 80,
    "h100": 80,
    "h200": 141,
    "v100": 16,
}


def _find_model(text: str) -> str | None:
    """The first built-in model named in the text, e.g. 'Llama 3.1 8B' or 'qwen2.5-7b-instruct'.

    A bare family name ('Llama 3') counts only when no size is written
    anywhere: 'Qwen2.5-Coder-32B' must not become Qwen2.5-7B.
    """
    lowered = text.lower()
    has_size = _PARAMS.search(lowered) is not None
    for family in FAMILY_WORDS:
        for hit in re.finditer(re.escape(family), lowered):
            tokens = re.findall(r"[a-z0-9]+", lowered[hit.start() : hit.start() + 40])[:6]
            for n in range(len(tokens), 0, -1):  # longest name first: 'llama38b' before 'llama3'
                candidate = " ".join(tokens[:n])
                arch = lookup(candidate)
                if arch is not None and not (has_size and name_key(candidate) in FAMILY_DEFAULTS):
                    return arch.name
    return None


def _precision(text: str) -> str | None:
    for pattern, value in _PRECISION_RULES:
        match = re.search(pattern, text, re.I)
        if match:
            return match.group(1).upper() if value == "gguf" else value
    return None


def _mode(text: str) -> str | None:
    if _QLORA.search(text):
        return "qlora"
    if _LORA.search(text):
        return "lora"
    if _TRAIN_WORDS.search(text):
        return "full"  # "fine-tune" without LoRA means all weights ("微调" alone too)
    if _INFER_WORDS.search(text):
        return "inference"
    return None


def _context(text: str) -> int | None:
    for pattern, number, suffix in _CONTEXT:
        match = pattern.search(text)
        if match:
            unit = (match.group(suffix) or "").lower() if suffix else ""
            return int(float(match.group(number)) * {"k": 1024, "m": 1024**2}.get(unit, 1))
    return None


def _first_int(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    return int(next(g for g in match.groups() if g)) if match else None


def _gpu_memory(text: str) -> float | None:
    match = _GPU_SIZE.search(text)
    if match:
        return float(match.group(1))
    lowered = text.lower()
    for name, size in _GPU_NAMES.items():
        if re.search(r"(?<![a-z0-9])" + name + r"(?![0-9])", lowered):
            return float(size)
    return None


def extract_memory_args(text: str) -> dict[str, Any]:
    """Rule-based fields from an English or Chinese request; only those found."""
    args: dict[str, Any] = {}
    if _EIGHT_BIT_ADAM.search(text):
        args["optimizer"] = "adamw_8bit"
        text = _EIGHT_BIT_ADAM.sub(" ", text)  # its "8-bit" is not the weights' precision
    elif re.search(_A + r"sgd" + _Z, text, re.I):
        args["optimizer"] = "sgd"
    model = _find_model(text)
    if model:
        args["model"] = model
    else:
        size = _PARAMS.search(re.sub(r"\d+\s*x\s*\d+(\.\d+)?\s*b", " ", text, flags=re.I))  # 8x7B is not 7B
        if size:
            unit = size.group(2).lower()
            number = float(size.group(1)) * (0.1 if unit == "亿" else 1)
            args["params"] = f"{number:g}{'M' if unit in ('m', 'million') else 'B'}"
    precision = _precision(text)
    mode = _mode(text)
    if mode == "full" and precision in ("nf4", "int4"):
        mode = "qlora"  # fine-tuning a 4-bit model only works as QLoRA
    elif mode == "full" and precision == "int8":
        mode = "lora"
    if (
        mode in ("full", "lora", "qlora")
        and precision
        and (precision[0] == "Q" or precision in ("F16", "fp8"))
    ):
        precision = None  # GGUF/fp8 weights are not trained; the mode's default applies
    if precision and not (mode == "qlora" and precision in ("nf4", "int4")):
        args["precision"] = precision
    if mode:
        args["mode"] = mode
    found = {
        "context_length": (_context(text), 10_000_000),
        "batch_size": (_first_int(_BATCH, text), 100_000),
        "lora_rank": (_first_int(_RANK, text) if mode in ("lora", "qlora") else None, 65_536),
    }
    args.update({key: value for key, (value, top) in found.items() if value and 1 <= value <= top})
    if re.search(r"(without|no)\s+gradient[ _-]checkpointing|不(用|开|使用)梯度检查点", text, re.I):
        args["gradient_checkpointing"] = False
    elif re.search(r"gradient[ _-]checkpointing|梯度检查点", text, re.I):
        args["gradient_checkpointing"] = True
    gpu = _gpu_memory(text)
    if gpu:
        args["gpu_memory_gb"] = gpu
    return args


def _estimate(cfg: MemoryEstimateConfig, ctx: ToolContext) -> MemoryEstimate:
    if cfg.config_path:  # read only inside the learner's space or an allowed folder
        path = resolve_user_path(cfg.config_path, ctx.space, ctx.allowed_dirs)
        cfg = cfg.model_copy(update={"config_path": str(path)})
    return run(cfg)


TOOL = ToolSpec(
    name="estimate_memory",
    description=(
        "Estimate the GPU memory (VRAM) a model needs for inference, full fine-tuning, LoRA or QLoRA: "
        "weights, gradients, optimizer states, activations, KV cache and overhead, with formulas and "
        "which GPUs it fits. Give a known model name, a parameter count (e.g. '7B') or a config.json."
    ),
    input_model=MemoryEstimateConfig,
    output_model=MemoryEstimate,
    func=_estimate,
    examples=EXAMPLES,
    expensive=False,
    writes=False,
    extract_args=extract_memory_args,
)
