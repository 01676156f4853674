"""The transformers backend ("hf"): `HFBackend` loads a model and serves it as `HFChatModel`.

Runs any causal LM that `llmtutor.hf_models` resolves (the bundled
SmolLM2 converted from its GGUF, an HF folder, a hub id) in this process, on
CPU or GPU: e.g. the models you fine-tune in the labs. The model is loaded on the first
`chat_model` call (`describe` loads nothing); generation is `hf_chat.HFChatModel`.

Structured output is prompted JSON with validation and one retry, not
grammar-constrained decoding: see `HFChatModel.with_structured_output` (`hf_structured`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtutor.backends.base import ChatBackend
from llmtutor.backends.hf_chat import DEFAULT_MAX_TOKENS, HFChatModel

if TYPE_CHECKING:
    from llmtutor.settings import Settings


class HFBackend(ChatBackend):
    name = "hf"
    supports_native_tools = False  # no tool-call parser for arbitrary chat templates

    @classmethod
    def from_settings(cls, settings: Settings) -> HFBackend:
        return cls(model=settings.chat_model, models_dir=settings.models_dir, device=settings.device)

    def __init__(self, model: str = "", *, models_dir: Path, device: str = "auto", dtype: Any = None):
        self.model, self.models_dir, self.device, self.dtype = model, Path(models_dir), device, dtype
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from llmtutor.hf_models import load_causal_lm

            self._loaded = load_causal_lm(self.model or None, self.models_dir, self.device, self.dtype)
        return self._loaded

    def chat_model(self, temperature: float | None = None, max_tokens: int | None = None) -> HFChatModel:
        hf_model, tokenizer = self._load()
        return HFChatModel(
            hf_model=hf_model,
            tokenizer=tokenizer,
            model_name=Path(str(hf_model.name_or_path)).name or "hf",
            temperature=temperature,
            max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
        )

    def describe(self) -> dict[str, Any]:
        from llmtutor.hf_models import default_hf_dir, is_default_model, pick_device, pick_dtype

        if self._loaded is not None:
            hf = self._loaded[0]
            model, device, dtype = str(hf.name_or_path), str(hf.device), str(hf.dtype)
        else:  # describe without loading (or converting) anything
            model = str(default_hf_dir(self.models_dir)) if is_default_model(self.model) else self.model
            device = pick_device(self.device)
            dtype = str(pick_dtype(self.dtype, device))
        return {
            "backend": self.name,
            "model": model,
            "device": device,
            "dtype": dtype.removeprefix("torch."),
            "loaded": self._loaded is not None,
            "structured_output": self.structured_method(),
        }

    def structured_method(self) -> str:
        return "prompted JSON + validation retry (no grammar)"

    def close(self) -> None:
        self._loaded = None  # the process-wide cache in training.models keeps the weights
