"""Which node ids an Envoy's client certificate vouches for (mTLS on the xDS port).

A node may use the id its certificate names: the last path segment of a URI
SAN (``spiffe://example.org/ns/prod/envoy-7`` vouches for ``envoy-7``), a
whole URI SAN, or the subject's common name. Anything else is an Envoy posing
as another node, refused with PERMISSION_DENIED.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CertificateNames:
    """The names in a verified client certificate, as gRPC's auth context reports them."""

    common_name: str | None
    uris: tuple[str, ...]

    @classmethod
    def of(cls, auth_context: Mapping[str, Iterable[bytes]]) -> CertificateNames:
        """The names gRPC verified in the peer's certificate (URI SANs only: DNS SANs name
        hosts, not nodes)."""
        names = [v.decode(errors="replace") for v in auth_context.get("x509_common_name", [])]
        sans = [
            v.decode(errors="replace")
            for v in auth_context.get("x509_subject_alternative_name", [])
        ]
        return cls(names[0] if names else None, tuple(s for s in sans if "://" in s))

    def vouches_for(self, node_id: str) -> bool:
        """Whether a node may use this id: see the module docstring."""
        return (
            node_id == self.common_name
            or node_id in self.uris
            or any(uri.rstrip("/").rsplit("/", 1)[-1] == node_id for uri in self.uris)
        )

    @property
    def identity(self) -> str:
        """The certificate's name for logs and per-identity limits."""
        return self.uris[0] if self.uris else f"CN={self.common_name}"

    def describe(self) -> str:
        """The names, for a refusal's message and log."""
        uris = ", ".join(self.uris) or "none"
        return f"URI SANs: {uris}; CN: {self.common_name or 'none'}"
