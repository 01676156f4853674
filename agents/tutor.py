"""`Tutor`: the Python API over the graph, used by the CLI, the Gradio app,
the app server and scripts.

    from llmtutor import Tutor
    tutor = Tutor()                      # settings from LLMTUTOR_* variables
    reply = tutor.ask("What is LoRA?")
    for event in tutor.stream("Compare greedy and beam search", thread_id="t1"):
        ...
    tutor.run_tool("estimate_memory", model="llama-3-8b", mode="qlora")
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from functools import cached_property
from typing import Any, Literal

from langchain_core.messages import AnyMessage, HumanMessage
from pydantic import BaseModel, ConfigDict, Field

from llmtutor.agents.explain.similarity import make_embed
from llmtutor.agents.graph import ANSWER_TOKEN, GraphDeps, build_graph, last_ai_text
from llmtutor.agents.personas import Persona, get_persona, load_personas
from llmtutor.agents.routing.router import RouteDecision, Router
from llmtutor.errors import InputLimitError, NothingToResumeError
from llmtutor.settings import Settings
from llmtutor.text import detect_language
from llmtutor.tools.registry import ToolContext, ToolRegistry, default_registry

EventType = Literal["route", "tool_start", "progress", "tool_result", "approval", "token", "answer"]


class TutorEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: EventType
    data: dict[str, Any] = Field(default_factory=dict)


class TutorReply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str
    citations: list[dict[str, Any]] = Field(default_factory=list)
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    persona: str
    thread_id: str
    # Set when an expensive tool waits for the learner's approval (`Tutor.resume`).
    pending_approval: dict[str, Any] | None = None
    tool_results: list[dict[str, Any]] = Field(default_factory=list)


class Tutor:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backend: Any = None,
        registry: ToolRegistry | None = None,
        router: Router | None = None,
        checkpointer: Any = None,
    ):
        self.settings = settings or Settings()
        self.settings.ensure_workspace()
        self.settings.apply_download_policy()
        self._backend = backend
        self.registry = registry or default_registry()
        self._router = router
        self._checkpointer = checkpointer
        self._own_checkpointer: Any = None  # one this tutor opened, closed by close()
        self._cancel = threading.Event()  # direct tool runs (run_tool): the caller's own
        # One event per conversation: a learner's Stop (or a closed stream) stops their turn's
        # tool, never another learner's.
        self._cancels: dict[str, threading.Event] = {}
        self._cancels_lock = threading.Lock()
        self._llm_cache: dict[tuple[float, int], Any] = {}

    # ----- components (built on first use) -------------------------------
    @cached_property
    def personas(self) -> dict[str, Persona]:
        return load_personas(self.settings.personas_dir)

    @property
    def backend(self):
        if self._backend is None:
            from llmtutor.backends import make_backend

            self._backend = make_backend(self.settings)
        return self._backend

    @property
    def router(self) -> Router:
        if self._router is None:
            self._router = Router(self.registry, embed_model=self.settings.resolved_embed_model())
        return self._router

    def uses_native_routing(self) -> bool:
        if self.settings.router == "native":
            return True
        if self.settings.router == "classifier":
            return False
        return (
            bool(getattr(self.backend, "supports_native_tools", False))
            and not self.settings.uses_default_chat_model()
        )

    @cached_property
    def graph(self):
        if self._checkpointer is None:  # threads.sqlite, or Postgres (LLMTUTOR_DATABASE_URL)
            from llmtutor.agents.checkpointer import make_checkpointer

            self._checkpointer = self._own_checkpointer = make_checkpointer(self.settings)
        return build_graph(self.graph_deps(), checkpointer=self._checkpointer)

    def writes_answers(self) -> bool:
        """Whether the chat model may write answers and explanations (checked against the sources).

        Not the default 135M model (llamacpp/hf with no chat model set), nor any backend without
        native tool calling: their text is replaced by templates, extractive answers and fixed
        texts, and they are not called for answers at all.
        """
        if self.settings.uses_default_chat_model():
            return False
        return bool(getattr(self.backend, "supports_native_tools", False))

    def graph_deps(self) -> GraphDeps:
        return GraphDeps(
            registry=self.registry,
            personas=self.personas,
            default_persona=self.settings.persona,
            route=self._route,
            llm=self._llm,
            tool_context=self.tool_context,
            capable=self.writes_answers(),
            embed=make_embed(self.settings.resolved_embed_model()),
            record_outcome=self._record_outcome,
            record_lab=self._record_lab,
            cancel_event=self.cancel_event,
            guard=self.guard,
        )

    def _record_outcome(self, outcome: Any, learner_id: str = "local") -> None:
        """A graded dialogue step as learner-model evidence. A failed write is logged, never
        allowed to cost the learner their answer."""
        from llmtutor.knowledge.learner.evidence import record_outcome

        try:
            record_outcome(
                self.settings.database,
                outcome.kind,
                outcome.score,
                outcome.question,
                outcome.about,
                learner_id=learner_id,
            )
        except Exception as exc:  # noqa: BLE001 - statistics, not the answer
            logging.getLogger(__name__).warning("could not record the learner's progress: %s", exc)

    def _record_lab(self, tool: str, request: str, args: dict[str, Any], learner_id: str = "local") -> None:
        """A lab run to completion as learner-model evidence (never at the cost of the answer)."""
        from llmtutor.knowledge.learner.evidence import record_lab

        try:
            record_lab(self.settings.database, tool, request, args, learner_id=learner_id)
        except Exception as exc:  # noqa: BLE001 - statistics, not the answer
            logging.getLogger(__name__).warning("could not record the learner's lab: %s", exc)

    def _llm(self, temperature: float, max_tokens: int | None = None):
        temp = self.settings.temperature if self.settings.temperature is not None else temperature
        tokens = min(max_tokens or self.settings.max_tokens, self.settings.max_tokens)
        key = (temp, tokens)
        if key not in self._llm_cache:
            self._llm_cache[key] = self.backend.chat_model(temperature=temp, max_tokens=tokens)
        return self._llm_cache[key]

    def _route(
        self, text: str, allowed: list[str], history: list[AnyMessage], learner_id: str = "local"
    ) -> RouteDecision:
        command = self.router.parse_command(text)
        continued = None if command else self._continuation(text, allowed, history, learner_id)
        if command is not None:
            decision = command
        elif continued is not None:
            decision = continued
        elif self.uses_native_routing():
            from llmtutor.agents.routing.native_router import native_route

            decision = native_route(self._llm(0.0), self.registry, allowed, history)
        else:
            decision = self.router.route(text)
        if decision.tool and decision.tool not in allowed:
            return RouteDecision(tool=None, args={}, confidence=decision.confidence, method="none")
        return decision

    def _continuation(
        self, text: str, allowed: list[str], history: list[AnyMessage], learner_id: str = "local"
    ) -> RouteDecision | None:
        """An open session (a quiz waiting for an answer) takes the message first.

        Only a session this conversation's last reply showed (its id is printed there): a quiz
        opened in another thread, tab or the CLI must not swallow this thread's messages.
        """
        shown = last_ai_text(history)
        for name in allowed:
            tool = self.registry.get(name)
            args = (
                tool.continues(self.settings.workspace, text, shown, learner_id) if tool.continues else None
            )
            if args:
                return RouteDecision(tool=name, args=args, confidence=1.0, method="continuation")
        return None

    def tool_context(self, learner_id: str = "local") -> ToolContext:
        return ToolContext(
            workspace=self.settings.workspace,
            device=self.settings.device,
            cancel_event=self._cancel,
            llm_factory=self._tool_llm if self.uses_native_routing() else None,
            allowed_dirs=tuple(self.settings.allowed_dirs),
            learner_id=learner_id,
            database_url=self.settings.database_url,
        )

    def _tool_llm(self):
        """Deterministic chat model for tools (one stable factory: tools cache per factory)."""
        return self._llm(0.0, 256)

    # ----- public API ---------------------------------------------------------
    def persona(self, name: str | None = None) -> Persona:
        return get_persona(self.personas, name or self.settings.persona)

    def check_message(self, text: str) -> str:
        """Refuse a blank or over-long message before any model sees it (in the learner's language)."""
        if not isinstance(text, str):
            raise InputLimitError("the message must be text", "send a string")
        zh = detect_language(text[:2000]) == "zh"
        if not text.strip():
            raise InputLimitError(
                "消息是空的" if zh else "the message is empty",
                "请输入问题或请求" if zh else "type a question or a request",
            )
        limit = self.settings.max_message_chars
        if len(text) > limit:
            raise InputLimitError(
                f"消息有 {len(text)} 个字符，超过上限 {limit}"
                if zh
                else f"the message has {len(text)} characters, over the limit of {limit}",
                "请缩短后再发，或分几次发送"
                if zh
                else "shorten it or send it in parts (LLMTUTOR_MAX_MESSAGE_CHARS sets the limit)",
            )
        return text

    def pending_approval(self, thread_id: str) -> bool:
        """Whether the conversation is paused at an expensive tool's approval."""
        return self.pending_request(thread_id) is not None

    def pending_request(self, thread_id: str) -> dict[str, Any] | None:
        """The approval request the conversation is paused at (tool, args, plan, message, as the
        `approval` event had it), or None: a UI restores it after a reload."""
        state = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        for task in state.tasks if state else ():
            for waiting in task.interrupts:
                value = waiting.value if isinstance(waiting.value, dict) else {"message": str(waiting.value)}
                return {**value, "thread_id": thread_id}
        return None

    def require_pending(self, thread_id: str) -> None:
        if not self.pending_approval(thread_id):
            raise NothingToResumeError(
                f"conversation {thread_id[:64]!r} is not waiting for an approval",
                "send a new message instead; resume only answers an approval request",
            )

    def plan(self, text: str, persona: str | None = None) -> RouteDecision:
        """The routing decision for a message, without running anything."""
        self.check_message(text)
        allowed = self.persona(persona).tool_names(self.registry.names())
        return self._route(text, allowed, [HumanMessage(content=text)])

    def plan_batch(self, texts: list[str]) -> list[RouteDecision]:
        if self.uses_native_routing():
            return [self.plan(text) for text in texts]
        return self.router.route_batch(texts)

    def run_tool(
        self,
        name: str,
        args: dict[str, Any] | None = None,
        progress=None,
        *,
        learner_id: str = "local",
        **kwargs: Any,
    ) -> BaseModel:
        """Run a tool directly (no approval: the caller is the approver)."""
        self.guard(name, {**(args or {}), **kwargs})
        ctx = self.tool_context(learner_id)
        ctx.progress = progress
        output = self.registry.get(name).run({**(args or {}), **kwargs}, ctx)
        if getattr(output, "status", "succeeded") == "succeeded":
            self._record_lab(name, "", {**(args or {}), **kwargs}, learner_id)
        return output

    def guard(self, tool: str, args: dict[str, Any]) -> None:
        """In the public demo, refuse what a visitor may not run (before any plan or run)."""
        if not self.settings.public_demo:
            return
        from llmtutor.demo import DEMO_MAX_STEPS, demo_refusal
        from llmtutor.errors import DemoLimitError

        why = demo_refusal(tool, args, self.registry.get(tool).expensive)
        if why is not None:
            raise DemoLimitError(
                why, f"install llmtutor to run it yourself (`make run`); here: max_steps ≤ {DEMO_MAX_STEPS}"
            )

    def cancel(self, thread_id: str | None = None) -> None:
        """Ask the running tool to stop at its next check: one conversation's, or every one."""
        with self._cancels_lock:
            events = [self._cancels[thread_id]] if thread_id in self._cancels else []
            if thread_id is None:
                events = [self._cancel, *self._cancels.values()]
        for event in events:
            event.set()

    def cancel_event(self, thread_id: str) -> threading.Event:
        with self._cancels_lock:
            return self._cancels.setdefault(thread_id, threading.Event())

    def stream(
        self,
        text: str,
        *,
        thread_id: str | None = None,
        persona: str | None = None,
        approve: bool | None = None,
        learner_id: str = "local",
    ) -> Iterator[TutorEvent]:
        """Run one turn, yielding events. With `approve=None` an expensive tool
        stops the turn at an `approval` event; call `resume` to continue."""
        self.check_message(text)
        name = self.persona(persona).name
        if text.strip() in ("/help", "/?"):
            yield TutorEvent(
                type="answer",
                data={"text": self.help_text(), "explanation": self.help_text(), "persona": name},
            )
            return
        if text.lstrip().startswith("/"):
            self.router.parse_command(text)  # a bad command fails here, before anything is checkpointed
        payload = {"messages": [HumanMessage(content=text)], "persona": name, "learner_id": learner_id}
        yield from self._drive(payload, thread_id or new_thread_id(), approve)

    def help_text(self) -> str:
        lines = ["Ask a question, or ask me to run a lab. Commands:"]
        lines += [f"- `/{tool.name} …` — {tool.description}" for tool in self.registry]
        lines.append("- `/tool NAME {json}` — run a tool with exact arguments")
        lines.append(f"Personas: {', '.join(sorted(self.personas))}")
        return "\n".join(lines)

    def resume(self, thread_id: str, approved: bool) -> Iterator[TutorEvent]:
        from langgraph.types import Command

        self.require_pending(thread_id)
        yield from self._drive(Command(resume={"approved": approved}), thread_id, None)

    def ask(
        self,
        text: str,
        *,
        thread_id: str | None = None,
        persona: str | None = None,
        approve: bool | None = None,
        learner_id: str = "local",
    ) -> TutorReply:
        thread_id = thread_id or new_thread_id()
        return self.collect(
            self.stream(text, thread_id=thread_id, persona=persona, approve=approve, learner_id=learner_id),
            thread_id,
        )

    def collect(self, events: Iterator[TutorEvent], thread_id: str) -> TutorReply:
        reply = TutorReply(answer="", persona=self.settings.persona, thread_id=thread_id)
        for event in events:
            if event.type == "route" and event.data.get("tool"):
                reply.tool_calls.append({"tool": event.data["tool"], "args": event.data.get("args", {})})
            elif event.type == "tool_result":
                reply.tool_results.append(event.data)
            elif event.type == "approval":
                reply.pending_approval = event.data
            elif event.type == "answer":
                reply.answer = event.data["text"]
                reply.persona = event.data.get("persona", reply.persona)
                reply.citations = event.data.get("citations", [])
                reply.pending_approval = None
        return reply

    def history(self, thread_id: str) -> list[AnyMessage]:
        state = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        return list(state.values.get("messages", [])) if state and state.values else []

    def _drive(self, payload: Any, thread_id: str, approve: bool | None) -> Iterator[TutorEvent]:
        from langgraph.types import Command

        config = {"configurable": {"thread_id": thread_id}}
        self.cancel_event(thread_id).clear()
        while True:
            pending = None
            # No "messages" mode: the model's raw tokens are a draft the answer node may cut or
            # replace; the answer node streams the composed text itself ("custom", ANSWER_TOKEN).
            for mode, chunk in self.graph.stream(payload, config, stream_mode=["updates", "custom"]):
                if mode == "custom":
                    if ANSWER_TOKEN in chunk:
                        yield TutorEvent(type="token", data={"text": chunk[ANSWER_TOKEN]})
                    else:
                        yield TutorEvent(type="progress", data=chunk)
                else:
                    for node, update in chunk.items():
                        if node == "__interrupt__":
                            pending = update[0].value
                        else:
                            yield from self._node_events(node, update or {}, thread_id)
            if pending is None:
                return
            yield TutorEvent(type="approval", data={**pending, "thread_id": thread_id})
            if approve is None:
                return
            payload, approve = Command(resume={"approved": approve}), None

    def _node_events(self, node: str, update: dict[str, Any], thread_id: str) -> Iterator[TutorEvent]:
        if node == "route":
            decision = update.get("route") or {}
            yield TutorEvent(type="route", data=decision)
            if decision.get("tool") and not self.registry.get(decision["tool"]).expensive:
                yield TutorEvent(
                    type="tool_start", data={"tool": decision["tool"], "args": decision.get("args", {})}
                )
        elif node == "approve" and update.get("approved"):
            route = self.graph.get_state({"configurable": {"thread_id": thread_id}}).values.get("route") or {}
            yield TutorEvent(
                type="tool_start", data={"tool": route.get("tool"), "args": route.get("args", {})}
            )
        elif node == "prepare" and update.get("tool_run"):  # refused before asking (bad data, no memory)
            yield TutorEvent(type="tool_result", data=dict(update["tool_run"]))
        elif node == "run_tool":
            yield TutorEvent(type="tool_result", data=dict(update.get("tool_run") or {}))
        elif node == "answer":
            message = update["messages"][-1]
            state = self.graph.get_state({"configurable": {"thread_id": thread_id}}).values
            yield TutorEvent(
                type="answer",
                data={
                    "text": message.content,
                    "explanation": message.response_metadata.get("explanation", message.content),
                    "persona": state.get("persona"),
                    "citations": message.response_metadata.get("citations", []),
                },
            )

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
        if self._own_checkpointer is not None:
            from llmtutor.agents.checkpointer import close_checkpointer

            close_checkpointer(self._own_checkpointer)


def new_thread_id() -> str:
    return uuid.uuid4().hex[:12]


def langgraph_graph(config: dict | None = None):
    """Factory named in langgraph.json for `langgraph dev` (it brings its own checkpointer)."""
    return build_graph(Tutor(checkpointer=False).graph_deps())
