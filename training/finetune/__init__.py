"""Fine-tuning recipes: SFT, DPO and ORPO with LoRA, QLoRA or full fine-tuning (TRL + PEFT).

    result = run(FinetuneConfig(dataset=Path("my_data.jsonl"), output_dir=Path("out"), max_steps=50))
    print(result.to_markdown())   # out/merged is a plain HF model folder, out/adapter the LoRA adapter

Data in Alpaca, chat (OpenAI messages or ShareGPT), plain text or preference format is detected,
validated row by row (`DatasetError`), rendered with the base model's chat template and trained
on the assistant tokens only. The bundled course datasets (`BUNDLED_SFT`, `BUNDLED_PREFERENCE`)
make it work out of the box. `run` follows the training contract (progress events, cancel,
resume from checkpoints); see runner.py for the order of work. The methods, their data and
defaults are registered in `methods.py` (add one there).
"""

from llmtutor.jobs.kinds import register_kind
from llmtutor.training.finetune.config import (
    BUNDLED_PREFERENCE,
    BUNDLED_SFT,
    DEFAULT_TARGET_MODULES,
    FinetuneConfig,
)
from llmtutor.training.finetune.data import (
    DatasetError,
    LoadedDataset,
    detect_format,
    load_dataset_rows,
    read_records,
)
from llmtutor.training.finetune.methods import (
    FinetuneMethod,
    get_method,
    list_methods,
    method_names,
    register_method,
)
from llmtutor.training.finetune.result import FinetuneResult
from llmtutor.training.finetune.runner import run
from llmtutor.training.finetune.templating import render_example, tokenize_example

__all__ = [
    "BUNDLED_PREFERENCE",
    "BUNDLED_SFT",
    "DEFAULT_TARGET_MODULES",
    "DatasetError",
    "FinetuneConfig",
    "FinetuneMethod",
    "FinetuneResult",
    "LoadedDataset",
    "detect_format",
    "get_method",
    "list_methods",
    "load_dataset_rows",
    "method_names",
    "read_records",
    "register_method",
    "render_example",
    "run",
    "tokenize_example",
]

register_kind("finetune", FinetuneConfig, run)
