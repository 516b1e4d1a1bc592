"""Fleet simulator: N simulated Envoys on ADS; change → last ACK, ours vs the raw gRPC limit.

    python3 bench/fleet.py --clients 100 1000 --changes 20 --json bench/results/fleet.json

For each N it runs, in one go and on the same clients, (1) `xdsctl serve` and
(2) a minimal grpcio asyncio server that broadcasts one pre-serialised
RouteConfiguration response of the same size to every stream. Each simulated
Envoy (in worker processes) speaks SotW ADS like Envoy: wildcard CDS, EDS by
name, LDS, RDS by name, ACKing every response. A change is timed from the
operator API call returning (ours) or the broadcast starting (raw) until the
last client has received, and ACKed, the new route table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xds_server.heap import SETTLE_SECONDS  # noqa: E402

WORKERS = 2
# Simulated Envoys share HTTP/2 connections, this many streams each; a worker
# process takes at most STREAMS_PER_WORKER.
STREAMS_PER_CHANNEL = 100
STREAMS_PER_WORKER = 5000
# Each worker opens streams in batches of OPEN_BATCH, OPEN_PAUSE_S apart: when
# thousands open in one instant, grpcio's client fails a few percent of them
# (INTERNAL "Failed execute_batch", or CANCELLED), which stalled earlier runs.
OPEN_BATCH = 50
OPEN_PAUSE_S = 0.05


def raise_open_files() -> None:
    """Many streams need many descriptors: lift the soft limit to the hard one."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the simulated Envoys (worker processes) -------------------------------------


async def _envoy(stub: Any, node_id: str, full: bool, report: Any, retries: list[int]) -> None:
    """One simulated Envoy: like Envoy, it reopens a failed stream after a jittered backoff."""
    import grpc

    while True:
        try:
            await _ads_stream(stub, node_id, full, report)
            return
        except grpc.aio.AioRpcError:
            # A burst of new streams makes grpc core refuse a few of them
            # (CANCELLED / INTERNAL on the client); Envoy retries, so do we.
            retries[0] += 1
            await asyncio.sleep(0.1 + random.random() * 0.4)


async def _ads_stream(stub: Any, node_id: str, full: bool, report: Any) -> None:
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.service.discovery.v3 import discovery_pb2

    from xds_server.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE

    call = stub.StreamAggregatedResources()
    node = {"id": node_id, "cluster": "bench"}
    first = True

    async def send(
        type_url: str, names: list[str] | None = None, version: str = "", nonce: str = ""
    ) -> None:
        nonlocal first
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url,
            resource_names=names or [],
            version_info=version,
            response_nonce=nonce,
        )
        if first:
            request.node.id, request.node.cluster = node["id"], node["cluster"]
            first = False
        await call.write(request)

    names: dict[str, list[str]] = {ROUTE: ["routes"]}
    if full:
        await send(CLUSTER)
    else:
        await send(ROUTE, ["routes"])
    while True:
        response = await call.read()
        if response is None or not hasattr(response, "type_url"):
            return
        type_url = response.type_url
        if type_url == ROUTE:
            report(response.version_info, node_id)
        if type_url == CLUSTER and ENDPOINT not in names:
            eds = []
            for packed in response.resources:
                cluster = cluster_pb2.Cluster()
                packed.Unpack(cluster)
                if cluster.type == cluster_pb2.Cluster.EDS:
                    eds.append(cluster.name)
            names[ENDPOINT] = eds
            await send(CLUSTER, version=response.version_info, nonce=response.nonce)
            if eds:
                await send(ENDPOINT, eds)
            await send(LISTENER)
            continue
        if type_url == LISTENER and ROUTE not in names.get("_asked", []):
            names["_asked"] = [ROUTE]
            await send(LISTENER, version=response.version_info, nonce=response.nonce)
            await send(ROUTE, ["routes"])
            continue
        await send(
            type_url, names.get(type_url), version=response.version_info, nonce=response.nonce
        )


async def open_paced(
    count: int, start: Callable[[int], Coroutine[Any, Any, None]]
) -> list[asyncio.Task[None]]:
    """Start ``count`` streams (``start(i)``), OPEN_BATCH at a time, OPEN_PAUSE_S apart: a
    fleet does not open thousands of streams in one instant, and pacing keeps grpc core
    from refusing most of a burst."""
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(start(i)))
        if i % OPEN_BATCH == OPEN_BATCH - 1:
            await asyncio.sleep(OPEN_PAUSE_S)
    return tasks


