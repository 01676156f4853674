"""Fixed, truthful texts for turns where no tool result or passage can speak: a declined
approval, a tool that failed or was refused, greetings and small talk, and questions the
course notes do not cover (with the two nearest course modules to try instead).

None of these call a model: whatever a small model wrote here would be unchecked.
"""

from __future__ import annotations

import re
from typing import Any

from llmtutor.agents.explain.topics import nearest_modules, starting_modules

DECLINED = {
    "en": "OK, I did not run {tool}: you declined the approval, so nothing was started and no files were "
    "written. Ask again and approve it when you want to run it.",
    "zh": "好的，没有运行 {tool}：你没有批准，所以什么都没有启动，也没有写入任何文件。想运行时再提一次请求并批准即可。",
}
REFUSED = {
    "en": "⚠️ {tool} was not started: {reason}",
    "zh": "⚠️ {tool} 没有启动：{reason}",
}
FAILED = {
    "en": "⚠️ {tool} stopped: {reason}",
    "zh": "⚠️ {tool} 已停止：{reason}",
}
OFF_COURSE = {
    "en": "The course notes do not answer this, so I won't guess. The nearest course topics are {first} and "
    "{second}: ask me about one of them, or ask me to run a lab (for example a memory estimate).",
    "zh": "课程笔记里没有这个问题的答案，我不会凭空编造。最接近的课程主题是{first}和{second}："
    "可以问我其中一个，或者让我运行一个实验（例如估算显存）。",
}
OFF_COURSE_START = {  # nothing in the catalog relates to the question: where the main tracks begin
    "en": "The course notes do not answer this, so I won't guess. Good places to start in the course are "
    "{first} and {second}: ask me about one of them, or ask me to run a lab (for example a memory estimate).",
    "zh": "课程笔记里没有这个问题的答案，我不会凭空编造。课程可以从{first}和{second}开始："
    "可以问我其中一个，或者让我运行一个实验（例如估算显存）。",
}
# Marks a capable model's answer to a question no tool answered: general knowledge, unchecked.
GENERAL = {
    "en": "_Not from the course notes: a general answer from the model._",
    "zh": "_以下回答不是来自课程笔记，而是模型的一般知识。_",
}

# The persona files carry an English greeting; these are the built-in personas' in Chinese.
GREETINGS_ZH = {
    "tutor": "你好！我是 LLM 课程的助教。可以问我课程里的问题，或者让我运行一个实验。",
    "lab_engineer": "要跑哪个实验？我可以估算显存、比较解码策略，等等。",
    "quiz_master": "准备好做测验了吗？说一个主题，例如量化或 RAG。",
    "research_mentor": "想深入哪个想法或哪篇论文？",
    "socratic_coach": "我们一起想一想。你想弄明白什么？",
}
GREETING_FALLBACK = {
    "en": "Hi! Ask me a question about the LLM Course, or ask me to run a lab.",
    "zh": "你好！可以问我 LLM 课程里的问题，或者让我运行一个实验。",
}
THANKS = {
    "en": "You're welcome! Ask me anything else about the course, or ask me to run a lab.",
    "zh": "不客气！还有别的课程问题随时问我，也可以让我运行一个实验。",
}
GOODBYE = {
    "en": "Goodbye, and happy learning! This conversation is saved: come back to it any time.",
    "zh": "再见，学习愉快！这段对话已经保存，随时可以回来继续。",
}
ACK = {
    "en": "Great. What would you like to look at next?",
    "zh": "好的。接下来想看什么？",
}

# Whole-message small talk only: "hi, what is LoRA?" is a question, not a greeting. Longer
# spellings first within a kind (你好吗 before 你好).
_KINDS = {  # in priority order: "thanks, bye" is a goodbye
    "goodbye": r"bye|goodbye|bye bye|see you(?: later| tomorrow)?|good night|再见|拜拜|明天见|晚安",
    "thanks": r"thanks?|thank you|thx|ty|cheers|谢谢你?|多谢|感谢|谢啦",
    "greeting": r"你好吗|最近好吗|你好|您好|嗨|哈喽|早上好|早安|中午好|下午好|晚上好|大家好|你是谁|你能做什么|"
    r"hi|hello|hey|hiya|howdy|good (?:morning|afternoon|evening|day)|greetings|"
    r"how are you(?: doing)?(?: today)?|who are you|what can you do",
    "ack": r"ok(?:ay)?|cool|got it|great|nice|i see|understood|sounds good|好的|明白了?|知道了|懂了|收到",
}
_PHRASES = {
    kind: re.compile(rf"(?<![a-z])(?:{words})(?![a-z])", re.IGNORECASE) for kind, words in _KINDS.items()
}
_FILLER = re.compile(
    r"(?<![a-z])(?:there|tutor|again|everyone|so much|a lot|very much|you|me|and|for|the|help)(?![a-z])"
    r"|[\s,.!?~，。！？～、]|呀|啊|哦|啦|吧|呢|嘛|老师|在吗|非常|很",
    re.IGNORECASE,
)


def small_talk(text: str) -> str | None:
    """'greeting', 'thanks', 'goodbye' or 'ack' when the whole message is small talk, else None."""
    rest = text.strip()
    if not rest or len(rest) > 60:
        return None
    found = []
    for kind, pattern in _PHRASES.items():
        rest, hits = pattern.subn(" ", rest)
        if hits:
            found.append(kind)
    if not found or _FILLER.sub("", rest):
        return None  # something else was said too: not small talk
    return found[0]


def small_talk_reply(kind: str, persona: Any, language: str) -> str:
    if kind == "thanks":
        return THANKS[language]
    if kind == "goodbye":
        return GOODBYE[language]
    if kind == "ack":
        return ACK[language]
    name = getattr(persona, "name", "")
    if language == "zh":
        return GREETINGS_ZH.get(name) or GREETING_FALLBACK["zh"]
    return (getattr(persona, "greeting", "") or "").strip() or GREETING_FALLBACK["en"]


def declined(tool: str, language: str) -> str:
    return DECLINED[language].format(tool=f"`{tool}`")


def tool_error(run: dict[str, Any], language: str) -> str:
    """The tool named, and the reason in the error's own words (they name the fix)."""
    texts = REFUSED if run.get("refused") else FAILED
    return texts[language].format(tool=f"`{run.get('tool')}`", reason=run.get("error", ""))


def off_course(question: str, language: str, embed: Any = None) -> str:
    """'Not in the notes' plus the two course modules nearest to the question, by title (or,
    when nothing in the catalog relates to it, the first modules of the two main tracks)."""
    modules = nearest_modules(question, 2, embed)
    texts = OFF_COURSE if len(modules) == 2 else OFF_COURSE_START
    modules = modules if len(modules) == 2 else starting_modules()
    titles = [f"**{m.title_zh}**" if language == "zh" else f"**{m.title}**" for m in modules]
    return texts[language].format(first=titles[0], second=titles[1])
