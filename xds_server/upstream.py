"""A tiny HTTP upstream that answers with its name: for the demo, Docker Compose and tests.

Run one with ``python -m xds_server.upstream --name blue --listen 0.0.0.0:8080``.
It records every request (path, Host, headers) and can be told to answer
slowly (the mirroring tests) or to fail every Nth request (the traffic metrics').
"""

from __future__ import annotations

import argparse
import http.server
import threading
import time
from dataclasses import dataclass

from xds_server.model.names import parse_endpoint


@dataclass(frozen=True)
class Seen:
    path: str
    host: str
    headers: dict[str, str]


class Upstream:
    """An HTTP/1.1 server in a background thread; ``close()`` stops it."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self.delay = 0.0
        # Answer every Nth request with 500 (0: never), for error-rate tests.
        self.fail_every = 0
        self.requests: list[Seen] = []
        self._served = {False: 0, True: 0}  # real, shadow
        self._lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"{host}:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per response and no Nagle: otherwise every response
            # waits ~40 ms for a delayed ACK between its header and body.
            wbufsize = 65536
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                served = upstream.record(
                    Seen(self.path, self.headers.get("Host", ""), dict(self.headers))
                )
                if upstream.delay:
                    time.sleep(upstream.delay)
                body = f"{upstream.name}\n".encode()
                failing = upstream.fail_every and served % upstream.fail_every == 0
                self.send_response(500 if failing else 200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def record(self, seen: Seen) -> int:
        """Keep ``seen``; returns how many requests of its kind (real, or shadows marked
        ``x-shadow``) this upstream has served with it, so ``fail_every`` fails each kind
        at its own rate whatever order they arrive in."""
        shadow = "x-shadow" in {name.lower() for name in seen.headers}
        with self._lock:
            self.requests.append(seen)
            self._served[shadow] += 1
            return self._served[shadow]

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="An HTTP server that answers with its name.")
    parser.add_argument("--name", required=True)
    parser.add_argument("--listen", default="0.0.0.0:8080", metavar="HOST:PORT")
    args = parser.parse_args()
    listen = parse_endpoint(args.listen)
    upstream = Upstream(args.name, listen.host, listen.port)
    print(f"upstream {args.name} listening on {upstream.endpoint}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
