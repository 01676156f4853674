"""How the quiz tool meets the chat: routing examples, rule-based arguments from a request, and
the markdown a quiz turn reads as (English or Chinese, following the quiz's language).

The markdown of a pending question never contains its answer; the feedback after an answer
always shows the right answer, why, and the source (notes file and heading).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from llmtutor.knowledge.quiz.grading import LETTERS

if TYPE_CHECKING:
    from llmtutor.tools.quiz import QuizOutput

# Requests that should start a quiz. Written for this tool; about half Chinese.
EXAMPLES: tuple[str, ...] = (
    "Quiz me on quantization",
    "Test my knowledge of LoRA",
    "Give me 3 multiple-choice questions about RAG",
    "Can you quiz me on the attention mechanism?",
    "I'd like a short-answer question on DPO",
    "Ask me five questions about vector databases",
    "Check my understanding of tokenization with a quick quiz",
    "Start a quiz on the LLM Engineer track",
    "Quiz me about GGUF and llama.cpp",
    "Let's do a mixed quiz on preference alignment",
    "Give me one question on the KV cache",
    "Test me on evaluation benchmarks",
    "Quiz me on model merging, 4 questions",
    "I want to practise with questions about supervised fine-tuning",
    "Drill me on prompt engineering",
    "A multiple choice quiz on neural networks, please",
    "Quiz me on scientist.pretraining",
    "Test my understanding of speculative decoding",
    "出一道关于 RAG 的选择题",
    "考考我量化的知识",
    "给我出三道关于 LoRA 的题",
    "来几道注意力机制的选择题",
    "测试一下我对向量数据库的掌握",
    "出两道简答题考我 DPO",
    "我想做个关于分词的小测验",
    "用五个问题测测我对 LLM 工程师路线的理解",
    "考我一下推测性解码",
    "出一套关于模型合并的混合题",
    "帮我复习一下预训练，出几道题",
    "来一道关于 KV 缓存的简答题",
    "检验一下我对提示工程的理解",
    "出 4 道神经网络的选择题",
    "给我一个关于 GGUF 的测验",
    "测一测我对评估基准的了解",
)

# ----- argument extraction ------------------------------------------------------
_MC = re.compile(r"multiple[\s-]*choice|\bmcqs?\b|\bchoice questions?|选择题|单选|多选|选项题", re.I)
_SHORT = re.compile(
    r"short[\s-]*answers?|open[\s-]*(?:ended\s*)?questions?|free[\s-]*text|简答|问答题|主观题|解释题", re.I
)
_MIXED = re.compile(r"\bmixed\b|\bboth\b|混合|都要|两种", re.I)
_EN_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "single": 1,
    "two": 2,
    "couple of": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_ZH_NUMBERS = {
    "一": 1,
    "两": 2,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}
_COUNT_EN = re.compile(
    r"(?<![\w-])(\d{1,2}|a|an|one|single|two|couple of|three|four|five|six|seven|eight|nine|ten)\s+"
    r"(?:more\s+|quick\s+|short\s+|multiple[\s-]*choice\s+|short[\s-]*answer\s+|mc\s+)?(?:questions?|qs|quiz questions?)\b",
    re.I,
)
# "一个测验" is one quiz, not one question: 个 counts only before 问题/题.
_COUNT_ZH = re.compile(r"(\d{1,2}|[一两二三四五六七八九十])\s*(?:道|个(?=\s*(?:问题|\S{0,3}题))|题)")
_TOPIC_AFTER = re.compile(
    r"(?:\b(?:on|about|of|regarding|covering)\s+(?:the\s+)?|关于|有关|考我|测测我对|我对)"
    r"(?P<t>[^,，.。!?！？;；]+)",
    re.I,
)
_TOPIC_TAIL = re.compile(
    r"\s*(?:please|questions?|quiz|module|track|topic|的?(?:知识|理解|掌握|了解|题|小测验|测验)).*$", re.I
)


def extract_quiz_args(text: str) -> dict[str, Any]:
    """Rule-based start arguments from a request (English or Chinese); only the fields found."""
    from llmtutor.knowledge.quiz.bank import default_bank
    from llmtutor.text import detect_language

    args: dict[str, Any] = {}
    topic = default_bank().find_topic(text)
    if topic is None and (match := _TOPIC_AFTER.search(text)):
        topic = _TOPIC_TAIL.sub("", match.group("t")).strip() or None  # unknown: the tool lists close topics
    if topic:
        args["topic"] = topic
    if match := _COUNT_EN.search(text):
        word = match.group(1).lower()
        args["n"] = int(word) if word.isdigit() else _EN_NUMBERS[word]
    elif match := _COUNT_ZH.search(text):
        word = match.group(1)
        args["n"] = int(word) if word.isdigit() else _ZH_NUMBERS[word]
    if _MIXED.search(text):
        args["kind"] = "mixed"
    elif _MC.search(text):
        args["kind"] = "mc"
    elif _SHORT.search(text):
        args["kind"] = "short"
    args["language"] = detect_language(text)
    return args


# ----- markdown ---------------------------------------------------------------------
_TEXT = {
    "en": {
        "question": "**Question {number} of {total}** · {topic}",
        "how_mc": "_Answer with a letter (A–D) or the option's text; “skip” to pass, “stop” to end the quiz._",
        "how_short": "_Answer in a few sentences (English or Chinese); “skip” to pass, “stop” to end the quiz._",
        "correct": "✅ **Correct!**",
        "partial": "🟡 **Partly right** (score {score:.0%}).",
        "wrong": "❌ **Not quite.**",
        "unrecognised": "I could not match “{answer}” to an option. Please answer with A, B, C or D.",
        "right": "Right answer: **{answer}**",
        "reference": "Reference answer from the notes:",
        "terms": "Key terms used: {used}. Missing: {missing}.",
        "none": "none",
        "source": "Source: {source} — {heading}",
        "mastery": "Mastery of {module}: {value:.0%}",
        "done": "**Quiz finished: {correct}/{answered} correct** (average score {score:.0%}).",
        "stopped": "**Quiz stopped: {correct}/{answered} correct** after {answered} of {total} questions.",
        "module_line": "- {title}: {correct}/{answered} right{mastery}",
        "mastery_tail": ", mastery {value:.0%}",
        "review": "Worth re-reading: {items}",
        "judge": "Tutor's note: {text}",
        "session": "_Quiz {id}_",
    },
    "zh": {
        "question": "**第 {number} 题 / 共 {total} 题** · {topic}",
        "how_mc": "_请回答字母（A–D）或选项内容；输入“跳过”放弃本题，“结束”退出测验。_",
        "how_short": "_请用几句话回答（中英文均可）；输入“跳过”放弃本题，“结束”退出测验。_",
        "correct": "✅ **回答正确！**",
        "partial": "🟡 **部分正确**（得分 {score:.0%}）。",
        "wrong": "❌ **不太对。**",
        "unrecognised": "无法把“{answer}”对应到选项，请回答 A、B、C 或 D。",
        "right": "正确答案：**{answer}**",
        "reference": "笔记中的参考答案：",
        "terms": "用到的关键术语：{used}。缺少：{missing}。",
        "none": "无",
        "source": "来源：{source} — {heading}",
        "mastery": "“{module}”掌握度：{value:.0%}",
        "done": "**测验结束：答对 {correct}/{answered} 题**（平均得分 {score:.0%}）。",
        "stopped": "**测验已结束：答对 {correct}/{answered} 题**（共 {total} 题）。",
        "module_line": "- {title}：答对 {correct}/{answered}{mastery}",
        "mastery_tail": "，掌握度 {value:.0%}",
        "review": "建议复习：{items}",
        "judge": "点评：{text}",
        "session": "_测验编号 {id}_",
    },
}


def render(out: QuizOutput) -> str:
    t = _TEXT[out.language]
    parts: list[str] = []
    if (fb := out.feedback) is not None:
        if fb.verdict == "unrecognised":
            parts.append(t["unrecognised"].format(answer=fb.answer.strip()[:80]))
        else:
            parts.append(t[fb.verdict].format(score=fb.score))
            if fb.judge:
                parts.append(t["judge"].format(text=fb.judge))
            if fb.matched_terms or fb.missing_terms:
                parts.append(
                    t["terms"].format(
                        used=", ".join(fb.matched_terms) or t["none"],
                        missing=", ".join(fb.missing_terms) or t["none"],
                    )
                )
            if fb.kind == "short":
                parts.append(t["reference"] + "\n\n> " + fb.correct_answer)
            else:
                parts.append(t["right"].format(answer=fb.correct_answer))
                if fb.explanation:
                    parts.append(fb.explanation)
            parts.append(t["source"].format(source=fb.source, heading=fb.heading))
            if fb.mastery is not None:
                parts.append(t["mastery"].format(module=fb.module_title, value=fb.mastery))
    if (q := out.question) is not None:
        lines = [t["question"].format(number=q.number, total=q.total, topic=out.topic), "", q.prompt]
        if q.options:
            lines += ["", *(f"- **{LETTERS[i]})** {option}" for i, option in enumerate(q.options))]
        lines += ["", t["how_mc" if q.kind == "mc" else "how_short"]]
        parts.append("\n".join(lines))
    if (s := out.summary) is not None:
        key = "done" if out.status == "finished" else "stopped"
        lines = [t[key].format(correct=s.correct, answered=s.answered, total=s.total, score=s.average_score)]
        for m in s.modules:
            tail = t["mastery_tail"].format(value=m.mastery) if m.mastery is not None else ""
            lines.append(
                t["module_line"].format(title=m.title, correct=m.correct, answered=m.answered, mastery=tail)
            )
        if s.review:
            lines += ["", t["review"].format(items="; ".join(s.review))]
        parts.append("\n".join(lines))
    parts += [f"_{note}_" for note in out.notes]
    parts.append(t["session"].format(id=out.session_id))
    return "\n\n".join(parts)
