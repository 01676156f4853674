"""The default backend: llama.cpp's own server, embedded in-process.

Why xllamacpp rather than llama-cpp-python (measured on these machines):
- the xllamacpp wheel ships the real llama.cpp server prebuilt and installs in
  seconds; llama-cpp-python must be compiled (~5 min) and its default native
  build segfaults on quantized models here;
- `llama_cpp.server` rejects OpenAI messages with `content: null` (HTTP 500),
  which LangChain sends after tool calls; the llama.cpp server accepts them;
- the server implements OpenAI chat completions with streaming and
  `response_format: json_schema` (grammar-constrained decoding), so the same
  LangChain client serves the embedded model, a remote llama-server, vLLM, …

The server listens on an ephemeral loopback port; `LLMTUTOR_BASE_URL` points
the backend at an external llama.cpp server instead.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtutor.backends.base import REPEAT_PENALTY
from llmtutor.backends.openai import OpenAIBackend
from llmtutor.errors import BackendUnavailableError, ModelNotFoundError

if TYPE_CHECKING:
    from llmtutor.settings import Settings


class EmbeddedLlamaServer:
    """One llama.cpp server per process and model; started on first use."""

    _lock = threading.Lock()
    _servers: dict[tuple, EmbeddedLlamaServer] = {}

    def __init__(self, model_path: Path, n_ctx: int, n_threads: int, n_gpu_layers: int, slots: int = 4):
        try:
            import xllamacpp
        except ImportError as exc:  # pragma: no cover - dependency of the project
            raise BackendUnavailableError(
                "llama.cpp (xllamacpp) is not installed", "run `pip install xllamacpp` or `make run`"
            ) from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        # Several learners decode together (continuous batching): with one slot every learner
        # waited behind every other (two browsers: 20.6 s and 29.3 s against 8.6 s alone). The
        # server splits n_ctx over its slots, so each slot gets the configured context.
        params.n_parallel = slots
        params.n_ctx = n_ctx * slots
        params.cpuparams.n_threads = n_threads or (os.cpu_count() or 2)
        params.cpuparams_batch.n_threads = params.cpuparams.n_threads
        params.n_gpu_layers = n_gpu_layers
        params.port = 0  # ephemeral port on 127.0.0.1
        params.verbosity = -1  # the server logs every request otherwise
        params.endpoint_metrics = False
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:
            raise BackendUnavailableError(
                f"llama.cpp could not load {model_path}: {exc}",
                "check the file is a valid GGUF (see `llmtutor doctor`)",
            ) from exc
        self.model_path = model_path
        self.base_url = self._server.listening_address.rstrip("/") + "/v1"

    @classmethod
    def get(
        cls, model_path: Path, n_ctx: int, n_threads: int, n_gpu_layers: int, slots: int = 4
    ) -> EmbeddedLlamaServer:
        key = (str(model_path), n_ctx, n_threads, n_gpu_layers, slots)
        with cls._lock:
            if key not in cls._servers:
                cls._servers[key] = cls(model_path, n_ctx, n_threads, n_gpu_layers, slots)
            return cls._servers[key]

    @classmethod
    def shutdown_all(cls) -> None:
        with cls._lock:
            for server in cls._servers.values():
                server._server = None  # the destructor stops the server loop
            cls._servers.clear()


atexit.register(EmbeddedLlamaServer.shutdown_all)


def resolve_gguf(chat_model: str, models_dir: Path | None = None) -> Path:
    """A .gguf path, or the name of a GGUF the learner exported (`quantize_model`, `lab run`)."""
    from llmtutor.assets import default_gguf_path

    if not chat_model:
        return default_gguf_path()
    path = Path(chat_model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.resolve()
    if models_dir is not None:
        from llmtutor.model_registry import find_model

        entry = find_model(models_dir, chat_model)
        if entry is not None and entry.kind == "gguf" and Path(entry.path).is_file():
            return Path(entry.path)
        if entry is not None:
            raise ModelNotFoundError(
                f"{chat_model} is a {entry.kind} model, not a GGUF (the llamacpp backend runs GGUF files)",
                f'export it with quantize_model ("quantize {chat_model} to Q4_K_M GGUF"), or chat with it through '
                "LLMTUTOR_BACKEND=hf",
            )
    raise ModelNotFoundError(
        f"model not found: {chat_model} (the llamacpp backend needs a local .gguf file)",
        "set LLMTUTOR_CHAT_MODEL to a .gguf path or an exported model's name (`llmtutor models list`), leave it "
        "empty for the embedded SmolLM2, or set LLMTUTOR_BASE_URL to a running llama.cpp server",
    )


class LlamaCppBackend(OpenAIBackend):
    name = "llamacpp"
    supports_native_tools = False  # the 135M default calls tools even for jokes (measured)

    @classmethod
    def from_settings(cls, settings: Settings) -> LlamaCppBackend:
        return cls(
            chat_model=settings.chat_model,
            base_url=settings.base_url,
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            n_gpu_layers=settings.n_gpu_layers,
            slots=settings.llama_slots,
            timeout=settings.request_timeout,
            models_dir=settings.models_dir,
        )

    def __init__(
        self,
        chat_model: str = "",
        base_url: str = "",
        n_ctx: int = 8192,
        n_threads: int = 0,
        n_gpu_layers: int = -1,
        timeout: float = 120.0,
        models_dir: Path | None = None,
        slots: int = 4,
    ):
        self.external = bool(base_url)
        self.model_path = None if self.external else resolve_gguf(chat_model, models_dir)
        self.n_ctx, self.n_threads, self.n_gpu_layers = n_ctx, n_threads, n_gpu_layers
        self.slots = slots
        super().__init__(
            model=chat_model or "default", base_url=base_url, api_key="not-needed", timeout=timeout
        )

    def endpoint(self) -> str:
        if self.external:
            return self.base_url
        assert self.model_path is not None
        return EmbeddedLlamaServer.get(
            self.model_path, self.n_ctx, self.n_threads, self.n_gpu_layers, self.slots
        ).base_url

    def sampling_extras(self) -> dict[str, Any]:
        # DRY penalises repeated n-grams without hurting the wording.
        return {"repeat_penalty": REPEAT_PENALTY, "dry_multiplier": 0.8}

    def describe(self) -> dict[str, Any]:
        info = {
            "backend": self.name,
            "model": str(self.model_path) if self.model_path else self.model,
            "server": "external llama.cpp server" if self.external else "embedded (xllamacpp)",
            "n_ctx": self.n_ctx,
            "slots": self.slots,
        }
        if self.model_path:
            info["model_size_mb"] = round(self.model_path.stat().st_size / 2**20, 1)
        return info
