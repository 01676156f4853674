"""Perplexity of a GGUF as llama.cpp itself computes it (xllamacpp's embedded server).

Why not simply ask the server for the prompt's log-probs: it cannot give them (measured on
xllamacpp 2026.10): `/completion` and `/v1/completions` accept `echo: true` but ignore it and
return log-probs of generated tokens only; `n_probs` covers generated tokens only too.

What works is forced decoding, one request per scored token: send the context as token ids,
force the next text token with `logit_bias` {token: +1000} and greedy sampling, and read the
`logprob` the server reports for it. With `post_sampling_probs: false` that value comes from
the raw logits (llama.cpp's `get_token_probabilities`), before the sampler chain, so the bias
does not touch it; `cache_prompt` keeps the context in the KV cache, so each request only
decodes one new token (~10 ms for SmolLM2-135M on 2 CPU cores).

One more server quirk: it withholds the log-prob of a token that ends inside a UTF-8
character (byte-level BPE splits most Chinese characters into two tokens). For those, a
harmless complete token is forced instead and the text token's log-prob is read from the
`top_logprobs` of that same position (top 256, or the whole vocabulary if it ranks lower);
the next request's context differs only in its last token, so the cache still serves it.

The windows are the same as
the transformers computation, so the two numbers differ only by the arithmetic: llama.cpp
multiplies quantized weights with 8-bit-quantized activations, the HF conversion in float32
(SmolLM2-135M Q4_1 on the first 4096 tokens of the course notes: 15.77 vs 15.72).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from llmtutor.errors import BackendUnavailableError
from llmtutor.training.evaluate.perplexity import windows
from llmtutor.training.progress import ProgressCallback, check_cancelled, emit

_BIAS = 1000.0  # logits are O(10-30): this makes the forced token the greedy choice


def llamacpp_window_nll(
    gguf: Path,
    ids: list[int],
    max_length: int,
    stride: int,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    label: str = "",
) -> tuple[float, int]:
    """(sum of negative log-likelihoods in nats, number of scored tokens), same windows as
    `perplexity.sliding_window_nll`, scored by llama.cpp on the quantized weights."""
    import httpx

    server = start_server(gguf, n_ctx=max_length + 8)
    base = server.listening_address.rstrip("/")
    url = base + "/completion"
    plan = windows(len(ids), max_length, stride)
    total = sum(w.end - w.first_scored for w in plan)
    nll, count = 0.0, 0
    try:
        with httpx.Client(timeout=120) as client:
            filler = client.post(base + "/tokenize", json={"content": "."}).json()["tokens"][0]
            for w in plan:
                for pos in range(w.first_scored, w.end):
                    if count % 32 == 0:
                        check_cancelled(cancel)
                        emit(progress, "eval", f"{label}: perplexity (llama.cpp)", step=count, total=total)
                    nll -= _forced_logprob(client, url, ids[w.begin : pos], ids[pos], filler)
                    count += 1
    finally:
        del server  # the destructor stops the server loop
    emit(progress, "eval", f"{label}: perplexity (llama.cpp)", step=count, total=total)
    return nll, count


def start_server(gguf: Path, n_ctx: int) -> Any:
    """An embedded llama.cpp server on a free port, CPU only (numbers must not depend on which
    machine has a GPU); stop it with `del server`."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.n_ctx = n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = os.cpu_count() or 2
    params.cpuparams_batch.n_threads = params.cpuparams.n_threads
    params.n_gpu_layers = 0
    params.port = 0
    params.verbosity = -1
    params.endpoint_metrics = False
    try:
        return xllamacpp.Server(params)
    except Exception as exc:
        raise BackendUnavailableError(
            f"llama.cpp could not load {gguf}: {exc}",
            "check the file with `llmtutor models list`, or export it again",
        ) from exc


def _forced_logprob(client: Any, url: str, context: list[int], token: int, filler: int) -> float:
    body = {
        "prompt": context,
        "n_predict": 1,
        "n_probs": 1,
        "post_sampling_probs": False,
        "logit_bias": [[token, _BIAS]],
        "temperature": 0.0,
        "cache_prompt": True,
    }
    probs = _post(client, url, body)
    if probs and probs[0].get("id") == token:
        return float(probs[0]["logprob"])
    # No log-prob for a token ending mid-character: read it from the position's top list.
    for n_probs in (256, 1 << 20):  # the server clamps n_probs to the vocabulary size
        body.update(n_probs=n_probs, logit_bias=[[filler, _BIAS]])
        probs = _post(client, url, body)
        top = {p.get("id"): p.get("logprob") for p in (probs[0].get("top_logprobs", []) if probs else [])}
        if token in top:
            return float(top[token])
    raise BackendUnavailableError(
        f"llama.cpp returned no log-prob for token {token}",
        "set llamacpp_perplexity=False; the HF perplexity still stands",
    )


def _post(client: Any, url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(url, json=body)
    response.raise_for_status()
    return response.json().get("completion_probabilities") or []
