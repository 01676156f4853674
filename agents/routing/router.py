"""Which tool (if any) a learner's message asks for, without an LLM call.

The default chat model (SmolLM2-135M) cannot do tool calling (it calls a tool
for almost anything), so routing is done here, in two steps:

1. Explicit commands: ``/estimate_memory 7B qlora``, ``/compare_decoding "Once
   upon a time"``, ``/tool NAME {json}``. Always win; unknown commands raise
   `ToolNotFoundError` listing the commands that exist.
2. `ToolClassifier`, trained at start-up on the registered tools' `examples`
   plus "no tool" sentences (`routing_examples`). Design, chosen by measuring
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
   * "No tool" is several classes (small talk, conceptual questions, and one
     class per planned-but-unregistered tool); at prediction time all of them
     mean None. Only registered tools can ever be predicted.
   * A message goes to a tool only when that tool's probability reaches
     `threshold`; otherwise None, so unsure guesses do not run tools.

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

from llmtutor.agents.routing.examples import NO_TOOL_PREFIX, no_tool_classes
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
        classes: dict[str, tuple[str, ...]] = {
            tool.name: tuple(tool.examples) for tool in registry if tool.examples
        }
        classes.update(no_tool_classes(registry.names()))
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
                    tool, confidence = classifier.decide(score)
                    args = extract_tool_args(self.registry.get(tool), text) if tool else {}
                    decisions[i] = RouteDecision(
                        tool=tool, args=args, confidence=confidence, method="classifier", scores=score
                    )
        return [decision for decision in decisions if decision is not None]
