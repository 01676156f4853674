"""The model stages of text-to-SQL, used only when the rule parser finds no intent.

A capable model writes SQL itself: `ChatSQLWriter` (any `SQLWriter`; `text_to_sql_dspy` is
another) answers under a JSON schema ({"sql": ...}, grammar-constrained on llama.cpp) from the
schema prompt and a few examples, and the pipeline validates, runs and repairs what it wrote.
A small model may only classify: `IntentPicker` has it pick an intent from an enum, and the
slots are the catalog values the question names (`intents.grounded_plan`), so it cannot invent
a module or a filter. The pipeline that calls these is `knowledge.catalog.text_to_sql`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field, create_model

from llmtutor.knowledge.catalog import Catalog
from llmtutor.knowledge.catalog.intents import grounded_plan
from llmtutor.knowledge.catalog.query_plan import Intent, QueryPlan
from llmtutor.knowledge.catalog.sql_guard import SQLError
from llmtutor.knowledge.catalog.text_to_sql_result import EXAMPLES_HINT, QuestionNotUnderstoodError

LLMFactory = Callable[[], Any]  # returns a LangChain chat model (with_structured_output)


class SQLWriter(Protocol):
    """Writes one SELECT for a question; `feedback` carries the previous SQL and its error."""

    name: str

    def write(self, question: str, schema: str, feedback: str | None = None) -> str: ...


class GeneratedSQL(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str = Field(description="One SQLite SELECT statement answering the question.")


SQL_INSTRUCTIONS = (
    "You translate a learner's question about the LLM Course into ONE SQLite SELECT query over the "
    "database below. Use only its tables and columns; quote text with single quotes; prefer ids "
    "(module_id = 'engineer.rag', track_id = 'scientist'); questions about 'my' quizzes, scores or "
    "mastery use quiz_attempts and module_mastery. Never write anything but a SELECT. "
    'Answer with JSON: {"sql": "SELECT ..."}.'
)
# Few-shot pairs for the plain writer; deliberately not questions from the dev set.
WRITER_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "How many resources does the Neural Networks module list?",
        "SELECT COUNT(*) FROM resources WHERE module_id = 'fundamentals.neural-networks'",
    ),
    (
        "哪些笔记本属于量化模块？",
        "SELECT n.name FROM notebooks n JOIN notebook_modules nm ON nm.notebook_id = n.id "
        "WHERE nm.module_id = 'scientist.quantization'",
    ),
    (
        "What is my accuracy on the SFT module?",
        "SELECT AVG(correct) FROM quiz_attempts WHERE module_id = 'scientist.sft'",
    ),
)


class ChatSQLWriter:
    """A LangChain chat model writing SQL under a JSON schema (grammar-constrained on llama.cpp)."""

    name = "chat"

    def __init__(
        self,
        llm: LLMFactory,
        examples: Sequence[tuple[str, str]] = WRITER_EXAMPLES,
        method: str = "json_schema",
    ):
        self._llm, self._examples, self._method = llm, tuple(examples), method
        self._model: Any = None

    def write(self, question: str, schema: str, feedback: str | None = None) -> str:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        if self._model is None:
            self._model = self._llm().with_structured_output(GeneratedSQL, method=self._method)
        messages: list[Any] = [SystemMessage(f"{SQL_INSTRUCTIONS}\n\n{schema}")]
        for q, sql in self._examples:
            messages += [HumanMessage(q), AIMessage(GeneratedSQL(sql=sql).model_dump_json())]
        messages.append(HumanMessage(question if not feedback else f"{question}\n\n{feedback}"))
        try:
            with _quiet_pydantic():
                out = self._model.invoke(messages)
        except Exception as exc:  # invalid JSON, server error: the repair loop treats it as a bad query
            raise SQLError(f"the model returned no usable SQL ({type(exc).__name__})", "ask again") from exc
        return out.sql if isinstance(out, GeneratedSQL) else str(getattr(out, "sql", out))


INTENT_HELP = {
    "count_resources": "how many resources (optionally of a module, track, kind, author)",
    "list_resources": "which resources (of a module, track, kind, author)",
    "resource_details": "author or link of one named resource",
    "resources_per_module": "which module has the most/fewest resources",
    "resources_per_kind": "resources per kind",
    "count_modules": "how many modules (in a track)",
    "list_modules": "which modules (in a track)",
    "module_details": "what a module is / which track it is in",
    "module_topics": "topics a module covers",
    "count_topics": "how many topics a module covers",
    "count_tracks": "how many tracks",
    "list_tracks": "which tracks",
    "count_notebooks": "how many notebooks",
    "list_notebooks": "which notebooks",
    "notebook_details": "links or modules of one notebook",
    "count_terms": "how many glossary terms",
    "list_terms": "which glossary terms (of a module)",
    "term_details": "translation or definition of a term",
    "count_quizzes": "how many quizzes I took",
    "quiz_accuracy": "my quiz accuracy or average score",
    "list_quizzes": "my quiz history",
    "quizzes_per_module": "which module I took most quizzes on",
    "mastery": "my mastery of modules",
    "unquizzed_modules": "modules I have not been quizzed on",
}


class IntentPicker:
    """A chat model picks the intent only (an enum, grammar-constrained); the slots are the catalog
    values the question names (`grounded_plan`), so the model cannot invent a module or a filter.
    Measured with SmolLM2-135M filling every slot itself: each nullable slot got an arbitrary
    catalog value (a module for "how many quizzes?"), which made confident wrong answers."""

    def __init__(self, llm: LLMFactory, catalog: Catalog, method: str = "json_schema"):
        self._llm, self._catalog, self._method = llm, catalog, method
        self._model: Any = None

    def plan(self, question: str) -> QueryPlan:
        from langchain_core.messages import HumanMessage, SystemMessage

        if self._model is None:
            self._model = self._llm().with_structured_output(intent_schema(), method=self._method)
        menu = "\n".join(f"- {name}: {text}" for name, text in INTENT_HELP.items())
        system = (
            "Classify a learner's question about the LLM Course by what must be looked up in the course "
            f"database. Intents:\n{menu}\n"
            'Answer with JSON: {"intent": "..."}.'
        )
        try:
            with _quiet_pydantic():
                raw = self._model.invoke([SystemMessage(system), HumanMessage(question)])
        except Exception as exc:
            raise QuestionNotUnderstoodError(
                f"the model could not classify the question ({type(exc).__name__})", EXAMPLES_HINT
            ) from exc
        intent = raw.intent if isinstance(raw, BaseModel) else dict(raw)["intent"]
        return grounded_plan(question, intent, self._catalog)


def intent_schema() -> type[BaseModel]:
    return create_model(
        "CourseIntent", __config__=ConfigDict(extra="forbid"), intent=(Literal[get_args(Intent)], ...)
    )  # type: ignore[valid-type]


@contextmanager
def _quiet_pydantic() -> Iterator[None]:
    # LangChain's structured-output parser round-trips the parsed model through a field typed
    # None, and pydantic warns on every call; the value is right, the warning is noise in the CLI.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Pydantic serializer warnings")
        yield
