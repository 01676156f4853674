"""`llmtutor doctor`: what this installation can do, and what is missing."""

from __future__ import annotations

import importlib.metadata
import time
from typing import Any

from llmtutor.errors import LLMTutorError

LIBRARIES = (
    "llmtutor",
    "torch",
    "transformers",
    "gguf",
    "xllamacpp",
    "sentence-transformers",
    "langgraph",
    "langchain-core",
    "langchain-openai",
    "langchain-ollama",
    "gradio",
    "pydantic",
    "bitsandbytes",
    "peft",
    "trl",
)


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _gpu() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"cuda": False, "error": "torch not installed"}
    info: dict[str, Any] = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if info["cuda"]:
        props = torch.cuda.get_device_properties(0)
        info.update(
            name=props.name, memory_gb=round(props.total_memory / 2**30, 1), count=torch.cuda.device_count()
        )
    return info


def _check_backend(settings) -> dict[str, Any]:
    from llmtutor.backends import make_backend

    try:
        backend = make_backend(settings)
        info = backend.describe()
    except LLMTutorError as exc:
        return {"backend": settings.backend, "ok": False, "error": str(exc)}
    try:
        start = time.perf_counter()
        reply = backend.chat_model(temperature=0.0, max_tokens=4).invoke("Say OK.")
        info.update(ok=True, reply=str(reply.content)[:40], latency_s=round(time.perf_counter() - start, 2))
    except Exception as exc:  # any failure here is what doctor exists to show
        info.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    return info


def _check_embedder(settings) -> dict[str, Any]:
    try:
        return {"ok": True, "model": settings.resolved_embed_model()}
    except LLMTutorError as exc:
        return {"ok": False, "error": str(exc)}


def run_doctor(settings=None) -> dict[str, Any]:
    from llmtutor.agents.personas import load_personas
    from llmtutor.database import redact
    from llmtutor.settings import Settings
    from llmtutor.tools.registry import default_registry

    settings = settings or Settings()
    settings.ensure_workspace()
    try:
        personas = sorted(load_personas(settings.personas_dir))
    except LLMTutorError as exc:
        personas = [f"error: {exc}"]
    return {
        # the database URL may hold a password
        "settings": settings.model_dump(mode="json")
        | {"database_url": redact(settings.database_url) if settings.database_url else None},
        "paths": {
            "workspace": str(settings.workspace),
            "threads_db": str(settings.checkpoint_db),
            "models": str(settings.models_dir),
            "outputs": str(settings.outputs_dir),
            "index": str(settings.index_dir),
            "catalog_db": str(settings.catalog_db),
        },
        "chat_backend": _check_backend(settings),
        "embeddings": _check_embedder(settings),
        "tools": default_registry().names(),
        "personas": personas,
        "gpu": _gpu(),
        "libraries": _versions(),
    }
