"""An importance matrix for llama.cpp quantization, computed with the HF model itself.

llama.cpp's `llama-imatrix` runs calibration text through the model and keeps, for every
weight matrix, the mean squared activation of each input column; the quantizer then weighs
rounding errors by it, so columns that carry large activations are kept more precisely. This
does the same with forward hooks on the transformers model (no llama.cpp tool binary needed)
and keys the result by GGUF tensor name, ready for `ggml_quantize_chunk`.
"""

from __future__ import annotations

import threading
from typing import Any

from llmtutor.training.progress import ProgressCallback, check_cancelled, emit


def compute_imatrix(
    model: Any,
    ids: list[int],
    chunk: int = 512,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """{gguf tensor name: float32 [in_features]} from running `ids` through `model` in chunks."""
    import gguf
    import torch

    n_layers = int(model.config.num_hidden_layers)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    sums: dict[str, Any] = {}
    counts: dict[str, int] = {}
    hooks = []

    def hook_for(target: str) -> Any:
        def hook(_module: Any, inputs: tuple[Any, ...]) -> None:
            x = inputs[0].detach().float().reshape(-1, inputs[0].shape[-1])
            sums[target] = sums.get(target, 0) + (x * x).sum(0)
            counts[target] = counts.get(target, 0) + x.shape[0]

        return hook

    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layers." in module_name:
            target = names.get_name(module_name + ".weight", try_suffixes=(".weight",))
            if target is not None:
                hooks.append(module.register_forward_pre_hook(hook_for(target)))
    device = next(model.parameters()).device
    starts = list(range(0, max(len(ids) - 1, 1), chunk))
    try:
        with torch.no_grad():
            for n, start in enumerate(starts):
                check_cancelled(cancel)
                model(input_ids=torch.tensor([ids[start : start + chunk]], device=device))
                emit(
                    progress, "imatrix", "importance matrix (calibration text)", step=n + 1, total=len(starts)
                )
    finally:
        for h in hooks:
            h.remove()
    return {name: (total / counts[name]).cpu().numpy().astype("float32") for name, total in sums.items()}
