"""``GetTrafficMetrics``: a service's live traffic per tag, from the sinks' windows."""

from __future__ import annotations

import math

from xds_server.errors import InvalidRequest
from xds_server.model import operations as ops
from xds_server.model.state import World
from xds_server.traffic.windows import TrafficSummary, TrafficWindows, WindowSummary
from xds_server.translate.translator import cluster_name
from xds_server.v1 import operator_pb2 as pb

DEFAULT_WINDOW_SECONDS = 30.0
MIN_WINDOW_SECONDS = 1.0


def checked_window(seconds: float, horizon: float) -> float:
    """The window asked for (0: the default), refused outside 1 s .. the horizon."""
    if seconds == 0:
        return DEFAULT_WINDOW_SECONDS
    if not math.isfinite(seconds) or not MIN_WINDOW_SECONDS <= seconds <= horizon:
        raise InvalidRequest(
            f"--window must be from {MIN_WINDOW_SECONDS:g}s to {horizon:g}s "
            f"(the server keeps {horizon:g}s of traffic), got {seconds:g}s"
        )
    return seconds


def _figures(summary: TrafficSummary, covered: bool) -> pb.TrafficFigures:
    """Figures of one kind of traffic; rates only where some interval was covered."""
    figures = pb.TrafficFigures(requests=summary.requests, by_code_class=summary.codes)
    if covered:
        figures.requests_per_second = summary.requests_per_second
    for name in ("error_rate", "p50_ms", "p90_ms", "p99_ms"):
        value = getattr(summary, name)
        if value is not None:
            setattr(figures, name, value)
    return figures


def traffic_metrics(
    world: World, service: str, windows: TrafficWindows, window: float, now: float
) -> pb.TrafficMetrics:
    """Each tag of ``service``'s policy with its deployment's traffic over ``window``.

    A tag whose cluster no Envoy reported has figures without rates: no data, which
    is not the same as no traffic.
    """
    traffic = ops.traffic_of(world, service)
    mirrors = {m.tag: m.percent for m in traffic.mirror}
    reply = pb.TrafficMetrics(service=service, window_seconds=window)
    summaries: list[WindowSummary] = []
    for tag in traffic.tags:
        summary = windows.summary(cluster_name(service, tag.deployment_id), window, now)
        summaries.append(summary)
        covered = summary.envoys_reporting > 0 and summary.intervals > 0
        reply.tags.append(
            pb.TagMetrics(
                tag=tag.tag,
                deployment_id=tag.deployment_id,
                weight=tag.weight,
                mirror_percent=mirrors.get(tag.tag, ""),
                real=_figures(summary.real, covered),
                shadow=_figures(summary.shadow, covered),
                envoys_reporting=summary.envoys_reporting,
            )
        )
    reply.envoys_reporting = max((s.envoys_reporting for s in summaries), default=0)
    reply.missing_intervals = max((s.missing_intervals for s in summaries), default=0)
    return reply
