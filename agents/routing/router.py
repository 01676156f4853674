"""Which tool (if any) a learner's message asks for, without an LLM call.

The default chat model (SmolLM2-135M) cannot do tool calling (it calls a tool
for almost anything), so routing is done here, in two steps:

1. Explicit commands: ``/estimate_memory 7B qlora``, ``/compare_decoding "Once
   upon a time"``, ``/tool NAME {json}``. Always win; unknown commands raise
   `ToolNotFoundError` listing the commands that exist.
2. `ToolClassifier`, trained at start-up on the registered tools' `examples`
   plus "no tool" sentences (`routing.examples`). Design, chosen by measuring
   (numbers in benchmarks/routing.py's docstring; 97% on held-out phrasings
   vs 91% for the embedding alone, ~15 ms a message on two CPU cores):

   * Features: the normalised MiniLM sentence embedding concatenated with a
     character 1–3-gram TF-IDF vector (``analyzer="char_wb"``). MiniLM carries
     English paraphrase; it is English-centric and embeds Chinese poorly, and
     the character n-grams carry Chinese (显存, 解码) and technical tokens
     (QLoRA, 7B, top-p) in both languages.
   * Model: multinomial logistic regression, ``class_weight="balanced"``:
     trains in milliseconds, gives probabilities for a threshold, and
     measured better than nearest-neighbour and single-view models.
   * "No tool" is several classes (small talk, conceptual questions while
     the course search is not registered, and one class per
     planned-but-unregistered tool); at prediction time all of them mean None. Only registered tools can ever be predicted.
   * A message goes to a tool only when that tool's probability reaches
     `threshold`; otherwise None, so unsure guesses do not run tools.
3. Explain vs do (`explain_or_do`, when the course search is registered): a
   conceptual or how-to question that the classifier sent to a model lab goes
   to the course search, unless it hands over something to act on (a quoted
   prompt, a file, a setting, "run it", "my model"); conversely a message
   that does hand over a prompt, a file or a setting goes to the most likely
   model lab. The classifier's features are mostly topical, so the question
   form is settled by this small bilingual rule.

Arguments then come from the tool's rule-based `extract_args(text)`, checked
by the tool's input model; fields that fail validation are dropped so the
model's defaults apply (routing never fails on a badly extracted argument).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmtutor.agents.routing.examples import CONCEPTS_TOOL, NO_TOOL_PREFIX, training_classes
from llmtutor.errors import ConfigError, ToolInputError, ToolNotFoundError
from llmtutor.tools.registry import ToolRegistry, ToolSpec

if TYPE_CHECKING:
    from llmtutor.knowledge.rag.embeddings import Embedder

RouteMethod = Literal["command", "classifier", "native", "continuation", "none"]
NONE_LABEL = "none"  # the key of the aggregated "no tool" probability in `scores`


class RouteDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str | None
    args: dict[str, Any] = Field(default_factory=dict)
    confidence: float = Field(ge=0.0, le=1.0)
    method: RouteMethod
    # Probability per registered tool plus "none" (classifier decisions only).
    scores: dict[str, float] | None = None


# ----- argument extraction -----------------------------------------------------
def extract_tool_args(tool: ToolSpec, text: str) -> dict[str, Any]:
    """The tool's rule-based arguments, validated; failing fields fall back to defaults.

    Returns only non-default fields (like native routing does), JSON-ready.
    """
    try:
        raw = dict(tool.extract_args(text)) if tool.extract_args else {}
    except Exception:  # a rule bug must not break routing: defaults still run the tool
        raw = {}
    return lenient_args(tool, raw)


def lenient_args(tool: ToolSpec, args: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `args` that validate against the tool's input model.

    Returned as given (e.g. ``params="3B"``, not the model's normalised
    ``3e9``): plans read like the request, and running the tool validates
    them again anyway. Missing fields take the model's defaults at run time.
    """
    args = dict(args)
    # Each pass drops the top-level fields named in the errors; a field left
    # out can expose another error (model validators), hence a few passes.
    for _ in range(3):
        try:
            tool.input_model.model_validate(args)
            return args
        except ValidationError as exc:
            bad = {err["loc"][0] for err in exc.errors() if err["loc"]} & args.keys()
            if not bad:
                break  # a model-level rule (no field named) or a required field not given
            args = {key: value for key, value in args.items() if key not in bad}
    # A model-level rule rejects a combination: keep the longest valid prefix
    # (extractors add the most important fields first, e.g. the model).
    keys = list(args)
    for n in range(len(keys) - 1, 0, -1):
        prefix = {key: args[key] for key in keys[:n]}
        try:
            tool.input_model.model_validate(prefix)
            return prefix
        except ValidationError:
            continue
    # Still invalid: hand over nothing; running the tool reports what is missing.
    return {}


