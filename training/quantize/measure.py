"""The source model of a quantization run, and how every torch-side row is measured.

`load_source` loads the model to quantize in full precision (merging a LoRA adapter into a
temporary folder first) and returns its HF folder, which the bitsandbytes, GPTQ/AWQ and GGUF
steps quantize from. `hf_ppl` (perplexity over disjoint windows) and `hf_speed` (greedy
tokens/s after a warm-up) measure the source and each quantized transformers model the same
way, so every row compares with the source row; `mb` turns bytes into the report's MB.
torch and transformers are imported inside the functions, so importing the recipe stays light.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from llmtutor.errors import ToolInputError
from llmtutor.training.progress import ProgressCallback
from llmtutor.training.quantize.config import QuantizeConfig


def load_source(config: QuantizeConfig, device: str, work: Path) -> tuple[Any, Any, Path]:
    """(model, tokenizer, HF folder) of the source; adapters are merged into `work` first."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmtutor.hf_models import pick_dtype, quiet_transformers, resolve_hf_model
    from llmtutor.training.evaluate.config import ModelSpec
    from llmtutor.training.evaluate.loading import _kind, load_model

    if _kind(config.model, config.models_dir) == "adapter":
        loaded = load_model(ModelSpec(model=config.model), config.models_dir, "cpu")
        folder = work / "merged-source"
        loaded.model.save_pretrained(folder)
        loaded.tokenizer.save_pretrained(folder)
    else:
        folder = resolve_hf_model(config.model or None, config.models_dir)
        if not isinstance(folder, Path):
            raise ToolInputError(
                f"{config.model!r} is not a local model", "download it first; quantization runs offline"
            )
    with quiet_transformers():
        model = (
            AutoModelForCausalLM.from_pretrained(str(folder), dtype=pick_dtype(None, device))
            .to(device)
            .eval()
        )
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return model, tokenizer, Path(folder)


def hf_ppl(
    model: Any,
    ids: list[int],
    window: int,
    label: str,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> float:
    from llmtutor.training.evaluate.perplexity import perplexity, sliding_window_nll

    return perplexity(
        *sliding_window_nll(model, ids, window, window, progress=progress, cancel=cancel, label=label)
    )


def hf_speed(model: Any, tokenizer: Any, prompt: str, new_tokens: int = 32) -> float:
    import torch

    device = next(model.parameters()).device
    inputs = tokenizer(prompt, return_tensors="pt").to(device)
    with torch.no_grad():
        model.generate(
            **inputs, max_new_tokens=2, do_sample=False, pad_token_id=tokenizer.eos_token_id
        )  # warm-up
        start = time.perf_counter()
        model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
    return new_tokens / (time.perf_counter() - start)


def mb(n_bytes: float) -> float:
    return n_bytes / 2**20
