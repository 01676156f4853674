"""llmtutor: a tutor for the LLM Course that runs the labs.

The subpackages live in top-level folders of the repository (agents/, tools/,
knowledge/, training/, ui/) and are mapped under this import root by
pyproject.toml. Public entry point for scripts::

    from llmtutor import Tutor
    tutor = Tutor()
    print(tutor.ask("What is LoRA?").answer)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Settings", "Tutor", "__version__"]

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor
    from llmtutor.settings import Settings


def __getattr__(name: str) -> Any:
    # Lazy so that `import llmtutor` (and `llmtutor --help`) stays fast.
    if name == "Tutor":
        from llmtutor.agents.tutor import Tutor

        return Tutor
    if name == "Settings":
        from llmtutor.settings import Settings

        return Settings
    raise AttributeError(name)
