"""Stats-sink ingestion: the server's CPU per Envoy flush, and what the load does to pushes.

    python3 bench/metrics_ingest.py --envoys 100 1000 --seconds 20 --json bench/results/ingest.json

Part 1, for each N: `xdsctl serve` on a fresh state file, idle for S seconds (its
CPU then is the baseline), then N simulated Envoys (worker processes) each open a
MetricsService sink stream and send one flush per second, their phases spread
evenly across the second: the first message carries the node, every message the
metric families of a real Envoy 1.40 flush (``--flush``: 10 clusters and the
sink's own, 57 KB) stamped with the time it is sent. The server's CPU over S
seconds of that, minus the idle CPU, per flush sent is the cost of one flush.
Two of the flush's clusters are renamed to the server's two deployments, so the
end check (``GetTrafficMetrics``, what `xdsctl metrics` reads) sees every Envoy
reporting; the others keep their names, as clusters no tag holds.

Part 2: the fleet simulator's M ADS clients (bench/fleet.py) on one server, and
the largest N's sink streams open on the same server. Changes alternate between
the sink load paused (streams open, silent) and sending, in ABBA order, so both
halves see the same machine; change → last ACK with the load ÷ without.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleet import (  # noqa: E402
    WORKERS,
    Fleet,
    _proc_stat,
    close_streams,
    free_port,
    open_paced,
    raise_open_files,
    serve_command,
    weight_change,
)
from xds_server.heap import SETTLE_SECONDS  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "metrics" / "flush_ten_clusters.pb"
# Each Envoy has a connection of its own (its sink shares it with ADS), so each sink
# stream gets one: at N=1,000, 100 connections of 10 streams cost the server ~15 %
# less CPU and ~110 KiB less memory per stream than 1,000 connections.
SINK_STREAMS_PER_CHANNEL = 1
METHOD = "/envoy.service.metrics.v3.MetricsService/StreamMetrics"
# A timestamp_ms whose varint is as long as today's (6 bytes: 2^35 ≤ ms < 2^42), so a
# send stamps a flush by replacing bytes, without re-serialising 57 KB.
SENTINEL_MS = (1 << 42) - 1
# After the load starts or stops, this long before a change is timed.
SETTLE_LOAD_S = 2.0
WARMUP_S = 3.0


# --- the flush ---------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def flush_template(path: Path, clusters: list[str]) -> bytes:
    """The flush's families, serialised with every metric's timestamp at SENTINEL_MS;
    its first clusters (by name) renamed to ``clusters``."""
    from xds_server.envoy_metrics import metrics_service_pb2 as pb

    message = pb.StreamMetricsMessage.FromString(path.read_bytes())
    message.ClearField("identifier")
    found = sorted(
        {
            label.value
            for family in message.envoy_metrics
            for metric in family.metric
            for label in metric.label
            if label.name == "envoy.cluster_name" and label.value != "xds_cluster"
        }
    )
    renames = dict(zip(found, clusters, strict=False))
    metrics = 0
    for family in message.envoy_metrics:
        for metric in family.metric:
            metrics += 1
            metric.timestamp_ms = SENTINEL_MS
            for label in metric.label:
                if label.name == "envoy.cluster_name" and label.value in renames:
                    label.value = renames[label.value]
    template = message.SerializeToString()
    assert template.count(_stamp(SENTINEL_MS)) == metrics, "the sentinel is not unique"
    return template


def _stamp(ms: int) -> bytes:
    return b"\x30" + _varint(ms)  # Metric.timestamp_ms: field 6, varint


def stamped(template: bytes, ms: int) -> bytes:
    """The flush with every metric stamped ``ms``."""
    return template.replace(_stamp(SENTINEL_MS), _stamp(ms))


# --- the simulated Envoys' sinks (worker processes) ------------------------------------


async def _sink(
    method: Any, node_id: str, phase: float, template: bytes, flags: dict[str, bool], tally: Any
) -> None:
    """One Envoy's sink: a flush at ``phase`` of every second; reopens a failed stream."""
    import grpc
    from envoy.config.core.v3 import base_pb2

    from xds_server.envoy_metrics import metrics_service_pb2 as pb

    identifier = pb.StreamMetricsMessage(
        identifier=pb.StreamMetricsMessage.Identifier(
            node=base_pb2.Node(id=node_id, cluster="bench").SerializeToString()
        )
    ).SerializeToString()
    due = int(time.time()) + 1 + phase
    while not flags["stop"]:
        call = method()
        first = True
        try:
            while not flags["stop"]:
                await asyncio.sleep(max(0.0, due - time.time()))
                now = time.time()
                if now - due > 0.5:
                    tally["late"].value += 1
                    due += int(now - due)  # skip the slots missed, keep the phase
                due += 1
                if flags["paused"] and not first:
                    continue
                flush = stamped(template, int(now * 1000))
                # Messages concatenate: the first is the identifier plus a flush.
                await call.write(identifier + flush if first else flush)
                first = False
                tally["sent"].value += 1
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            tally["errors"].value += 1
            await asyncio.sleep(0.1 + phase * 0.4)
        finally:
            call.cancel()


