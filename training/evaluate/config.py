"""Settings of an evaluation run (`EvalConfig`) and the models it compares (`ModelSpec`).

JSON-serialisable and strict (extra fields rejected): the job runner stores the config and
re-runs it in a subprocess. Paths default to the bundled data, so a bare
`EvalConfig(output_dir=...)` evaluates the default SmolLM2 on the course material.
The metrics are registered in `metrics.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmtutor.training.evaluate.metrics import MetricName, describe_metrics, list_metrics

PACKAGE_DIR = Path(__file__).parent
TASKS_DIR = PACKAGE_DIR / "tasks"  # lm-eval `include_path`: the local course-quiz task lives here
DEFAULT_REFERENCES = PACKAGE_DIR / "data" / "course_qa.jsonl"
DEFAULT_TASK = "course_quiz"
COURSE_TEXT = "course"  # `perplexity_text` value meaning the bundled course notes


class ModelSpec(BaseModel):
    """One model to evaluate: the bundled default ("" / "smollm2"), a folder, a .gguf file,
    a registered name (fine-tuned, merged, quantized) or a hub id (online only)."""

    model_config = ConfigDict(extra="forbid")
    model: str = ""
    label: str | None = None  # shown in the card; defaults to the model's name

    def display(self) -> str:
        if self.label:
            return self.label
        raw = self.model.strip()
        if raw.lower() in ("", "smollm2", "default"):
            return "smollm2"
        path = Path(raw)
        return path.stem if path.suffix.lower() == ".gguf" else (path.name or raw)


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The FIRST model is the baseline: deltas in the card are measured against it.
    models: list[ModelSpec] = Field(default_factory=lambda: [ModelSpec()], min_length=1, max_length=8)
    models_dir: Path = Field(default_factory=lambda: Path("~/.llmtutor/models").expanduser())
    metrics: list[MetricName] = Field(
        default_factory=lambda: ["perplexity", "bleu_rouge", "lm_eval"],
        min_length=1,
        json_schema_extra=describe_metrics,
    )

    # perplexity (sliding window: every window is max_length tokens, advancing by stride;
    # only the tokens new to a window are scored, each with up to max_length - stride of context)
    perplexity_text: str = COURSE_TEXT  # a .txt/.md file, or "course" for the bundled course notes
    max_length: int = Field(default=1024, ge=8, le=32768)
    stride: int = Field(default=512, ge=1)
    max_eval_tokens: int | None = Field(default=4096, ge=16)  # first N tokens of the text; None = all
    # For GGUF models, also score the text with llama.cpp itself (slower: one request per token).
    llamacpp_perplexity: bool = True

    # generation metrics (BLEU, ROUGE-L) and the judge
    references: Path | None = None  # JSONL {prompt, reference[, language]}; None = bundled course Q&A
    max_references: int | None = Field(default=None, ge=1)
    max_new_tokens: int = Field(default=128, ge=1, le=2048)

    # lm-evaluation-harness
    lm_eval_task: str = DEFAULT_TASK
    lm_eval_include_path: Path | None = None  # extra folder of lm-eval task YAMLs (local data only)
    lm_eval_limit: int | None = Field(default=None, ge=1)  # first N questions; None = all

    # LLM-as-judge (the judge model itself is passed to `run`, built by the tool layer)
    judge_mode: Literal["single", "pairwise"] = "single"
    judge_retries: int = Field(default=2, ge=0, le=5)  # extra attempts after a parse/backend error
    judge_method: str = "json_schema"  # `with_structured_output(method=...)` for the judge backend
    # A GGUF (path or exported name) for the tool layer to run as the judge; "" = its chat backend.
    judge_model: str = ""

    batch_size: int = Field(default=4, ge=1, le=256)
    seed: int = 0
    device: str = "auto"
    output_dir: Path = Field(default_factory=lambda: Path("eval-output"))

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("perplexity_text")
    @classmethod
    def _text_exists(cls, value: str) -> str:
        if value != COURSE_TEXT and not Path(value).expanduser().is_file():
            raise ValueError(f"perplexity_text {value!r} is not a file; give a .txt/.md path or 'course'")
        return value

    @field_validator("references", "lm_eval_include_path")
    @classmethod
    def _path_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not Path(value).expanduser().exists():
            raise ValueError(f"{value} does not exist")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EvalConfig:
        if self.stride > self.max_length:
            raise ValueError(
                f"stride ({self.stride}) must be at most max_length ({self.max_length}): "
                "a larger stride would skip tokens"
            )
        labels = [m.display() for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"model labels must differ (got {labels}); set `label` on each model")
        problems = [p for metric in list_metrics(self.metrics) if metric.check for p in metric.check(self)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def labels(self) -> list[str]:
        return [m.display() for m in self.models]
