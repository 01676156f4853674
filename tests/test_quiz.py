"""Quizzes: deterministic questions from the course catalog and notes, grading, sessions on disk,
attempts recorded in the learner tables, the tool's arguments and the `llmtutor quiz` command.
No model is needed; the optional LLM path runs against a scripted stand-in."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from llmtutor.errors import LLMTutorError, ToolInputError
from llmtutor.knowledge.quiz import session as store
from llmtutor.knowledge.quiz.bank import UnknownTopicError, default_bank
from llmtutor.knowledge.quiz.grading import grade, parse_choice
from llmtutor.knowledge.quiz.llm import JudgeVerdict, WrittenQuestion
from llmtutor.knowledge.quiz.questions import Question
from llmtutor.knowledge.quiz.text import CJK, split_sentences
from llmtutor.tools.quiz import EXAMPLES, TOOL, QuizOutput, extract_quiz_args, make_tool
from llmtutor.tools.registry import ToolContext, output_citations, render_markdown

DEV_ROUTING = Path(__file__).resolve().parents[1].parent / "shared" / "dev" / "routing_dev.jsonl"


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(workspace=tmp_path / "ws")


def current(ctx: ToolContext, out: QuizOutput) -> Question:
    question = store.load(ctx.workspace, out.session_id).question
    assert question is not None
    return question


def right_letter(q: Question) -> str:
    assert q.answer_index is not None
    return "ABCD"[q.answer_index]


def wrong_letter(q: Question) -> str:
    return next(letter for i, letter in enumerate("ABCD") if i != q.answer_index)


# ----- generation ------------------------------------------------------------------
def check_question(q: Question) -> None:
    passage = flat(q.passage.text)
    if q.kind == "mc":
        assert len(q.options) == 4 and q.answer_index is not None
        assert len({flat(o) for o in q.options}) == 4, q.options  # four distinct options
        assert q.options[q.answer_index] == q.answer
        assert flat(q.answer) in passage, (q.id, q.answer)  # the answer is in its source passage
        if q.origin == "cloze":  # exactly one option restores the passage's sentence
            blanked = q.prompt.split("> ", 1)[1]
            restored = [o for o in q.options if flat(blanked.replace("____", o)) in passage]
            assert restored == [q.answer], (q.id, restored)
    else:
        assert not q.options and len(q.key_terms) >= 2
        for sentence in split_sentences(q.answer, q.language):  # the reference is quoted from the notes
            assert flat(sentence) in passage, (q.id, sentence)
    assert q.passage.source and q.passage.heading and q.module_id == q.passage.module_id
    assert bool(CJK.search(q.prompt)) == (q.language == "zh")


def test_every_generated_question_is_supported_by_its_passage():
    bank = default_bank()
    counts = bank.counts()
    assert len(counts) == len(bank.catalog.modules())
    for module_id, row in counts.items():
        assert row["mc_en"] >= 10 and row["mc_zh"] >= 10, (module_id, row)
        assert row["short_en"] >= 2 and row["short_zh"] >= 2, (module_id, row)
        for language in ("en", "zh"):
            for q in bank.questions(module_id, language):
                check_question(q)


@pytest.mark.parametrize(
    ("topic", "language", "module"),
    [
        ("quantization", "en", "scientist.quantization"),
        ("量化", "zh", "scientist.quantization"),
        ("engineer.rag", "en", "engineer.rag"),
        ("RAG", "zh", "engineer.rag"),
        ("LoRA", "en", "scientist.sft"),
        ("注意力机制", "zh", "scientist.architecture"),
        ("2.5", "en", "scientist.preference-alignment"),
    ],
)
def test_questions_on_a_topic_in_both_languages(topic, language, module):
    bank = default_bank()
    resolved = bank.resolve(topic)
    assert module in resolved.module_ids
    chosen = bank.select(resolved, 6, "mixed", language, seed=7)
    assert len(chosen) == 6 and [q.kind for q in chosen] == ["mc", "short"] * 3
    assert len({q.id for q in chosen}) == 6
    for q in chosen:
        check_question(q)
        assert q.language == language and q.module_id in resolved.module_ids
    if resolved.focus:  # a glossary term: its own questions come first
        assert resolved.focus[0] in chosen[0].focus
    assert bank.select(resolved, 6, "mixed", language, seed=7) == chosen  # deterministic for a seed


def test_unknown_topic_is_a_typed_error_with_close_topics(ctx):
    with pytest.raises(UnknownTopicError) as info:
        TOOL.run({"topic": "quantisaton"}, ctx)
    assert isinstance(info.value, LLMTutorError)
    assert "quantisaton" in info.value.message and "quantisation" in (info.value.hint or "")
    with pytest.raises(UnknownTopicError, match="try one of"):
        default_bank().resolve("量子计算")


# ----- grading -----------------------------------------------------------------------
def test_multiple_choice_answer_formats():
    options = ["GPTQ", "quantized low-rank adaptation", "absmax quantization", "EXL2"]
    for answer in (
        "B",
        "b",
        "B)",
        "(b)",
        "b.",
        "B 选项",
        "answer: B",
        "The answer is b",
        "选B",
        "答案是 B",
        "2",
        "B) quantized low-rank adaptation",
        "quantized low-rank adaptation",
        "Quantized Low-Rank Adaptation.",
        "quantized low rank adaption",
        "quantized",
    ):
        assert parse_choice(answer, options) == 1, answer
    assert parse_choice("absmax", options) == 2
    for answer in ("hello", "E", "quantization is fun", ""):
        assert parse_choice(answer, options) is None, answer
    q = next(q for q in default_bank().questions("scientist.quantization", "en") if q.kind == "mc")
    assert grade(q, right_letter(q)).correct and grade(q, q.answer).correct
    assert grade(q, wrong_letter(q)).verdict == "wrong"
    assert grade(q, "no idea").verdict == "wrong" and grade(q, "what?!").verdict == "unrecognised"


def test_short_answers_are_graded_on_key_terms_in_either_language():
    bank = default_bank()
    en = next(
        q for q in bank.questions("scientist.quantization", "en") if q.kind == "short" and "AWQ" in q.prompt
    )
    good = (
        "AWQ keeps the ~1% salient weight channels that multiply large activations accurate: it finds them with "
        "activation statistics on calibration data and scales them before quantization. Perplexity is lower "
        "than GPTQ, but it needs more VRAM; weights stay 4-bit."
    )
    high, low = grade(en, good), grade(en, "I had pasta for lunch and watched football.")
    assert high.correct and high.score >= 0.7 and "GPTQ" in high.matched_terms
    assert low.verdict == "wrong" and low.score < 0.2 and low.missing_terms
    chinese = grade(
        en, "AWQ 用校准数据的激活统计找到约 1% 的显著通道，量化前缩放保护；困惑度比 GPTQ 低，但占用更多显存。"
    )
    assert chinese.correct  # glossary spellings count in both languages
    assert grade(en, en.answer).score >= 0.9  # the reference itself
    zh = next(q for q in bank.questions("engineer.rag", "zh") if q.kind == "short")
    assert grade(zh, zh.answer).correct and not grade(zh, "今天天气很好，我们去公园散步吧。").correct


# ----- the tool: a whole quiz ---------------------------------------------------------
def test_full_quiz_start_answer_summary_and_recording(ctx):
    out = TOOL.run({"topic": "quantization", "n": 4, "kind": "mixed", "seed": 3}, ctx)
    assert out.status == "asking" and out.question and out.question.number == 1 and out.question.total == 4
    first = current(ctx, out)
    md = render_markdown(out)
    assert "Question 1 of 4" in md and "- **A)**" in md and "- **D)**" in md
    assert output_citations(out) == []  # the pending question's passage would give the answer away
    assert store.active_session(ctx.workspace) == out.session_id

    out = TOOL.run({"action": "answer", "answer": right_letter(first)}, ctx)
    assert out.feedback and out.feedback.verdict == "correct" and out.question and out.question.number == 2
    assert "Correct" in out.to_markdown() and first.passage.source in out.to_markdown()
    [cite] = output_citations(out)
    assert cite["source"] == first.passage.source and cite["heading"] == first.passage.heading
    assert flat(first.answer) in flat(cite["text"])

    short = current(ctx, out)
    assert short.kind == "short"
    out = TOOL.run({"action": "answer", "answer": short.answer}, ctx)  # the reference itself: full marks
    assert out.feedback and out.feedback.correct and "Reference answer" in out.to_markdown()

    third = current(ctx, out)
    out = TOOL.run({"action": "answer", "answer": "zzz"}, ctx)  # not an option: asked again, not recorded
    assert (
        out.feedback and out.feedback.verdict == "unrecognised" and out.question and out.question.number == 3
    )
    assert output_citations(out) == []
    out = TOOL.run({"action": "answer", "answer": wrong_letter(third)}, ctx)
    assert (
        out.feedback
        and out.feedback.verdict == "wrong"
        and f"{right_letter(third)})" in out.feedback.correct_answer
    )
    assert "Not quite" in out.to_markdown() and third.answer in out.to_markdown()

    out = TOOL.run({"action": "answer", "answer": "skip"}, ctx)
    assert out.status == "finished" and out.question is None and out.summary
    assert (out.summary.answered, out.summary.correct, out.summary.total) == (4, 2, 4)
    assert "Quiz finished: 2/4 correct" in out.to_markdown()
    assert store.active_session(ctx.workspace) is None

    db = ctx.workspace / "course.sqlite"  # Settings.catalog_db
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT module_id, correct, score, expected FROM quiz_attempts ORDER BY id"
        ).fetchall()
        mastery = con.execute(
            "SELECT attempts, correct, mastery FROM module_mastery WHERE module_id = ?",
            ("scientist.quantization",),
        ).fetchone()
    assert [(r[0], r[1]) for r in rows] == [("scientist.quantization", c) for c in (1, 1, 0, 0)]
    assert rows[0][3] == first.answer
    assert mastery[:2] == (4, 2) and 0 < mastery[2] < 1
    assert out.summary.modules[0].mastery == pytest.approx(mastery[2])


def test_chinese_quiz_and_stop(ctx):
    out = TOOL.run(extract_quiz_args("出两道关于 RAG 的选择题"), ctx)
    assert out.language == "zh" and out.question and out.question.total == 2 and out.question.kind == "mc"
    assert "第 1 题 / 共 2 题" in out.to_markdown() and "检索增强生成" in out.to_markdown()
    q = current(ctx, out)
    out = TOOL.run({"action": "answer", "answer": f"选{right_letter(q)}"}, ctx)
    assert (
        out.feedback
        and out.feedback.correct
        and "回答正确" in out.to_markdown()
        and "来源" in out.to_markdown()
    )
    out = TOOL.run({"action": "answer", "answer": "结束"}, ctx)
    assert out.status == "stopped" and out.summary and out.summary.answered == 1
    with pytest.raises(ToolInputError, match="no quiz is open"):
        TOOL.run({"action": "answer", "answer": "B"}, ctx)


def test_session_survives_a_restart(ctx, tmp_path):
    out = TOOL.run({"topic": "LoRA", "n": 3, "kind": "mc", "seed": 1}, ctx)
    path = ctx.workspace / "quizzes" / f"{out.session_id}.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["status"] == "asking" and len(saved["questions"]) == 3
    assert all(q["passage"]["source"] and q["options"] for q in saved["questions"])
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # atomic writes leave no temp files
    session = store.load(ctx.workspace, out.session_id)
    q = session.question
    assert q is not None
    # A new tool instance and context (as after a restart) finds the open quiz on disk.
    fresh = make_tool()
    ctx2 = ToolContext(workspace=ctx.workspace)
    status = fresh.run({"action": "status"}, ctx2)
    assert status.question and status.question.prompt == q.prompt and status.question.number == 1
    after = fresh.run({"action": "answer", "answer": q.answer}, ctx2)
    assert after.feedback and after.feedback.correct and after.question and after.question.number == 2
    # Starting another quiz (another tab) leaves this one open; the newest is the active one.
    other = TOOL.run({"topic": "GGUF", "n": 1}, ctx)
    assert store.load(ctx.workspace, out.session_id).status == "asking"
    assert store.active_session(ctx.workspace) == other.session_id
    assert (
        store.continuation(ctx.workspace, "skip", shown=f"... _Quiz {out.session_id}_")["session_id"]
        == out.session_id
    )  # type: ignore[index]
    assert store.continuation(ctx.workspace, "skip", shown="an answer about LoRA") is None
    with pytest.raises(ToolInputError):
        TOOL.run({"action": "status", "session_id": "../../etc"}, ctx)


def test_continuation_routes_answers_to_the_open_quiz(ctx):
    assert store.continuation(ctx.workspace, "B") is None  # no quiz open
    out = TOOL.run({"topic": "RAG", "n": 2, "kind": "mc", "seed": 2}, ctx)
    q = current(ctx, out)
    assert store.continuation(ctx.workspace, "b)") == {
        "action": "answer",
        "session_id": out.session_id,
        "answer": "b)",
    }
    assert store.continuation(ctx.workspace, q.answer)["action"] == "answer"  # type: ignore[index]
    assert store.continuation(ctx.workspace, "How much VRAM does a 7B model need?") is None  # a new request
    assert store.continuation(ctx.workspace, "stop")["action"] == "stop"  # type: ignore[index]
    TOOL.run({"action": "stop"}, ctx)
    assert store.continuation(ctx.workspace, "B") is None
    TOOL.run({"topic": "RAG", "n": 1, "kind": "short"}, ctx)
    assert store.continuation(ctx.workspace, "It retrieves documents and puts them into the prompt.")


def test_a_failing_recorder_does_not_stop_the_quiz(ctx):
    def broken(*args):
        raise sqlite3.OperationalError("database is locked")

    tool = make_tool(recorder=broken)
    out = tool.run({"topic": "GGUF", "n": 2, "kind": "mc"}, ctx)
    out = tool.run({"action": "answer", "answer": "A"}, ctx)
    assert out.feedback and out.question and any("could not record" in n for n in out.notes)
    assert store.load(ctx.workspace, out.session_id).answers[0].recorded is False


# ----- arguments and examples ------------------------------------------------------------
def test_examples_and_argument_extraction():
    assert len(EXAMPLES) >= 30 and sum(bool(CJK.search(e)) for e in EXAMPLES) >= 12
    if DEV_ROUTING.exists():
        dev = {
            json.loads(line)["text"]
            for line in DEV_ROUTING.read_text(encoding="utf-8").splitlines()
            if line.strip()
        }
        assert not dev & set(EXAMPLES)
    cases = {
        "Quiz me on quantization": {"topic": "quantization", "language": "en"},
        "Give me 3 questions about LoRA": {"topic": "LoRA", "n": 3, "language": "en"},
        "出一道关于 RAG 的选择题": {"topic": "RAG", "n": 1, "kind": "mc", "language": "zh"},
        "来两道量化的简答题": {"topic": "量化", "n": 2, "kind": "short", "language": "zh"},
        "A short-answer quiz on speculative decoding": {
            "topic": "speculative decoding",
            "kind": "short",
            "language": "en",
        },
        "给我一个关于 GGUF 的测验": {"topic": "GGUF", "language": "zh"},
        "Quiz me on scientist.pretraining, five questions": {
            "topic": "scientist.pretraining",
            "n": 5,
            "language": "en",
        },
    }
    for text, expected in cases.items():
        assert extract_quiz_args(text) == expected, text
    for text in EXAMPLES:  # every example starts a valid quiz
        args = extract_quiz_args(text)
        TOOL.validate(args)
        default_bank().resolve(args.get("topic"))
    assert TOOL.name == "quiz" and TOOL.writes and not TOOL.expensive


# ----- the optional LLM path -----------------------------------------------------------
class ScriptedLLM:
    """Stands in for a capable chat model: `with_structured_output(...).invoke` returns the script."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = 0

    def __call__(self):
        return self

    def with_structured_output(self, schema, method="json_schema"):
        assert method == "json_schema"
        return self

    def invoke(self, messages):
        self.calls += 1
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def test_llm_questions_are_checked_against_the_passage(ctx):
    bank = default_bank()
    base = bank.select(bank.resolve("AWQ"), 1, "mc", "en", seed=0)[0]
    sentence = split_sentences(base.passage.text, "en")[0]
    good = WrittenQuestion(
        question="Which statement does the course make?",
        options=[sentence, "It needs no data.", "It only runs on CPUs.", "It trains the model again."],
        correct_option=0,
        evidence=sentence,
        explanation="The notes say so.",
    )
    invented = good.model_copy(update={"evidence": "AWQ was invented in 1999 by a cat."})
    llm = ScriptedLLM([good, invented, RuntimeError("server down")])
    tool = make_tool(llm=llm)
    out = tool.run({"topic": "AWQ", "n": 3, "kind": "mc", "seed": 0}, ctx)
    q = current(ctx, out)
    assert (
        q.origin == "llm" and q.prompt == good.question and q.answer == sentence and q.passage == base.passage
    )
    out = tool.run({"action": "answer", "answer": q.answer}, ctx)
    assert out.feedback and out.feedback.correct
    assert current(ctx, out).origin != "llm" and any("rejected" in n for n in out.notes)  # invented evidence
    out = tool.run({"action": "answer", "answer": "A"}, ctx)
    assert current(ctx, out).origin != "llm" and any("could not write" in n for n in out.notes)
    with pytest.raises(ToolInputError, match="no LLM"):
        TOOL.run({"topic": "AWQ", "generator": "llm"}, ctx)


