"""Chat latency: the agent (route → answer through LangGraph, checkpointed) vs
the raw backend, same model, same prompt, same run.

    python benchmarks/chat_latency.py [--runs 5] [--max-tokens 128]

Prints time to first token (TTFT) and tokens/s (stream chunks after the first
one; llama.cpp streams one token per chunk) as medians, and the overhead.
Goal: agent overhead ≤ 100 ms TTFT and ≤ 10% tokens/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

QUESTIONS = [
    "What is the difference between pre-training and fine-tuning?",
    "Explain what a tokenizer does.",
    "Why do we use LoRA?",
]


def measure(stream) -> tuple[float, float, int]:
    """(ttft_s, tokens_per_s, tokens) for an iterator of text pieces."""
    start = time.perf_counter()
    first = None
    count = 0
    for piece in stream:
        if not piece:
            continue
        if first is None:
            first = time.perf_counter()
        count += 1
    end = time.perf_counter()
    first = first or end
    rate = (count - 1) / (end - first) if count > 1 and end > first else 0.0
    return first - start, rate, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from langchain_core.messages import HumanMessage, SystemMessage

    from llmtutor.agents.tutor import Tutor
    from llmtutor.settings import Settings
    from llmtutor.text import detect_language

    workspace = Path(tempfile.mkdtemp(prefix="llmtutor-bench-"))
    settings = Settings(workspace=workspace, max_tokens=args.max_tokens, temperature=0.0)
    tutor = Tutor(settings)
    persona = tutor.persona()
    raw_llm = tutor.backend.chat_model(temperature=0.0, max_tokens=args.max_tokens)

    # Warm-up: server start, router training, embedding model, graph compile.
    list(tutor.stream("Hello!", thread_id="warmup"))
    list(raw_llm.stream("Hello!"))

    rows: dict[str, list[tuple[float, float, int]]] = {"raw backend": [], "agent": []}

    def raw_path(question: str, run: int) -> None:
        system = persona.system_message(detect_language(question))
        raw = raw_llm.stream([SystemMessage(content=system), HumanMessage(content=question)])
        rows["raw backend"].append(measure(chunk.content for chunk in raw))

    def agent_path(question: str, run: int) -> None:
        events = tutor.stream(question, thread_id=f"bench-{run}-{question[:10]}")
        rows["agent"].append(measure(e.data["text"] for e in events if e.type == "token"))

    for run in range(args.runs):
        for question in QUESTIONS:
            # Alternate the order: the second call of a pair reuses llama.cpp's prompt cache.
            for path in (raw_path, agent_path) if run % 2 == 0 else (agent_path, raw_path):
                path(question, run)

    summary = {
        name: {
            "ttft_ms": round(statistics.median(r[0] for r in results) * 1000, 1),
            "tokens_per_s": round(statistics.median(r[1] for r in results), 1),
            "tokens": round(statistics.median(r[2] for r in results)),
        }
        for name, results in rows.items()
    }
    raw, agent = summary["raw backend"], summary["agent"]
    overhead = {
        "ttft_overhead_ms": round(agent["ttft_ms"] - raw["ttft_ms"], 1),
        "tokens_per_s_change_pct": round(
            100 * (agent["tokens_per_s"] - raw["tokens_per_s"]) / raw["tokens_per_s"], 1
        ),
    }
    if args.json:
        print(json.dumps({"summary": summary, "overhead": overhead, "backend": tutor.backend.describe()}))
        return
    print(
        f"backend: {tutor.backend.describe()}  runs: {args.runs} × {len(QUESTIONS)} questions, max_tokens={args.max_tokens}"
    )
    print(f"{'path':<14}{'TTFT ms (p50)':>16}{'tokens/s (p50)':>16}{'tokens':>8}")
    for name, row in summary.items():
        print(f"{name:<14}{row['ttft_ms']:>16}{row['tokens_per_s']:>16}{row['tokens']:>8}")
    ok_ttft = overhead["ttft_overhead_ms"] <= 100
    ok_rate = overhead["tokens_per_s_change_pct"] >= -10
    print(
        f"agent overhead: TTFT {overhead['ttft_overhead_ms']:+} ms (goal ≤ 100: {'ok' if ok_ttft else 'MISSED'}), "
        f"tokens/s {overhead['tokens_per_s_change_pct']:+}% (goal ≥ -10%: {'ok' if ok_rate else 'MISSED'})"
    )
    tutor.close()


if __name__ == "__main__":
    main()
