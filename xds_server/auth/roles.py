"""Who may call what: the one role table (docs/security.md prints it).

Roles are ordered: an operator may do everything a viewer may, an admin
everything an operator may. A method missing from the table needs admin, so
a service added later is closed until someone decides otherwise (a test
checks that every served method is listed).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from xds_server.errors import InvalidRequest


class Role(enum.IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def parse_role(text: str) -> Role:
    """``viewer``, ``operator`` or ``admin``."""
    try:
        return Role[text.strip().upper()]
    except KeyError:
        names = ", ".join(role.label for role in Role)
        raise InvalidRequest(f"unknown role {text!r}: use one of {names}") from None


@dataclass(frozen=True)
class MethodRule:
    """What a method needs: a role (None: no authentication) and whether it writes
    (writes count against the per-identity write rate)."""

    role: Role | None
    command: str
    writes: bool = False


_OPERATOR = "/xds_server.v1.Operator/"
_CSDS = "/envoy.service.status.v3.ClientStatusDiscoveryService/"

METHOD_RULES: dict[str, MethodRule] = {
    # Load balancers and orchestrators probe health without credentials.
    "/grpc.health.v1.Health/Check": MethodRule(None, "health check"),
    "/grpc.health.v1.Health/Watch": MethodRule(None, "health watch"),
    "/grpc.health.v1.Health/List": MethodRule(None, "health list"),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": MethodRule(
        Role.VIEWER, "reflection"
    ),
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": MethodRule(
        Role.VIEWER, "reflection"
    ),
    _CSDS + "FetchClientStatus": MethodRule(Role.VIEWER, "CSDS"),
    _CSDS + "StreamClientStatus": MethodRule(Role.VIEWER, "CSDS"),
    _OPERATOR + "GetTraffic": MethodRule(Role.VIEWER, "traffic get"),
    _OPERATOR + "ListHistory": MethodRule(Role.VIEWER, "traffic history"),
    _OPERATOR + "ListDeployments": MethodRule(Role.VIEWER, "deployments list"),
    _OPERATOR + "GetDeployment": MethodRule(Role.VIEWER, "deployments get"),
    _OPERATOR + "ListServices": MethodRule(Role.VIEWER, "services list"),
    _OPERATOR + "GetStatus": MethodRule(Role.VIEWER, "status"),
    _OPERATOR + "GetVersion": MethodRule(Role.VIEWER, "version"),
    _OPERATOR + "GetTrafficMetrics": MethodRule(Role.VIEWER, "metrics"),
    _OPERATOR + "GetRollout": MethodRule(Role.VIEWER, "rollout status"),
    _OPERATOR + "ListRollouts": MethodRule(Role.VIEWER, "rollout list"),
    _OPERATOR + "Watch": MethodRule(Role.VIEWER, "--watch"),
    _OPERATOR + "WaitForSync": MethodRule(Role.VIEWER, "--wait"),
    _OPERATOR + "Apply": MethodRule(Role.OPERATOR, "apply", writes=True),
    _OPERATOR + "SetTraffic": MethodRule(Role.OPERATOR, "traffic set", writes=True),
    _OPERATOR + "PromoteTraffic": MethodRule(Role.OPERATOR, "traffic promote", writes=True),
    _OPERATOR + "RollbackTraffic": MethodRule(Role.OPERATOR, "traffic rollback", writes=True),
    _OPERATOR + "SetEndpoints": MethodRule(Role.OPERATOR, "deployments set-endpoints", writes=True),
    _OPERATOR + "DeleteDeployment": MethodRule(Role.OPERATOR, "deployments delete", writes=True),
    _OPERATOR + "StartRollout": MethodRule(Role.OPERATOR, "rollout start", writes=True),
    _OPERATOR + "ChangeRollout": MethodRule(
        Role.OPERATOR, "rollout pause/resume/abort/promote", writes=True
    ),
    _OPERATOR + "SetServiceDomains": MethodRule(Role.ADMIN, "services set", writes=True),
    _OPERATOR + "ConfigureService": MethodRule(Role.ADMIN, "services set", writes=True),
    _OPERATOR + "ExportState": MethodRule(Role.ADMIN, "state export"),
    _OPERATOR + "ImportState": MethodRule(Role.ADMIN, "state import", writes=True),
    _OPERATOR + "CreateToken": MethodRule(Role.ADMIN, "tokens create", writes=True),
    _OPERATOR + "ListTokens": MethodRule(Role.ADMIN, "tokens list"),
    _OPERATOR + "RevokeToken": MethodRule(Role.ADMIN, "tokens revoke", writes=True),
    # Hooks reach other systems (and run commands on this host): admin only, reads too.
    _OPERATOR + "AddHook": MethodRule(Role.ADMIN, "hooks add", writes=True),
    _OPERATOR + "ListHooks": MethodRule(Role.ADMIN, "hooks list"),
    _OPERATOR + "RemoveHook": MethodRule(Role.ADMIN, "hooks remove", writes=True),
    _OPERATOR + "TestHook": MethodRule(Role.ADMIN, "hooks test", writes=True),
    _OPERATOR + "ListHookDeliveries": MethodRule(Role.ADMIN, "hooks deliveries"),
}


def rule_for(method: str) -> MethodRule:
    """The rule for a full method name (``/package.Service/Method``); unknown ones need admin."""
    rule = METHOD_RULES.get(method)
    if rule is None:
        return MethodRule(Role.ADMIN, method, writes=True)
    return rule
