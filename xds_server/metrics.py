"""Prometheus metrics, and the small HTTP server for /metrics, /healthz and /readyz."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    make_wsgi_app,
)

from xds_server.logs import LogWriter
from xds_server.model.rollout import Phase, Rollout
from xds_server.model.state import World
from xds_server.xds.registry import XdsEvent
from xds_server.xds.resources import SHORT_NAMES

# A `_created` series per counter doubles /metrics for a timestamp nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Change-to-ACK latency: a change should reach a node in milliseconds to seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric of one control plane, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, str], Any] = {}
        r = self.registry
        self.connected = Gauge(
            "xds_connected_envoys", "Connected ADS streams", ["mode"], registry=r
        )
        self.responses = Counter("xds_responses", "xDS responses sent", ["type"], registry=r)
        self.acks = Counter("xds_acks", "ACKs received", ["type"], registry=r)
        self.nacks = Counter("xds_nacks", "NACKs received", ["type"], registry=r)
        self.ack_latency = Histogram(
            "xds_change_to_ack_seconds",
            "From publishing a change to a node's ACK of the response carrying it",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_available = Gauge(
            "xds_store_available", "1 while the state store answers, else 0", registry=r
        )
        self.store_available.set(1)
        self.store_errors = Counter(
            "xds_store_errors",
            "State store calls that failed, by kind (disk_full, read_only, io, corrupt, "
            "busy, file_lost, unreachable, other)",
            ["kind"],
            registry=r,
        )
        self.revision = Gauge("xds_service_revision", "Current revision", ["service"], registry=r)
        self.rollout_step = Gauge(
            "xds_rollout_step",
            "The step a service's rollout is at, 1-based (0: no rollout running)",
            ["service"],
            registry=r,
        )
        self.rollout_phase = Gauge(
            "xds_rollout_phase",
            "1 for the phase a service's last rollout is in, 0 for the others",
            ["service", "phase"],
            registry=r,
        )
        self.rollout_aborts = Counter(
            "xds_rollout_aborts",
            "Rollouts aborted, by cause: bounds, no_data, operator, force",
            ["service", "reason"],
            registry=r,
        )
        # Each service's last rollout as published: (started at, phase), to count aborts once.
        self._rollouts: dict[str, tuple[float, str]] = {}
        self.operator_requests = Counter(
            "xds_operator_requests", "Operator API calls", ["method", "result"], registry=r
        )
        self.hook_attempts = Counter(
            "xds_hook_attempts",
            "Hook delivery attempts, by outcome: delivered, retrying, failed",
            ["hook", "outcome"],
            registry=r,
        )
        for mode in ("sotw", "delta"):
            self.connected.labels(mode=mode)
        # Every type's counters exist at 0 from the start, so the first NACK is an
        # increase an alert sees (a series born at 1 has no increase to Prometheus).
        for type_name in SHORT_NAMES.values():
            for counter in (self.responses, self.acks, self.nacks):
                self._child(counter, type_name)
        dropped = Gauge(
            "xds_log_lines_dropped",
            "Log lines the log stream refused since start (a full disk under the log file)",
            registry=r,
        )
        dropped.set_function(lambda: LogWriter.dropped)

    def count_out_of_sync(self, count: Callable[[], int]) -> None:
        """``xds_envoys_out_of_sync``: read from the node registry at each scrape."""
        gauge = Gauge(
            "xds_envoys_out_of_sync",
            "Connected Envoy streams that do not hold the current config yet (a moment "
            "after every change; for long: a NACK or a node that does not ACK)",
            registry=self.registry,
        )
        gauge.set_function(count)

    def on_xds_event(self, event: XdsEvent, kind: str, node: str, seconds: float | None) -> None:
        """The node registry's hook: ``kind`` is a type URL, or a mode for (dis)connects."""
        if event in (XdsEvent.CONNECT, XdsEvent.DISCONNECT):
            gauge = self.connected.labels(mode=kind)
            gauge.inc() if event is XdsEvent.CONNECT else gauge.dec()
            return
        short = SHORT_NAMES.get(kind, "other")
        if event is XdsEvent.RESPONSE:
            self._child(self.responses, short).inc()
        elif event is XdsEvent.ACK:
            self._child(self.acks, short).inc()
            if seconds is not None:
                self._child(self.ack_latency, short).observe(max(seconds, 0.0))
        elif event is XdsEvent.NACK:
            self._child(self.nacks, short).inc()

    def _child(self, metric: Any, type_name: str) -> Any:
        """The labelled child, looked up once: this runs for every response and ACK."""
        key = (id(metric), type_name)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(type=type_name)
        return child

    def on_store_health(self, available: bool) -> None:
        self.store_available.set(1 if available else 0)

    def on_store_error(self, kind: str) -> None:
        self.store_errors.labels(kind=kind).inc()

    def on_publish(self, world: World, changed: frozenset[str] | None = None) -> None:
        """Revisions of the services that changed (all of them when not known)."""
        names = world.services if changed is None else changed
        for name in names:
            service = world.services.get(name)
            if service is not None:
                self.revision.labels(service=name).set(service.revision)
                if service.rollout is not None:
                    self._on_rollout(name, service.rollout)

    def _on_rollout(self, service: str, rollout: Rollout) -> None:
        self.rollout_step.labels(service=service).set(rollout.step + 1 if rollout.running else 0)
        for phase in Phase:
            self.rollout_phase.labels(service=service, phase=phase.value).set(
                1 if phase is rollout.phase else 0
            )
        seen = (rollout.started_at, rollout.phase.value)
        if rollout.phase is Phase.ABORTED and self._rollouts.get(service) != seen:
            self.rollout_aborts.labels(service=service, reason=rollout.abort_cause).inc()
        self._rollouts[service] = seen

    def on_operator_request(self, method: str, result: str) -> None:
        self.operator_requests.labels(method=method, result=result).inc()

    def on_hook_attempt(self, hook: str, outcome: str) -> None:
        self.hook_attempts.labels(hook=hook, outcome=outcome).inc()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve_http(
    host: str, port: int, metrics: Metrics, ready: Callable[[], tuple[bool, str]]
) -> WSGIServer:
    """/metrics, /healthz (the process answers) and /readyz (state loaded, snapshot built;
    ``ready`` also gives the body)."""
    prometheus = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok, body = ready()
            start_response(
                "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")]
            )
            return [body.encode()]
        if path == "/metrics":
            served: Iterable[bytes] = prometheus(environ, start_response)
            return served
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"try /metrics, /healthz or /readyz\n"]

    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics-http").start()
    return server
