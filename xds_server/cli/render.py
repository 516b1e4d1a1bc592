"""How the CLI prints things: YAML and JSON for scripts, tables and lines for people.

The only module that shapes output: a command's handler calls the API and hands
the reply to one of the views here (``applied``, ``status``, ...), so every
table, YAML and JSON form of a reply is defined once.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import yaml

from xds_server.api.sync_counts import connected_in_sync
from xds_server.model.state import DEFAULT_SHADOW_HEADER, Endpoint
from xds_server.v1 import operator_pb2 as pb

Item = TypeVar("Item")

BOOTSTRAP_HEADER = (
    "# Envoy bootstrap for xds_server, made by `xdsctl bootstrap`: regenerate, don't edit.\n"
)


# --- the formats ---------------------------------------------------------------


def structured(data: Any, output: str, compact: bool = False) -> str:
    """``data`` as YAML or JSON text, ending in a newline; ``compact`` JSON is one line
    (what ``--watch`` prints per update)."""
    if output == "json":
        return json.dumps(data) + "\n" if compact else json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


# Every read command takes these, in this order; tables come first (the default),
# `wide` adds columns.
READ_OUTPUTS = ("table", "wide", "yaml", "json")
TABLES = ("table", "wide")


def age(stamp: str, now: float | None = None) -> str:
    """How long ago an RFC 3339 time was, as a table shows it: ``42s``, ``5m``, ``3h``,
    ``2d`` (YAML and JSON keep the time itself); the time as given if it does not parse."""
    try:
        then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return stamp or "-"
    seconds = max(0, int((time.time() if now is None else now) - then))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart, like kubectl's."""
    cells = [list(headers)] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines) + "\n"


