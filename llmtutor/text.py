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
