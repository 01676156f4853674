"""The first screen: what the tutor can do (its tools, the personas with their greeting, examples
in English and Chinese) and how to get help (`/help`). Shown in the empty chat, so a new learner
sees it before typing anything."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmtutor.agents.tutor import Tutor

EXAMPLES = [
    "What is LoRA and why does it save memory?",
    "How much memory does Llama 3 8B need for QLoRA fine-tuning?",
    'Compare greedy, beam search and nucleus sampling on "The key idea of attention is"',
    "Fine-tune the model on the course dataset for 20 steps",
    "Quiz me on quantization",
    "7B 模型用 fp16 推理需要多少显存？",
    "什么是 RAG？",
    "给我出一道关于量化的题",
]

# What each group of tools does, for people (the registry's descriptions are for the router).
_LABS = (
    ("estimate_memory", "memory a model needs to run or train"),
    ("compare_decoding", "greedy vs beam vs sampling, side by side"),
    ("finetune_model", "SFT / DPO / ORPO with LoRA or QLoRA on your data or the course's"),
    ("quantize_model", "GGUF / 4-bit exports"),
    ("merge_models", "SLERP, TIES, DARE merges"),
    ("evaluate_model", "perplexity and the course quiz, as an eval card"),
)
_LEARNING = (
    ("search_course", "answers from the course notes, with sources"),
    ("quiz", "quizzes, graded"),
    ("learner_progress", "your mastery per module"),
    ("study_plan", "a study plan for your goal"),
    ("next_step", "what to study next"),
    ("review_cards", "spaced-repetition reviews"),
)


def _tools_line(tutor: Tutor, entries: tuple[tuple[str, str], ...]) -> str:
    return " · ".join(f"**{name}** — {what}" for name, what in entries if name in tutor.registry)


def welcome_markdown(tutor: Tutor) -> str:
    """The empty chat's text (the Chatbot's placeholder)."""
    personas = "\n".join(
        f"- **{p.title}** (`{p.name}`) — {p.description} _“{p.greeting}”_"
        for p in sorted(tutor.personas.values(), key=lambda p: (p.name != tutor.settings.persona, p.name))
    )
    learning = _tools_line(tutor, _LEARNING)
    labs = _tools_line(tutor, _LABS)
    lines = [
        "## 👋 Welcome to llmtutor · 欢迎",
        "Your tutor for the **LLM Course**: ask a question in English or 中文, or ask it to **run a lab**. "
        "Labs that take minutes (fine-tuning, merging, …) show their plan first and run only once you "
        "approve; follow them in the **Jobs** tab.",
    ]
    if learning:
        lines += ["", f"**Learn:** {learning}"]
    if labs:
        lines += ["", f"**Labs:** {labs}"]
    lines += [
        "",
        "**Personas** (pick one above the chat):",
        personas,
        "",
        "Type **/help** for every command · 输入 **/help** 查看全部命令。 Try an example below.",
    ]
    return "\n".join(lines)
