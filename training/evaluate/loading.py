"""Turning a `ModelSpec` into a loaded (model, tokenizer), with what the card needs to know
about it: the resolved path, its kind, the GGUF it came from and its chat template hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmtutor.errors import ModelNotFoundError
from llmtutor.training.evaluate.config import ModelSpec


@dataclass
class LoadedModel:
    label: str
    spec: str
    path: str  # resolved HF folder (or hub id)
    kind: str  # "bundled", "folder", "gguf", "merged", "adapter", "full", "quantized", "hub"
    model: Any
    tokenizer: Any
    gguf: Path | None = None  # the GGUF the weights were dequantized from, if any
    info: dict[str, Any] = field(default_factory=dict)

    def chat_template_hash(self) -> str | None:
        template = getattr(self.tokenizer, "chat_template", None)
        if not template:
            return None
        text = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _gguf_source(folder: Path) -> Path | None:
    """Folders converted from a GGUF record their source (training/models.py); the
    llama.cpp perplexity check needs the file itself."""
    from llmtutor.hf_models import SOURCE_FILE

    try:
        source = Path(json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return source if source.is_file() and source.suffix.lower() == ".gguf" else None


def _kind(spec: str, models_dir: Path) -> str:
    from llmtutor.hf_models import is_default_model
    from llmtutor.model_registry import find_model

    if is_default_model(spec):
        return "bundled"
    path = Path(spec).expanduser()
    if path.is_file():
        return "gguf"
    if path.is_dir():
        return "folder"
    found = find_model(models_dir, spec)
    return found.kind if found is not None else "hub"


def load_model(spec: ModelSpec, models_dir: Path, device: str) -> LoadedModel:
    """Load one model for evaluation. Plain models come from `load_causal_lm`'s process
    cache (evaluation never mutates them); adapters get a fresh base copy (below)."""
    from llmtutor.hf_models import load_causal_lm, resolve_hf_model

    models_dir = Path(models_dir)
    kind = _kind(spec.model, models_dir)
    if kind == "adapter":
        return _load_adapter(spec, models_dir, device)
    model, tokenizer = load_causal_lm(spec.model or None, models_dir, device=device)
    path = resolve_hf_model(spec.model or None, models_dir)
    gguf = _gguf_source(path) if isinstance(path, Path) else None
    return LoadedModel(spec.display(), spec.model, str(path), kind, model, tokenizer, gguf)


def _load_adapter(spec: ModelSpec, models_dir: Path, device: str) -> LoadedModel:
    """A LoRA adapter on its base, merged for evaluation. peft injects its layers into the
    base model in place, so the base is loaded afresh rather than from `load_causal_lm`'s
    cache: the cached copy may be the baseline of this very comparison."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmtutor.hf_models import pick_device, pick_dtype, quiet_transformers, resolve_hf_model
    from llmtutor.model_registry import require_model

    entry = require_model(models_dir, spec.model)
    if not entry.base:
        raise ModelNotFoundError(
            f"adapter {spec.model!r} does not record its base model",
            "evaluate its merged model, or register it again with its base",
        )
    base_path = resolve_hf_model(entry.base, models_dir)
    dev = pick_device(device)
    with quiet_transformers():
        base = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=pick_dtype(None, dev))
        model = PeftModel.from_pretrained(base, entry.path).merge_and_unload()
        tok_dir = entry.path if (Path(entry.path) / "tokenizer_config.json").is_file() else str(base_path)
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(dev).eval()
    return LoadedModel(
        spec.display(), spec.model, entry.path, "adapter", model, tokenizer, info={"base": entry.base}
    )
