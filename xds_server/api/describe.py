"""The command line each history entry records, rebuilt from the API request.

Built on the server, not sent by the client, so any API client gets a
faithful record of what it asked for.
"""

from __future__ import annotations

from xds_server.model.state import Endpoint
from xds_server.v1 import operator_pb2 as pb


def _option(flag: str, value: object, present: bool = True) -> list[str]:
    return [flag, str(value)] if present else []


def _endpoints(endpoints: list[pb.Endpoint]) -> list[str]:
    return [word for e in endpoints for word in ("--endpoint", str(Endpoint(e.host, e.port)))]


def _guard(request: object) -> list[str]:
    present = request.HasField("if_revision")  # type: ignore[attr-defined]
    return _option("--if-revision", getattr(request, "if_revision", 0), present)


def describe_apply(request: pb.ApplyRequest) -> str:
    words = ["apply", "--service", request.service]
    if request.HasField("deployment_tag"):
        words += ["--deployment-tag", request.deployment_tag]
    if request.bluegreen:
        words.append("--bluegreen")
    if request.in_place:
        words.append("--in-place")
    words += _endpoints(list(request.endpoints))
    words += [w for label in request.labels for w in ("--label", f"{label.key}={label.value}")]
    return " ".join(words + _guard(request))


def describe_set_traffic(request: pb.SetTrafficRequest) -> str:
    tags = ",".join(f"{w.tag}={w.weight}" for w in request.weights)
    mirrors = ",".join(f"{m.tag}={m.percent}" for m in request.mirrors)
    words = ["traffic set", "--service", request.service, "--tags", tags]
    words += _option("--mirror", mirrors, bool(mirrors))
    words += _header_option("--sticky-header", "--no-sticky", request, "sticky_header")
    return " ".join(words + _guard(request) + _force(request))


def _force(request: object) -> list[str]:
    return ["--force"] if getattr(request, "force", False) else []


def _header_option(flag: str, off_flag: str, request: object, field: str) -> list[str]:
    """A header setting as typed: the flag and its value, the off flag, or nothing."""
    if not request.HasField(field):  # type: ignore[attr-defined]
        return []
    value = getattr(request, field)
    return [flag, value] if value else [off_flag]


def describe_configure_service(request: pb.ConfigureServiceRequest) -> str:
    words = ["services set", request.service]
    words += [w for domain in request.domains for w in ("--domain", domain)]
    words += _header_option("--override-header", "--no-override-header", request, "override_header")
    words += _header_option("--shadow-header", "--no-shadow-header", request, "shadow_header")
    if request.HasField("mirror_host_suffix"):
        words.append(
            "--mirror-host-suffix" if request.mirror_host_suffix else "--no-mirror-host-suffix"
        )
    return " ".join(words + _guard(request))


def describe_promote(request: pb.PromoteTrafficRequest) -> str:
    words = ["traffic promote", "--service", request.service]
    words += _option("--to", request.to_tag, bool(request.to_tag))
    return " ".join(words + _guard(request) + _force(request))


def describe_rollback(request: pb.RollbackTrafficRequest) -> str:
    words = ["traffic rollback", "--service", request.service]
    words += _option("--to-revision", request.to_revision, request.HasField("to_revision"))
    return " ".join(words + _guard(request) + _force(request))


def describe_start_rollout(request: pb.StartRolloutRequest) -> str:
    words = ["rollout start", "--service", request.service, "--to", request.to_tag]
    words += ["--steps", ",".join(request.steps)]
    words += _option("--interval", f"{request.interval_seconds:g}s")
    words += _option("--max-error-rate", request.max_error_rate, bool(request.max_error_rate))
    words += _option("--max-p99", request.max_p99, bool(request.max_p99))
    words += _option("--min-requests", request.min_requests, request.HasField("min_requests"))
    words += _option("--failure-limit", request.failure_limit, request.HasField("failure_limit"))
    timeout = request.no_data_timeout_seconds
    words += _option("--no-data-timeout", f"{timeout:g}s", bool(timeout))
    return " ".join(words)


def describe_change_rollout(request: pb.ChangeRolloutRequest) -> str:
    words = ["rollout", request.action, "--service", request.service]
    if request.full:
        words.append("--full")
    words += _option("--reason", repr(request.reason), bool(request.reason))
    return " ".join(words)