def _sink_worker(
    address: str, nodes: list[tuple[str, float]], template: bytes, tally: Any, control: Any
) -> None:
    raise_open_files()

    async def main() -> None:
        import grpc

        flags = {"stop": False, "paused": False}
        channels = [
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(0, len(nodes), SINK_STREAMS_PER_CHANNEL)
        ]
        # Bytes in, bytes out: the flush is serialised once, stamped per send.
        methods = [channel.stream_unary(METHOD) for channel in channels]

        def start(i: int) -> Any:
            node_id, phase = nodes[i]
            method = methods[i // SINK_STREAMS_PER_CHANNEL]
            return _sink(method, node_id, phase, template, flags, tally)

        tasks = await open_paced(len(nodes), start)
        while not control["stop"].is_set():
            flags["paused"] = control["paused"].is_set()
            await asyncio.sleep(0.05)
        flags["stop"] = True
        await close_streams(tasks, channels)

    asyncio.run(main())


class SinkLoad:
    """N Envoys' sink streams over WORKERS processes; ``sent`` counts their flushes."""

    def __init__(self, address: str, envoys: int, template: bytes) -> None:
        context = multiprocessing.get_context("spawn")
        self.control = {"stop": context.Event(), "paused": context.Event()}
        self.tallies = [
            {key: context.Value("q", 0, lock=False) for key in ("sent", "late", "errors")}
            for _ in range(WORKERS)
        ]
        # Envoy i flushes at i/N of each second: the load is spread evenly.
        nodes = [(f"sim-{i}", i / envoys) for i in range(envoys)]
        self.processes = [
            context.Process(
                target=_sink_worker,
                args=(address, nodes[w::WORKERS], template, self.tallies[w], self.control),
            )
            for w in range(WORKERS)
            if nodes[w::WORKERS]
        ]
        for process in self.processes:
            process.start()

    def count(self, key: str) -> int:
        return sum(tally[key].value for tally in self.tallies)

    def cpu(self) -> float:
        return sum(_proc_stat(p.pid)[0] for p in self.processes if p.pid is not None)

    def pause(self, paused: bool) -> None:
        (self.control["paused"].set if paused else self.control["paused"].clear)()

    def close(self) -> None:
        self.control["stop"].set()
        for process in self.processes:
            process.join(timeout=20)
            if process.is_alive():
                process.kill()


# --- the server ----------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    xds: str
    stub: Any
    deployments: list[str]  # the ids of default's blue and green
    log: Path

    def stats(self) -> tuple[float, int]:
        return _proc_stat(self.process.pid)

    def change(self, i: int) -> float:
        """Weight change i (as fleet.py makes them); returns when it was made."""
        return weight_change(self.stub, i)

    def log_events(self, event: str) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            if event in line:
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("event") == event:
                        lines.append(record)
        return lines

    def streams_started(self) -> int:
        """Distinct Envoys whose sink stream the server logged as started."""
        return len({r.get("node") for r in self.log_events("traffic.sink_stream_started")})

    def reporting(self, window: float) -> tuple[int, int]:
        """(Envoys reporting, missing intervals) for default over ``window``."""
        from xds_server.v1 import operator_pb2 as pb

        reply = self.stub.GetTrafficMetrics(
            pb.GetTrafficMetricsRequest(service="default", window_seconds=window)
        )
        return reply.envoys_reporting, reply.missing_intervals

    def close(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def start_server(workdir: Path) -> Server:
    """`xdsctl serve` as fleet.py's start_ours starts it (service default, blue 99 /
    green 1), logging at info: the sink logs each stream it starts."""
    import grpc

    from xds_server.v1 import operator_pb2 as pb
    from xds_server.v1 import operator_pb2_grpc

    api, xds = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = workdir / "serve.log"
    process = subprocess.Popen(
        serve_command(workdir, api, xds, "--log-level", "info"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        preexec_fn=raise_open_files,
    )
    stub = operator_pb2_grpc.OperatorStub(grpc.insecure_channel(api))
    deadline = time.monotonic() + 30
    while True:
        try:
            stub.ListServices(pb.ListServicesRequest(), timeout=1)
            break
        except grpc.RpcError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)
    deployments = []
    for tag, port in (("blue", 8081), ("green", 8082)):
        reply = stub.Apply(
            pb.ApplyRequest(
                service="default",
                deployment_tag=tag,
                endpoints=[pb.Endpoint(host="127.0.0.1", port=port)],
            )
        )
        deployments.append(reply.deployment.id)
    stub.SetTraffic(
        pb.SetTrafficRequest(
            service="default",
            weights=[pb.TagWeight(tag="blue", weight=99), pb.TagWeight(tag="green", weight=1)],
        )
    )
    return Server(process, xds, stub, deployments, log)


def _template_for(server: Server, flush: Path) -> bytes:
    from xds_server.translate.translator import cluster_name

    return flush_template(flush, [cluster_name("default", d) for d in server.deployments])


def _wait_streams(server: Server, load: SinkLoad, envoys: int, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while (started := server.streams_started()) < envoys:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{started} of {envoys} sink streams started")
        time.sleep(0.2)
    return started


# --- part 1: ingestion CPU ----------------------------------------------------------------


def ingest(envoys: int, seconds: float, flush: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        load = None
        try:
            template = _template_for(server, flush)
            time.sleep(SETTLE_SECONDS + 2.0)  # the heap settle after the setup
            idle0, _ = server.stats()
            time.sleep(seconds)
            idle1, rss_before = server.stats()
            load = SinkLoad(server.xds, envoys, template)
            started = _wait_streams(server, load, envoys)
            time.sleep(WARMUP_S)
            cpu0, _ = server.stats()
            clients0, sent0, t0 = load.cpu(), load.count("sent"), time.monotonic()
            time.sleep(seconds)
            cpu1, rss_after = server.stats()
            clients1, sent1, t1 = load.cpu(), load.count("sent"), time.monotonic()
            reporting, missing = server.reporting(max(1.0, min(seconds, 30.0)))
            late, errors = load.count("late"), load.count("errors")
            malformed = len(server.log_events("traffic.sink_flush_malformed"))
        finally:
            if load is not None:
                load.close()
            server.close()
    wall = t1 - t0
    flushes = sent1 - sent0
    busy = (cpu1 - cpu0) - (idle1 - idle0) * wall / seconds
    return {
        "envoys": envoys,
        "cpu_percent": 100 * busy / wall,
        "us_per_flush": 1e6 * busy / flushes if flushes else None,
        "rss_mib_before": rss_before / 1024,
        "rss_mib_after": rss_after / 1024,
        "rss_kib_per_stream": (rss_after - rss_before) / envoys,
        "flushes_per_second": flushes / wall,
        "idle_cpu_percent": 100 * (idle1 - idle0) / seconds,
        "client_cpu_percent": 100 * (clients1 - clients0) / wall,
        "flush_bytes": len(template),
        "streams_started": started,
        "envoys_reporting": reporting,
        "missing_intervals": missing,
        "late_sends": late,
        "stream_errors": errors,
        "malformed_flushes": malformed,
    }


def _print_ingest(r: dict[str, Any]) -> None:
    per_flush = "n/a" if r["us_per_flush"] is None else f"{r['us_per_flush']:.0f}"
    print(
        f"ingest CPU: {r['cpu_percent']:.1f} % of one core at {r['envoys']} Envoys "
        f"(per flush: {per_flush} µs)",
        flush=True,
    )
    print(
        f"  sent {r['flushes_per_second']:.1f} flushes/s of {r['flush_bytes'] / 1024:.0f} KiB "
        f"(target {r['envoys']}); server RSS {r['rss_mib_before']:.1f} → "
        f"{r['rss_mib_after']:.1f} MiB ({r['rss_kib_per_stream']:.1f} KiB per stream); "
        f"idle server {r['idle_cpu_percent']:.1f} %, client workers "
        f"{r['client_cpu_percent']:.0f} % of one core",
        flush=True,
    )
    print(
        f"  accepted: {r['streams_started']} streams started (server log), "
        f"{r['envoys_reporting']} Envoys reporting, {r['missing_intervals']} intervals "
        f"missing (GetTrafficMetrics); {r['late_sends']} late sends, "
        f"{r['stream_errors']} stream errors, {r['malformed_flushes']} malformed",
        flush=True,
    )


# --- part 2: pushes under the sink load -----------------------------------------------------


def interference(clients: int, changes: int, envoys: int, flush: Path) -> dict[str, Any]:
    times: dict[str, list[float]] = {"without": [], "with": []}
    # Per mode: wall seconds and CPU seconds of the server, the ADS and the sink workers.
    cpu = {mode: {"wall": 0.0, "server": 0.0, "ads": 0.0, "sink": 0.0} for mode in times}
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        fleet = load = None
        try:
            template = _template_for(server, flush)
            fleet = Fleet([server.xds], clients, full=True)
            known: set[str] = set()
            fleet.wait_version(known)
            load = SinkLoad(server.xds, envoys, template)
            started = _wait_streams(server, load, envoys)
            time.sleep(max(WARMUP_S, SETTLE_SECONDS + 2.0))

            def ads_cpu() -> float:
                assert fleet is not None
                return sum(_proc_stat(p.pid)[0] for p in fleet.processes if p.pid is not None)

            # ABBA: without, with, with, without, ... so a drift hits both alike.
            order = [("without", "with", "with", "without")[i % 4] for i in range(2 * changes)]
            for i, mode in enumerate(order):
                load.pause(mode == "without")
                time.sleep(SETTLE_LOAD_S / 2)
                # CPU from here to the last ACK: the mode's steady state, then the change.
                w0, s0, a0, k0 = time.monotonic(), server.stats()[0], ads_cpu(), load.cpu()
                time.sleep(SETTLE_LOAD_S / 2)
                t0 = server.change(i)
                _version, _first, last = fleet.wait_version(known)
                times[mode].append(last - t0)
                used = cpu[mode]
                used["wall"] += time.monotonic() - w0
                used["server"] += server.stats()[0] - s0
                used["ads"] += ads_cpu() - a0
                used["sink"] += load.cpu() - k0
            retries = fleet.retries
        finally:
            if load is not None:
                load.close()
            if fleet is not None:
                fleet.close()
            server.close()

    def figures(mode: str) -> dict[str, Any]:
        last = sorted(times[mode])
        used = cpu[mode]
        wall = used["wall"] or 1.0
        return {
            "p50_s": statistics.median(last),
            "p99_s": last[min(len(last) - 1, int(len(last) * 0.99))],
            "max_s": last[-1],
            "cores_server": used["server"] / wall,
            "cores_ads_workers": used["ads"] / wall,
            "cores_sink_workers": used["sink"] / wall,
        }

    without, with_load = figures("without"), figures("with")
    return {
        "clients": clients,
        "changes": changes,
        "envoys": envoys,
        "sink_streams_started": started,
        "stream_retries": retries,
        "without": without,
        "with": with_load,
        "p50_ratio": with_load["p50_s"] / without["p50_s"],
        "p99_ratio": with_load["p99_s"] / without["p99_s"],
    }


def _print_interference(r: dict[str, Any], cores: int) -> None:
    for mode in ("without", "with"):
        f = r[mode]
        total = f["cores_server"] + f["cores_ads_workers"] + f["cores_sink_workers"]
        print(
            f"  {mode:>7} metrics load: change→last ACK p50 {f['p50_s']:.3f} s, "
            f"p99 {f['p99_s']:.3f} s, max {f['max_s']:.3f} s; cores busy: server "
            f"{f['cores_server']:.2f}, ADS workers {f['cores_ads_workers']:.2f}, sink "
            f"workers {f['cores_sink_workers']:.2f} (total {total:.2f} of {cores})",
            flush=True,
        )
    print(
        f"change→last ACK with metrics load / without: p50 {r['p50_ratio']:.2f}, "
        f"p99 {r['p99_ratio']:.2f} ({r['clients']} ADS clients, {r['envoys']} sink "
        f"streams, {r['changes']} changes each, target ≤ 1.15)",
        flush=True,
    )
    f = r["with"]
    total = f["cores_server"] + f["cores_ads_workers"] + f["cores_sink_workers"]
    if total > 0.85 * cores:
        print(
            f"  note: with the load, the machine was saturated ({total:.2f} of {cores} cores "
            f"busy; the simulated clients, {f['cores_ads_workers'] + f['cores_sink_workers']:.2f}"
            " of them, compete with the server): the ratio overstates what the server "
            "alone would see",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envoys", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=20.0, help="each measured spell")
    parser.add_argument("--flush", type=Path, default=FIXTURE, help="a StreamMetricsMessage")
    parser.add_argument("--fleet-clients", type=int, default=1000, help="ADS clients, part 2")
    parser.add_argument("--changes", type=int, default=10, help="changes each way, part 2")
    parser.add_argument("--no-fleet", action="store_true", help="skip part 2")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    raise_open_files()
    results: dict[str, Any] = {"ingest": [], "interference": None}

    def write() -> None:  # after each part, so a long run stopped early keeps its figures
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))

    for envoys in args.envoys:
        results["ingest"].append(ingest(envoys, args.seconds, args.flush))
        _print_ingest(results["ingest"][-1])
        write()
    if not args.no_fleet:
        results["interference"] = interference(
            args.fleet_clients, args.changes, max(args.envoys), args.flush
        )
        _print_interference(results["interference"], multiprocessing.cpu_count())
        write()
    print("summary:")
    for r in results["ingest"]:
        print(
            f"  N={r['envoys']}: {r['cpu_percent']:.1f} % of one core, "
            f"{r['us_per_flush'] or 0:.0f} µs per flush, {r['flushes_per_second']:.0f} "
            f"flushes/s, RSS +{r['rss_mib_after'] - r['rss_mib_before']:.1f} MiB"
        )
    if results["interference"] is not None:
        r = results["interference"]
        print(
            f"  interference at M={r['clients']}, N={r['envoys']}, with load / without: "
            f"p50 {r['p50_ratio']:.2f}, p99 {r['p99_ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
