"""Safe retries of writes: what a request id (``x-request-id``) stands for, and the
first reply a repeat of a committed id is answered with."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import structlog
from google.protobuf.message import Message

from xds_server.api.call import Call
from xds_server.api.metadata import REPLAYED_METADATA_KEY, REQUEST_ID_METADATA_KEY, is_request_id
from xds_server.errors import InvalidRequest, Replayed
from xds_server.store.base import WriteRequest
from xds_server.v1 import operator_pb2 as pb

log = structlog.get_logger(__name__)

# Each write's reply type, by its request type: what a replayed reply decodes as.
_REPLY_TYPES: dict[str, type[Message]] = {
    method.input_type.full_name: getattr(pb, method.output_type.name)
    for method in pb.DESCRIPTOR.services_by_name["Operator"].methods
}


def retry_key(call: Call, reply: Callable[[Any], Message]) -> WriteRequest | None:
    """The call's request id with what it asks (the request and who asks it), and how
    to remember the reply given the store's result; None without a request id."""
    request_id = dict(call.context.invocation_metadata() or ()).get(REQUEST_ID_METADATA_KEY)
    if request_id is None:
        return None
    if not is_request_id(request_id):
        raise InvalidRequest(
            f"the request id {str(request_id)[:40]!r} is not valid: use up to 128 of "
            "A-Z a-z 0-9 . _ : - (or leave XDSCTL_REQUEST_ID unset: the CLI makes one)"
        )
    asked = hashlib.sha256()
    for part in (call.request.DESCRIPTOR.full_name, call.identity):
        asked.update(part.encode() + b"\0")
    asked.update(_without_secret(call.request).SerializeToString(deterministic=True))
    return WriteRequest(
        request_id, asked.hexdigest(), lambda result: reply(result).SerializeToString()
    )


def _without_secret(request: Message) -> Message:
    """The request without its secret (a hook's): the store keeps the fingerprint, and a
    plain hash of a short secret could be guessed from it. A repeat that differs only in
    the secret is answered as the first was, which is what the first did."""
    if "secret" not in request.DESCRIPTOR.fields_by_name:
        return request
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("secret")
    return copy


def first_reply(call: Call, retry: WriteRequest, replay: Replayed) -> Message:
    """The reply remembered for a repeated request id, the call marked as replayed."""
    log.info("operator.replayed", request=call.request.DESCRIPTOR.name, request_id=retry.id)
    call.context.set_trailing_metadata(((REPLAYED_METADATA_KEY, retry.id),))
    return _REPLY_TYPES[call.request.DESCRIPTOR.full_name].FromString(replay.reply)
