"""Request deserialisation that reports bad bytes instead of raising.

grpcio answers a raising request deserializer by itself, without saying what is
wrong: a unary call ends UNKNOWN or INTERNAL, and on an asyncio stream the error
escapes the handler's request iterator (the ADS stream then ended as if the
client had closed it, with OK). A handler given ``lenient(...)`` sees an
``Unparsable`` instead and can refuse it with INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Unparsable:
    """Request bytes that are not the method's message."""

    message_type: str
    error: str


def lenient(message_class: type[M]) -> Callable[[bytes], M | Unparsable]:
    """A deserializer for ``message_class`` that hands undecodable bytes on as ``Unparsable``."""

    def parse(data: bytes) -> M | Unparsable:
        try:
            return message_class.FromString(data)
        except DecodeError as error:
            return Unparsable(message_class.DESCRIPTOR.full_name, str(error))

    return parse
