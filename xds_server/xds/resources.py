"""Versioned, pre-serialised xDS resources and sets of them.

A ``Resource`` is serialised exactly once, when it is built: its version is a
hash of those bytes, and it carries ready-made fragments of a SotW and of a
delta response. Protobuf messages concatenate like a merge, so a response for
any stream is the fragments of its resources joined with a small per-stream
header (version, type, nonce): no stream ever serialises a resource again.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

# The spec's make-before-break order: clusters, their endpoints, listeners, routes.
PUSH_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
SHORT_NAMES = {CLUSTER: "cds", ENDPOINT: "eds", LISTENER: "lds", ROUTE: "rds"}
# Types Envoy subscribes to without names (all of them, "wildcard").
WILDCARD_TYPES = frozenset({CLUSTER, LISTENER})


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class Resource:
    """One named resource, serialised once.

    ``references`` names what it depends on, one type down the push order: the
    route tables of a listener, the clusters of a route table, the assignment
    of an EDS cluster.
    """

    type_url: str
    name: str
    version: str
    packed: any_pb2.Any = field(repr=False)
    sotw_fragment: bytes = field(repr=False)
    delta_fragment: bytes = field(repr=False)
    references: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls, type_url: str, name: str, message: Message, references: frozenset[str] = frozenset()
    ) -> Resource:
        # Deterministic: map fields in a fixed order, so the same content has
        # the same version in every process, after restarts and on replicas.
        value = message.SerializeToString(deterministic=True)
        packed = any_pb2.Any(type_url=type_url, value=value)
        version = _digest(value)
        return cls(
            type_url=type_url,
            name=name,
            version=version,
            packed=packed,
            sotw_fragment=discovery_pb2.DiscoveryResponse(resources=[packed]).SerializeToString(),
            delta_fragment=discovery_pb2.DeltaDiscoveryResponse(
                resources=[discovery_pb2.Resource(name=name, version=version, resource=packed)]
            ).SerializeToString(),
            references=references,
        )


@dataclass(frozen=True)
class ResourceSet:
    """An immutable set of resources of one type, versioned by its content."""

    type_url: str
    resources: Mapping[str, Resource]
    version: str

    @classmethod
    def of(cls, type_url: str, resources: Iterable[Resource]) -> ResourceSet:
        by_name = {r.name: r for r in sorted(resources, key=lambda r: r.name)}
        listing = "\n".join(f"{name} {r.version}" for name, r in by_name.items())
        return cls(type_url=type_url, resources=by_name, version=_digest(listing.encode()))

    @functools.cached_property
    def names(self) -> frozenset[str]:
        return frozenset(self.resources)

    def versions(self) -> dict[str, str]:
        return {name: r.version for name, r in self.resources.items()}

    def references(self) -> frozenset[str]:
        """Everything the resources in this set depend on (see ``Resource``)."""
        return frozenset().union(*(r.references for r in self.resources.values()))

    def only(self, names: Iterable[str]) -> ResourceSet:
        """The subset with these names (those that exist)."""
        wanted = set(names)
        return ResourceSet.of(self.type_url, (r for n, r in self.resources.items() if n in wanted))

    def sotw_response(self, nonce: str) -> bytes:
        """A complete serialised DiscoveryResponse for this set."""
        header = discovery_pb2.DiscoveryResponse(
            version_info=self.version, type_url=self.type_url, nonce=nonce
        )
        fragments = (r.sotw_fragment for r in self.resources.values())
        return header.SerializeToString() + b"".join(fragments)


def delta_response(
    type_url: str,
    system_version: str,
    nonce: str,
    resources: Iterable[Resource],
    removed: Iterable[str],
) -> bytes:
    """A complete serialised DeltaDiscoveryResponse from pre-serialised resources."""
    header = discovery_pb2.DeltaDiscoveryResponse(
        system_version_info=system_version,
        type_url=type_url,
        nonce=nonce,
        removed_resources=sorted(removed),
    )
    return header.SerializeToString() + b"".join(r.delta_fragment for r in resources)
