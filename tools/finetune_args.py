"""Routing examples and rule-based argument extraction for `finetune_model`.

The default chat model (SmolLM2-135M) cannot fill tool arguments reliably, so a
request like "用 LoRA 微调，学习率 2e-4，训练 2 个 epoch" is parsed here; capable
backends fill the same fields through native tool calling.
"""

from __future__ import annotations

import re
from typing import Any

EXAMPLES: tuple[str, ...] = (
    "Fine-tune the model on my data with LoRA rank 16",
    "Fine-tune SmolLM2 on data/chat.jsonl",
    "Train a LoRA adapter on the course dataset",
    "Run supervised fine-tuning on my instructions file",
    "Start an SFT job with learning rate 1e-4 for 2 epochs",
    "Fine-tune with QLoRA on my dataset",
    "Do a full fine-tune of the base model for 100 steps",
    "Align the model with DPO on the preference pairs",
    "Preference-tune my chat model with DPO on chosen/rejected answers",
    "Run ORPO on my preference data",
    "Train the model on train.csv with batch size 8",
    "Fine-tune the model on my chat transcripts in messages format",
    "Launch a fine-tuning run with LoRA r=8 and alpha 16",
    "Continue training the tutor model on my notes",
    "Teach the model my Alpaca-style dataset",
    "Fine-tune on the bundled course Q&A and merge the adapter",
    "LoRA 微调三个 epoch，学习率设为 1e-4",
    "在我的数据上微调模型",
    "用我的数据集训练一个 LoRA 适配器",
    "用 QLoRA 微调这个模型",
    "对模型做全参数微调，训练 100 步",
    "用 DPO 对齐模型",
    "用偏好数据做 ORPO 训练",
    "在课程问答数据上做监督微调",
    "开始一个微调任务，秩设为 16",
    "用 data/train.jsonl 微调 SmolLM2",
    "帮我训练一个模型，批大小 8",
    "微调模型并合并 LoRA 权重",
)

_A = r"(?<![A-Za-z])"  # ASCII word edges: \b treats Chinese characters as letters
_Z = r"(?![A-Za-z])"
_DATA_FILE = re.compile(r"([\w./~-]+\.(?:jsonl|json|csv|parquet|txt))", re.I)
_RANK = re.compile(_A + r"(?:rank|r)\s*[=:]?\s*(\d{1,4})" + r"|秩\s*(?:设为|为|=)?\s*(\d{1,4})", re.I)
_ALPHA = re.compile(_A + r"alpha\s*[=:]?\s*(\d{1,4})", re.I)
_LR = re.compile(r"(?:learning[ _-]?rate|lr|学习率)\s*(?:of|=|:|为|设为)?\s*(\d+(?:\.\d+)?(?:e-?\d+)?)", re.I)
_EPOCHS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:个\s*)?(?:epochs?|轮)" + _Z, re.I)
_STEPS = re.compile(r"(\d{1,6})\s*(?:steps?|步)" + _Z, re.I)
_BATCH = re.compile(r"(?:batch[ _-]?size|批大小|批量大小|batch)\s*(?:of|=|:|为|设为)?\s*(\d{1,4})", re.I)
_SEQ = re.compile(
    r"(?:max[ _-]?(?:seq(?:uence)?[ _-]?len(?:gth)?|length)|序列长度|最大长度)\s*(?:of|=|:|为)?\s*(\d{2,6})",
    re.I,
)
_BASE = re.compile(
    r"(?:fine-?tune|train|微调|训练)\s+([A-Za-z0-9][\w./-]{1,79})\s+(?:on|with|using|在|用)", re.I
)
_NOT_A_MODEL = {"the", "my", "this", "it", "a", "model", "smollm2", "default", "base", "our", "your", "an"}
_NAME = re.compile(
    r"(?:call(?:ed)? it|name(?:d)? it|named|命名为|叫做?)\s*[\"'“]?([A-Za-z0-9][\w.-]{0,79})", re.I
)


def extract_finetune_args(text: str) -> dict[str, Any]:
    """Fields named in an English or Chinese request; only those found."""
    args: dict[str, Any] = {}
    if match := _DATA_FILE.search(text):
        args["dataset"] = match.group(1)
    lowered = text.lower()
    if re.search(_A + r"dpo" + _Z, text, re.I):
        args["method"] = "dpo"
    elif re.search(_A + r"orpo" + _Z, text, re.I):
        args["method"] = "orpo"
    if re.search(_A + r"qlora" + _Z, text, re.I):
        args["adapter"] = "qlora"
    elif re.search(r"full[ -]?(?:parameter )?fine[ -]?tun|full fine|全参数|全量", lowered):
        args["adapter"] = "full"
    if match := _RANK.search(text):
        args["lora_r"] = int(match.group(1) or match.group(2))
    if match := _ALPHA.search(text):
        args["lora_alpha"] = int(match.group(1))
    if match := _LR.search(text):
        args["learning_rate"] = float(match.group(1))
    if match := _EPOCHS.search(text):
        args["epochs"] = float(match.group(1))
    if match := _STEPS.search(text):
        args["max_steps"] = int(match.group(1))
    if match := _BATCH.search(text):
        args["batch_size"] = int(match.group(1))
    if match := _SEQ.search(text):
        args["max_seq_len"] = int(match.group(1))
    if (match := _BASE.search(text)) and match.group(1).lower() not in _NOT_A_MODEL:
        args["base_model"] = match.group(1)
    if match := _NAME.search(text):
        args["name"] = match.group(1).rstrip(".")
    if re.search(r"(?:don'?t|do not|without|no)\s+merg|不(?:要)?合并", lowered):
        args["merge"] = False
    return args
