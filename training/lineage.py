"""The model family tree: which model was made from which, by what (fine-tune, merge, quantize).

Lineage lives in each registered model's `meta["lineage"]` = {"parents": [...], "method": str,
"parameters": {...}}; parents are registered names or the paths/ids of outside models (the
bundled SmolLM2 is "SmolLM2-135M-Instruct"). `family_tree(name)` walks ancestors and
descendants; it renders as Mermaid text (for Markdown viewers, like the course's Model Family
Tree tool) and as a PNG.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llmtutor.errors import ModelNotFoundError
from llmtutor.model_registry import RegisteredModel, list_models


class Edge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parent: str
    child: str
    method: str
    parameters: dict[str, Any] = {}


class FamilyTree(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: str  # the model asked about
    nodes: list[str]
    edges: list[Edge]
    kinds: dict[str, str]  # node -> registered kind, "external" for outside models

    def to_mermaid(self) -> str:
        ids = {node: f"m{i}" for i, node in enumerate(self.nodes)}
        lines = ["graph TD"]
        for node in self.nodes:
            label = node.replace('"', "'")
            kind = self.kinds.get(node, "external")
            lines.append(f'    {ids[node]}["{label}<br/><small>{kind}</small>"]')
        for edge in self.edges:
            lines.append(f"    {ids[edge.parent]} -->|{_edge_label(edge)}| {ids[edge.child]}")
        lines.append(f"    style {ids[self.root]} stroke-width:3px")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        return f"**Family tree of {self.root}** ({len(self.nodes)} models)\n\n```mermaid\n{self.to_mermaid()}\n```"


def _edge_label(edge: Edge) -> str:
    params = ", ".join(f"{k}={v}" for k, v in list(edge.parameters.items())[:2])
    text = f"{edge.method} {params}".strip()
    return re.sub(r"[|\"]", "", text)[:40]


def lineage_of(model: RegisteredModel) -> dict[str, Any]:
    return dict(model.meta.get("lineage") or {})


def family_tree(models_dir: Path, name: str) -> FamilyTree:
    """Ancestors and descendants of `name` among the registered models."""
    models = {m.name: m for m in list_models(models_dir)}
    if name not in models:
        known = ", ".join(models) or "none yet"
        raise ModelNotFoundError(
            f"no registered model {name!r} (known: {known})", "see `llmtutor models list`"
        )
    parents_of = {n: [str(p) for p in lineage_of(m).get("parents", [])] for n, m in models.items()}
    children_of: dict[str, list[str]] = {}
    for child, parents in parents_of.items():
        for parent in parents:
            children_of.setdefault(parent, []).append(child)
    seen: list[str] = []

    def walk(node: str, up: bool) -> None:
        if node in seen and node != name:
            return
        if node not in seen:
            seen.append(node)
        for nxt in parents_of.get(node, []) if up else children_of.get(node, []):
            walk(nxt, up)

    walk(name, up=True)
    walk(name, up=False)
    edges = []
    for child in seen:
        lineage = lineage_of(models[child]) if child in models else {}
        for parent in parents_of.get(child, []):
            if parent in seen:
                edges.append(
                    Edge(
                        parent=parent,
                        child=child,
                        method=str(lineage.get("method", "?")),
                        parameters=dict(lineage.get("parameters") or {}),
                    )
                )
    kinds = {n: (models[n].kind if n in models else "external") for n in seen}
    return FamilyTree(root=name, nodes=seen, edges=edges, kinds=kinds)


def render_png(tree: FamilyTree, path: Path) -> Path:
    """A layered drawing: generation by generation from the oldest ancestor down."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth: dict[str, int] = {}
    parents = {n: [e.parent for e in tree.edges if e.child == n] for n in tree.nodes}

    def level(node: str, trail: tuple[str, ...] = ()) -> int:
        if node not in depth:
            ups = [p for p in parents[node] if p not in trail]
            depth[node] = 1 + max((level(p, (*trail, node)) for p in ups), default=-1)
        return depth[node]

    for node in tree.nodes:
        level(node)
    rows: dict[int, list[str]] = {}
    for node in tree.nodes:
        rows.setdefault(depth[node], []).append(node)
    width = max(len(r) for r in rows.values())
    fig, ax = plt.subplots(figsize=(max(6, 3 * width), 1.8 * (len(rows) + 1)))
    pos = {n: ((i + 1) / (len(r) + 1), -d) for d, r in rows.items() for i, n in enumerate(r)}
    for edge in tree.edges:
        (x0, y0), (x1, y1) = pos[edge.parent], pos[edge.child]
        skips = y0 - y1 > 1  # an edge past a generation bends around the nodes in between
        style = {"arrowstyle": "->", "color": "gray", "connectionstyle": f"arc3,rad={0.45 if skips else 0}"}
        ax.annotate("", xy=(x1, y1 + 0.18), xytext=(x0, y0 - 0.18), arrowprops=style)
        ax.text(
            (x0 + x1) / 2 + (0.18 if skips else 0),
            (y0 + y1) / 2,
            _edge_label(edge),
            fontsize=8,
            ha="center",
            color="dimgray",
        )
    colors = {
        "external": "#eeeeee",
        "merged": "#cfe8ff",
        "adapter": "#fff2cc",
        "full": "#d9f2d9",
        "gguf": "#f4cccc",
        "quantized": "#f4cccc",
    }
    for node, (x, y) in pos.items():
        ax.text(
            x,
            y,
            f"{node}\n({tree.kinds.get(node, 'external')})",
            ha="center",
            va="center",
            fontsize=9,
            bbox={
                "boxstyle": "round",
                "facecolor": colors.get(tree.kinds.get(node, ""), "#ffffff"),
                "linewidth": 2.5 if node == tree.root else 1,
            },
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(-max(rows) - 0.6, 0.6)
    ax.axis("off")
    ax.set_title(f"Family tree of {tree.root}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
