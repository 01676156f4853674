"""Tool: the decoding-strategies lab (greedy, beam, top-k, top-p, temperature)
on a real model. The work is in `llmtutor.training.decoding`; this module adds
the tool spec, routing examples and rule-based argument extraction.
"""

from __future__ import annotations

import re
from typing import Any

from llmtutor.tools.lab_jobs import check_model_ref
from llmtutor.tools.registry import ToolContext, ToolSpec
from llmtutor.training.decoding import ALL_STRATEGIES, DecodingComparison, DecodingConfig, run

# ----- argument extraction (English + Simplified Chinese) ----------------------
# Quoted prompt: the first quoted span that is not just a strategy name. Single
# quotes must open after a space/punctuation so "What's … don't" is not a quote.
_QUOTED = re.compile(
    r"“(?P<a>[^”]+)”|「(?P<b>[^」]+)」|『(?P<c>[^』]+)』|‘(?P<d>[^’]+)’|\"(?P<e>[^\"]+)\""
    r"|(?:^|(?<=[\s(:：,，]))'(?P<f>[^']+)'(?=$|[\s,.;:!?)，。？！；])"
)
_PROMPT_AFTER = re.compile(r"(?:prompt|提示词|提示语|提示)\s*[:：]\s*(?P<p>.+)$", re.IGNORECASE | re.DOTALL)

# Strategy names; ASCII words use letter lookarounds because \b fails next to CJK.
_STRATEGIES: dict[str, str] = {
    "greedy": r"greedy|贪心|贪婪|argmax",
    "beam": r"beam|束搜索|集束|波束|\d+\s*个束",
    "top_k": r"(?<![a-z])top[\s_-]?k(?![a-z])|前\s*k\s*个",
    "top_p": r"(?<![a-z])top[\s_-]?p(?![a-z])|nucleus|核采样",
    "temperature": r"temperature|(?<![a-z])temp(?![a-z])|温度",
}
_ALL = re.compile(r"\ball\b.{0,12}(?:strateg|method|five)|所有|全部|每种|各种|五种")
_SAMPLING_FAMILY = re.compile(r"sampling (?:strategies|methods)|sampling methods|采样(?:方法|策略)|几种采样")
_GENERIC_SAMPLING = re.compile(r"sampl|采样|随机")

_SET = r"\s*(?:=|:|：|of|to|at|is|为|是|设为|设置为|设成|调到|调成)?\s*"
_INT = r"(\d+)"
_FLOAT = r"(\d*\.\d+|\d+)"
_NUMBERS: dict[str, list[str]] = {
    "num_beams": [
        rf"(?:num[_\s]?beams|beam\s*(?:width|size|count)|束宽|束的?数量){_SET}{_INT}",
        r"(\d+)\s*(?:beams\b|个束)",
    ],
    "top_k": [rf"(?<![a-z])top[\s_-]?k{_SET}{_INT}", rf"(?<![a-z])k\s*=\s*{_INT}"],
    "top_p": [
        rf"(?:(?<![a-z])top[\s_-]?p|nucleus(?:\s+sampling)?|核采样){_SET}{_FLOAT}",
        rf"(?<![a-z])p\s*=\s*{_FLOAT}",
    ],
    "temperature": [
        rf"(?:temperature|(?<![a-z])temp(?![a-z])|温度)(?:\s*参数)?{_SET}{_FLOAT}",
        rf"(?<![a-z])t\s*=\s*{_FLOAT}",
    ],
    "max_new_tokens": [
        rf"(?:max[_\s]*(?:new[_\s]*)?tokens?|最多|最大长度|长度){_SET}{_INT}",
        r"(\d+)\s*(?:new\s+|more\s+)?tokens?\b",
        r"(\d+)\s*个\s*(?:新\s*)?(?:token|词元|词|字)",
    ],
    "seed": [rf"(?:seed|种子){_SET}{_INT}"],
}


def _find_prompt(text: str) -> tuple[str | None, str]:
    """(prompt, the text without it) — numbers inside a prompt are not settings."""
    strategy_word = re.compile("|".join(_STRATEGIES.values()), re.IGNORECASE)
    for match in _QUOTED.finditer(text):
        quoted = next(g for g in match.groups() if g is not None).strip()
        if quoted and not strategy_word.fullmatch(quoted.lower().replace(" sampling", "")):
            return quoted, text[: match.start()] + " " + text[match.end() :]
    after = _PROMPT_AFTER.search(text)
    if after and after.group("p").strip():
        return after.group("p").strip(), text[: after.start()]
    return None, text


