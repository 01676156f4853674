"""Many learners at once on the embedded model: the server against llama.cpp's own slots.

    python benchmarks/concurrency.py [--sessions 1,4,16] [--slots 4] [--max-tokens 64]

Two parts, same run, same machine:

1. **Generation (the anchor):** N simultaneous streamed completions straight from the embedded
   llama.cpp server, with 1 slot (what the tutor had) and with `--slots` slots: aggregate
   tokens/s and p95 time to first token.
2. **The server:** N learners (each with their own API key) send a course question at once to
   `llmtutor serve` (uvicorn, real HTTP, `/chat/stream`), then a second message in the same
   thread: p50/p95 time to the first answer token and to the end of the turn, errors, and
   whether every thread's history holds exactly its own two questions.

The tutor's turns on the default model are retrieval and composition (no model text is shown),
so part 2 measures the server's concurrency (thread pool, SQLite, retrieval), part 1 the model's.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

QUESTIONS = [
    "What is LoRA?",
    "Why does quantization reduce memory?",
    "什么是检索增强生成？",
    "How does DPO differ from PPO?",
    "What is the KV cache?",
    "什么是困惑度？",
]


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def generation(slots: int, sessions: int, max_tokens: int) -> tuple[float, float, float]:
    from llmtutor.backends.llamacpp import LlamaCppBackend

    model = LlamaCppBackend(slots=slots).chat_model(temperature=0.0, max_tokens=max_tokens)
    model.invoke("hello")  # load and warm up
    ttfts, tokens = [], []

    def one(i: int) -> None:
        start, first, count = time.perf_counter(), None, 0
        for _ in model.stream(f"Write note {i} about how language models learn."):
            first = first or time.perf_counter() - start
            count += 1
        ttfts.append(first or 0.0)
        tokens.append(count)

    start = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return sum(tokens) / wall, p95(ttfts), wall


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(workspace: Path, slots: int) -> tuple[str, dict[str, str]]:
    import uvicorn

    from llmtutor.agents.tutor import Tutor
    from llmtutor.settings import Settings
    from llmtutor.ui.http.server import create_app
    from llmtutor.users import add_user

    settings = Settings(workspace=workspace, llama_slots=slots)
    keys = {f"learner{i}": add_user(settings.users_db, f"learner{i}")[1] for i in range(16)}
    tutor = Tutor(settings)
    tutor.run_tool("search_course", {"query": "LoRA"})  # builds the course index once
    port = free_port()
    config = uvicorn.Config(create_app(tutor), host="127.0.0.1", port=port, log_level="warning")
    threading.Thread(target=uvicorn.Server(config).run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(100):
        try:
            httpx.get(base + "/health", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return base, keys


def turns(base: str, keys: dict[str, str], sessions: int, round_id: str = "") -> dict[str, float]:
    import httpx

    firsts, ends, errors, mixed = [], [], 0, 0
    lock = threading.Lock()

    def chat(name: str, key: str, message: str, thread: str) -> tuple[float, float]:
        headers = {"Authorization": f"Bearer {key}"}
        start, first = time.perf_counter(), None
        with httpx.stream(
            "POST",
            base + "/chat/stream",
            json={"message": message, "thread_id": thread},
            headers=headers,
            timeout=600,
        ) as response:
            response.raise_for_status()
            event = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("token", "answer") and first is None:
                    first = time.perf_counter() - start
                elif line.startswith("data:") and event == "error":
                    raise RuntimeError(line)
        return first or 0.0, time.perf_counter() - start

    def learner(i: int) -> None:
        nonlocal errors, mixed
        name = f"learner{i}"
        key, thread = keys[name], f"bench{round_id}-{i}"  # a fresh thread each round
        asked = [QUESTIONS[i % len(QUESTIONS)], "Can you say more?"]
        try:
            for message in asked:
                first, end = chat(name, key, message, thread)
                with lock:
                    firsts.append(first)
                    ends.append(end)
            history = httpx.get(f"{base}/threads/{thread}", headers={"Authorization": f"Bearer {key}"}).json()
            humans = [m["content"] for m in history["messages"] if m["type"] == "human"]
            if humans != asked:
                with lock:
                    mixed += 1
        except Exception:  # noqa: BLE001 - counted, shown in the table
            with lock:
                errors += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=learner, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "first_p50": statistics.median(firsts) if firsts else 0.0,
        "first_p95": p95(firsts) if firsts else 0.0,
        "turn_p95": p95(ends) if ends else 0.0,
        "turns_per_s": len(ends) / wall,
        "errors": errors,
        "mixed": mixed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,4,16")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.sessions.split(",")]
    rows = []
    print(
        "| part | sessions | llama.cpp slots | aggregate tokens/s | p95 TTFT s | wall s |\n|---|---:|---:|---:|---:|---:|"
    )
    from llmtutor.backends.llamacpp import EmbeddedLlamaServer

    for slots in (1, args.slots):
        for n in counts:
            rate, ttft, wall = generation(slots, n, args.max_tokens)
            rows.append(
                {"part": "generation", "sessions": n, "slots": slots, "tok_s": rate, "ttft_p95": ttft}
            )
            print(f"| generation | {n} | {slots} | {rate:.1f} | {ttft:.2f} | {wall:.1f} |")
        EmbeddedLlamaServer.shutdown_all()  # one server at a time: two would share the cores
    base, keys = serve(Path(tempfile.mkdtemp(prefix="concurrency-")), args.slots)
    print(
        "\n| server | learners | first token p50 s | first token p95 s | turn p95 s | turns/s | errors "
        "| threads with others' turns |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for n in counts:
        result = turns(base, keys, n, round_id=str(n))
        rows.append({"part": "server", "sessions": n, **result})
        print(
            f"| /chat/stream | {n} | {result['first_p50']:.2f} | {result['first_p95']:.2f} | "
            f"{result['turn_p95']:.2f} | {result['turns_per_s']:.2f} | {result['errors']} | {result['mixed']} |"
        )
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
