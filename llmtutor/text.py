"""Text helpers shared by every layer: Chinese characters, and which language a text is in.

One detector for the whole project, so the answer's language and retrieval's view of the
question never disagree.
"""

from __future__ import annotations

import re

# CJK unified ideographs, extension A and the compatibility block: the characters of Chinese text.
CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK = re.compile(f"[{CJK_CHARS}]")


def has_cjk(text: str) -> bool:
    return CJK.search(text) is not None


def cjk_ratio(text: str) -> float:
    """Share of Chinese characters among letters and CJK characters."""
    cjk = len(CJK.findall(text))
    latin = sum(1 for c in text if c.isascii() and c.isalpha())
    return cjk / (cjk + latin / 4) if cjk or latin else 0.0  # ~4 letters per English word


def detect_language(text: str) -> str:
    """'zh' when Chinese carries at least 30% of the text, else 'en'.

    Chinese questions are full of English terms (LoRA, GGUF Q4_K_M), so letters are weighed
    as words (~4 letters each) against characters: "GGUF Q4_K_M 量化" is Chinese.
    """
    return "zh" if cjk_ratio(text) >= 0.3 else "en"


# ----- text from documents and tools is data ---------------------------------------------
# Chat-template control tokens (ChatML, Llama 2/3, Mistral, Gemma, Phi): inside a passage they
# would end the model's turn or open a fake one, and shown to a learner they are noise.
CHAT_TOKENS = re.compile(
    r"<\|(?:im_start|im_end|endoftext|eot_id|start_header_id|end_header_id|begin_of_text|"
    r"end_of_text|system|user|assistant|end|im_sep|fim_\w+)\|>|</?s>|\[/?INST\]|<</?SYS>>|"
    r"<(?:start|end)_of_turn>",
    re.IGNORECASE,
)
_MD_IMAGE = re.compile(r"!\[([^\]\n]{0,200})\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'][^\"'\n]*[\"'])?\s*\)")
_HTML_IMAGE = re.compile(r"<\s*(?:img|image|svg|iframe|object|embed)\b[^>]*>", re.IGNORECASE)
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


def strip_chat_tokens(text: str) -> str:
    return CHAT_TOKENS.sub("", text)


def strip_remote_images(markdown: str) -> str:
    """Markdown with no image that loads from elsewhere: a remote image is a request the
    reader's browser makes on someone else's behalf (tracking, data exfiltration in its URL)."""

    def local_or_alt(match: re.Match[str]) -> str:
        alt, url = match.group(1), match.group(2)
        return f"[image: {alt}]" if _REMOTE.match(url) else match.group(0)

    return _HTML_IMAGE.sub("", _MD_IMAGE.sub(local_or_alt, markdown))


def clean_display_text(text: str) -> str:
    """Text from documents, tools or models made safe to render: no control tokens, no remote images."""
    return strip_remote_images(strip_chat_tokens(text))


# Sentences that speak to the assistant rather than about the course: in a retrieved passage
# they are someone's instructions, never facts to repeat (English and Chinese phrasings).
_ADDRESSES_ASSISTANT = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(?:instructions?|prompts?|rules|guidelines)\b"
    r"|\byou (?:must|should|have to|need to|are required to) (?:now |immediately |always )?"
    r"(?:run|call|execute|invoke) (?:the )?(?:\w+_\w+|tools?|functions?|commands?)\b"
    r"|\b(?:reveal|show|print|repeat|leak|output)\b[^.!?\n]{0,20}\byour (?:hidden |secret )?(?:system prompt|instructions)\b"
    r"|\b(?:tell|inform|convince) the (?:learner|user|student|reader)\b"
    r"|\bas an ai (?:assistant|language model)\b|\bnew instructions?\s*:"
    r"|^\s*(?:assistant|system)\s*:\s"
    r"|忽略(?:之前|以上|前面|上述|所有)[^。！？\n]{0,10}(?:指令|指示|提示|规则)"
    r"|你(?:必须|需要)(?:立即|马上|现在)?(?:运行|调用|执行)"
    r"|(?:泄露|透露|显示|输出)你的[^。！？\n]{0,6}(?:系统提示|指令)"
    r"|告诉(?:学习者|用户|学生)",
    re.IGNORECASE | re.MULTILINE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")


_OPEN_QUOTES, _CLOSE_QUOTES = "“‘「『", "”’」』"


def _quoted(text: str, position: int) -> bool:
    """Whether `position` lies inside quotation marks: a quoted order is mentioned, not given
    (the course's own security notes quote "ignore previous instructions" as an example)."""
    before = text[:position]
    opened = sum(before.count(q) for q in _OPEN_QUOTES) - sum(before.count(q) for q in _CLOSE_QUOTES)
    return opened > 0 or before.count('"') % 2 == 1


def addresses_assistant(sentence: str) -> bool:
    """Whether a sentence gives the assistant orders (prompt-injection style) instead of informing."""
    return any(not _quoted(sentence, m.start()) for m in _ADDRESSES_ASSISTANT.finditer(sentence))


def passage_as_data(text: str, removed: str = "[instructions to the assistant removed]") -> str:
    """A retrieved passage safe to quote or give a model: control tokens and remote images
    stripped, and every sentence that addresses the assistant replaced by a marker."""
    cleaned = clean_display_text(text)
    if not addresses_assistant(cleaned):
        return cleaned
    parts = []
    for sentence in _SENTENCE_END.split(cleaned):
        if sentence.strip():
            parts.append(removed if addresses_assistant(sentence) else sentence.strip())
    return " ".join(dict.fromkeys(parts)) if parts.count(removed) > 1 else " ".join(parts)
