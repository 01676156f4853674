"""The public demo mode (`LLMTUTOR_PUBLIC_DEMO=1`, for a Hugging Face Space): anyone may chat,
each browser session is its own learner, and the expensive tools run only tiny jobs on the
bundled model; what they write expires.

The limits are checked before a plan is shown (chat) and before any direct run (Tools tab, API),
so a demo visitor can see a real fine-tune happen without being able to occupy the machine.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

DEMO_MAX_STEPS = 20  # a fine-tune of the bundled model: about a minute on a CPU Space
DEMO_TTL_HOURS = 24.0
# Jobs a visitor may start, and what the arguments must look like.
_ALLOWED = {"finetune_model", "job_status"}


def demo_refusal(tool: str, args: dict[str, Any], expensive: bool) -> str | None:
    """Why the public demo will not run this, or None when it may."""
    if not expensive:
        return None
    if tool not in _ALLOWED:
        return f"{tool} does not run in the public demo (it needs minutes and GBs per visitor)"
    if args.get("base_model") not in (None, "", "default"):
        return "the public demo fine-tunes only the bundled model"
    if args.get("dataset", "course") != "course":
        return "the public demo fine-tunes only on the bundled course dataset"
    steps = args.get("max_steps")
    if not isinstance(steps, int) or steps > DEMO_MAX_STEPS:
        return f"the public demo runs at most {DEMO_MAX_STEPS} training steps (ask for max_steps {DEMO_MAX_STEPS})"
    if args.get("adapter", "lora") != "lora" or args.get("evaluate"):
        return "the public demo runs LoRA without the automatic evaluation"
    return None


def expire(workspace: Path, hours: float = DEMO_TTL_HOURS, now: float | None = None) -> int:
    """Delete demo outputs and visitors' folders not touched for `hours`; returns how many."""
    cutoff = (now if now is not None else time.time()) - hours * 3600
    removed = 0
    roots = [Path(workspace) / "outputs", Path(workspace) / "learners"]
    for root in roots:
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            if root.name == "learners" and not entry.name.startswith("demo_"):
                continue  # registered learners' data is not the demo's to expire
            newest = max((p.stat().st_mtime for p in entry.rglob("*")), default=entry.stat().st_mtime)
            if max(newest, entry.stat().st_mtime) < cutoff:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed += 1
    return removed
