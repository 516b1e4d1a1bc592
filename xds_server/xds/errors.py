"""How an ADS stream ends when its client breaks the protocol."""

from __future__ import annotations

import grpc


class ProtocolError(Exception):
    """The client broke the protocol; the stream ends with this status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
