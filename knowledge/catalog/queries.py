"""`QueryPlan` -> SQL, and rows -> a short answer in the question's language.

The SQL is what a person would write over the schema in `knowledge.course_db` and is shown
to the learner; values come from the catalog (ids, kinds, names) or are a quoted keyword,
and every query still goes through `sql_guard` and the read-only connection. Answers are
built only from the returned rows, so they can never state something the query did not
return. No LLM calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llmtutor.knowledge.catalog import Catalog, load_catalog
from llmtutor.knowledge.catalog.query_plan import Language, QueryPlan

MASTERED_AT = 0.8  # mastery at or above which a module counts as mastered
_SINCE = {"today": "'start of day'", "week": "'-7 days'", "month": "'-30 days'"}


def quote(value: str) -> str:
    """A SQL string literal (the only way a value from the question enters the SQL)."""
    return "'" + value.replace("'", "''") + "'"


def _like(column: str, keyword: str) -> str:
    return f"{column} LIKE {quote('%' + keyword.replace('%', '').strip() + '%')}"


def _module_keyword(keyword: str | None) -> str | None:
    """Modules whose name, aliases, summary or key topics mention the keyword (both languages)."""
    if not keyword:
        return None
    own = " OR ".join(_like(c, keyword) for c in ("title", "title_zh", "aliases", "summary", "summary_zh"))
    topics = f"id IN (SELECT module_id FROM module_topics WHERE {_like('topic', keyword)} OR {_like('topic_zh', keyword)})"
    return f"({own} OR {topics})"


def _where(conditions: Sequence[str | None]) -> str:
    kept = [c for c in conditions if c]
    return (" WHERE " + " AND ".join(kept)) if kept else ""


def _eq(column: str, value: str | None) -> str | None:
    return f"{column} = {quote(value)}" if value is not None else None


def _quiz_filters(plan: QueryPlan, alias: str = "") -> list[str | None]:
    p = f"{alias}." if alias else ""
    since = (
        f"{p}taken_at >= strftime('%Y-%m-%dT%H:%M:%S', 'now', {_SINCE[plan.since]})" if plan.since else None
    )
    correct = f"{p}correct = {int(plan.correct)}" if plan.correct is not None else None
    return [_eq(f"{p}module_id", plan.module), correct, since]


def _limit(plan: QueryPlan) -> str:
    return f" LIMIT {plan.limit}" if plan.limit else ""


def plan_sql(plan: QueryPlan) -> str:
    """The SELECT for a plan (validated by the caller like any other SQL)."""
    return _BUILDERS[plan.intent](plan)


def _resources(plan: QueryPlan, select: str, order: str) -> str:
    join = " JOIN modules m ON m.id = r.module_id" if plan.track else ""
    keyword = (
        f"({_like('r.title', plan.keyword)} OR {_like('r.author', plan.keyword)})" if plan.keyword else None
    )
    where = _where(
        [
            _eq("r.module_id", plan.module),
            _eq("m.track_id", plan.track),
            _eq("r.kind", plan.kind),
            _eq("r.author", plan.author),
            keyword,
        ]
    )
    return f"SELECT {select} FROM resources r{join}{where}{order}"


def _per_module(plan: QueryPlan, child: str, alias: str, fk: str, extra: Sequence[str | None] = ()) -> str:
    direction = "ASC" if plan.order == "least" else "DESC"
    on = " AND ".join([f"{alias}.{fk} = m.id", *[c for c in extra if c]])
    return (
        f"SELECT m.title, m.title_zh, COUNT({alias}.id) AS n FROM modules m LEFT JOIN {child} {alias} ON {on}"
        f"{_where([_eq('m.track_id', plan.track)])} GROUP BY m.id ORDER BY n {direction}, m.ordinal{_limit(plan)}"
    )


def _notebooks(plan: QueryPlan, select: str, order: str) -> str:
    join = " JOIN notebook_modules nm ON nm.notebook_id = n.id" if plan.module else ""
    keyword = None
    if plan.keyword:
        keyword = (
            "("
            + " OR ".join(
                _like(f"n.{c}", plan.keyword) for c in ("name", "aliases", "description", "description_zh")
            )
            + ")"
        )
    where = _where([_eq("nm.module_id", plan.module), _eq("n.category", plan.category), keyword])
    return f"SELECT {select} FROM notebooks n{join}{where}{order}"


def _terms(plan: QueryPlan, select: str, order: str) -> str:
    join = " JOIN glossary_modules gm ON gm.term_id = g.id" if plan.module else ""
    return f"SELECT {select} FROM glossary g{join}{_where([_eq('gm.module_id', plan.module)])}{order}"


def _mastery(plan: QueryPlan) -> str:
    if plan.focus == "mastered":
        condition = f"mm.mastery >= {MASTERED_AT}"
    else:
        condition = _eq("mm.module_id", plan.module)
    order = {
        "least": " ORDER BY mm.mastery ASC, m.ordinal",
        "most": " ORDER BY mm.mastery DESC, m.ordinal",
    }.get(plan.order or "", " ORDER BY m.ordinal")
    return (
        "SELECT m.title, m.title_zh, mm.mastery, mm.attempts, mm.correct FROM module_mastery mm "
        f"JOIN modules m ON m.id = mm.module_id{_where([condition])}{order}{_limit(plan)}"
    )


_BUILDERS: dict[str, Callable[[QueryPlan], str]] = {
    "count_resources": lambda p: _resources(p, "COUNT(*) AS resources", ""),
    "list_resources": lambda p: _resources(p, "r.title, r.author, r.kind, r.url", " ORDER BY r.id"),
    "resource_details": lambda p: (
        f"SELECT r.title, r.author, r.kind, r.url, m.title AS module FROM resources r "
        f"JOIN modules m ON m.id = r.module_id WHERE r.title = {quote(p.resource or '')}"
    ),
    "resources_per_module": lambda p: _per_module(p, "resources", "r", "module_id", [_eq("r.kind", p.kind)]),
    "resources_per_kind": lambda p: _resources(
        p, "r.kind, COUNT(*) AS n", " GROUP BY r.kind ORDER BY n DESC, r.kind"
    ),
    "count_modules": lambda p: f"SELECT COUNT(*) AS modules FROM modules{_where([_eq('track_id', p.track)])}",
    "list_modules": lambda p: (
        f"SELECT code, title, title_zh FROM modules{_where([_eq('track_id', p.track), _module_keyword(p.keyword)])} "
        f"ORDER BY ordinal{' DESC' if p.order == 'least' else ''}{f' LIMIT {p.limit}' if p.limit else ''}"
    ),
    "module_details": lambda p: (
        "SELECT m.code, m.title, m.title_zh, t.title AS track, t.title_zh AS track_zh, "
        f"m.summary, m.summary_zh FROM modules m JOIN tracks t ON t.id = m.track_id WHERE m.id = {quote(p.module or '')}"
    ),
    "module_topics": lambda p: (
        "SELECT topic, topic_zh FROM module_topics "
        f"WHERE module_id = {quote(p.module or '')} ORDER BY position"
    ),
    "count_topics": lambda p: (
        f"SELECT COUNT(*) AS topics FROM module_topics WHERE module_id = {quote(p.module or '')}"
    ),
    "count_tracks": lambda p: "SELECT COUNT(*) AS tracks FROM tracks",
    "list_tracks": lambda p: (
        "SELECT t.title, t.title_zh, COUNT(m.id) AS modules FROM tracks t "
        "LEFT JOIN modules m ON m.track_id = t.id GROUP BY t.id ORDER BY t.position"
    ),
    "count_notebooks": lambda p: _notebooks(p, "COUNT(*) AS notebooks", ""),
    "list_notebooks": lambda p: _notebooks(p, "n.name, n.category, n.colab_url", " ORDER BY n.id"),
    "notebook_details": lambda p: (
        "SELECT m.title, m.title_zh FROM notebooks n JOIN notebook_modules nm ON nm.notebook_id = n.id "
        f"JOIN modules m ON m.id = nm.module_id WHERE n.name = {quote(p.notebook or '')} ORDER BY m.ordinal"
        if p.focus == "modules"
        else "SELECT name, category, description, description_zh, colab_url, article_url, "
        f"repo_url FROM notebooks WHERE name = {quote(p.notebook or '')}"
    ),
    "count_terms": lambda p: _terms(p, "COUNT(*) AS terms", ""),
    "list_terms": lambda p: _terms(p, "g.en, g.zh", " ORDER BY g.id"),
    "term_details": lambda p: f"SELECT en, zh, definition FROM glossary WHERE en = {quote(p.term or '')}",
    "count_quizzes": lambda p: f"SELECT COUNT(*) AS quizzes FROM quiz_attempts{_where(_quiz_filters(p))}",
    "quiz_accuracy": lambda p: (
        "SELECT COUNT(*) AS attempts, SUM(correct) AS correct, AVG(correct) AS accuracy, "
        f"AVG(score) AS average_score FROM quiz_attempts{_where(_quiz_filters(p))}"
    ),
    "list_quizzes": lambda p: (
        "SELECT q.taken_at, m.title AS module, q.question, q.answer, q.correct, q.score "
        f"FROM quiz_attempts q LEFT JOIN modules m ON m.id = q.module_id{_where(_quiz_filters(p, 'q'))} "
        f"ORDER BY q.taken_at DESC, q.id DESC{_limit(p)}"
    ),
    "quizzes_per_module": lambda p: (
        "SELECT m.title, m.title_zh, COUNT(*) AS n FROM quiz_attempts q JOIN modules m "
        f"ON m.id = q.module_id GROUP BY m.id ORDER BY n {'ASC' if p.order == 'least' else 'DESC'}, m.ordinal{_limit(p)}"
    ),
    "mastery": _mastery,
    "unquizzed_modules": lambda p: (
        "SELECT m.code, m.title, m.title_zh FROM modules m "
        f"WHERE m.id NOT IN (SELECT module_id FROM quiz_attempts WHERE module_id IS NOT NULL)"
        f"{' AND ' + _eq('m.track_id', p.track) if p.track else ''} ORDER BY m.ordinal"
    ),
}


# ----- answers ---------------------------------------------------------------------
def _items(values: Sequence[Any], lang: Language, most: int = 8) -> str:
    shown = [str(v) for v in values[:most] if v is not None]
    sep = "、" if lang == "zh" else ", "
    more = len(values) - len(shown)
    tail = (f" 等 {len(values)} 项" if lang == "zh" else f" and {more} more") if more > 0 else ""
    return sep.join(shown) + tail


def _col(columns: list[str], rows: list[list[Any]], *names: str) -> list[Any]:
    for name in names:
        if name in columns:
            i = columns.index(name)
            return [r[i] for r in rows]
    return [r[0] for r in rows]


def _scope(plan: QueryPlan, catalog: Catalog, lang: Language) -> str:
    """' in the RAG module' / '（检索增强生成(RAG) 模块）' for the plan's filters."""
    parts = []
    if plan.module:
        mod = catalog.module(plan.module)
        parts.append(f"模块「{mod.title_zh}」" if lang == "zh" else f"the {mod.title} module")
    if plan.track:
        track = next(t for t in catalog.tracks if t.id == plan.track)
        name = track.title if track.title.startswith("The ") else f"the {track.title}"
        parts.append(f"「{track.title_zh}」路线" if lang == "zh" else f"{name} track")
    for label_en, label_zh, value in (
        ("kind", "类型", plan.kind),
        ("author", "作者", plan.author),
        ("category", "类别", plan.category),
        ("keyword", "关键词", plan.keyword),
    ):
        if value:
            parts.append(f"{label_zh} {value}" if lang == "zh" else f"{label_en} {value!r}")
    if plan.correct is not None:
        parts.append(
            ("答对" if plan.correct else "答错")
            if lang == "zh"
            else ("answered correctly" if plan.correct else "answered wrongly")
        )
    if plan.since:
        parts.append(
            {"today": "今天", "week": "最近 7 天", "month": "最近 30 天"}[plan.since]
            if lang == "zh"
            else {"today": "today", "week": "in the last 7 days", "month": "in the last 30 days"}[plan.since]
        )
    if not parts:
        return ""
    return "（" + "，".join(parts) + "）" if lang == "zh" else " (" + "; ".join(parts) + ")"


