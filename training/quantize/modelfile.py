"""An Ollama `Modelfile` next to an exported GGUF: `ollama create NAME -f Modelfile` then
`ollama run NAME`.

Ollama does not run Jinja chat templates; it needs a Go template and explicit stop tokens, or
the model talks past its turn. The template is derived from the model's own chat template by
rendering it: ChatML (`<|im_start|>`, SmolLM2/Qwen) and Llama 3 headers are recognised; other
templates get a plain fallback and a comment saying so. A default system prompt baked into the
Jinja template (SmolLM2 has one) is carried over as SYSTEM.
"""

from __future__ import annotations

import re
from typing import Any

_CHATML = '''TEMPLATE """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""'''
_LLAMA3 = '''TEMPLATE """{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>{{ end }}{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>

"""'''


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    try:
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    except Exception:  # noqa: BLE001 - a template that cannot render simply gets the fallback
        return ""


def default_system_prompt(tokenizer: Any) -> str | None:
    text = _render(tokenizer, [{"role": "user", "content": "PING"}])
    match = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", text, re.S) or re.search(
        r"<\|start_header_id\|>system<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", text, re.S
    )
    return match.group(1).strip() if match else None


def modelfile(gguf_name: str, tokenizer: Any, temperature: float = 0.2, num_ctx: int = 2048) -> str:
    rendered = _render(tokenizer, [{"role": "user", "content": "PING"}])
    lines = [
        "# Ollama Modelfile written by llmtutor: ollama create NAME -f Modelfile && ollama run NAME",
        f"FROM ./{gguf_name}",
        "",
    ]
    if "<|im_start|>" in rendered:
        lines += [_CHATML, 'PARAMETER stop "<|im_end|>"', 'PARAMETER stop "<|im_start|>"']
    elif "<|start_header_id|>" in rendered:
        lines += [_LLAMA3, 'PARAMETER stop "<|eot_id|>"', 'PARAMETER stop "<|start_header_id|>"']
    else:
        lines += [
            "# The chat template is not ChatML or Llama 3: Ollama falls back to the template",
            "# stored in the GGUF (tokenizer.chat_template); check the answers stop correctly.",
        ]
        if tokenizer.eos_token:
            lines.append(f'PARAMETER stop "{tokenizer.eos_token}"')
    lines += [f"PARAMETER temperature {temperature}", f"PARAMETER num_ctx {num_ctx}"]
    if system := default_system_prompt(tokenizer):
        lines += ["", f'SYSTEM """{system}"""']
    return "\n".join(lines) + "\n"
