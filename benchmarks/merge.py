"""Model merging: every method of `llmtutor.training.merge` (mergekit) on two SmolLM2-135M parents.

    python benchmarks/merge.py [--methods linear,slerp,...] [--quick] [--noise 1e-3] [--write]

Parents: the bundled SmolLM2-135M-Instruct and a copy with gaussian noise (`--noise` x each tensor's std) on
every weight. One process per row. Baseline, same run: a naive SLERP (transformers loads both, torch, save_pretrained).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = "## Model merging — `benchmarks/merge.py`"
METHODS = ("linear", "slerp", "ties", "dare_ties", "task_arithmetic", "passthrough", "moe")
NAIVE, SHARDED, IMPORTS, PREPARE = "naive_slerp", "slerp_sharded", "imports_only", "prepare"
SHARD = "100M"  # reference row: mergekit's writer keeps a whole output shard (default 5B) in memory
LABELS = {
    IMPORTS: "(interpreter + torch/transformers/mergekit imports only)",
    "slerp": "slerp t=0.5",
    NAIVE: "**baseline**: naive SLERP (transformers loads both, torch, save_pretrained)",
    "linear": "linear (0.5 / 0.5)",
    "ties": "ties (density 0.5, base = bundled)",
    "dare_ties": "dare_ties (density 0.5, base = bundled)",
    "task_arithmetic": "task_arithmetic (weight 0.5, base = bundled)",
    "passthrough": "passthrough (bundled [0,20) + perturbed [10,30) = 40 layers)",
    "moe": "moe (mergekit-moe: 2 experts = bundled + perturbed, gate hidden, 2 per token)",
    SHARDED: f"reference: the slerp YAML through mergekit `run_merge` alone, out_shard_size {SHARD}",
}


def merge_config(method: str, perturbed: Path, out: Path, models_dir: Path) -> Any:
    from llmtutor.training.merge import MergeConfig, MergeModel

    x, y = "smollm2", str(perturbed)  # the bundled model by its registered name, as a learner writes it
    # weight is explicit for task-vector methods: mergekit requires it though MergeConfig does not check
    models = {
        "linear": [MergeModel(model=x, weight=0.5), MergeModel(model=y, weight=0.5)],
        "slerp": [MergeModel(model=x), MergeModel(model=y)],
        "ties": [MergeModel(model=y, weight=1.0, density=0.5)],
        "dare_ties": [MergeModel(model=y, weight=1.0, density=0.5)],
        "task_arithmetic": [MergeModel(model=y, weight=0.5)],  # weight 1 would rebuild the perturbed model
        "passthrough": [MergeModel(model=x, layer_range=(0, 20)), MergeModel(model=y, layer_range=(10, 30))],
        "moe": [
            MergeModel(
                model=x, positive_prompts=["Tell me a story about a dragon.", "Give me a pancake recipe."]
            ),
            MergeModel(model=y, positive_prompts=["What is LoRA?", "How does GGUF quantization work?"]),
        ],
    }
    base = x if method in ("slerp", "ties", "dare_ties", "task_arithmetic", "moe") else None
    return MergeConfig(
        method=method, models=models[method], base_model=base, t=0.5, output_dir=out, models_dir=models_dir
    )


def naive_slerp(a: Path, b: Path, out: Path, t: float = 0.5) -> dict[str, float]:
    """The textbook script: both full models in memory, whole-tensor SLERP, save_pretrained."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(a), dtype=torch.float32)
    other = dict(AutoModelForCausalLM.from_pretrained(str(b), dtype=torch.float32).named_parameters())
    with torch.no_grad():
        for name, p in model.named_parameters():  # not state_dict(): the tied embedding would be done twice
            v0, v1 = p.detach(), other[name].detach()
            # torch.sum, not F.cosine_similarity: one BLAS dot over millions of float32 entries drifts
            dot = max(-1.0, min(1.0, float((v0 * v1).sum() / ((v0 * v0).sum() * (v1 * v1).sum()).sqrt())))
            theta = math.acos(dot)  # nearly collinear (mergekit's 0.9995): SLERP degenerates to LERP
            w = (
                (1 - t, t)
                if abs(dot) > 0.9995
                else (math.sin((1 - t) * theta) / math.sin(theta), math.sin(t * theta) / math.sin(theta))
            )
            p.copy_(w[0] * v0 + w[1] * v1)  # the right side is computed before p is overwritten
    model.save_pretrained(str(out / "model"))
    AutoTokenizer.from_pretrained(str(a)).save_pretrained(str(out / "model"))
    return {"merge_s": time.perf_counter() - start}


