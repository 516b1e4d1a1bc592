"""Versioned, pre-serialised xDS resources and sets of them.

A ``Resource`` is serialised exactly once, when it is built: its version is a
digest of those bytes, and it makes (on first use, then keeps) fragments of a
SotW and of a delta response. Protobuf messages concatenate like a merge, so a
response for any stream is the fragments of its resources joined with a small
per-stream header (version, type, nonce): no stream ever serialises a resource
again.

A ``ResourceSet``'s version is the sum of its resources' hashes (of name and
version): independent of order, and so a set derived from another by a few
changes gets its version from those changes alone, whatever its size.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from xds_server.model.state import updated_map

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

# The spec's make-before-break order: clusters, their endpoints, listeners, routes.
PUSH_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
SHORT_NAMES = {CLUSTER: "cds", ENDPOINT: "eds", LISTENER: "lds", ROUTE: "rds"}
# Types Envoy subscribes to without names (all of them, "wildcard").
WILDCARD_TYPES = frozenset({CLUSTER, LISTENER})

_SET_HASH_MOD = 1 << 64


def digest(data: bytes) -> str:
    """A content version: 16 hex digits of SHA-256."""
    return hashlib.sha256(data).hexdigest()[:16]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def wire_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: what a message, bytes or string field
    serialises to, so serialised parts can be joined without building messages."""
    return b"".join(_field_parts(number, payload))


def _field_parts(number: int, payload: bytes) -> tuple[bytes, bytes, bytes]:
    return (_varint(number << 3 | 2), _varint(len(payload)), payload)


def _nested(number: int, parts: list[bytes]) -> list[bytes]:
    """The pieces of a length-delimited field holding ``parts`` (joined once, later)."""
    return [_varint(number << 3 | 2), _varint(sum(len(p) for p in parts)), *parts]


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
    value: bytes = field(repr=False)  # the message, serialised
    references: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls, type_url: str, name: str, message: Message, references: frozenset[str] = frozenset()
    ) -> Resource:
        # Deterministic: map fields in a fixed order, so the same content has
        # the same version in every process, after restarts and on replicas.
        value = message.SerializeToString(deterministic=True)
        return cls(type_url, name, digest(value), value, references)

    @property
    def packed(self) -> any_pb2.Any:
        """As an Any message (CSDS); not kept: the fragments are what streams send."""
        return any_pb2.Any(type_url=self.type_url, value=self.value)

    def _any(self) -> list[bytes]:
        # Pieces, joined once by the caller: a route table is megabytes, and each
        # concatenation would copy it again.
        return [*_field_parts(1, self.type_url.encode()), *_field_parts(2, self.value)]

    @functools.cached_property
    def sotw_fragment(self) -> bytes:
        """``DiscoveryResponse.resources`` holding this resource (made when first sent)."""
        return b"".join(_nested(2, self._any()))

    @functools.cached_property
    def delta_fragment(self) -> bytes:
        """``DeltaDiscoveryResponse.resources`` holding this resource (version, resource, name)."""
        entry = [
            *_field_parts(1, self.version.encode()),
            *_nested(2, self._any()),
            *_field_parts(3, self.name.encode()),
        ]
        return b"".join(_nested(2, entry))

    @functools.cached_property
    def set_hash(self) -> int:
        """This resource's share of a set's version."""
        name = f"{self.name}\0{self.version}".encode()
        return int.from_bytes(hashlib.sha256(name).digest()[:8], "big")


def _set_version(total: int) -> str:
    return f"{total % _SET_HASH_MOD:016x}"


@dataclass(frozen=True)
class ResourceSet:
    """An immutable set of resources of one type, versioned by its content."""

    type_url: str
    resources: Mapping[str, Resource]
    version: str
    # The sum behind ``version`` and the resources' bytes, for derived sets.
    total: int = field(default=0, repr=False, compare=False)
    size: int = field(default=0, repr=False, compare=False)
    # A derived set: the resources of its base it replaced or removed (the cache
    # keeps them a while, to recognise them when a node reports them), the base's
    # version, and what it put in and took out: a node holding the base needs
    # exactly those (delta xDS), found without comparing every name.
    replaced: tuple[Resource, ...] = field(default=(), repr=False, compare=False)
    base: str = field(default="", repr=False, compare=False)
    put: tuple[Resource, ...] = field(default=(), repr=False, compare=False)
    removed: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @staticmethod
    def version_of(resources: Iterable[Resource]) -> str:
        """The version a set of these resources has."""
        return _set_version(sum(r.set_hash for r in resources))

    @classmethod
    def of(cls, type_url: str, resources: Iterable[Resource]) -> ResourceSet:
        by_name = {r.name: r for r in sorted(resources, key=lambda r: r.name)}
        total = sum(r.set_hash for r in by_name.values())
        size = sum(len(r.value) for r in by_name.values())
        return cls(type_url, by_name, _set_version(total), total, size)

    def changed(self, put: Iterable[Resource] = (), removed: Iterable[str] = ()) -> ResourceSet:
        """This set with ``put`` resources in (by name) and ``removed`` names out: the
        work follows the changes (the name map is persistent: see ``updated_map``)."""
        by_name = {r.name: r for r in put}  # a name put twice: the last one counts
        removed = [n for n in dict.fromkeys(removed) if n in self.resources and n not in by_name]
        if not by_name and not removed:
            return self
        replaced = [self.resources[n] for n in [*removed, *by_name] if n in self.resources]
        total = self.total + sum(r.set_hash for r in by_name.values())
        total -= sum(r.set_hash for r in replaced)
        size = self.size + sum(len(r.value) for r in by_name.values())
        size -= sum(len(r.value) for r in replaced)
        resources = updated_map(self.resources, by_name, removed)
        return ResourceSet(
            self.type_url,
            resources,
            _set_version(total),
            total,
            size,
            tuple(replaced),
            base=self.version,
            put=tuple(by_name.values()),
            removed=tuple(removed),
        )

    @functools.cached_property
    def names(self) -> frozenset[str]:
        return frozenset(self.resources)

    def versions(self) -> dict[str, str]:
        return {name: r.version for name, r in self.resources.items()}

    @functools.cached_property
    def references(self) -> frozenset[str]:
        """Everything the resources in this set depend on (see ``Resource``)."""
        if len(self.resources) == 1:
            return next(iter(self.resources.values())).references
        return frozenset().union(*(r.references for r in self.resources.values()))

    def only(self, names: Iterable[str]) -> ResourceSet:
        """The subset with these names (those that exist), in this set's order."""
        wanted = names if isinstance(names, set | frozenset) else set(names)
        kept = {n: r for n, r in self.resources.items() if n in wanted}
        total = sum(r.set_hash for r in kept.values())
        size = sum(len(r.value) for r in kept.values())
        return ResourceSet(self.type_url, kept, _set_version(total), total, size)

    def sotw_response(self, nonce: str) -> bytes:
        """A complete serialised DiscoveryResponse for this set."""
        header = discovery_pb2.DiscoveryResponse(
            version_info=self.version, type_url=self.type_url, nonce=nonce
        )
        fragments = [r.sotw_fragment for r in self.resources.values()]
        return b"".join([header.SerializeToString(), *fragments])


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
    return b"".join([header.SerializeToString(), *(r.delta_fragment for r in resources)])
