"""Quantization by a library, measured like the source: bitsandbytes and GPTQ/AWQ rows.

"bnb_int8" / "bnb_nf4" load the source folder with bitsandbytes' load-time quantization
(`bnb.py`; CPU kernels work, slowly); "gptq" / "awq" calibrate 4-bit weights on tokens of the
learner's text and save the quantized folder (`calibrated.py`; CUDA and optional packages,
checked up front by `quantize.check_methods`). Each step returns one row with memory,
perplexity and tokens/s measured by `measure.py`, and frees the quantized model.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from llmtutor.training.progress import ProgressCallback, emit
from llmtutor.training.quantize.config import QuantizeConfig
from llmtutor.training.quantize.measure import hf_ppl, hf_speed, mb
from llmtutor.training.quantize.result import QuantRow


def bnb_row(
    method: str,
    folder: Path,
    tokenizer: Any,
    ids: list[int],
    window: int,
    config: QuantizeConfig,
    device: str,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> QuantRow:
    from llmtutor.training.quantize.bnb import bits_per_weight, load_bnb

    emit(progress, "quantize", f"{method}: loading with bitsandbytes on {device}")
    model = load_bnb(folder, method, device, config.double_quant)
    ppl = hf_ppl(model, ids, window, method, progress, cancel)
    speed = hf_speed(model, tokenizer, config.prompt)
    label = (
        "bitsandbytes LLM.int8()"
        if method == "bnb_int8"
        else f"bitsandbytes NF4{' + double quant' if config.double_quant else ''}"
    )
    memory = mb(model.get_memory_footprint())
    del model
    return QuantRow(
        label=label,
        method=method,
        bits_per_weight=bits_per_weight(method, config.double_quant),
        memory_mb=memory,
        perplexity=ppl,
        tokens_per_s=speed,
        engine=f"bitsandbytes ({device})",
    )


def calibrated_row(
    method: str,
    folder: Path,
    tokenizer: Any,
    ids: list[int],
    calibration: list[int],
    window: int,
    config: QuantizeConfig,
    out: Path,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> QuantRow:
    from llmtutor.training.quantize.calibrated import (
        calibration_texts,
        folder_mb,
        quantize_awq,
        quantize_gptq,
    )

    emit(progress, "quantize", f"{method.upper()}: calibrating on {len(calibration)} tokens (CUDA)")
    target = out / f"{method}-int4"
    quantize = quantize_gptq if method == "gptq" else quantize_awq
    model = quantize(folder, tokenizer, calibration_texts(tokenizer, calibration), target, config.group_size)
    ppl = hf_ppl(model, ids, window, method, progress, cancel)
    speed = hf_speed(model, tokenizer, config.prompt)
    memory = mb(model.get_memory_footprint())
    del model
    return QuantRow(
        label=f"{method.upper()} int4 (groups of {config.group_size})",
        method=method,
        bits_per_weight=4 + 32 / config.group_size,
        size_mb=folder_mb(target),
        memory_mb=memory,
        perplexity=ppl,
        tokens_per_s=speed,
        engine=f"{method} (cuda)",
    )
