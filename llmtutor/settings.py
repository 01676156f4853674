"""The one settings object (environment prefix LLMTUTOR_).

Built only at entry points (CLI, Gradio app, app server, `Tutor()`); everything
below takes explicit arguments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llmtutor.assets import default_embed_path

if TYPE_CHECKING:
    from llmtutor.database import Database

RouterMode = Literal["auto", "classifier", "native"]


class Settings(BaseSettings):
    """All user-tunable settings. Environment variables: LLMTUTOR_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="LLMTUTOR_", extra="forbid", env_file=None)

    backend: str = Field("llamacpp", description="Chat backend: llamacpp (embedded), ollama, openai, hf.")
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
    n_ctx: int = Field(
        8192, ge=256, description="Context window of each slot of the embedded llama.cpp server."
    )
    public_demo: bool = Field(
        False,
        description="Public demo (a Space): each browser session is its own learner, expensive tools run "
        "only tiny jobs on the bundled model, outputs expire.",
    )
    max_concurrent_turns: int = Field(
        16,
        ge=1,
        le=1024,
        description="Chat turns the HTTP server runs at once; more answer 429 with Retry-After.",
    )
    llama_slots: int = Field(
        4,
        ge=1,
        le=64,
        description="Conversations the embedded llama.cpp server decodes at once (continuous batching); "
        "each slot has its own n_ctx context.",
    )
    n_threads: int = Field(0, ge=0, description="CPU threads for llama.cpp; 0 = all cores.")
    n_gpu_layers: int = Field(-1, description="llama.cpp layers on GPU when one is present (-1 = all).")
    device: str = Field("auto", description="Torch device for transformers work: auto, cpu, cuda, mps.")
    request_timeout: float = Field(120.0, gt=0, description="Seconds before a backend request times out.")
    allow_downloads: bool = Field(
        False,
        description="Let transformers download models by hub id. Off: a hub id must already be in the "
        "local Hugging Face cache, and fails at once otherwise.",
    )
    max_message_chars: int = Field(
        8000, ge=1, description="Longest learner message accepted (checked before any model call)."
    )
    max_request_bytes: int = Field(
        1_000_000, ge=1024, description="Largest HTTP request body the application server reads."
    )
    allowed_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders outside the workspace that tools may read datasets/models from (JSON list or "
        "comma-separated); everything else outside the workspace is refused.",
    )

    database_url: str | None = Field(
        None,
        description="postgresql://USER:PASSWORD@HOST:PORT/DB: threads, learners, progress, jobs and "
        "conversation keys live in this Postgres database (shared by several `serve` processes) "
        "instead of the workspace's SQLite files. Unset = SQLite.",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        from llmtutor.database import is_postgres_url

        if not value or not value.strip():
            return None  # LLMTUTOR_DATABASE_URL= (empty) keeps SQLite
        if not is_postgres_url(value.strip()):
            raise ValueError("database_url must start with postgresql:// (unset it for SQLite)")
        return value.strip()

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from llmtutor.backends import BACKENDS

        if value not in BACKENDS:
            raise ValueError(f"unknown backend {value!r}: use one of {', '.join(BACKENDS)}")
        return value

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: object) -> object:
        if isinstance(value, str):  # a JSON list or comma-separated folders
            items = json.loads(value) if value.strip().startswith("[") else value.split(",")
            return [Path(os.path.expanduser(str(v).strip())) for v in items if str(v).strip()]
        return value

    def apply_download_policy(self) -> None:
        """Called by entry points: without `allow_downloads`, the hub libraries run offline (set
        before they are imported, inherited by job workers) instead of waiting on the network."""
        if not self.allow_downloads:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

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
    def database(self) -> Database:
        """Where the shared tables live (SQLite files here, or Postgres): what stores are given."""
        from llmtutor.database import Database

        return Database(workspace=self.workspace, url=self.database_url)

    @property
    def users_db(self) -> Path:
        return self.workspace / "users.sqlite"

    @property
    def catalog_db(self) -> Path:
        return self.workspace / "course.sqlite"

    def resolved_embed_model(self) -> str:
        return self.embed_model or str(default_embed_path())

    def uses_default_chat_model(self) -> bool:
        return not self.chat_model and self.backend in ("llamacpp", "hf")
