"""Text-to-SQL as a DSPy program, for backends with an OpenAI-compatible endpoint.

`CourseSQL` (db_schema, question -> sql) runs through `dspy.Predict` with a JSON adapter that
always sends the signature's JSON schema as `response_format`, so llama.cpp decodes under a
grammar and the output is always {"sql": "..."} - DSPy's stock adapters fall back to free-form
"[[ ## sql ## ]]" text or to untyped JSON mode for models litellm does not know, and SmolLM2-135M
does not follow either (measured: it answers "{sql}" or prose).

`compile_program` optimises the few-shot demos against the dev set's train split with
`LabeledFewShot` or `BootstrapFewShot` (metric: execution match, `text_to_sql_eval`), and the
compiled program is saved as JSON (`text_to_sql_program.json` beside this module) and loaded by
`DSPySQLWriter`. Demos keep only question and SQL: the schema (~3k tokens) is an input of
every call, and repeating it in each demo would overflow an 8k context.

Measured on SmolLM2-135M (benchmarks/text_to_sql.py): compilation does not rescue a model this
small - it rarely writes valid SQL for this schema - so the pipeline uses this path only when a
capable model is configured; the default model never writes SQL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from llmtutor.errors import BackendUnavailableError
from llmtutor.knowledge.catalog.sql_guard import SQLError

PROGRAM_PATH = Path(__file__).with_name("text_to_sql_program.json")
INSTRUCTIONS = (
    "Translate a learner's question about the LLM Course into ONE SQLite SELECT query over the database "
    "described in db_schema. Use only its tables and columns, single-quoted text values and module ids "
    "such as 'engineer.rag'; questions about 'my' quizzes or mastery use quiz_attempts and module_mastery."
)


def _dspy():
    # LiteLLM (under DSPy) fetches a model price list from GitHub at import unless told not to;
    # this machine may be offline and the list is irrelevant for a local server.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import dspy
    except ImportError as exc:
        raise BackendUnavailableError(
            "DSPy is not installed", "pip install dspy (only needed for --dspy)"
        ) from exc
    return dspy


def make_lm(endpoint: str, model: str = "default", api_key: str = "not-needed", max_tokens: int = 256) -> Any:
    """A DSPy LM on an OpenAI-compatible server (e.g. `LlamaCppBackend().endpoint()`)."""
    dspy = _dspy()
    return dspy.LM(
        f"openai/{model}",
        api_base=endpoint,
        api_key=api_key,
        temperature=0.0,
        max_tokens=max_tokens,
        cache=False,
        num_retries=0,
    )


def _adapter() -> Any:
    dspy = _dspy()
    from dspy.adapters.json_adapter import _get_structured_outputs_response_format

    class SchemaJSONAdapter(dspy.JSONAdapter):
        """JSONAdapter that always sends a json_schema response_format (grammar on llama.cpp)."""

        def _prepare_response_format(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any) -> None:
            model = _get_structured_outputs_response_format(signature, self.use_native_function_calling)
            lm_kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": model.model_json_schema(), "strict": True},
            }

    return SchemaJSONAdapter()


def build_program() -> Any:
    dspy = _dspy()

    class CourseSQL(dspy.Signature):
        db_schema: str = dspy.InputField(desc="tables, columns, sample rows and module ids")
        question: str = dspy.InputField(desc="the learner's question (English or Chinese)")
        sql: str = dspy.OutputField(desc="one SQLite SELECT statement")

    return dspy.Predict(CourseSQL.with_instructions(INSTRUCTIONS))


def strip_schema_from_demos(program: Any) -> Any:
    """Keep demos short: question and SQL only (the schema is given with every call)."""
    for predictor in program.predictors():
        predictor.demos = [
            {k: v for k, v in dict(d).items() if k in ("question", "sql")} for d in predictor.demos
        ]
    return program


def compile_program(
    lm: Any,
    trainset: Sequence[tuple[str, str]],
    schema: str,
    metric: Callable[[str, str], bool],
    optimizer: Literal["labeled", "bootstrap"] = "bootstrap",
    max_demos: int = 6,
) -> Any:
    """Few-shot demos chosen from (question, gold SQL) pairs; `metric(gold_sql, predicted_sql)`."""
    dspy = _dspy()
    examples = [
        dspy.Example(db_schema=schema, question=q, sql=sql).with_inputs("db_schema", "question")
        for q, sql in trainset
    ]
    # Labeled demos without the schema: BootstrapFewShot's default teacher would carry the
    # ~3k-token schema in each of them (measured: 17-20k-token prompts, over the 8k context).
    short = [dspy.Example(question=q, sql=sql).with_inputs("question") for q, sql in trainset]
    labeled = dspy.LabeledFewShot(k=max_demos).compile(build_program(), trainset=short)
    if optimizer == "labeled":
        return labeled
    teleprompter = dspy.BootstrapFewShot(
        metric=lambda example, pred, trace=None: metric(example.sql, getattr(pred, "sql", "") or ""),
        max_bootstrapped_demos=max_demos,
        max_labeled_demos=max_demos,
        max_rounds=1,
        # A small model's unparseable answer makes DSPy retry with a longer prompt that can
        # overflow the context; that is one failed trace, not a reason to abort compiling.
        max_errors=len(examples) + 1,
    )
    with dspy.context(lm=lm, adapter=_adapter()):
        compiled = teleprompter.compile(build_program(), teacher=labeled, trainset=examples)
    return strip_schema_from_demos(compiled)


def save_program(program: Any, path: Path = PROGRAM_PATH) -> Path:
    program.save(str(path))
    return path


def load_program(path: Path = PROGRAM_PATH) -> Any:
    program = build_program()
    program.load(str(path))
    return program


class DSPySQLWriter:
    """`SQLWriter` backed by a DSPy program (compiled or not) on an OpenAI-compatible endpoint."""

    name = "dspy"

    def __init__(self, lm: Any, program: Any | None = None):
        self._lm, self._program = lm, program if program is not None else build_program()
        self._adapter = _adapter()

    def write(self, question: str, schema: str, feedback: str | None = None) -> str:
        dspy = _dspy()
        text = question if not feedback else f"{question}\n\n{feedback}"
        try:
            with dspy.context(lm=self._lm, adapter=self._adapter):
                return str(self._program(db_schema=schema, question=text).sql)
        except Exception as exc:  # adapter parse errors, server errors: a failed attempt
            raise SQLError(
                f"the DSPy program returned no usable SQL ({type(exc).__name__})", "ask again"
            ) from exc
