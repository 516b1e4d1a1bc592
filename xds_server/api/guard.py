"""The operator port's gatekeeper: who is calling, may they, and are they within limits.

One gRPC interceptor in front of every service on the port (operator API,
CSDS, reflection, health), so no method can forget to check. Each call is
resolved to an ``Identity`` (token, client certificate, or the anonymous
caller of a server that has no token yet), checked against the role table
(``xds_server.auth.roles``), counted against the in-flight limits and, for
writes, the per-identity write rate. The identity is handed to the servicer
through a context variable, for the audit log and the in-transaction token
check.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog

from xds_server.api.grpc_status import status_of
from xds_server.auth.identity import (
    ANONYMOUS,
    Identity,
    TokenBook,
    bearer_token,
    set_current_identity,
)
from xds_server.auth.limits import StreamCounter, StreamLease, WriteRateLimiter, peer_host
from xds_server.auth.roles import MethodRule, Role, rule_for
from xds_server.auth.tls import is_loopback
from xds_server.auth.tokens import token_hash
from xds_server.errors import Forbidden, Unauthenticated, XdsServerError

log = structlog.get_logger(__name__)

NO_TOKEN = (
    "not authenticated: this server needs a token: set XDSCTL_TOKEN or pass --token-file "
    "(an admin creates one with `xdsctl tokens create --name NAME --role ROLE`)"
)


@dataclass
class ApiAccess:
    """How callers of the operator port are let in."""

    tokens: TokenBook
    # Client-certificate subject (as gRPC prints it, e.g. "CN=alice,O=ops") → role.
    cert_roles: Mapping[str, Role] = field(default_factory=dict)
    _warned_open: bool = field(default=False, init=False)

    @property
    def is_open(self) -> bool:
        """While no token exists and no certificate is mapped, callers on this machine are
        let in as admin, to create the first token. The API only listens beyond loopback
        with authentication configured (or --insecure), so this never opens it to others."""
        return self.tokens.empty and not self.cert_roles

    def warn_if_open(self) -> None:
        """Log, once, that local callers get in without a credential."""
        if self.is_open and not self._warned_open:
            self._warned_open = True
            log.warning(
                "api.open",
                reason="no token exists yet: every caller on this machine is admin",
                fix="create the first admin token: xdsctl tokens create --name NAME --role admin",
            )

    def _by_token(self, token: str) -> Identity:
        record = self.tokens.find(token_hash(token)) if token else None
        if record is None:
            raise Unauthenticated(
                "not authenticated: the token is not known here (revoked, mistyped, or "
                "made for another server): ask an admin for one (`xdsctl tokens create`)"
            )
        return Identity(f"token:{record.name}", record.role, record.sha256)

    def prescreen(self, rule: MethodRule, metadata: Mapping[str, Any]) -> Identity | None:
        """What can be decided from the call's headers alone, before its request is read:
        the token's identity, authorised (or refused); no credential where none could do
        is refused. None: the connection decides (a certificate, a local caller)."""
        if rule.role is None:
            return None
        token = bearer_token(metadata)
        if token is not None:
            identity = self._by_token(token)
            authorise(rule, identity)
            return identity
        if not self.is_open and not self.cert_roles:
            raise Unauthenticated(NO_TOKEN)
        return None

    def identify(self, auth_context: Mapping[str, Any], peer: str) -> Identity:
        """The identity of a caller that sent no token, or ``Unauthenticated`` naming what
        is missing."""
        subject = _first(auth_context, "x509_subject")
        if subject is not None and subject in self.cert_roles:
            return Identity(f"cert:{subject}", self.cert_roles[subject])
        if self.is_open and is_loopback(peer_host(peer)):
            self.warn_if_open()
            return ANONYMOUS
        if subject is not None:
            raise Unauthenticated(
                f"not authenticated: client certificate {subject!r} has no role: map it with "
                f"`xdsctl serve --api-cert-role '{subject}=ROLE'`, or send a token"
            )
        if self.is_open:
            raise Unauthenticated(
                "not authenticated: this server has no token yet and lets in only callers on "
                "its own machine: create the first one there (`xdsctl tokens create --name "
                "admin --role admin`)"
            )
        raise Unauthenticated(NO_TOKEN)


def authorise(rule: MethodRule, identity: Identity) -> None:
    """Refuse a call the identity's role does not allow, naming the role it needs."""
    if rule.role is not None and identity.role < rule.role:
        raise Forbidden(
            f"not allowed: {rule.command} needs the {rule.role.label} role, and "
            f"{identity.name} has {identity.role.label}: use a credential with the "
            f"{rule.role.label} role (or higher)"
        )


