"""Plans for expensive tools and the learner's approval of them, shared by the HTTP server
(`POST /tools/{name}` answers 202 with a plan and an approval id) and the Gradio Tools tab
(Run shows the plan, "Approve and run" runs it)."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor


class Approvals:
    """Plans shown to a learner, waiting for their approval id (in memory: one server process).

    An id is single-use and bound to the learner, the tool and the exact arguments the plan
    was shown for: changed arguments need a new plan."""

    TTL_SECONDS = 3600

    def __init__(self) -> None:
        self._pending: dict[str, tuple[str, str, str, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(args: dict[str, Any]) -> str:
        return json.dumps(args, sort_keys=True, ensure_ascii=False)

    def issue(self, learner_id: str, tool: str, args: dict[str, Any]) -> str:
        import secrets
        import time

        approval_id = secrets.token_urlsafe(16)
        with self._lock:
            now = time.monotonic()
            self._pending = {k: v for k, v in self._pending.items() if v[3] > now}
            self._pending[approval_id] = (learner_id, tool, self._key(args), now + self.TTL_SECONDS)
        return approval_id

    def redeem(self, approval_id: str, learner_id: str, tool: str, args: dict[str, Any]) -> bool:
        """True once, for the learner, tool and arguments the plan was shown for."""
        import time

        with self._lock:
            entry = self._pending.get(approval_id)
            if entry is None or entry[3] < time.monotonic():
                return False
            if entry[:3] != (learner_id, tool, self._key(args)):
                return False
            del self._pending[approval_id]
            return True

    def withdraw(self, approval_id: str, learner_id: str) -> None:
        """The learner cancelled the plan: its id no longer runs anything."""
        with self._lock:
            entry = self._pending.get(approval_id)
            if entry is not None and entry[0] == learner_id:
                del self._pending[approval_id]


def tool_plan(tutor: Tutor, name: str, args: dict[str, Any], learner_id: str) -> str:
    """The expensive tool's plan (its preview Markdown; "" for a tool without one). Raises the
    tool's typed error when the run cannot work (bad arguments, data, or memory)."""
    tool = tutor.registry.get(name)
    validated = tool.validate(args)
    return tool.preview(validated, tutor.tool_context(learner_id)) if tool.preview is not None else ""