def _quiz_count(n: int, plan: QueryPlan, scope: str, zh: bool) -> str:
    if plan.correct is not None:  # the scope already says "answered correctly/wrongly"
        return f"共有 {n} 道题{scope}。" if zh else f"{n} quiz answers{scope}."
    if n == 0:
        return f"你还没有做过测验{scope}。" if zh else f"You have not taken any quizzes yet{scope}."
    return f"你一共完成了 {n} 次测验{scope}。" if zh else f"You have taken {n} quiz attempts{scope}."


_NOUNS = {
    "count_resources": ("resources", "个资源"),
    "count_modules": ("modules", "个模块"),
    "count_tracks": ("tracks", "条路线"),
    "count_notebooks": ("notebooks", "个笔记本"),
    "count_terms": ("glossary terms", "个术语"),
    "count_quizzes": ("quiz attempts", "次测验"),
    "count_topics": ("topics", "个主题"),
}


def plan_answer(
    plan: QueryPlan, columns: list[str], rows: list[list[Any]], lang: Language, catalog: Catalog | None = None
) -> str:
    """A one- or two-sentence answer stating what the rows say."""
    catalog = catalog or load_catalog()
    zh = lang == "zh"
    scope = _scope(plan, catalog, lang)
    if plan.intent in _NOUNS:
        n = rows[0][0] if rows else 0
        en_noun, zh_noun = _NOUNS[plan.intent]
        if plan.intent == "count_quizzes":
            return _quiz_count(n, plan, scope, zh)
        return f"共有 {n} {zh_noun}{scope}。" if zh else f"There are {n} {en_noun}{scope}."
    if not rows:
        return "没有找到符合条件的记录" + scope + "。" if zh else f"Nothing matches{scope}."
    title = "title_zh" if zh else "title"
    if plan.intent == "term_details":
        en, zh_term, definition = rows[0][:3]
        if plan.focus == "zh":
            return f"“{en}”的中文是“{zh_term}”。" if zh else f"“{en}” in Chinese is “{zh_term}”."
        if plan.focus == "en":
            return f"“{zh_term}”的英文是“{en}”。" if zh else f"The English for “{zh_term}” is “{en}”."
        return f"{en}（{zh_term}）：{definition}" if zh else f"{en} ({zh_term}): {definition}"
    if plan.intent == "module_details":
        code, t_en, t_zh, track, track_zh, summary, summary_zh = rows[0][:7]
        if plan.focus == "track":
            return (
                f"模块 {code}「{t_zh}」属于「{track_zh}」路线。"
                if zh
                else f"Module {code}, {t_en}, is in {track}."
            )
        return f"模块 {code}「{t_zh}」：{summary_zh}" if zh else f"Module {code}, {t_en}: {summary}"
    if plan.intent == "resource_details":
        t, author, kind, url, module = rows[0][:5]
        if plan.focus == "author":
            who = author or ("未注明作者" if zh else "no author listed")
            return f"「{t}」的作者是 {who}（{module}）。" if zh else f"“{t}” is by {who} ({kind}, {module})."
        return f"「{t}」的链接：{url}" if zh else f"“{t}”: {url}"
    if plan.intent == "notebook_details":
        if plan.focus == "modules":
            names = _items(_col(columns, rows, title), lang)
            return (
                f"笔记本「{plan.notebook}」对应的模块：{names}。"
                if zh
                else f"{plan.notebook} belongs to: {names}."
            )
        name, category, desc, desc_zh, colab, article, repo = rows[0][:7]
        links = " · ".join(x for x in (colab, article, repo) if x)
        return (
            f"「{name}」（{category}）：{desc_zh} {links}" if zh else f"{name} ({category}): {desc} {links}"
        )
    if plan.intent == "quiz_accuracy":
        attempts, correct, accuracy, _avg = rows[0][:4]
        if not attempts:
            return f"还没有测验记录{scope}。" if zh else f"No quiz attempts yet{scope}."
        pct = f"{100 * (accuracy or 0):.0f}%"
        return (
            f"你答了 {attempts} 题，答对 {correct} 题，正确率 {pct}{scope}。"
            if zh
            else f"You answered {attempts} quiz questions and got {correct} right ({pct}){scope}."
        )
    if plan.intent == "mastery":
        parts = [f"{r[1] if zh else r[0]} {100 * r[2]:.0f}%" for r in rows]
        return f"掌握度：{_items(parts, lang)}。" if zh else f"Mastery: {_items(parts, lang)}."
    if plan.intent in ("resources_per_module", "quizzes_per_module", "resources_per_kind"):
        labels = _col(columns, rows, "kind", title)
        parts = [
            f"{label}（{r[-1]}）" if zh else f"{label} ({r[-1]})"
            for label, r in zip(labels, rows, strict=True)
        ]
        return f"{_items(parts, lang)}{scope}。" if zh else f"{_items(parts, lang)}{scope}."
    if plan.intent == "list_quizzes":
        verdicts = [("对" if r[4] else "错") if zh else ("right" if r[4] else "wrong") for r in rows]
        parts = [
            f"{r[0][:16].replace('T', ' ')} {r[1] or '-'}: {v}" for r, v in zip(rows, verdicts, strict=True)
        ]
        return (
            f"最近的测验{scope}：{_items(parts, lang, 5)}。"
            if zh
            else f"Your quiz attempts{scope}: {_items(parts, lang, 5)}."
        )
    names = _col(columns, rows, title, "name", "topic_zh" if zh else "topic", "en")
    if plan.intent in ("list_terms", "module_topics") and zh:
        names = _col(columns, rows, "zh", "topic_zh")
    count = len(rows)
    return (
        f"共 {count} 项{scope}：{_items(names, lang)}。"
        if zh
        else f"{count} found{scope}: {_items(names, lang)}."
    )
