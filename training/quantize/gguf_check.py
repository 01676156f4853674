"""The export doctor: does llama.cpp read the exported GGUF the way transformers reads the model?

Checked through llama.cpp itself (xllamacpp's embedded server, the same engine the tutor chats
with): tokenization of mixed English/Chinese/code/special-token text is identical to the HF
tokenizer's; the chat template and the end-of-turn token survived; a chat prompt gets an answer
that stops on its own (a missing EOS is the classic "the model never stops talking" export
bug); and generation speed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SAMPLES = (
    "Quantization maps float32 weights to 4-bit integers: W ≈ scale · (q − zero).",
    "量化把权重从 16 位压缩到 4 位，模型体积缩小约 70%。",
    "def slerp(t, a, b):\n    return (1 - t) * a + t * b  # 123456789",
)


class GGUFCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokenizer_matches: bool
    chat_template_matches: bool
    eos_ok: bool
    answer: str
    finish_reason: str | None
    tokens_per_s: float | None
    prompt_tokens_per_s: float | None
    problems: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_gguf(path: Path, tokenizer: Any, prompt: str, max_tokens: int = 64) -> GGUFCheck:
    import httpx

    from llmtutor.training.evaluate.llamacpp_ppl import start_server

    server = start_server(path, n_ctx=2048)
    base = server.listening_address.rstrip("/")
    problems: list[str] = []
    try:
        with httpx.Client(timeout=300) as client:
            tok_ok = _tokenizer_matches(client, base, tokenizer, problems)
            props = client.get(base + "/props").json()
            template_ok = (props.get("chat_template") or "") == (tokenizer.chat_template or "")
            if not template_ok:
                problems.append("the chat template in the GGUF differs from the model's tokenizer")
            chat = client.post(
                base + "/v1/chat/completions",
                json={
                    "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": max_tokens,
                    "temperature": 0,
                },
            ).json()
            choice = chat["choices"][0]
            answer = choice["message"].get("content") or ""
            eos_ok = _eos_matches(props, tokenizer, problems)
            speed = (
                client.post(
                    base + "/completion",
                    json={
                        "prompt": prompt,
                        "n_predict": max_tokens,
                        "ignore_eos": True,
                        "temperature": 0,
                        "cache_prompt": False,
                    },
                )
                .json()
                .get("timings", {})
            )
    finally:
        del server
    if not answer.strip():
        problems.append("llama.cpp generated an empty answer")
    return GGUFCheck(
        tokenizer_matches=tok_ok,
        chat_template_matches=template_ok,
        eos_ok=eos_ok,
        answer=answer.strip(),
        finish_reason=choice.get("finish_reason"),
        tokens_per_s=speed.get("predicted_per_second"),
        prompt_tokens_per_s=speed.get("prompt_per_second"),
        problems=problems,
    )


def _tokenizer_matches(client: Any, base: str, tokenizer: Any, problems: list[str]) -> bool:
    texts = list(SAMPLES)
    if tokenizer.chat_template:
        texts.append(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": SAMPLES[0]}], tokenize=False, add_generation_prompt=True
            )
        )
    for text in texts:
        ours = client.post(
            base + "/tokenize", json={"content": text, "add_special": False, "parse_special": True}
        ).json()["tokens"]
        theirs = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if ours != theirs:
            problems.append(
                f"llama.cpp tokenizes {text[:30]!r}… differently from transformers "
                f"({len(ours)} vs {len(theirs)} tokens): the pre-tokenizer type is wrong"
            )
            return False
    return True


def _eos_matches(props: dict[str, Any], tokenizer: Any, problems: list[str]) -> bool:
    eos = props.get("eos_token") or ""
    if tokenizer.eos_token and eos != tokenizer.eos_token:
        problems.append(
            f"EOS is {eos!r} in the GGUF but {tokenizer.eos_token!r} in the tokenizer: answers may not stop"
        )
        return False
    return True
