"""The `research` policy (the research mentor's): the cited answer, then the papers and
references the course catalog lists for the cited modules, the ones naming the question's
concept first, and one to read next. Every line comes from the catalog."""

from __future__ import annotations

from typing import Any, Literal

Language = Literal["en", "zh"]
MAX_ITEMS = 4
# Papers first: this persona connects ideas to where they were introduced.
_KIND_ORDER = {"paper": 0, "article": 1, "notebook": 2, "tool": 3, "repo": 3, "documentation": 4}
KINDS_ZH = {
    "paper": "论文",
    "article": "文章",
    "tool": "工具",
    "repo": "代码库",
    "documentation": "文档",
    "video": "视频",
    "book": "书",
    "course": "课程",
    "website": "网站",
    "leaderboard": "排行榜",
    "model": "模型",
    "dataset": "数据集",
    "notebook": "笔记本",
}
TEXT = {
    "en": {
        "head": "**Papers and references** (course catalog, {modules}):",
        "next": "Read next: **{title}**.",
    },
    "zh": {"head": "**论文与参考资料**（课程目录，{modules}）：", "next": "下一篇推荐：**{title}**。"},
}


def references(citations: list[dict[str, Any]], question: str, language: Language) -> str:
    """The catalog's references for the cited modules as a short list; "" when none."""
    from llmtutor.agents.explain.similarity import concepts, covered
    from llmtutor.knowledge.catalog import load_catalog

    catalog = load_catalog()
    module_ids = list(dict.fromkeys(str(c["module_id"]) for c in citations if c.get("module_id")))
    found = concepts(question)
    items: list[tuple[tuple[int, int, int], Any, Any]] = []
    seen: set[str] = set()
    for rank, module_id in enumerate(module_ids[:2]):
        module = catalog.module(module_id)
        for resource in [*module.references, *module.resources]:
            if str(resource.url) in seen:
                continue
            seen.add(str(resource.url))
            named = any(covered(c, resource.title) for c in found if c.weight >= 1.0)
            key = (0 if named else 1, _KIND_ORDER.get(resource.kind, 5), rank)
            items.append((key, module, resource))
    if not items:
        return ""
    items.sort(key=lambda item: item[0])
    chosen = items[:MAX_ITEMS]
    t = TEXT[language]
    titles = list(dict.fromkeys((m.title_zh if language == "zh" else m.title) for _, m, _ in chosen))
    modules = "、".join(f"《{x}》" for x in titles) if language == "zh" else ", ".join(titles)
    lines = [t["head"].format(modules=modules)]
    for _, _, resource in chosen:
        kind = KINDS_ZH.get(resource.kind, resource.kind) if language == "zh" else resource.kind
        by = f" — {resource.author}" if resource.author else ""
        lines.append(f"- [{resource.title}]({resource.url}){by} ({kind})")
    lines.append("")
    lines.append(t["next"].format(title=chosen[0][2].title))
    return "\n".join(lines)
