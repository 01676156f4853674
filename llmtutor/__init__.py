"""llmtutor: a tutor for the LLM Course that runs the labs.

This folder is the core every layer may import (errors, settings, bundled assets, chat
backends, the job runner, SQLite migrations, text helpers); it imports nothing of the
layers above. Those live in top-level folders of the repository (agents/, tools/,
knowledge/, training/, ui/), mapped under this import root by setup.py. The lazy `Tutor`
re-export below is the public facade for scripts, not a core dependency::

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
