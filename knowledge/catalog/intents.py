"""A schema-grounded semantic parser: question (English/Chinese) -> `QueryPlan` (intent + slots).

The default chat model (SmolLM2-135M) cannot write SQL over this schema, so common questions
are parsed by rules instead: cue words (`knowledge.catalog.cues`) say which table the question
is about and whether it counts, lists, ranks or looks something up; slots are filled only with
the catalog's own values (`knowledge.catalog.lexicon`). `knowledge.catalog.queries` turns a plan
(`knowledge.catalog.query_plan`) into SQL and, after it ran, into a sentence. A plan is also
what an LLM fills (an enum-valued intent, slots from `grounded_plan`) when the rules find no
intent; `write_request` spots questions that ask to change the database. No LLM calls here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from llmtutor.knowledge.catalog import Catalog, load_catalog
from llmtutor.knowledge.catalog.cues import (
    ACCURACY,
    COUNT,
    CUES,
    FIRST_LAST,
    INJECTION,
    KIND_GROUP,
    LEAST,
    LINK,
    LISTING,
    LITERAL_SEARCH,
    MASTERED,
    MENTIONS,
    MODULES_OF,
    MONTH,
    NUMBER,
    PER_GROUP,
    QUESTION_WORDS,
    RIGHT,
    STRONGEST,
    SUMMARY,
    TERM_LOOKUP,
    TODAY,
    TOP,
    TOPICS,
    UNQUIZZED,
    WEAKEST,
    WEEK,
    WHICH_TRACK,
    WHO,
    WRITE_OBJECTS,
    WRITE_VERBS,
    WRONG,
    ZH_DIGITS,
)
from llmtutor.knowledge.catalog.lexicon import Mention, lexicon, normalize
from llmtutor.knowledge.catalog.query_plan import INTENT_SLOTS, REQUIRED, Language, QueryPlan


@dataclass
class Parse:
    plan: QueryPlan | None
    language: Language
    missing: list[str] = field(default_factory=list)  # required slots not found in the question
    reason: str = ""  # why no plan, for the error message


def language_of(text: str) -> Language:
    return "zh" if re.search(r"[\u3400-\u9fff]", text) else "en"


def write_request(text: str) -> str | None:
    """The write verb when the question asks to change the database (or smuggles that in).

    The verb must act on a database object ("delete all quiz attempts", "把测验记录清空"), so
    "update me on my progress" is a question; after an injection phrase any write verb counts.
    """
    norm = normalize(text)
    injected = INJECTION.search(norm) is not None
    for verb in WRITE_VERBS.finditer(norm):
        after = norm[verb.end() :]
        if verb.group().isascii():
            if re.match(r"\s+(?:me|us)\b", after, re.I) and not injected:
                continue
            window = re.match(r"(?:\s*\S+){0,5}", after)
            hit = window is not None and WRITE_OBJECTS.search(window.group())
        else:
            hit = WRITE_OBJECTS.search(after[:12]) or WRITE_OBJECTS.search(
                norm[max(0, verb.start() - 12) : verb.start()]
            )
        if hit or injected:
            return verb.group()
    return None


def parse_question(text: str, catalog: Catalog | None = None) -> Parse:
    catalog = catalog or load_catalog()
    norm = normalize(text)
    lang = language_of(norm)
    found = _head_nouns_decide(norm, lexicon(catalog).mentions(norm))
    cues = _cue_positions(norm, found)
    target = _target(norm, [c for c in cues if not c[2]])
    plan = (
        _learner_plan(norm, found, cues, target)
        or _lookup_plan(norm, found, target)
        or _entity_plan(norm, found, target)
    )
    if plan is None:
        why = "no table of the course database is named (resources, modules, tracks, notebooks, glossary, quizzes)"
        return Parse(None, lang, reason=why)
    missing = [slot for slot in REQUIRED.get(plan.intent, ()) if getattr(plan, slot) is None]
    return Parse(plan, lang, missing=missing)


_HEAD_NOUN = {"module": CUES["module"], "track": CUES["track"], "notebook": CUES["notebook"]}


def grounded_plan(text: str, intent: str, catalog: Catalog | None = None) -> QueryPlan:
    """A plan for `intent` (picked by a model) whose slots are only catalog values named in `text`."""
    norm = normalize(text)
    found = _head_nouns_decide(norm, lexicon(catalog or load_catalog()).mentions(norm))
    slots = {slot: _slot(found, slot) for slot in INTENT_SLOTS.get(intent, ())}
    if intent in ("count_quizzes", "list_quizzes", "quiz_accuracy"):
        slots["since"] = _time_filter(norm)
    if intent in ("count_quizzes", "list_quizzes"):
        slots["correct"] = True if RIGHT.search(norm) else False if WRONG.search(norm) else None
    return QueryPlan.model_validate({"intent": intent, **{k: v for k, v in slots.items() if v is not None}})


def _head_nouns_decide(text: str, found: list[Mention]) -> list[Mention]:
    """'the Quantization module' is the module, not the glossary term or notebook category."""
    keep = []
    for m in found:
        rivals = [r for r in found if (r.start, r.end) == (m.start, m.end) and r.slot != m.slot]
        head = next((slot for slot, cue in _HEAD_NOUN.items() if cue.match(text[m.end :].lstrip())), None)
        if rivals and head and any(r.slot == head for r in rivals) and m.slot != head:
            continue
        keep.append(m)
    return keep


def _cue_positions(text: str, found: list[Mention]) -> list[tuple[int, str, bool]]:
    """(position, entity, modifier): a cue right after a name of its own kind ("the RAG module",
    "LLM 科学家路线") only labels that name; the question is about something else."""
    cues = []
    for entity, pattern in CUES.items():
        for m in pattern.finditer(text):
            if any(x.start <= m.start() < x.end for x in found):
                continue  # "module 2.7" is a name, not a cue
            modifier = any(x.slot == entity and 0 <= m.start() - x.end <= 2 for x in found)
            cues.append((m.start(), entity, modifier))
    cues += [(m.start, "resource", False) for m in found if m.slot == "kind"]  # "videos" are resources
    return sorted(cues)


def _target(text: str, cues: list[tuple[int, str, bool]]) -> str | None:
    question = QUESTION_WORDS.search(text)
    after = [entity for pos, entity, _ in cues if question and pos >= question.start()]
    return after[0] if after else (cues[0][1] if cues else None)


def _pick(found: list[Mention], *slots: str) -> Mention | None:
    """The first mention of the first slot (in preference order) that has one."""
    for slot in slots:
        for m in found:
            if m.slot == slot:
                return m
    return None


def _slot(found: list[Mention], slot: str) -> str | None:
    m = _pick(found, slot)
    return m.value if m else None


def _module_or_category(text: str, found: list[Mention]) -> tuple[str | None, str | None]:
    """For notebooks: 'quantization notebooks' is a category, 'the quantization module' a module."""
    module = _pick(found, "module")
    category = _pick(found, "category")
    if module and re.match(r"\s*(?:module|模块)", text[module.end :], re.I):
        return module.value, None
    if category:
        return None, category.value
    return (module.value if module else None), None


def _time_filter(text: str) -> Literal["today", "week", "month"] | None:
    return (
        "today"
        if TODAY.search(text)
        else "week"
        if WEEK.search(text)
        else "month"
        if MONTH.search(text)
        else None
    )


def _number(text: str) -> int | None:
    m = NUMBER.search(text)
    if not m:
        return None
    raw = m.group(1)
    value = int(raw) if raw.isdigit() else ZH_DIGITS.get(raw, 1)
    return max(1, min(value, 200))


def _learner_plan(
    text: str, found: list[Mention], cues: list[tuple[int, str, bool]], target: str | None
) -> QueryPlan | None:
    kinds = {entity for _, entity, _ in cues}
    learner = bool(kinds & {"quiz", "mastery"}) or bool(
        re.search(
            r"正确率|准确率|平均分|平均成绩|得分率|我的?(?:成绩|分数|得分)|答对|答错|做对|做错|错题", text
        )
    )
    if not learner:
        return None
    module = _slot(found, "module")
    correct = (
        True if RIGHT.search(text) and not ACCURACY.search(text) else False if WRONG.search(text) else None
    )
    since, number = _time_filter(text), _number(text)
    if UNQUIZZED.search(text) and CUES["module"].search(text):
        return QueryPlan(intent="unquizzed_modules", track=_slot(found, "track"))
    if "mastery" in kinds and not ("quiz" in kinds and COUNT.search(text)):
        order = "least" if WEAKEST.search(text) else "most" if STRONGEST.search(text) else None
        focus = "mastered" if MASTERED.search(text) and not order and module is None else None
        single = order and not re.search(r"modules|topics|模块们|哪些", text, re.I)
        return QueryPlan(
            intent="mastery", module=module, order=order, focus=focus, limit=number or (1 if single else None)
        )
    if TOP.search(text) or PER_GROUP.search(text) or (target == "module" and module is None):
        order = "least" if LEAST.search(text) else "most"
        return QueryPlan(intent="quizzes_per_module", order=order, limit=1 if TOP.search(text) else None)
    if ACCURACY.search(text):
        return QueryPlan(intent="quiz_accuracy", module=module, since=since)
    if COUNT.search(text) and not (number and LISTING.search(text)):
        return QueryPlan(intent="count_quizzes", module=module, correct=correct, since=since)
    limit = number or (
        1 if re.search(r"\b(?:last|latest|most recent) quiz\b|上一次|上次|最后一次", text, re.I) else None
    )
    return QueryPlan(intent="list_quizzes", module=module, correct=correct, since=since, limit=limit)


def _lookup_plan(text: str, found: list[Mention], target: str | None) -> QueryPlan | None:
    """Questions about one named item: a term, a resource, a notebook, a module."""
    term = _pick(found, "term")
    if term and TERM_LOOKUP.search(text) and target in (None, "term"):
        focus = (
            "zh"
            if re.search(r"chinese|中文", text, re.I)
            else "en"
            if re.search(r"english|英文|英语", text, re.I)
            else "definition"
        )
        return QueryPlan(intent="term_details", term=term.value, focus=focus)
    resource = _pick(found, "resource")
    if resource and (WHO.search(text) or LINK.search(text)) and target in (None, "resource"):
        return QueryPlan(
            intent="resource_details", resource=resource.value, focus="author" if WHO.search(text) else "url"
        )
    notebook = _pick(found, "notebook")
    if notebook and target in (None, "notebook", "module", "track", "resource") and not COUNT.search(text):
        focus = "modules" if MODULES_OF.search(text) else "url" if LINK.search(text) else None
        return QueryPlan(intent="notebook_details", notebook=notebook.value, focus=focus)
    module = _pick(found, "module")
    if module and target in (None, "module", "track"):
        if TOPICS.search(text):
            return QueryPlan(
                intent="count_topics" if COUNT.search(text) else "module_topics", module=module.value
            )
        if target == "track" or WHICH_TRACK.search(text):
            return QueryPlan(intent="module_details", module=module.value, focus="track")
        if target is None or (SUMMARY.search(text) and not COUNT.search(text)):
            return QueryPlan(intent="module_details", module=module.value, focus="summary")
    if term and target is None:  # a bare term ("量化的英文") is a glossary question
        return QueryPlan(intent="term_details", term=term.value, focus="definition")
    return None


def _keyword(text: str, entity: str) -> str | None:
    """The searched phrase: "notebooks that mention X" (after the noun in English; Chinese puts
    the clause first: "提到 X 的笔记本")."""
    cue = CUES[entity].search(text)
    start = cue.end() if cue and language_of(text) == "en" else 0
    m = MENTIONS.search(text, start)
    phrase = (m.group(1) or m.group(2) or m.group(3)) if m else None
    if not phrase:
        return None
    phrase = re.sub(r"^(?:the|a|an)\s+", "", phrase.strip(" '\"“”‘’「」?？"), flags=re.I)
    return phrase or None


def _entity_plan(text: str, found: list[Mention], target: str | None) -> QueryPlan | None:
    count = bool(COUNT.search(text))
    top = bool(TOP.search(text))
    track = _slot(found, "track")
    if target == "notebook":
        keyword = _keyword(text, "notebook")
        module, category = _module_or_category(text, found)
        if keyword and (LITERAL_SEARCH.search(text) or not (module or category)):
            module = category = None
        else:
            keyword = None
        return QueryPlan(
            intent="count_notebooks" if count else "list_notebooks",
            module=module,
            category=category,
            keyword=keyword,
        )
    if target == "term":
        return QueryPlan(intent="count_terms" if count else "list_terms", module=_slot(found, "module"))
    if target == "resource" or (target == "module" and top and CUES["resource"].search(text)):
        kind, author, module = _slot(found, "kind"), _slot(found, "author"), _slot(found, "module")
        if KIND_GROUP.search(text) and not kind:
            return QueryPlan(intent="resources_per_kind", track=track, module=module)
        if top or (PER_GROUP.search(text) and not module):
            return QueryPlan(
                intent="resources_per_module",
                track=track,
                kind=kind,
                order="least" if LEAST.search(text) else "most",
                limit=1 if top else None,
            )
        keyword = _keyword(text, "resource") if LITERAL_SEARCH.search(text) else None
        return QueryPlan(
            intent="count_resources" if count else "list_resources",
            module=module,
            track=None if module else track,
            kind=kind,
            author=author,
            keyword=keyword,
        )
    if target == "module":
        if count:
            return QueryPlan(intent="count_modules", track=track)
        # "Which module covers vector databases?" searches names, summaries and topics;
        # "the first/last module" is one row of the course order.
        keyword = _keyword(text, "module") if TOPICS.search(text) or LITERAL_SEARCH.search(text) else None
        edge = FIRST_LAST.search(text)
        order = "least" if edge and re.search(r"last|final|最后", edge.group(), re.I) else None
        return QueryPlan(
            intent="list_modules",
            track=track,
            keyword=keyword,
            order=order,
            limit=_number(text) or (1 if edge else None),
        )
    if target == "track":
        return QueryPlan(intent="count_tracks" if count else "list_tracks")
    if _pick(found, "kind") or _pick(found, "author"):  # "Which videos ...", "What did Karpathy make?"
        return QueryPlan(
            intent="count_resources" if count else "list_resources",
            module=_slot(found, "module"),
            kind=_slot(found, "kind"),
            author=_slot(found, "author"),
        )
    return None
