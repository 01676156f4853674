"""estimate_memory: the total, its parts, which GPUs it fits and what shrinks the largest part.

Every figure is a field of `MemoryEstimate` (training/memory_report.py), printed with the same
decimals as its Markdown table, or the learner's own GPU size; the GPU names and the "not 8/12
GB" list are read back from the verdict the estimator wrote.
"""

from __future__ import annotations

import re
from typing import Any

from llmtutor.agents.explain.wording import article, fixed, listing, number, sentences, spaced

MODES = {
    "en": {
        "inference": "inference",
        "full": "full fine-tuning",
        "lora": "LoRA fine-tuning",
        "qlora": "QLoRA fine-tuning",
    },
    "zh": {"inference": "推理", "full": "全量微调", "lora": "LoRA 微调", "qlora": "QLoRA 微调"},
}
PARTS = {
    "en": {},  # the component names are English already
    "zh": {
        "weights": "权重",
        "gradients": "梯度",
        "optimizer states": "优化器状态",
        "activations": "激活值",
        "KV cache": "KV 缓存",
        "overhead": "额外开销",
    },
}
# What shrinks the largest part: the course's advice, fixed wording.
SHRINK = {
    "en": {
        "weights": "The weights are the largest part: a lower precision (int8, nf4 or a GGUF quant) shrinks them.",
        "activations": "Activations are the largest part: a shorter sequence or a smaller batch shrinks them.",
        "optimizer states": "Optimizer states are the largest part: LoRA/QLoRA or an 8-bit optimizer shrinks them.",
        "gradients": "Gradients are the largest part: LoRA/QLoRA trains far fewer parameters.",
        "KV cache": "The KV cache is the largest part: a shorter context or a smaller batch shrinks it.",
        "overhead": "Fixed overhead is the largest part: the model itself is small.",
    },
    "zh": {
        "weights": "权重占得最多：更低的精度（int8、nf4 或 GGUF 量化）能把它压下来。",
        "activations": "激活值占得最多：缩短序列或减小批大小能把它压下来。",
        "optimizer states": "优化器状态占得最多：LoRA/QLoRA 或 8 位优化器能把它压下来。",
        "gradients": "梯度占得最多：LoRA/QLoRA 只训练少得多的参数。",
        "KV cache": "KV 缓存占得最多：缩短上下文或减小批大小能把它压下来。",
        "overhead": "固定开销占得最多：模型本身很小。",
    },
}
_FITS = re.compile(r"fits (\d+) GB GPUs \(([^)]*)\)")
_NOT = re.compile(r"\(not ([\d/]+) GB\)")
_TOO_BIG = re.compile(r"too big for one (\d+) GB GPU")


def explain_memory(output: dict[str, Any], args: dict[str, Any], language: str) -> str:
    total = number(output.get("total_gib"))
    parts = [
        p
        for p in output.get("breakdown") or []
        if isinstance(p, dict) and (number(p.get("gib")) or 0) >= 0.005  # shows as 0.00 otherwise
    ]
    if total is None or not parts:
        return ""
    zh = language == "zh"
    parts.sort(key=lambda p: -float(p["gib"]))
    names = PARTS[language]
    shown = [
        f"{names.get(p['name'], p['name'])} {fixed(p['gib'], 2)} GiB"
        if zh
        else f"{fixed(p['gib'], 2)} GiB {p['name']}"
        for p in parts
    ]
    mode = MODES[language].get(str(output.get("mode")), str(output.get("mode")))
    model = output.get("model", "")
    setting = _setting(output, language)
    if zh:
        head = spaced(
            f"{model} 做", mode, f"（{setting}）总共约需 {fixed(total, 1)} GiB：{listing(shown, 'zh')}。"
        )
    else:
        head = f"{model} needs about {fixed(total, 1)} GiB in total for {mode} ({setting}): {listing(shown, 'en')}."
    said = [head, _fit(output, args, total, language)]
    trainable = number(output.get("trainable_params"))
    if output.get("mode") in ("lora", "qlora") and trainable:
        said.append(
            f"只训练 {int(trainable):,} 个参数（LoRA 适配器），所以梯度和优化器状态很小。"
            if zh
            else f"Only {int(trainable):,} parameters (the LoRA adapters) are trained, so gradients and "
            "optimizer states stay small."
        )
    said.append(SHRINK[language].get(parts[0]["name"], ""))
    return sentences(said, language)


def _setting(output: dict[str, Any], language: str) -> str:
    precision, context, batch = (
        output.get("precision"),
        output.get("context_length"),
        output.get("batch_size"),
    )
    if language == "zh":
        return f"{precision}，上下文 {context}，批大小 {batch}"
    return f"{precision}, context {context}, batch {batch}"


def _fit(output: dict[str, Any], args: dict[str, Any], total: float, language: str) -> str:
    zh = language == "zh"
    gpu = number(args.get("gpu_memory_gb"))
    if gpu:  # the learner named a GPU: the verdict compared with it the same way
        if gpu - total >= 0:
            return f"你的 {gpu:g} GB 显卡放得下。" if zh else f"It fits your {gpu:g} GB GPU."
        return f"你的 {gpu:g} GB 显卡放不下。" if zh else f"It does not fit your {gpu:g} GB GPU."
    verdict = str(output.get("verdict", ""))
    fits = [int(g) for g in output.get("fits_gpus_gb") or [] if number(g)]
    if not fits:
        big = _TOO_BIG.search(verdict)
        where = f"{big.group(1)} GB " if big else ""
        if zh:
            return f"单张 {where}显卡放不下，需要拆到多张卡上（FSDP/ZeRO-3 或张量并行）。"
        return f"It does not fit on one {where}GPU: split it across GPUs (FSDP/ZeRO-3 or tensor parallelism)."
    named = _FITS.search(verdict)
    gpus = f" ({named.group(2)})" if named and int(named.group(1)) == fits[0] else ""
    smaller = _NOT.search(verdict)
    below = smaller.group(1).split("/")[-1] if smaller else ""
    if zh:
        fit = f"{fits[0]} GB 的显卡{gpus.replace(' (', '（').replace(')', '）')}放得下"
        return f"{fit}，{below} GB 的放不下。" if below else f"{fit}。"
    fit = f"It fits {article(str(fits[0]))} {fits[0]} GB GPU{gpus}"
    return f"{fit}, not {article(below)} {below} GB one." if below else f"{fit}."
