"""What the learner reads, on the embedded model: the tutor dev set and Socratic first replies.

    python benchmarks/tutor_voice.py [--tutor ../shared/dev/tutor_dev.jsonl] [--socratic ../shared/dev/socratic_dev.jsonl]

Tutor dev items {"q", "lang", "expect": "cited"|"offcourse", "any": [terms]}: a course question
passes when the answer is cited, in the question's language and contains one of `any`; an
off-course question passes when the answer has no citations and no Sources list. Socratic items
{"q", "lang", "reveal": [phrases]}: socratic_coach's first reply passes when it asks a question,
is in the learner's language and contains none of `reveal`. Targets: tutor ≥ 95%, Socratic 100%.
Each item runs in a fresh thread through `Tutor.ask` (real routing, real retrieval, the real
SmolLM2 wherever a turn calls a model); the table lists every failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
DEV = Path(__file__).resolve().parents[1].parent / "shared" / "dev"


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tutor", type=Path, default=DEV / "tutor_dev.jsonl")
    parser.add_argument("--socratic", type=Path, default=DEV / "socratic_dev.jsonl")
    parser.add_argument("--workspace", type=Path, default=None)
    args = parser.parse_args()

    from llmtutor import Tutor
    from llmtutor.settings import Settings
    from llmtutor.text import detect_language

    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="tutor-voice-"))
    tutor = Tutor(Settings(workspace=workspace, max_tokens=96))
    rows, failures, seconds = {"tutor": [0, 0], "socratic": [0, 0]}, [], []
    for number, item in enumerate(_load(args.tutor)):
        started = time.perf_counter()
        reply = tutor.ask(item["q"], thread_id=f"tv-{number}")
        seconds.append(time.perf_counter() - started)
        text = reply.answer
        if item.get("expect") == "offcourse":
            ok = not reply.citations and "Sources" not in text and "来源" not in text
        else:
            ok = (
                bool(reply.citations)
                and detect_language(text.split("\n\n**")[0]) == item["lang"]
                and any(term.lower() in text.lower() for term in item.get("any") or [])
            )
        rows["tutor"][0] += ok
        rows["tutor"][1] += 1
        if not ok:
            failures.append(("tutor", item["q"], text[:160].replace("\n", " ")))
    for number, item in enumerate(_load(args.socratic)):
        reply = tutor.ask(item["q"], thread_id=f"sv-{number}", persona="socratic_coach")
        text = reply.answer
        ok = (
            text.rstrip().endswith(("?", "？"))
            and detect_language(text) == item["lang"]
            and not any(p.lower() in text.lower() for p in item.get("reveal") or [])
        )
        rows["socratic"][0] += ok
        rows["socratic"][1] += 1
        if not ok:
            failures.append(("socratic", item["q"], text[:160].replace("\n", " ")))
    print("| set | passed | total | rate |\n|---|---:|---:|---:|")
    for name, (passed, total) in rows.items():
        print(f"| {name} | {passed} | {total} | {passed / max(total, 1):.0%} |")
    seconds.sort()
    if seconds:
        print(
            f"\ntutor answers: p50 {seconds[len(seconds) // 2]:.1f} s, max {seconds[-1]:.1f} s (2 CPU cores)"
        )
    for kind, question, text in failures:
        print(f"- FAIL {kind}: {question!r} → {text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
