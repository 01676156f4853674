"""The eval card: every model on the same data in one table, with deltas vs the baseline
(the first model), a bar chart per metric, and the exact settings needed to reproduce it.
The columns, their formats and which way is better come from the metrics (`metrics.py`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmtutor.training.evaluate.metrics import Column, columns, list_metrics


class ModelEval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    model: str  # the spec as given
    path: str  # what was loaded
    kind: str
    gguf: str | None = None
    chat_template_sha256: str | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)  # stderrs, counts, per-language scores


class EvalResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output_dir: str
    baseline: str
    models: list[ModelEval]
    deltas: dict[str, dict[str, float | None]]  # label -> metric -> value minus the baseline's
    files: dict[str, str]  # card_md, card_json, plot, generations, judge (relative to output_dir)
    settings: dict[str, Any]
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0

    def to_markdown(self) -> str:
        return render_markdown(self)


def compute_deltas(models: list[ModelEval]) -> dict[str, dict[str, float | None]]:
    base = models[0].metrics
    out: dict[str, dict[str, float | None]] = {}
    for m in models:
        out[m.label] = {}
        for key, value in m.metrics.items():
            ref = base.get(key)
            out[m.label][key] = None if value is None or ref is None else value - ref
    return out


def _cell(value: float | None, delta: float | None, fmt: str, higher: bool, is_base: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = fmt.format(value)
    if is_base:
        return text + " (baseline)"
    if delta is None:
        return text
    if abs(delta) < 1e-12:
        return f"{text} (±0)"
    arrow = "↑" if delta > 0 else "↓"
    verdict = "better" if (delta > 0) == higher else "worse"
    return f"{text} ({fmt.format(delta) if delta < 0 else '+' + fmt.format(delta)} {arrow} {verdict})"


def _present(result: EvalResult) -> list[Column]:
    """The metrics' columns that hold a value for some model, in card order."""
    return [c for c in columns() if any(m.metrics.get(c.key) is not None for m in result.models)]


def _settings_lines(s: dict[str, Any]) -> list[str]:
    """One line per metric that recorded settings; the shared generation step (greedy answers to
    the reference prompts) before the first metric that uses it."""
    lines, g = [], s.get("generation")
    for metric in list_metrics():
        if metric.needs_answers and g:
            lines.append(
                f"- generation: {g['items']} reference prompts ({g['languages']}), greedy, "
                f"max_new_tokens {g['max_new_tokens']}, chat template of each model"
            )
            g = None
        if metric.settings_line is not None and metric.name in s:
            lines.append(metric.settings_line(s[metric.name]))
    return lines


def render_markdown(result: EvalResult) -> str:
    present = _present(result)
    lines = [f"## Eval card: {len(result.models)} model(s), baseline **{result.baseline}**", ""]
    if present:
        lines += [
            "| model | " + " | ".join(c.title for c in present) + " |",
            "|---|" + "---:|" * len(present),
        ]
        for i, m in enumerate(result.models):
            cells = [
                _cell(
                    m.metrics.get(c.key),
                    result.deltas.get(m.label, {}).get(c.key),
                    c.fmt,
                    c.higher_is_better,
                    i == 0,
                )
                for c in present
            ]
            lines.append(f"| {m.label} | " + " | ".join(cells) + " |")
        arrows = ", ".join(f"{c.title} {'higher' if c.higher_is_better else 'lower'}" for c in present)
        lines += ["", f"Better is: {arrows}. Deltas are against the baseline, on the same data."]
    s = result.settings
    lines += ["", "### Settings", ""]
    lines += _settings_lines(s)
    lines.append(f"- device {s.get('device')}, batch size {s.get('batch_size')}, seed {s.get('seed')}")
    templates = ", ".join(f"{m.label} {m.chat_template_sha256 or 'none'}" for m in result.models)
    lines.append(f"- chat template sha256: {templates}")
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in s.get("versions", {}).items()))
    if result.notes:
        lines += ["", "### Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def write_plot(result: EvalResult, path: Path) -> bool:
    """One bar chart per headline metric present; False when there is nothing to plot."""
    # Figure + Agg canvas, not pyplot: no global backend state, safe from job threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    present = _present(result)
    if not present:
        return False
    fig = Figure(figsize=(3.2 * len(present), 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(present), squeeze=False)
    labels = [m.label for m in result.models]
    colors = ["#888888"] + ["#4C72B0"] * (len(labels) - 1)  # the baseline in grey
    for ax, column in zip(axes[0], present, strict=True):
        values = [m.metrics.get(column.key) for m in result.models]
        ax.bar(range(len(labels)), [v if v is not None else 0 for v in values], color=colors)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{column.title} ({'↑' if column.higher_is_better else '↓'} better)", fontsize=9)
        top = max((v for v in values if v is not None), default=0.0)
        ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
        for i, v in enumerate(values):
            if v is not None:
                ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def write_card(result: EvalResult) -> EvalResult:
    """Write eval_card.md, eval_card.json and eval_plot.png into the output folder."""
    out = Path(result.output_dir)
    files = dict(result.files, card_md="eval_card.md", card_json="eval_card.json")
    if write_plot(result, out / "eval_plot.png"):
        files["plot"] = "eval_plot.png"
    result = result.model_copy(update={"files": files})
    (out / "eval_card.md").write_text(result.to_markdown(), encoding="utf-8")
    (out / "eval_card.json").write_text(
        json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return result
