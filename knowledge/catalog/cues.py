"""The cue vocabulary of the course-DB parser: English and Chinese words as compiled patterns.

Cue words say which table a question is about (`CUES`: quizzes, mastery, notebooks, glossary
terms, resources, modules, tracks) and what it asks: counting, ranking, per-group breakdowns,
right/wrong answers, time windows, lookups of one item's author, link, translation or topics.
`WRITE_VERBS`, `WRITE_OBJECTS` and `INJECTION` spot requests to change the database. English
alternatives match on ASCII word edges (`\\b` treats Chinese characters as word characters);
Chinese ones as substrings. Only patterns here: the parser that weighs them is
`knowledge.catalog.intents`, the catalog values themselves are `knowledge.catalog.lexicon`.
"""

from __future__ import annotations

import re

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
ZH_DIGITS = {c: i for i, c in enumerate("一二三四五六七八九十", 1)} | {"两": 2}
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
