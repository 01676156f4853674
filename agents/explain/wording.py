"""Small wording helpers shared by the explanation templates (English and Chinese).

Templates only format values they were given: these helpers never compute new figures.
"""

from __future__ import annotations

from typing import Any


def fixed(value: float, digits: int) -> str:
    """A figure as the tool's own Markdown shows it (same number of decimals)."""
    return f"{value:.{digits}f}"


def listing(items: list[str], language: str) -> str:
    """'a, b and c' / 'a、b 和 c'."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    if language == "zh":
        return spaced("、".join(items[:-1]), "和", items[-1])
    return ", ".join(items[:-1]) + " and " + items[-1]


def spaced(*parts: str) -> str:
    """Chinese text joined with a space only where Latin letters or digits meet Chinese."""
    out = ""
    for part in parts:
        if (
            out
            and part
            and (out[-1].isascii() != part[0].isascii())
            and not (out[-1].isspace() or part[0].isspace())
        ):
            out += " "
        out += part
    return out


def sentences(parts: list[str], language: str) -> str:
    """Sentences joined as the language writes them (Chinese needs no space after 。)."""
    kept = [p.strip() for p in parts if p and p.strip()]
    return ("" if language == "zh" else " ").join(kept)


def number(value: Any) -> float | None:
    """A real number from a tool output field, or None (missing, NaN, text, bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if value != value else float(value)  # NaN != NaN


def article(spoken_number: str) -> str:
    """'a' or 'an' before a number read aloud: an 8, an 11, an 18, an 80; a 16, a 24."""
    digits = spoken_number.split(".")[0]
    return "an" if digits.startswith("8") or digits in ("11", "18") else "a"
