"""A real HTTP webhook receiver for hook tests: records every request, answers as told.

It runs in a thread of the test process on a loopback port. ``answers`` is a queue of
status codes to give before answering 200 (``[500, 500, 500]``: three failures first);
``hang`` makes it hold requests open and never answer them (dropped once cleared);
``stop``/``start`` take it down and bring it back on the same port.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.processes import free_port


@dataclass(frozen=True)
class Delivery:
    """One request the receiver got, and what it answered."""

    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def signed_by(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-xds-signature", ""), expected)


class Receiver:
    """``url`` is where hooks POST; ``deliveries`` what arrived, in arrival order."""

    def __init__(self, delay: float = 0.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.deliveries: list[Delivery] = []
        self.answers: list[int] = []
        self.hang = threading.Event()
        self.open_requests = 0
        self.delay = delay
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._released = threading.Event()

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.open_requests += 1
                try:
                    held = receiver.hang.is_set()
                    while receiver.hang.is_set() and not receiver._released.is_set():
                        time.sleep(0.05)
                    if held or receiver._released.is_set():
                        return  # never answered: the connection is dropped
                    time.sleep(receiver.delay)
                    with receiver._lock:
                        status = receiver.answers.pop(0) if receiver.answers else 200
                        receiver.deliveries.append(
                            Delivery(
                                {k.lower(): v for k, v in self.headers.items()},
                                body,
                                status,
                                time.time(),
                            )
                        )
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                finally:
                    with receiver._lock:
                        receiver.open_requests -= 1

            def log_message(self, *args: Any) -> None:
                pass

        self._released.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Take the receiver down: connections are refused until ``start``."""
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[Delivery]:
        """The requests answered 2xx."""
        with self._lock:
            return [d for d in self.deliveries if 200 <= d.status < 300]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Delivery]:
        """Wait until ``count`` requests were answered 2xx; those delivered then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            delivered = self.delivered()
            if len(delivered) >= count:
                return delivered
            time.sleep(0.05)
        raise AssertionError(
            f"{len(self.delivered())} deliveries after {timeout}s, expected {count}: "
            f"{[d.event['type'] for d in self.delivered()]}"
        )
