"""The by-hand quantization lab: "absmax", "zeropoint" and "int4" on a copy of the source model.

Every linear weight of the decoder layers is rounded in plain torch (`weights.py`) and
dequantized again, so the row shows what the rounding costs - per-layer relative weight errors
(mean, worst layer) and perplexity - with a before/after weight histogram; not a speed-up, since
compute stays in the source dtype. The recipe (`quantize.run`) adds the row to the report.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

from llmtutor.training.progress import ProgressCallback, emit
from llmtutor.training.quantize.config import QuantizeConfig
from llmtutor.training.quantize.measure import hf_ppl
from llmtutor.training.quantize.result import QuantizeResult, QuantRow


def lab_row(
    method: str,
    model: Any,
    tokenizer: Any,
    ids: list[int],
    window: int,
    config: QuantizeConfig,
    result: QuantizeResult,
    out: Path,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> QuantRow:
    from llmtutor.training.quantize.weights import bits_per_weight, quantize_model_weights, write_histogram

    emit(progress, "quantize", f"{method}: quantizing every linear weight of the decoder layers")
    copy_ = copy.deepcopy(model)
    errors, samples = quantize_model_weights(copy_, method, config.group_size)
    worst = max(errors, key=lambda e: e.relative_error)
    mean = sum(e.relative_error for e in errors) / len(errors)
    result.layer_errors[method] = {
        "mean_pct": 100 * mean,
        "max_pct": 100 * worst.relative_error,
        "worst": worst.name,
        "layers": len(errors),
    }
    plot = f"weights_{method}.png"
    if write_histogram(samples, method, out / plot):
        result.files[f"histogram_{method}"] = plot
    ppl = hf_ppl(copy_, ids, window, method, progress, cancel)
    n_per_row = errors[0].shape[-1]
    label = {
        "absmax": "absmax int8 (per row)",
        "zeropoint": "zero-point int8 (per row)",
        "int4": f"int4 absmax (groups of {config.group_size})",
    }[method]
    del copy_
    return QuantRow(
        label=label,
        method=method,
        bits_per_weight=bits_per_weight(method, n_per_row, config.group_size),
        perplexity=ppl,
        weight_error_pct=100 * mean,
        engine="torch (fake-quantized)",
        note="dequantized for compute: shows the rounding error, not a speed-up",
    )
