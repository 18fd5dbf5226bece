"""An OpenAI-compatible chat-completions server on loopback that replays scripted replies.

Tests queue what the next requests get (a reply with its usage, an HTTP error such as 429 with
Retry-After, or a stall longer than the client's timeout) and read back the requests it received.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    """What one request gets: a chat completion, or an HTTP error, possibly after a stall."""

    content: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    finish_reason: str = "stop"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float  # time.monotonic() when the request arrived

    @property
    def messages(self) -> list[dict[str, str]]:
        return self.body.get("messages", [])

    @property
    def model(self) -> str:
        return self.body.get("model", "")


class FakeOpenAI:
    """Start with `with FakeOpenAI() as server:`; point a client at `server.base_url`."""

    def __init__(self) -> None:
        self.script: deque[Scripted] = deque()
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # wakes stalled handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # scripting -----------------------------------------------------------------------------
    def reply(self, content: str, prompt_tokens: int | None = None, completion_tokens: int | None = None,
              *, delay_s: float = 0.0, finish_reason: str = "stop") -> FakeOpenAI:
        """Queue a successful completion; usage defaults to word counts of prompt and reply."""
        self.script.append(Scripted(content, prompt_tokens, completion_tokens, delay_s=delay_s,
                                    finish_reason=finish_reason))
        return self

    def error(self, status: int, *, retry_after: float | None = None, message: str = "scripted error") -> FakeOpenAI:
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        self.script.append(Scripted(content=message, status=status, headers=headers))
        return self

    def stall(self, seconds: float) -> FakeOpenAI:
        """Queue a request that gets no answer for `seconds` (then a reply nobody reads)."""
        self.script.append(Scripted(content="too late", delay_s=seconds))
        return self

    @property
    def pending(self) -> int:
        return len(self.script)

    def _next(self, received: Received) -> Scripted | None:
        with self._lock:
            self.requests.append(received)
            return self.script.popleft() if self.script else None


def _handler_for(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes: without this, Nagle and delayed ACKs add ~40 ms
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model",
                                                             "created": 0, "owned_by": "tests"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
                return
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            scripted = server._next(received)
            if scripted is None:
                self._send(500, {"error": {"message": "fake server: no scripted response left", "type": "server_error"}})
                return
            if scripted.delay_s and server._stopping.wait(scripted.delay_s):
                return
            if scripted.status != 200:
                error = {"error": {"message": scripted.content, "type": "scripted", "code": str(scripted.status)}}
                self._send(scripted.status, error, scripted.headers)
                return
            self._send(200, _completion(body, scripted), scripted.headers)

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a scripted stall): nothing to answer

    return Handler


def _completion(request: dict[str, Any], scripted: Scripted) -> dict[str, Any]:
    content = scripted.content or ""
    prompt_words = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
    prompt_tokens = scripted.prompt_tokens if scripted.prompt_tokens is not None else prompt_words
    completion_tokens = scripted.completion_tokens if scripted.completion_tokens is not None else len(content.split())
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake-model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": scripted.finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
