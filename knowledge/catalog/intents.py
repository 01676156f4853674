"""A schema-grounded semantic parser: question (English/Chinese) -> `QueryPlan` (intent + slots).

The default chat model (SmolLM2-135M) cannot write SQL over this schema, so common questions
are parsed by rules instead: cue words say which table the question is about and whether it
counts, lists, ranks or looks something up; slots are filled only with the catalog's own
values (`course_lexicon`). `knowledge.course_queries` turns a plan into SQL and, after it ran,
into a sentence. A plan is also what an LLM fills (constrained JSON with enum-valued slots)
when the rules find no intent. No LLM calls here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.knowledge.catalog import Catalog, load_catalog
from llmtutor.knowledge.catalog.lexicon import Mention, lexicon, normalize

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


@dataclass
class Parse:
    plan: QueryPlan | None
    language: Language
    missing: list[str] = field(default_factory=list)  # required slots not found in the question
    reason: str = ""  # why no plan, for the error message


_E = r"(?<![A-Za-z])"  # ASCII word edges: \b treats Chinese characters as word characters
_Z = r"(?![A-Za-z])"


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"{_E}(?:{a}){_Z}" if a.isascii() else a for a in alternatives), re.I)


CUES: dict[str, re.Pattern[str]] = {
    "quiz": _words(
        r"quiz\w*",
        r"attempts?",
        r"answered",
        r"tests? (?:i|I've)",
        r"questions? (?:did|have) I",
        r"I (?:got|answered|missed|failed)",
        r"my (?:answers|mistakes)",
        "测验",
        "小测",
        "测试",
        "答题",
        "做题",
        "做过的题",
        "题目",
    ),
    "mastery": _words(
        r"master\w*",
        r"proficien\w*",
        r"progress",
        r"weak\w*",
        r"strong\w*",
        r"how good am I",
        r"how well do I know",
        r"how am I doing",
        "掌握",
        "熟练",
        "进度",
        "薄弱",
        "擅长",
    ),
    "notebook": _words(r"notebooks?", r"colabs?", "笔记本", "笔记"),
    "term": _words(r"glossary", r"terms?", r"terminology", r"vocabulary", "术语", "词汇", "名词"),
    "resource": _words(r"resources?", r"links?", r"readings?", r"materials?", "资源", "资料", "链接"),
    "module": _words(r"modules?", r"chapters?", r"sections?", r"units?", r"lessons?", "模块", "章节", "单元"),
    "track": _words(r"tracks?", r"parts?", r"paths?", "路线", "方向", "部分", "板块"),
}
QUESTION_WORDS = _words(
    r"how many",
    r"how much",
    r"number of",
    r"count",
    r"which",
    r"what",
    r"list",
    r"show",
    r"give",
    r"name",
    r"tell",
    r"who",
    "多少",
    "几",
    "哪些",
    "哪个",
    "哪",
    "列出",
    "什么",
    "谁",
)
COUNT = _words(r"how many", r"number of", r"count", r"total", "多少", "数量", "总数", r"(?<!哪)几")
TOP = _words(r"most(?! recent)", r"fewest", r"least", r"biggest", r"largest", r"smallest", "最多", "最少")
LEAST = _words(r"fewest", r"least", r"smallest", "最少")
PER_GROUP = _words(
    r"per",
    r"each",
    r"every",
    r"by (?:module|kind|type|category|track)",
    r"breakdown",
    "每个",
    "每一个",
    "每种",
    "各个",
    "各模块",
    "按模块",
    "按类型",
    "分别",
)
KIND_GROUP = _words(
    r"(?:per|each|by|every) (?:kind|type|format)", r"kinds of", r"types of", "每种", "类型", "按类型", "各类"
)
ACCURACY = _words(
    r"accuracy",
    r"average",
    r"mean score",
    r"success rate",
    r"how well",
    r"percentage",
    r"my score",
    r"scores?",
    "正确率",
    "准确率",
    "平均分",
    "得分",
    "平均成绩",
    "成绩",
    "分数",
)
RIGHT = _words(r"right", r"correct(?:ly)?", r"passed", "答对", "做对", "正确")
WRONG = _words(
    r"wrong", r"incorrect(?:ly)?", r"missed", r"failed", r"mistakes?", "答错", "做错", "错误", "错题"
)
LISTING = _words(
    r"show",
    r"list",
    r"history",
    r"last",
    r"recent",
    r"latest",
    r"when",
    "最近",
    "记录",
    "历史",
    "列出",
    "显示",
    "上一次",
    "上次",
)
UNQUIZZED = _words(
    r"not (?:yet )?(?:been )?quizz?ed",
    r"(?:haven'?t|have not|didn'?t|did not) (?:I )?(?:yet )?"
    r"(?:been )?(?:quizz?ed|studied|tried|practi[cs]ed|taken|touched)",
    r"never",
    r"untested",
    "还没",
    "没有做",
    "没做过",
    "没测",
    "未测",
)
MASTERED = _words(r"mastered", r"master", "掌握了", "已掌握", "掌握得好")
WEAKEST = _words(
    r"weak\w*", r"worst", r"lowest", r"review", r"struggl\w*", "薄弱", "最差", "最低", "复习", "不熟"
)
STRONGEST = _words(r"strong\w*", r"best", r"highest", "最好", "最高", "最擅长")
TODAY, WEEK, MONTH = (
    _words(r"today", "今天", "今日"),
    _words(r"this week", r"past week", r"last 7 days", "本周", "这周", "这个星期", "最近一周", "七天"),
    _words(r"this month", r"past month", r"last 30 days", "本月", "这个月", "最近一个月"),
)
TERM_LOOKUP = _words(
    r"in chinese",
    r"in english",
    r"chinese (?:for|of|word|term|name)",
    r"english (?:for|of|word|term|"
    r"name)",
    r"translat\w*",
    r"defin\w*",
    r"mean(?:s|ing)?",
    r"glossary",
    "英文",
    "中文",
    "英语",
    "怎么说",
    "翻译",
    "定义",
    "什么意思",
    "术语",
    "意思",
)
TOPICS = _words(
    r"topics?", r"cover(?:s|ed)?", r"key ideas?", r"subjects?", "主题", "涵盖", "知识点", "内容", "讲什么"
)
WHO = _words(r"who", r"author", r"wrote", r"written", r"made", r"created", r"by whom", "作者", "谁")
LINK = _words(
    r"links?",
    r"urls?",
    r"colab",
    r"where can i (?:find|open)",
    r"open",
    r"address",
    "链接",
    "地址",
    "网址",
    "打开",
)
MODULES_OF = _words(r"which modules?", r"what modules?", r"module", "哪个模块", "哪些模块", "模块")
WHICH_TRACK = _words(
    r"which (?:track|part|path)",
    r"what (?:track|part|path)",
    r"belongs?",
    r"in which",
    "哪个路线",
    "哪条路线",
    "哪个部分",
    "属于",
    "哪个方向",
)
SUMMARY = _words(
    r"about", r"summary", r"summar\w*", r"describe", r"what is", "讲什么", "关于什么", "简介", "介绍"
)
MENTIONS = re.compile(
    r"(?:mention(?:s|ed|ing)?|refer(?:s|ring)? to|talk(?:s)? about|contain(?:s|ing)?|"
    r"include(?:s|ing)?|about|covering|cover(?:s)?|on|use(?:s)?|using|with|regarding|"
    r"related to)\s+(.+?)\s*[?？.!。]*$|(?:提到|提及|涉及|关于|讲|用到|使用|包含|含有)了?\s*(.+?)\s*"
    r"(?:的|相关|有关)|(?:提到|提及|涉及|用到|包含|含有)了?\s*(.+?)\s*[?？.!。]*$",
    re.I,
)
FIRST_LAST = _words(r"first", r"last", r"final", "第一个", "最后一个", "第一", "最后")
LITERAL_SEARCH = _words(
    r"mention\w*", r"refer\w*", r"contain\w*", r"talk\w* about", "提到", "提及", "包含", "含有"
)
NUMBER = re.compile(
    r"(?:last|top|first|recent|latest|前|最近)\s*(\d{1,3}|[一二两三四五六七八九十])(?!\s*(?:days?|weeks?|months?|天|周|个月|日))",
    re.I,
)
_ZH_DIGITS = {c: i for i, c in enumerate("一二三四五六七八九十", 1)} | {"两": 2}
WRITE_VERBS = _words(
    r"delete",
    r"drop",
    r"remove",
    r"erase",
    r"wipe",
    r"truncate",
    r"insert",
    r"alter",
    r"overwrite",
    r"reset",
    r"clear",
    r"update",
    r"modify",
    r"replace",
    r"rename",
    "删除",
    "删掉",
    "删去",
    "清空",
    "清除",
    "修改",
    "更新",
    "插入",
    "重置",
    "篡改",
    "改成",
    "改为",
    "抹掉",
    "丢弃",
)
WRITE_OBJECTS = _words(
    r"quiz\w*",
    r"attempts?",
    r"rows?",
    r"records?",
    r"tables?",
    r"database",
    r"db",
    r"data",
    r"mastery",
    r"scores?",
    r"history",
    r"everything",
    r"all",
    r"entries",
    r"progress",
    r"modules?",
    r"resources?",
    r"notebooks?",
    r"glossary",
    "测验",
    "记录",
    "数据",
    "表",
    "数据库",
    "成绩",
    "分数",
    "掌握",
    "全部",
    "所有",
    "进度",
    "历史",
)
INJECTION = _words(
    r"ignore (?:all |the |any )?(?:previous|prior|above|earlier) instructions?",
    r"disregard",
    r"you are now",
    r"system prompt",
    "忽略之前",
    "忽略以上",
    "忽略前面",
    "无视",
)


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
    value = int(raw) if raw.isdigit() else _ZH_DIGITS.get(raw, 1)
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
