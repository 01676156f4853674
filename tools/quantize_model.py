"""The `quantize_model` tool: the course's quantization labs as a job, with one result table.

By hand (absmax / zero-point int8, int4 with groups), bitsandbytes (LLM.int8(), NF4), and
GGUF export with llama.cpp k-quants (plus an Ollama Modelfile; the GGUF is registered so the
learner can chat with it). "Quantize my fine-tuned model to 4-bit GGUF" → the newest model,
GGUF Q4_K_M. The recipe is `llmtutor.training.quantize`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmtutor.paths import check_name
from llmtutor.tools.lab_jobs import JobOutput, check_memory, check_model_ref, run_lab_job
from llmtutor.tools.merge_models import resolve_ref
from llmtutor.tools.registry import ToolContext, ToolSpec

EXAMPLES: tuple[str, ...] = (
    "Quantize my fine-tuned model to 4-bit GGUF",
    "Export the model to GGUF so I can run it in llama.cpp",
    "Make a Q4_K_M and a Q8_0 GGUF of my model",
    "Quantize the base model with an importance matrix",
    "Create an Ollama Modelfile for my fine-tune",
    "Load the model in 4-bit NF4 with bitsandbytes",
    "Compare LLM.int8() and NF4 on my model",
    "Run absmax and zero-point quantization on a layer of my model",
    "Run the quantization fundamentals lab with int4 groups",
    "Quantize to 4 bits and measure the perplexity I lose",
    "Shrink my model to 8-bit",
    "GPTQ quantize my model",
    "Could you make a 4-bit version of my model?",
    "Run AWQ 4-bit quantization on my checkpoint",
    "Produce a 5-bit GGUF of SmolLM2 for Ollama",
    "把微调后的模型量化成 4 位 GGUF",
    "导出 GGUF 文件给 Ollama 用",
    "用 absmax 和零点两种方法量化这个模型的权重",
    "把我的检查点压缩成 8 位",
    "给微调模型生成 Q8_0 的 GGUF 文件",
    "把模型量化为 Q5_K_M",
    "能帮我把模型压到 4 位吗？",
    "量化一下我的微调模型，要 Q4_K_M",
    "用 NF4 四位量化加载模型",
    "量化我的模型并比较困惑度",
    "把合并后的模型转成 llama.cpp 格式",
)

QuantMethod = Literal["absmax", "zeropoint", "int4", "bnb_int8", "bnb_nf4", "gguf", "gptq", "awq"]
_BITS_TO_GGUF = {"8": "Q8_0", "6": "Q6_K", "5": "Q5_K_M", "4": "Q4_K_M", "3": "Q3_K_M", "2": "Q2_K"}


class QuantizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(
        "base",
        description="Registered name, folder, .gguf, 'base' (SmolLM2) or 'latest' (your newest model).",
    )
    methods: list[QuantMethod] = Field(
        default_factory=lambda: ["gguf"],
        min_length=1,
        description="absmax/zeropoint/int4 (by hand), bnb_int8/bnb_nf4, gguf, gptq/awq (CUDA).",
    )
    gguf_types: list[str] = Field(
        default_factory=lambda: ["Q4_K_M"], description="llama.cpp types, e.g. Q4_K_M, Q8_0."
    )
    imatrix: bool = Field(False, description="Use an importance matrix for the GGUF quantization.")
    group_size: int = Field(32, ge=8, le=256)
    double_quant: bool = True
    perplexity_tokens: int = Field(1024, ge=64, le=100_000)
    name: str | None = Field(None, description="Name to register the GGUF under.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "output name")


def extract_quantize_args(text: str) -> dict[str, Any]:
    low = text.lower()
    args: dict[str, Any] = {}
    methods: list[str] = []
    types = [
        t.upper() for t in re.findall(r"\b(i?q\d_k_[sml]|i?q\d_k|q\d_\d|iq\d_(?:nl|xs)|bf16|f16)\b", low)
    ]
    bits = re.search(r"(\d)\s*(?:-|\s)?(?:bit|位|比特)", low)
    if re.search(r"absmax|zero[ -]?point|零点|fundamental|by hand|手动|原理", low):
        methods += ["absmax", "zeropoint"]
    if re.search(r"\bint4\b|groups?|分组", low) and "gguf" not in low:
        methods.append("int4")
    if re.search(r"nf4|bitsandbytes|bnb|qlora", low):
        methods += ["bnb_nf4"] if re.search(r"nf4|4[ -]?bit|4 ?位|qlora", low) else []
        methods += ["bnb_int8"] if re.search(r"int8|8[ -]?bit|8 ?位|llm\.int8", low) else []
        if not any(m.startswith("bnb") for m in methods):
            methods += ["bnb_int8", "bnb_nf4"]
    elif "llm.int8" in low:
        methods.append("bnb_int8")
    for name in ("gptq", "awq"):
        if name in low:
            methods.append(name)
    wants_gguf = bool(types) or bool(re.search(r"gguf|llama\.?cpp|ollama|modelfile|k-?quant", low))
    if not methods or wants_gguf:
        methods.append("gguf")
        if not types and bits:
            types = [_BITS_TO_GGUF.get(bits.group(1), "Q4_K_M")]
        elif not types and re.search(r"\bint8\b", low):
            types = ["Q8_0"]
            if "bnb_int8" not in methods:
                methods.insert(0, "bnb_int8")
        args["gguf_types"] = types or ["Q4_K_M"]
    args["methods"] = list(dict.fromkeys(methods))
    if re.search(r"imatrix|importance matrix|重要性矩阵", low):
        args["imatrix"] = True
    if re.search(r"\b(my|mine|it|the fine-?tuned|the merged|latest)\b|我的|微调后|合并后", low):
        args["model"] = "latest"
    if match := re.search(r"(?:call(?:ed)? it|named?|命名为)\s*[\"'“]?([A-Za-z0-9][\w.-]{0,79})", text):
        args["name"] = match.group(1)
    return args


def _resolve_model(req: QuantizeRequest, ctx: ToolContext) -> str:
    from llmtutor.model_registry import list_models

    ref = req.model
    if ref.lower() in ("latest", "it", "mine", "my model") and not list_models(ctx.models_dir):
        ref = "base"  # nothing fine-tuned yet: the bundled model is "the model"
    resolved = resolve_ref(ref, ctx)
    return "" if resolved == "smollm2" else check_model_ref(resolved, ctx)


def build_config(req: QuantizeRequest, ctx: ToolContext, output_dir: Path) -> Any:
    from llmtutor.training.quantize import QuantizeConfig

    return QuantizeConfig(
        model=_resolve_model(req, ctx),
        methods=req.methods,
        gguf_types=req.gguf_types,
        imatrix=req.imatrix,
        group_size=req.group_size,
        double_quant=req.double_quant,
        perplexity_tokens=req.perplexity_tokens,
        models_dir=ctx.models_dir,
        output_dir=output_dir,
        name=req.name,
    )


def preview(req: QuantizeRequest, ctx: ToolContext) -> str:
    from llmtutor.hf_models import pick_device, weights_bytes
    from llmtutor.training.quantize import check_methods

    cfg = build_config(req, ctx, ctx.outputs_dir / "preview")
    device = pick_device(cfg.device)
    notes = check_methods(cfg, device)  # refuses GPTQ/AWQ without CUDA before approval
    # A plan writes nothing: the size comes from the files as they are (a GGUF is not converted
    # until the approved job runs).
    weights = weights_bytes(cfg.model or None, ctx.models_dir) or 600 * 2**20
    copies = (
        2 + sum(m in ("absmax", "zeropoint", "int4") for m in cfg.methods) // 3
    )  # source + one working copy
    need = int(weights * copies)
    free = check_memory(need, "cpu", "quantization")
    what = {
        "absmax": "absmax int8 (by hand)",
        "zeropoint": "zero-point int8 (by hand)",
        "int4": f"int4, groups of {cfg.group_size}",
        "bnb_int8": "bitsandbytes LLM.int8()",
        "bnb_nf4": "bitsandbytes NF4" + (" + double quant" if cfg.double_quant else ""),
        "gguf": "GGUF "
        + ", ".join(cfg.gguf_types)
        + (" with an importance matrix" if cfg.imatrix else "")
        + " → llama.cpp smoke test, Ollama Modelfile, registered for chat",
        "gptq": "GPTQ 4-bit (CUDA)",
        "awq": "AWQ 4-bit (CUDA)",
    }
    lines = [
        f"**Plan: quantize `{cfg.model or 'SmolLM2-135M-Instruct (bundled)'}`**",
        "",
        "| step | what |",
        "|---|---|",
        "| source | perplexity and tokens/s in full precision (the baseline row) |",
    ]
    lines += [f"| {m} | {what[m]} |" for m in cfg.methods]
    lines += [
        "",
        f"Each row: bits/weight, size, memory, perplexity on {cfg.perplexity_tokens} tokens of the course notes, "
        f"tokens/s, change vs source. Memory: ~{need / 2**30:.2f} GiB needed, {free / 2**30:.1f} GiB free.",
    ]
    return "\n".join(lines + notes)


def run_quantize(req: QuantizeRequest, ctx: ToolContext) -> JobOutput:
    return run_lab_job("quantize", lambda out: build_config(req, ctx, out), ctx)


TOOL = ToolSpec(
    name="quantize_model",
    description=(
        "Quantize a model and measure the cost: absmax/zero-point int8 and int4 by hand, bitsandbytes int8/NF4, "
        "GGUF export with llama.cpp k-quants (Q4_K_M, Q8_0, …, optional importance matrix) plus an Ollama Modelfile; "
        "one table of bits/weight, size, memory, perplexity and tokens/s vs the source. GGUFs become chat models."
    ),
    input_model=QuantizeRequest,
    output_model=JobOutput,
    func=run_quantize,
    examples=EXAMPLES,
    expensive=True,
    writes=True,
    extract_args=extract_quantize_args,
    preview=preview,
)