async def close_streams(tasks: list[asyncio.Task[None]], channels: list[Any]) -> None:
    """Cancel the streams and close their channels."""
    for task in tasks:
        task.cancel()
    for channel in channels:
        await channel.close()


def _worker(address: str, node_ids: list[str], full: bool, out: Any, stop: Any) -> None:
    """One process of simulated Envoys; reports per RDS version: count, first and last time."""
    raise_open_files()

    async def main() -> None:
        import grpc
        from envoy.service.discovery.v3 import ads_pb2_grpc

        # Per RDS version, each node's first receipt (a reopened stream may get it twice).
        seen: dict[str, dict[str, float]] = defaultdict(dict)
        expected = len(node_ids)
        retries = [0]

        def report(version: str, node_id: str) -> None:
            times = seen[version]
            if node_id in times:
                return
            times[node_id] = time.monotonic()
            if len(times) == expected:
                out.put((version, retries[0], min(times.values()), max(times.values())))

        channels = [
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(0, len(node_ids), STREAMS_PER_CHANNEL)
        ]
        stubs = [ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel) for channel in channels]
        tasks = await open_paced(
            len(node_ids),
            lambda i: _envoy(stubs[i // STREAMS_PER_CHANNEL], node_ids[i], full, report, retries),
        )
        while not stop.is_set():
            await asyncio.sleep(0.2)
        await close_streams(tasks, channels)

    asyncio.run(main())


class Fleet:
    """N simulated Envoys over WORKERS processes."""

    def __init__(self, addresses: list[str], clients: int, full: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self.out = context.Queue()
        self.stop = context.Event()
        self.clients = clients
        ids = [f"sim-{i}" for i in range(clients)]
        workers = max(WORKERS, len(addresses), -(-clients // STREAMS_PER_WORKER))
        shares = [ids[i::workers] for i in range(workers)]
        self.expected_reports = sum(1 for share in shares if share)
        # Worker i connects to addresses[i % len]: with replicas, the fleet is spread.
        self.processes = [
            context.Process(
                target=_worker,
                args=(addresses[i % len(addresses)], share, full, self.out, self.stop),
            )
            for i, share in enumerate(shares)
            if share
        ]
        self.retries = 0  # streams reopened after an error, all workers, so far
        self.started = time.monotonic()
        for process in self.processes:
            process.start()

    def wait_version(self, known: set[str], timeout: float = 300.0) -> tuple[str, float, float]:
        """The next RDS version every client received: (version, first, last) times."""
        reports: dict[str, list[tuple[float, float]]] = defaultdict(list)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            version, retries, first, last = self.out.get(timeout=deadline - time.monotonic())
            if version in known:
                continue
            reports[version].append((first, last, retries))
            if len(reports[version]) == self.expected_reports:
                known.add(version)
                firsts, lasts, retried = zip(*reports[version], strict=True)
                self.retries = sum(retried)
                return version, min(firsts), max(lasts)
        raise TimeoutError("the fleet did not converge")

    def close(self) -> None:
        self.stop.set()
        for process in self.processes:
            process.join(timeout=20)
            if process.is_alive():
                process.kill()


# --- the servers ---------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS KiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return cpu, rss


# The server processes, the xDS addresses to spread the fleet over, and the
# function that makes change i (returning when it was made).
Started = tuple[list[subprocess.Popen[bytes]], list[str], Callable[[int], float]]


def serve_command(
    workdir: Path,
    api: str,
    xds: str,
    *extra: str,
    store_url: str | None = None,
    envoy_listen: str | None = None,
) -> list[str]:
    """`xdsctl serve`, quiet, with ``extra`` flags: on a fresh state file in ``workdir``,
    or on the PostgreSQL database at ``store_url``. The Envoys' ingress listener is on
    ``envoy_listen``, else on a free port: the default 0.0.0.0:10000 may be anyone's, and
    an Envoy that cannot bind it refuses the listener and never asks for routes."""
    store = ["--store", store_url] if store_url else ["--state", str(workdir / "state.db")]
    listen = envoy_listen or f"127.0.0.1:{free_port()}"
    return [
        sys.executable,
        "-m",
        "xds_server.cli.main",
        "serve",
        *store,
        "--api-listen",
        api,
        "--xds-listen",
        xds,
        "--metrics-listen",
        f"127.0.0.1:{free_port()}",
        "--envoy-listen",
        listen,
        "--log-level",
        "warning",
        *extra,
    ]


def start_ours(workdir: Path, store_url: str | None = None, replicas: int = 1) -> Started:
    """``replicas`` times `xdsctl serve` (more than one needs ``store_url``); changes go
    through the first."""
    import grpc

    from xds_server.v1 import operator_pb2 as pb
    from xds_server.v1 import operator_pb2_grpc

    processes, xds_addresses, stubs = [], [], []
    for replica in range(replicas):
        api, xds = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        processes.append(
            subprocess.Popen(
                serve_command(workdir, api, xds, store_url=store_url),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=(workdir / f"serve-{replica}.log").open("wb"),
                preexec_fn=raise_open_files,
            )
        )
        xds_addresses.append(xds)
        stubs.append(operator_pb2_grpc.OperatorStub(grpc.insecure_channel(api)))
        deadline = time.monotonic() + 30
        while True:
            try:
                stubs[-1].ListServices(pb.ListServicesRequest(), timeout=1)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    stub = stubs[0]
    for tag, port in (("blue", 8081), ("green", 8082)):
        stub.Apply(
            pb.ApplyRequest(
                service="default",
                deployment_tag=tag,
                endpoints=[pb.Endpoint(host="127.0.0.1", port=port)],
            )
        )
    stub.SetTraffic(
        pb.SetTrafficRequest(
            service="default",
            weights=[pb.TagWeight(tag="blue", weight=99), pb.TagWeight(tag="green", weight=1)],
        )
    )

    return processes, xds_addresses, lambda i: weight_change(stub, i)


def weight_change(stub: Any, i: int) -> float:
    """Change i of a run: a new blue/green split of ``default``; returns when it was made."""
    from xds_server.v1 import operator_pb2 as pb

    split = 2 + i % 90
    stub.SetTraffic(
        pb.SetTrafficRequest(
            service="default",
            weights=[
                pb.TagWeight(tag="blue", weight=100 - split),
                pb.TagWeight(tag="green", weight=split),
            ],
        )
    )
    return time.monotonic()


def start_raw(workdir: Path) -> Started:
    xds = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("raw_broadcast.py")), xds],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(workdir / "raw.log").open("wb"),
        preexec_fn=raise_open_files,
    )
    assert process.stdout is not None and process.stdin is not None
    assert process.stdout.readline().strip() == b"ready"

    def change(i: int) -> float:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(f"{i}\n".encode())
        process.stdin.flush()
        return float(process.stdout.readline())

    return [process], [xds], change


# raw: the bare broadcast; ours: one replica on SQLite; ha: two replicas on one
# PostgreSQL database (a throwaway cluster), the fleet split between them and
# every change made through the first.
KINDS = ("raw", "ours", "ha")


def _start(kind: str, workdir: Path, stack: contextlib.ExitStack) -> Started:
    if kind == "raw":
        return start_raw(workdir)
    if kind == "ours":
        return start_ours(workdir)
    from tests.support.pg import PostgresCluster, postgres_bin

    bin_dir = postgres_bin()
    assert bin_dir is not None, "the ha kind needs PostgreSQL (apt-get install postgresql)"
    cluster = PostgresCluster(bin_dir)
    stack.callback(cluster.close)
    return start_ours(workdir, store_url=cluster.database(), replicas=2)


def _stats(processes: list[subprocess.Popen[bytes]]) -> tuple[float, int]:
    """CPU seconds and RSS KiB, summed over the server processes."""
    figures = [_proc_stat(process.pid) for process in processes]
    return sum(cpu for cpu, _ in figures), sum(rss for _, rss in figures)


def run(kind: str, clients: int, changes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        servers, xds, change = _start(kind, Path(tmp), stack)
        try:
            _, rss0 = _stats(servers)
            fleet = Fleet(xds, clients, full=kind != "raw")
            known: set[str] = set()
            fleet.wait_version(known)
            accepted = time.monotonic() - fleet.started
            # Idle means settled: after activity our server collects and
            # freezes its heap once (xds_server.heap), SETTLE_SECONDS later.
            time.sleep(SETTLE_SECONDS + 2.0)
            cpu_idle0, rss_idle = _stats(servers)
            time.sleep(3.0)
            cpu_idle1, _ = _stats(servers)
            last, first = [], []
            cpu_a, _ = _stats(servers)
            for i in range(changes):
                t0 = change(i)
                _version, t_first, t_last = fleet.wait_version(known)
                last.append(t_last - t0)
                first.append(t_first - t0)
                time.sleep(0.05)
            cpu_b, _ = _stats(servers)
            retries = fleet.retries
            fleet.close()
        finally:
            for server in servers:
                server.send_signal(signal.SIGKILL)
                server.wait()
    last.sort()
    return {
        "kind": kind,
        "clients": clients,
        "changes": changes,
        "last_p50_s": statistics.median(last),
        "last_p99_s": last[min(len(last) - 1, int(len(last) * 0.99))],
        "last_max_s": last[-1],
        "first_p50_s": statistics.median(first),
        "accept_all_s": accepted,
        "stream_retries": retries,
        "rss_per_client_kib": (rss_idle - rss0) / clients,
        "idle_cpu_s_per_s": (cpu_idle1 - cpu_idle0) / 3.0,
        "cpu_s_per_change": (cpu_b - cpu_a) / changes,
    }


def _print_run(result: dict[str, Any]) -> None:
    print(
        f"{result['clients']:>6} {result['kind']:>6} {result['last_p50_s']:>9.3f} "
        f"{result['last_p99_s']:>9.3f} {result['last_max_s']:>7.3f} "
        f"{result['first_p50_s']:>9.3f} {result['accept_all_s']:>7.2f} "
        f"{result['stream_retries']:>7} {result['rss_per_client_kib']:>7.1f} "
        f"{result['idle_cpu_s_per_s']:>8.3f} {result['cpu_s_per_change']:>8.3f}",
        flush=True,
    )


def ratios(runs: list[dict[str, Any]], base: str, other: str) -> dict[str, Any]:
    """``other`` ÷ ``base`` for one N: per round (run back to back), then the median."""
    raws = [r for r in runs if r["kind"] == base]
    ours = [r for r in runs if r["kind"] == other]

    def median_ratio(key: str) -> float | None:
        # A raw figure of 0 (CPU below /proc's 10 ms resolution at tiny N) has no ratio.
        found = [o[key] / r[key] for r, o in zip(raws, ours, strict=True) if r[key]]
        return statistics.median(found) if found else None

    return {
        "clients": runs[0]["clients"],
        "of": f"{other}/{base}",
        "rounds": len(ours),
        "p50": median_ratio("last_p50_s"),
        "p99": median_ratio("last_p99_s"),
        "memory_per_client": median_ratio("rss_per_client_kib"),
        "cpu_per_change": median_ratio("cpu_s_per_change"),
    }


def _ratio_text(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each kind per N")
    parser.add_argument(
        "--kinds",
        nargs=2,
        choices=KINDS,
        default=["raw", "ours"],
        metavar="KIND",
        help="the baseline and the server compared to it, each round: raw (bare broadcast), "
        "ours (one replica, SQLite), ha (two replicas, PostgreSQL); default raw ours",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results, summary = [], []
    print(
        f"{'N':>6} {'server':>6} {'last p50':>9} {'last p99':>9} {'max':>7} "
        f"{'first p50':>9} {'accept':>7} {'retries':>7} {'KiB/cl':>7} {'idle cpu':>8} "
        f"{'cpu/chg':>8}"
    )
    for clients in args.clients:
        runs = []
        for _round in range(args.rounds):
            for kind in args.kinds:
                runs.append(run(kind, clients, args.changes))
                _print_run(runs[-1])
        results.extend(runs)
        summary.append(ratios(runs, *args.kinds))
        figures = ", ".join(
            f"{label} {_ratio_text(summary[-1][key])}"
            for label, key in (
                ("p50", "p50"),
                ("p99", "p99"),
                ("memory per client", "memory_per_client"),
                ("cpu per change", "cpu_per_change"),
            )
        )
        ratio = f"{args.kinds[1]}/{args.kinds[0]}"
        print(f"{clients:>6}  {ratio} (median of {args.rounds} rounds): {figures}", flush=True)
        if args.json:  # after each N, so a long run stopped early keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"runs": results, "ratios": summary}, indent=2))


if __name__ == "__main__":
    main()