def counted(count: int, noun: str) -> str:
    """``1 Envoy``, ``3 Envoys``: a count with its noun in the right number."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _line_or_structured(output: str, line: str, data: Any) -> str:
    """``line`` for ``-o text``, else ``data`` as YAML or JSON."""
    return line if output == "text" else structured(data, output)


def _listing(
    items: Sequence[Item],
    output: str,
    headers: Sequence[str],
    row: Callable[[Item], Sequence[Any]],
    data: Callable[[Item], Any],
) -> str:
    """A list of replies: one table row each for ``-o table`` (and ``wide``), else a YAML
    or JSON list."""
    if output in TABLES:
        return table(headers, [row(item) for item in items])
    return structured([data(item) for item in items], output)


# --- the shapes of replies -----------------------------------------------------


def percent_value(text: str) -> int | float:
    """``"5"`` → 5, ``"0.25"`` → 0.25: numbers in YAML/JSON, as the operator wrote them."""
    return float(text) if "." in text else int(text)


def endpoint_text(endpoint: pb.Endpoint) -> str:
    """``HOST:PORT``, with an IPv6 host in brackets."""
    return str(Endpoint(host=endpoint.host, port=endpoint.port))


def traffic_data(traffic: pb.Traffic) -> dict[str, Any]:
    """The shape of ``traffic get``: tags, then mirror and routing (each only when set,
    so the seed's shape stays what scripts read), then revision."""
    data: dict[str, Any] = {
        "tags": [
            {"deployment_id": t.deployment_id, "tag": t.tag, "weight": t.weight}
            for t in traffic.tags
        ]
    }
    if traffic.mirror:
        data["mirror"] = [
            {"deployment_id": m.deployment_id, "tag": m.tag, "percent": percent_value(m.percent)}
            for m in traffic.mirror
        ]
    if _routing_words(traffic.routing):
        data["routing"] = routing_data(traffic.routing)
    data["revision"] = traffic.revision
    return data


def routing_data(routing: pb.Routing) -> dict[str, Any]:
    """A service's routing settings; a header that is off shows as null."""
    return {
        "override_header": routing.override_header or None,
        "sticky_header": routing.sticky_header or None,
        "shadow_header": routing.shadow_header or None,
        "mirror_host_suffix": routing.mirror_host_suffix,
    }


def deployment_data(deployment: pb.Deployment) -> dict[str, Any]:
    """One deployment as YAML or JSON shows it."""
    return {
        "id": deployment.id,
        "service": deployment.service,
        "tag": deployment.tag or None,
        "state": deployment.state,
        "desired": deployment.desired or None,
        "scale": deployment.scale or None,
        "endpoints": [endpoint_text(e) for e in deployment.endpoints],
        "labels": {label.key: label.value for label in deployment.labels},
        "created_at": deployment.created_at,
    }


def picture_data(picture: pb.Picture) -> dict[str, Any]:
    """A service's traffic before or after a change: weights, mirrors, bindings, and
    routing when it is not the default."""
    data = {
        "weights": {w.tag: w.weight for w in picture.weights},
        "mirrors": {m.tag: percent_value(m.percent) for m in picture.mirrors},
        "bindings": {b.tag: b.deployment_id for b in picture.bindings},
    }
    if _routing_words(picture.routing):
        data["routing"] = routing_data(picture.routing)
    return data


def history_data(entry: pb.HistoryEntry) -> dict[str, Any]:
    """One change of ``traffic history``, with the pictures before and after it, and why
    when the control plane made it itself."""
    data = {
        "revision": entry.revision,
        "time": entry.time,
        "actor": entry.actor,
        "command": entry.command,
        "before": picture_data(entry.before),
        "after": picture_data(entry.after),
    }
    if entry.reason:
        data["reason"] = entry.reason
    return data


def service_data(service: pb.Service) -> dict[str, Any]:
    """A service, its domains, its revision and its routing settings."""
    return {
        "name": service.name,
        "domains": list(service.domains),
        "revision": service.revision,
        "routing": routing_data(service.routing),
    }


def token_data(info: pb.TokenInfo) -> dict[str, Any]:
    """A token's public facts (there is no secret in TokenInfo to leak)."""
    return {
        "name": info.name,
        "role": info.role,
        "created_at": info.created_at,
        "created_by": info.created_by,
    }


def _node_data(node: pb.NodeStatus) -> dict[str, Any]:
    return {
        "node_id": node.node_id,
        "cluster": node.cluster,
        "connected": node.connected,
        "mode": node.mode or None,
        "peer": node.peer or None,
        "connected_since": node.connected_since or None,
        "disconnected_at": node.disconnected_at or None,
        "in_sync": node.in_sync,
        "change": node.change or None,
        "reason": node.reason or None,
        "types": {
            t.type: {"acked": t.acked_version, "current": t.current_version} for t in node.types
        },
        "nacks": [
            {"type": n.type, "version": n.version, "error": n.message, "time": n.time}
            for n in node.nacks
        ],
    }


def _node_row(node: pb.NodeStatus) -> tuple[str, ...]:
    return (
        node.node_id,
        node.cluster or "-",
        node.mode or "-",
        node.peer or "-",
        age(node.connected_since) if node.connected else f"gone {age(node.disconnected_at)}",
        str(node.change) if node.change else "-",
        "in sync" if node.in_sync else (node.reason if node.connected else "disconnected"),
    )


def _deployment_row(deployment: pb.Deployment) -> tuple[str, ...]:
    return (
        deployment.id,
        deployment.service,
        deployment.tag or "-",
        deployment.state,
        deployment.desired or "-",
        deployment.scale or "-",
        ",".join(endpoint_text(e) for e in deployment.endpoints),
        age(deployment.created_at),
    )


def _deployment_wide(deployment: pb.Deployment) -> tuple[str, ...]:
    return (
        *_deployment_row(deployment),
        ",".join(f"{label.key}={label.value}" for label in deployment.labels) or "-",
        deployment.created_at,
    )


_DEPLOYMENT_HEADERS = (
    "ID",
    "SERVICE",
    "TAG",
    "STATE",
    "DESIRED",
    "SCALE",
    "ENDPOINTS",
    "AGE",
)
_DEPLOYMENT_WIDE = (*_DEPLOYMENT_HEADERS, "LABELS", "CREATED")


# --- one view per reply --------------------------------------------------------


def applied(reply: pb.ApplyResponse, output: str) -> str:
    """What ``apply`` prints: a sentence, or the deployment, tag and revision as data."""
    deployment = reply.deployment
    line = (
        f"deployment {deployment.id} applied to service {deployment.service} "
        f"with tag {deployment.tag} (weight {reply.weight}, revision {reply.revision})\n"
    )
    data = {
        "deployment_id": deployment.id,
        "service": deployment.service,
        "tag": deployment.tag,
        "weight": reply.weight,
        "revision": reply.revision,
        "replaced_deployment_id": reply.replaced_deployment_id or None,
        "warnings": list(reply.warnings),
    }
    return _line_or_structured(output, line, data)


def traffic(policy: pb.Traffic, output: str, compact: bool = False) -> str:
    """A service's traffic policy as YAML or JSON (``compact``: JSON on one line)."""
    return structured(traffic_data(policy), output, compact)


def history(entries: Sequence[pb.HistoryEntry], output: str) -> str:
    """``traffic history``: one row per change, or every change with its pictures."""
    return _listing(
        entries,
        output,
        ("REVISION", "AGE", "ACTOR", "COMMAND"),
        lambda e: (e.revision, age(e.time), e.actor, e.command),
        history_data,
    )


def traffic_table(reply: pb.Traffic, held: Sequence[pb.Deployment], wide: bool) -> str:
    """``traffic get -o table``: each tag's weight, mirror share, deployment, endpoints
    and age (``wide``: the deployment's labels and desired state too)."""
    by_id = {d.id: d for d in held}
    mirrors = {m.tag: m.percent for m in reply.mirror}
    headers = ["TAG", "WEIGHT", "MIRROR", "DEPLOYMENT", "ENDPOINTS", "AGE"]
    if wide:
        headers += ["DESIRED", "LABELS"]
    rows = []
    for tag in reply.tags:
        deployment = by_id.get(tag.deployment_id)
        row = [
            tag.tag,
            f"{tag.weight}%",
            f"{mirrors[tag.tag]}%" if tag.tag in mirrors else "-",
            tag.deployment_id,
            ",".join(endpoint_text(e) for e in deployment.endpoints) if deployment else "-",
            age(deployment.created_at) if deployment else "-",
        ]
        if wide:
            labels = ",".join(f"{x.key}={x.value}" for x in deployment.labels) if deployment else ""
            row += [deployment.desired if deployment else "-", labels or "-"]
        rows.append(row)
    return table(headers, rows) + f"revision {reply.revision}\n"


def deployments(items: Sequence[pb.Deployment], output: str) -> str:
    """``deployments list``: one row per deployment (``wide``: its labels and creation
    time too), or a YAML or JSON list."""
    if output == "wide":
        return table(_DEPLOYMENT_WIDE, [_deployment_wide(d) for d in items])
    return _listing(items, output, _DEPLOYMENT_HEADERS, _deployment_row, deployment_data)


def deployment(item: pb.Deployment, output: str) -> str:
    """One deployment: a one-row table, or YAML or JSON (not a list)."""
    if output in TABLES:
        return deployments([item], output)
    return structured(deployment_data(item), output)


def in_sync_count(connected: int, in_sync: int) -> str:
    """``3/5 Envoys in sync``, or ``no Envoy is connected``."""
    if not connected:
        return "no Envoy is connected"
    return f"{in_sync}/{counted(connected, 'Envoy')} in sync"


def sync_counts(reply: pb.GetStatusResponse) -> tuple[int, int]:
    """(connected, in sync) of a status reply; from its nodes when it lists them (a
    server older than the counts sends only those)."""
    if not reply.nodes:
        return reply.connected, reply.in_sync
    return connected_in_sync(reply.nodes)


def sync_summary(reply: pb.GetStatusResponse) -> str:
    """How many connected Envoys hold the current config, as one sentence."""
    connected, in_sync = sync_counts(reply)
    line = in_sync_count(connected, in_sync)
    return f"{line} with the current config" if connected else line


def status(reply: pb.GetStatusResponse, output: str, compact: bool = False) -> str:
    """``status``: every Envoy, the store, and the summary line (``compact``: JSON on one
    line)."""
    nodes = reply.nodes
    if output not in TABLES:
        data = {
            "summary": sync_summary(reply),
            "change": reply.change,
            "store": reply.store,
            "nodes": [_node_data(n) for n in nodes],
        }
        return structured(data, output, compact)
    headers = ("NODE", "CLUSTER", "MODE", "PEER", "CONNECTED", "CHANGE", "SYNC")
    rows = [_node_row(n) for n in nodes]
    current = f"current config: change {reply.change}\n"
    return table(headers, rows) + current + f"store: {reply.store}\n" + sync_summary(reply) + "\n"


def service_configured(reply: pb.ConfigureServiceResponse, output: str) -> str:
    """``services set``: the domains a service now answers, and its routing settings."""
    service = reply.service
    domains = ", ".join(service.domains) or "no domain yet"
    verb = "created, answers" if reply.created else "answers"
    line = f"service {service.name} {verb} {domains}"
    settings = _routing_words(service.routing)
    if settings:
        line += f"; {settings}"
    if not reply.changed:
        line += f" (unchanged, revision {service.revision})"
    return _line_or_structured(output, line + "\n", service_data(service))


def _routing_words(routing: pb.Routing) -> str:
    """The settings that differ from the defaults, as a phrase ("" when none do)."""
    words = []
    if routing.override_header:
        words.append(f"override header {routing.override_header}")
    if routing.sticky_header:
        words.append(f"sticky by {routing.sticky_header}")
    if routing.shadow_header != DEFAULT_SHADOW_HEADER:
        marked = f"marked {routing.shadow_header}: 1" if routing.shadow_header else "unmarked"
        words.append(f"shadows {marked}")
    if not routing.mirror_host_suffix:
        words.append("shadows keep their Host")
    return ", ".join(words)


def services(items: Sequence[pb.Service], output: str) -> str:
    """``services list``: one row per service, or a YAML or JSON list."""
    return _listing(
        items,
        output,
        ("NAME", "DOMAINS", "REVISION", "OVERRIDE", "STICKY", "SHADOW"),
        lambda s: (
            s.name,
            ",".join(s.domains) or "- (not routed)",
            s.revision,
            s.routing.override_header or "-",
            s.routing.sticky_header or "-",
            s.routing.shadow_header or "-",
        ),
        service_data,
    )


def _figure(figures: pb.TrafficFigures, name: str) -> float | None:
    """An optional figure, None where the server had no data for it."""
    return getattr(figures, name) if figures.HasField(name) else None


def _tag_metrics_data(tag: pb.TagMetrics) -> dict[str, Any]:
    return {
        "tag": tag.tag,
        "deployment_id": tag.deployment_id,
        "weight": tag.weight,
        "mirror_percent": percent_value(tag.mirror_percent) if tag.mirror_percent else None,
        "requests": tag.real.requests,
        "requests_per_second": _figure(tag.real, "requests_per_second"),
        "error_rate": _figure(tag.real, "error_rate"),
        "p50_ms": _figure(tag.real, "p50_ms"),
        "p90_ms": _figure(tag.real, "p90_ms"),
        "p99_ms": _figure(tag.real, "p99_ms"),
        "envoys_reporting": tag.envoys_reporting,
        "shadow": {
            "requests": tag.shadow.requests,
            "requests_per_second": _figure(tag.shadow, "requests_per_second"),
            "error_rate": _figure(tag.shadow, "error_rate"),
        },
    }


def traffic_metrics_data(reply: pb.TrafficMetrics) -> dict[str, Any]:
    """The shape of ``metrics -o json``; ``null`` wherever there is no data."""
    return {
        "service": reply.service,
        "window_seconds": reply.window_seconds,
        "envoys_reporting": reply.envoys_reporting,
        "missing_intervals": reply.missing_intervals,
        "complete": reply.envoys_reporting > 0 and reply.missing_intervals == 0,
        "tags": [_tag_metrics_data(tag) for tag in reply.tags],
    }


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _millis(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def traffic_metrics(reply: pb.TrafficMetrics, output: str, compact: bool = False) -> str:
    """``metrics``: one row per tag, then what the figures cover; or YAML or JSON
    (``compact``: JSON on one line, for ``--watch``)."""
    data = traffic_metrics_data(reply)
    if output not in TABLES:
        return structured(data, output, compact)
    rows = [
        (
            t["tag"],
            t["deployment_id"],
            t["weight"],
            _rate(t["requests_per_second"]),
            _share(t["error_rate"]),
            _millis(t["p50_ms"]),
            _millis(t["p99_ms"]),
            _rate(t["shadow"]["requests_per_second"]),
            _share(t["shadow"]["error_rate"]),
            t["envoys_reporting"],
        )
        for t in data["tags"]
    ]
    headers = (
        "TAG",
        "DEPLOYMENT",
        "WEIGHT",
        "RPS",
        "5XX",
        "P50",
        "P99",
        "SHADOW RPS",
        "SHADOW 5XX",
        "ENVOYS",
    )
    return table(headers, rows) + _coverage(reply) + "\n"


def _coverage(reply: pb.TrafficMetrics) -> str:
    """What the figures cover, so a gap never reads as a healthy zero."""
    window = f"over the last {reply.window_seconds:g}s"
    if reply.envoys_reporting == 0:
        return f"no Envoy reported traffic for service {reply.service} {window}: no data"
    line = f"{counted(reply.envoys_reporting, 'Envoy')} reporting {window}"
    if reply.missing_intervals:
        line += (
            f"; incomplete: {reply.missing_intervals} Envoy-seconds without a flush "
            "(their requests are not counted)"
        )
    return line


def _when(seconds: float) -> str:
    """A rollout's time as yaml/json show it: UTC, to the millisecond."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


def rollout_data(reply: pb.Rollout, now: float) -> dict[str, Any]:
    """The shape of ``rollout status -o json``; the keys scripts read come first."""
    running = reply.phase in ("progressing", "holding")
    return {
        "service": reply.service,
        "phase": reply.phase,
        "step": reply.step + 1,
        "steps": len(reply.steps),
        "weights": {w.tag: w.weight for w in reply.weights},
        "reason": reply.reason,
        "verdicts": [
            {
                "at": _when(v.at),
                "step": v.step + 1,
                "outcome": v.outcome,
                "requests": v.requests,
                "error_rate": v.error_rate if v.HasField("error_rate") else None,
                "p99_ms": v.p99_ms if v.HasField("p99_ms") else None,
                "detail": v.detail,
            }
            for v in reply.verdicts
        ],
        "stable": reply.stable,
        "canary": reply.canary,
        "plan": list(reply.steps),
        "interval_seconds": reply.interval_seconds,
        "bounds": {
            "max_error_rate": reply.max_error_rate or None,
            "max_p99": reply.max_p99 or None,
            "min_requests": reply.min_requests,
            "failure_limit": reply.failure_limit,
            "no_data_timeout_seconds": reply.no_data_timeout_seconds,
        },
        "failures": reply.failures,
        "next_check_in_seconds": round(max(0.0, reply.next_check_at - now), 1) if running else None,
        "events": [
            {"at": _when(e.at), "phase": e.phase, "step": e.step + 1, "reason": e.reason}
            for e in reply.events
        ],
        "revision": reply.revision,
    }


def rollout(reply: pb.Rollout, output: str, now: float, compact: bool = False) -> str:
    """``rollout status`` (and what every rollout command prints)."""
    data = rollout_data(reply, now)
    if output not in TABLES:
        return structured(data, output, compact)
    weights = ", ".join(f"{tag}={weight}" for tag, weight in data["weights"].items())
    lines = [
        f"service {data['service']}: rollout of {data['canary']} from {data['stable']}, "
        f"{data['phase']}, step {data['step']}/{data['steps']} ({','.join(data['plan'])})",
        f"weights: {weights} (revision {data['revision']})",
        f"reason: {data['reason']}",
    ]
    if data["next_check_in_seconds"] is not None:
        lines.append(f"next judgement in {data['next_check_in_seconds']:g}s")
    bounds = data["bounds"]
    lines.append(
        f"bounds: error rate {bounds['max_error_rate'] or '-'}, p99 {bounds['max_p99'] or '-'}, "
        f"at least {bounds['min_requests']} requests, {bounds['failure_limit']} failure(s) "
        f"abort, no data for {bounds['no_data_timeout_seconds']:g}s aborts"
    )
    text = "\n".join(lines) + "\n"
    if data["verdicts"]:
        rows = [
            (v["at"], v["step"], v["outcome"], v["requests"], _share(v["error_rate"]),
             _millis(v["p99_ms"]))
            for v in data["verdicts"][-5:]
        ]  # fmt: skip
        text += table(("TIME", "STEP", "VERDICT", "REQUESTS", "5XX", "P99"), rows)
    return text


def rollouts(items: Sequence[pb.Rollout], output: str) -> str:
    """``rollout list``: one row per service."""
    return _listing(
        items,
        output,
        ("SERVICE", "CANARY", "PHASE", "STEP", "WEIGHTS", "REASON"),
        lambda r: (
            r.service,
            r.canary,
            r.phase,
            f"{r.step + 1}/{len(r.steps)}",
            ",".join(f"{w.tag}={w.weight}" for w in r.weights),
            r.reason[:60],
        ),
        lambda r: rollout_data(r, time.time()),
    )


def imported(reply: pb.ImportStateResponse, output: str) -> str:
    """``state import``: how much the imported document held."""
    line = (
        f"imported {reply.services} services, {reply.deployments} deployments, "
        f"{reply.history_entries} history entries\n"
    )
    data = {
        "services": reply.services,
        "deployments": reply.deployments,
        "history_entries": reply.history_entries,
    }
    return _line_or_structured(output, line, data)


def token_created(reply: pb.CreateTokenResponse, output: str) -> str:
    """``tokens create`` on stdout: the token alone, or with its facts as data."""
    # The one output that carries a secret: creating it is what was asked for.
    data = {**token_data(reply.info), "token": reply.token}
    return _line_or_structured(output, reply.token + "\n", data)


def tokens(items: Sequence[pb.TokenInfo], output: str) -> str:
    """``tokens list``: one row per token, or a YAML or JSON list (never secrets)."""
    return _listing(
        items,
        output,
        ("NAME", "ROLE", "AGE", "CREATED BY"),
        lambda t: (t.name, t.role, age(t.created_at), t.created_by),
        token_data,
    )


def token_revoked(info: pb.TokenInfo, output: str) -> str:
    """``tokens revoke``: which token was revoked."""
    return _line_or_structured(
        output, f"token {info.name} ({info.role}) revoked\n", token_data(info)
    )


def bootstrap(document: dict[str, Any]) -> str:
    """An Envoy bootstrap document as YAML, under a header saying where it came from."""
    return BOOTSTRAP_HEADER + structured(document, "yaml")