# ----- features and classifier -------------------------------------------------
class _Featurizer:
    """[embedding_weight · MiniLM vector | char_weight · char n-gram TF-IDF]."""

    def __init__(self, char_weight: float, embedding_weight: float = 1.0):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.char_weight = char_weight
        self.embedding_weight = embedding_weight
        # sublinear_tf: a repeated character (的, e) should not dominate a short message.
        self.vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, lowercase=True
        )

    def fit(self, texts: Sequence[str]) -> _Featurizer:
        self.vectorizer.fit(texts)
        return self

    def transform(self, texts: Sequence[str], embeddings: np.ndarray):
        from scipy import sparse

        parts = []
        if self.embedding_weight > 0:
            parts.append(sparse.csr_matrix(embeddings * self.embedding_weight))
        if self.char_weight > 0:
            parts.append(self.vectorizer.transform(texts) * self.char_weight)
        return sparse.hstack(parts, format="csr")


# Training embeddings per (model, texts): every Router over the same registry
# and model (tests, CLI batch + chat) reuses them instead of re-embedding ~400
# sentences (about a second on two CPU cores).
_TRAIN_CACHE: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
_TRAIN_LOCK = threading.Lock()


_TRAIN_CACHE_SIZE = 8  # distinct (model, registry) pairs; persona subsets add a few


def _embed_training(embedder: Embedder, texts: tuple[str, ...]) -> np.ndarray:
    key = (embedder.key, texts)
    with _TRAIN_LOCK:
        cached = _TRAIN_CACHE.get(key)
    if cached is None:
        cached = embedder.embed(list(texts))
        with _TRAIN_LOCK:
            while len(_TRAIN_CACHE) >= _TRAIN_CACHE_SIZE:
                _TRAIN_CACHE.pop(next(iter(_TRAIN_CACHE)))  # oldest first (dicts keep insertion order)
            _TRAIN_CACHE[key] = cached
    return cached


