"""Paths a learner gives (datasets, models, outputs) stay inside the workspace or allowed folders."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from llmtutor.errors import ToolInputError


class PathNotAllowedError(ToolInputError):
    """A path outside the workspace and the allowed folders."""


def resolve_user_path(
    value: str | Path, workspace: Path, allowed: Iterable[Path] = (), must_exist: bool = False
) -> Path:
    """Relative paths resolve inside the workspace; absolute ones must lie in the workspace or an
    allowed folder after resolving `..` and symlinks."""
    raw = Path(str(value)).expanduser()
    roots = [Path(workspace).resolve(), *(Path(a).expanduser().resolve() for a in allowed)]
    candidate = (raw if raw.is_absolute() else roots[0] / raw).resolve()
    if not any(candidate == root or candidate.is_relative_to(root) for root in roots):
        raise PathNotAllowedError(
            f"{value} is outside the workspace and the allowed folders ({', '.join(map(str, roots))})",
            "copy the file into the workspace, or add its folder to LLMTUTOR_ALLOWED_DIRS",
        )
    if must_exist and not candidate.exists():
        raise ToolInputError(
            f"{value} does not exist (looked at {candidate})",
            f"put it in {roots[0]} or give a path in an allowed folder",
        )
    return candidate