def child(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measured run, in its own process; the parent reads its RESULT line."""
    import resource
    import threading

    from llmtutor.hf_models import quiet_transformers, resolve_hf_model

    bundled, perturbed, out = (
        Path(resolve_hf_model("smollm2", args.models_dir)),
        args.workdir / "perturbed",
        args.workdir / kind,
    )
    if kind == PREPARE:  # converts the bundled GGUF once; writes the perturbed copy once per workdir
        if not (perturbed / "config.json").is_file():
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            with quiet_transformers(), torch.no_grad():
                model = AutoModelForCausalLM.from_pretrained(str(bundled), dtype=torch.float32)
                torch.manual_seed(0)
                for p in model.parameters():  # parameters() yields the tied embedding once
                    p.add_(torch.randn_like(p) * p.std() * args.noise)
                model.save_pretrained(str(perturbed))
                AutoTokenizer.from_pretrained(str(bundled)).save_pretrained(str(perturbed))
        return {"bundled": str(bundled)}
    anon = [0.0]

    def sample() -> None:
        # ru_maxrss also counts mmapped safetensors pages (file-backed, reclaimable); RssAnon is
        # what the process really allocated. 20 ms is short next to any tensor's lifetime here.
        while found := re.search(r"RssAnon:\s+(\d+)", Path("/proc/self/status").read_text()):
            anon[0] = max(anon[0], int(found.group(1)) / 1024)
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()

    def peaks() -> dict[str, float]:  # so far; Linux ru_maxrss is in KiB
        return {
            "rss_merge_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "anon_merge_mb": anon[0],
        }

    import mergekit.merge  # every row pays the same imports (torch, transformers): see the imports row

    from llmtutor.training.merge import run

    with quiet_transformers():
        row: dict[str, Any] = {}
        if kind == IMPORTS:
            time.sleep(0.1)  # let the sampler see the settled process
        elif kind == NAIVE:
            row = naive_slerp(bundled, perturbed, out)
        elif kind == SHARDED:  # the recipe's own SLERP YAML through mergekit alone, writing small shards
            import yaml
            from mergekit.common import parse_kmb
            from mergekit.config import MergeConfiguration

            from llmtutor.training.merge import resolve_models, to_mergekit_yaml

            paths: dict[str, Any] = {
                n: str(p) for n, p in resolve_models(["smollm2", str(perturbed)], args.models_dir).items()
            }
            text = to_mergekit_yaml(
                merge_config("slerp", perturbed, out, args.models_dir), {**paths, "__layers__": 30}
            )
            start = time.perf_counter()
            options = mergekit.merge.MergeOptions(
                lazy_unpickle=True, quiet=True, device="cpu", out_shard_size=parse_kmb(SHARD)
            )
            mergekit.merge.run_merge(
                MergeConfiguration.model_validate(yaml.safe_load(text)), str(out / "model"), options=options
            )
            row = {"merge_s": time.perf_counter() - start}
        else:
            marks: dict[str, Any] = {}

            def progress(event: Any) -> None:
                # "merge" step 0 = mergekit starts, step 1 = it returned: that phase alone
                if event.stage == "merge" and event.step is not None:
                    marks[f"t{event.step}"], marks["peaks"] = time.perf_counter(), peaks()

            result = run(merge_config(kind, perturbed, out, args.models_dir), progress=progress)
            return {
                "seconds": result.seconds,
                "merge_s": marks["t1"] - marks["t0"],
                **marks["peaks"],
                "anon_peak_mb": anon[0],
                "similarity": list(result.similarity.values()),
                "estimate_mb": result.peak_memory_estimate_mb,
                "routing": result.parameters.get("routing"),
            }
    return {**row, **peaks(), "anon_peak_mb": anon[0]}


def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--workdir",
        str(args.workdir),
        "--models-dir",
        str(args.models_dir),
        "--noise",
        str(args.noise),
    ]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        stdout = proc.stdout.read().decode() if proc.stdout else ""
        # wait4: this child's own rusage (RUSAGE_CHILDREN would be the max over all earlier runs)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
        print(f"{kind}: {'failed' if proc.returncode or line is None else 'done'}", file=sys.stderr)
        if proc.returncode or line is None:
            err.seek(0)
            return {"error": err.read().decode(errors="replace")[-2000:]}
    return {**json.loads(line.removeprefix("RESULT ")), "rss_peak_mb": usage.ru_maxrss / 1024}


def tensors(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return {
        k: v.float() for file in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(file)).items()
    }


def sanity(
    kind: str, folder: Path, a: dict[str, Any], b: dict[str, Any], naive: dict[str, Any] | None
) -> str:
    """Finite weights, the property each method promises, and that the merge loads and runs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmtutor.hf_models import quiet_transformers

    m = tensors(folder)
    notes = [] if all(torch.isfinite(v).all() for v in m.values()) else ["NaN/inf!"]
    if kind == "passthrough":  # merged layers 0-19 = bundled 0-19, merged 20-39 = perturbed 10-29
        key = "model.layers.{}.mlp.down_proj.weight"
        same = torch.equal(m[key.format(5)], a[key.format(5)]) and torch.equal(
            m[key.format(25)], b[key.format(15)]
        )
        layers = json.loads((folder / "config.json").read_text())["num_hidden_layers"]
        notes.append(f"{layers} layers, slices {'exact' if same else 'WRONG'}")
    elif kind == "moe":  # expert i's MLP = parent i's MLP, attention from the base
        key = "model.layers.{}.mlp.experts.down_proj"
        same = all(
            torch.equal(m[key.format(i)][e], p[f"model.layers.{i}.mlp.down_proj.weight"])
            for i in (0, 29)
            for e, p in enumerate((a, b))
        )
        cfg = json.loads((folder / "config.json").read_text())
        size = sum(v.numel() for v in m.values()) / 1e6
        notes.append(
            f"{cfg['model_type']}, {cfg['num_local_experts']} experts, {size:.0f}M params; expert MLPs {'exact' if same else 'WRONG'}"
        )
    else:
        keys, acc = (
            [k for k in m if k in a],
            dict.fromkeys(("ma", "mb", "mm", "aa", "bb", "inside", "moved", "n", "dn"), 0.0),
        )
        for k in (
            keys
        ):  # per tensor: torch.sum's cascaded float32 reduction is accurate, one BLAS dot over 134M is not
            x, y, z = m[k], a[k], b[k]
            for name, (u, v) in {
                "ma": (x, y),
                "mb": (x, z),
                "mm": (x, x),
                "aa": (y, y),
                "bb": (z, z),
            }.items():
                acc[name] += float((u * v).sum())
            tol = 1e-6 * (1 + y.abs())  # float32 rounding of the interpolation
            acc["inside"] += int(((x >= torch.minimum(y, z) - tol) & (x <= torch.maximum(y, z) + tol)).sum())
            acc["moved"], acc["n"] = acc["moved"] + int((x != y).sum()), acc["n"] + x.numel()
            acc["dn"] = max(acc["dn"], float((x - naive[k]).abs().max())) if naive is not None else 0.0
        cos = [acc[f"m{p}"] / (acc["mm"] * acc[p + p]) ** 0.5 for p in "ab"]
        notes.append(
            f"cos to parents {cos[0]:.6f} / {cos[1]:.6f}; {acc['inside'] / acc['n']:.2%} between parents"
        )
        if kind in ("ties", "dare_ties"):  # density 0.5: about half of the task vector is kept
            notes.append(f"{acc['moved'] / acc['n']:.1%} of weights moved from the base")
        if naive is not None and kind in ("slerp", SHARDED):
            notes.append(f"vs baseline max abs diff {acc['dn']:.1e}")
        if acc["moved"] == 0 or all(torch.equal(m[k], b[k]) for k in keys):
            notes.append("IDENTICAL to a parent")
    with quiet_transformers():
        model, tok = (
            AutoModelForCausalLM.from_pretrained(str(folder)).eval(),
            AutoTokenizer.from_pretrained(str(folder)),
        )
        finite = bool(torch.isfinite(model(**tok("Model merging", return_tensors="pt")).logits).all())
    notes.append("loads, finite logits" if finite else "loads, NaN LOGITS")
    return "; ".join(notes)


def notes(rows: dict[str, dict[str, Any]], noise: float) -> list[str]:
    """Observations computed from this run's numbers, so they stay true when the recipe changes."""
    ok = {k: r for k, r in rows.items() if "error" not in r}
    merges, base, out = (
        [r for k, r in ok.items() if k in METHODS],
        ok.get(IMPORTS, {}).get("anon_peak_mb", 0.0),
        [],
    )
    if merges and NAIVE in ok:
        top = {
            k: max(r[k] for r in merges)
            for k in ("anon_merge_mb", "anon_peak_mb", "rss_peak_mb", "estimate_mb")
        }
        out.append(
            f"Allocated above the imports (anon): mergekit phase up to {top['anon_merge_mb'] - base:.0f} MB, naive baseline "
            f"{ok[NAIVE]['anon_peak_mb'] - base:.0f} MB (transformers memory-maps safetensors: only the model changed in "
            f"place becomes anonymous memory), whole `run()` up to {top['anon_peak_mb'] - base:.0f} MB (checks, tokenizers and "
            "the tensor-by-tensor similarity report included). `estimate_peak_bytes` "
            f"(in the job plan) said {top['estimate_mb']:.0f} MB; the run peaked at {top['anon_peak_mb']:.0f} MB anon / "
            f"{top['rss_peak_mb']:.0f} MB RSS."
        )
    if SHARDED in ok:
        out.append(
            f"Reference row: {ok[SHARDED]['anon_peak_mb'] - base:.0f} MB above the imports. mergekit's lazy loading "
            "keeps memory near a few tensors only when the output is written in small shards: the recipe writes 200 MB "
            "shards (with mergekit's 5 GB default a merged model under 5 GB is held whole until it is written)."
        )
    if max([v for r in merges for v in r.get("similarity", [])] or [0]) > 1:
        out.append(
            f"`MergeResult.similarity` reported cosines up to {max(v for r in merges for v in r['similarity']):.4f}: "
            "F.cosine_similarity in float32 over all 134M weights at once drifts past 1 (the sanity column sums per tensor)."
        )
    if noise < 0.01 and "slerp" in ok:
        out.append(
            f"At noise {noise:g} the parents are nearly collinear (cosine > 0.9995), so SLERP takes its linear "
            "fallback, in mergekit and in the baseline alike; `--noise 0.05` exercises the spherical branch."
        )
    return out + ([f"Failed: {', '.join(k for k in rows if k not in ok)}."] if len(ok) < len(rows) else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="linear and slerp only, no sanity checks")
    parser.add_argument("--noise", type=float, default=1e-3, help="perturbation, x each tensor's std")
    parser.add_argument("--models-dir", type=Path, default=Path("~/.llmtutor/models").expanduser())
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--write", action="store_true", help=f"write the section into {DOC.name}")
    parser.add_argument("--child", help="internal: one measured run, prints a RESULT line")
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args)))
        return
    started = time.perf_counter()
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmtutor-merge-bench-"))
    methods = ["linear", "slerp"] if args.quick else [m for m in args.methods.split(",") if m]
    if set(methods) - set(METHODS):
        sys.exit(f"unknown methods: {', '.join(sorted(set(methods) - set(METHODS)))}")
    # Prepared in a child too: Linux carries a process's peak RSS over fork+exec into the child's
    # ru_maxrss, so a parent that had loaded a model would put a floor under every row.
    if "error" in (prep := measure(PREPARE, args)):
        sys.exit(f"preparing the parents failed:\n{prep['error']}")
    rows = {kind: measure(kind, args) for kind in (IMPORTS, NAIVE, *methods, SHARDED)}
    bundled = Path(prep["bundled"])
    a, b = (
        tensors(bundled),
        tensors(args.workdir / "perturbed"),
    )  # checks only now: the parent stays small above
    naive = tensors(args.workdir / NAIVE / "model") if "error" not in rows[NAIVE] else None
    for kind in (NAIVE, *methods, SHARDED):
        if "error" not in rows[kind]:
            rows[kind]["mb"] = (
                sum(f.stat().st_size for f in (args.workdir / kind / "model").rglob("*")) / 2**20
            )
            rows[kind]["sanity"] = (
                "–" if args.quick else sanity(kind, args.workdir / kind / "model", a, b, naive)
            )
            if routing := rows[kind].get(
                "routing"
            ):  # MoE: share of each expert's prompt tokens sent to that expert
                own = " / ".join(f"{row[name]:.0%}" for name, row in routing.items())
                rows[kind]["sanity"] += f"; router sends each expert's own prompts to it: {own}"
    lines = [
        "| method | merge s | run() s | peak RSS / anon MB, merge | peak RSS / anon MB, whole run | output MB | sanity |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for kind, r in rows.items():
        if "error" in r:
            lines.append(f"| {LABELS[kind]} | FAILED | | | | | {r['error'].strip().splitlines()[-1][:150]} |")
            continue
        cells = [
            f"{r['merge_s']:.1f}" if "merge_s" in r else "–",
            f"{r['seconds']:.1f}" if "seconds" in r else "–",
            f"{r['rss_merge_mb']:.0f} / {r['anon_merge_mb']:.0f}",
            f"{r['rss_peak_mb']:.0f} / {r['anon_peak_mb']:.0f}",
            f"{r['mb']:.0f}" if "mb" in r else "–",
            r.get("sanity", ""),
        ]
        lines.append(f"| {LABELS[kind]} | " + " | ".join(cells) + " |")
    table, found, total = "\n".join(lines), notes(rows, args.noise), time.perf_counter() - started
    print(
        table
        + "\n\n"
        + "\n".join(f"- {n}" for n in found)
        + f"\n\ntotal {total:.0f} s, workdir {args.workdir}"
    )
    if not args.write:
        return
    machine = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "unknown CPU",
    )
    section = "\n".join(
        [
            HEADER,
            "",
            f"{date.today().isoformat()}, {machine}, {os.cpu_count()} cores, no GPU, load average ≈ {os.getloadavg()[0]:.1f} at the "
            "end (other work shared the machine: times are indicative, memory is not affected). mergekit 0.1.5, float32. Parents: "
            f"the bundled SmolLM2-135M-Instruct ({sum(f.stat().st_size for f in bundled.iterdir()) / 2**20:.0f} MB) and a copy with gaussian noise of {args.noise:g} x each "
            "tensor's std on every weight. One process per row. \"merge s\": mergekit's `run_merge` (baseline: load + interpolate + "
            'save); "run() s" adds the recipe\'s checks and cosine report. RSS = ru_maxrss, which counts mmapped safetensors pages '
            '(file-backed, reclaimable); anon = peak RssAnon sampled every 20 ms (memory really allocated); "merge" columns = '
            f"peaks when mergekit returns. Baseline measured in the same run. Total {total / 60:.1f} min.",
            "",
            table,
            "",
            *[f"- {n}" for n in found],
            "",
        ]
    )
    text = DOC.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(HEADER) + r".*?(?=\n## |\Z)", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    DOC.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