class ToolClassifier:
    """Tool-or-none classifier over registered tool examples and "no tool" sentences.

    Defaults measured (5-fold CV on the training sentences and two held-out
    sets, see benchmarks/routing.py): both views are unit vectors, but the
    TF-IDF mass is spread over thousands of sparse n-grams, so it needs a
    weight of 2-3 to count as much as the dense embedding (1.0 under-uses it,
    4.0 starts to lose English paraphrases). C=100 (weak regularisation)
    because the training sentences are few and clean; C=10 measured 2-3
    points worse.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        threshold: float = 0.5,
        char_weight: float = 2.5,
        embedding_weight: float = 1.0,
        C: float = 100.0,
    ):
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"threshold must be in (0, 1], got {threshold}", "use e.g. 0.5")
        self.embedder = embedder
        self.threshold = threshold
        self.char_weight = char_weight
        self.embedding_weight = embedding_weight
        self.C = C
        self.labels: list[str] = []
        self.tool_names: list[str] = []
        self._featurizer: _Featurizer | None = None
        self._model: Any = None

    def fit(self, registry: ToolRegistry) -> ToolClassifier:
        # Tools' examples, the conceptual questions (the course search's when it
        # is registered, else "no tool") and the other "no tool" classes.
        classes = training_classes({tool.name: tuple(tool.examples) for tool in registry})
        return self.fit_classes(
            classes, tool_names=[name for name in classes if not name.startswith(NO_TOOL_PREFIX)]
        )

    def fit_classes(self, classes: Mapping[str, Sequence[str]], tool_names: Sequence[str]) -> ToolClassifier:
        """Train on label → sentences; labels not in `tool_names` mean "no tool"."""
        from sklearn.linear_model import LogisticRegression

        texts: list[str] = []
        labels: list[str] = []
        for label, examples in classes.items():
            texts.extend(examples)
            labels.extend([label] * len(examples))
        if len(set(labels)) < 2:
            raise ConfigError("the router needs at least two classes to train", "give the tools `examples`")
        self._featurizer = _Featurizer(self.char_weight, self.embedding_weight).fit(texts)
        features = self._featurizer.transform(texts, _embed_training(self.embedder, tuple(texts)))
        self._model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)
        self._model.fit(features, labels)
        self.labels = [str(label) for label in self._model.classes_]
        self.tool_names = [name for name in tool_names if name in self.labels]
        return self

    def probabilities(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """(len(texts), len(self.labels)) class probabilities."""
        if self._model is None or self._featurizer is None:
            raise ConfigError("ToolClassifier used before fit()", "call fit(registry) first")
        if embeddings is None:
            embeddings = self.embedder.embed(list(texts))
        return self._model.predict_proba(self._featurizer.transform(list(texts), embeddings))

    def scores(self, probs: np.ndarray) -> list[dict[str, float]]:
        """Per message: probability per registered tool and "none" (all other classes summed)."""
        tool_index = {name: self.labels.index(name) for name in self.tool_names}
        out = []
        for row in probs:
            score = {name: float(row[i]) for name, i in tool_index.items()}
            score[NONE_LABEL] = max(0.0, 1.0 - sum(score.values()))
            out.append(score)
        return out

    def decide(self, score: Mapping[str, float]) -> tuple[str | None, float]:
        """(tool or None, confidence of that decision)."""
        tools = {name: p for name, p in score.items() if name != NONE_LABEL}
        if tools:
            best = max(tools, key=tools.__getitem__)
            # Compared with the tool's own probability, not with the summed
            # "none" mass: with threshold >= 0.5 a chosen tool is also the
            # single most likely class, and a message split between two tools
            # (neither sure) stays unrouted instead of running the wrong one.
            if tools[best] >= self.threshold:
                return best, tools[best]
        return None, score.get(NONE_LABEL, 1.0)


# ----- explain vs do --------------------------------------------------------------
# A conceptual or how-to question ("What is NF4?", "How do I evaluate my fine-tuned
# model?", "为什么贪心解码会重复？") is for the course search even when it
# names a lab; a lab runs only when the learner asks for an action on a model, a
# dataset or a prompt. The classifier learns most of this from its examples
# (`LAB_CONCEPT_QUESTIONS`), but both feature views are mostly topical: the
# char_wb n-grams never span two words ("how do I" is three unrelated words), and
# MiniLM puts "How do I evaluate X?" next to "Evaluate X". So the question form is
# settled here: when the classifier picks a model lab (or is split between tools,
# with little "no tool" mass) and the message opens as such a question with nothing
# to act on in it, the course search gets it; conversely, when it picked the course
# search (or nothing) but the message hands over a prompt, a file or a setting, the
# most likely model lab gets it ("What does beam search give for 'Once upon a time'?").
# Labs about the learner's own state (job_status, quiz, query_course_db) are left
# alone: "What is my average score?" is not a conceptual question.
_DO_FLOOR = 0.15  # a model lab the classifier hardly considered is not run on a payload alone
MODEL_LABS = frozenset(
    {
        "estimate_memory",
        "compare_decoding",
        "finetune_model",
        "evaluate_model",
        "merge_models",
        "quantize_model",
    }
)
_LEAD_IN = r"^\W*(?:(?:so|ok|okay|hey|hi|and|but|also|then|please)\b[,\s]*)*(?:(?:can|could|would) you\s+(?:please\s+)?)?"
# How-to and advice questions: for the course even about "my model" (advice, not a request).
_HOW_TO = re.compile(
    _LEAD_IN + r"(?:how (?:do|can|could|should|would|might) (?:i|we|you|one)\b|how to\b|should (?:i|we)\b"
    r"|what(?:'s|’s| is| are) (?:the|a) (?:best|right|recommended|good|proper) ways?\b"
    r"|where (?:do|should|can) (?:i|we) (?:start|begin)\b|what should (?:i|we)\b"
    r"|which [\w-]+(?: [\w-]+)? should (?:i|we)\b|is it (?:better|worth|a good idea)\b)"
    r"|怎么(?!样)|怎样|如何|从哪|应该|该选|该用|要不要|该不该",
    re.IGNORECASE,
)
# What / why / explain questions: for the course unless they are about the learner's own model or data.
_CONCEPTUAL = re.compile(
    _LEAD_IN + r"(?:what(?:'s|’s| is| are| was| were| does| do| did| makes| happens| causes)\b"
    r"|how (?:does|do|did|is|are|can|could|would|will)\b|why\b|when (?:should|do|does|is|would|to)\b"
    r"|explain\b|describe\b|tell me (?:about|how|why|what)\b|(?:what(?:'s| is) )?the difference between\b"
    r"|i (?:don't|do not) (?:understand|get)\b)"
    r"|什么是|是什么|为什么|为何|什么意思|原理|区别|有什么不同|有何不同|有什么用|什么作用|的作用|有什么影响|的影响"
    r"|解释|讲讲|讲一下|说说|聊聊|介绍|干什么的|干嘛|做什么用|不明白|不懂|不理解",
    re.IGNORECASE,
)
# Something to act on, anywhere in the message: a quoted prompt (a phrase, not a
# quoted term such as 'temperature'), a file or a path, a setting ("t=0.5", "3 epochs").
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|「([^」]+)」|『([^』]+)』|(?<!\w)'([^']+)'(?!\w)")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_PAYLOAD = re.compile(
    r"\b[\w.-]+\.(?:jsonl|json|csv|tsv|txt|parquet|gguf|safetensors|ya?ml)\b|(?:^|\s)(?:\.{1,2}|~)?/\w"
    r"|\b[a-z_]+\s*=\s*[\d.]|\d+\s*(?:epochs?|steps?|tokens?|beams?)\b|\d+\s*(?:个\s*)?(?:epoch|步|token|束)",
    re.IGNORECASE,
)
# An order to run something: "… ? Run it", "try it on", "帮我跑一下", "演示一下".
_RUN = re.compile(
    r"[?？.。!！;；]\s*(?:please\s+)?(?:run|try|show|demonstrate|generate|compute|calculate|measure|quantize"
    r"|merge|evaluate|benchmark|train|fine-tune|compare|plot)\b|\b(?:try it|run it|do it)\b"
    r"|演示|试一下|试试|跑一下|跑一遍|运行一下|算一下|测一下",
    re.IGNORECASE,
)
# A request addressed to the tutor, which may ask for a lab ("for me", "帮我", "给我", but
# not "给我讲讲"/"帮我解释", which ask for an explanation).
_ORDER = re.compile(r"\bfor me\b|\bon my prompt\b|帮我(?!讲|解释|介绍|说|理解)|给我(?!讲|解释|介绍|说)|替我")


def _quotes_a_prompt(text: str) -> bool:
    for match in _QUOTED.finditer(text):
        quoted = next(group for group in match.groups() if group is not None)
        if len(quoted.split()) >= 2 or len(_CJK.findall(quoted)) >= 4:
            return True
    return False


def gives_work(text: str) -> bool:
    """Whether the message hands over something to run a lab on, or orders a run."""
    return _quotes_a_prompt(text) or _PAYLOAD.search(text) is not None or _RUN.search(text) is not None


# "… of my model", "我的数据": a what/why question about the learner's own artefact asks for a result.
_MINE = re.compile(
    r"\b(?:my|our|this|these)\s+(?:[\w.-]+\s+){0,2}?(?:models?|checkpoints?|fine-?tunes?|adapters?|datasets?"
    r"|data|prompts?|exports?|merges?|weights|runs?)\b|我的|这个(?:模型|检查点|数据)|这份数据",
    re.IGNORECASE,
)
# "How much memory does X need" is an estimate_memory action: sizes, GPUs, amounts.
_MEMORY_AMOUNT = re.compile(
    r"(?<![\d.])\d+(?:\.\d+)?\s*(?:b|m|k|billion|million)(?![a-z])|\d+\s*(?:gb|gib|g)(?![a-z])"
    r"|\b(?:t4|a10g?|a100|h100|h200|v100|l4|rtx|[1-9]\d{3})\b|亿|how (?:much|many)\b|多少|多大|够不够|够吗"
    r"|能不能|能否|\bfit\b|\benough\b",
    re.IGNORECASE,
)


def asks_to_explain(text: str, tool: str | None = None) -> bool:
    """Whether `text` asks to understand something rather than to run `tool` (see above)."""
    how_to = _HOW_TO.search(text) is not None
    if not how_to and _CONCEPTUAL.search(text) is None:
        return False
    if gives_work(text) or _ORDER.search(text) or (not how_to and _MINE.search(text)):
        return False
    return not (tool == "estimate_memory" and _MEMORY_AMOUNT.search(text))


# A conceptual question anywhere in the message ("Just tell me: what is perplexity?").
_ASKS_WHAT = re.compile(
    r"\bwhat (?:is|are|does)\b|\bwhy\b|\bhow (?:does|do|is|are)\b|什么是|是什么|为什么|怎么|如何",
    re.IGNORECASE,
)


def names_course_concept(text: str) -> bool:
    """Whether the message names a course module, topic or glossary term (catalog spellings)."""
    from llmtutor.knowledge.catalog import load_catalog
    from llmtutor.knowledge.quiz.topics import find_topic_in

    return find_topic_in(load_catalog(), text) is not None


def explain_or_do(
    text: str, tool: str | None, confidence: float, score: Mapping[str, float]
) -> tuple[str | None, float]:
    """The classifier's (tool, confidence), settled for explain-vs-do messages.

    Only when the course search is registered. Explain: the classifier chose a
    model lab, or chose nothing while most probability sat on tools (a split
    between tools, not small talk) with a model lab or the course search on top,
    and `asks_to_explain` → the course search. Do, the converse: the classifier
    chose the course search or nothing, but the message gives a lab something to
    run on (`gives_work`: a quoted prompt, a file, a setting, "run it") and a model
    lab has at least `_DO_FLOOR` probability → the most likely model lab. The
    confidence is then the summed probability of the course search and the model
    labs (the classes the rule chooses between).
    """
    if CONCEPTS_TOOL not in score:
        return tool, confidence
    tools = {name: p for name, p in score.items() if name != NONE_LABEL}
    best = max(tools, key=tools.__getitem__)
    mass = min(1.0, sum(p for name, p in tools.items() if name in MODEL_LABS or name == CONCEPTS_TOOL))
    if tool in MODEL_LABS:
        candidate: str | None = tool
    elif tool is None and score.get(NONE_LABEL, 1.0) < 0.5 and (best in MODEL_LABS or best == CONCEPTS_TOOL):
        candidate = best
    else:
        candidate = None
    # The two directions exclude each other: `asks_to_explain` is False whenever `gives_work` is True.
    if candidate is not None and asks_to_explain(text, candidate):
        return CONCEPTS_TOOL, mass
    if tool is None and _ASKS_WHAT.search(text) and not gives_work(text) and names_course_concept(text):
        # "Just tell me: what is perplexity?" reads like chat to the classifier, but it is a
        # conceptual question about a course term: the course search answers it.
        return CONCEPTS_TOOL, max(confidence, score.get(CONCEPTS_TOOL, 0.0))
    if tool in (None, CONCEPTS_TOOL) and gives_work(text):
        labs = {name: p for name, p in tools.items() if name in MODEL_LABS}
        lab = max(labs, key=labs.__getitem__, default=None)
        if lab is not None and labs[lab] >= _DO_FLOOR:
            return lab, mass
    return tool, confidence


# ----- commands ------------------------------------------------------------------
_COMMAND = re.compile(r"^\s*/(?P<name>[A-Za-z_][\w-]*)(?:\s+(?P<rest>.*))?\s*$", re.DOTALL)


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


class Router:
    """Commands first, then the classifier.

    Capable chat backends route with their own tool calling instead
    (`llmtutor.agents.routing.native_router.native_route`); commands are parsed here for both.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        embedder: Embedder | None = None,
        *,
        embed_model: str | Path | None = None,
        threshold: float = 0.5,
    ):
        self.registry = registry
        self._embedder = embedder
        self._embed_model = embed_model
        self._threshold = threshold
        self._classifier: ToolClassifier | None = None
        self._lock = threading.Lock()

    # The embedder and classifier are built on first use: commands and
    # `Router(...)` itself must not pay for loading torch and the model.
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from llmtutor.knowledge.rag.embeddings import Embedder

            self._embedder = Embedder(self._embed_model)
        return self._embedder

    @property
    def classifier(self) -> ToolClassifier:
        with self._lock:
            if self._classifier is None:
                self._classifier = ToolClassifier(self.embedder, threshold=self._threshold).fit(self.registry)
            return self._classifier

    def warm_up(self) -> None:
        """Load the model, train the classifier and run one prediction."""
        self.route("hello")

    # ----- commands --------------------------------------------------------
    def commands_help(self) -> str:
        names = ", ".join(f"/{name} …" for name in self.registry.names())
        return f"{names + ', ' if names else ''}/tool NAME {{json arguments}}"

    def parse_command(self, text: str) -> RouteDecision | None:
        """A decision for ``/name …`` messages, None for ordinary text.

        Raises `ToolNotFoundError` for an unknown command and `ToolInputError`
        for ``/tool`` with malformed or invalid JSON arguments.
        """
        match = _COMMAND.match(text)
        if match is None:
            return None
        name, rest = match.group("name"), (match.group("rest") or "").strip()
        if name == "tool":
            name, _, rest = rest.partition(" ")
            if not name:
                raise ToolNotFoundError("/tool needs a tool name", f"commands: {self.commands_help()}")
            rest = rest.strip()
        name = name.replace("-", "_")
        if name not in self.registry:
            raise ToolNotFoundError(f"unknown command: /{name}", f"commands: {self.commands_help()}")
        tool = self.registry.get(name)
        if rest.startswith("{"):
            try:
                args = json.loads(rest)
            except json.JSONDecodeError as exc:
                raise ToolInputError(
                    f"/{name}: arguments are not valid JSON ({exc.msg})", 'e.g. /tool NAME {"field": 1}'
                ) from None
            if not isinstance(args, dict):
                raise ToolInputError(
                    f"/{name}: arguments must be a JSON object", 'e.g. /tool NAME {"field": 1}'
                )
            # Typed JSON is explicit: invalid fields are the learner's to fix, so raise.
            tool.validate(args)
            return RouteDecision(tool=name, args=args, confidence=1.0, method="command")
        args = extract_tool_args(tool, rest) if rest else {}
        if rest and not args:
            # "/compare_decoding "Once upon a time"": a bare quoted text is the prompt
            # when the tool's rules found nothing and it has a single free-text field.
            args = self._free_text_args(tool, _strip_quotes(rest))
        return RouteDecision(tool=name, args=args, confidence=1.0, method="command")

    @staticmethod
    def _free_text_args(tool: ToolSpec, text: str) -> dict[str, Any]:
        fields = tool.input_model.model_fields
        for field_name in ("prompt", "text", "query", "question"):
            if field_name in fields:
                return lenient_args(tool, {field_name: text})
        return {}

    # ----- routing ---------------------------------------------------------
    def route(self, text: str) -> RouteDecision:
        return self.route_batch([text])[0]

    def route_batch(self, texts: Sequence[str]) -> list[RouteDecision]:
        """Decisions for many messages; the non-command ones are embedded in one batch."""
        decisions: list[RouteDecision | None] = [self.parse_command(text) for text in texts]
        pending = [i for i, decision in enumerate(decisions) if decision is None]
        if pending:
            if not self.registry.names():
                for i in pending:
                    decisions[i] = RouteDecision(tool=None, confidence=1.0, method="none")
            else:
                classifier = self.classifier
                batch = [texts[i] for i in pending]
                for i, text, score in zip(
                    pending, batch, classifier.scores(classifier.probabilities(batch)), strict=True
                ):
                    tool, confidence = explain_or_do(text, *classifier.decide(score), score)
                    args = extract_tool_args(self.registry.get(tool), text) if tool else {}
                    decisions[i] = RouteDecision(
                        tool=tool, args=args, confidence=confidence, method="classifier", scores=score
                    )
        return [decision for decision in decisions if decision is not None]
