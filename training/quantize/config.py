"""Settings of a quantization run (`QuantizeConfig`), strict and JSON-serialisable (the job
runner stores it and replays it in a worker process)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmtutor.paths import check_name
from llmtutor.training.quantize.ggml_types import normalize_file_type

Method = Literal["absmax", "zeropoint", "int4", "bnb_int8", "bnb_nf4", "gguf", "gptq", "awq"]
LAB = ("absmax", "zeropoint", "int4")
BNB = ("bnb_int8", "bnb_nf4")


class QuantizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "", description="Registered name, HF folder, .gguf file, or '' for the bundled SmolLM2."
    )
    methods: list[Method] = Field(default_factory=lambda: ["gguf"], min_length=1)
    # GGUF: the llama.cpp types to produce (the first is registered as the chat model)
    gguf_types: list[str] = Field(default_factory=lambda: ["Q4_K_M"], min_length=1, max_length=8)
    imatrix: bool = Field(
        False, description="Weigh GGUF rounding by an importance matrix from calibration text."
    )
    group_size: int = Field(32, ge=8, le=256, description="int4 lab: weights per scale.")
    double_quant: bool = Field(True, description="bitsandbytes NF4: quantize the scales too.")
    perplexity_text: str = "course"  # "course" = the bundled notes, or a text file path
    perplexity_tokens: int = Field(1024, ge=64, le=100_000)
    perplexity_window: int = Field(512, ge=32, le=8192)
    prompt: str = "Explain in one sentence what quantization does to a language model."
    device: str = "auto"
    seed: int = 0
    models_dir: Path = Field(default_factory=lambda: Path("~/.llmtutor/models").expanduser())
    output_dir: Path = Field(default_factory=lambda: Path("outputs/quantize"))
    name: str | None = Field(None, description="Name of the registered GGUF model (default: SOURCE-TYPE).")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "output name")

    @field_validator("gguf_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(normalize_file_type(v) for v in value))

    @model_validator(mode="after")
    def _distinct(self) -> QuantizeConfig:
        self.methods = list(dict.fromkeys(self.methods))
        return self
