"""A TCP proxy that loses a gRPC response: the request reaches the server, which handles
it (and commits), but the connection is cut the moment the server starts to answer, so
the client never hears the outcome. For testing what a client does then."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.processes import free_port

_FRAME_HEADER = 9
_HEADERS = 0x1


class ResponseCuttingProxy:
    """Forwards everything, except that on each connection the server's ``answers + 1``-th
    response (its HEADERS frame on a call's stream) is not forwarded: both sides are cut.

    ``answers``: responses let through first (the CLI's health check before a write).
    """

    def __init__(self, upstream: str, answers: int = 1) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._answers = answers
        self.address = f"127.0.0.1:{free_port()}"
        self._listener = socket.create_server(("127.0.0.1", int(self.address.split(":")[1])))
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._answer, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        _close(source, target)

    def _answer(self, server: socket.socket, client: socket.socket) -> None:
        """Server to client, frame by frame (after nothing: the server sends no preface)."""
        buffer = b""
        answered: set[int] = set()  # streams the server began to answer
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                buffer += data
                while len(buffer) >= _FRAME_HEADER:
                    length = int.from_bytes(buffer[:3], "big")
                    size = _FRAME_HEADER + length
                    if len(buffer) < size:
                        break
                    kind, stream = buffer[3], int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
                    if kind == _HEADERS and stream != 0 and stream not in answered:
                        if len(answered) >= self._answers:
                            self.cuts += 1
                            _close(server, client)
                            return
                        answered.add(stream)
                    client.sendall(buffer[:size])
                    buffer = buffer[size:]
        _close(server, client)

    def close(self) -> None:
        self._listener.close()


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            # shutdown() wakes the other pump, blocked in recv() on this socket.
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