def test_llm_judge_blends_with_the_rubric(ctx):
    llm = ScriptedLLM([JudgeVerdict(score=5, feedback="Spot on.")])
    tool = make_tool(llm=llm)
    out = tool.run({"topic": "RAG", "n": 1, "kind": "short"}, ctx)
    q = current(ctx, out)
    out = tool.run({"action": "answer", "answer": q.answer}, ctx)
    assert llm.calls == 1 and out.feedback and out.feedback.judge == "Spot on." and out.feedback.correct
    assert "Spot on." in out.to_markdown()


# ----- the command line -----------------------------------------------------------------
def test_cli_quiz_runs_interactively(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from llmtutor.ui.cli.quiz import register

    monkeypatch.setenv("LLMTUTOR_WORKSPACE", str(tmp_path / "cli-ws"))
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a group, as in the real CLI
    runner = CliRunner()
    result = runner.invoke(
        app, ["quiz", "--topic", "量化", "--n", "2", "--kind", "mc", "--seed", "5"], input="A\n"
    )
    assert result.exit_code == 0, result.output
    assert "第 1 题 / 共 2 题" in result.output and "第 2 题" in result.output and "--resume" in result.output
    result = runner.invoke(app, ["quiz", "--resume"], input="B\n")
    assert result.exit_code == 0 and "测验结束" in result.output
    result = runner.invoke(app, ["quiz", "--topic", "quantisaton"])
    assert result.exit_code == 2 and "quantisation" in result.output
