"""Fine-tuning methods: one `FinetuneMethod` per `FinetuneConfig.method`; the config, runner and tool read them here.

To add one: `register_method(FinetuneMethod(name=..., description=..., data=..., lr_adapter=..., lr_full=...,
build_trainer=...))` at the end of this file; `build_trainer` returns a transformers Trainer reporting to `bridge`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field

from llmtutor.training.finetune.preference import build_dpo_trainer, build_orpo_trainer
from llmtutor.training.finetune.sft import build_sft_trainer, prepare_sft_rows

if TYPE_CHECKING:
    from llmtutor.training.finetune.config import FinetuneConfig

# (model, tokenizer, train_rows, eval_rows, config, device, bridge) -> a transformers Trainer whose
# callbacks include `bridge` (callbacks.ProgressBridge), told how to count trained tokens
BuildTrainer = Callable[[Any, Any, list[dict], list[dict], "FinetuneConfig", str, Any], Any]
# (tokenizer, train_rows, eval_rows, config, notes, stats) -> (train_rows, eval_rows) as the trainer takes them
PrepareRows = Callable[
    [Any, list[dict], list[dict], "FinetuneConfig", list[str], dict[str, Any]], tuple[list[dict], list[dict]]
]


@dataclass(frozen=True)
class FinetuneMethod:
    name: str  # as in `FinetuneConfig.method`
    description: str  # one line: the tool's schema and `llmtutor tools list` show it
    # The rows it trains on: "sft" (instruction, chat or text) or "preference" (prompt, chosen, rejected)
    data: Literal["sft", "preference"]
    # Default learning rates. Adapters tolerate ~10x more than full fine-tuning; preference
    # objectives want less than SFT because they push log-ratios, not just likelihoods.
    lr_adapter: float
    lr_full: float
    build_trainer: BuildTrainer
    prepare_rows: PrepareRows | None = None  # None: rows as loaded (TRL's trainers tokenize them)
    params: tuple[str, ...] = ()  # config fields only it uses (shown on the model card)
    memory_factor: float = 1.0  # activation memory vs SFT on the same rows (chosen + rejected: 2x)


_METHODS: dict[str, FinetuneMethod] = {}


def register_method(method: FinetuneMethod) -> FinetuneMethod:
    """Make `method` valid in FinetuneConfig, listed in the finetune_model tool and trainable."""
    if method.name in _METHODS:
        raise ValueError(f"fine-tuning method registered twice: {method.name}")
    _METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    _METHODS.pop(name, None)


def get_method(name: str) -> FinetuneMethod:
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(
            f"unknown fine-tuning method {name!r}: choose one of {', '.join(_METHODS)}"
        ) from None


def method_names() -> list[str]:
    return list(_METHODS)


def list_methods() -> list[FinetuneMethod]:
    return list(_METHODS.values())


def choices(data: str) -> str:
    """The methods for a kind of data, as a learner would type them: "'dpo' or 'orpo'"."""
    return " or ".join(repr(m.name) for m in _METHODS.values() if m.data == data)


def _known(name: str) -> str:
    get_method(name)
    return name


def _schema(schema: dict[str, Any]) -> None:
    # Called whenever a JSON schema is built, so methods registered later are listed too.
    schema["enum"] = method_names()
    schema["description"] = "Fine-tuning method: " + "; ".join(
        f"{m.name} = {m.description}" for m in _METHODS.values()
    )


# A method name: validated against the registry; an `enum` of the registered names in JSON schemas.
MethodName = Annotated[str, AfterValidator(_known), Field(json_schema_extra=_schema)]


# ----- the registered methods (registration order is the order tools list them) ------------
register_method(
    FinetuneMethod(
        "sft",
        "supervised fine-tuning on instruction, chat or text rows (loss on the answers only)",
        data="sft",
        lr_adapter=2e-4,
        lr_full=2e-5,
        build_trainer=build_sft_trainer,
        prepare_rows=prepare_sft_rows,
    )
)
register_method(
    FinetuneMethod(
        "dpo",
        "Direct Preference Optimization on (prompt, chosen, rejected) pairs, against the frozen base",
        data="preference",
        lr_adapter=5e-5,
        lr_full=5e-6,
        build_trainer=build_dpo_trainer,
        params=("beta",),
        memory_factor=2.0,
    )
)
register_method(
    FinetuneMethod(
        "orpo",
        "ORPO: SFT on the chosen answer plus an odds-ratio penalty on the rejected one, no reference model",
        data="preference",
        lr_adapter=5e-5,
        lr_full=8e-6,
        build_trainer=build_orpo_trainer,
        params=("beta",),
        memory_factor=2.0,
    )
)
