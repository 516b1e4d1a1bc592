"""Envoy resources as plain documents (snake_case, like Envoy's own YAML)."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from xds_server.translate.translator import EnvoyResources


def message_to_document(message: Message) -> dict[str, Any]:
    """One resource as plain dicts and lists, field names as in Envoy's docs."""
    document: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return document


def resources_to_document(resources: EnvoyResources) -> dict[str, list[dict[str, Any]]]:
    """Every resource by kind, in the translator's (name-sorted) order."""
    return {
        "listeners": [message_to_document(m) for m in resources.listeners],
        "routes": [message_to_document(m) for m in resources.routes],
        "clusters": [message_to_document(m) for m in resources.clusters],
        "endpoints": [message_to_document(m) for m in resources.endpoints],
    }
