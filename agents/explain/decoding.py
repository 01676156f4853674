"""compare_decoding: which strategy scored best and worst, repetition, and what temperature did.

Figures are fields of `DecodingComparison.results` (training/decoding.py): log-likelihood with
the table's two decimals, perplexity with two; the temperature is read from the row's own
settings string ("T=0.7, no truncation"). A repeated phrase is quoted from the generated text.
"""

from __future__ import annotations

import re
from typing import Any

from llmtutor.agents.explain.wording import fixed, number, sentences

NAMES = {
    "en": {
        "greedy": "Greedy decoding",
        "beam": "Beam search",
        "top_k": "Top-k sampling",
        "top_p": "Top-p (nucleus) sampling",
        "temperature": "Temperature sampling",
    },
    "zh": {
        "greedy": "贪心解码",
        "beam": "束搜索",
        "top_k": "top-k 采样",
        "top_p": "top-p（核）采样",
        "temperature": "温度采样",
    },
}
SAMPLING = ("top_k", "top_p", "temperature")
_T = re.compile(r"\bT=(\d+(?:\.\d+)?)")
_WORDS = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def explain_decoding(output: dict[str, Any], args: dict[str, Any], language: str) -> str:
    rows = [
        r
        for r in output.get("results") or []
        if isinstance(r, dict)
        and number(r.get("log_likelihood")) is not None
        and number(r.get("perplexity")) is not None
    ]
    if not rows:
        return ""
    zh = language == "zh"
    names = NAMES[language]

    def name(row: dict[str, Any], lower: bool = False) -> str:
        text = names.get(row["strategy"], row["strategy"])
        return text[0].lower() + text[1:] if lower and not zh else text

    def scores(row: dict[str, Any]) -> str:
        ll, ppl = fixed(row["log_likelihood"], 2), fixed(row["perplexity"], 2)
        return f"对数似然 {ll}，困惑度 {ppl}" if zh else f"log-likelihood {ll}, perplexity {ppl}"

    said: list[str] = []
    if len(rows) == 1:
        row = rows[0]
        tokens = row.get("num_tokens")
        said.append(
            f"{name(row)}生成了 {tokens} 个 token（{scores(row)}）。"
            if zh
            else f"{name(row)} generated {tokens} tokens ({scores(row)})."
        )
    else:
        best_ll = max(rows, key=lambda r: r["log_likelihood"])
        best_ppl = min(rows, key=lambda r: r["perplexity"])
        worst = min(rows, key=lambda r: r["log_likelihood"])
        ll, ppl = fixed(best_ll["log_likelihood"], 2), fixed(best_ppl["perplexity"], 2)
        if best_ll is best_ppl:
            said.append(
                f"{name(best_ll)}的对数似然最高（{ll}），困惑度最低（{ppl}）。"
                if zh
                else f"{name(best_ll)} had the highest log-likelihood ({ll}) and the lowest perplexity ({ppl})."
            )
        else:
            said.append(
                f"{name(best_ll)}的对数似然最高（{ll}），而{name(best_ppl)}的困惑度最低（{ppl}）；"
                "长度不同时，困惑度（按 token 平均）更公平。"
                if zh
                else f"{name(best_ll)} had the highest log-likelihood ({ll}), while {name(best_ppl, True)} had the "
                f"lowest perplexity ({ppl}), the fairer measure when the lengths differ."
            )
        if worst is not best_ll and worst is not best_ppl:
            sampled = worst["strategy"] in SAMPLING
            if zh:
                why = "：采样会选到不那么可能的 token。" if sampled else "。"
                ll, ppl = fixed(worst["log_likelihood"], 2), fixed(worst["perplexity"], 2)
                said.append(f"{name(worst)}的对数似然最低（{ll}，困惑度 {ppl}）{why}")
            else:
                why = ": sampling draws less likely tokens." if sampled else "."
                said.append(f"{name(worst)} scored lowest ({scores(worst)}){why}")
    said.append(_repetition(rows, name, language))
    said.append(_temperature(rows, name, language))
    texts = [str(r.get("text", "")) for r in rows if r["strategy"] in SAMPLING]
    if len(texts) > 1 and len(set(texts)) == 1:
        said.append(
            "几种采样共用同一个种子，这次生成的文本相同；换个种子或调高温度就能看到差别。"
            if zh
            else "The sampling rows share one seed and wrote the same text here; change the seed or raise "
            "the temperature to see them differ."
        )
    return sentences(said, language)


def repeated_phrase(text: str, longest: int = 8) -> str:
    """The first run of three or more words (four or more characters, for Chinese) that comes back
    later in the text, extended while the repeat goes on (up to `longest` units)."""
    chinese = any("\u4e00" <= ch <= "\u9fff" for ch in text)
    units = [ch for ch in text if not ch.isspace()] if chinese else _WORDS.findall(text)
    size = 4 if chinese else 3
    first: dict[tuple[str, ...], int] = {}
    for j in range(len(units) - size + 1):
        gram = tuple(units[j : j + size])
        if not all(any(ch.isalnum() for ch in unit) for unit in gram):
            continue  # punctuation ("...", "，。") repeating is not repeated content
        i = first.setdefault(gram, j)
        if i == j:
            continue
        end = size
        while end < longest and i + end < j and j + end < len(units) and units[i + end] == units[j + end]:
            end += 1
        phrase = units[i : i + end]
        while phrase and not any(ch.isalnum() for ch in phrase[-1]):
            phrase.pop()  # no trailing punctuation inside the quote
        return ("" if chinese else " ").join(phrase)
    return ""


def _repetition(rows: list[dict[str, Any]], name: Any, language: str) -> str:
    for row in rows:
        phrase = repeated_phrase(str(row.get("text", "")))
        if not phrase:
            continue
        likely = row["strategy"] in ("greedy", "beam")  # the deterministic strategies loop
        if language == "zh":
            why = "，总选最可能 token 的策略常会这样" if likely else ""
            return f"{name(row)}出现了重复（“{phrase}”反复出现）{why}。"
        why = ", a common failure of always picking the likeliest tokens" if likely else ""
        return f"{name(row)} repeats itself (“{phrase}” comes back){why}."
    return ""


def _temperature(rows: list[dict[str, Any]], name: Any, language: str) -> str:
    row = next((r for r in rows if r["strategy"] == "temperature"), None)
    found = _T.search(str(row.get("settings", ""))) if row else None
    if row is None or found is None:
        return ""
    value = float(found.group(1))
    ppl = fixed(row["perplexity"], 2)
    greedy = next((r for r in rows if r["strategy"] == "greedy"), None)
    zh = language == "zh"
    against = ""
    if greedy is not None:
        g = fixed(greedy["perplexity"], 2)
        against = f"（贪心解码为 {g}）" if zh else f" (greedy decoding: {g})"
    if zh:
        effect = (
            "温度高于一会把分布拉平，不太可能的 token 更常被选中"
            if value > 1
            else "温度低于一会让分布更尖，更集中在最可能的 token 上"
            if value < 1
            else "温度为一时按模型原本的分布采样"
        )
        return f"温度采样用 T={found.group(1)}，困惑度 {ppl}{against}：{effect}。"
    effect = (
        "a temperature above one flattens the distribution, so less likely tokens are drawn more often"
        if value > 1
        else "a temperature below one sharpens the distribution towards the likeliest tokens"
        if value < 1
        else "at temperature one the model's own distribution is sampled unchanged"
    )
    return f"Temperature sampling at T={found.group(1)} had perplexity {ppl}{against}: {effect}."