def _first(auth_context: Mapping[str, Any], key: str) -> str | None:
    values = auth_context.get(key) or []
    return values[0].decode(errors="replace") if values else None


Behaviour = Callable[..., Any]


class ApiGuard(grpc.aio.ServerInterceptor):
    """Wraps every method's behaviour with ``admit`` (see the module docstring)."""

    def __init__(self, access: ApiAccess, calls: StreamCounter, writes: WriteRateLimiter) -> None:
        self.access = access
        self.calls = calls
        self.writes = writes

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: gRPC answers UNIMPLEMENTED
        rule = rule_for(handler_call_details.method)
        metadata = dict(handler_call_details.invocation_metadata or ())
        try:
            by_token = self.access.prescreen(rule, metadata)
        except XdsServerError as error:
            return self._refusing(rule, error)
        replaced = {
            kind: self._guarded(rule, by_token, getattr(handler, kind))
            for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
            if getattr(handler, kind) is not None
        }
        return handler._replace(**replaced)  # type: ignore[attr-defined, no-any-return]

    def _refusing(self, rule: MethodRule, error: XdsServerError) -> grpc.RpcMethodHandler[Any, Any]:
        """A handler that refuses without reading the request: declared streaming, so gRPC
        hands it the call before any message arrives (a unary handler would first take in
        a request of up to --api-max-message-bytes from a caller known to be refused)."""

        async def refuse(
            _requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
        ) -> None:
            await self._refuse(rule, context, error)

        return grpc.stream_stream_rpc_method_handler(refuse)

    def admit(
        self,
        rule: MethodRule,
        by_token: Identity | None,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> StreamLease | None:
        """Identify (unless the token already did), authorise and count one call; the
        identity goes to the servicer.

        Health checks carry no credential and are not counted: an unauthenticated caller
        must not be able to use up the slots of the operators sharing its address."""
        if rule.role is None:
            return None
        identity = by_token
        if identity is None:
            identity = self.access.identify(context.auth_context(), context.peer())
            authorise(rule, identity)
        lease = self.calls.open(context.peer())
        try:
            lease.add_identity(
                identity.name if identity.authenticated else peer_host(context.peer())
            )
            if rule.writes:
                self.writes.spend(identity.name)
        except XdsServerError:
            lease.release()
            raise
        set_current_identity(identity)
        return lease

    async def _refuse(
        self, rule: MethodRule, context: grpc.aio.ServicerContext[Any, Any], error: XdsServerError
    ) -> None:
        code = status_of(error)
        log.info(
            "api.refused",
            command=rule.command,
            code=code.name,
            peer=context.peer(),
            error=str(error),
        )
        await context.abort(code, str(error))

    def _guarded(
        self, rule: MethodRule, by_token: Identity | None, behaviour: Behaviour
    ) -> Behaviour:
        if inspect.isasyncgenfunction(behaviour):

            @functools.wraps(behaviour)
            async def streaming(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                try:
                    lease = self.admit(rule, by_token, context)
                except XdsServerError as error:
                    await self._refuse(rule, context, error)
                    return
                try:
                    async for reply in behaviour(request, context):
                        yield reply
                finally:
                    if lease is not None:
                        lease.release()

            return streaming

        @functools.wraps(behaviour)
        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                lease = self.admit(rule, by_token, context)
            except XdsServerError as error:
                await self._refuse(rule, context, error)
                return None
            try:
                return await behaviour(request, context)
            finally:
                if lease is not None:
                    lease.release()

        return unary
