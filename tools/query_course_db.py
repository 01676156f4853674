"""The `query_course_db` tool: questions about the course's structure and the learner's quiz
history, answered by text-to-SQL over `<workspace>/course.sqlite` (built on first use from the
bundled catalog). Read-only by construction; see `llmtutor.knowledge.catalog.text_to_sql`.

The LLM is optional: the rule parser answers the common questions without one. A tool made
with `make_tool(llm=...)` (a factory returning a LangChain chat model, as for the quiz tool;
meant for capable backends) lets that model write SQL for questions the parser cannot map,
with validation and up to two repairs. `make_tool(picker_llm=...)` instead lets a small model
such as the embedded SmolLM2-135M pick an intent for those questions (slots from the catalog only).

The default tool uses neither. Measured on the dev set's test split (benchmarks/text_to_sql.py):
SmolLM2-135M writing SQL 0% (with repairs 0%, with DSPy compilation 0%), picking the intent
12.8%; on a question the parser cannot map, a clear "I could not map this" with examples beats
an answer that is wrong seven times in eight.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.knowledge.catalog.text_to_sql import TextToSQL
from llmtutor.knowledge.catalog.text_to_sql_llm import ChatSQLWriter, IntentPicker, LLMFactory
from llmtutor.tools.registry import ToolContext, ToolSpec

DB_FILE = "course.sqlite"  # Settings.catalog_db is workspace / this

EXAMPLES: tuple[str, ...] = (
    "How many resources does the Quantization module list?",
    "Which notebooks are about fine-tuning?",
    "List the modules in the LLM Engineer track",
    "How many modules does the course have?",
    "Which videos are in the Neural Networks module?",
    "Who wrote The Illustrated Transformer?",
    "What's the Colab link for the AutoQuant notebook?",
    "Which glossary terms belong to the Evaluation module?",
    "What is the Chinese word for quantization?",
    "Which module has the most resources?",
    "How many quiz questions did I get right?",
    "What's my average quiz score?",
    "Show my last 5 quiz attempts",
    "Which modules haven't I been quizzed on yet?",
    "What's my mastery of the RAG module?",
    "Which resources by Maxime Labonne does the course list?",
    "What topics does the Advanced RAG module cover?",
    "Which track is the Evaluation module in?",
    "How many notebooks are in the tools category?",
    "量化模块列出了多少个资源？",
    "有哪些关于微调的笔记本？",
    "列出 LLM 工程师路线的模块",
    "课程一共有几个模块？",
    "神经网络模块有哪些视频？",
    "AutoQuant 笔记本的 Colab 链接是什么？",
    "评估模块有哪些术语？",
    "“推测性解码”的英文是什么？",
    "哪个模块的资源最多？",
    "我答对了多少道题？",
    "我的平均分是多少？",
    "最近 5 次测验的记录",
    "我还有哪些模块没有做过测验？",
    "我对 RAG 模块的掌握度是多少？",
    "高级RAG 模块涵盖哪些主题？",
    "今天我做了几次测验？",
)


class CourseQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(
        min_length=1,
        max_length=2000,
        description="A question about the course catalog (tracks, modules, resources, notebooks, glossary) or "
        "the learner's quiz history, in English or Chinese; or one SQL SELECT statement.",
    )
    max_rows: int = Field(50, ge=1, le=200, description="Most rows to return.")


class CourseQueryResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    final_answer: ClassVar[bool] = True  # answer, SQL and rows are the reply: no model retelling
    question: str
    sql: str
    columns: list[str]
    rows: list[list[Any]]
    answer: str
    method: Literal["raw_sql", "parser", "llm_plan", "llm_sql"]
    language: Literal["en", "zh"]
    truncated: bool = False

    def to_markdown(self, max_rows: int = 10, width: int = 60) -> str:
        lines = [self.answer, "", "```sql", self.sql, "```"]
        if self.columns and self.rows:
            lines += ["", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
            for row in self.rows[:max_rows]:
                lines.append("| " + " | ".join(_cell(v, width) for v in row) + " |")
            hidden = len(self.rows) - max_rows
            if hidden > 0 or self.truncated:
                more = f"{hidden} more rows" if hidden > 0 else "more rows"
                lines.append(
                    f"\n…{more}"
                    if self.language == "en"
                    else f"\n……还有{'更多' if hidden <= 0 else hidden}行"
                )
        return "\n".join(lines)


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


_PIPELINES: dict[tuple[Path, Any, Any], TextToSQL] = {}
_LOCK = threading.Lock()


def pipeline_for(
    db_path: Path, llm: LLMFactory | None = None, picker_llm: LLMFactory | None = None
) -> TextToSQL:
    """One pipeline per database file (and models), reused across calls: the schema is read once."""
    # Keyed by the factories themselves (bound methods compare by instance), not by id(): ids of
    # short-lived objects are reused.
    key = (Path(db_path).resolve(), llm, picker_llm)
    with _LOCK:
        pipe = _PIPELINES.get(key)
        if pipe is None:
            from llmtutor.knowledge.catalog import load_catalog

            catalog = load_catalog()
            pipe = TextToSQL(
                db_path,
                catalog=catalog,
                writer=ChatSQLWriter(llm) if llm else None,
                picker=IntentPicker(picker_llm, catalog) if picker_llm else None,
            )
            _PIPELINES[key] = pipe
        else:
            pipe.refresh()  # recreates the file if it was deleted
    return pipe


def run_query(
    cfg: CourseQuery, ctx: ToolContext, llm: LLMFactory | None = None, picker_llm: LLMFactory | None = None
) -> CourseQueryResult:
    ctx.check_cancelled()
    llm = llm or ctx.llm_factory  # set by the tutor only for capable backends
    pipe = pipeline_for(ctx.workspace / DB_FILE, llm, picker_llm)
    answer = pipe.ask(cfg.question)
    rows = answer.rows[: cfg.max_rows]
    return CourseQueryResult(
        question=answer.question,
        sql=answer.sql,
        columns=answer.columns,
        rows=rows,
        answer=answer.answer,
        method=answer.method,
        language=answer.language,
        truncated=answer.truncated or len(answer.rows) > len(rows),
    )


def make_tool(llm: LLMFactory | None = None, picker_llm: LLMFactory | None = None) -> ToolSpec:
    """The tool. `llm` (a chat-model factory, capable backends only) writes SQL for questions the
    rule parser cannot map; `picker_llm` (any chat-model factory) only picks their intent."""
    return ToolSpec(
        name="query_course_db",
        description=(
            "Answer questions about the course's structure and the learner's progress from the course database "
            "(SQLite, read-only): counts and lists of tracks, modules, resources (by module, track, kind, author), "
            "notebooks (by category, module, keyword), glossary terms and translations, and the learner's quiz "
            "history, accuracy and module mastery. Shows the SQL it ran."
        ),
        input_model=CourseQuery,
        output_model=CourseQueryResult,
        func=lambda cfg, ctx: run_query(cfg, ctx, llm=llm, picker_llm=picker_llm),
        examples=EXAMPLES,
        # Reads only. The database file is created on first use from the bundled catalog (a cache,
        # like a search index); learner rows are written by the quiz tool, never here.
        expensive=False,
        writes=False,
        extract_args=lambda text: {"question": text},
    )


TOOL = make_tool()
