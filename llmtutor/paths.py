"""The one path policy: what a learner names and reads stays inside the workspace.

- Output names (a fine-tune's, a merge's, an export's) are plain names: letters, digits, '.',
  '_' and '-', at most 80 characters, no separators, so `outputs/NAME` can never leave outputs/.
- Input paths (datasets, models, configs, evaluation text) must resolve, symlinks followed,
  inside the learner's space or a folder in LLMTUTOR_ALLOWED_DIRS. A refusal never says whether
  the path exists, nor where the allowed folders are on the server.
- A learner's space: the workspace itself for the local learner (a single-user workspace); on a
  shared server `<workspace>/learners/<id>/`, holding their models/ (own registry.json),
  outputs/, quizzes and files, so one learner never reads, lists or names another's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from llmtutor.errors import ToolInputError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9._-]{1,96}$")


class PathNotAllowedError(ToolInputError):
    """A path outside the workspace and the allowed folders."""


def check_name(name: str, what: str = "name") -> str:
    """A plain output or model name, or a refusal naming the rule."""
    if not isinstance(name, str) or not NAME.match(name) or ".." in name:
        shown = repr(name)[:60] if isinstance(name, str) else type(name).__name__
        raise ToolInputError(
            f"invalid {what} {shown}", "use letters, digits, '.', '_' or '-' (max 80, no '/' or '..')"
        )
    return name


def output_dir(workspace: Path, name: str) -> Path:
    """`<workspace>/outputs/<name>` for a checked plain name (`workspace`: a learner's space)."""
    return Path(workspace) / "outputs" / check_name(name, "output name")


LOCAL_LEARNER = "local"
LEARNERS_DIR = "learners"
_LEARNER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def learner_space(workspace: Path, learner_id: str = LOCAL_LEARNER) -> Path:
    """Where a learner's models, outputs, quizzes and files live: the workspace itself for the
    local learner, `<workspace>/learners/<id>` on a shared server."""
    if learner_id == LOCAL_LEARNER:
        return Path(workspace)
    if not isinstance(learner_id, str) or not _LEARNER_ID.match(learner_id):
        raise ToolInputError(f"invalid learner id {learner_id!r}", "learner ids come from `llmtutor users`")
    return Path(workspace) / LEARNERS_DIR / learner_id


def shared_models_dir(models_dir: Path) -> Path:
    """The workspace's models/ for a learner's `<workspace>/learners/<id>/models`, else itself.
    Only the bundled model's conversion is shared (540 MB, the same for everyone): converting it
    once per learner would fill the disk and their quota with copies."""
    folder = Path(models_dir)
    learner, learners = folder.parent, folder.parent.parent
    # Exactly the layout learner_space makes, whatever keeps the learners (users.sqlite, Postgres,
    # or the public demo's per-visitor learners, who have no user row at all).
    if folder.name == "models" and learners.name == LEARNERS_DIR and _LEARNER_ID.match(learner.name):
        return learners.parent / "models"
    return folder


def _outside(value: str | Path) -> PathNotAllowedError:
    shown = str(value)[:120].replace("\x00", "")
    return PathNotAllowedError(
        f"{shown} is outside the workspace and the allowed folders",
        "copy the file into the workspace, or add its folder to LLMTUTOR_ALLOWED_DIRS",
    )


def resolve_user_path(
    value: str | Path, workspace: Path, allowed: Iterable[Path] = (), must_exist: bool = False
) -> Path:
    """Relative paths resolve inside the workspace; absolute ones must lie in the workspace or an
    allowed folder after resolving `..` and symlinks."""
    text = str(value)
    if "\x00" in text or not text.strip():
        raise _outside(value)
    roots = [Path(workspace).resolve(), *(Path(a).expanduser().resolve() for a in allowed)]
    try:
        raw = Path(text).expanduser()
        candidate = (raw if raw.is_absolute() else roots[0] / raw).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, an unknown ~user
        raise _outside(value) from None
    if not any(candidate == root or candidate.is_relative_to(root) for root in roots):
        raise _outside(value)
    if must_exist and not candidate.exists():
        raise ToolInputError(
            f"{text} does not exist in the workspace", "put it in the workspace or an allowed folder"
        )
    return candidate


_PATH_SUFFIXES = (
    ".gguf",
    ".safetensors",
    ".bin",
    ".pt",
    ".json",
    ".yaml",
    ".yml",
    ".jsonl",
    ".csv",
    ".parquet",
)


def looks_like_path(ref: str) -> bool:
    """A model or data reference written as a path rather than a name or hub id."""
    text = ref.strip()
    return (
        text.startswith(("/", ".", "~", "\\"))
        or "\\" in text
        or "://" in text
        or text.lower().endswith(_PATH_SUFFIXES)
        or text.count("/") > 1
    )


def model_ref(
    ref: str,
    workspace: Path,
    allowed: Iterable[Path] = (),
    names: Iterable[str] = (),
) -> str:
    """A model reference a learner gave, checked. Passed through unchanged: a hub id (`org/name`,
    fetched only when downloads are allowed) and the given `names` (registered models, the bundled
    model, tool aliases). Anything else is a path: it must resolve inside the workspace or an
    allowed folder and comes back absolute, so nothing later looks it up relative to the server's
    working directory."""
    if not isinstance(ref, str) or "\x00" in ref or not ref.strip():
        raise _outside(ref)
    text = ref.strip()
    if text in set(names) or (HUB_ID.match(text) and not looks_like_path(text)):
        return text
    return str(resolve_user_path(text, workspace, allowed))


# Images a UI may show: raster formats only (an SVG can carry script).
DISPLAY_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})


def display_dir(workspace: Path) -> Path:
    """The one folder a web UI serves files from; databases, logs and models never go there."""
    return Path(workspace) / "display"


def for_display(path: str | Path, workspace: Path) -> Path | None:
    """A copy of an image a tool produced in the workspace, in `display_dir`, named by its content
    (so a name reveals nothing and the same plot is stored once); None for anything else."""
    import hashlib
    import shutil

    try:
        source = Path(path).resolve()
        inside = source.is_relative_to(Path(workspace).resolve())
    except (OSError, ValueError):
        return None
    if not inside or source.suffix.lower() not in DISPLAY_SUFFIXES or not source.is_file():
        return None
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:24]
    target = display_dir(workspace) / f"{digest}{source.suffix.lower()}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target
