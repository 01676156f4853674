"""What the course-DB parser produces: a `QueryPlan` (intent + slots), and which slots each intent needs.

A plan names one of a fixed set of intents and fills slots only with canonical catalog values
(module and track ids, resource kinds, notebook names, glossary terms) or a quoted keyword, so
`knowledge.catalog.queries` can turn any plan into template SQL. The rule parser
(`knowledge.catalog.intents`) fills plans from questions; an LLM may pick only the intent
(`knowledge.catalog.text_to_sql_llm`), the slots then come from the question's catalog mentions.
Kept apart from the parser so the SQL templates and the LLM stages depend on the plan's shape,
not on the parser's cue vocabulary.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Intent = Literal[
    "count_resources",
    "list_resources",
    "resource_details",
    "resources_per_module",
    "resources_per_kind",
    "count_modules",
    "list_modules",
    "module_details",
    "module_topics",
    "count_topics",
    "count_tracks",
    "list_tracks",
    "count_notebooks",
    "list_notebooks",
    "notebook_details",
    "count_terms",
    "list_terms",
    "term_details",
    "count_quizzes",
    "quiz_accuracy",
    "list_quizzes",
    "quizzes_per_module",
    "mastery",
    "unquizzed_modules",
]
Focus = Literal["track", "summary", "zh", "en", "definition", "author", "url", "modules", "mastered"]
Language = Literal["en", "zh"]


class QueryPlan(BaseModel):
    """What to look up. Slot values are canonical catalog values (module/track ids, kinds, ...)."""

    model_config = ConfigDict(extra="forbid")
    intent: Intent
    module: str | None = None  # module id, e.g. engineer.rag
    track: str | None = None  # fundamentals | scientist | engineer
    kind: str | None = None  # resource kind
    category: str | None = None  # notebook category
    author: str | None = None
    notebook: str | None = None  # notebook name
    term: str | None = None  # glossary term (English primary spelling)
    resource: str | None = None  # resource title
    keyword: str | None = None  # free text searched with LIKE
    correct: bool | None = None  # quiz answers right (True) / wrong (False)
    since: Literal["today", "week", "month"] | None = None
    order: Literal["most", "least"] | None = None
    limit: int | None = Field(None, ge=1, le=200)
    focus: Focus | None = None


# Slots a plan must have before it can run.
REQUIRED: dict[str, tuple[str, ...]] = {
    "resource_details": ("resource",),
    "module_details": ("module",),
    "module_topics": ("module",),
    "count_topics": ("module",),
    "notebook_details": ("notebook",),
    "term_details": ("term",),
}
# Catalog slots each intent reads (filled from mentions when an LLM picked the intent).
INTENT_SLOTS: dict[str, tuple[str, ...]] = {
    "count_resources": ("module", "track", "kind", "author"),
    "list_resources": ("module", "track", "kind", "author"),
    "resource_details": ("resource",),
    "resources_per_module": ("track", "kind"),
    "resources_per_kind": ("module", "track"),
    "count_modules": ("track",),
    "list_modules": ("track",),
    "module_details": ("module",),
    "module_topics": ("module",),
    "count_topics": ("module",),
    "count_tracks": (),
    "list_tracks": (),
    "count_notebooks": ("module", "category"),
    "list_notebooks": ("module", "category"),
    "notebook_details": ("notebook",),
    "count_terms": ("module",),
    "list_terms": ("module",),
    "term_details": ("term",),
    "count_quizzes": ("module",),
    "quiz_accuracy": ("module",),
    "list_quizzes": ("module",),
    "quizzes_per_module": (),
    "mastery": ("module",),
    "unquizzed_modules": ("track",),
}
