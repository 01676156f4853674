"""Hallucination audit: 50 varied messages through the embedded model, every visible sentence
checked against what backs it.

    python benchmarks/hallucination_audit.py [--modes grounded,checked,unchecked] [--show 8]

The messages cover both languages, all five personas, cited answers, lab tools (memory,
decoding, course database, quiz, jobs), off-course questions, small talk, declined approvals
and multi-turn policies (a Socratic dialogue, a quiz answer, a lab offer accepted). Each runs
through `Tutor.ask` on the bundled SmolLM2 in three modes, same messages, same run:

* grounded  — the product: templates, extractive answers, fixed texts (the model is not asked
  to write);
* checked   — the model writes (as a capable backend would) and its text goes through the
  number and key-term checks (agents/grounding.py);
* unchecked — the model writes and nothing is checked: what a learner read before.

A visible sentence (tables, the Sources list and code are results, not prose) is *supported*
when, without its citation marks, it is a passage of the course notes or the catalog, a line of
the tool's result, or when every number in it occurs in the turn's sources (tool result and
output, retrieved passages, the question) and every key term occurs there or in the project's
own fixed texts (templates and notices, which are reviewed by hand). Everything else is counted
and the first few are printed. Target for `grounded`: 0.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]

# (persona, message, approve): consecutive messages of one persona share a thread when the
# message starts with "+" (a reply inside the same dialogue).
MESSAGES: list[tuple[str, str, bool | None]] = [
    ("tutor", "What is LoRA?", None),
    ("tutor", "How does QLoRA save memory compared with LoRA?", None),
    ("tutor", "What is the purpose of the chat template in SFT?", None),
    ("tutor", "Why does beam search produce repetitive text?", None),
    ("tutor", "How do I evaluate my fine-tuned model?", None),
    ("tutor", "What is RAG and why does it reduce hallucinations?", None),
    ("tutor", "Explain grouped-query attention and the KV cache", None),
    ("tutor", "What is the difference between GPTQ and AWQ?", None),
    ("tutor", "LoRA 为什么能减少显存？", None),
    ("tutor", "量化中的 absmax 方法是什么？", None),
    ("tutor", "解释一下温度参数对采样的影响。", None),
    ("tutor", "RAG 系统中为什么要对文档进行分块？", None),
    ("tutor", "什么是灾难性遗忘？", None),
    ("tutor", "DPO 为什么不需要奖励模型？", None),
    ("tutor", "Who won the 2018 football World Cup?", None),
    ("tutor", "2018 年世界杯冠军是哪个国家？", None),
    ("tutor", "What's a good recipe for pancakes?", None),
    ("tutor", "Hi! What can you do?", None),
    ("tutor", "你好！", None),
    ("tutor", "How much GPU memory do I need to fine-tune Llama-3-8B with QLoRA?", None),
    ("tutor", "估算 Llama-3-8B 在 4 位下推理需要多少显存", None),
    ("tutor", "Can I run Mistral-7B in fp16 on a 16 GB GPU?", None),
    ("tutor", "Estimate the memory to serve Llama-3-8B with an 8k context", None),
    ("tutor", 'Compare greedy and beam search on the prompt "The future of AI is"', None),
    ("tutor", "用提示“从前有一座山”比较温度 0.2 和 1.2 的采样", None),
    ("tutor", "How many modules does the course have?", None),
    ("tutor", "列出 RAG 模块的资源", None),
    ("tutor", "Which notebooks are about quantization?", None),
    ("tutor", "Quiz me on quantization", None),
    ("tutor", "+B", None),
    ("tutor", "Fine-tune SmolLM2 on the course dataset", False),
    ("tutor", "把我微调好的模型量化成 4 位 GGUF", False),
    ("tutor", "Show my jobs", None),
    ("socratic_coach", "How does SLERP merging work?", None),
    ("socratic_coach", "+It averages the weights of two models?", None),
    ("socratic_coach", "+just tell me", None),
    ("socratic_coach", "什么是 KV 缓存？", None),
    ("socratic_coach", "+我不知道", None),
    ("quiz_master", "What is DPO?", None),
    ("quiz_master", "+A", None),
    ("quiz_master", "什么是量化？", None),
    ("lab_engineer", "What is nucleus sampling?", None),
    ("lab_engineer", "+yes", None),
    ("lab_engineer", "Why does quantization reduce memory?", None),
    ("lab_engineer", "How much memory does full fine-tuning of a 7B model take?", None),
    ("research_mentor", "What is LoRA?", None),
    ("research_mentor", "什么是 DPO？", None),
    ("research_mentor", "Tell me about scaling laws in pre-training", None),
    ("research_mentor", "What are the risks of prompt injection?", None),
    ("research_mentor", "Who invented the transformer?", None),
]
_CITE = re.compile(r"\s*\[\d+\]")
_SPLIT = re.compile(r"(?<=[.!?])(?<!e\.g\.)(?<!i\.e\.)\s+|(?<=[。！？；])")


def _plain(text: str) -> str:
    text = _CITE.sub("", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)  # links: their text
    text = re.sub(r"[*_`>“”\"]", "", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def visible_sentences(answer: str) -> list[str]:
    """Prose the learner reads: not tables, code, the Sources list or option lines."""
    out, in_code, in_sources = [], False, False
    for line in answer.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_code = not in_code
            continue
        if in_code or not stripped or stripped.startswith(("|", "![")):
            continue
        if re.fullmatch(r"\**(?:sources|来源)\**", stripped, re.I):
            in_sources = True
            continue
        if in_sources and re.match(r"\[\d+\]", stripped):
            continue
        in_sources = False
        if re.fullmatch(r"[A-D]\) .*", stripped):  # a quiz option: a term, not a claim
            continue
        out += [s for s in _SPLIT.split(stripped) if len(_plain(s)) >= 4]
    return out


def _fixed_vocabulary() -> set[str]:
    """Key terms of the project's own fixed texts: every string literal of the agents (templates,
    notices, policy texts), the quiz (question templates), the learner model and the tools (result
    rendering), the persona, lab and concept-graph YAML, and the course catalog (a source in its
    own right)."""
    from llmtutor.agents.grounding import _key_terms
    from llmtutor.knowledge import COURSE_DIR

    texts: list[str] = []
    for folder in ("agents", "knowledge/quiz", "knowledge/learner", "tools"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    texts.append(node.value)
    for folder in ("agents", "knowledge/learner"):  # personas, labs, the concept graph
        texts += [p.read_text(encoding="utf-8") for p in (REPO / folder).rglob("*.yaml")]
    texts.append((COURSE_DIR / "catalog.yaml").read_text(encoding="utf-8"))
    return _key_terms("\n".join(texts))


def _course_text() -> str:
    from llmtutor.knowledge import COURSE_DIR, NOTES_DIR

    parts = [p.read_text(encoding="utf-8") for p in sorted(NOTES_DIR.glob("*.md"))]
    parts.append((COURSE_DIR / "catalog.yaml").read_text(encoding="utf-8"))
    return _plain("\n".join(parts))


def unsupported(
    answer: str, reply, question: str, course: str, fixed: set[str], catalog_numbers: set[float]
) -> list[str]:
    from llmtutor.agents.grounding import _grounded, _key_terms, _numbers

    sources = [question]
    for run in reply.tool_results:
        sources += [run.get("markdown", ""), json.dumps(run.get("output", {}), ensure_ascii=False)]
        sources += [str(c.get("text", "")) for c in run.get("citations", [])]
    sources += [str(c.get("text", "")) for c in reply.citations]
    joined = "\n".join(sources)
    plain_sources = _plain(joined)
    numbers = _numbers(joined) | catalog_numbers
    terms = _key_terms(joined) | fixed
    bad = []
    for sentence in visible_sentences(answer):
        plain = _plain(sentence).rstrip(".。")
        if plain in course or plain in plain_sources:
            continue  # a passage of the notes or catalog, or a line of the tool's result
        # within 1% (a result's 2.1912 read as 2.19), as the answer checks do; "step 3" is wording
        own = _numbers(_CITE.sub("", sentence), skip_small_integers=True)
        new_numbers = {f"{v:g}" for v in own if not _grounded(v, numbers)}
        new_terms = _key_terms(_CITE.sub("", sentence)) - terms
        if new_numbers or new_terms:
            bad.append(f"{sentence.strip()}  ⟵ not backed: {sorted(new_numbers | new_terms)[:6]}")
    return bad


def run_mode(
    mode: str, workspace: Path, dump: Path | None = None
) -> tuple[int, int, list[tuple[str, str]], float]:
    from llmtutor import Tutor
    from llmtutor.agents import answering
    from llmtutor.settings import Settings

    with ExitStack() as stack:
        if mode != "grounded":
            stack.enter_context(mock.patch.object(Tutor, "writes_answers", lambda self: True))
        if mode == "unchecked":
            keep = lambda text, *sources: text  # noqa: E731
            stack.enter_context(mock.patch.object(answering, "drop_ungrounded_sentences", keep))
            stack.enter_context(mock.patch.object(answering, "drop_off_topic_sentences", keep))
            stack.enter_context(mock.patch.object(answering, "_ABOUT_COURSE", re.compile(r"(?!)")))
        tutor = Tutor(Settings(workspace=workspace, max_tokens=160))
        from llmtutor.agents.grounding import _numbers
        from llmtutor.knowledge import COURSE_DIR

        course, fixed = _course_text(), _fixed_vocabulary()
        catalog_numbers = _numbers((COURSE_DIR / "catalog.yaml").read_text(encoding="utf-8"))
        sentences, examples, started = 0, [], time.perf_counter()
        thread = ""
        for number, (persona, message, approve) in enumerate(MESSAGES):
            if not message.startswith("+"):
                thread = f"{mode}-{number}"
            text = message.lstrip("+")
            reply = tutor.ask(text, thread_id=thread, persona=persona, approve=approve)
            sentences += len(visible_sentences(reply.answer))
            if dump is not None:
                with dump.open("a", encoding="utf-8") as out:
                    out.write(f"\n### [{mode}] {persona}: {text}\n\n{reply.answer}\n")
            general = not reply.tool_results and not reply.citations  # no tool: a general answer
            for bad in unsupported(reply.answer, reply, text, course, fixed, catalog_numbers):
                examples.append((f"{persona}: {text}" + (" (general)" if general else ""), bad))
        tutor.close()
    return len(examples), sentences, examples, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="grounded,checked,unchecked")
    parser.add_argument("--show", type=int, default=12)
    parser.add_argument("--dump", type=Path, default=None, help="append every answer here, for reading")
    args = parser.parse_args()
    results = {}
    for mode in args.modes.split(","):
        results[mode] = run_mode(mode, Path(tempfile.mkdtemp(prefix=f"audit-{mode}-")), args.dump)
    print(f"{len(MESSAGES)} messages, embedded SmolLM2-135M (Q4_1 GGUF), 2 CPU cores\n")
    print(
        "| mode | visible sentences | unsupported | share | of them in general answers (no tool) | wall s |\n"
        "|---|---:|---:|---:|---:|---:|"
    )
    for mode, (bad, total, examples, seconds) in results.items():
        general = sum(where.endswith("(general)") for where, _ in examples)
        print(f"| {mode} | {total} | {bad} | {bad / max(total, 1):.1%} | {general} | {seconds:.0f} |")
    for mode, (_, _, examples, _) in results.items():
        if examples:
            print(f"\n{mode}: first unsupported sentences")
            for where, sentence in examples[: args.show]:
                print(f"- [{where}] {sentence[:220]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
