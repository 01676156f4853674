"""The markdown a quiz turn reads as, English or Chinese (following the quiz's language).

Templates over the graded result only: a pending question's markdown never contains its answer;
the feedback after an answer always shows the right answer, why, and the source (notes file and heading).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmtutor.knowledge.quiz.grading import LETTERS

if TYPE_CHECKING:
    from llmtutor.knowledge.quiz.flow import QuizOutput

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
        "contradiction": "You wrote “{said}”, but the notes say “{notes}”.",
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
        "contradiction": "你写的是“{said}”，但笔记中说的是“{notes}”。",
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
            for said, notes in fb.contradictions[:2]:  # the learner's own words against the notes'
                parts.append(t["contradiction"].format(said=said.strip(" .。"), notes=notes.strip(" .。")))
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