def extract_args(text: str) -> dict[str, Any]:
    """Rule-based arguments from a request. Only what is found is returned.

    Strategies: when the request names any, exactly those run (in the lab's
    order), e.g. "Show beam search output for my prompt" → ["beam"] alone, so
    the learner gets what was asked; naming none, or "all strategies", runs
    all five. "temperature 1.2" next to top-k/top-p only sets their temperature.
    Generic "sampling" maps to pure temperature sampling, "sampling methods" to
    all three sampling strategies.
    """
    args: dict[str, Any] = {}
    prompt, rest = _find_prompt(text)
    if prompt:
        args["prompt"] = prompt
    lowered = rest.lower()

    for field, patterns in _NUMBERS.items():
        for pattern in patterns:
            match = re.search(pattern, lowered)
            if match:
                value = match.group(1)
                args[field] = float(value) if field in ("top_p", "temperature") else int(value)
                break

    named = {name for name, pattern in _STRATEGIES.items() if re.search(pattern, lowered)}
    if "num_beams" in args:
        named.add("beam")
    if "temperature" in named and "temperature" in args and named & {"top_k", "top_p"}:
        named.discard("temperature")  # a setting of the named sampler, not a strategy of its own
    if not named & {"top_k", "top_p", "temperature"}:
        if _SAMPLING_FAMILY.search(lowered):
            named |= {"top_k", "top_p", "temperature"}
        elif _GENERIC_SAMPLING.search(lowered):
            named.add("temperature")
    if named and not _ALL.search(lowered):
        args["strategies"] = [s for s in ALL_STRATEGIES if s in named]
    return args


# ----- the tool ---------------------------------------------------------------
EXAMPLES: tuple[str, ...] = (
    # English
    "Show me greedy vs beam search on 'Once upon a time'",
    "Try a few temperatures on my prompt and show me the outputs",
    "Run the decoding strategies lab",
    'Compare top-k and top-p sampling on "The meaning of life is"',
    "Show me beam search next to greedy decoding with a real model",
    "Generate text with temperature 1.2 and compare it to greedy",
    "Try nucleus sampling with p=0.95 on my prompt",
    "Open the decoding lab",
    "Show me what temperature 0.2 vs 1.5 looks like on the same prompt",
    "用 SmolLM2 试试各种解码策略",
    "Sample from SmolLM2 with top-k 50 and show the token probabilities",
    "Plot per-token probabilities for different decoding methods",
    "Beam search with 8 beams on 'The capital of France is'",
    "Demonstrate greedy decoding repeating itself on a short prompt",
    "Compare the log-likelihood of greedy, beam and sampled outputs",
    "Show how a low versus a high temperature changes generated text",
    "Decode 'In the year 2050' with all five strategies, 40 tokens",
    "Run top-p sampling on an example prompt",
    "Use seed 42 and compare sampling strategies",
    "What does beam search give for 'It was a dark and stormy night'?",
    "Show the perplexity of different generation strategies",
    # 简体中文
    "用 top-p 采样和贪心解码生成同一个提示词",
    "比较贪心搜索和束搜索的输出",
    "帮我用几个不同的温度跑同一个提示词",
    "运行解码策略实验",
    "用核采样生成“从前有座山”的续写",
    "用同一个提示词展示 top-k 和 top-p 采样的输出",
    "束搜索用 5 个束，提示词：人工智能的未来",
    "对比不同解码方法的对数似然",
    "把温度设为 1.5，看看生成的文本有什么变化",
    "画出每种解码策略的逐词概率曲线",
    "用一个提示词演示贪心解码的重复问题",
    "用随机采样和贪心解码分别生成 20 个 token",
    "打开解码实验",
    "top-k 设为 10 生成一段文本",
    "演示不同的文本生成策略",
    "用种子 7 比较几种采样方法",
    "给「今天天气很好」这句话用束搜索续写",
    "用模型跑一下核采样和温度采样",
    "“床前明月光”用 top-p 采样会续写出什么？",
)


def _run(cfg: DecodingConfig, ctx: ToolContext) -> DecodingComparison:
    if cfg.model:
        cfg = cfg.model_copy(update={"model": check_model_ref(cfg.model, ctx)})
    return run(
        cfg,
        models_dir=ctx.models_dir,
        device=ctx.device,
        progress=ctx.report,
        outputs_dir=ctx.outputs_dir,
        cancel=ctx.check_cancelled,
    )


TOOL = ToolSpec(
    name="compare_decoding",
    description=(
        "Decoding-strategies lab on a real model (bundled SmolLM2 by default): generates from one prompt with "
        "greedy, beam search, top-k, top-p (nucleus) and temperature sampling, and compares the texts, "
        "per-token probabilities, log-likelihood and perplexity, with a plot."
    ),
    input_model=DecodingConfig,
    output_model=DecodingComparison,
    func=_run,
    examples=EXAMPLES,
    expensive=False,
    writes=False,  # only a plot under outputs/, like every tool's output
    extract_args=extract_args,
)
