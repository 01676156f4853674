"""A minimal server speaking Ollama's native API (/api/tags, /api/chat,
/api/pull, /api/version), backed by the real llama.cpp server.

No Ollama server can be installed on these machines, so this is how the
`ollama` backend's client code (langchain-ollama → ollama-python → HTTP) is
tested against real NDJSON streaming, `format` (JSON-schema constrained
decoding) and model management, with real generations from SmolLM2.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

MODEL_TAG = "smollm2:135m"


def _now() -> str:
    return datetime.now(UTC).isoformat()


class OllamaShim:
    def __init__(self, openai_base_url: str):
        self.openai_base_url = openai_base_url.rstrip("/")
        self.pulled: list[str] = []
        shim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _ndjson(self, events: list[dict]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()
                for event in events:
                    self.wfile.write((json.dumps(event) + "\n").encode())
                    self.wfile.flush()

            def do_GET(self):
                if self.path == "/api/tags":
                    models = [
                        {"name": MODEL_TAG, "model": MODEL_TAG, "modified_at": _now(), "size": 100_000_000}
                    ]
                    models += [{"name": n, "model": n, "modified_at": _now(), "size": 1} for n in shim.pulled]
                    self._json(200, {"models": models})
                elif self.path == "/api/version":
                    self._json(200, {"version": "0.0.0-shim"})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == "/api/pull":
                    name = body.get("model") or body.get("name")
                    if name == "does-not-exist":
                        self._ndjson([{"error": "pull model manifest: file does not exist"}])
                        return
                    shim.pulled.append(name)
                    self._ndjson(
                        [
                            {"status": "pulling manifest"},
                            {"status": "downloading", "total": 10, "completed": 10},
                            {"status": "success"},
                        ]
                    )
                elif self.path == "/api/chat":
                    self._chat(body)
                else:
                    self._json(404, {"error": "not found"})

            def _chat(self, body: dict) -> None:
                options = body.get("options") or {}
                request = {
                    "messages": [
                        {"role": m["role"], "content": m.get("content", "")} for m in body["messages"]
                    ],
                    "max_tokens": options.get("num_predict") or 64,
                    "temperature": options.get("temperature", 0.0),
                }
                fmt = body.get("format")
                if isinstance(fmt, dict):
                    request["response_format"] = {
                        "type": "json_schema",
                        "json_schema": {"name": "out", "schema": fmt},
                    }
                elif fmt == "json":
                    request["response_format"] = {"type": "json_object"}
                reply = httpx.post(
                    f"{shim.openai_base_url}/chat/completions", json=request, timeout=120
                ).json()
                text = reply["choices"][0]["message"]["content"] or ""
                done = {
                    "model": body["model"],
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": reply["usage"]["prompt_tokens"],
                    "eval_count": reply["usage"]["completion_tokens"],
                }
                if body.get("stream", True):
                    # Stream word by word, as Ollama streams token by token.
                    pieces = [w for w in text.split(" ")]
                    events = [
                        {
                            "model": body["model"],
                            "created_at": _now(),
                            "message": {"role": "assistant", "content": (p if i == 0 else " " + p)},
                            "done": False,
                        }
                        for i, p in enumerate(pieces)
                    ]
                    self._ndjson([*events, done])
                else:
                    done["message"]["content"] = text
                    self._json(200, done)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OllamaShim:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
