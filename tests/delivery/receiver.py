"""A real webhook receiver on a free local port, scripted to fail.

It verifies every request's signature exactly as docs/destinations.md tells a
receiver to (HMAC-SHA256 over `timestamp.body`, compared in constant time) and
answers from a script: a list of actions used one per request ("500", "timeout",
"400", "429", or a function of the batch returning a status), then 200.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Action = str | Callable[[list[dict[str, Any]]], int]


class Receiver:
    def __init__(self, secret: str, *, hang: float = 0.6) -> None:
        self.secret = secret
        self.hang = hang
        self.script: list[Action] = []
        self.always: Action | None = None
        self.requests = 0
        self.bad_signatures = 0
        self.delivered: list[dict[str, Any]] = []
        """Events of the requests answered 2xx, in the order they came."""
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.handle(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A client that timed out has closed the socket; answering it fails quietly.
        self.server.handle_error = lambda *args: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/playerlog"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def positions(self) -> list[int]:
        with self._lock:
            return [e["position"] for e in self.delivered]

    def event_ids(self) -> set[str]:
        with self._lock:
            return {e["event_id"] for e in self.delivered}

    def _signed(self, handler: BaseHTTPRequestHandler, body: bytes) -> bool:
        timestamp = handler.headers.get("X-Playerlog-Timestamp", "")
        signature = handler.headers.get("X-Playerlog-Signature", "")
        expected = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        recent = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
        return recent and hmac.compare_digest("sha256=" + expected, signature)

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self._lock:
            self.requests += 1
            action = self.script.pop(0) if self.script else self.always
        if not self._signed(handler, body):
            with self._lock:
                self.bad_signatures += 1
            self._answer(handler, 401)
            return
        events = json.loads(body)["events"]
        if action == "timeout":
            time.sleep(self.hang)
            status = 200  # processed, but too late: the sender retries (a duplicate)
        elif callable(action):
            status = action(events)
        elif action is not None:
            status = int(action)
        else:
            status = 200
        if 200 <= status < 300:
            with self._lock:
                self.delivered.extend(events)
                self.bodies.append(body)
        self._answer(handler, status)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int) -> None:
        try:
            handler.send_response(status)
            if status == 429:
                handler.send_header("Retry-After", "0")
            handler.send_header("Content-Length", "2")
            handler.end_headers()
            handler.wfile.write(b"{}")
        except OSError:
            pass
